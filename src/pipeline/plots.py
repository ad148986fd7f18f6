"""Figures for reports and artifacts: each function returns a matplotlib Figure, nothing is shown.

Figures are built as ``matplotlib.figure.Figure`` objects, not through pyplot's global figure
manager, so they are safe to make from several task threads and are freed with their last
reference. ``figure_to_png`` turns one into PNG bytes for MLflow or a Prefect artifact.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: flows run on workers without a display

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402


def confusion_matrix_figure(cm: np.ndarray, labels: Sequence, title: str = "Confusion matrix") -> Figure:
    """Heatmap of a (k, k) confusion matrix, rows = true label, columns = predicted, counts written in."""
    cm = np.asarray(cm)
    size = 2.5 + 0.5 * len(labels)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, [str(label) for label in labels], rotation=45 if len(labels) > 4 else 0)
    ax.set_yticks(ticks, [str(label) for label in labels])
    threshold = cm.max() / 2 if cm.size else 0
    for (i, j), count in np.ndenumerate(cm):
        ax.text(j, i, f"{count:g}", ha="center", va="center", color="white" if count > threshold else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return fig


def roc_curve_figure(y_true, y_score: np.ndarray, labels: Sequence, title: str = "ROC curve") -> Figure:
    """ROC curve(s) with AUC in the legend.

    ``y_score`` (n,) scores the greater label (``labels[-1]``) of a binary problem: one curve.
    ``y_score`` (n, k) holds class probabilities in ``labels`` order: one one-vs-rest curve per class.
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score)
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    if y_score.ndim == 1:
        curves = [(str(labels[-1]), y_true == labels[-1], y_score)]
    else:
        curves = [(f"{label} vs rest", y_true == label, y_score[:, i]) for i, label in enumerate(labels)]
    for name, positive, score in curves:
        if positive.all() or not positive.any():
            continue  # a class absent from y_true has no curve
        fpr, tpr, _ = roc_curve(positive, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(positive, score):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right")
    return fig


def predicted_vs_actual_figure(y_true, y_pred, title: str = "Predicted vs actual") -> Figure:
    """Scatter of predictions against targets with the y = x line: a perfect model sits on it."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.scatter(y_true, y_pred, s=12, alpha=0.6)
    low, high = min(y_true.min(), y_pred.min()), max(y_true.max(), y_pred.max())
    ax.plot([low, high], [low, high], linestyle="--", color="grey", label="y = x")
    ax.set(xlabel="actual", ylabel="predicted", title=title)
    ax.legend(loc="upper left")
    return fig


def validation_curve_figure(table: pd.DataFrame, param_name: str, title: str | None = None) -> Figure:
    """Train and CV score (mean ± std band) against a hyper-parameter, from `validation_curve_table`.

    Numeric values spanning over two decades get a log axis; non-numeric ones (None, strings)
    are placed evenly and labelled.
    """
    values = list(table[param_name])
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    numeric = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values)
    if numeric:
        x = np.asarray(values, dtype=float)
        if (x > 0).all() and x.max() / x.min() > 100:
            ax.set_xscale("log")
    else:
        x = np.arange(len(values))
        ax.set_xticks(x, [str(v) for v in values])
    for prefix, label in (("train", "train"), ("cv", "cross-validation")):
        mean, std = table[f"{prefix}_mean"].to_numpy(), table[f"{prefix}_std"].to_numpy()
        (line,) = ax.plot(x, mean, marker="o", label=label)
        ax.fill_between(x, mean - std, mean + std, alpha=0.2, color=line.get_color())
    ax.set(xlabel=param_name, ylabel="score", title=title or f"Validation curve: {param_name}")
    ax.legend(loc="best")
    return fig


def scatter_2d_figure(points: np.ndarray, labels=None, title: str = "") -> Figure:
    """Scatter of (n, 2) points, e.g. a PCA projection, coloured by ``labels`` (n,) when given."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2), got {points.shape}")
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=12, alpha=0.7)
    else:
        labels = np.asarray(labels)
        for label in np.unique(labels):
            mask = labels == label
            ax.scatter(points[mask, 0], points[mask, 1], s=12, alpha=0.7, label=str(label))
        ax.legend(loc="best", markerscale=1.5)
    ax.set(xlabel="component 1", ylabel="component 2", title=title)
    return fig


def bar_figure(values: Sequence[float], labels: Sequence, title: str = "", ylabel: str = "") -> Figure:
    """Bar chart of ``values`` named by ``labels`` (e.g. a metric per model, explained variance)."""
    if len(values) != len(labels):
        raise ValueError(f"{len(values)} values for {len(labels)} labels")
    fig = Figure(figsize=(max(4, 0.8 * len(values) + 2), 4))
    ax = fig.subplots()
    positions = np.arange(len(values))
    ax.bar(positions, values)
    crowded = len(values) > 5
    ax.set_xticks(positions, [str(label) for label in labels], rotation=30 if crowded else 0,
                  ha="right" if crowded else "center")
    ax.set(title=title, ylabel=ylabel)
    return fig


def history_figure(history, title: str = "Training") -> Figure:
    """Loss and accuracy per epoch of a training history.

    ``history`` is a list of per-epoch dicts or a dict of per-epoch lists, with ``loss``/``accuracy``
    or ``train_loss``/``train_accuracy``, and ``val_loss``/``val_accuracy`` when validated.
    """
    frame = pd.DataFrame(history)
    epochs = frame["epoch"] if "epoch" in frame else np.arange(1, len(frame) + 1)
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for label, column in (("train", f"train_{metric}"), ("train", metric), ("val", f"val_{metric}")):
            if column in frame:
                ax.plot(epochs, frame[column], marker="o", label=label)
        ax.set(xlabel="epoch", ylabel=metric, title=f"{title}: {metric}")
        ax.legend(loc="best")
    return fig


def image_grid_figure(images: np.ndarray, titles: Sequence[str], ncols: int = 8, title: str = "") -> Figure:
    """A grid of images, (n, H, W) grey or (n, H, W, 3) colour uint8/floats, each with a caption."""
    n = len(images)
    nrows = max(1, -(-n // ncols))
    fig = Figure(figsize=(1.4 * ncols, 1.6 * nrows + 0.4))
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, image, caption in zip(axes, images, titles):
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
        ax.set_title(caption, fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def figure_to_png(fig: Figure) -> bytes:
    """PNG bytes of ``fig`` (tight bounding box, 100 dpi); the figure is closed afterwards."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)  # frees a pyplot-made figure; a no-op for the Figure objects built here
    return buffer.getvalue()
