"""Small helpers for scikit-learn-style estimators that every unit uses."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.pipeline import Pipeline


def fit_all(models: dict[str, object], X, y) -> dict[str, object]:
    """Fit every model on the same rows; returns the same dict of (now fitted) models."""
    return {name: model.fit(X, y) for name, model in models.items()}


def final_step(model) -> tuple[object, Callable]:
    """The estimator at the end of a pipeline, and a function giving the rows it sees."""
    if isinstance(model, Pipeline):
        return model[-1], model[:-1].transform
    return model, lambda X: np.asarray(X, float)
