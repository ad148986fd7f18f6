"""Monitoring a served text classifier: reference statistics at registration, a rolling window of
what the service sees, and a drift report comparing the two.

Three views of the traffic, each summarised the same way for the reference (the dev set, scored by
the model when it is registered) and for the window (the service's most recent texts):

- text length in words, binned at the reference's deciles;
- vocabulary coverage: the share of words the tokenizer keeps whole (one WordPiece, not ``[UNK]``);
  new slang, another language or garbled input lowers it before it lowers accuracy;
- the prediction mix: share predicted positive and the histogram of P(positive) over ten bins.

Length and probability histograms are compared with the population stability index of
:mod:`pipeline.drift` (same bins, same reading: > 0.2 is a shift worth retraining for); the share
positive and the coverage are compared as differences. Labels never reach a service, so this is
drift of the inputs and outputs, not of accuracy.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.drift import psi_from_shares

REFERENCE_VERSION = 1
_WORD = re.compile(r"\w+", re.UNICODE)
_LENGTH_BINS = 10
PROBABILITY_EDGES = tuple(np.round(np.linspace(0.0, 1.0, 11), 2).tolist())


def words(text: str) -> list[str]:
    """Lower-cased word tokens (runs of letters/digits); punctuation is not a word."""
    return _WORD.findall(text.lower())


class _Coverage:
    """Whether the tokenizer keeps a word whole, cached per word (the vocabulary of traffic repeats)."""

    def __init__(self, tokenizer, max_cached: int = 100_000):
        self.tokenizer = tokenizer
        self.unk_id = getattr(tokenizer, "unk_token_id", None)
        self.cache: dict[str, bool] = {}
        self.max_cached = max_cached
        self.lock = threading.Lock()

    def whole(self, tokens: Sequence[str]) -> list[bool]:
        missing = sorted({t for t in tokens if t not in self.cache})
        if missing:
            ids = self.tokenizer(missing, add_special_tokens=False)["input_ids"]
            with self.lock:
                if len(self.cache) + len(missing) > self.max_cached:
                    self.cache.clear()
                self.cache.update({w: len(i) == 1 and i[0] != self.unk_id for w, i in zip(missing, ids)})
                found = {w: self.cache[w] for w in tokens}
            return [found[t] for t in tokens]
        return [self.cache[t] for t in tokens]


_coverage_by_tokenizer: dict[int, _Coverage] = {}


def _coverage(tokenizer) -> _Coverage:
    key = id(tokenizer)
    if key not in _coverage_by_tokenizer or _coverage_by_tokenizer[key].tokenizer is not tokenizer:
        _coverage_by_tokenizer[key] = _Coverage(tokenizer)
    return _coverage_by_tokenizer[key]


@dataclass(frozen=True)
class TextStats:
    """Per-text statistics: word count and how many of those words the tokenizer keeps whole."""

    n_words: np.ndarray   # (n,) int
    n_whole: np.ndarray   # (n,) int


def text_statistics(texts: Sequence[str], tokenizer) -> TextStats:
    """Word count and whole-word count of each text."""
    tokenised = [words(t) for t in texts]
    flat = [w for ws in tokenised for w in ws]
    whole = iter(_coverage(tokenizer).whole(flat)) if flat else iter(())
    n_whole = [sum(next(whole) for _ in ws) for ws in tokenised]
    return TextStats(np.array([len(ws) for ws in tokenised], dtype=int), np.array(n_whole, dtype=int))


def positive_probability(probabilities: np.ndarray) -> np.ndarray:
    """P(positive) from an (n, 2) probability matrix (or an (n,) vector of it)."""
    p = np.asarray(probabilities, dtype=float)
    if p.ndim == 2:
        if p.shape[1] != 2:
            raise ValueError(f"expected (n, 2) probabilities (negative, positive), got shape {p.shape}")
        p = p[:, 1]
    if p.ndim != 1:
        raise ValueError(f"expected (n, 2) or (n,) probabilities, got shape {p.shape}")
    return p


def _bin_shares(values: np.ndarray, edges: Sequence[float]) -> list[float]:
    """Shares of ``values`` in the intervals cut at the interior ``edges`` (len(edges) + 1 bins)."""
    codes = np.searchsorted(np.asarray(edges, dtype=float), values, side="right")
    counts = np.bincount(codes, minlength=len(edges) + 1)
    return (counts / max(len(values), 1)).tolist()


def _probability_shares(p_positive: np.ndarray) -> list[float]:
    return _bin_shares(p_positive, PROBABILITY_EDGES[1:-1])


def reference_statistics(texts: Sequence[str], probabilities: np.ndarray, tokenizer) -> dict:
    """The monitoring reference of a model: JSON-able statistics of ``texts`` and its predictions.

    ``probabilities`` is the model's (n, 2) output on ``texts`` (negative, positive). Returns
    ``{"version", "n", "length": {"unit", "edges", "shares", "mean", "quantiles"},
    "vocabulary": {"coverage", "words"}, "prediction": {"share_positive", "mean_probability",
    "probability_edges", "probability_shares"}}``; ``length.edges`` are the interior bin edges
    (the deciles, ties merged), so ``shares`` has ``len(edges) + 1`` entries.
    """
    texts = list(texts)
    p = positive_probability(probabilities)
    if len(texts) == 0:
        raise ValueError("reference statistics need at least one text")
    if len(p) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(p)} probabilities")
    stats = text_statistics(texts, tokenizer)
    lengths = stats.n_words.astype(float)
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, _LENGTH_BINS + 1)[1:-1])).tolist()
    total_words = int(stats.n_words.sum())
    return {
        "version": REFERENCE_VERSION,
        "n": len(texts),
        "length": {"unit": "words", "edges": edges, "shares": _bin_shares(lengths, edges),
                   "mean": float(lengths.mean()),
                   "quantiles": {str(q): float(np.quantile(lengths, q)) for q in (0.1, 0.5, 0.9)}},
        "vocabulary": {"coverage": float(stats.n_whole.sum() / total_words) if total_words else 1.0,
                       "words": total_words},
        "prediction": {"share_positive": float(np.mean(p >= 0.5)), "mean_probability": float(p.mean()),
                       "probability_edges": list(PROBABILITY_EDGES),
                       "probability_shares": _probability_shares(p)},
    }


class TrafficWindow:
    """The most recent ``size`` served texts: word count, whole words, P(positive). Thread-safe."""

    def __init__(self, size: int = 1000):
        self.rows: deque[tuple[int, int, float]] = deque(maxlen=size)
        self.lock = threading.Lock()
        self.seen = 0

    def add(self, stats: TextStats, p_positive: np.ndarray) -> None:
        with self.lock:
            self.rows.extend(zip(stats.n_words.tolist(), stats.n_whole.tolist(), np.asarray(p_positive).tolist()))
            self.seen += len(p_positive)

    def snapshot(self) -> np.ndarray:
        """(n, 3) array: words, whole words, P(positive)."""
        with self.lock:
            return np.array(self.rows, dtype=float).reshape(-1, 3)

    def __len__(self) -> int:
        return len(self.rows)


def drift_report(reference: dict | None, window: np.ndarray, *, psi_threshold: float = 0.2,
                 coverage_drop: float = 0.05, min_window: int = 50) -> dict:
    """The window (``TrafficWindow.snapshot()``) against the reference statistics.

    Returns ``{"status", "drifted", "reasons", "window", "reference_n", "psi_threshold",
    "coverage_drop_threshold", "metrics"}``; ``status`` is ``"ok"`` (compared), ``"no-reference"``
    (the model was registered without statistics) or ``"insufficient-data"`` (fewer than
    ``min_window`` texts); only ``"ok"`` can report ``drifted``. ``metrics`` holds
    ``length_psi``, ``probability_psi`` (PSI on the reference's bins), ``share_positive`` and
    ``coverage`` as ``{"reference", "window", "change"}``.
    """
    n = len(window)
    report = {"status": "ok", "drifted": False, "reasons": [], "window": n, "psi_threshold": psi_threshold,
              "coverage_drop_threshold": coverage_drop, "min_window": min_window,
              "reference_n": None if reference is None else reference.get("n"), "metrics": {}}
    if reference is None:
        return {**report, "status": "no-reference",
                "reasons": ["the served model has no reference statistics (registered without them)"]}
    if n < min_window:
        return {**report, "status": "insufficient-data",
                "reasons": [f"{n} texts in the window; the report decides from {min_window}"]}
    n_words, n_whole, p = window[:, 0], window[:, 1], window[:, 2]
    length_psi = psi_from_shares(np.asarray(reference["length"]["shares"]),
                                 np.asarray(_bin_shares(n_words, reference["length"]["edges"])))
    probability_psi = psi_from_shares(np.asarray(reference["prediction"]["probability_shares"]),
                                      np.asarray(_probability_shares(p)))
    coverage = float(n_whole.sum() / n_words.sum()) if n_words.sum() else 1.0
    share_positive = float(np.mean(p >= 0.5))
    ref_coverage, ref_positive = reference["vocabulary"]["coverage"], reference["prediction"]["share_positive"]
    metrics = {
        "length_psi": length_psi,
        "probability_psi": probability_psi,
        "share_positive": {"reference": ref_positive, "window": share_positive,
                           "change": share_positive - ref_positive},
        "coverage": {"reference": ref_coverage, "window": coverage, "change": coverage - ref_coverage},
        "mean_words": {"reference": reference["length"]["mean"], "window": float(n_words.mean())},
    }
    reasons = [f"{name} {value:.3f} > {psi_threshold}" for name, value
               in (("length PSI", length_psi), ("probability PSI", probability_psi)) if value > psi_threshold]
    if ref_coverage - coverage > coverage_drop:
        reasons.append(f"vocabulary coverage fell {ref_coverage - coverage:.3f} (> {coverage_drop}): "
                       f"{ref_coverage:.3f} -> {coverage:.3f}")
    return {**report, "drifted": bool(reasons), "reasons": reasons, "metrics": metrics}


def crossed(report: dict, psi_threshold: float = 0.2, coverage_drop: float = 0.05) -> tuple[bool, list[str]]:
    """Re-decide a drift report (``drift_report``'s or the service's JSON) at these thresholds:
    (drifted, reasons). A report that could not compare (no reference, too few texts) never crosses."""
    if report.get("status") != "ok":
        return False, list(report.get("reasons", []))
    metrics = report["metrics"]
    statistics = (("length PSI", "length_psi"), ("probability PSI", "probability_psi"))
    reasons = [f"{name} {metrics[key]:.3f} > {psi_threshold}" for name, key in statistics
               if metrics[key] > psi_threshold]
    drop = -metrics["coverage"]["change"]
    if drop > coverage_drop:
        reasons.append(f"vocabulary coverage fell {drop:.3f} (> {coverage_drop})")
    return bool(reasons), reasons
