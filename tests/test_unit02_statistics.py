"""Unit 2: the statistics by hand against scipy.stats, the cleaning, and the flow on the quick profile."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from pipeline.audit.stats import P_ATOL, P_RTOL, STAT_RTOL, audit_statistics
from pipeline.lessons import statistics as lesson
from pipeline.scratch import stats


@pytest.fixture(scope="module")
def samples():
    """Two skewed samples with ties (rounded log-normal), like fares."""
    rng = np.random.default_rng(0)
    a = np.round(rng.lognormal(3.2, 1.0, 60), 0)
    b = np.round(rng.lognormal(2.8, 0.8, 90), 0)
    return a, b


@pytest.fixture(scope="module")
def passengers():
    from pipeline.data import load_dataset

    return load_dataset("titanic", "quick").splits["train"]


@pytest.fixture(scope="module")
def analysis(passengers):
    return lesson.analyse(passengers, alpha=0.05, resamples=500, seed=0)


def test_describe_matches_scipy(samples):
    a, _ = samples
    mine, theirs = stats.describe(a), sps.describe(a)
    assert mine["mean"] == pytest.approx(theirs.mean, rel=STAT_RTOL)
    assert mine["variance"] == pytest.approx(theirs.variance, rel=STAT_RTOL)
    assert mine["skewness"] == pytest.approx(theirs.skewness, rel=STAT_RTOL)
    assert mine["std"] == pytest.approx(np.std(a, ddof=1), rel=STAT_RTOL)
    assert (mine["median"], mine["mode"]) == (np.median(a), sps.mode(a).mode)


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_welch_matches_scipy(samples, confidence):
    a, b = samples
    mine = stats.welch_t_test(a, b, confidence)
    theirs = sps.ttest_ind(a, b, equal_var=False)
    interval = theirs.confidence_interval(confidence)
    assert [mine.statistic, mine.df, mine.ci_low, mine.ci_high] == pytest.approx(
        [theirs.statistic, theirs.df, interval.low, interval.high], rel=STAT_RTOL)
    assert mine.pvalue == pytest.approx(theirs.pvalue, rel=P_RTOL, abs=P_ATOL)


def test_mann_whitney_matches_scipy_with_ties(samples):
    a, b = samples
    assert len(np.unique(np.r_[a, b])) < len(a) + len(b)  # there are ties to correct for
    mine = stats.mann_whitney_u(a, b)
    theirs = sps.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic")
    assert mine.statistic == pytest.approx(theirs.statistic, rel=STAT_RTOL)
    assert mine.pvalue == pytest.approx(theirs.pvalue, rel=P_RTOL, abs=P_ATOL)
    np.testing.assert_array_equal(stats.ranks(np.r_[a, b]), sps.rankdata(np.r_[a, b]))
    # U / (n_a n_b) is the ROC AUC of the value as a score for "belongs to a"
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(np.r_[np.ones(len(a)), np.zeros(len(b))], np.r_[a, b])
    assert mine.common_language == pytest.approx(auc, rel=1e-12)
    assert mine.rank_biserial == pytest.approx(2 * auc - 1, rel=1e-12)


def test_chi_square_and_cramers_v_match_scipy():
    table = np.array([[30, 22, 15, 9], [10, 18, 25, 31]])
    mine = stats.chi_square_independence(table)
    statistic, p, dof, expected = sps.chi2_contingency(table, correction=False)
    assert (mine.statistic, mine.df) == (pytest.approx(statistic, rel=STAT_RTOL), dof)
    assert mine.pvalue == pytest.approx(p, rel=P_RTOL, abs=P_ATOL)
    np.testing.assert_allclose(mine.expected, expected, rtol=STAT_RTOL)
    assert mine.cramers_v == pytest.approx(sps.contingency.association(table, method="cramer"), rel=STAT_RTOL)
    with pytest.raises(ValueError, match="at least 2 rows"):
        stats.chi_square_independence([[1, 2, 3]])


def test_effect_sizes(samples):
    a, b = samples
    student = sps.ttest_ind(a, b, equal_var=True).statistic
    d = stats.cohens_d(a, b)
    assert d == pytest.approx(student * np.sqrt(1 / len(a) + 1 / len(b)), rel=STAT_RTOL)
    assert stats.hedges_g(a, b) == pytest.approx(d * (1 - 3 / (4 * (len(a) + len(b)) - 9)), rel=1e-12)
    assert stats.cohens_d(b, a) == pytest.approx(-d)


@pytest.mark.parametrize("successes, n", [(0, 10), (3, 10), (10, 10), (342, 891)])
def test_wilson_matches_binomtest(successes, n):
    theirs = sps.binomtest(successes, n).proportion_ci(0.95, method="wilson")
    assert stats.wilson_interval(successes, n) == pytest.approx((theirs.low, theirs.high), rel=STAT_RTOL, abs=1e-15)


def test_bootstrap_matches_scipy_percentile(samples):
    a, b = samples
    low, high, differences = stats.bootstrap_interval(a, b, np.median, 1000, 0.95, seed=3)
    theirs = sps.bootstrap((a, b), lambda x, y, axis=-1: np.median(x, axis=axis) - np.median(y, axis=axis),
                           n_resamples=1000, method="percentile", rng=np.random.default_rng(3)).confidence_interval
    width = theirs.high - theirs.low
    assert differences.shape == (1000,)
    assert abs(low - theirs.low) <= 0.15 * width and abs(high - theirs.high) <= 0.15 * width


def test_samples_with_missing_values_are_refused():
    with pytest.raises(ValueError, match="missing or infinite"):
        stats.welch_t_test([1.0, np.nan, 3.0], [1.0, 2.0])


def test_cleaning_reports_every_missing_value_and_drops_nothing(passengers):
    clean, report = lesson.clean_titanic(passengers)
    assert len(clean) == len(passengers) == 891
    missing = report.set_index("column")["missing"]
    assert missing.to_dict() == passengers.isna().sum().to_dict()
    assert (missing["Age"], missing["Embarked"], missing["Cabin"]) == (177, 2, 687)
    assert report.set_index("column").loc["Fare", "action"] == "none needed"
    assert clean[["Age", "Embarked"]].notna().all().all()
    assert clean["age_was_missing"].sum() == 177 and clean["has_cabin"].sum() == 891 - 687
    # an imputed age is the median of the passenger's class and sex
    first_female = passengers[(passengers["Pclass"] == 1) & (passengers["Sex"] == "female")]["Age"].median()
    imputed = clean[clean["age_was_missing"] & (clean["Pclass"] == 1) & (clean["Sex"] == "female")]["Age"]
    assert len(imputed) and (imputed == first_female).all()
    assert not (clean["deck"] == "unknown").ne(~clean["has_cabin"]).any()


def test_bayes_equals_the_direct_count(analysis):
    bayes = analysis.bayes.set_index("quantity")["value"]
    assert bayes["P(survived | female) by Bayes"] == pytest.approx(bayes["P(survived | female) counted"], rel=1e-12)
    assert bayes["P(survived | female) by Bayes"] == pytest.approx(0.7420, abs=1e-4)  # Kaggle's tutorial


def test_hypothesis_is_tested_and_concluded(analysis):
    table = lesson.tests_table(analysis)
    assert list(table["test"]) == ["Welch t on fare", "Welch t on log(1 + fare)", "Mann–Whitney U on fare",
                                   "chi-square: survival × fare quartile"]
    assert table["reject H0 at α=0.05"].all() and analysis.rejected
    rates = analysis.by_quartile["rate"].to_numpy()
    assert np.all(np.diff(rates) > 0)  # survival climbs with every fare quartile
    assert analysis.contingency.to_numpy().sum() == 891
    assert "reject the null hypothesis at α = 0.05" in lesson.conclusion(analysis)
    metrics = lesson.statistics_metrics(analysis)
    assert metrics["welch_p"] < 0.05 and metrics["reject_h0"] == 1.0
    assert audit_statistics(*lesson.audit_inputs(analysis)).passed


def test_audit_fails_when_a_statistic_is_wrong(analysis):
    a, b, table, confidence, (low, high, resamples, seed) = lesson.audit_inputs(analysis)
    report = audit_statistics(a, b, table, confidence, (low + 5.0, high, resamples, seed))
    assert [f.check for f in report.failures] == ["bootstrap 95% CI of the median difference (percentile)"]


def test_fare_models_take_the_kaggle_columns(passengers):
    from pipeline.features import split_titanic

    split = split_titanic(passengers, 0.25, 0)
    models = lesson.fare_models(0)
    for model in models.values():
        model.fit(split.X_train, split.y_train)
    fare_only = models[lesson.FARE_ONLY]
    assert list(fare_only[:-1].get_feature_names_out()) == ["Fare"]
    # a higher fare, a higher predicted survival
    probabilities = fare_only.predict_proba(pd.DataFrame(split.X_test.head(2)).assign(Fare=[5.0, 200.0]))[:, 1]
    assert probabilities[1] > probabilities[0]


def test_report_document_shows_figures_the_report_has(analysis):
    from pipeline.report import FIGURE_LINK

    table = pd.DataFrame({"test_roc_auc": [0.5, 0.67]}, index=pd.Index(["a", "b"], name="model"))
    document = lesson.report_markdown(analysis, table)
    shown = FIGURE_LINK.findall(document)
    assert set(shown) - {"roc_curve"} == set(lesson.CAPTIONS)
    assert document.startswith("# Did passengers who paid a higher fare survive more often?")
    assert "## Conclusion" in document and "α = 0.05" in document


@pytest.mark.slow
def test_unit02_flow_quick(prefect_harness, fresh_home):
    from flows.unit02_statistics import unit02_statistics
    from pipeline.registry import client
    from pipeline.units.unit02_statistics import Unit02Params

    outcome = unit02_statistics(Unit02Params(profile="quick", cv_folds=2))
    assert outcome["status"] == "succeeded" and outcome["primary_metric"] == "test_roc_auc"
    assert 0.6 <= outcome["value"] <= 0.8
    assert (outcome["version"], outcome["alias"]) == ("1", "champion")
    assert outcome["basis"] == "same holdout" and outcome["challenger_score"] == pytest.approx(outcome["value"])
    run = client().get_run(outcome["run_id"])
    assert run.data.metrics["welch_p"] < 0.05 and run.data.metrics["reject_h0"] == 1.0
    assert run.data.metrics["p_survived_given_female"] == pytest.approx(0.7420, abs=1e-4)
    figures = {a.path for a in client().list_artifacts(outcome["run_id"], "figures")}
    assert {f"figures/{name}.png" for name in lesson.CAPTIONS} <= figures
    reports = {a.path for a in client().list_artifacts(outcome["run_id"], "reports")}
    assert "reports/report.md" in reports
