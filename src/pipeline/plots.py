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


def roc_curve_figure(y_true, y_score: np.ndarray, labels: Sequence, title: str = "ROC curve",
                     names: Sequence[str] | None = None) -> Figure:
    """ROC curve(s) with AUC in the legend.

    ``y_score`` (n,) scores the greater label (``labels[-1]``) of a binary problem: one curve.
    ``y_score`` (n, k) holds class probabilities in ``labels`` order: one one-vs-rest curve per class.
    ``names`` (aligned with ``labels``) names the classes in the legend; by default the labels.
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score)
    names = [str(label) for label in labels] if names is None else list(names)
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    if y_score.ndim == 1:
        curves = [(names[-1], y_true == labels[-1], y_score)]
    else:
        curves = [(f"{name} vs rest", y_true == label, y_score[:, i])
                  for i, (label, name) in enumerate(zip(labels, names))]
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


def history_figure(history, title: str = "Training", val_label: str = "validation") -> Figure:
    """Loss and accuracy per epoch of a training history, training and validation on one axis.

    ``history`` is a list of per-epoch dicts or a dict of per-epoch lists, with ``loss``/``accuracy``
    or ``train_loss``/``train_accuracy`` (when it has both, ``train_*`` is drawn), and
    ``val_loss``/``val_accuracy`` when validated; ``val_label`` names the validation curves.
    """
    frame = pd.DataFrame(history)
    epochs = frame["epoch"] if "epoch" in frame else np.arange(1, len(frame) + 1)
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        train_column = f"train_{metric}" if f"train_{metric}" in frame else metric
        for label, column in (("training", train_column), (val_label, f"val_{metric}")):
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


def loss_curve_figure(losses: Sequence[float], optimum: float | None = None, title: str = "Gradient descent",
                      ylabel: str = "loss") -> Figure:
    """The loss before each gradient step (log step axis); with ``optimum`` (the loss at the exact
    minimum) a second panel shows ``loss - optimum`` on a log axis, where steady convergence is a
    straight line."""
    losses = np.asarray(losses, dtype=float)
    steps = np.arange(1, len(losses) + 1)
    fig = Figure(figsize=(10 if optimum is not None else 5, 4))
    axes = np.atleast_1d(fig.subplots(1, 2 if optimum is not None else 1))
    axes[0].plot(steps, losses)
    if optimum is not None:
        axes[0].axhline(optimum, linestyle="--", color="grey", label="exact minimum (closed form)")
        axes[0].legend(loc="upper right")
    axes[0].set(xscale="log", xlabel="gradient step", ylabel=ylabel, title=f"{title}: {ylabel}")
    if optimum is not None:
        excess = losses - optimum
        keep = excess > 0  # exactly 0 (or rounding below it) has no place on a log axis
        axes[1].plot(steps[keep], excess[keep])
        axes[1].set(yscale="log", xlabel="gradient step", ylabel=f"{ylabel} − minimum",
                    title="distance to the minimum")
    return fig


def tree_figure(root, feature_names: Sequence[str], class_names: Sequence[str], title: str = "",
                max_depth: int = 4) -> Figure:
    """A fitted decision tree drawn from the root (left) to the leaves (right): each split's
    question, entropy and rows; each leaf's class, rows and purity, tinted by class. The upper
    branch of a split answers yes (``x <= threshold``).

    ``root`` is a node as ``pipeline.scratch.tree.Node`` has them (``feature``, ``threshold``,
    ``left``, ``right``, ``value`` class frequencies, ``n_samples``, ``impurity``, ``is_leaf``).
    Subtrees below ``max_depth`` are drawn as one box saying how many rows they hold.
    """
    positions: dict[int, tuple[int, float]] = {}  # id(node) -> (depth, row)
    nodes: list[tuple[object, int, bool]] = []  # (node, depth, drawn as a leaf)
    next_row = [0.0]

    def place(node, depth: int) -> float:
        shown_as_leaf = node.is_leaf or depth >= max_depth
        if shown_as_leaf:
            row = next_row[0]
            next_row[0] += 1
        else:
            row = (place(node.left, depth + 1) + place(node.right, depth + 1)) / 2
        positions[id(node)] = (depth, row)
        nodes.append((node, depth, shown_as_leaf))
        return row

    place(root, 0)
    depth = max(d for _, d, _ in nodes)
    rows = next_row[0]
    fig = Figure(figsize=(2.4 * (depth + 1) + 0.4, max(3.0, 0.62 * rows + 0.8)))
    ax = fig.subplots()
    ax.axis("off")
    colours = matplotlib.colormaps["tab10"]
    for node, d, shown_as_leaf in nodes:
        if shown_as_leaf:
            continue
        _, row = positions[id(node)]
        for child, answer in ((node.left, "yes"), (node.right, "no")):
            cd, child_row = positions[id(child)]
            ax.plot([d, d + 0.5, d + 0.5, cd], [-row, -row, -child_row, -child_row], color="#9aa3af", zorder=1)
            ax.text(d + 0.5, -(row + child_row) / 2, answer, fontsize=7, color="#6b7380", ha="center",
                    va="center", backgroundcolor="white", zorder=2)
    for node, d, shown_as_leaf in nodes:
        _, row = positions[id(node)]
        majority = int(np.argmax(node.value))
        if shown_as_leaf and not node.is_leaf:
            text, face = f"subtree, {_rows(node.n_samples)}", "#f4f6f9"
        elif shown_as_leaf:
            text = f"{class_names[majority]}: {_rows(node.n_samples)}, {node.value[majority]:.0%}"
            strength = 0.15 + 0.5 * float(node.value[majority])  # purer leaves deeper in colour
            face = 1 - strength * (1 - np.asarray(matplotlib.colors.to_rgb(colours(majority % 10))))
        else:
            text = (f"{feature_names[node.feature]} ≤ {node.threshold:.2f}?\n"
                    f"entropy {node.impurity:.2f}, {_rows(node.n_samples)}")
            face = "white"
        ax.text(d, -row, text, ha="center", va="center", fontsize=7.5, zorder=3,
                bbox={"boxstyle": "round,pad=0.35", "facecolor": face, "edgecolor": "#6b7380"})
    ax.set(xlim=(-0.55, depth + 0.55), ylim=(-rows + 0.4, 0.6))
    if title:
        ax.set_title(f"{title} (leaves: majority class, rows, share of that class)")
    return fig


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def decision_boundary_figure(model, X: np.ndarray, y: np.ndarray, feature_names: Sequence[str],
                             class_names: Sequence[str], title: str = "", X_test=None, y_test=None,
                             resolution: int = 300) -> Figure:
    """The class a fitted 2-feature model predicts over the plane (shaded), with the training
    points (dots) and, when given, the test points (crosses); ``y`` holds codes 0 .. k-1 that
    index ``class_names``."""
    X, y = np.asarray(X, dtype=float), np.asarray(y)
    every = X if X_test is None else np.vstack([X, np.asarray(X_test, dtype=float)])
    low, high = every.min(axis=0), every.max(axis=0)
    margin = 0.05 * (high - low)
    xs = np.linspace(low[0] - margin[0], high[0] + margin[0], resolution)
    ys = np.linspace(low[1] - margin[1], high[1] + margin[1], resolution)
    grid_x, grid_y = np.meshgrid(xs, ys)
    regions = np.asarray(model.predict(np.column_stack([grid_x.ravel(), grid_y.ravel()])))
    colours = matplotlib.colormaps["tab10"]
    k = len(class_names)
    cmap = matplotlib.colors.ListedColormap([colours(i % 10) for i in range(k)])
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    ax.pcolormesh(grid_x, grid_y, regions.reshape(grid_x.shape).astype(float), cmap=cmap, vmin=-0.5,
                  vmax=k - 0.5, alpha=0.25, shading="auto")
    for code, name in enumerate(class_names):
        mask = y == code
        ax.scatter(X[mask, 0], X[mask, 1], s=16, color=colours(code % 10), edgecolor="white",
                   linewidth=0.5, label=f"{name} (train)")
        if X_test is not None:
            test_mask = np.asarray(y_test) == code
            ax.scatter(np.asarray(X_test)[test_mask, 0], np.asarray(X_test)[test_mask, 1], s=28,
                       marker="x", color=colours(code % 10), label=f"{name} (test)")
    ax.set(xlabel=feature_names[0], ylabel=feature_names[1], title=title)
    ax.legend(loc="best", fontsize=7)
    return fig


def mistakes_figure(images: np.ndarray, y_true, y_pred, class_names: Sequence[str], n: int = 32,
                    what: str = "test images", ncols: int = 8) -> Figure:
    """The first ``n`` images whose prediction is wrong, each captioned "true → predicted" by class
    name; ``class_names`` is indexed by the labels (codes 0 .. k-1)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrong = np.flatnonzero(y_pred != y_true)
    shown = wrong[:n]
    captions = [f"{class_names[t]} → {class_names[p]}" for t, p in zip(y_true[shown], y_pred[shown])]
    title = f"{len(wrong)} of {len(y_true)} {what} misclassified (first {len(shown)}): true → predicted"
    return image_grid_figure(np.asarray(images)[shown], captions, ncols=ncols, title=title)


def figure_to_png(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes of ``fig`` (tight bounding box, ``dpi``); the figure is closed afterwards."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)  # frees a pyplot-made figure; a no-op for the Figure objects built here
    return buffer.getvalue()


def show(fig: Figure, dpi: int = 80) -> None:
    """Display ``fig`` in a notebook as a small PNG (the library builds figures off-screen)."""
    from IPython.display import Image, display

    display(Image(figure_to_png(fig, dpi=dpi)))
