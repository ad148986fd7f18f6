"""Sequence-to-sequence training in the shared loop: teacher forcing, then greedy decoding.

Batches are ``(src (B, S), tgt (B, T+1))`` of token ids (`pipeline.models.transformer`: 0 pads,
1 begins, 2 ends). With teacher forcing the decoder reads the true target shifted right,
``tgt[:, :-1]`` = ``<s> y₁ … y_n``, and learns to predict ``tgt[:, 1:]`` = ``y₁ … y_n </s>`` at every
position at once; padding is left out of the loss and the metrics. At test time there is no true
target to read: `greedy_decode` feeds the model its own previous choices.

A sequence is right under teacher forcing (every non-pad argmax equals the target) exactly when
greedy decoding reproduces it, so the validation metric ``exact_match`` is greedy exact match
without the decoding loop (argmax ties aside).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.models.transformer import PAD
from pipeline.training.config import TrainConfig
from pipeline.training.steps import Step

if TYPE_CHECKING:
    from pipeline.training.loop import Trainer

ADAM_BETAS, ADAM_EPS = (0.9, 0.98), 1e-9  # the paper's Adam settings


class Seq2SeqStep(Step):
    """Teacher forcing for an encoder–decoder ``model(src, tgt_in) -> logits (B, T, V)``.

    Loss: cross-entropy over the non-pad target positions with ``config.label_smoothing`` (the
    paper's ε = 0.1). Optimizer: Adam with the paper's β = (0.9, 0.98), ε = 1e-9 (and
    ``config.weight_decay``); the learning-rate schedule is the config's (``scheduler="noam"``).
    ``predict_step`` decodes greedily up to ``max_len`` target positions.
    """

    def __init__(self, max_len: int):
        self.max_len = max_len

    def configure_optimizers(self, model: nn.Module, config: TrainConfig) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(model.parameters(), lr=config.lr, betas=ADAM_BETAS, eps=ADAM_EPS,
                                 weight_decay=config.weight_decay)]

    def training_step(self, trainer: Trainer, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        src, tgt = batch  # (B, S), (B, T+1)
        logits = trainer.model(src, tgt[:, :-1])  # (B, T, V)
        loss = sequence_loss(logits, tgt[:, 1:], trainer.config.label_smoothing)
        trainer.optimize(loss)
        return {"loss": loss.detach(), **sequence_metrics(logits.detach(), tgt[:, 1:])}

    def validation_step(self, trainer: Trainer, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        src, tgt = batch
        logits = trainer.model(src, tgt[:, :-1]).float()
        return {"loss": sequence_loss(logits, tgt[:, 1:], trainer.config.label_smoothing),
                **sequence_metrics(logits, tgt[:, 1:])}

    def predict_step(self, trainer: Trainer, x: Tensor) -> Tensor:
        return trainer.model.greedy_decode(x, self.max_len)  # (B, max_len)


def sequence_loss(logits: Tensor, target: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy of logits (B, T, V) against ids (B, T), padding left out."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1),
                           ignore_index=PAD, label_smoothing=label_smoothing)


def sequence_metrics(logits: Tensor, target: Tensor) -> dict[str, Tensor]:
    """``token_accuracy`` (share of non-pad positions whose argmax is right) and ``exact_match``
    (share of sequences right at every non-pad position), under teacher forcing."""
    real = target != PAD  # (B, T)
    hit = (logits.argmax(dim=-1) == target) & real
    return {"token_accuracy": hit.sum() / real.sum().clamp(min=1),
            "exact_match": (hit.sum(dim=1) == real.sum(dim=1)).float().mean()}


def exact_match_scores(predicted: list[str], expected: list[str]) -> dict[str, float]:
    """Decoded strings against the true ones: ``exact_match`` (whole string right),
    ``char_accuracy`` (share of the true characters matched position by position; a missing or
    extra character counts against it) and ``length_accuracy`` (right length)."""
    if len(predicted) != len(expected):
        raise ValueError(f"{len(predicted)} predictions for {len(expected)} targets")
    exact = np.mean([p == e for p, e in zip(predicted, expected, strict=True)])
    chars = sum(sum(a == b for a, b in zip(p, e, strict=False)) for p, e in zip(predicted, expected, strict=True))
    total = sum(max(len(p), len(e)) for p, e in zip(predicted, expected, strict=True))
    lengths = np.mean([len(p) == len(e) for p, e in zip(predicted, expected, strict=True)])
    return {"exact_match": float(exact), "char_accuracy": chars / max(total, 1), "length_accuracy": float(lengths)}


