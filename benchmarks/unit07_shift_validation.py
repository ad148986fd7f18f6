"""Unit 7: choose the shift augmentation on a validation split, never on the test set.

Trains ``UNIT07_FULL`` with and without random shifts on the first 50,000 MNIST training images
and scores the last 10,000 (the test set is not touched). ``python -m benchmarks.unit07_shift_validation``
"""

from __future__ import annotations

import numpy as np

from pipeline.data import load_dataset
from pipeline.features import image_split
from pipeline.lessons.mnist_mlp import FULL as UNIT07_FULL
from pipeline.scratch.mlp import NumpyMLPClassifier

N_TRAIN = 50_000


def main() -> None:
    split = image_split(load_dataset("mnist", "full"), flatten=True)
    X, y = split.X_train, split.y_train
    print(f"\nUnit 7 — validation accuracy (train on {N_TRAIN}, validate on {len(X) - N_TRAIN})")
    for shift in (0, UNIT07_FULL["max_shift"]):
        model = NumpyMLPClassifier(**{**UNIT07_FULL, "max_shift": shift}).fit(X[:N_TRAIN], y[:N_TRAIN])
        accuracy = float(np.mean(model.predict(X[N_TRAIN:]) == y[N_TRAIN:]))
        print(f"  max_shift={shift}: {accuracy:.4f}")


if __name__ == "__main__":
    main()
