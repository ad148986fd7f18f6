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
# # Unit 10 — Attention from scratch
#
# Attention in NumPy, line by line: queries, keys and values, the scaled dot product, a stable
# softmax, masks, several heads, positional encodings. Each piece is checked against torch's own
# (`F.scaled_dot_product_attention`, `nn.MultiheadAttention`) to 1e-6 in float64. Then a small
# attention classifier, built on a torch mirror of the same function, learns SST-2 sentiment beside
# a bag-of-words logistic regression, and we look at what its heads attend to.
#
# Code: `pipeline.scratch.attention` (NumPy), `pipeline.models.attention` (torch mirror and
# classifier), `pipeline.audit.attention` (the checks), `pipeline.data.words` (the tokenizer) and
# `pipeline.lessons.attention` (the unit's settings and figures). Notes: `docs/unit10_attention.md`.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets

import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import display

from pipeline.audit.attention import audit_attention, audit_torch_mirror
from pipeline.data import load_dataset
from pipeline.evaluation import evaluate
from pipeline.lessons import attention
from pipeline.plots import show
from pipeline.scratch.attention import (
    MultiHeadAttention,
    scaled_dot_product_attention,
    sinusoidal_positional_encoding,
    softmax,
)

torch.set_num_threads(1)  # a model this small trains fastest on one thread; the cores stay free

# %% [markdown]
# ## Scaled dot-product attention
#
# Three matrices: queries `q` (L_q × d), keys `k` (L_k × d), values `v` (L_k × d_v). Each query
# scores each key by a dot product, scaled by 1/√d so the scores do not grow with the width; a
# softmax over the keys turns each row of scores into weights that sum to 1; the output is the
# weighted average of the values:
#
#     attention(q, k, v) = softmax(q kᵀ / √d) v
#
# The softmax subtracts each row's maximum first: exp never overflows, and the result is the same.

# %%
with np.errstate(over="ignore"):
    print("naive exp overflows:", np.exp(np.array([1000.0, 1001.0])))
print("stable softmax:     ", softmax(np.array([1000.0, 1001.0])))

rng = np.random.default_rng(0)
q, k, v = rng.normal(size=(3, 5, 4))
out, weights = scaled_dot_product_attention(q, k, v)
theirs = F.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (q, k, v)))
print("rows of weights sum to", weights.sum(axis=1))
print(f"max |ours - torch| = {np.abs(out - theirs.numpy()).max():.1e}")

# %% [markdown]
# ## Masks
#
# A mask forbids some query–key pairs: their scores become -inf, so after the softmax their
# weights are exactly 0. The **causal** mask lets position i see positions 0..i only, what a
# language model needs; a **padding** mask hides the filler at the end of short sentences in a
# batch. Left: the mask; right: the weights it leaves for random queries and keys.

# %%
show(attention.causal_mask_figure(), dpi=70)

# %% [markdown]
# ## Multi-head attention, checked against `nn.MultiheadAttention`
#
# The input `x` is projected three ways, `q = x W_q + b_q`, `k = x W_k + b_k`, `v = x W_v + b_v`;
# the `d_model` columns are split into `n_heads` heads that attend separately; their outputs are
# put side by side and projected by `W_o`. `MultiHeadAttention.from_torch` copies a torch module's
# weights (torch stores `W` transposed and the three input projections stacked). The audit
# compares outputs and per-head weights, plain, causal and with padding, and the positional
# encodings against the paper's formula written out element by element:

# %%
report = audit_attention()
display(report.table())
assert report.passed

# %% [markdown]
# ## Positional encoding
#
# Attention is blind to order: shuffle the words and each output is shuffled the same way. The
# Transformer adds to each word vector a pattern for its position:
# `PE[pos, 2i] = sin(pos / 10000^(2i/d))`, `PE[pos, 2i+1] = cos(pos / 10000^(2i/d))`, one
# sine/cosine clock per pair of dimensions, fast on the left, slow on the right.

# %%
pe_figures = attention.positional_encoding_figures()
show(pe_figures["positional_encoding"], dpi=60)
show(pe_figures["pe_similarity"], dpi=60)
x = rng.normal(size=(6, 8))
layer = MultiHeadAttention(8, 2, seed=1)
order = rng.permutation(6)
print("without positions, shuffling the words shuffles the outputs:",
      np.allclose(layer(x[order])[0], layer(x)[0][order]))
pe = sinusoidal_positional_encoding(6, 8)
print("with positions added, it does not:", np.allclose(layer(x[order] + pe)[0], layer(x + pe)[0][order]))

# %% [markdown]
# ## SST-2: an attention classifier against a bag of words
#
# SST-2 is movie-review sentences labelled positive or negative. The training set is 67,349
# phrases of the Stanford Sentiment Treebank; the test set here is the 1,821 labelled test
# sentences (the quick profile samples 4,000 training phrases and 1,000 test sentences). Words
# become ids through a vocabulary built from the training phrases only; unseen words are `<unk>`.

# %%
sst2 = load_dataset("sst2", profile="quick")
vocab, split, dev = attention.sst2_split(sst2)
print(f"vocabulary {len(vocab):,} words; train {split.X_train.shape}, test {split.X_test.shape}")
print(sst2.splits["train"]["sentence"].iloc[2], "->", split.X_train[2][:14])

# %% [markdown]
# The classifier: token embedding + positional encoding, one multi-head self-attention block
# (attention, then a small feed-forward layer, each with a residual connection and layer norm),
# the mean over the real words, a linear layer. The baseline counts words and fits a logistic
# regression. Both take the same id rows and go through the same evaluation. (The quick profile's
# settings: 32 wide, 2 heads, 4 epochs.)

# %%
models = attention.models(len(vocab), "quick", seed=0)
for model in models.values():
    model.fit(split.X_train, split.y_train)
results = {name: evaluate(model, split.X_train, split.y_train, split.X_test, split.y_test, cv=0, fit=False)
           for name, model in models.items()}
for name, result in results.items():
    print(f"{name:40s} test accuracy {result.metrics['test_accuracy']:.3f}, "
          f"ROC AUC {result.metrics['test_roc_auc']:.3f}")

# %% [markdown]
# The trained model's attention block is the NumPy attention: copied into `MultiHeadAttention`,
# it gives the same outputs and weights on real sentences.

# %%
display(audit_torch_mirror(models[attention.ATTENTION], split.X_test[:16]).table())

# %% [markdown]
# ## What the heads look at
#
# Each panel is one head on "the film is not good at all": row = the word asking (query),
# columns = the words it reads. After four epochs on 4,000 phrases the patterns are faint; the
# full profile's model is sharper (see the unit's page).

# %%
words, head_weights = attention.sentence_attention(models[attention.ATTENTION], vocab)
show(attention.attention_heads_figure(words, head_weights), dpi=70)
display(attention.attention_table(words, head_weights))

# %% [markdown]
# ## What we learned
#
# - Attention is a weighted average: softmax(q kᵀ / √d) scores, applied to the values.
# - Masks work through -inf scores; the causal mask is the lower triangle.
# - Multi-head attention is the same operation on slices of the width, side by side.
# - Positional encodings put order into an operation that ignores it.
# - One attention block on SST-2 is about as good as a bag of words: it mostly learns which
#   words occur, little of how they combine.
