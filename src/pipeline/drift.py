"""Data drift: how far a recent batch's feature distributions moved from the training reference.

The statistic is the population stability index per feature,

    PSI = sum_b (q_b - p_b) * ln(q_b / p_b)

over bins ``b``, with ``p`` the reference's and ``q`` the recent batch's share of rows in each bin:
the symmetric Kullback-Leibler divergence KL(q||p) + KL(p||q). Numeric features are binned at the
reference's quantiles, categorical ones by category; a missing value is a bin of its own, so a
change in how often a value is missing counts as drift. Common reading: < 0.1 stable, 0.1-0.2 a
moderate shift, > 0.2 a shift worth retraining for (the monitor's default threshold).
Numeric features also get the two-sample Kolmogorov-Smirnov test, reported, not decided on: with
hundreds of rows it flags shifts too small to matter.

Pure functions of DataFrames; ``reference_split`` reproduces the rows a unit trains and tests on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.features import IRIS_FEATURES, TITANIC_CATEGORICAL, TITANIC_NUMERIC, split_iris, split_titanic

# A bin the reference (or the batch) never fills would make the log infinite; floor the shares.
_MIN_SHARE = 1e-4
_MAX_BINS = 10
# Under no shift PSI is about (bins - 1) * (1/n_reference + 1/n_recent): keep enough rows per bin
# that sampling noise alone stays well under the 0.2 threshold.
_ROWS_PER_BIN = 25


@dataclass(frozen=True)
class DriftFeatures:
    """The columns a dataset's models train on, by kind."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]


FEATURES: dict[str, DriftFeatures] = {
    "titanic": DriftFeatures(tuple(TITANIC_NUMERIC), tuple(TITANIC_CATEGORICAL)),
    "iris": DriftFeatures(tuple(IRIS_FEATURES)),
}

# The catalog file that holds a dataset's labelled training rows: where a drift monitor appends a
# new labelled batch for the retraining run (``UnitParams.append_files``).
LABELLED_FILES: dict[str, str] = {"titanic": "titanic/train.csv"}


class DriftInputError(ValueError):
    """A batch the drift monitor cannot compare (unknown dataset, missing columns)."""


@dataclass(frozen=True)
class DriftReport:
    """Per-feature drift of a batch against the reference.

    ``table`` has one row per feature: ``feature, kind, psi, ks_statistic, ks_pvalue, drifted``
    (KS columns are NaN for categorical features), sorted by PSI, largest first.
    """

    table: pd.DataFrame
    threshold: float
    reference_rows: int
    recent_rows: int
    bins: int

    @property
    def max_psi(self) -> float:
        return float(self.table["psi"].max())

    @property
    def drifted_features(self) -> list[str]:
        return self.table.loc[self.table["drifted"], "feature"].tolist()

    @property
    def drifted(self) -> bool:
        """Whether any feature's PSI is past the threshold."""
        return bool(self.table["drifted"].any())

    def as_dict(self) -> dict:
        return {"threshold": self.threshold, "max_psi": self.max_psi, "drifted": self.drifted,
                "drifted_features": self.drifted_features, "reference_rows": self.reference_rows,
                "recent_rows": self.recent_rows, "bins": self.bins,
                "features": self.table.to_dict("records")}


def psi_from_shares(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI of two share vectors over the same bins (each sums to 1).

    Bins empty in both are dropped; a bin empty in one only gets a share of 1e-4 there.
    """
    p, q = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    used = (p > 0) | (q > 0)
    p, q = np.clip(p[used], _MIN_SHARE, None), np.clip(q[used], _MIN_SHARE, None)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def _shares(codes: np.ndarray, n_bins: int) -> np.ndarray:
    return np.bincount(codes, minlength=n_bins) / max(len(codes), 1)


def numeric_psi(reference: pd.Series, recent: pd.Series, bins: int = _MAX_BINS) -> float:
    """PSI with bins at the reference's quantiles (ties merged), missing values as one more bin."""
    ref = pd.to_numeric(reference, errors="coerce").to_numpy(dtype=float)
    new = pd.to_numeric(recent, errors="coerce").to_numpy(dtype=float)
    observed = ref[~np.isnan(ref)]
    edges = np.unique(np.quantile(observed, np.linspace(0, 1, bins + 1)[1:-1])) if len(observed) else np.array([])
    n_bins = len(edges) + 2  # len(edges) + 1 intervals, then the missing-value bin

    def codes(values: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(values), n_bins - 1, np.searchsorted(edges, values, side="right"))

    return psi_from_shares(_shares(codes(ref), n_bins), _shares(codes(new), n_bins))


def categorical_psi(reference: pd.Series, recent: pd.Series) -> float:
    """PSI over the categories seen in either batch, missing values as a category."""
    ref, new = reference.astype(object).fillna("<missing>"), recent.astype(object).fillna("<missing>")
    categories = sorted(set(ref) | set(new), key=str)
    p = ref.value_counts(normalize=True).reindex(categories, fill_value=0.0).to_numpy()
    q = new.value_counts(normalize=True).reindex(categories, fill_value=0.0).to_numpy()
    return psi_from_shares(p, q)


def default_bins(reference_rows: int, recent_rows: int) -> int:
    """Up to 10 quantile bins, fewer for small batches (at least 25 rows a bin, at least 2 bins)."""
    return int(np.clip(min(reference_rows, recent_rows) // _ROWS_PER_BIN, 2, _MAX_BINS))


def drift_report(reference: pd.DataFrame, recent: pd.DataFrame, features: DriftFeatures,
                 threshold: float = 0.2, bins: int | None = None) -> DriftReport:
    """Compare every feature of ``recent`` with ``reference``; a feature drifted if PSI > threshold."""
    missing = [c for c in features.columns if c not in recent.columns]
    if missing:
        raise DriftInputError(f"the recent batch lacks column(s) {', '.join(missing)}; "
                              f"it needs {', '.join(features.columns)}")
    if recent.empty:
        raise DriftInputError("the recent batch has no rows")
    bins = bins or default_bins(len(reference), len(recent))
    rows = []
    for column in features.numeric:
        ref, new = reference[column].astype(float), recent[column].astype(float)
        ks = stats.ks_2samp(ref.dropna(), new.dropna())
        rows.append({"feature": column, "kind": "numeric", "psi": numeric_psi(ref, new, bins),
                     "ks_statistic": float(ks.statistic), "ks_pvalue": float(ks.pvalue)})
    for column in features.categorical:
        rows.append({"feature": column, "kind": "categorical",
                     "psi": categorical_psi(reference[column], recent[column]),
                     "ks_statistic": np.nan, "ks_pvalue": np.nan})
    table = pd.DataFrame(rows).sort_values("psi", ascending=False, ignore_index=True)
    table["drifted"] = table["psi"] > threshold
    return DriftReport(table, threshold, len(reference), len(recent), bins)


def reference_split(name: str, splits: dict, test_size: float = 0.25, seed: int = 0
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, held-out rows) of a catalog dataset, as the units split it, feature columns only.

    ``splits`` is ``Dataset.splits`` (see :mod:`pipeline.data`); defaults match ``UnitParams``.
    """
    if name not in FEATURES:
        raise DriftInputError(f"no drift reference for dataset {name!r}; supported: {', '.join(FEATURES)}")
    if name == "titanic":
        split = split_titanic(splits["train"], test_size, seed)
        return split.X_train.reset_index(drop=True), split.X_test.reset_index(drop=True)
    split = split_iris(splits["data"], test_size, seed)
    return (pd.DataFrame(split.X_train, columns=IRIS_FEATURES),
            pd.DataFrame(split.X_test, columns=IRIS_FEATURES))
