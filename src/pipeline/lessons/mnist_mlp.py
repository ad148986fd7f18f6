"""Unit 7 — a neural network from scratch in NumPy, on MNIST.

``pipeline.scratch.mlp`` holds the network (forward, backward, SGD with momentum); this module
picks its settings per profile, trains it with per-epoch progress on a terminal, and draws what
the unit shows: training and held-out learning curves and the digits it gets wrong.

The held-out curves are the test images scored after every epoch, the training curves the first
10,000 training images scored the same way. They are only measured: the network trains on exactly
the same rows and steps without them (the weights are identical), and nothing is chosen from them;
the epochs are fixed by the profile.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from pipeline.features import Split
from pipeline.lessons.classes import MNIST_DIGITS
from pipeline.scratch.mlp import NumpyMLPClassifier

OURS = "ours: NumPy MLP 784-512-256-10"
GRADIENT_CHECK_ROWS = 64
HELD_OUT = "held-out (test images)"
SCORED_TRAIN_ROWS = 10_000  # training images scored after each epoch for the training curve

# What to look for in each figure of `mlp_figures`, printed under it on the results site.
CAPTIONS = {
    "learning_curves": "Loss and accuracy after each epoch, measured the same way on two sets of "
                       "images: training (the first 10,000 training images, all of them on the quick "
                       "profile, unshifted) and held-out (the test images, scored only to draw these "
                       "curves: the network trains the same without them, and nothing is chosen from "
                       "them). Both falling together is learning. The gap between them is over-fitting: "
                       "the network fits the images it trains on better than new ones; watch whether it "
                       "keeps widening while the held-out loss flattens or turns up.",
    "misclassified": "Test digits the network got wrong, each captioned true → predicted. Many are "
                     "odd even to a person (a 4 closed like a 9, a 7 with a bar, a thick smudge); "
                     "the rest show what a dense network misses with no notion of strokes or of "
                     "where in the image they are.",
}

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


class EpochProgress:
    """``on_epoch_end`` for `NumpyMLPClassifier.fit`: a bar over the epochs with a line per epoch
    (its loss and accuracy, training and held-out) on ``stream`` (stderr by default), drawn only
    when that is a terminal, as the torch loop's ``ProgressBar`` does per batch. A context manager:
    the bar is started on entry and stopped on exit."""

    def __init__(self, label: str, epochs: int, stream=None):
        self.label, self.epochs, self.stream = label, epochs, stream
        self.bar = None

    def __enter__(self) -> EpochProgress:
        stream = self.stream if self.stream is not None else sys.stderr
        if stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("epochs"), TimeElapsedColumn(), console=Console(file=stream))
            self.bar.add_task(self.label, total=self.epochs)
            self.bar.start()
            self.started = time.perf_counter()
        return self

    def __call__(self, epoch: int, history: dict[str, list[float]]) -> None:
        if self.bar is None:
            return
        now = time.perf_counter()
        summary = "  ".join(f"{name} {values[-1]:.4f}" for name, values in history.items() if name != "lr")
        self.bar.console.print(f"{self.label} epoch {epoch + 1}/{self.epochs}  {summary}  "
                               f"({now - self.started:.1f} s)", highlight=False, soft_wrap=True)
        self.started = now
        self.bar.advance(self.bar.task_ids[0])

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def train_mlp(model: NumpyMLPClassifier, split: Split, stream=None) -> dict[str, NumpyMLPClassifier]:
    """Fit the network on the training images, scoring the test images and the first
    ``SCORED_TRAIN_ROWS`` training images after every epoch for the learning curves (measured
    only, see the module docstring), with `EpochProgress`."""
    with EpochProgress("NumPy MLP", model.epochs, stream) as progress:
        model.fit(split.X_train, split.y_train, X_val=split.X_test, y_val=split.y_test, on_epoch_end=progress,
                  score_train_rows=SCORED_TRAIN_ROWS)
    return {OURS: model}


def misclassified_figure(split: Split, y_pred: np.ndarray, n: int = 32):
    """A grid of test digits the network got wrong, captioned 'true → predicted'."""
    from pipeline.plots import mistakes_figure

    return mistakes_figure(split.X_test.reshape(-1, 28, 28), split.y_test, y_pred, MNIST_DIGITS, n,
                           what="test digits")


def mlp_figures(model: NumpyMLPClassifier, split: Split, y_pred: np.ndarray) -> dict[str, bytes]:
    """The learning curves (training and held-out together) and the misclassified digits."""
    from pipeline.plots import figure_to_png, history_figure

    return {"learning_curves": figure_to_png(history_figure(model.history_, "NumPy MLP", HELD_OUT)),
            "misclassified": figure_to_png(misclassified_figure(split, y_pred))}
