"""Unit 10 — attention from scratch, then a small attention classifier on SST-2.

``pipeline.scratch.attention`` holds the NumPy attention and ``pipeline.models.attention`` its
torch mirror; this module turns SST-2 into token ids (a word vocabulary from the training
sentences only), builds the two models the unit compares on the same rows — the attention
classifier (a `TorchClassifier` trained by the shared loop) and a bag-of-words logistic
regression — and draws the figures: the trained model's attention per head on a short sentence,
the causal mask and the positional encodings.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from pipeline.data.words import TokenCounts, Vocabulary
from pipeline.features import Split
from pipeline.models.attention import AttentionClassifier, TokenIds
from pipeline.scratch.attention import causal_mask, sinusoidal_positional_encoding
from pipeline.settings import mlpath_home
from pipeline.training import TorchClassifier, TrainConfig
from pipeline.units.unit10_attention import SPEC

ATTENTION = "attention classifier"
BASELINE = "bag of words + logistic regression"
CLASS_NAMES = ("negative", "positive")
MAX_LEN = 64  # tokens kept per sentence; SST-2's longest has 56
SENTENCE = "the film is not good at all"

# Per profile: the classifier's size and training. Quick is a smoke run on 4,000 training phrases
# (seconds); full trains on all 67,349 phrases in a few minutes on one CPU thread.
SETTINGS = {
    "quick": {"d_model": 32, "n_heads": 2, "dropout": 0.1,
              "config": TrainConfig(epochs=4, batch_size=64, lr=3e-3, optimizer="adamw", weight_decay=0.01,
                                    scheduler="onecycle")},
    "full": {"d_model": 64, "n_heads": 4, "dropout": 0.3,
             "config": TrainConfig(epochs=3, batch_size=128, lr=2e-3, optimizer="adamw", weight_decay=0.01,
                                   scheduler="onecycle")},
}

# What to look for in each figure, printed under it on the results site.
CAPTIONS = {
    "attention_heads": f"The trained classifier's attention on “{SENTENCE}”, one panel per head: row = "
                       "the word that asks (query), column = the words it reads (keys); each row "
                       "sums to 1. Look for columns that light up in every row: words that every other "
                       "word reads, such as the negation (“not”) or the sentiment word (“good”), so "
                       "that they colour the whole sentence's average. Only the pooled output is trained, so the "
                       "patterns are whatever helped the label, not necessarily grammar.",
    "causal_mask": "The causal mask for 8 positions and the attention weights it leaves for random "
                   "queries and keys: position i reads only positions 0..i (the lower triangle); "
                   "the upper triangle is exactly 0 after the softmax. A language model uses it so "
                   "that no word sees the words it must predict.",
    "positional_encoding": "Sinusoidal positional encodings, positions down, dimensions across: "
                           "each pair of columns is a sine/cosine clock, fast on the left and slower "
                           "to the right, so every position gets its own pattern. Look for the "
                           "stripes widening from left to right; the right half barely changes "
                           "over 64 positions.",
    "pe_similarity": "Dot products between the encodings of every pair of positions: the bright "
                     "diagonal band says nearby positions look alike and the similarity falls off "
                     "with distance, the same at every starting position. That is how order gets "
                     "into attention, which by itself ignores it.",
}


def sst2_split(dataset, max_len: int = MAX_LEN) -> tuple[Vocabulary, Split, tuple[np.ndarray, np.ndarray]]:
    """SST-2 as token ids: the vocabulary (train sentences only), the train/test split and dev (X, y)."""
    splits = dataset.splits
    vocab = Vocabulary.build(splits["train"]["sentence"])

    def rows(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return vocab.encode(frame["sentence"], max_len), frame["label"].to_numpy(np.int64)

    (X_train, y_train), (X_test, y_test) = rows(splits["train"]), rows(splits["test"])
    return vocab, Split(X_train, X_test, y_train, y_test), rows(splits["dev"])


def settings(profile: str, seed: int, epochs: int | None = None, d_model: int | None = None,
             n_heads: int | None = None) -> tuple[dict, TrainConfig]:
    """The classifier's size (and dropout) and its training settings for ``profile``, with overrides."""
    chosen = SETTINGS[profile]
    size = {"d_model": d_model or chosen["d_model"], "n_heads": n_heads or chosen["n_heads"],
            "dropout": chosen["dropout"]}
    config = replace(chosen["config"], seed=seed, label=ATTENTION, epochs=epochs or chosen["config"].epochs,
                     checkpoint_dir=str(mlpath_home() / "runs" / SPEC.id / "attention"))
    return size, config


def models(vocab_size: int, profile: str, seed: int, epochs: int | None = None, d_model: int | None = None,
           n_heads: int | None = None) -> dict:
    """The attention classifier and the bag-of-words baseline, both over token-id rows."""
    size, config = settings(profile, seed, epochs, d_model, n_heads)
    factory = partial(AttentionClassifier, vocab_size=vocab_size, max_len=MAX_LEN, **size)
    return {
        ATTENTION: TorchClassifier(factory, config, input_transform=TokenIds()),
        BASELINE: Pipeline([("counts", TokenCounts(vocab_size)),
                            ("logistic", LogisticRegression(C=1.0, max_iter=2000))]),
    }


def registered_model(model: TorchClassifier, vocab: Vocabulary):
    """The trained classifier as the registry stores it: a `TorchModel` over raw sentences, with its
    vocabulary in ``meta``, so that a later run with another vocabulary scores it correctly."""
    from pipeline.models.attention import predict_sentences
    from pipeline.training.export import TorchModel

    factory = model.module_factory  # functools.partial(AttentionClassifier, **kwargs)
    meta = {"vocab": list(vocab.words), "max_len": MAX_LEN, "classes": model.classes_.tolist()}
    return TorchModel(model.module_, factory.func, dict(factory.keywords), predict_sentences, meta)


def sentences(dataset, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Raw sentences (n,) and labels (n,) of one split: the registered model's input and holdout."""
    frame = dataset.splits[split]
    return frame["sentence"].to_numpy(dtype=object), frame["label"].to_numpy(np.int64)


def dev_accuracy(models: dict, dev: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """Accuracy on GLUE's dev set (872 sentences), where SST-2 results are usually published."""
    X, y = dev
    return {name: float(np.mean(model.predict(X) == y)) for name, model in models.items()}


def sentence_attention(model: TorchClassifier, vocab: Vocabulary, sentence: str = SENTENCE):
    """(words, weights (n_heads, L, L)) of the trained classifier's attention block on ``sentence``."""
    import torch

    ids = vocab.encode([sentence], MAX_LEN)
    module = model.module_.eval()
    with torch.no_grad():
        weights = module.attention(torch.as_tensor(ids, device=next(module.parameters()).device))
    return vocab.decode(ids[0]), weights[0].float().cpu().numpy()


def attention_heads_figure(words: list[str], weights: np.ndarray, title: str = ""):
    """One heatmap per head: queries down, keys across."""
    from matplotlib.figure import Figure

    n_heads = len(weights)
    cols = min(n_heads, 2)
    rows = -(-n_heads // cols)
    fig = Figure(figsize=(4.2 * cols, 3.9 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for head, ax in enumerate(axes.flat):
        if head >= n_heads:
            ax.axis("off")
            continue
        im = ax.imshow(weights[head], cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(len(words)), words, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(words)), words, fontsize=8)
        ax.set_title(f"head {head + 1}", fontsize=9)
        ax.set_xlabel("key (read)", fontsize=8)
        if head % cols == 0:
            ax.set_ylabel("query (asks)", fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="attention weight")
    fig.suptitle(title or f"Attention per head on “{' '.join(words)}”", fontsize=10)
    return fig


def causal_mask_figure(n: int = 8, seed: int = 0):
    """The causal mask and the weights it leaves for random queries and keys."""
    from matplotlib.figure import Figure

    from pipeline.scratch.attention import scaled_dot_product_attention

    rng = np.random.default_rng(seed)
    q, k = rng.normal(size=(2, n, 16))
    _, weights = scaled_dot_product_attention(q, k, np.eye(n, 16), causal=True)
    fig = Figure(figsize=(8.4, 3.8))
    (left, right) = fig.subplots(1, 2)
    left.imshow(causal_mask(n), cmap="Greys_r", vmin=0, vmax=1)
    left.set_title("causal mask (white = may attend)", fontsize=9)
    im = right.imshow(weights, cmap="viridis", vmin=0, vmax=1)
    right.set_title("weights after the masked softmax", fontsize=9)
    for ax in (left, right):
        ax.set_xlabel("key position")
        ax.set_ylabel("query position")
    fig.colorbar(im, ax=right, shrink=0.8)
    return fig


def positional_encoding_figures(n_positions: int = MAX_LEN, d_model: int = 64) -> dict:
    """The encoding matrix and its position-by-position similarity."""
    from matplotlib.figure import Figure

    pe = sinusoidal_positional_encoding(n_positions, d_model)
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    im = ax.imshow(pe, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    ax.set_xlabel("dimension")
    ax.set_ylabel("position")
    ax.set_title(f"Sinusoidal positional encoding ({n_positions} positions × {d_model} dimensions)")
    fig.colorbar(im, ax=ax)
    sim = Figure(figsize=(5, 4.2))
    sim_ax = sim.subplots()
    im = sim_ax.imshow(pe @ pe.T, cmap="viridis")
    sim_ax.set_xlabel("position")
    sim_ax.set_ylabel("position")
    sim_ax.set_title("PE(i) · PE(j)")
    sim.colorbar(im, ax=sim_ax)
    return {"positional_encoding": fig, "pe_similarity": sim}


def figures(model: TorchClassifier, vocab: Vocabulary) -> dict:
    """Every figure of the unit, by name (keys of `CAPTIONS`)."""
    words, weights = sentence_attention(model, vocab)
    return {"attention_heads": attention_heads_figure(words, weights), "causal_mask": causal_mask_figure(),
            **positional_encoding_figures()}


def attention_table(words: list[str], weights: np.ndarray) -> pd.DataFrame:
    """Per head, how much attention each word receives, averaged over the queries."""
    received = weights.mean(axis=1)  # (n_heads, L): column means
    return pd.DataFrame(received.T, index=pd.Index(words, name="word"),
                        columns=[f"head {h + 1}" for h in range(len(weights))]).round(3)


def report_parts(models: dict, results: dict, vocab: Vocabulary, dev: tuple[np.ndarray, np.ndarray]) -> dict:
    """The report's extra metrics, figures, tables, histories and notes (`UnitReport` fields)."""
    from pipeline.plots import figure_to_png

    model = models[ATTENTION]
    dev_acc = dev_accuracy(models, dev)
    baseline = results[BASELINE].metrics
    metrics = {f"baseline_{k}": float(baseline[k]) for k in ("test_accuracy", "test_f1", "test_roc_auc")
               if k in baseline}
    metrics |= {"dev_accuracy": dev_acc[ATTENTION], "baseline_dev_accuracy": dev_acc[BASELINE],
                "vocab_size": float(len(vocab))}
    words, weights = sentence_attention(model, vocab)
    return {
        "metrics": metrics,
        "figures": {name: figure_to_png(fig) for name, fig in figures(model, vocab).items()},
        "tables": {"attention received per word": attention_table(words, weights)},
        "histories": {"attention": model.history_},
        "notes": notes(len(vocab), dev_acc),
    }


def notes(vocab_size: int, dev_acc: dict[str, float]) -> str:
    """What the numbers are: the data, the vocabulary, the model's input."""
    return (f"SST-2: GLUE's training phrases, test = the 1,821 labelled SST test sentences (mirror-only "
            f"file), dev = GLUE's 872 dev sentences (dev accuracy: attention {dev_acc[ATTENTION]:.4f}, "
            f"bag of words {dev_acc[BASELINE]:.4f}). Vocabulary of {vocab_size:,} words from the "
            "training phrases only; unknown words map to <unk>. The registered model takes raw "
            "sentences and carries its vocabulary.")
