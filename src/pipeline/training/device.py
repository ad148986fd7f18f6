"""Where and in what precision a model trains: the device, autocast dtype, memory layout and seeds."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pipeline.training.config import TrainConfig


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


def memory_format(config: TrainConfig) -> torch.memory_format:
    """The layout of the model's weights: channels-last when the config asks, else unchanged."""
    return torch.channels_last if config.channels_last else torch.preserve_format


def to_layout(x: Tensor, channels_last: bool) -> Tensor:
    """A 4-D batch in channels-last memory layout when asked (a copy only when that changes it)."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


def to_device(batch: Any, device: torch.device) -> Any:
    """The tensors of ``batch`` (a tensor, or tuples, lists and dicts of them) on ``device``.

    From the CPU to a GPU the copy goes through pinned memory without blocking, so it overlaps
    the GPU's work on the batch before; elsewhere ``.to`` is a no-op or a plain copy.
    """
    if isinstance(batch, Tensor):
        if device.type == "cuda" and batch.device.type == "cpu":
            return batch.pin_memory().to(device, non_blocking=True)
        return batch.to(device)
    if isinstance(batch, tuple | list):
        items = [to_device(item, device) for item in batch]
        return type(batch)(*items) if hasattr(batch, "_fields") else type(batch)(items)  # a namedtuple, or not
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    return batch


_one_thread_lock = threading.Lock()
_one_thread_users, _threads_before = 0, 1


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one CPU thread inside the block, the previous setting restored after it.

    A sequence model runs one small matrix product per timestep or token; two threads synchronise
    at every one of them and, on a busy 2-core machine, spend more time waiting than computing
    (Unit 9's quick char LSTM: 4 s of CPU on one thread, over a minute on two; the paper's quick
    seq2seq run 30x slower).
    """
    global _one_thread_users, _threads_before
    # Units of the whole path may overlap in threads of one process, and torch's thread count is
    # process-wide: the first block in sets one thread, the last one out restores the setting, so
    # no block's thread count changes under it.
    with _one_thread_lock:
        if _one_thread_users == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
        _one_thread_users += 1
    try:
        yield
    finally:
        with _one_thread_lock:
            _one_thread_users -= 1
            if _one_thread_users == 0:
                torch.set_num_threads(_threads_before)
