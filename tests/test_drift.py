"""The drift statistic (PSI per feature) on synthetic data, checked against scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.drift import (
    FEATURES,
    DriftFeatures,
    DriftInputError,
    categorical_psi,
    default_bins,
    drift_report,
    numeric_psi,
    psi_from_shares,
    reference_split,
)


def symmetric_kl(p: np.ndarray, q: np.ndarray) -> float:
    """PSI as scipy computes it: KL(q||p) + KL(p||q) (``entropy`` normalises its inputs)."""
    return float(stats.entropy(q, p) + stats.entropy(p, q))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_psi_from_shares_is_symmetric_kl():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    q = np.array([0.25, 0.25, 0.25, 0.25])
    assert psi_from_shares(p, q) == pytest.approx(symmetric_kl(p, q), rel=1e-12)
    assert psi_from_shares(p, p) == 0.0


def test_numeric_psi_matches_scipy_on_reference_quantile_bins(rng):
    reference, recent = rng.normal(0, 1, 4000), rng.normal(0.5, 1.2, 3000)
    edges = np.quantile(reference, np.linspace(0, 1, 11)[1:-1])
    bins = np.concatenate([[-np.inf], edges, [np.inf]])
    # half-open on the left, as np.searchsorted(side="right") assigns: [e_i, e_i+1)
    p = np.histogram(reference, bins)[0] / len(reference)
    q = np.histogram(recent, bins)[0] / len(recent)
    assert numeric_psi(pd.Series(reference), pd.Series(recent), bins=10) == pytest.approx(
        symmetric_kl(p, q), rel=1e-9)


def test_numeric_psi_small_without_shift_large_with_shift(rng):
    reference = pd.Series(rng.normal(0, 1, 5000))
    assert numeric_psi(reference, pd.Series(rng.normal(0, 1, 2000))) < 0.03
    assert numeric_psi(reference, pd.Series(rng.normal(1, 1, 2000))) > 0.5
    assert numeric_psi(reference, pd.Series(rng.normal(0, 1, 2000) * 3)) > 0.5


def test_missing_values_are_a_bin_of_their_own(rng):
    values = rng.normal(0, 1, 2000)
    more_missing = values.copy()
    more_missing[:600] = np.nan
    assert numeric_psi(pd.Series(values), pd.Series(values)) == 0.0
    assert numeric_psi(pd.Series(values), pd.Series(more_missing)) > 0.2


def test_categorical_psi_matches_scipy():
    reference = pd.Series(["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    recent = pd.Series(["a"] * 20 + ["b"] * 30 + ["c"] * 40 + [None] * 10)
    p = np.array([0.5, 0.3, 0.2, 0.0])
    q = np.array([0.2, 0.3, 0.4, 0.1])
    floored = np.clip(p, 1e-4, None)  # the unseen "missing" category gets the floor share
    assert categorical_psi(reference, recent) == pytest.approx(symmetric_kl(floored / floored.sum(), q), rel=1e-9)
    assert categorical_psi(reference, reference.sample(frac=1, random_state=0)) == pytest.approx(0.0)


def test_drift_report_flags_only_the_shifted_feature(rng):
    features = DriftFeatures(numeric=("x", "y"), categorical=("colour",))
    reference = pd.DataFrame({"x": rng.normal(0, 1, 3000), "y": rng.exponential(1, 3000),
                              "colour": rng.choice(["red", "blue"], 3000)})
    recent = pd.DataFrame({"x": rng.normal(0, 1, 1000), "y": rng.exponential(1, 1000) * 4,
                           "colour": rng.choice(["red", "blue"], 1000)})
    report = drift_report(reference, recent, features, threshold=0.2)
    assert report.drifted and report.drifted_features == ["y"]
    assert report.table["feature"].iloc[0] == "y" and report.max_psi > 1.0
    row = report.table.set_index("feature").loc["x"]
    ks = stats.ks_2samp(reference["x"], recent["x"])
    assert (row["ks_statistic"], row["ks_pvalue"]) == pytest.approx((ks.statistic, ks.pvalue))
    assert np.isnan(report.table.set_index("feature").loc["colour", "ks_statistic"])

    steady = drift_report(reference, reference.sample(1000, random_state=1), features)
    assert not steady.drifted and steady.max_psi < 0.05
    assert steady.as_dict()["drifted_features"] == []


def test_drift_report_names_missing_columns():
    features = DriftFeatures(numeric=("x", "y"))
    with pytest.raises(DriftInputError, match="lacks column.*y"):
        drift_report(pd.DataFrame({"x": [1.0, 2.0]}), pd.DataFrame({"x": [1.0]}), features)


def test_default_bins_shrink_for_small_batches():
    assert default_bins(668, 223) == 8
    assert default_bins(112, 38) == 2
    assert default_bins(60_000, 10_000) == 10


def test_titanic_held_out_rows_do_not_drift():
    from pipeline.data import load_dataset

    titanic = load_dataset("titanic", "full")
    reference, held_out = reference_split("titanic", titanic.splits)
    assert (len(reference), len(held_out)) == (668, 223)
    assert not drift_report(reference, held_out, FEATURES["titanic"]).drifted
    shifted = titanic.splits["train"].assign(Fare=lambda f: f["Fare"] * 5, Age=lambda f: f["Age"] + 30)
    assert set(drift_report(reference, shifted, FEATURES["titanic"]).drifted_features) == {"Fare", "Age"}


def test_unknown_dataset_has_no_reference():
    with pytest.raises(DriftInputError, match="supported: titanic, iris"):
        reference_split("mnist", {})
