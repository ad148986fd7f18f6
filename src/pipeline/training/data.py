"""Batches for the loop: rows of tensors (X, y), or whatever an iterable such as a DataLoader yields.

Both give ``epoch(generator)``, the batches of one pass already on the device, and ``len()``, the
number of batches per epoch (which a learning-rate schedule needs to know in advance).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pipeline.training.device import to_device

# A training set moves to the GPU whole when it takes at most this share of the free memory; the
# rest is for the model, its activations and optimizer state. A larger one is streamed.
RESIDENT_FRACTION = 0.25


class TensorBatches:
    """Mini-batches of the rows of tensors ``(X (n, ...), y (n, ...))``, shuffled when training.

    With ``shuffle``, each epoch draws a new order from the generator it is given (on the CPU, so
    the same on any device) and leaves out a last batch of one row, which would break BatchNorm.
    The tensors live on the device whole when they fit there (always on the CPU), else stay in
    CPU memory and each batch is gathered there and copied over, overlapping the GPU's work.
    """

    def __init__(self, tensors: tuple[Tensor, ...], batch_size: int, device: torch.device, shuffle: bool):
        sizes = {len(t) for t in tensors}
        if len(sizes) != 1 or 0 in sizes:
            raise ValueError(f"the inputs need the same, non-zero number of rows; got {[len(t) for t in tensors]}")
        self.n, self.batch_size, self.device, self.shuffle = sizes.pop(), batch_size, device, shuffle
        self.inputs = tensors  # as given, for the fingerprint
        self.resident = fits_on_device(sum(t.nbytes for t in tensors), device)
        self.tensors = tuple(t.to(device) for t in tensors) if self.resident else tensors

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        if not self.shuffle:
            return full + (rest > 0)
        return full + (rest > 1 or full == 0)  # a last batch of one is left out, unless it is the only one

    def epoch(self, generator: torch.Generator | None = None) -> Iterator[tuple[Tensor, ...]]:
        """One pass: tuples of batch rows ``(X[idx] (B, ...), y[idx] (B, ...))`` on the device."""
        if self.shuffle:
            order = torch.randperm(self.n, generator=generator).to(self.tensors[0].device)  # (n,)
            rows = list(order.split(self.batch_size))
            if len(rows) > 1 and len(rows[-1]) == 1:
                rows.pop()
        else:
            rows = [slice(start, start + self.batch_size) for start in range(0, self.n, self.batch_size)]
        for idx in rows:
            batch = tuple(t[idx] for t in self.tensors)
            yield batch if self.resident else to_device(batch, self.device)

    def fingerprint(self) -> str:
        """Which data this is, for a checkpoint to check: see `fingerprint`."""
        return fingerprint(*self.inputs)


class LoaderBatches:
    """The batches an iterable yields (a DataLoader, a list of batches), read anew each epoch.

    The loop does not shuffle them: the iterable decides the order (a DataLoader with
    ``shuffle=True`` draws it from torch's global generator, which the loop seeds and checkpoints).
    """

    def __init__(self, loader: Iterable, device: torch.device):
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)  # TypeError for an iterable without one; see `steps_per_epoch`

    def epoch(self, generator: torch.Generator | None = None) -> Iterator[Any]:
        for batch in self.loader:
            yield to_device(batch, self.device)

    def fingerprint(self) -> None:
        """None: an iterable's data cannot be checked without reading it all."""
        return None


def make_batches(data, targets, batch_size: int, device: torch.device, shuffle: bool):
    """`TensorBatches` of (data, targets) for arrays or tensors, `LoaderBatches` for any other iterable.

    ``targets`` None gives one-tensor batches ``(X[idx],)``, as for data without labels.
    """
    if is_array(data):
        tensors = (as_tensor(data),) if targets is None else (as_tensor(data), as_targets(targets))
        return TensorBatches(tensors, batch_size, device, shuffle)
    if targets is not None:
        raise ValueError("targets go with arrays or tensors; an iterable of batches carries its own")
    return LoaderBatches(data, device)


def is_array(data) -> bool:
    """Whether ``data`` is rows (a tensor, an array, a DataFrame) rather than an iterable of batches."""
    return isinstance(data, Tensor) or hasattr(data, "__array__")


def steps_per_epoch(batches) -> int | None:
    """The number of batches per epoch, or None for an iterable without a length."""
    try:
        return len(batches)
    except TypeError:
        return None


def batch_rows(batch: Any) -> int:
    """The number of rows in a batch: the length of its first tensor."""
    while not isinstance(batch, Tensor):
        batch = next(iter(batch.values() if isinstance(batch, dict) else batch))
    return len(batch)


def fingerprint(*tensors: Tensor) -> str:
    """A hash of the tensors' dtypes, shapes and bytes: which data a checkpoint belongs to."""
    digest = hashlib.blake2b(digest_size=16)
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    """Whether ``nbytes`` of data may live on ``device`` whole (see RESIDENT_FRACTION)."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= RESIDENT_FRACTION * free


def as_tensor(X) -> Tensor:
    """X as a tensor sharing its memory where it can; float64 becomes float32, torch's weight dtype."""
    if not isinstance(X, Tensor):
        X = np.asarray(X)
        X = torch.as_tensor(X if X.flags.writeable else X.copy())  # torch warns on read-only memory
    X = X.detach()
    return X.float() if X.dtype == torch.float64 else X


def as_targets(y) -> Tensor:
    """Targets as a tensor: integer labels as int64, what cross-entropy indexes with; floats as `as_tensor`."""
    y = as_tensor(y)
    return y if y.is_floating_point() else y.long()
