"""What happens around the batches, as callbacks a unit adds or leaves out.

`Trainer` takes a list of them; without one it uses ``default_callbacks(config)``: a progress bar,
MLflow metrics, early stopping (which also keeps the best weights) and, with a
``config.checkpoint_dir``, a `Checkpoint`. A callback that changes how training goes on (early
stopping) keeps its state in ``state_dict`` so that a checkpoint carries it.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import Tensor

if TYPE_CHECKING:
    from pipeline.training.loop import Trainer

_BAR_METRIC_EVERY = 10  # steps between metric read-outs for the bar: each .item() waits for the GPU


class Callback:
    """Hooks the loop calls, in this order; each does nothing unless overridden.

    ``row`` is the epoch's history row: epoch, the ``train_``/``val_`` metrics, lr, seconds,
    samples_per_second. A callback stops training by setting ``trainer.should_stop``.
    """

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...

    def on_batch_end(self, trainer: Trainer, index: int, metrics: dict[str, Tensor]) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict[str, float]) -> None: ...

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last epoch, or when fit is interrupted by an exception."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class OnEpochEnd(Callback):
    """Calls ``fn(epoch, row)`` after every epoch with a copy of the epoch's metrics."""

    def __init__(self, fn: Callable[[int, dict[str, float]], None]):
        self.fn = fn

    def on_epoch_end(self, trainer, epoch, row):
        self.fn(epoch, dict(row))


class MLflowLogger(Callback):
    """Each epoch's metrics to the active MLflow run, at step = epoch; nothing without one."""

    def on_epoch_end(self, trainer, epoch, row):
        mlflow = sys.modules.get("mlflow")  # never imported here: only a caller that uses MLflow has a run
        if mlflow is not None and mlflow.active_run() is not None:
            mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)


class EarlyStopping(Callback):
    """Keeps the weights of the epoch with the lowest ``monitor`` and restores them at the end.

    With ``patience``, stops after that many epochs without a lower value. Does nothing in epochs
    without the metric (no validation data): the last epoch is then the best known.
    """

    def __init__(self, patience: int | None = None, monitor: str = "val_loss"):
        self.patience, self.monitor = patience, monitor
        self.best, self.best_weights, self.stale_epochs = math.inf, None, 0

    def on_fit_start(self, trainer):
        self.best, self.best_weights, self.stale_epochs = math.inf, None, 0

    def on_epoch_end(self, trainer, epoch, row):
        if self.monitor not in row:
            return
        if row[self.monitor] < self.best:
            self.best, self.stale_epochs, trainer.best_epoch = row[self.monitor], 0, epoch
            self.best_weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        else:
            self.stale_epochs += 1
        if self.patience is not None and self.stale_epochs >= self.patience:
            trainer.should_stop = True

    def on_fit_end(self, trainer):
        if self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)
            self.best_weights = None  # a copy of the model, not needed once restored

    def state_dict(self):
        return {"best": self.best, "best_weights": self.best_weights, "stale_epochs": self.stale_epochs}

    def load_state_dict(self, state):
        self.best, self.best_weights, self.stale_epochs = state["best"], state["best_weights"], state["stale_epochs"]


class ProgressBar(Callback):
    """A bar (epoch i/n, steps, first metric, samples/s) on stderr when it is a terminal, and a line per epoch."""

    def __init__(self):
        self.bar: Progress | None = None

    def on_fit_start(self, trainer):
        if not sys.stderr.isatty():
            return
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[metric]}"),
            TextColumn("{task.fields[speed]:,.0f} samples/s"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self.bar.add_task("", total=None, metric="", speed=0.0)
        self.bar.start()

    def on_epoch_start(self, trainer, epoch):
        if self.bar:
            self.started = time.perf_counter()
            description = f"{trainer.config.label} {epoch}/{trainer.config.epochs}"
            self.bar.reset(self.bar.task_ids[0], total=trainer.steps_per_epoch, description=description)

    def on_batch_end(self, trainer, index, metrics):
        if not self.bar:
            return
        fields = {}
        if index % _BAR_METRIC_EVERY == 0 and metrics:
            name, value = next(iter(metrics.items()))
            value = value.detach() if isinstance(value, Tensor) else value
            fields["metric"] = f"{name} {float(value):.4f}"
        speed = (index + 1) * trainer.config.batch_size / (time.perf_counter() - self.started)
        self.bar.update(self.bar.task_ids[0], advance=1, speed=speed, **fields)

    def on_epoch_end(self, trainer, epoch, row):
        if self.bar:
            summary = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch")
            self.bar.console.print(f"{trainer.config.label} {epoch}/{trainer.config.epochs}  {summary}")

    def on_fit_end(self, trainer):
        if self.bar:
            self.bar.stop()
            self.bar = None
