"""Unit 7 — a neural network from scratch in NumPy, on MNIST.

``pipeline.scratch.mlp`` holds the network (forward, backward, SGD with momentum); this module
picks its settings per profile and draws what the unit shows: learning curves and the digits it
gets wrong.
"""

from __future__ import annotations

import numpy as np

from pipeline.features import Split
from pipeline.scratch.mlp import NumpyMLPClassifier

OURS = "ours: NumPy MLP 784-512-256-10"
GRADIENT_CHECK_ROWS = 64

# 784-512-256-10 ReLU, SGD with momentum 0.9, cosine decay from 0.05, random shifts of up to
# 2 px, about 2 s/epoch on a 2-core CPU. The shifts were chosen on a validation split of the
# training images, not on the test set: benchmarks/unit07_shift_validation.py.
FULL = {
    "hidden": (512, 256),
    "activation": "relu",
    "init": "auto",
    "epochs": 20,
    "batch_size": 128,
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "lr_schedule": "cosine",
    "max_shift": 2,
    "seed": 0,
}
QUICK = {**FULL, "epochs": 10}


def mlp_classifier(profile: str, seed: int, epochs: int | None = None) -> NumpyMLPClassifier:
    """The unit's network with the profile's settings (``FULL`` or ``QUICK``)."""
    settings = {**(FULL if profile == "full" else QUICK), "seed": seed}
    if epochs is not None:
        settings["epochs"] = epochs
    return NumpyMLPClassifier(**settings)


def gradient_check_batch(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """A few training rows for the backward-vs-autograd audit."""
    return split.X_train[:GRADIENT_CHECK_ROWS], split.y_train[:GRADIENT_CHECK_ROWS]


def misclassified_figure(split: Split, y_pred: np.ndarray, n: int = 32):
    """A grid of test digits the network got wrong, captioned 'true → predicted'."""
    from pipeline.plots import image_grid_figure

    wrong = np.flatnonzero(y_pred != split.y_test)[:n]
    images = split.X_test[wrong].reshape(-1, 28, 28)
    captions = [f"{t} → {p}" for t, p in zip(split.y_test[wrong], y_pred[wrong])]
    return image_grid_figure(images, captions, title=f"{len(wrong)} misclassified test digits")


def mlp_figures(model: NumpyMLPClassifier, split: Split, y_pred: np.ndarray) -> dict[str, bytes]:
    from pipeline.plots import figure_to_png, history_figure

    return {"learning_curves": figure_to_png(history_figure(model.history_, "NumPy MLP")),
            "misclassified": figure_to_png(misclassified_figure(split, y_pred))}
