"""Checkpoints: the whole run saved after every epoch, resumed by the next fit with the same settings.

``settings_key`` names a run's folder by what its weights depend on, from stable names and values
only (qualified names, dataclass fields, partial arguments, generator states; never a ``repr``
holding a memory address), so a fresh process finds the folder an interrupted one left.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import pickle
import sys
import types
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pipeline.training.callbacks import Callback
from pipeline.training.config import TrainConfig
from pipeline.training.data import fingerprint

# Settings a resumed run may change; any other difference means the checkpoint is another run's.
RESUMABLE_CHANGES = ("epochs", "early_stopping_patience", "checkpoint_dir", "device", "label")


class Checkpoint(Callback):
    """Saves ``folder/last.pt`` after every epoch; ``fit`` resumes from it when it is there.

    The file holds tensors and plain values only and is read with ``torch.load(weights_only=True)``
    (``load_checkpoint``): a checkpoint holding anything else (a tampered file) is refused.

    A checkpoint from other settings (see ``RESUMABLE_CHANGES``) or other training data raises
    ValueError (an iterable of batches cannot be checked: give such a run its own folder). A
    finished run's checkpoint is not reused: training again trains anew and overwrites it. The
    loop runs checkpoints after every other callback, so they save the epoch's final state.
    """

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / "last.pt"

    def on_fit_start(self, trainer):
        self.fingerprint = trainer.train_batches.fingerprint()
        if not self.path.exists():
            return
        state = load_checkpoint(self.path)
        if len(state["history"]) >= trainer.config.epochs or state["stopped"]:
            return  # a finished run: training again means training anew, not reusing its weights
        _check_resumable(state, trainer.config, self.fingerprint, self.path)
        trainer.load_state_dict(state)
        trainer.resumed_from = len(trainer.history)
        # on stderr (stdout stays a script's own): a flow with log_prints puts it in the run's log
        print(f"{trainer.config.label}: resumed from epoch {trainer.resumed_from}/{trainer.config.epochs} "
              f"of checkpoint {self.path}", file=sys.stderr, flush=True)

    def on_epoch_end(self, trainer, epoch, row):
        state = {**trainer.state_dict(), "data": self.fingerprint}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:  # write aside, then rename: an interruption leaves the previous last.pt whole
            with open(tmp, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's content, read by the weights-only unpickler: tensors, plain Python values and
    containers only, never code (a file with any other object, e.g. a ``__reduce__`` payload, is
    refused with ``pickle.UnpicklingError``). On the CPU first: RNG states must stay CPU tensors;
    ``load_state_dict`` moves the rest."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise pickle.UnpicklingError(
            f"{path} holds objects other than tensors and plain values, refused (a tampered or "
            f"foreign checkpoint; delete it to train anew): {str(error).splitlines()[0]}") from error


def _check_resumable(state: dict, config: TrainConfig, data: str | None, path: Path) -> None:
    saved, current = state["config"], asdict(config)
    changed = [k for k in current if k not in RESUMABLE_CHANGES and saved.get(k) != current[k]]
    if config.scheduler is not None and saved["epochs"] != config.epochs:
        changed.append("epochs (the learning-rate schedule spans them all)")
    if changed:
        raise ValueError(
            f"{path} was written by a run with different {', '.join(changed)}; "
            "resume with the same settings, or give this run its own checkpoint_dir"
        )
    if state["data"] != data:
        raise ValueError(f"{path} was written for different training data; give this run its own checkpoint_dir")


def settings_key(*settings: Any) -> str:
    """A 16-hex-digit hash of ``settings``, the same in every process and on every run."""
    return hashlib.blake2b(stable_repr(settings).encode(), digest_size=8).hexdigest()


def stable_repr(obj: Any) -> str:
    """A text for ``obj`` from stable names and values only, recursively.

    Functions and classes by qualified name, ``functools.partial`` by function, args and keywords,
    dataclasses and other objects by class and fields, tensors and arrays by their bytes, torch
    generators by their state. Raises TypeError for what has none of these.
    """
    if obj is None or isinstance(obj, bool | int | float | str | bytes):
        return repr(obj)
    if isinstance(obj, torch.dtype | torch.device):
        return str(obj)
    if isinstance(obj, Enum):
        return f"{_qualname(type(obj))}.{obj.name}"
    if isinstance(obj, list | tuple):
        return "(" + ", ".join(stable_repr(item) for item in obj) + ")"
    if isinstance(obj, dict):
        items = sorted((stable_repr(k), stable_repr(v)) for k, v in obj.items())
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    if isinstance(obj, functools.partial):
        return f"partial({stable_repr(obj.func)}, {stable_repr(obj.args)}, {stable_repr(obj.keywords)})"
    if isinstance(obj, types.MethodType):
        return f"{stable_repr(obj.__self__)}.{obj.__name__}"
    if isinstance(obj, type | types.FunctionType | types.BuiltinFunctionType):
        return _qualname(obj)
    if isinstance(obj, torch.Generator):
        return f"Generator({obj.device}, {fingerprint(obj.get_state())})"
    if isinstance(obj, Tensor | np.ndarray):
        return f"tensor({fingerprint(torch.as_tensor(obj))})"
    if dataclasses.is_dataclass(obj):
        return _qualname(type(obj)) + stable_repr({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    if hasattr(obj, "__dict__"):
        return _qualname(type(obj)) + stable_repr(vars(obj))
    raise TypeError(f"no stable description of {type(obj).__qualname__} for a checkpoint folder's key; "
                    "use functions, classes, partials, dataclasses or plain values")


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None)}.{obj.__qualname__}"
