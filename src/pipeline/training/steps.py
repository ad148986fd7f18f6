"""What one batch does: the part of training a unit supplies; the loop (`Trainer`) does the rest.

A step gets the trainer, for ``trainer.model``, ``.device``, ``.config``, ``.optimizers`` and
``trainer.optimize(loss, optimizer)``, which does a whole update: backward (scaled for fp16),
gradient clipping, the optimizer and its schedule. The loop runs ``training_step`` under autocast
with the model in training mode, and ``validation_step`` and ``predict_step`` in eval and
inference mode; batches arrive on the device. Metrics are batch means, as tensors: the loop averages
them over the epoch without waiting for the device, and prefixes them ``train_`` and ``val_``.

A GAN's step calls ``optimize`` twice per batch (discriminator, then generator, each with its
optimizer from ``configure_optimizers``); a truncated-BPTT step keeps the hidden state in
``self`` between batches, detached, and drops it in ``on_epoch_start``. State that must survive a
resume from a checkpoint goes in ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.training.config import TrainConfig, build_optimizer

if TYPE_CHECKING:
    from pipeline.training.loop import Trainer

Transform = Callable[[Tensor], Tensor]


class Step:
    """The work of one batch. Override ``training_step``; the other hooks have defaults."""

    def configure_optimizers(self, model: nn.Module, config: TrainConfig) -> list[torch.optim.Optimizer]:
        """The optimizers, built at the start of each fit: one over all parameters, by ``config``."""
        return [build_optimizer(model.parameters(), config)]

    def on_epoch_start(self, trainer: Trainer) -> None:
        """Before an epoch's first batch: reset what is carried from batch to batch."""

    def training_step(self, trainer: Trainer, batch: Any) -> dict[str, Tensor]:
        """Learn from one batch (calling ``trainer.optimize``); returns its metrics, e.g. {"loss": loss}."""
        raise NotImplementedError(f"{type(self).__name__} must define training_step")

    def validation_step(self, trainer: Trainer, batch: Any) -> dict[str, Tensor]:
        """Metrics of one validation batch; the model is in eval mode, with no gradients."""
        raise NotImplementedError(f"{type(self).__name__} has no validation_step: fit it without validation data")

    def predict_step(self, trainer: Trainer, x: Tensor) -> Tensor:
        """The model's outputs for a batch of inputs (B, ...)."""
        return trainer.model(trainer.layout(x))

    def state_dict(self) -> dict[str, Any]:
        """The step's own state for a checkpoint (e.g. a random generator, a carried hidden state)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved."""


class ClassificationStep(Step):
    """Supervised learning on ``(x, y)`` batches: ``loss_fn(model(x), y)`` and, for class scores, accuracy.

    ``loss_fn`` must return the batch mean; None is cross-entropy with ``config.label_smoothing``.
    ``train_transform`` (augmentation) and then ``input_transform`` (e.g. uint8 -> normalised float;
    also applied to validation and prediction inputs) run per batch on the device. A random
    generator in ``train_transform.generator`` is checkpointed, so a resumed run augments on as
    if never stopped.
    """

    def __init__(self, loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
                 train_transform: Transform | None = None, input_transform: Transform | None = None):
        self.loss_fn = loss_fn
        self.train_transform = train_transform
        self.input_transform = input_transform

    def training_step(self, trainer: Trainer, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, y = batch  # (B, ...), (B,)
        if self.train_transform is not None:
            x = self.train_transform(x)
        logits = self.predict_step(trainer, x)  # (B, C)
        loss = self._loss(trainer, logits, y)
        trainer.optimize(loss)
        return {"loss": loss, **_accuracy(logits, y)}

    def validation_step(self, trainer: Trainer, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, y = batch  # (B, ...), (B,)
        logits = self.predict_step(trainer, x).float()  # (B, C)
        return {"loss": self._loss(trainer, logits, y), **_accuracy(logits, y)}

    def predict_step(self, trainer: Trainer, x: Tensor) -> Tensor:
        if self.input_transform is not None:
            x = self.input_transform(x)
        return trainer.model(trainer.layout(x))

    def state_dict(self) -> dict[str, Any]:
        generator = self._augment_generator
        return {} if generator is None else {"augment": generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self._augment_generator is not None and "augment" in state:
            self._augment_generator.set_state(state["augment"])

    def _loss(self, trainer: Trainer, logits: Tensor, y: Tensor) -> Tensor:
        if self.loss_fn is None:
            return F.cross_entropy(logits, y, label_smoothing=trainer.config.label_smoothing)
        return self.loss_fn(logits, y)

    @property
    def _augment_generator(self) -> torch.Generator | None:
        generator = getattr(self.train_transform, "generator", None)
        return generator if isinstance(generator, torch.Generator) else None


def _accuracy(logits: Tensor, y: Tensor) -> dict[str, Tensor]:
    """{"accuracy": share of argmax hits} when the outputs are class scores for y (B, ...), else {}."""
    if y.is_floating_point() or logits.shape[:-1] != y.shape:
        return {}
    return {"accuracy": (logits.argmax(dim=-1) == y).float().mean()}
