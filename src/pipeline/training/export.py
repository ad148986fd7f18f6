"""Torch models stored without pickle: safetensors weights and a JSON config.

Two kinds: a fitted `TorchClassifier` (the sklearn-contract classifier) and a `TorchModel`, any
other trained module (a language model, a sequence-to-sequence Transformer, a generator) with the
code that rebuilds it and a function that predicts with it. ``save_torch_model`` and
``load_torch_model`` take either.

``save_torch_classifier`` writes a folder with ``weights.safetensors`` (the module's state dict,
tensors only) and ``config.json``: the module factory and the input transform as a reference to
code (``"module:qualname"`` plus JSON arguments), the training settings, the classes and the
number of features. ``load_torch_classifier`` rebuilds the module from our installed code and
loads the weights into it; it imports only targets under ``TRUSTED_CODE_PREFIXES`` and never
unpickles anything, so a tampered folder (a pickle for weights, ``os:system`` as a factory) is
refused with ``UntrustedModelError``.

The folder is the data of an MLflow ``python_function`` model whose loader module is this one
(``_load_pyfunc``), so ``mlflow.pyfunc.load_model("models:/mlpath-unit08@champion")`` works and
loads no pickle either.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import json
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.registry import UntrustedModelError

FORMAT = "mlpath-torch-classifier/1"
MODULE_FORMAT = "mlpath-torch-module/1"
WEIGHTS, CONFIG = "weights.safetensors", "config.json"
# Where a stored model's module factory and input transform may come from.
TRUSTED_CODE_PREFIXES = ("pipeline.models.", "pipeline.augment.", "pipeline.scratch.", "torch.nn.")


def _target(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def _plain(value: Any, what: str) -> Any:
    """``value`` when JSON holds it as it is (numbers, text, bools, None, lists and dicts of them)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v, what) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, what) for k, v in value.items()}
    raise TypeError(f"{what}: {type(value).__qualname__} is not a plain JSON value; a stored torch model "
                    "needs its factory's and transform's arguments as plain values")


def describe_code(obj: Any, what: str) -> dict[str, Any] | None:
    """A JSON reference to ``obj``: a class or function, a ``functools.partial`` of one, or a
    dataclass instance (its fields as keyword arguments; a random generator is left out: at
    predict time nothing is drawn)."""
    if obj is None:
        return None
    if isinstance(obj, functools.partial):
        return {"target": _target(obj.func), "args": _plain(list(obj.args), what),
                "kwargs": _plain(dict(obj.keywords), what)}
    if isinstance(obj, type) or inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return {"target": _target(obj), "args": [], "kwargs": {}}
    if dataclasses.is_dataclass(obj):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name != "generator"}
        return {"target": _target(type(obj)), "args": [], "kwargs": _plain(fields, what), "instance": True}
    raise TypeError(f"{what}: {type(obj).__qualname__} cannot be stored as a reference to code")


def resolve_code(spec: dict[str, Any] | None, what: str) -> Any:
    """What ``describe_code`` described, imported only from ``TRUSTED_CODE_PREFIXES``."""
    if spec is None:
        return None
    target = spec.get("target") if isinstance(spec, dict) else None
    module, _, qualname = str(target).partition(":")
    if not qualname or not (module + ".").startswith(TRUSTED_CODE_PREFIXES):
        raise UntrustedModelError(f"{what}: {target!r} is not allowed; code may come from "
                                  f"{', '.join(TRUSTED_CODE_PREFIXES)} only")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        if part.startswith("_"):
            raise UntrustedModelError(f"{what}: {target!r} names a private attribute")
        obj = getattr(obj, part)
    args, kwargs = list(spec.get("args", [])), dict(spec.get("kwargs", {}))
    if spec.get("instance"):
        return obj(*args, **kwargs)
    return functools.partial(obj, *args, **kwargs) if args or kwargs else obj


def save_torch_classifier(model: Any, folder: str | os.PathLike) -> Path:
    """Write a fitted ``TorchClassifier`` to ``folder`` (created): weights and config, no pickle."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.module_.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))
    config = {
        "format": FORMAT,
        "module_factory": describe_code(model.module_factory, "module_factory"),
        "input_transform": describe_code(model.input_transform, "input_transform"),
        "size_from_data": bool(model.size_from_data),
        "train_config": _plain(asdict(replace(model.config, checkpoint_dir=None, device=None)), "config"),
        "classes": np.asarray(model.classes_).tolist(),
        "n_features_in": int(model.n_features_in_),
    }
    (folder / CONFIG).write_text(json.dumps(config, indent=2))
    return folder


def load_torch_classifier(folder: str | os.PathLike) -> Any:
    """A fitted ``TorchClassifier`` rebuilt from what ``save_torch_classifier`` wrote."""
    from pipeline.training.classifier import TorchClassifier
    from pipeline.training.config import TrainConfig

    folder = Path(folder)
    config = _read_config(folder)
    if config.get("format") != FORMAT:
        raise UntrustedModelError(f"{folder / CONFIG}: not a {FORMAT} model")
    factory = resolve_code(config["module_factory"], "module_factory")
    transform = resolve_code(config.get("input_transform"), "input_transform")
    model = TorchClassifier(factory, TrainConfig(**config["train_config"]), input_transform=transform,
                            size_from_data=bool(config["size_from_data"]))
    model.classes_ = np.asarray(config["classes"])
    model.n_features_in_ = int(config["n_features_in"])
    module = factory(model.n_features_in_, len(model.classes_)) if model.size_from_data else factory()
    module.load_state_dict(_read_weights(folder), strict=True)
    module.eval()
    model.module_ = module
    return model


class TorchModel:
    """A trained torch module that is not a classifier over rows, ready to register.

    ``factory(**kwargs)`` rebuilds the module (a class or function under ``pipeline.models.``;
    ``kwargs`` plain JSON values); ``predict(module, meta, X)`` (a function under
    ``pipeline.models.``) returns its predictions for the input rows ``X`` as an array; ``meta``
    is what prediction needs besides the weights (a vocabulary, a scaler's mean and scale), plain
    JSON. The registry stores the weights as safetensors and the rest as JSON references to code
    (``save_torch_model``), so loading it back runs no pickle.

    >>> model = TorchModel(CharLSTM(65), CharLSTM, {"vocab_size": 65}, predict_next_char, {"vocab": [...]})
    >>> model.predict(ids)  # predict_next_char(module, meta, ids): (n, T) ids -> the next id of each
    """

    def __init__(self, module: Any, factory: Any, kwargs: dict[str, Any], predict: Any,
                 meta: dict[str, Any] | None = None):
        self.module = module
        self.factory = factory
        self.kwargs = _plain(dict(kwargs), "kwargs")
        self.predict_fn = predict
        self.meta = _plain(dict(meta or {}), "meta")

    def predict(self, X: Any) -> np.ndarray:
        import torch

        self.module.eval()
        with torch.inference_mode():
            return np.asarray(self.predict_fn(self.module, self.meta, X))

    def __repr__(self) -> str:
        return f"TorchModel({_target(self.factory)}, predict={_target(self.predict_fn)})"


def save_torch_model(model: Any, folder: str | os.PathLike) -> Path:
    """A `TorchClassifier` or a `TorchModel` written to ``folder``: weights and config, no pickle."""
    if not isinstance(model, TorchModel):
        return save_torch_classifier(model, folder)
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.module.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))
    config = {"format": MODULE_FORMAT,
              "factory": describe_code(functools.partial(model.factory, **model.kwargs), "factory"),
              "predict": describe_code(model.predict_fn, "predict"), "meta": model.meta}
    (folder / CONFIG).write_text(json.dumps(config, indent=2))
    return folder


def load_torch_model(folder: str | os.PathLike) -> Any:
    """What ``save_torch_model`` wrote: a `TorchClassifier` or a `TorchModel`, rebuilt from our
    installed code (``TRUSTED_CODE_PREFIXES`` only), its weights read as safetensors."""
    folder = Path(folder)
    config = _read_config(folder)
    if config.get("format") == FORMAT:
        return load_torch_classifier(folder)
    if config.get("format") != MODULE_FORMAT:
        raise UntrustedModelError(f"{folder / CONFIG}: neither a {FORMAT} nor a {MODULE_FORMAT} model")
    factory = resolve_code(config.get("factory"), "factory")
    predict = resolve_code(config.get("predict"), "predict")
    module = factory()
    module.load_state_dict(_read_weights(folder), strict=True)
    module.eval()
    spec = config["factory"]
    return TorchModel(module, resolve_code({"target": spec["target"]}, "factory"), spec.get("kwargs", {}),
                      predict, config.get("meta") or {})


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError) as error:
        raise UntrustedModelError(f"{folder}: no readable {CONFIG} ({error})") from error
    if not isinstance(config, dict):
        raise UntrustedModelError(f"{folder / CONFIG}: not an mlpath torch model")
    return config


def _read_weights(folder: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as error:
        raise UntrustedModelError(f"{folder / WEIGHTS}: not a safetensors file, refused ({error})") from error


class _PyfuncModel:
    """What ``mlflow.pyfunc.load_model`` returns for our torch models: predictions for an array."""

    def __init__(self, model: Any):
        self.model = model

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        if hasattr(model_input, "to_numpy"):  # a DataFrame of one column from a signature: its values
            model_input = model_input.to_numpy()
            model_input = model_input[:, 0] if model_input.ndim == 2 and model_input.shape[1] == 1 else model_input
        return self.model.predict(np.asarray(model_input))

    def get_raw_model(self) -> Any:
        return self.model


def _load_pyfunc(path: str) -> _PyfuncModel:
    """MLflow's entry point for a ``python_function`` model whose loader module is this one."""
    return _PyfuncModel(load_torch_model(path))
