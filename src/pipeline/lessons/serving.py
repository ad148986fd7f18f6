"""Unit 13 — serving the sentiment model: an API under load, checked, and watched for drift.

The unit trains nothing. It takes the model Unit 11 registered (``models:/mlpath-sentiment@champion``,
or a folder, or, when no champion exists yet, the base MiniLM with an untrained head: the same
compute, chance accuracy, and the report says so), serves it with ``pipeline.serving`` on a
loopback port and measures four things:

- load: requests/s and p50/p99 latency of one-text requests at 1, 8 and 32 concurrent clients,
  with micro-batching and without (each mode its own server, the clients in a separate process);
- the served model: the shared Unit 6 evaluation of ``ServedClassifier``, which predicts through
  ``POST /predict``, on SST-2's dev sentences, and the largest difference between the served and
  the in-process probabilities (serving must not change a prediction);
- bad input: each malformed request gets a 4xx (the audit);
- drift: the service's ``/monitoring/drift`` on its own (in-distribution) traffic, and the same
  report on two shifted batches: SST-2's training phrases (much shorter than dev's sentences) and
  dev sentences with typos (words the vocabulary no longer keeps whole).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from pipeline.features import Split
from pipeline.plots import figure_to_png
from pipeline.serving.config import ServingConfig
from pipeline.serving.load import CONCURRENCY_LEVELS, ServerThread, measure
from pipeline.serving.monitoring import (
    TrafficWindow,
    drift_report,
    positive_probability,
    reference_statistics,
    text_statistics,
)

CONCURRENCY = CONCURRENCY_LEVELS
CLASS_NAMES = ("negative", "positive")
# Per profile: one-text requests per concurrency level and mode, dev sentences evaluated through
# the API (None: all 872), texts per shifted batch.
SETTINGS = {"quick": {"requests": 48, "dev_texts": 120, "shifted": 200},
            "full": {"requests": 600, "dev_texts": None, "shifted": 872}}
BAD_REQUESTS = {  # name -> (body as JSON or raw bytes, what it breaks)
    "empty text": {"text": ""},
    "blank text": {"text": "   "},
    "number as text": {"text": 42},
    "texts not a list": {"texts": "one string"},
    "empty list": {"texts": []},
    "too many texts": {"texts": ["ok"] * 65},
    "text too long": {"text": "x" * 2001},
    "both keys": {"text": "a", "texts": ["b"]},
    "unknown key": {"sentence": "a"},
    "not an object": ["a list"],
    "not JSON": b'{"text": "unclosed',
    "oversized body": b'{"text": "' + b"y" * 1_100_000 + b'"}',
}

CAPTIONS = {
    "throughput_latency": "Requests per second (left) and p99 latency (right) of one-text requests against the "
                          "number of concurrent clients, with and without micro-batching. Without it, each "
                          "request is its own forward pass and throughput stays flat as clients are added while "
                          "latency grows with the queue; with it, concurrent requests share a forward pass, so "
                          "throughput climbs with concurrency. Look at 32 clients: the ratio of the two bars is "
                          "the batching speed-up, and the dashed line is the 250 ms p99 goal.",
    "drift_histograms": "Text length in words, as shares of texts in the reference's decile bins: the reference "
                        "(SST-2 dev, scored at registration), the service's own traffic, and SST-2's training "
                        "phrases. Served traffic drawn from the same sentences matches the reference (PSI near "
                        "0); the phrases pile into the shortest bins, the shift the drift report flags (PSI > "
                        "0.2). Labels never reach a service, so this watches inputs, not accuracy.",
}


@dataclass
class ServedModel:
    """The model the unit serves and where it came from."""

    model: object
    source: str
    trained: bool  # False: the base encoder with an untrained head (no champion registered yet)


def base_untrained(seed: int = 0):
    """The base MiniLM with a fresh 2-label head: the champion's compute, chance accuracy."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pipeline.data.pretrained import resolve_base_model
    from pipeline.models.sentiment import LABELS, SentimentModel

    base = resolve_base_model(use_hub=False)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        base.path, num_labels=len(LABELS), use_safetensors=True, id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)})
    return SentimentModel(model, AutoTokenizer.from_pretrained(base.path), meta={"base_model": str(base.path),
                                                                                 "head": "untrained"})


def load_served_model(source: str, fallback_base: bool = True, seed: int = 0) -> ServedModel:
    """``source`` (an MLflow URI or a model folder); with ``fallback_base``, the untrained base model
    when ``source`` is the registry and holds nothing there."""
    from pipeline.models.sentiment import ModelNotRegisteredError
    from pipeline.serving.app import describe_model, load_model

    try:
        model = load_model(source)
    except ModelNotRegisteredError:
        if not (fallback_base and source.startswith("models:/")):
            raise
        return ServedModel(base_untrained(seed), f"base MiniLM, untrained head ({source} not registered)", False)
    return ServedModel(model, describe_model(source, model), True)


def dev_texts(splits: dict, n: int | None, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """SST-2 dev sentences and labels, all of them or ``n`` drawn without replacement."""
    dev = splits["dev"]
    if n is not None and n < len(dev):
        dev = dev.sample(n=n, random_state=seed)
    return dev["sentence"].tolist(), dev["label"].to_numpy()


def with_reference(served: ServedModel, texts: Sequence[str]) -> str:
    """Make sure the served model has monitoring reference statistics; returns where they come from.

    A model registered with them keeps them; otherwise they are computed here on ``texts`` (the dev
    sentences), as registration would have.
    """
    model = served.model
    if model.reference is not None:
        return "saved at registration"
    model.reference = reference_statistics(texts, model.predict_proba(texts), model.tokenizer)
    return f"computed here on {len(texts)} dev sentences (the model was registered without them)"


def load_test(served: ServedModel, texts: Sequence[str], profile: str, max_batch_size: int = 32,
              max_wait_ms: float = 5.0, n_requests: int | None = None) -> pd.DataFrame:
    """Throughput and latency per mode (batched / unbatched) and concurrency, one server per mode.

    One row per (mode, concurrency): ``rps``, ``p50_ms``, ``p99_ms``, ``errors``, ``mean_batch``
    (texts per forward pass during that level, from the server's own batch-size histogram).
    ``n_requests`` per level and mode defaults to the profile's.
    """
    rows = []
    n_requests = n_requests or SETTINGS[profile]["requests"]
    for batching in (False, True):
        config = ServingConfig(batching=batching, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms)
        with ServerThread(config, model=served.model, source=served.source) as server:
            for concurrency in CONCURRENCY:
                before = _batch_totals(server)
                result = measure(server.url, texts, concurrency, n_requests)
                after = _batch_totals(server)
                batches = after[1] - before[1]
                rows.append({"mode": "micro-batching" if batching else "unbatched", **result.as_dict(),
                             "mean_batch": (after[0] - before[0]) / batches if batches else float("nan")})
    return pd.DataFrame(rows)


def _batch_totals(server: ServerThread) -> tuple[float, float]:
    """(texts, batches) so far, from the app's batch-size histogram (warm-up requests included)."""
    histogram = server.app.state.metrics.batch_size
    samples = {s.name: s.value for metric in histogram.collect() for s in metric.samples}
    return samples.get("mlpath_inference_batch_size_sum", 0.0), samples.get("mlpath_inference_batch_size_count", 0.0)


def load_metrics(table: pd.DataFrame) -> dict[str, float]:
    """Flat metrics: ``{rps,p50_ms,p99_ms}_c{n}_{batched|unbatched}``, ``batched_rps_c32`` (the primary
    metric), ``speedup_c32`` and ``mean_batch_c32``."""
    metrics = {}
    for row in table.itertuples():
        mode = "batched" if row.mode == "micro-batching" else "unbatched"
        for name in ("rps", "p50_ms", "p99_ms"):
            metrics[f"{name}_c{row.concurrency}_{mode}"] = float(getattr(row, name))
        if mode == "batched":
            metrics[f"mean_batch_c{row.concurrency}"] = float(row.mean_batch)
    top = max(CONCURRENCY)
    metrics["batched_rps_c32"] = metrics[f"rps_c{top}_batched"]
    metrics["speedup_c32"] = metrics[f"rps_c{top}_batched"] / metrics[f"rps_c{top}_unbatched"]
    return metrics


class ServedClassifier(ClassifierMixin, BaseEstimator):
    """A classifier whose predictions come from a running API's ``POST /predict`` (already fitted:
    it is what the service serves). Texts go in requests of ``chunk`` texts."""

    def __init__(self, url: str = "", chunk: int = 32):
        self.url = url
        self.chunk = chunk
        self._last: tuple | None = None  # (rows' key, probabilities) of the last call

    def fit(self, X, y):
        raise TypeError("a served model is not refitted here: evaluate it with fit=False and cv=0")

    @property
    def classes_(self) -> np.ndarray:
        return np.arange(len(CLASS_NAMES))

    def predict_proba(self, X) -> np.ndarray:
        import httpx

        from pipeline.models.sentiment import as_texts

        texts, rows = as_texts(X), []
        # The shared evaluation asks for predict, then predict_proba, of the same rows: one round trip
        # (a second would double the traffic and the drift window's copies of each sentence).
        key = (len(texts), hash(tuple(texts)))
        if self._last is not None and self._last[0] == key:
            return self._last[1].copy()
        with httpx.Client(base_url=self.url, timeout=120) as http:
            for start in range(0, len(texts), self.chunk):
                response = http.post("/predict", json={"texts": texts[start:start + self.chunk]})
                response.raise_for_status()
                rows += [[p["probabilities"][name] for name in CLASS_NAMES] for p in response.json()["predictions"]]
        proba = np.array(rows, dtype=float).reshape(-1, len(CLASS_NAMES))
        self._last = (key, proba)
        return proba.copy()

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


@contextmanager
def served(model, source: str | None = None, **config):
    """The production configuration (micro-batching) serving ``model`` (described as ``source``) on a
    loopback port; yields the ``ServerThread`` (``.url``, ``.app``)."""
    with ServerThread(ServingConfig(**config), model=model, source=source) as server:
        yield server


def dev_split(texts: Sequence[str], labels: np.ndarray) -> Split:
    """The dev sentences as the shared evaluation's test rows (nothing to train on: the model is served)."""
    X = pd.Series(list(texts), name="text")
    return Split(X.iloc[:0], X, labels[:0], np.asarray(labels))


def typos(texts: Sequence[str], rate: float = 0.3, seed: int = 0) -> list[str]:
    """``texts`` with a share ``rate`` of their longer words misspelt (two inner letters swapped and one
    doubled): the words a user mistypes, which the tokenizer no longer keeps whole."""
    rng = random.Random(seed)

    def misspell(match: re.Match) -> str:
        word = match.group(0)
        if rng.random() >= rate:
            return word
        i = rng.randrange(1, len(word) - 2)
        return word[:i] + word[i + 1] + word[i] + word[i + 1:i + 2] + word[i + 2:]

    return [re.sub(r"[a-z]{4,}", misspell, text) for text in texts]


def served_drift(url: str) -> dict:
    """The live service's ``GET /monitoring/drift``."""
    import httpx

    response = httpx.get(f"{url}/monitoring/drift", timeout=60)
    response.raise_for_status()
    return response.json()


@dataclass
class DriftCheck:
    """The drift report of the service's own traffic and of the shifted batches, by name."""

    reports: dict[str, dict] = field(default_factory=dict)
    length_shares: dict[str, list[float]] = field(default_factory=dict)


def drift_checks(model, served_report: dict, window: np.ndarray, splits: dict, n: int, seed: int = 0,
                 psi_threshold: float = 0.2) -> DriftCheck:
    """``served_report`` (from the live ``/monitoring/drift``) beside the same report on two shifted
    batches of ``n`` texts: SST-2 training phrases and dev sentences with typos."""
    reference = model.reference
    check = DriftCheck({"served traffic": served_report})
    dev = splits["dev"]["sentence"]
    batches = {"training phrases": splits["train"]["sentence"].sample(n=min(n, len(splits["train"])),
                                                                     random_state=seed).tolist(),
               "dev with typos": typos(dev.sample(n=min(n, len(dev)), random_state=seed).tolist(), seed=seed)}
    edges = reference["length"]["edges"]
    check.length_shares["reference"] = list(reference["length"]["shares"])
    check.length_shares["served traffic"] = _shares(window[:, 0], edges)
    for name, texts in batches.items():
        shifted = TrafficWindow(len(texts))
        stats = text_statistics(texts, model.tokenizer)
        shifted.add(stats, positive_probability(model.predict_proba(texts)))
        check.reports[name] = drift_report(reference, shifted.snapshot(), psi_threshold=psi_threshold,
                                           min_window=min(50, len(texts)))
        check.length_shares[name] = _shares(stats.n_words, edges)
    return check


def _shares(values, edges) -> list[float]:
    codes = np.searchsorted(np.asarray(edges, dtype=float), np.asarray(values, dtype=float), side="right")
    return (np.bincount(codes, minlength=len(edges) + 1) / max(len(values), 1)).tolist()


def drift_table(check: DriftCheck) -> pd.DataFrame:
    rows = []
    for name, report in check.reports.items():
        m = report["metrics"]
        rows.append({"traffic": name, "texts": report["window"], "length PSI": m["length_psi"],
                     "probability PSI": m["probability_psi"], "coverage": m["coverage"]["window"],
                     "coverage change": m["coverage"]["change"], "share positive": m["share_positive"]["window"],
                     "drifted": report["drifted"], "reasons": "; ".join(report["reasons"])})
    return pd.DataFrame(rows)


def drift_metrics(check: DriftCheck) -> dict[str, float]:
    keys = {"served traffic": "served", "training phrases": "phrases", "dev with typos": "typos"}
    metrics = {}
    for name, report in check.reports.items():
        m, key = report["metrics"], keys[name]
        metrics.update({f"drift_{key}_length_psi": m["length_psi"],
                        f"drift_{key}_probability_psi": m["probability_psi"],
                        f"drift_{key}_coverage_change": m["coverage"]["change"]})
    return metrics


def unit_metrics(load: pd.DataFrame, check: DriftCheck, served_score: np.ndarray, local_score: np.ndarray,
                 served: ServedModel) -> dict[str, float]:
    """Load and drift metrics, the largest served-vs-in-process difference of P(positive), and whether
    the served model was trained (0: the untrained base fallback)."""
    diff = float(np.max(np.abs(np.asarray(served_score) - np.asarray(local_score))))
    return {**load_metrics(load), **drift_metrics(check), "served_max_abs_diff": diff,
            "served_model_trained": float(served.trained)}


def figures(load: pd.DataFrame, check: DriftCheck) -> dict[str, bytes]:
    """The unit's figures as PNG bytes, named as in ``CAPTIONS``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8))
    (left, right) = fig.subplots(1, 2)
    for mode, rows in load.groupby("mode", sort=False):
        left.plot(rows["concurrency"], rows["rps"], marker="o", label=mode)
        right.plot(rows["concurrency"], rows["p99_ms"], marker="o", label=mode)
    right.axhline(250, color="grey", linestyle="--", linewidth=1, label="p99 goal (250 ms)")
    for ax, label in ((left, "requests / s"), (right, "p99 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(CONCURRENCY, [str(c) for c in CONCURRENCY])
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(label)
        ax.legend()
    right.set_yscale("log")
    fig.suptitle("Serving the sentiment model: one-text requests on loopback")
    fig.tight_layout()
    made = {"throughput_latency": fig}

    fig = Figure(figsize=(8, 3.6))
    ax = fig.subplots()
    names = list(check.length_shares)
    width = 0.8 / len(names)
    bins = np.arange(len(check.length_shares["reference"]))
    for i, name in enumerate(names):
        ax.bar(bins + i * width, check.length_shares[name], width=width, label=name)
    ax.set_xticks(bins + 0.4 - width / 2, [f"bin {b + 1}" for b in bins])
    ax.set_xlabel("text length, reference decile bins (short → long)")
    ax.set_ylabel("share of texts")
    ax.legend()
    ax.set_title("Text length: reference vs served traffic vs a shifted batch")
    fig.tight_layout()
    made["drift_histograms"] = fig
    return {name: figure_to_png(f) for name, f in made.items()}


def report_markdown(served: ServedModel, reference_source: str, load: pd.DataFrame, evaluation: dict,
                    max_abs_diff: float, check: DriftCheck, profile: str) -> str:
    """The unit's report: what was served, the load table, the served model's evaluation, drift."""
    m = load_metrics(load)
    shown = load.assign(rps=load["rps"].round(1), p50_ms=load["p50_ms"].round(1), p99_ms=load["p99_ms"].round(1),
                        mean_batch=load["mean_batch"].round(2), seconds=load["seconds"].round(2))
    lines = [
        "# Serving the sentiment model",
        "",
        f"**Served:** {served.source}" + ("" if served.trained else " — no champion was registered, so the "
                                           "accuracy below is chance; the load figures hold (same compute)."),
        f"**Reference statistics:** {reference_source}. **Profile:** {profile}.",
        "",
        "## Load (one-text requests, loopback, clients in a separate process)",
        "",
        shown[["mode", "concurrency", "requests", "errors", "rps", "p50_ms", "p99_ms", "mean_batch"]]
        .to_markdown(index=False),
        "",
        f"At 32 clients micro-batching serves **{m['batched_rps_c32']:.1f} req/s** against "
        f"{m['rps_c32_unbatched']:.1f} without (×{m['speedup_c32']:.2f}), p99 {m['p99_ms_c32_batched']:.0f} ms "
        f"(goal: ×3 and ≤ 250 ms on 2 cores). Timings depend on what else the machine runs.",
        "",
        "![throughput and latency](figures/throughput_latency.png)",
        "",
        "## The served model (through POST /predict, SST-2 dev)",
        "",
        ", ".join(f"{k} {v:.4f}" for k, v in evaluation.items() if k in ("test_accuracy", "test_f1", "test_roc_auc"))
        + f"; largest |served − in-process| probability: {max_abs_diff:.2e}.",
        "",
        "## Drift",
        "",
        drift_table(check).to_markdown(index=False, floatfmt=".3f"),
        "",
        "![length histograms](figures/drift_histograms.png)",
    ]
    return "\n".join(lines)
