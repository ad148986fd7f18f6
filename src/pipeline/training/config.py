"""How to train: `TrainConfig`, and the optimizer and learning-rate schedule it describes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

import torch

OPTIMIZERS = ("sgd", "adamw")
SCHEDULERS = ("onecycle", "cosine", "noam")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Frozen, so it is hashable and `sklearn.base.clone` copies it as one value.

    ``scheduler`` steps with every optimizer step: "onecycle" peaks at ``lr``, "cosine" anneals
    from ``lr`` to 0, "noam" is the Transformer paper's warm-up then inverse square root,
    ``lr · min(s^-0.5, s · w^-1.5) · w^0.5`` at update s (from 1) with w = ``warmup_steps``: a linear
    rise to ``lr`` at update w, then ``lr · sqrt(w / s)`` (the paper's ``d_model^-0.5 · min(...)`` is
    ``lr = (d_model · w)^-0.5``). ``amp`` is mixed precision on CUDA (bf16 where supported, else fp16 with a
    GradScaler). ``cpu_bf16`` is bf16 autocast on the CPU, only where the CPU computes bf16
    natively (AVX512-BF16 or AMX; elsewhere it would be emulated and slower): about twice as fast
    for convolutions. ``channels_last`` stores a conv net's weights and 4-D batches as (N, H, W, C)
    in memory, the layout oneDNN and tensor cores convolve fastest; shapes and results are unchanged.
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
    warmup_steps: int = 4000
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
        if self.warmup_steps < 1:
            raise ValueError(f"warmup_steps must be >= 1, got {self.warmup_steps}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


def build_optimizer(params: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """``config.optimizer`` over ``params``, with its lr, momentum (SGD) and weight decay."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int | None):
    """``config.scheduler`` over all ``config.epochs * steps_per_epoch`` steps, or None without one."""
    if config.scheduler is None:
        return None
    if config.scheduler == "noam":  # needs no run length: it only warms up, then decays forever
        return torch.optim.lr_scheduler.LambdaLR(optimizer, partial(noam_factor, warmup_steps=config.warmup_steps))
    if steps_per_epoch is None:
        raise ValueError(f"scheduler={config.scheduler!r} spans the whole run, so it needs the number of "
                         "batches per epoch: pass batches with a len() (a DataLoader, a list), or no scheduler")
    total_steps = config.epochs * steps_per_epoch
    if config.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)


def noam_factor(step: int, warmup_steps: int) -> float:
    """The "noam" multiplier of ``lr`` after ``step`` updates (LambdaLR counts from 0; the paper from 1):
    ``min(s^-0.5, s · w^-1.5) · w^0.5`` with s = step + 1, peaking at 1 when s = w."""
    s = step + 1
    return min(s ** -0.5, s * warmup_steps ** -1.5) * warmup_steps ** 0.5
