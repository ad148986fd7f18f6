"""Unit 15 — optimizers compared: SGD, momentum, Nesterov, RMSprop, Adam and AdamW, from scratch
(``pipeline.scratch.optimizers``, each equal to its ``torch.optim`` twin step for step).

Two landscapes. The Rosenbrock function ``(1 - x)² + 100 (y - x²)²`` from (-1.5, 2): a curved
valley, steep across (curvature ~1000 at the minimum) and nearly flat along its floor, where
plain gradient descent must take steps small enough for the steep direction and so crawls along
the flat one; the figures draw each optimizer's path on the contours and its loss per step. And
the Unit 7 MNIST network (``pipeline.scratch.mlp.NeuralNetwork``) trained by each optimizer from
the same initial weights on the same mini-batches, so the optimizer is the only difference: loss
curves, final training loss, test accuracy, time.

Learning rates are fixed per optimizer and landscape, set by the reasoning below and checked
against a few neighbouring rates, not searched for the best. On Rosenbrock, SGD at half its
stability limit at the minimum (`sgd_stability_limit`, 2 / 1001.6 ≈ 2e-3); momentum and Nesterov
at 5e-4 (their limit is (1 + μ) times higher, their long-run step lr / (1 - μ) ten times larger);
the adaptive methods at the size of step they should take, since their steps are ~lr per
coordinate whatever the gradient. On MNIST, Unit 7's momentum setting and the common defaults of
the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.features import Split
from pipeline.lessons.classes import MNIST_DIGITS
from pipeline.scratch.mlp import NeuralNetwork, cross_entropy, predict_logits
from pipeline.scratch.optimizers import make, rosenbrock, rosenbrock_gradient, rosenbrock_hessian

START = (-1.5, 2.0)
MINIMUM = (1.0, 1.0)
THRESHOLD = 1e-3  # "reached the minimum": Rosenbrock loss below this
DIVERGED = 1e6  # a loss above this (or not finite) stops a descent as diverged
PATH_MARKS = 60  # dots along each drawn path, evenly spaced in steps: their spacing shows the speed
LOSS_AXIS_FLOOR = 1e-14

# label -> (registered name, hyper-parameters), in the order the tables and legends show them.
ROSENBROCK_OPTIMIZERS: dict[str, tuple[str, dict]] = {
    "SGD": ("sgd", {"lr": 1e-3}),
    "momentum": ("sgd", {"lr": 5e-4, "momentum": 0.9}),
    "Nesterov": ("sgd", {"lr": 5e-4, "momentum": 0.9, "nesterov": True}),
    "RMSprop": ("rmsprop", {"lr": 2e-3}),
    "Adam": ("adam", {"lr": 2e-2}),
    "AdamW": ("adamw", {"lr": 2e-2, "weight_decay": 1e-2}),
}
MNIST_OPTIMIZERS: dict[str, tuple[str, dict]] = {
    "SGD": ("sgd", {"lr": 0.1}),
    "momentum": ("sgd", {"lr": 0.05, "momentum": 0.9}),
    "Nesterov": ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    "RMSprop": ("rmsprop", {"lr": 1e-3}),
    "Adam": ("adam", {"lr": 1e-3}),
    "AdamW": ("adamw", {"lr": 1e-3, "weight_decay": 1e-2}),
}
COLOURS = dict(zip(ROSENBROCK_OPTIMIZERS, ("tab:grey", "tab:blue", "tab:cyan", "tab:orange", "tab:red",
                                           "tab:purple")))

# Rosenbrock steps; the MNIST network (Unit 7's layers on full, one narrower hidden layer on
# quick) and its training rows (None: all), epochs and batch size. The quick profile is a smoke
# run: its whole comparison takes a few seconds on one core.
ROSENBROCK_STEPS = {"quick": 5_000, "full": 20_000}
MNIST = {
    "quick": {"hidden": (128,), "train_rows": 6_000, "epochs": 5, "batch_size": 64},
    "full": {"hidden": (512, 256), "train_rows": None, "epochs": 10, "batch_size": 128},
}

# What to look for in each figure of `OptimizerComparison.figures`.
CAPTIONS = {
    "rosenbrock_paths": "Each optimizer's path on the Rosenbrock function from (-1.5, 2) (square) towards "
                        "the minimum at (1, 1) (star), over log-spaced contours, with a dot every few "
                        "steps: where the dots crowd, the optimizer is slow. All of them first drop into "
                        "the curved valley, then must follow its nearly flat floor. SGD's step is the "
                        "gradient, which there points mostly across the valley, so its dots bunch up "
                        "and it ends short of the star. Momentum zigzags across the valley at first "
                        "(Nesterov's look-ahead damps the zigzag), then both build up speed along it. "
                        "RMSprop, Adam and AdamW divide each coordinate's step by its recent gradient "
                        "size, so they walk at a nearly even pace along the floor.",
    "rosenbrock_losses": "Rosenbrock loss per step (log-log; the dotted line is the 1e-3 threshold of the "
                         "table). Plain SGD falls slowest; momentum and Nesterov lie almost on top of each "
                         "other; Adam falls to rounding (below the axis) but, with a constant rate, is not "
                         "stable there: once its gradients vanish its running mean v of squared "
                         "gradients decays, its effective rate lr / sqrt(v) grows past the stability "
                         "limit across the valley, and on long runs the loss spikes back up before it "
                         "returns; "
                         "RMSprop, whose steps stay ~lr in size, hovers near the threshold, and AdamW's "
                         "decoupled decay, which pulls towards (0, 0), holds it just off (1, 1).",
    "mnist_loss_curves": "The MNIST network trained by each optimizer from the same initial weights on the "
                         "same mini-batches. Left: training loss per step (each batch's loss before its "
                         "step, averaged over a fifth of an epoch); right: test loss before training and "
                         "after each epoch. Momentum, Nesterov and the adaptive methods fall faster than "
                         "plain SGD; AdamW's curve hides Adam's, because AdamW's decay (lr x weight "
                         "decay = 1e-5 of each weight per step) is too small to matter in a few epochs. "
                         "Watch for a test loss that turns up while the training loss keeps falling.",
}


# --- Rosenbrock -----------------------------------------------------------------------------------


@dataclass
class Descent:
    """One optimizer's descent of the Rosenbrock function: ``path`` (steps + 1, 2) from the start,
    ``losses`` (steps + 1,), and the step it diverged at (None if it did not)."""

    label: str
    name: str
    hyper: dict
    path: np.ndarray
    losses: np.ndarray
    diverged_at: int | None = None

    @property
    def steps_to_threshold(self) -> int | None:
        """The first step after which the loss is below ``THRESHOLD``; None if it never is."""
        below = np.flatnonzero(self.losses < THRESHOLD)
        return int(below[0]) if len(below) else None

    @property
    def distance_to_minimum(self) -> float:
        """Euclidean distance from the last point to (1, 1)."""
        return float(np.linalg.norm(self.path[-1] - np.array(MINIMUM)))


def descend_rosenbrock(label: str, name: str, hyper: dict, steps: int, start=START) -> Descent:
    """``steps`` steps of the optimizer registered as ``name`` down the Rosenbrock function,
    stopping early if the loss leaves [0, ``DIVERGED``]."""
    xy = np.array(start, dtype=np.float64)
    optimizer = make(name, [xy], **hyper)
    path, losses = [xy.copy()], [float(rosenbrock(xy))]
    for step in range(1, steps + 1):
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging step is caught just below
            optimizer.step([rosenbrock_gradient(xy)])
            loss = float(rosenbrock(xy))
        if not np.isfinite(loss) or loss > DIVERGED:
            return Descent(label, name, hyper, np.array(path), np.array(losses), diverged_at=step)
        path.append(xy.copy())
        losses.append(loss)
    return Descent(label, name, hyper, np.array(path), np.array(losses))


def rosenbrock_descents(profile: str, optimizers: dict[str, tuple[str, dict]] = ROSENBROCK_OPTIMIZERS,
                        steps: int | None = None) -> dict[str, Descent]:
    """Every optimizer of ``optimizers`` from ``START`` for the profile's number of steps."""
    steps = steps or ROSENBROCK_STEPS[profile]
    return {label: descend_rosenbrock(label, name, hyper, steps) for label, (name, hyper) in optimizers.items()}


def sgd_stability_limit(xy=MINIMUM) -> float:
    """``2 / λ_max`` of the Rosenbrock Hessian at xy: plain gradient descent with a larger rate is
    thrown out of the valley there (the error across it grows by ``|1 - lr λ_max| > 1`` a step)."""
    return float(2.0 / np.linalg.eigvalsh(rosenbrock_hessian(xy)).max())


def _describe(hyper: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in hyper.items())


def rosenbrock_table(descents: dict[str, Descent]) -> pd.DataFrame:
    """Per optimizer: settings, final loss, distance to (1, 1), steps to a loss below ``THRESHOLD``."""
    rows = []
    for label, run in descents.items():
        reached = run.steps_to_threshold
        rows.append({"optimizer": label, "settings": _describe(run.hyper), "steps": len(run.losses) - 1,
                     "final loss": float(run.losses[-1]),
                     "distance to (1, 1)": run.distance_to_minimum,
                     f"steps to loss < {THRESHOLD:g}": "not reached" if reached is None else reached,
                     "diverged at step": run.diverged_at})
    return pd.DataFrame(rows).set_index("optimizer")


def rosenbrock_paths_figure(descents: dict[str, Descent]):
    """One panel per optimizer: its path on the contours, a dot every few steps (dense dots: slow)."""
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    xs, ys = np.linspace(-2.0, 2.0, 200), np.linspace(-1.0, 3.0, 200)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1)  # (200, 200, 2)
    surface = rosenbrock(grid)  # (200, 200)
    levels = np.geomspace(1e-2, surface.max(), 25)
    steps = max(len(run.losses) for run in descents.values()) - 1
    every = max(1, steps // PATH_MARKS)
    columns = min(3, len(descents))
    rows = -(-len(descents) // columns)
    fig = Figure(figsize=(4 * columns, 3.8 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns, sharex=True, sharey=True)).ravel()
    for ax, (label, run) in zip(axes, descents.items()):
        colour = COLOURS.get(label)
        ax.contour(xs, ys, surface, levels=levels, norm=LogNorm(), cmap="viridis", linewidths=0.5)
        ax.plot(run.path[:, 0], run.path[:, 1], lw=1, color=colour)
        ax.plot(run.path[::every, 0], run.path[::every, 1], ".", ms=4, color=colour)
        ax.plot(*START, "s", color="black", ms=6)
        ax.plot(*MINIMUM, "*", color="black", ms=12)
        reached = run.steps_to_threshold
        outcome = f"loss < {THRESHOLD:g} at step {reached}" if reached is not None else f"loss {run.losses[-1]:.2g}"
        if run.diverged_at is not None:
            outcome = f"diverged at step {run.diverged_at}"
        ax.set_title(f"{label}: {outcome}", fontsize=10)
    for ax in axes[len(descents):]:
        ax.set_visible(False)
    fig.supxlabel("x")
    fig.supylabel("y")
    fig.suptitle(f"Rosenbrock (a=1, b=100) from {START} (square) to (1, 1) (star): {steps} steps, "
                 f"a dot every {every}")
    return fig


def rosenbrock_losses_figure(descents: dict[str, Descent]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for label, run in descents.items():
        steps = np.arange(1, len(run.losses) + 1)
        ax.plot(steps, run.losses, lw=1.2, color=COLOURS.get(label), label=label)
    ax.axhline(THRESHOLD, ls=":", color="black", lw=1)
    # Adam goes on down to rounding (~1e-30), which would squeeze every other curve into the top.
    ax.set(xscale="log", yscale="log", ylim=(LOSS_AXIS_FLOOR, None), xlabel="step + 1", ylabel="Rosenbrock loss",
           title=f"Loss per step (SGD's stability limit at (1, 1): lr < {sgd_stability_limit():.2e})")
    ax.legend(loc="lower left", fontsize=8)
    return fig


# --- MNIST ----------------------------------------------------------------------------------------


@dataclass
class TrainingRun:
    """The network one optimizer trained, its history (see `train_network`), the seconds its
    training steps took, and its final loss and accuracy on all its training rows."""

    label: str
    name: str
    hyper: dict
    net: NeuralNetwork
    history: dict[str, list[float]]
    seconds: float
    train_loss: float
    train_accuracy: float


def network_parameters(net: NeuralNetwork) -> list[np.ndarray]:
    """The network's arrays in the order ``backward()`` returns their gradients: W1, b1, W2, b2, ..."""
    return [p for pair in zip(net.weights, net.biases) for p in pair]


def _score(net: NeuralNetwork, X, y) -> tuple[float, float]:
    logits = predict_logits(net, X)
    return cross_entropy(logits, y), float(np.mean(logits.argmax(axis=1) == y))


def train_network(net: NeuralNetwork, name: str, hyper: dict, X, y, X_test, y_test, *, epochs: int,
                  batch_size: int, seed: int) -> tuple[dict[str, list[float]], float]:
    """Train ``net`` in place with the optimizer registered as ``name``: ``epochs`` passes over X
    (N, 784), y (N,) in mini-batches shuffled by ``seed``, so every optimizer sees the same batches.

    Returns the history, ``step_loss`` (each batch's loss before its step) and ``test_loss``,
    ``test_accuracy`` (before training and after each epoch), and the seconds spent in the steps
    (forward, backward, update; scoring excluded).
    """
    optimizer = make(name, network_parameters(net), **hyper)
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {"step_loss": [], "test_loss": [], "test_accuracy": []}

    def score_test() -> None:
        loss, accuracy = _score(net, X_test, y_test)
        history["test_loss"].append(loss)
        history["test_accuracy"].append(accuracy)

    score_test()
    seconds = 0.0
    for epoch in range(epochs):
        order = rng.permutation(len(X))
        started = time.perf_counter()
        for begin in range(0, len(X), batch_size):
            batch = order[begin:begin + batch_size]
            history["step_loss"].append(cross_entropy(net.forward(X[batch]), y[batch]))
            optimizer.step([g for pair in net.backward(y[batch]) for g in pair])
        seconds += time.perf_counter() - started
        if not np.isfinite(history["step_loss"][-1]):
            raise FloatingPointError(f"{name} {_describe(hyper)} diverged in epoch {epoch}: lower its lr")
        score_test()
    return history, seconds


def mnist_runs(split: Split, profile: str, seed: int = 0,
               optimizers: dict[str, tuple[str, dict]] = MNIST_OPTIMIZERS, epochs: int | None = None
               ) -> dict[str, TrainingRun]:
    """The profile's network trained once per optimizer, from the same weights (``seed``) on the
    same batches, on ``split``'s flattened images (``image_split(..., flatten=True)``); ``epochs``
    overrides the profile's."""
    settings = {**MNIST[profile], **({"epochs": epochs} if epochs else {})}
    rows = settings["train_rows"] or len(split.X_train)
    X, y = split.X_train[:rows], split.y_train[:rows]
    sizes = (X.shape[1], *settings["hidden"], len(MNIST_DIGITS))
    runs = {}
    for label, (name, hyper) in optimizers.items():
        net = NeuralNetwork(sizes, seed=seed)
        history, seconds = train_network(net, name, hyper, X, y, split.X_test, split.y_test,
                                         epochs=settings["epochs"], batch_size=settings["batch_size"], seed=seed)
        runs[label] = TrainingRun(label, name, hyper, net, history, seconds, *_score(net, X, y))
    return runs


def mnist_table(runs: dict[str, TrainingRun]) -> pd.DataFrame:
    """Per optimizer: settings, final training loss (all its training rows), test loss and accuracy,
    seconds of training."""
    rows = [{"optimizer": label, "settings": _describe(run.hyper), "train loss": run.train_loss,
             "test loss": run.history["test_loss"][-1], "test accuracy": run.history["test_accuracy"][-1],
             "seconds": run.seconds} for label, run in runs.items()]
    return pd.DataFrame(rows).set_index("optimizer")


def _moving_average(values, window: int) -> np.ndarray:
    values = np.asarray(values, float)
    window = max(1, min(window, len(values)))
    return np.convolve(values, np.ones(window) / window, mode="valid")


def mnist_loss_figure(runs: dict[str, TrainingRun]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    by_step, by_epoch = fig.subplots(1, 2)
    for label, run in runs.items():
        losses = run.history["step_loss"]
        epochs = len(run.history["test_loss"]) - 1
        window = max(1, len(losses) // (5 * epochs))
        smooth = _moving_average(losses, window)
        by_step.plot(np.arange(window, len(losses) + 1), smooth, lw=1.2, color=COLOURS.get(label), label=label)
        by_epoch.plot(np.arange(epochs + 1), run.history["test_loss"], "o-", ms=3, color=COLOURS.get(label),
                      label=label)
    by_step.set(yscale="log", xlabel="step", ylabel="training loss (batch, moving average)",
                title="Training loss per step")
    by_epoch.set(yscale="log", xlabel="epoch", ylabel="test loss", title="Test loss after each epoch")
    by_step.legend(loc="upper right", fontsize=8)
    layers = "-".join(map(str, next(iter(runs.values())).net.layer_sizes))
    fig.suptitle(f"MNIST network {layers}, same initial weights and batches for every optimizer")
    return fig


# --- both -----------------------------------------------------------------------------------------


@dataclass
class OptimizerComparison:
    """The Rosenbrock descents and MNIST runs of one profile, with what the unit reports of them."""

    descents: dict[str, Descent]
    runs: dict[str, TrainingRun]

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"rosenbrock": rosenbrock_table(self.descents), "mnist_optimizers": mnist_table(self.runs)}

    def figures(self) -> dict:
        """Figures by name (the keys of ``CAPTIONS``), matplotlib Figures."""
        return {"rosenbrock_paths": rosenbrock_paths_figure(self.descents),
                "rosenbrock_losses": rosenbrock_losses_figure(self.descents),
                "mnist_loss_curves": mnist_loss_figure(self.runs)}

    def metrics(self) -> dict[str, float]:
        """Flat floats for MLflow: per optimizer (label lower-cased) the Rosenbrock final loss and
        distance to (1, 1), and the MNIST training loss, test accuracy and seconds."""
        metrics = {}
        for label, run in self.descents.items():
            key = label.lower()
            metrics[f"rosenbrock_{key}_final_loss"] = float(run.losses[-1])
            metrics[f"rosenbrock_{key}_distance"] = run.distance_to_minimum
        for label, run in self.runs.items():
            key = label.lower()
            metrics[f"mnist_{key}_train_loss"] = run.train_loss
            metrics[f"mnist_{key}_test_accuracy"] = run.history["test_accuracy"][-1]
            metrics[f"mnist_{key}_seconds"] = run.seconds
        return metrics


def compare_optimizers(split: Split, profile: str, seed: int = 0, *, epochs: int | None = None,
                       rosenbrock_steps: int | None = None) -> OptimizerComparison:
    """The unit's optimizer comparison on the profile: Rosenbrock, then the MNIST network on ``split``
    (``epochs`` and ``rosenbrock_steps`` override the profile's settings)."""
    return OptimizerComparison(rosenbrock_descents(profile, steps=rosenbrock_steps),
                               mnist_runs(split, profile, seed, epochs=epochs))
