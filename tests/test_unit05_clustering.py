"""Unit 5: k-means from scratch against sklearn.cluster.KMeans, the clustering evaluation against
sklearn.metrics, the Mall Customers suite, the segment names, and the flow on the quick profile."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.cluster import AgglomerativeClustering
from sklearn.cluster import KMeans as SklearnKMeans
from sklearn.datasets import make_blobs

from pipeline.audit.clustering import INERTIA_TOL, audit_kmeans
from pipeline.data import load_dataset
from pipeline.evaluation import compare_models, evaluate
from pipeline.lessons import clustering
from pipeline.scratch.kmeans import KMeans, kmeans_plusplus, squared_distances
from pipeline.validation import DataValidationError, validate_frame, validation_frame


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    X, _ = make_blobs(300, n_features=3, centers=5, cluster_std=1.5, random_state=3)
    return X


@pytest.fixture(scope="module")
def mall() -> pd.DataFrame:
    return load_dataset("mall_customers", "full").splits["data"]


# --- k-means against sklearn -------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 5, 8])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_equals_sklearn_from_the_same_centroids(blobs, k, seed):
    init, _ = kmeans_plusplus(blobs, k, seed)
    ours = KMeans(k, init=init, n_init=1).fit(blobs)
    theirs = SklearnKMeans(k, init=init, n_init=1, algorithm="lloyd").fit(blobs)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=INERTIA_TOL)
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, atol=1e-8)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_array_equal(ours.predict(blobs[:50]), theirs.predict(blobs[:50]))
    np.testing.assert_allclose(ours.transform(blobs[:50]), theirs.transform(blobs[:50]), atol=1e-10)
    assert ours.score(blobs) == pytest.approx(theirs.score(blobs), rel=1e-10)


def test_kmeans_relocates_an_empty_cluster_like_sklearn():
    # two centroids start far from every point: the E-step leaves them empty
    X = np.random.default_rng(0).normal(size=(60, 2))
    init = np.array([[0.0, 0.0], [100.0, 100.0], [-100.0, 100.0]])
    ours = KMeans(3, init=init, n_init=1).fit(X)
    theirs = SklearnKMeans(3, init=init, n_init=1, algorithm="lloyd").fit(X)
    assert len(np.unique(ours.labels_)) == 3
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=INERTIA_TOL)


def test_kmeans_contract(blobs):
    model = KMeans(5, random_state=0).fit(blobs)
    assert model.inertia_ == pytest.approx(squared_distances(blobs, model.cluster_centers_).min(axis=1).sum())
    np.testing.assert_array_equal(model.predict(blobs), model.labels_)  # converged: labels are the nearest
    np.testing.assert_array_equal(KMeans(5, random_state=0).fit_predict(blobs), model.labels_)
    assert model.transform(blobs).shape == (300, 5) and model.n_iter_ >= 1
    # the best of n_init starts is at least as good as sklearn's best of as many
    assert model.inertia_ <= SklearnKMeans(5, n_init=10, random_state=0).fit(blobs).inertia_ * (1 + 1e-9)
    with pytest.raises(ValueError, match="init has shape"):
        KMeans(3, init=np.zeros((2, 3))).fit(blobs)
    with pytest.raises(ValueError, match="n_clusters"):
        KMeans(400).fit(blobs)


def test_kmeans_plusplus_seeds_distinct_rows_spread_out(blobs):
    centers, idx = kmeans_plusplus(blobs, 5, random_state=0)
    np.testing.assert_array_equal(centers, blobs[idx])
    assert len(set(idx.tolist())) == 5
    again, same = kmeans_plusplus(blobs, 5, random_state=0)
    np.testing.assert_array_equal(idx, same)
    # five well-separated blobs: the D^2 weighting puts one seed in each
    _, truth = make_blobs(300, n_features=3, centers=5, cluster_std=0.3, random_state=3)
    tight, _ = make_blobs(300, n_features=3, centers=5, cluster_std=0.3, random_state=3)
    hits = [len(set(truth[kmeans_plusplus(tight, 5, random_state=s)[1]].tolist())) for s in range(10)]
    assert min(hits) == 5
    # and it beats uniform random seeding on the starting inertia, on average
    def start_inertia(C):
        return squared_distances(blobs, C).min(axis=1).sum()
    rng = np.random.default_rng(0)
    plus = np.mean([start_inertia(kmeans_plusplus(blobs, 5, random_state=s)[0]) for s in range(20)])
    uniform = np.mean([start_inertia(blobs[rng.choice(300, 5, replace=False)]) for _ in range(20)])
    assert plus < uniform


def test_audit_passes_on_mall_and_fails_a_wrong_model(mall):
    Z = clustering.feature_transformer(False).fit_transform(mall[clustering.NUMERIC])
    ours = KMeans(5, n_init=3, random_state=0).fit(Z)
    assert audit_kmeans(ours, Z).passed
    ours.labels_ = np.roll(ours.labels_, 1)  # no longer what its centroids assign
    assert not audit_kmeans(ours, Z).passed


# --- the clustering evaluation ------------------------------------------------------------------


def test_clustering_evaluation_equals_sklearn_metrics(blobs):
    model = KMeans(4, random_state=0).fit(blobs)
    result = evaluate(model, blobs, None, blobs, None, task="clustering", cv=0, fit=False)
    labels = model.predict(blobs)
    assert result.task == "clustering" and result.y_true is None and result.figures() == {}
    m = result.metrics
    assert m["test_silhouette"] == pytest.approx(skm.silhouette_score(blobs, labels), abs=1e-12)
    assert m["test_calinski_harabasz"] == pytest.approx(skm.calinski_harabasz_score(blobs, labels), rel=1e-12)
    assert m["test_davies_bouldin"] == pytest.approx(skm.davies_bouldin_score(blobs, labels), rel=1e-12)
    assert m["test_inertia"] == pytest.approx(model.inertia_, rel=1e-12)
    assert "adjusted_rand" not in result.metric_names
    _, truth = make_blobs(300, n_features=3, centers=5, cluster_std=1.5, random_state=3)
    with_truth = evaluate(model, blobs, None, blobs, truth, cv=0, fit=False)  # task="auto": a clusterer
    assert with_truth.metrics["test_adjusted_rand"] == pytest.approx(skm.adjusted_rand_score(truth, labels))
    assert "Clustering" in with_truth.summary_markdown()


def test_clustering_cv_scores_the_held_out_fold(blobs):
    from sklearn.model_selection import KFold

    result = evaluate(SklearnKMeans(4, n_init=2, random_state=0), blobs, None, blobs, None, task="clustering",
                      cv=3, seed=7)
    expected = []
    for train, val in KFold(3, shuffle=True, random_state=7).split(blobs):
        fold = SklearnKMeans(4, n_init=2, random_state=0).fit(blobs[train])
        expected.append(skm.silhouette_score(blobs[val], fold.predict(blobs[val])))
    assert [f["silhouette"] for f in result.fold_metrics] == pytest.approx(expected, abs=1e-12)
    assert result.metrics["cv_silhouette_mean"] == pytest.approx(np.mean(expected), abs=1e-12)
    assert result.cv_strategy.startswith("KFold(n_splits=3")


def test_compare_models_without_targets_and_without_predict(blobs):
    models = {"ours": KMeans(4, random_state=0), "ward": AgglomerativeClustering(4)}
    table, results = compare_models(models, blobs, None, blobs, None, task="clustering", cv=3, fit=True)
    ward_labels = AgglomerativeClustering(4).fit_predict(blobs)
    assert results["ward"].metrics["test_silhouette"] == pytest.approx(skm.silhouette_score(blobs, ward_labels))
    assert "cv_silhouette_mean" not in results["ward"].metrics and "test_inertia" not in results["ward"].metrics
    assert any("no predict" in note for note in results["ward"].notes)
    assert np.isnan(table.loc["ward", "test_inertia"]) and table.loc["ours", "cv_silhouette_mean"] > 0.3


def test_one_cluster_gives_nan_scores_with_a_note(blobs):
    result = evaluate(KMeans(1, random_state=0), blobs, None, blobs, None, task="clustering", cv=0)
    assert np.isnan(result.metrics["test_silhouette"]) and result.notes


# --- the Mall Customers suite ---------------------------------------------------------------------


@pytest.mark.parametrize("column, value", [("Age", 140), ("Age", 5), ("Gender", "Other"),
                                           ("Spending Score (1-100)", 0), ("Annual Income (k$)", -3)])
def test_suite_rejects_out_of_range_and_unknown_values(mall, tmp_path, column, value):
    bad = mall.copy()
    bad.loc[3, column] = value
    with pytest.raises(DataValidationError) as caught:
        validate_frame(validation_frame("mall_customers", {"data": bad}), "mall_customers",
                       quarantine_dir=tmp_path)
    assert [f["column"] for f in caught.value.report.failures] == [column]


def test_suite_passes_on_the_real_data(mall, tmp_path):
    assert validate_frame(validation_frame("mall_customers", {"data": mall}), "mall_customers",
                          quarantine_dir=tmp_path).success


# --- the lesson -------------------------------------------------------------------------------------


def test_segment_names_follow_the_centroid():
    name = clustering.segment_name
    assert name(pd.Series({"age": -1.0, "income": 0.0, "score": 1.2})) == "young high spenders"
    assert name(pd.Series({"age": 0.1, "income": 1.1, "score": -1.0})) == "affluent savers"
    assert name(pd.Series({"age": 0.9, "income": -0.8, "score": 0.0})) == "older low-income average spenders"
    assert name(pd.Series({"age": 0.0, "income": 0.0, "score": 0.0})) == "average customers"


def test_segments_on_mall(mall):
    fit = clustering.fit_segments(mall, 5, 6, 3, False, 30.0, "quick", 0)
    table = clustering.segment_table(fit)
    assert table["size"].sum() == 200 and len(table) == 5 and table["name"].is_unique
    # centroids in original units are the members' means, i.e. our centroids un-standardised
    scaler = fit.features[-1]
    raw = scaler.inverse_transform(fit.ours.cluster_centers_)
    np.testing.assert_allclose(table[["age", "income_k$", "spending_score"]].to_numpy(), raw, atol=1e-9)
    assert list(fit.k_scan["k"]) == [2, 3, 4, 5, 6] and fit.k_scan["inertia"].is_monotonic_decreasing
    # the registered model takes raw columns and agrees with the fitted labels
    np.testing.assert_array_equal(fit.segmenter.predict(mall[clustering.NUMERIC]), fit.labels)
    figures = clustering.figures(fit, table)
    assert set(figures) == set(clustering.CAPTIONS) and all(png.startswith(b"\x89PNG") for png in figures.values())


def test_with_gender_encodes_it(mall):
    fit = clustering.fit_segments(mall, 4, 4, 2, True, 30.0, "quick", 0)
    assert fit.Z.shape == (200, 4) and fit.columns[-1] == "Gender"
    np.testing.assert_array_equal(fit.segmenter.predict(mall[fit.columns]), fit.labels)


# --- the flow -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_unit05_flow_registers_segments(prefect_harness, fresh_home):
    from flows.unit05_clustering import unit05_clustering
    from pipeline.registry import client, load_version
    from pipeline.units.unit05_clustering import Unit05Params

    outcome = unit05_clustering(Unit05Params(profile="quick", k_max=6, cv_folds=3))
    assert outcome["status"] == "succeeded" and outcome["primary_metric"] == "test_silhouette"
    assert 0.3 < outcome["value"] < 0.6
    assert (outcome["version"], outcome["alias"]) == ("1", "champion") and outcome["basis"] == "logged metrics"
    run = client().get_run(outcome["run_id"])
    assert {"test_silhouette", "cv_silhouette_mean", "ward_vs_kmeans_ari"} <= set(run.data.metrics)
    figures = {a.path for a in client().list_artifacts(outcome["run_id"], "figures")}
    assert {f"figures/{name}.png" for name in clustering.CAPTIONS} <= figures
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(client().download_artifacts(outcome["run_id"], "reports/report.md", tmp)).read_text()
        segments = pd.read_csv(client().download_artifacts(outcome["run_id"], "tables/segments.csv", tmp))
    assert "| name" in report and "segments_income_score.png" in report
    assert segments["size"].sum() == 200 and all(name in report for name in segments["name"])

    model = load_version("mlpath-unit05", "1")  # skops, under the registry's allowlist
    customers = pd.DataFrame({"Age": [22, 60], "Annual Income (k$)": [20, 120], "Spending Score (1-100)": [90, 10]})
    assert model.predict(customers).shape == (2,)
    with pytest.raises(ValueError, match="Age"):  # the suite guards the registered model's inputs
        model.predict(customers.assign(Age=[150, 30]))
