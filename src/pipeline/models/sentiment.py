"""The sentiment model of Unit 11 (registered as ``mlpath-sentiment``) and Unit 13 (served).

``SentimentModel`` holds a Hugging Face sequence classifier and its tokenizer: ``predict_proba``
tokenises a batch with dynamic padding (each batch padded to its own longest sentence, up to
``max_length`` tokens; longer texts are truncated), ``predict`` gives 0 (negative) / 1 (positive).
It is saved with no pickle anywhere: ``save_pretrained`` (safetensors weights, JSON config),
the tokenizer's JSON/text files, ``mlpath_sentiment.json`` (labels, max_length, meta) and
``reference.json`` (monitoring reference statistics, or absent). ``load`` reads that folder back
with ``use_safetensors=True`` and ``trust_remote_code=False``.

For MLflow it is a ``python_function`` model whose loader module is this one (``_load_pyfunc``),
so ``mlflow.pyfunc.load_model("models:/mlpath-sentiment@champion")`` predicts labels in a fresh
process, and ``load_registered`` gives the ``SentimentModel`` itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

LABELS = ("negative", "positive")
CONFIG_FILE = "mlpath_sentiment.json"
REFERENCE_FILE = "reference.json"
DATA_DIR = "sentiment_model"  # the folder name inside an MLflow model (``data_path``)
REGISTERED_NAME = "mlpath-sentiment"
LOADER_MODULE = __name__
_REMEMBERED = 8  # input sets whose probabilities a model keeps (dev and test of each evaluation)


class SentimentModelError(ValueError):
    """A folder or an input a SentimentModel cannot use."""


class ModelNotRegisteredError(SentimentModelError):
    """The registry holds no model (or no such alias) at the URI asked for."""


def as_texts(X: Any) -> list[str]:
    """The texts of ``X``: a list/tuple/array of str, a pandas Series, or a DataFrame with a
    ``text`` column (or a single column). Anything else, or a non-string item, is an error."""
    import pandas as pd

    if isinstance(X, str):
        raise SentimentModelError("expected a sequence of texts, got one str: wrap it in a list")
    if isinstance(X, pd.DataFrame):
        if "text" in X.columns:
            X = X["text"]
        elif X.shape[1] == 1:
            X = X.iloc[:, 0]
        else:
            raise SentimentModelError(f"a DataFrame needs a 'text' column; it has {list(X.columns)}")
    if isinstance(X, pd.Series):
        X = X.tolist()
    elif isinstance(X, np.ndarray):
        X = X.reshape(-1).tolist() if X.ndim == 2 and 1 in X.shape else X.tolist()
    texts = list(X)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise SentimentModelError(f"texts must be str; item {bad[0]} is {type(texts[bad[0]]).__name__}"
                                  f"{f' (and {len(bad) - 1} more)' if len(bad) > 1 else ''}")
    return texts


class SentimentModel:
    """A sequence classifier + its tokenizer; what Unit 11 registers as `mlpath-sentiment` and Unit 13 serves."""

    labels = LABELS
    classes_ = np.arange(len(LABELS))  # predict_proba's columns, for the shared evaluation
    mlflow_loader_module = LOADER_MODULE  # the registry logs it with save() and loads it with this module

    def __init__(self, model, tokenizer, *, max_length: int = 128, meta: dict | None = None,
                 reference: dict | None = None):
        if getattr(model.config, "num_labels", 2) != len(LABELS):
            raise SentimentModelError(f"the classifier has {model.config.num_labels} labels, expected {len(LABELS)}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.meta = dict(meta or {})
        self.reference = reference
        self._recent: dict[tuple[int, int], np.ndarray] = {}  # a few recent inputs' probabilities

    def forget(self) -> None:
        """Drop the remembered probabilities (call it after changing the weights in place)."""
        self._recent.clear()

    def __repr__(self) -> str:
        base = self.meta.get("base_model", type(self.model).__name__)
        return f"SentimentModel({base}, max_length={self.max_length})"

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(n, 2) probabilities [negative, positive], rows summing to 1. Batches are formed over
        texts sorted by length, so each batch pads little (dynamic padding), then put back in order.
        The last few inputs' results are remembered (the weights are not expected to change in place;
        ``forget`` otherwise)."""
        import torch

        texts = as_texts(texts)
        # An evaluation asks for predict then predict_proba of the same rows: compute them once.
        key = (len(texts), hash(tuple(texts)))
        if key in self._recent:
            return self._recent[key].copy()
        out = np.zeros((len(texts), len(LABELS)), dtype=np.float64)
        if not texts:
            return out
        device = next(self.model.parameters()).device
        order = np.argsort([len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                rows = order[start:start + batch_size]
                batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt").to(device)
                logits = self.model(**batch).logits  # (B, 2)
                out[rows] = torch.softmax(logits.double(), dim=-1).cpu().numpy()
        if len(self._recent) >= _REMEMBERED:
            self._recent.pop(next(iter(self._recent)))
        self._recent[key] = out
        return out.copy()

    def predict(self, X) -> np.ndarray:
        """0/1 labels (1 = positive) for a list of str, a pandas Series, or a DataFrame with column "text"."""
        return self.predict_proba(as_texts(X)).argmax(axis=1).astype(np.int64)

    def save(self, folder) -> Path:
        """Write the model to ``folder`` (created): safetensors weights, the tokenizer's files,
        ``mlpath_sentiment.json`` and ``reference.json`` (when there is a reference)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        config = {"labels": list(LABELS), "max_length": self.max_length, "meta": self.meta}
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
        if self.reference is not None:
            (folder / REFERENCE_FILE).write_text(json.dumps(self.reference, indent=2, sort_keys=True))
        return folder

    @classmethod
    def load(cls, folder) -> SentimentModel:
        """A model from ``save``'s folder: safetensors only, no remote code, no pickle."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(folder)
        config_path = folder / CONFIG_FILE
        if not config_path.is_file():
            raise SentimentModelError(f"{folder}: no {CONFIG_FILE}, not a saved SentimentModel")
        config = json.loads(config_path.read_text())
        if tuple(config.get("labels", ())) != LABELS:
            raise SentimentModelError(f"{config_path}: labels {config.get('labels')} are not {list(LABELS)}")
        if not (folder / "model.safetensors").is_file():
            raise SentimentModelError(f"{folder}: no model.safetensors (only safetensors weights are loaded)")
        model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True,
                                                                   trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        reference_path = folder / REFERENCE_FILE
        reference = json.loads(reference_path.read_text()) if reference_path.is_file() else None
        return cls(model, tokenizer, max_length=config.get("max_length", 128), meta=config.get("meta"),
                   reference=reference)


class _PyfuncModel:
    """What ``mlflow.pyfunc.load_model`` returns for a registered SentimentModel: labels for texts."""

    def __init__(self, model: SentimentModel):
        self.model = model

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        return self.model.predict(model_input)

    def get_raw_model(self) -> SentimentModel:
        return self.model


def _load_pyfunc(path: str) -> _PyfuncModel:
    """MLflow's entry point for a ``python_function`` model whose loader module is this one."""
    return _PyfuncModel(SentimentModel.load(path))


def load_model_folder(path: str | os.PathLike) -> SentimentModel:
    """A SentimentModel from a saved folder or from a downloaded MLflow model folder (its ``MLmodel``
    names this loader; the weights are in its data folder)."""
    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        return SentimentModel.load(path)
    if (path / "MLmodel").is_file():
        from mlflow.models import Model

        pyfunc = Model.load(path / "MLmodel").flavors.get("python_function", {})
        if pyfunc.get("loader_module") != LOADER_MODULE:
            raise SentimentModelError(f"{path}: an MLflow model, but not a SentimentModel "
                                      f"(loader {pyfunc.get('loader_module')!r})")
        return SentimentModel.load(path / pyfunc["data"])
    raise SentimentModelError(f"{path}: neither a saved SentimentModel nor an MLflow model folder")


def load_registered(uri: str = f"models:/{REGISTERED_NAME}@champion") -> SentimentModel:
    """The registered model at ``uri`` (default: the champion of ``mlpath-sentiment``), downloaded
    from the tracking server/registry MLPATH_HOME points at and loaded without pickle."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from pipeline.registry import client

    client()  # sets the tracking/registry URI from MLPATH_HOME
    try:
        path = mlflow.artifacts.download_artifacts(uri)
    except MlflowException as error:
        # Only "does not exist" means nothing is registered; an unreachable server or a broken
        # artifact is another failure, which no caller should take for an empty registry.
        # (MLflow 3 reports a missing alias as INVALID_PARAMETER_VALUE "...alias champion not found.")
        missing = error.error_code == "RESOURCE_DOES_NOT_EXIST" or (
            error.error_code == "INVALID_PARAMETER_VALUE" and "not found" in error.message)
        raise (ModelNotRegisteredError if missing else SentimentModelError)(
            f"no model at {uri} ({error.message}); run `mlpath run unit11` to register one" if missing
            else f"could not fetch {uri}: {error.message}") from error
    return load_model_folder(path)


def quantize_int8(model: SentimentModel) -> SentimentModel:
    """A copy of ``model`` with every Linear layer dynamically quantised to int8 (weights stored as
    int8, activations quantised per batch on the fly; ``torch.ao.quantization.quantize_dynamic``),
    for CPU inference: about twice as fast here, probabilities moved slightly (measure before you
    serve it: ``benchmarks/serving.py`` prints the change on dev sentences). The original is untouched."""
    import copy
    import warnings

    import torch

    with warnings.catch_warnings():  # torch 2.13 marks quantised tensors deprecated; pinned, they work
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model.model).cpu().eval(),
                                                           {torch.nn.Linear}, dtype=torch.qint8)
    return SentimentModel(quantized, model.tokenizer, max_length=model.max_length,
                          meta={**model.meta, "quantized": "int8 (dynamic, Linear layers)"}, reference=model.reference)


def tiny_model(seed: int = 0) -> SentimentModel:
    """A REAL but tiny BERT classifier (2 layers, hidden 32) with random weights and the MiniLM
    tokenizer (checked against its upstream hashes): fast tests of serving and registration."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from pipeline.data.pretrained import resolve_base_model

    base = resolve_base_model(use_hub=False)
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=len(LABELS),
                        id2label=dict(enumerate(LABELS)), label2id={name: i for i, name in enumerate(LABELS)})
    model = BertForSequenceClassification(config)
    return SentimentModel(model, tokenizer, max_length=128, meta={"base_model": "tiny-random-bert", "seed": seed})
