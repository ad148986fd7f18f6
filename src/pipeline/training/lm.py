"""Language-model training in the shared loop: truncated backpropagation through time (TBPTT).

The token stream is cut into ``batch_size`` long rows laid side by side (`lm_batches`); batch k
holds columns ``[k*T, (k+1)*T)`` of every row, so row b of batch k+1 continues row b of batch k.
`LanguageModelStep` runs the model on one such window and back-propagates through its T steps
only, but hands the final hidden state (detached: the gradient stops at the window's edge, the
information does not) to the next window. That is how an LSTM trained on 100-character windows can
still use context from earlier windows. A model whose forward returns ``state`` None (an attention
model with a fixed context) trains with the same step: nothing is carried.

``evaluate_lm`` scores a stream in nats per character (the mean cross-entropy; divide by ln 2
for bits), carrying the state across windows the same way; ``sample`` generates text with a
temperature.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.training.steps import Step

if TYPE_CHECKING:
    from pipeline.data.chars import CharVocab
    from pipeline.training.loop import Trainer


def detach_state(state: Any) -> Any:
    """The state with every tensor detached (a tensor, a tuple/list of them, or None)."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return type(state)(detach_state(s) for s in state)


def _forward(model: nn.Module, x: Tensor, state: Any) -> tuple[Tensor, Any]:
    """``model(x, state)`` as (logits, state); a model returning only logits carries no state."""
    out = model(x, state) if state is not None else model(x)
    return out if isinstance(out, tuple) else (out, None)


def _stream_rows(ids: np.ndarray, batch_size: int) -> tuple[Tensor, Tensor]:
    """Inputs and next-token targets as ``batch_size`` contiguous rows, each (batch_size, L)."""
    ids = np.asarray(ids, dtype=np.int64).ravel()
    length = (len(ids) - 1) // batch_size
    if length < 1:
        raise ValueError(f"{len(ids)} tokens are too few for {batch_size} rows of at least one step")
    x = torch.from_numpy(ids[: batch_size * length].copy()).view(batch_size, length)
    y = torch.from_numpy(ids[1: batch_size * length + 1].copy()).view(batch_size, length)
    return x, y


def _windows(x: Tensor, y: Tensor, seq_len: int, keep_partial: bool) -> Iterator[tuple[Tensor, Tensor]]:
    length = x.shape[1]
    stop = length if keep_partial else length - length % seq_len
    for start in range(0, stop, seq_len):
        yield x[:, start: start + seq_len], y[:, start: start + seq_len]


def lm_batches(ids: np.ndarray, batch_size: int, seq_len: int) -> list[tuple[Tensor, Tensor]]:
    """Batches ``(x (B, T), y (B, T))`` of int64 ids for TBPTT, y being x shifted by one token.

    The stream is cut into B rows of L = (len(ids) - 1) // B tokens; batch k is columns
    [k*T, (k+1)*T) of every row, so row b continues across consecutive batches. A last window
    shorter than T is left out (every batch has the same shape); `evaluate_lm` scores it too.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    x, y = _stream_rows(ids, batch_size)
    batches = list(_windows(x, y, seq_len, keep_partial=False))
    if not batches:
        raise ValueError(f"{len(ids)} tokens give rows of {x.shape[1]} steps, fewer than seq_len={seq_len}")
    return batches


class LanguageModelStep(Step):
    """Next-token cross-entropy on ``(x (B, T), y (B, T))`` windows, with the hidden state carried.

    The state returned for a window is detached and passed with the next window (consecutive
    batches from `lm_batches`); it is dropped at the start of each epoch, and validation carries
    its own from the first validation window on. Metrics: ``loss`` in nats per token, and
    ``bits`` per token.
    """

    def __init__(self):
        self.state: Any = None
        self.val_state: Any = None

    def on_epoch_start(self, trainer: Trainer) -> None:
        self.state = None

    def training_step(self, trainer: Trainer, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, y = batch  # (B, T), (B, T)
        self.val_state = None  # validation after this epoch starts its streams afresh
        logits, state = _forward(trainer.model, x, self.state)  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        trainer.optimize(loss)
        self.state = detach_state(state)
        return {"loss": loss.detach(), "bits": loss.detach() / math.log(2)}

    def validation_step(self, trainer: Trainer, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, y = batch
        logits, self.val_state = _forward(trainer.model, x, self.val_state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        return {"loss": loss, "bits": loss / math.log(2)}

    def predict_step(self, trainer: Trainer, x: Tensor) -> Tensor:
        return _forward(trainer.model, x, None)[0]


def _device_of(model: nn.Module, device) -> torch.device:
    if device is not None:
        return torch.device(device)
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def evaluate_lm(model: nn.Module, ids: np.ndarray, batch_size: int, seq_len: int, device=None) -> float:
    """Mean cross-entropy in nats per token of ``model`` on the stream ``ids``.

    The stream is laid out as in `lm_batches` (partial last window included), the state carried
    across windows when the model returns one; every predicted token weighs the same. The model is
    put back in the mode it was in.
    """
    device = _device_of(model, device)
    x_rows, y_rows = _stream_rows(ids, batch_size)
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    try:
        with torch.inference_mode():
            for x, y in _windows(x_rows, y_rows, seq_len, keep_partial=True):
                logits, state = _forward(model, x.to(device), state)
                total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                               y.to(device).reshape(-1), reduction="sum"))
                count += y.numel()
    finally:
        model.train(was_training)
    return total / count


def _context_limit(model: nn.Module) -> int | None:
    """The longest context a stateless model takes (``block_size``/``max_len``/``context_length``)."""
    for name in ("block_size", "max_len", "context_length"):
        value = getattr(model, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def sample(model: nn.Module, vocab: CharVocab, prompt: str, n: int, temperature: float = 1.0,
           seed: int = 0) -> str:
    """``prompt`` followed by ``n`` characters drawn one at a time from the model.

    Each next character is drawn from ``softmax(logits / temperature)`` with a generator seeded by
    ``seed`` (the same call gives the same text); low temperatures pick the likely characters,
    1.0 samples the model's own distribution, 0 takes the most likely one. A recurrent model reads
    the prompt once and then one character per step, carrying its state; a stateless one rereads
    its context (cut to its ``block_size``) each step.
    """
    if not prompt:
        raise ValueError("sampling needs a prompt of at least one character")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    device = _device_of(model, None)
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    ids = [int(i) for i in vocab.encode(prompt)]
    limit = _context_limit(model)
    try:
        with torch.inference_mode():
            context = ids if limit is None else ids[-limit:]
            logits, state = _forward(model, torch.tensor([context], device=device), None)
            for _ in range(n):
                last = logits[0, -1].float().cpu()  # (V,)
                if temperature == 0:
                    next_id = int(last.argmax())
                else:
                    probs = torch.softmax(last / temperature, dim=-1)
                    next_id = int(torch.multinomial(probs, 1, generator=generator))
                ids.append(next_id)
                if state is not None:
                    logits, state = _forward(model, torch.tensor([[next_id]], device=device), state)
                else:
                    context = ids if limit is None else ids[-limit:]
                    logits, _ = _forward(model, torch.tensor([context], device=device), None)
    finally:
        model.train(was_training)
    return vocab.decode(ids)
