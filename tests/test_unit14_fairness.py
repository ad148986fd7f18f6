"""Unit 14: group metrics against hand-computed values, the significance test against its hand
formula and scipy's chi-square twin, re-weighing, the fail-on-threshold path of the automatic
fairness audit, the SHAP additivity audit, and the flow on the quick profile."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer

from pipeline.audit import AuditFailedError
from pipeline.audit.explain import audit_shap_additivity, shap_tree
from pipeline.audit.fairness import (
    MAX_DP_ENV,
    audit_against_fairlearn,
    audit_fairness,
    bootstrap_difference_ci,
    disparity,
    error_rate_tests,
    group_metrics,
    holm,
    reweighing_weights,
    two_proportion_ztest,
)
from pipeline.data import DATASETS
from pipeline.features import Split, sensitive_attributes
from pipeline.report import UnitReport

# Eleven people: five women, six men. By hand, for each sex:
#   Female: y 1 0 0 0 1, ŷ 1 0 1 0 0 -> accuracy 3/5, selection 2/5, FPR 1/3 (1 of 3 negatives), FNR 1/2
#   Male:   y 1 1 0 0 1 0, ŷ 1 1 1 1 0 0 -> accuracy 3/6, selection 4/6, FPR 2/3, FNR 1/3
# DP difference 4/6 − 2/5 = 4/15, ratio (2/5)/(4/6) = 3/5; TPR gap 2/3 − 1/2 = 1/6, FPR gap 2/3 − 1/3
# = 1/3, so EO difference 1/3.
SEX = ["Female"] * 5 + ["Male"] * 6
RACE = ["A", "A", "B", "B", "B", "A", "B", "B", "B", "B", "B"]
Y_TRUE = np.array([1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0])
Y_PRED = np.array([1, 0, 1, 0, 0, 1, 1, 1, 1, 0, 0])


@pytest.fixture
def people() -> pd.DataFrame:
    return pd.DataFrame({"sex": SEX, "race": RACE})


def test_group_metrics_by_hand(people):
    table = group_metrics(Y_TRUE, Y_PRED, people["sex"])
    expected = pd.DataFrame({"accuracy": [3 / 5, 3 / 6], "error_rate": [2 / 5, 3 / 6], "selection_rate": [2 / 5, 4 / 6],
                             "fpr": [1 / 3, 2 / 3], "fnr": [1 / 2, 1 / 3], "n": [5, 6]},
                            index=pd.Index(["Female", "Male"], name="sex"))
    pd.testing.assert_frame_equal(table, expected, check_exact=False, rtol=1e-12)
    gaps = disparity(table)
    assert gaps["dp_difference"] == pytest.approx(4 / 15, abs=1e-12)
    assert gaps["dp_ratio"] == pytest.approx(3 / 5, abs=1e-12)
    assert gaps["eo_difference"] == pytest.approx(1 / 3, abs=1e-12)
    assert (gaps["most_selected"], gaps["least_selected"]) == ("Male", "Female")


def test_intersection_and_undefined_rates(people):
    table = group_metrics(Y_TRUE, Y_PRED, people)
    assert table.index.names == ["sex", "race"] and table["n"].sum() == 11
    # Female & A: y 1 0, ŷ 1 0 -> all right, selection 1/2
    assert table.loc[("Female", "A")].to_dict() == pytest.approx(
        {"accuracy": 1.0, "error_rate": 0.0, "selection_rate": 0.5, "fpr": 0.0, "fnr": 0.0, "n": 2})
    # Male & A is one positive: no negatives, so its FPR is undefined (NaN), not 0
    assert table.loc[("Male", "A"), "n"] == 1 and math.isnan(table.loc[("Male", "A"), "fpr"])


def test_our_group_metrics_equal_fairlearns(people):
    report = audit_against_fairlearn(Y_TRUE, Y_PRED, people)
    assert report.passed and len(report.findings) == 2


def test_two_proportion_ztest_by_hand_and_against_chi_square():
    # errors 2 of 5 (women) against 3 of 6 (men)
    z, p = two_proportion_ztest(2, 5, 3, 6)
    pooled = 5 / 11
    z_hand = (2 / 5 - 3 / 6) / math.sqrt(pooled * (1 - pooled) * (1 / 5 + 1 / 6))
    assert z == pytest.approx(z_hand, abs=1e-12)
    assert p == pytest.approx(math.erfc(abs(z_hand) / math.sqrt(2)), abs=1e-12)
    # the pooled z-test is the uncorrected chi-square test of the 2x2 table: z² = χ², same p
    for k1, n1, k2, n2 in [(2, 5, 3, 6), (30, 100, 20, 100), (120, 682, 249, 1318)]:
        z, p = two_proportion_ztest(k1, n1, k2, n2)
        chi2, p_chi2, _, _ = chi2_contingency([[k1, n1 - k1], [k2, n2 - k2]], correction=False)
        assert z**2 == pytest.approx(chi2, rel=1e-10) and p == pytest.approx(p_chi2, rel=1e-10)
    assert two_proportion_ztest(0, 10, 0, 20) == (0.0, 1.0)
    with pytest.raises(ValueError, match="need rows"):
        two_proportion_ztest(0, 0, 1, 5)


def test_bootstrap_interval_matches_the_normal_approximation():
    k1, n1, k2, n2 = 300, 1000, 200, 1000
    low, high = bootstrap_difference_ci(k1, n1, k2, n2, samples=4000, seed=1)
    half = 1.959964 * math.sqrt(0.3 * 0.7 / n1 + 0.2 * 0.8 / n2)
    assert low < 0.1 < high
    assert (high - low) == pytest.approx(2 * half, rel=0.1)
    assert bootstrap_difference_ci(k1, n1, k2, n2, seed=1) == bootstrap_difference_ci(k1, n1, k2, n2, seed=1)


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3·0.01, max(0.03, 2·0.03), max(0.06, 1·0.04)
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])


def test_error_rate_tests_on_the_fixture(people):
    tests = error_rate_tests(Y_TRUE, Y_PRED, people)
    sex = tests[tests["attribute"] == "sex"].iloc[0]
    assert (sex["group"], sex["reference"], sex["n_group"], sex["n_reference"]) == ("Female", "Male", 5, 6)
    assert sex["difference"] == pytest.approx(2 / 5 - 3 / 6)
    assert sex["z"] == pytest.approx(two_proportion_ztest(2, 5, 3, 6)[0])
    assert set(tests["attribute"]) == {"sex", "race", "sex × race"}
    assert (tests["p_holm"] >= tests["p_value"]).all()


def test_reweighing_weights_by_hand(people):
    w = reweighing_weights(people["sex"], Y_TRUE)
    # w(g, y) = P(g) P(y) / P(g, y) with P(F) = 5/11, P(y=1) = 5/11, P(F, 1) = 2/11, ...
    by_cell = {("Female", 1): 25 / 22, ("Female", 0): 10 / 11, ("Male", 1): 10 / 11, ("Male", 0): 12 / 11}
    expected = [by_cell[g, y] for g, y in zip(SEX, Y_TRUE)]
    np.testing.assert_allclose(w, expected, rtol=1e-12)
    assert w.mean() == pytest.approx(1.0)
    # weighted, the label no longer depends on sex: P_w(y=1 | g) = P(y=1) for both groups
    for group in ("Female", "Male"):
        mask = np.array(SEX) == group
        assert np.sum(w[mask] * Y_TRUE[mask]) / np.sum(w[mask]) == pytest.approx(5 / 11)


def test_threshold_fails_naming_metric_group_and_value(people, monkeypatch):
    monkeypatch.delenv(MAX_DP_ENV, raising=False)
    assert audit_fairness(Y_TRUE, Y_PRED, people).report.passed  # no threshold: reported only
    failed = audit_fairness(Y_TRUE, Y_PRED, people, max_dp_difference=0.1, subject="fixture").report
    checks = {f.check: f.detail for f in failed.failures}
    detail = checks["demographic parity difference by sex"]
    assert "0.2667 exceeds the threshold 0.1000" in detail and "Male" in detail and "Female" in detail
    assert audit_fairness(Y_TRUE, Y_PRED, people[["sex"]], max_dp_difference=0.3).report.passed
    monkeypatch.setenv(MAX_DP_ENV, "0.1")
    assert not audit_fairness(Y_TRUE, Y_PRED, people[["sex"]]).report.passed
    monkeypatch.setenv(MAX_DP_ENV, "a lot")
    with pytest.raises(ValueError, match=MAX_DP_ENV):
        audit_fairness(Y_TRUE, Y_PRED, people)


def _scored_split(people: pd.DataFrame, sensitive: bool) -> Split:
    """A model-ready split whose test rows are the fixture's people."""
    X, y = make_classification(200, n_features=4, random_state=0)
    X_test = np.column_stack([Y_PRED * 4.0 - 2.0, np.zeros((11, 3))])
    return Split(X, X_test, y, Y_TRUE, people if sensitive else None)


def test_evaluate_task_audits_fairness_and_fails_over_the_threshold(people, monkeypatch):
    from tasks.evaluate import evaluate

    monkeypatch.delenv(MAX_DP_ENV, raising=False)
    model = {"linear": LogisticRegression().fit(*make_classification(200, n_features=4, random_state=0))}
    model["linear"].coef_[:] = [[1.0, 0, 0, 0]]
    model["linear"].intercept_[:] = 0.0  # predicts the first column's sign: exactly Y_PRED
    _, results = evaluate.fn("fixture", model, _scored_split(people, True), cv=0)
    audit = results["linear"].fairness
    assert audit.disparities.loc["sex", "dp_difference"] == pytest.approx(4 / 15)
    _, plain = evaluate.fn("fixture", model, _scored_split(people, False), cv=0)
    assert plain["linear"].fairness is None
    with pytest.raises(AuditFailedError, match=r"linear: demographic parity difference by sex.*0\.2667 exceeds"):
        evaluate.fn("fixture", model, _scored_split(people, True), cv=0, fairness_max_dp_difference=0.05)

    report = UnitReport("unitXX", "test_accuracy", True, {})
    report.add_evaluation(results["linear"])
    assert report.metrics["fairness_dp_difference_sex"] == pytest.approx(4 / 15)
    assert {"fairness by sex", "fairness by sex × race", "fairness disparities", "fairness error-rate tests"} <= set(
        report.tables)


def test_catalog_declares_adults_sensitive_columns():
    assert DATASETS["adult"].sensitive == ("sex", "race")
    assert sensitive_attributes("iris", pd.DataFrame({"x": [1]})) is None
    with pytest.raises(ValueError, match="race"):
        sensitive_attributes("adult", pd.DataFrame({"sex": ["Male"]}))


def test_shap_additivity_audit_catches_native_categorical_splits():
    rng = np.random.default_rng(0)
    n = 600
    colour = rng.integers(0, 6, n)
    x = rng.normal(size=n)
    y = ((colour % 2 == 0) ^ (x > 0.5)).astype(int)
    X = pd.DataFrame({"colour": colour.astype(float), "x": x})
    identity = FunctionTransformer()
    numeric = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X.to_numpy(), y)
    assert audit_shap_additivity(shap_tree(identity, numeric, X.head(100))).passed
    native = HistGradientBoostingClassifier(max_iter=30, categorical_features=[0], random_state=0)
    native.fit(X.to_numpy(), y)
    assert not audit_shap_additivity(shap_tree(identity, native, X.head(100))).passed


@pytest.mark.slow
def test_unit14_flow_audits_and_registers(prefect_harness, fresh_home):
    from flows.unit14_fairness import unit14_fairness
    from pipeline.lessons import fairness
    from pipeline.registry import client
    from pipeline.units.unit14_fairness import Unit14Params

    outcome = unit14_fairness(Unit14Params(profile="quick", cv_folds=0, eg_iterations=4))
    assert outcome["status"] == "succeeded" and outcome["primary_metric"] == "test_accuracy"
    assert 0.82 < outcome["value"] < 0.9 and (outcome["version"], outcome["alias"]) == ("1", "champion")
    run = client().get_run(outcome["run_id"])
    metrics = run.data.metrics
    assert metrics["fairness_dp_difference_sex"] > 0.1  # the data's gap shows in the model
    assert 0 < metrics["mitigation_dp_difference_sex"] < metrics["fairness_dp_difference_sex"]
    figures = {a.path for a in client().list_artifacts(outcome["run_id"], "figures")}
    assert {f"figures/{name}.png" for name in fairness.CAPTIONS} <= figures
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(client().download_artifacts(outcome["run_id"], "reports/report.md", tmp)).read_text()
        mitigation = pd.read_csv(client().download_artifacts(outcome["run_id"], "tables/mitigation.csv", tmp))
    assert "## Mitigation" in report and "## Sources of bias" in report and "shap_importance.png" in report
    assert set(mitigation["method"]) >= {fairness.BASELINE, fairness.REWEIGHED, fairness.THRESHOLDS, fairness.REDUCTION}
