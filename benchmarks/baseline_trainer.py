"""The training loop as it was before the refactor into ``pipeline.training`` (the package).

Kept only as the baseline of ``benchmarks/loop_overhead.py``, which times the new loop against it
in the same run; nothing else imports it. It is ``git show ac53aae:src/pipeline/training.py``
unchanged below this docstring: do not edit it, or the comparison stops meaning anything.

Original docstring: ``Trainer(model, TrainConfig(...)).fit(X, y, X_val, y_val)`` trains on CUDA
when present (with mixed precision there) and on the CPU otherwise (in bf16 where the CPU has it
and the config asks), seeded, with a progress bar on a terminal, per-epoch metrics to
``on_epoch_end`` and to the active MLflow run, a checkpoint after every epoch that the next ``fit``
resumes from, early stopping on validation loss and optional gradient clipping.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import random
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y
from torch import Tensor, nn

from pipeline.evaluation import ModelAdapter

OPTIMIZERS = ("sgd", "adamw")
SCHEDULERS = ("onecycle", "cosine")
# Settings a resumed run may change; any other difference means the checkpoint is another run's.
_RESUMABLE_CHANGES = ("epochs", "early_stopping_patience", "checkpoint_dir", "device", "label")
_BAR_LOSS_EVERY = 10  # steps between loss read-outs for the bar: each .item() waits for the GPU

Transform = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Frozen, so it is hashable and `sklearn.base.clone` copies it as one value.

    ``scheduler`` steps every batch: "onecycle" peaks at ``lr``, "cosine" anneals from ``lr`` to 0.
    ``amp`` is mixed precision on CUDA (bf16 where supported, else fp16 with a GradScaler).
    ``cpu_bf16`` is bf16 autocast on the CPU, only where the CPU computes bf16 natively (AVX512-BF16
    or AMX; elsewhere it would be emulated and slower): about twice as fast for convolutions.
    ``channels_last`` stores a conv net's weights and 4-D batches as (N, H, W, C) in memory, the
    layout oneDNN and tensor cores convolve fastest; shapes and results are unchanged.
    ``early_stopping_patience`` counts epochs without a lower validation loss.
    ``label_smoothing`` (ε, for the default cross-entropy) trains towards 1 - ε + ε/K on the true
    class and ε/K on each of the K - 1 others instead of 1 and 0: once right, the net stops pushing
    its logits apart, a mild regulariser. Validation losses are smoothed the same way.
    ``device`` None means `pick_device()`; ``label`` names the run in the progress bar.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adamw"
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str | None = None
    grad_clip: float | None = None
    label_smoothing: float = 0.0
    early_stopping_patience: int | None = None
    amp: bool = True
    cpu_bf16: bool = False
    channels_last: bool = False
    seed: int = 0
    checkpoint_dir: str | None = None
    device: str | None = None
    label: str = "train"

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS} or None, got {self.scheduler!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


@dataclass
class TrainResult:
    """What `Trainer.fit` did. ``history`` has one row per epoch since the start of the run
    (resumed epochs included): epoch, train_loss, train_accuracy, val_loss, val_accuracy (with
    validation data), lr, seconds, samples_per_second. ``epochs_run`` counts them all;
    ``resumed_from`` is the checkpoint's epoch, None for a fresh run."""

    history: list[dict[str, float]]
    best_epoch: int
    epochs_run: int
    resumed_from: int | None
    seconds: float
    device: str


@dataclass
class _RunState:
    """What a checkpoint carries besides weights and optimizer: enough to go on as if never stopped."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_val_loss: float = math.inf
    best_epoch: int = 0
    best_weights: dict[str, Tensor] | None = None
    stale_epochs: int = 0
    stopped_early: bool = False


def pick_device(preferred: str | None = None) -> torch.device:
    """``preferred`` if given (raising if it is CUDA and there is none), else CUDA when present, else CPU."""
    if preferred is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preferred)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {preferred!r} was asked for but CUDA is not available; use None or 'cpu'")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (torch.manual_seed covers every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """Trains ``model`` by ``config``; see the module docstring.

    ``loss_fn`` (default cross-entropy) must return the batch mean. ``train_transform`` (e.g.
    augmentation) and then ``input_transform`` (e.g. uint8 -> normalised float; also applied to
    validation and prediction inputs) run per batch on the device. The whole training set is moved
    to the device once, so it must fit there.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        loss_fn: nn.Module | None = None,
        train_transform: Transform | None = None,
        on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
        input_transform: Transform | None = None,
    ):
        self.config = config
        self.device = pick_device(config.device)
        self.model = model.to(self.device, memory_format=_memory_format(config))
        if loss_fn is None:
            loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.loss_fn = loss_fn
        self.train_transform = train_transform
        self.input_transform = input_transform
        self.on_epoch_end = on_epoch_end
        self.optimizer = _build_optimizer(self.model, config)
        self.scheduler = None  # built in fit: its length depends on the number of batches
        self.amp_dtype = autocast_dtype(self.device, config)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    def fit(self, X_train, y_train, X_val=None, y_val=None) -> TrainResult:
        """Train on X_train (n, ...) and y_train (n,); resume from ``checkpoint_dir/last.pt`` if there.

        Ends with the weights of the epoch with the lowest validation loss when validation data is
        given (early stopped or not), else with the last epoch's. A checkpoint from other settings
        (see ``_RESUMABLE_CHANGES``) or other training data raises ValueError; a finished run's
        checkpoint is not reused: training again trains anew and overwrites it.
        """
        if (X_val is None) != (y_val is None):
            raise ValueError("pass both X_val and y_val, or neither")
        start, cfg = time.perf_counter(), self.config
        X, y = _as_tensor(X_train), _as_targets(y_train)
        if len(X) != len(y) or len(X) == 0:
            raise ValueError(f"X_train and y_train need the same, non-zero number of rows; got {len(X)} and {len(y)}")
        self.scheduler = _build_scheduler(self.optimizer, cfg, _steps_per_epoch(len(X), cfg.batch_size))
        generator = torch.Generator().manual_seed(cfg.seed)  # batch order, on the CPU: the same on any device
        seed_everything(cfg.seed)
        run, resumed_from = _RunState(), None
        path = Path(cfg.checkpoint_dir) / "last.pt" if cfg.checkpoint_dir else None
        fingerprint = _fingerprint(X, y) if path else None
        if path and path.exists():
            resumed = self._load_checkpoint(path, generator, fingerprint)
            if resumed is not None:
                run, resumed_from = resumed, len(resumed.history)
        X, y = X.to(self.device), y.to(self.device)
        val = None if X_val is None else (_as_tensor(X_val).to(self.device), _as_targets(y_val).to(self.device))

        bar = _progress_bar()
        with bar or nullcontext():
            for epoch in range(len(run.history) + 1, cfg.epochs + 1):
                if run.stopped_early:
                    break
                epoch_start = time.perf_counter()
                train, lr, throughput = self._train_epoch(X, y, generator, bar, epoch)
                row = {"epoch": epoch, **train, **(self._evaluate(*val) if val is not None else {})}
                row.update(lr=lr, seconds=time.perf_counter() - epoch_start, samples_per_second=throughput)
                run.history.append(row)
                self._update_best(run, row, epoch)
                self._report(epoch, row, bar)
                if path:
                    self._save_checkpoint(path, run, generator, fingerprint)
        if run.best_weights is not None:
            self.model.load_state_dict(run.best_weights)
        return TrainResult(
            history=run.history,
            best_epoch=run.best_epoch,
            epochs_run=len(run.history),
            resumed_from=resumed_from,
            seconds=time.perf_counter() - start,
            device=str(self.device),
        )

    def predict_logits(self, X, batch_size: int = 1024) -> np.ndarray:
        """Model outputs for X (n, ...) in eval mode, shape (n, n_classes), float32."""
        return self._logits(_as_tensor(X), batch_size).cpu().numpy()

    def predict_proba(self, X, batch_size: int = 1024) -> np.ndarray:
        """Softmax of `predict_logits`, shape (n, n_classes)."""
        return torch.softmax(self._logits(_as_tensor(X), batch_size), dim=-1).cpu().numpy()

    def _logits(self, X: Tensor, batch_size: int = 1024) -> Tensor:
        return _predict_logits(self.model, X, self.device, self.input_transform, self.amp_dtype, batch_size,
                               self.config.channels_last)

    def _train_epoch(self, X: Tensor, y: Tensor, generator: torch.Generator, bar, epoch: int):
        """One pass over the batches; returns the train metrics, the last step's lr and samples/s."""
        cfg, started = self.config, time.perf_counter()
        self.model.train()
        batches = _batch_indices(len(X), cfg.batch_size, generator, self.device)
        if bar:
            bar.reset(bar.task_ids[0], total=len(batches), description=f"{cfg.label} {epoch}/{cfg.epochs}")
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        for step, idx in enumerate(batches):
            xb, yb = X[idx], y[idx]  # (B, ...), (B,)
            if self.train_transform is not None:
                xb = self.train_transform(xb)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                logits = self.model(_layout(_apply(self.input_transform, xb), cfg.channels_last))  # (B, C)
                loss = self.loss_fn(logits, yb)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the fp16-scaled ones
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            lr = self.optimizer.param_groups[0]["lr"]
            scale = self.scaler.get_scale() if self.scaler.is_enabled() else None
            self.scaler.step(self.optimizer)
            self.scaler.update()
            # fp16: a step with inf/nan gradients is skipped (and the scale lowered); keep the schedule in step
            skipped = scale is not None and self.scaler.get_scale() < scale
            if self.scheduler is not None and not skipped:
                self.scheduler.step()
            loss_sum += loss.detach().float() * len(yb)
            correct += _correct(logits.detach(), yb)
            if bar:
                fields = {"loss": loss.item()} if step % _BAR_LOSS_EVERY == 0 else {}
                seen = (step + 1) * cfg.batch_size
                bar.update(bar.task_ids[0], advance=1, speed=seen / (time.perf_counter() - started), **fields)
        n_seen = sum(len(idx) for idx in batches)
        metrics = {"train_loss": loss_sum.item() / n_seen}
        if _is_classification(logits, yb):
            metrics["train_accuracy"] = correct.item() / (n_seen * yb[0].numel())
        return metrics, lr, n_seen / (time.perf_counter() - started)

    def _evaluate(self, X: Tensor, y: Tensor) -> dict[str, float]:
        logits = self._logits(X)  # (n, C)
        metrics = {"val_loss": self.loss_fn(logits, y).item()}
        if _is_classification(logits, y):
            metrics["val_accuracy"] = _correct(logits, y).item() / y.numel()
        return metrics

    def _update_best(self, run: _RunState, row: dict[str, float], epoch: int) -> None:
        if "val_loss" not in row:  # without validation data the last epoch is the best we know
            run.best_epoch = epoch
            return
        if row["val_loss"] < run.best_val_loss:
            run.best_val_loss, run.best_epoch, run.stale_epochs = row["val_loss"], epoch, 0
            run.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            run.stale_epochs += 1
        patience = self.config.early_stopping_patience
        run.stopped_early = patience is not None and run.stale_epochs >= patience

    def _report(self, epoch: int, row: dict[str, float], bar) -> None:
        if self.on_epoch_end is not None:
            self.on_epoch_end(epoch, dict(row))
        mlflow = sys.modules.get("mlflow")  # never imported here: only a caller that uses MLflow has a run
        if mlflow is not None and mlflow.active_run() is not None:
            mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        if bar:
            summary = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch")
            bar.console.print(f"{self.config.label} {epoch}/{self.config.epochs}  {summary}")

    def _save_checkpoint(self, path: Path, run: _RunState, generator: torch.Generator, fingerprint: str) -> None:
        state = {
            "config": asdict(self.config),
            "data": fingerprint,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "run": vars(run),
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "batches": generator.get_state(),
                "augment": None if self._augment_generator is None else self._augment_generator.get_state(),
            },
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:  # write aside, then rename: an interruption leaves the previous last.pt whole
            with open(tmp, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def _load_checkpoint(self, path: Path, generator: torch.Generator, fingerprint: str) -> _RunState | None:
        # Our own file, and it holds NumPy/Python RNG states, which the weights-only unpickler refuses.
        # On the CPU first: RNG states must stay CPU tensors; load_state_dict moves the rest.
        state = torch.load(path, map_location="cpu", weights_only=False)
        if len(state["run"]["history"]) >= self.config.epochs or state["run"]["stopped_early"]:
            return None  # a finished run: training again means training anew, not reusing its weights
        _check_resumable(state, self.config, fingerprint, path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler.is_enabled() and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and len(rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["cuda"])
        generator.set_state(rng["batches"])
        if self._augment_generator is not None and rng.get("augment") is not None:
            self._augment_generator.set_state(rng["augment"])
        return _RunState(**state["run"])

    @property
    def _augment_generator(self) -> torch.Generator | None:
        """The random source of the augmentation, when it has one: a resumed run must continue it."""
        generator = getattr(self.train_transform, "generator", None)
        return generator if isinstance(generator, torch.Generator) else None


class TorchClassifier(ClassifierMixin, ModelAdapter):
    """A torch classifier in the sklearn contract, trained by `Trainer`, for `evaluate` and CV.

    ``module_factory()`` builds a fresh ``nn.Module`` mapping a batch (B, ...) to logits (B, n_classes);
    it and the transforms must be picklable (module-level functions or classes, not lambdas) for
    the fitted model to pickle. ``input_transform`` (e.g. normalisation) is applied to every input,
    in fit and predict; ``train_transform`` (augmentation) only in training, before it. With a
    ``config.checkpoint_dir``, each training set and settings (config, factory, transforms) gets its
    own subfolder, so CV folds and runs with other settings never resume from each other.
    Fitted: ``classes_``, ``module_``, ``trainer_``, ``history_``.
    """

    def __init__(
        self,
        module_factory: Callable[[], nn.Module],
        config: TrainConfig,
        train_transform: Transform | None = None,
        input_transform: Transform | None = None,
    ):
        self.module_factory = module_factory
        self.config = config
        self.train_transform = train_transform
        self.input_transform = input_transform

    def fit(self, X, y) -> TorchClassifier:
        """Train a fresh module on X (n, ...) and labels y (n,); returns self."""
        X, y = check_X_y(X, y, allow_nd=True)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        config = self.config
        if config.checkpoint_dir is not None:
            data = _fingerprint(_as_tensor(X), torch.as_tensor(y_index))[:16]
            folder = Path(config.checkpoint_dir) / f"{data}-{self._settings_hash()}"
            config = replace(config, checkpoint_dir=str(folder))
        seed_everything(config.seed)  # the same initial weights for the same seed
        self.module_ = self.module_factory()
        self.trainer_ = Trainer(
            self.module_, config, train_transform=self.train_transform, input_transform=self.input_transform
        )
        self.history_ = self.trainer_.fit(X, y_index).history
        return self

    def _settings_hash(self) -> str:
        """What else the weights depend on: the settings, the model factory and the transforms."""
        settings = (replace(self.config, checkpoint_dir=None, label=""), self.module_factory,
                    self.train_transform, self.input_transform)
        return hashlib.blake2b(repr(settings).encode(), digest_size=8).hexdigest()

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns in the order of ``classes_``."""
        check_is_fitted(self, "module_")
        X = check_array(X, allow_nd=True)
        device = pick_device(self.config.device)
        model = self.module_.to(device, memory_format=_memory_format(self.config))
        dtype = autocast_dtype(device, self.config)
        logits = _predict_logits(model, _as_tensor(X), device, self.input_transform, dtype,
                                 channels_last=self.config.channels_last)
        return torch.softmax(logits, dim=-1).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """Most probable class per row, shape (n,)."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __getstate__(self):
        # A fitted model pickles as its weights on the CPU; the trainer (optimizer moments, callbacks)
        # is training state and stays behind.
        state = dict(super().__getstate__())  # on Python >= 3.11 that is self.__dict__ itself
        state.pop("trainer_", None)
        if "module_" in state:
            state["module_"] = copy.deepcopy(self.module_).cpu()
        return state


def _predict_logits(model, X, device, input_transform, amp_dtype, batch_size: int = 1024,
                    channels_last: bool = False) -> Tensor:
    """Eval-mode outputs for X (n, ...) on ``device``, batch by batch: (n, C) float32."""
    model.eval()
    outputs = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        for start in range(0, len(X), batch_size):
            xb = X[start : start + batch_size].to(device, non_blocking=True)
            outputs.append(model(_layout(_apply(input_transform, xb), channels_last)).float())
    return torch.cat(outputs)


def _build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _build_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total_steps)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return None


def _steps_per_epoch(n: int, batch_size: int) -> int:
    full, rest = divmod(n, batch_size)
    return full + (rest > 1 or full == 0)  # matches _batch_indices


def _batch_indices(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> list[Tensor]:
    order = torch.randperm(n, generator=generator).to(device)  # (n,)
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()  # a batch of one breaks BatchNorm in training mode; one sample sits out this epoch
    return batches


def _check_resumable(state: dict, config: TrainConfig, fingerprint: str, path: Path) -> None:
    saved, current = state["config"], asdict(config)
    changed = [k for k in current if k not in _RESUMABLE_CHANGES and saved.get(k) != current[k]]
    if config.scheduler is not None and saved["epochs"] != config.epochs:
        changed.append("epochs (the learning-rate schedule spans them all)")
    if changed:
        raise ValueError(
            f"{path} was written by a run with different {', '.join(changed)}; "
            "resume with the same settings, or give this run its own checkpoint_dir"
        )
    if state["data"] != fingerprint:
        raise ValueError(f"{path} was written for different training data; give this run its own checkpoint_dir")


def _fingerprint(*tensors: Tensor) -> str:
    """A hash of the tensors' dtypes, shapes and bytes: which data a checkpoint belongs to."""
    digest = hashlib.blake2b(digest_size=16)
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _as_tensor(X) -> Tensor:
    X = X.detach() if isinstance(X, Tensor) else torch.as_tensor(np.asarray(X))
    return X.float() if X.dtype == torch.float64 else X  # NumPy's default float64 vs torch's float32 weights


def _as_targets(y) -> Tensor:
    y = _as_tensor(y)
    return y if y.is_floating_point() else y.long()  # class labels: what cross-entropy indexes with


def _apply(transform: Transform | None, x: Tensor) -> Tensor:
    return x if transform is None else transform(x)


def _is_classification(logits: Tensor, y: Tensor) -> bool:
    return not y.is_floating_point() and logits.shape[:-1] == y.shape


def _correct(logits: Tensor, y: Tensor) -> Tensor:
    """Number of argmax hits, as a device scalar; 0 when the outputs are not class scores for y."""
    if not _is_classification(logits, y):
        return torch.zeros((), device=logits.device)
    return (logits.argmax(dim=-1) == y).sum()


def autocast_dtype(device: torch.device, config: TrainConfig) -> torch.dtype | None:
    """The autocast dtype for ``config`` on ``device``, or None for full float32."""
    if device.type == "cuda" and config.amp:
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and config.cpu_bf16 and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX) that oneDNN uses for autocast."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's probes, private in 2.x
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def _memory_format(config: TrainConfig) -> torch.memory_format:
    return torch.channels_last if config.channels_last else torch.preserve_format


def _layout(x: Tensor, channels_last: bool) -> Tensor:
    """A 4-D batch in channels-last memory layout when asked (a copy only when that changes it)."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


def _progress_bar() -> Progress | None:
    """A bar (epoch i/n, steps, loss, samples/s) on stderr when it is a terminal, else None."""
    if not sys.stderr.isatty():
        return None
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[speed]:,.0f} samples/s"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    bar.add_task("", total=None, loss=math.nan, speed=0.0)
    return bar
