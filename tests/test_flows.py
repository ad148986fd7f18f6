"""Every unit flow end to end on the quick profile, against a Prefect test server."""

from __future__ import annotations

import json
import tempfile

import pytest

from pipeline.audit import AuditFailedError, AuditReport
from pipeline.registry import client
from pipeline.units.unit01_pca import Unit01Params
from pipeline.units.unit04_trees import Unit04Params
from pipeline.units.unit06_evaluation import Unit06Params
from pipeline.units.unit07_mlp import Unit07Params
from pipeline.units.unit08_cnn import Unit08Params

pytestmark = pytest.mark.slow


def _captions(run_id: str) -> dict[str, str]:
    """The run's figures/captions.json as logged: figure file name -> what to look for."""
    with tempfile.TemporaryDirectory() as tmp:
        path = client().download_artifacts(run_id, "figures/captions.json", tmp)
        with open(path, encoding="utf-8") as file:
            return json.load(file)


def _assert_registered(outcome: dict, unit: str, metric: str, low: float) -> None:
    assert outcome["status"] == "succeeded"
    assert outcome["unit"] == unit and outcome["primary_metric"] == metric
    assert low <= outcome["value"] <= 1.0
    assert (outcome["version"], outcome["alias"]) == ("1", "champion")
    # the flow hands its holdout over: the registry re-scored the model there, and got the same
    assert outcome["basis"] == "same holdout" and outcome["challenger_score"] == pytest.approx(outcome["value"])
    run = client().get_run(outcome["run_id"])
    assert run.data.metrics[metric] == pytest.approx(outcome["value"])
    assert run.data.params["data.titanic.source" if unit != "unit01" else "data.iris.source"]
    # named after the Prefect flow run it came from, and tagged with it
    assert run.info.run_name == f"{unit}-quick-{run.data.tags['prefect.flow_run_name']}"
    assert run.data.tags["prefect.flow_run_id"] and run.inputs.dataset_inputs


def test_unit01_pca(prefect_harness, fresh_home):
    from flows.unit01_pca import unit01_pca

    outcome = unit01_pca(Unit01Params(profile="quick"))
    _assert_registered(outcome, "unit01", "test_accuracy", 0.85)
    metrics = client().get_run(outcome["run_id"]).data.metrics
    assert metrics["explained_variance_ratio_pc1"] == pytest.approx(0.9246, abs=1e-4)
    artifacts = {a.path for a in client().list_artifacts(outcome["run_id"], "figures")}
    assert {"figures/projection_2d.png", "figures/linear_map.png"} <= artifacts
    captions = _captions(outcome["run_id"])
    assert list(captions)[:3] == ["projection_2d", "explained_variance", "linear_map"]  # the lesson's first
    assert all(captions.values()) and "diagonal" in captions["confusion_matrix"]

    # the same data and seed again: the champion, re-scored on this run's holdout, ties; it stays
    again = unit01_pca(Unit01Params(profile="quick"))
    assert (again["version"], again["alias"]) == ("2", "challenger")
    assert again["champion_score"] == pytest.approx(outcome["value"])
    assert again["reason"] == f"tied champion v1 at {outcome['value']:.4f} on the same holdout (quick)"


def test_unit04_trees(prefect_harness, fresh_home):
    from flows.unit04_trees import unit04_trees

    outcome = unit04_trees(Unit04Params(profile="quick"))
    _assert_registered(outcome, "unit04", "test_accuracy", 0.7)
    files = {a.path for a in client().list_artifacts(outcome["run_id"])}
    assert {"trees_iris.txt", "trees_titanic.txt"} <= files
    figures = {a.path for a in client().list_artifacts(outcome["run_id"], "figures")}
    new = ("gradient_descent_loss", "tree_iris", "tree_titanic", "decision_boundary_iris")
    assert {f"figures/{name}.png" for name in new} <= figures
    captions = _captions(outcome["run_id"])
    assert all(captions[name] for name in new)
    assert "died predicted as survived" in captions["confusion_matrix"]  # Titanic's classes by name
    with tempfile.TemporaryDirectory() as tmp:
        trees = open(client().download_artifacts(outcome["run_id"], "trees_titanic.txt", tmp)).read()
    assert "class: survived" in trees and "class: 1" not in trees


def test_unit06_evaluation(prefect_harness, fresh_home):
    from flows.unit06_evaluation import unit06_evaluation

    outcome = unit06_evaluation(Unit06Params(profile="quick", max_depth_range=[1, 3, 6]))
    _assert_registered(outcome, "unit06", "test_f1", 0.6)
    metrics = client().get_run(outcome["run_id"]).data.metrics
    assert {"cv_f1_mean", "cv_f1_std", "test_roc_auc", "best_depth_by_cv_accuracy"} <= set(metrics)


def test_prefect_artifacts_published(prefect_harness, fresh_home):
    import asyncio
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.unit01_pca import unit01_pca

    unit01_pca(Unit01Params(profile="quick", cv_folds=0))

    async def keys():
        async with get_client() as prefect:
            found = await prefect.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["unit01-summary", "unit01-metrics", "unit01-plots",
                                            "unit01-table-explained-variance"])))
            return {a.key: a.data for a in found}

    published = asyncio.run(keys())
    assert set(published) == {"unit01-summary", "unit01-metrics", "unit01-plots", "unit01-table-explained-variance"}
    # the report's tables as tables: the named index (components) is the first column, no 0..n index
    table = published["unit01-table-explained-variance"]
    rows = json.loads(table) if isinstance(table, str) else table
    assert list(rows[0])[:2] == ["component", "eigenvalue"] and rows[0]["component"] == "PC1"


def test_failed_audit_fails_the_task():
    from tasks.audit import audit

    def disagreeing_twin() -> AuditReport:
        report = AuditReport("demo")
        report.add("coefficients", False, "max |diff| = 1e-2 (tol 1e-5)")
        return report

    with pytest.raises(AuditFailedError, match="coefficients: max"):
        audit.fn(disagreeing_twin)


def test_unit07_numpy_mlp(prefect_harness, fresh_home):
    from flows.unit07_mlp import unit07_mlp

    outcome = unit07_mlp(Unit07Params(profile="quick", epochs=3))
    assert outcome["status"] == "succeeded" and outcome["alias"] == "champion"
    assert outcome["value"] >= 0.9  # the quick-profile floor, reached in 3 epochs
    run = client().get_run(outcome["run_id"])
    assert run.data.params["data.mnist.profile"] == "quick"
    assert len(client().get_metric_history(outcome["run_id"], "mlp.loss")) == 3
    # the held-out curve beside the training one, epoch by epoch
    held_out = client().get_metric_history(outcome["run_id"], "mlp.val_accuracy")
    assert [m.step for m in held_out] == [1, 2, 3] and held_out[-1].value == pytest.approx(outcome["value"])
    figures = {a.path for a in client().list_artifacts(outcome["run_id"], "figures")}
    assert {"figures/learning_curves.png", "figures/misclassified.png"} <= figures
    assert "held-out" in _captions(outcome["run_id"])["learning_curves"].lower()


def test_unit08_cnn(prefect_harness, fresh_home):
    from flows.unit08_cnn import unit08_cnn

    outcome = unit08_cnn(Unit08Params(profile="quick", epochs_simple=1, epochs_resnet=2))
    assert outcome["status"] == "succeeded" and outcome["alias"] == "champion"
    assert outcome["value"] > 0.2  # two epochs on 5,000 images: well above chance (0.1)
    metrics = client().get_run(outcome["run_id"]).data.metrics
    assert {"test_accuracy_cat", "model_a_test_accuracy", "model_b.train_loss"} <= set(metrics)
    assert "true → predicted" in _captions(outcome["run_id"])["misclassified"]
    assert list((fresh_home / "runs" / "unit08").glob("model_b/*/last.pt"))
