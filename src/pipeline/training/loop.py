"""The training loop: epochs of batches, with device, precision, seeds and bookkeeping done once.

Per batch the loop hands the batch to the step (`steps.Step`), which does the forward pass, calls
``trainer.optimize(loss, optimizer)`` for each update, and returns its metrics. Around that the
loop picks the device and autocast dtype, keeps the data on the device or streams it there,
seeds every random stream, averages the metrics per epoch, validates, and calls the callbacks:
progress bar, MLflow, early stopping, checkpoints (`callbacks`, `checkpoint`).
"""

from __future__ import annotations

import random
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.training.callbacks import Callback, EarlyStopping, MLflowLogger, ProgressBar
from pipeline.training.checkpoint import Checkpoint
from pipeline.training.config import TrainConfig, build_scheduler
from pipeline.training.data import batch_rows, is_array, make_batches, steps_per_epoch
from pipeline.training.device import autocast_dtype, memory_format, pick_device, seed_everything, to_layout
from pipeline.training.steps import ClassificationStep, Step

EVAL_BATCH_SIZE = 1024  # validation and prediction: no gradients to keep, so larger batches fit


@dataclass
class TrainResult:
    """What `Trainer.fit` did. ``history`` has one row per epoch since the start of the run
    (resumed epochs included): epoch, the step's metrics as train_<name> (and val_<name> with
    validation data), lr, seconds, samples_per_second. ``epochs_run`` counts them all;
    ``resumed_from`` is the checkpoint's epoch, None for a fresh run."""

    history: list[dict[str, float]]
    best_epoch: int
    epochs_run: int
    resumed_from: int | None
    seconds: float
    device: str


def default_callbacks(config: TrainConfig) -> list[Callback]:
    """Progress bar, MLflow metrics, early stopping by ``config`` (best weights kept), and a checkpoint
    in ``config.checkpoint_dir`` when it is set."""
    callbacks = [ProgressBar(), MLflowLogger(), EarlyStopping(config.early_stopping_patience)]
    if config.checkpoint_dir is not None:
        callbacks.append(Checkpoint(config.checkpoint_dir))
    return callbacks


class Trainer:
    """Trains ``model`` by ``config``, one batch at a time by ``step``.

    ``step`` None is `ClassificationStep()`: cross-entropy (with ``config.label_smoothing``) on
    ``(x, y)`` batches. ``callbacks`` None is ``default_callbacks(config)``; a list replaces them
    (``[*default_callbacks(config), OnEpochEnd(fn)]`` adds one). The model moves to the device
    now; the optimizers are the step's, built at the start of each fit.
    """

    def __init__(self, model: nn.Module, config: TrainConfig, step: Step | None = None,
                 callbacks: list[Callback] | None = None):
        self.config = config
        self.device = pick_device(config.device)
        self.amp_dtype = autocast_dtype(self.device, config)
        self.model = model.to(self.device, memory_format=memory_format(config))
        self.step = ClassificationStep() if step is None else step
        callbacks = default_callbacks(config) if callbacks is None else callbacks
        # Checkpoints last, so that they save every other callback's state for the epoch.
        self.callbacks = sorted(callbacks, key=lambda callback: isinstance(callback, Checkpoint))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.batch_generator = torch.Generator()  # the shuffling order, on the CPU: the same on any device
        self.optimizers: list[torch.optim.Optimizer] = []
        self.schedulers: list = []
        self.train_batches = None  # during fit only: a trainer kept after fit does not keep its data
        self.steps_per_epoch: int | None = None
        self.history: list[dict[str, float]] = []
        self.best_epoch: int | None = None  # set by EarlyStopping; None means the last epoch
        self.should_stop = False
        self.resumed_from: int | None = None
        self.lr = float("nan")  # of the first optimizer's last update, for the history

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The first (for most steps the only) optimizer."""
        return self.optimizers[0]

    def fit(self, X_train, y_train=None, X_val=None, y_val=None) -> TrainResult:
        """Train on ``X_train`` (n, ...) and ``y_train`` (n, ...), or on an iterable of batches.

        Arrays and tensors are shuffled into batches of ``config.batch_size`` each epoch; an
        iterable (a DataLoader, a list of batches) is used as it comes, and ``y`` is then None.
        Validation data comes the same way. Returns the `TrainResult`; the model ends with the
        weights the callbacks leave (the best epoch's, by validation loss, with `EarlyStopping`).
        """
        if y_val is not None and X_val is None:
            raise ValueError("y_val was given without X_val")
        if X_val is not None and is_array(X_val) and (y_val is None) != (y_train is None):
            raise ValueError("pass both X_val and y_val, or neither (y_val goes with y_train)")
        start, cfg = time.perf_counter(), self.config
        self.train_batches = make_batches(X_train, y_train, cfg.batch_size, self.device, shuffle=True)
        val_batches = None if X_val is None else make_batches(X_val, y_val, EVAL_BATCH_SIZE, self.device, False)
        self.steps_per_epoch = steps_per_epoch(self.train_batches)
        self.optimizers = list(self.step.configure_optimizers(self.model, cfg))
        self.schedulers = [build_scheduler(opt, cfg, self.steps_per_epoch) for opt in self.optimizers]
        self.batch_generator.manual_seed(cfg.seed)
        seed_everything(cfg.seed)
        self.history, self.best_epoch, self.should_stop, self.resumed_from = [], None, False, None
        try:
            self._callback("on_fit_start")
            for epoch in range(len(self.history) + 1, cfg.epochs + 1):
                if self.should_stop:
                    break
                epoch_start = time.perf_counter()
                train, throughput = self._train_epoch(epoch)
                val = {} if val_batches is None else self._validate(val_batches)
                row = {"epoch": epoch, **train, **val, "lr": self.lr,
                       "seconds": time.perf_counter() - epoch_start, "samples_per_second": throughput}
                self.history.append(row)
                self._callback("on_epoch_end", epoch, row)
        finally:
            self._callback("on_fit_end")
            self.train_batches = None
        return TrainResult(
            history=self.history,
            best_epoch=self.best_epoch or len(self.history),
            epochs_run=len(self.history),
            resumed_from=self.resumed_from,
            seconds=time.perf_counter() - start,
            device=str(self.device),
        )

    def optimize(self, loss: Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        """One update of ``optimizer`` (default: the first) from ``loss``, for steps to call.

        Zeroes its gradients, back-propagates (scaled, with fp16), clips them to
        ``config.grad_clip``, steps it and its schedule. With fp16 a step with inf/nan gradients is
        skipped and the scale lowered; each update is then one GradScaler iteration.
        """
        optimizer = self.optimizers[0] if optimizer is None else optimizer
        index = self.optimizers.index(optimizer)
        optimizer.zero_grad(set_to_none=True)
        with self._autocast_off():  # backward outside autocast, as torch advises
            self.scaler.scale(loss).backward()
        if self.config.grad_clip is not None:
            self.scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
            params = [p for group in optimizer.param_groups for p in group["params"]]
            nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        if index == 0:
            self.lr = optimizer.param_groups[0]["lr"]
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.scaler.step(optimizer)
        self.scaler.update()
        skipped = scale is not None and self.scaler.get_scale() < scale
        if self.schedulers[index] is not None and not skipped:  # a skipped step keeps the schedule in step
            self.schedulers[index].step()

    def autocast(self) -> AbstractContextManager:
        """Autocast to the configured dtype on this device (a no-op for float32)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def layout(self, x: Tensor) -> Tensor:
        """A 4-D batch in channels-last layout when the config asks, for the model's first layer."""
        return to_layout(x, self.config.channels_last)

    def predict(self, X, batch_size: int = EVAL_BATCH_SIZE) -> Tensor:
        """The step's ``predict_step`` over X (n, ...) in eval mode, batch by batch: (n, ...) float32."""
        self.model.eval()
        batches = make_batches(X, None, batch_size, self.device, shuffle=False)
        with torch.inference_mode(), self.autocast():
            return torch.cat([self.step.predict_step(self, xb).float() for (xb,) in batches.epoch()])

    def predict_logits(self, X, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
        """Model outputs for X (n, ...), shape (n, n_classes), float32."""
        return self.predict(X, batch_size).cpu().numpy()

    def predict_proba(self, X, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
        """Softmax of `predict_logits`, shape (n, n_classes)."""
        return torch.softmax(self.predict(X, batch_size), dim=-1).cpu().numpy()

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to go on as if never stopped (the `Checkpoint`'s content)."""
        return {
            "config": asdict(self.config),
            "model": self.model.state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "schedulers": [None if s is None else s.state_dict() for s in self.schedulers],
            "scaler": self.scaler.state_dict(),
            "step": self.step.state_dict(),
            "callbacks": {type(cb).__qualname__: cb.state_dict() for cb in self.callbacks},
            "history": self.history,
            "best_epoch": self.best_epoch,
            "stopped": self.should_stop,
            # plain types and tensors only, so a checkpoint loads with torch.load(weights_only=True)
            "rng": {
                "python": _python_rng_state(),
                "numpy": _numpy_rng_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "batches": self.batch_generator.get_state(),
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved, into a trainer fitting with the same settings."""
        self.model.load_state_dict(state["model"])
        for opt, saved in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(saved)
        for scheduler, saved in zip(self.schedulers, state["schedulers"], strict=True):
            if scheduler is not None:
                scheduler.load_state_dict(saved)
        if self.scaler.is_enabled() and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.step.load_state_dict(state["step"])
        for callback in self.callbacks:
            callback.load_state_dict(state["callbacks"].get(type(callback).__qualname__, {}))
        self.history, self.best_epoch, self.should_stop = state["history"], state["best_epoch"], state["stopped"]
        rng = state["rng"]
        _set_python_rng_state(rng["python"])
        _set_numpy_rng_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and len(rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.batch_generator.set_state(rng["batches"])

    def _train_epoch(self, epoch: int) -> tuple[dict[str, float], float]:
        """One pass over the training batches; returns the mean train metrics and samples/s."""
        started = time.perf_counter()
        self.model.train()
        self.step.on_epoch_start(self)
        self._callback("on_epoch_start", epoch)
        sums, n_seen = {}, 0
        for index, batch in enumerate(self.train_batches.epoch(self.batch_generator)):
            with self.autocast():
                metrics = self.step.training_step(self, batch)
            n_seen += _accumulate(sums, metrics, batch_rows(batch))
            self._callback("on_batch_end", index, metrics)
        if n_seen == 0:
            raise ValueError("the training data gave no batches")
        return _means(sums, n_seen, "train_"), n_seen / (time.perf_counter() - started)

    def _validate(self, batches) -> dict[str, float]:
        self.model.eval()
        sums, n_seen = {}, 0
        with torch.inference_mode(), self.autocast():
            for batch in batches.epoch():
                n_seen += _accumulate(sums, self.step.validation_step(self, batch), batch_rows(batch))
        return _means(sums, n_seen, "val_")

    def _autocast_off(self) -> AbstractContextManager:
        return nullcontext() if self.amp_dtype is None else torch.autocast(self.device.type, enabled=False)

    def _callback(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)


def _accumulate(sums: dict[str, Tensor], metrics: dict[str, Tensor], rows: int) -> int:
    """Add the batch-mean ``metrics`` times ``rows`` to ``sums``, on the device (no waiting); returns rows."""
    for name, value in metrics.items():
        value = value.detach().float() if isinstance(value, Tensor) else float(value)
        sums[name] = sums.get(name, 0.0) + value * rows
    return rows


def _means(sums: dict[str, Tensor], n: int, prefix: str) -> dict[str, float]:
    return {prefix + name: float(total) / n for name, total in sums.items()}


def _python_rng_state() -> dict[str, Any]:
    """``random.getstate()`` as plain values: version, the Mersenne Twister words, gauss_next."""
    version, words, gauss_next = random.getstate()
    return {"version": version, "words": torch.tensor(words, dtype=torch.int64), "gauss_next": gauss_next}


def _set_python_rng_state(state: dict[str, Any]) -> None:
    random.setstate((state["version"], tuple(int(w) for w in state["words"].tolist()), state["gauss_next"]))


def _numpy_rng_state() -> dict[str, Any]:
    """``np.random.get_state()`` as plain values and a tensor (no ndarray: the weights-only
    unpickler refuses NumPy objects)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_rng_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["kind"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"]))
