# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Paper — "Attention Is All You Need", small
#
# The Transformer of Vaswani et al. (2017), built from our own modules (`pipeline.models.transformer`),
# checked against torch's, then trained twice: as an encoder–decoder that reverses digit strings,
# and as a decoder-only character model of Tiny Shakespeare beside Unit 9's LSTM. This notebook runs
# the quick profile, a smoke run of a minute; `docs/paper.md` has the full-profile numbers.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets

import torch
from IPython.display import display

from pipeline.audit.transformer import audit_transformer_modules
from pipeline.data import load_dataset
from pipeline.lessons import transformer
from pipeline.models.transformer import MultiHeadAttention, causal_mask, sinusoid_table
from pipeline.plots import show
from pipeline.training.config import noam_factor

# %% [markdown]
# ## Attention, checked against torch
#
# `MultiHeadAttention` projects queries, keys and values, splits them into heads, computes
# `softmax(QKᵀ/√d_k)V` per head and projects the concatenation back. With the weights of
# `torch.nn.MultiheadAttention` copied in, both give the same numbers (float64), with and without
# masks; so do our post-norm encoder and decoder layers and torch's.

# %%
display(audit_transformer_modules().table())

# %%
attention = MultiHeadAttention(d_model=16, n_heads=4)
x = torch.randn(2, 5, 16)
print("output", tuple(attention(x, x, x, attn_mask=causal_mask(5)).shape))
print("causal mask (True = hidden):\n", causal_mask(5).int())

# %% [markdown]
# ## Positional encodings and the learning-rate schedule
#
# Attention alone ignores order; the sinusoids of wavelengths from 2π to 10000·2π tell each
# position where it is. The paper's schedule rises linearly for `warmup` updates, then decays as
# 1/√step (`TrainConfig(scheduler="noam")`).

# %%
table = sinusoid_table(14, 8)
print(table[:4].numpy().round(3))
print("lr multiplier at updates 1, 200, 400, 1600 (warm-up 400):",
      [round(noam_factor(s - 1, 400), 3) for s in (1, 200, 400, 1600)])

# %% [markdown]
# ## Reversing digit strings
#
# 5–12 digits in, the same digits reversed out; test strings never occur in training. Quick keeps
# 3,000 training strings and trains a few epochs: far from the full run's 99.9 %, but every piece runs.

# %%
digits = load_dataset("digit_strings", profile="quick")
display(digits.splits["train"].head())
seq = transformer.train_seq2seq(digits.splits, "quick", seed=0)
model = transformer.seq2seq_model(seq)
metrics, by_length, examples = transformer.evaluate_seq2seq(model, digits.splits["test"])
print({k: round(v, 4) for k, v in metrics.items()})
display(examples.head(5))
show(transformer.seq2seq_figure(seq.history))

# %% [markdown]
# ## The decoder-only Transformer against the LSTM
#
# The same batches and the same seconds of training each (a couple of seconds here, six minutes
# in the full run); validation loss in nats per character.

# %%
text = load_dataset("tinyshakespeare", profile="quick").splits["text"]
runs = transformer.train_char_models(text, "quick", seed=0, budget_s=1.5)
display(transformer.lm_table(runs))
show(transformer.lm_figure(runs))
for run in runs.values():
    print(f"--- {run.name}\n{run.sample}\n")
