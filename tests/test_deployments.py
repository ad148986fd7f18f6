"""Deployments, the local servers and drift-triggered retraining.

The slow tests run against a real Prefect server, a process worker and the MLflow UI started by
``pipeline.app.services.local_services`` (what ``mlpath ui`` runs), in a temporary MLPATH_HOME: they
apply ``deployments/prefect.yaml``, run unit01's deployment twice (the second run does not beat
the first, so the champion stays), and drive the drift monitor with steady and shifted data (the
shifted batch starts the retraining deployment with the batch appended to its training data).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.app.deploy import (
    RETRAINING_TAG,
    WORK_POOL,
    DeploymentError,
    apply_deployments,
    deployment_specs,
    describe_cron,
    project_dir,
    retraining_deployment,
)
from pipeline.app.services import (
    ServiceStartError,
    _alive,
    _descendants,
    format_links,
    free_port,
    local_services,
    stop_process,
    ui_links,
)
from pipeline.units import get_unit, implemented_units

from conftest import planned_ids

PLANNED, UNBUILT = planned_ids()


@pytest.fixture(autouse=True, scope="module")
def _planned(planned_units):
    """The planned units these tests show, stand-ins where the path has too few."""


QUICK = {"params": {"profile": "quick", "cv_folds": 0}}
RUN_TIMEOUT_S = 240


# --- prefect.yaml, without a server ---------------------------------------------------------

def test_every_built_unit_has_a_scheduled_retraining_deployment():
    specs = {spec["entrypoint"]: spec for spec in deployment_specs()}
    for unit in implemented_units():
        spec = specs[unit.flow]
        assert RETRAINING_TAG in spec["tags"] and spec["work_pool"]["name"] == WORK_POOL
        assert spec["parameters"] == {"params": {"profile": "full"}}
        assert spec["concurrency_limit"] == 1
        assert [s["cron"] for s in spec["schedules"]], f"{unit.id} has no retraining schedule"


def test_schedules_are_valid_cron_in_utc():
    from prefect.client.schemas.schedules import CronSchedule

    for spec in deployment_specs():
        for schedule in spec.get("schedules", []):
            CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])


def test_path_and_monitor_deployments_default_to_the_full_run():
    specs = {spec["entrypoint"]: spec for spec in deployment_specs()}
    assert specs["flows.learning_path:learning_path"]["parameters"] == {"profile": "full"}
    monitor = specs["flows.monitoring:drift_monitor"]
    assert monitor["parameters"]["unit"] == "unit06" and monitor["schedules"]


def test_each_deployment_has_its_own_name_and_a_description_from_the_spec():
    specs = deployment_specs()
    names = [spec["name"] for spec in specs]
    assert len(set(names)) == len(names)
    by_name = {spec["name"]: spec for spec in specs}
    for unit in implemented_units():
        spec = by_name[f"retrain-{unit.id}"]
        assert spec["entrypoint"] == unit.flow
        assert spec["description"].startswith(f"Unit {unit.number}: {unit.title}. Retrains on the full profile ")
        assert "None" not in spec["description"]
    unit08 = get_unit("unit08")
    assert by_name["retrain-unit08"]["description"] == (
        f"Unit 8: {unit08.title}. Retrains on the full profile Sundays at 05:00 UTC: {unit08.schedule.why}. "
        "A new model becomes @champion only if it beats the current one, else @challenger.")
    assert by_name["titanic-unit06"]["description"] == (
        "Drift monitor for unit06, daily at 06:00 UTC: compares a recent titanic batch with the unit's "
        "training reference and, past PSI 0.2, runs its retraining deployment `retrain-unit06`.")
    assert by_name["full"]["description"].startswith("The whole path: every built unit")


@pytest.mark.parametrize("cron, words", [
    ("0 3 * * 1", "Mondays at 03:00 UTC"), ("30 5 * * 0", "Sundays at 05:30 UTC"),
    ("0 6 * * *", "daily at 06:00 UTC"), ("*/15 * * * *", 'on cron "*/15 * * * *" (UTC)'),
])
def test_cron_in_words(cron, words):
    assert describe_cron(cron) == words


def test_ui_links_open_the_runs_deployments_and_mlflow_model_training_view():
    from pipeline import registry
    from pipeline.app import services

    links = ui_links("http://127.0.0.1:4200", "http://127.0.0.1:5000/")
    assert links == [
        ("Prefect flow runs", "http://127.0.0.1:4200/runs"),
        ("Prefect deployments", "http://127.0.0.1:4200/deployments"),
        ("MLflow experiments", "http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"),
        ("MLflow models", "http://127.0.0.1:5000/#/models?workflowType=machine_learning"),
    ]
    assert ui_links("http://127.0.0.1:4200", None) == links[:2]
    assert format_links(links).splitlines()[2] == (
        "MLflow experiments:   http://127.0.0.1:5000/#/experiments?workflowType=machine_learning")
    # services cannot import the registry (pandas), so the two keep the same names by hand
    assert (services.MLFLOW_UI_ENV, services.MODEL_TRAINING_VIEW) == (registry.MLFLOW_UI_ENV,
                                                                      registry.MODEL_TRAINING_VIEW)


def test_retraining_deployment_names_flow_and_deployment():
    assert retraining_deployment("unit06") == "unit06-evaluation/retrain-unit06"
    with pytest.raises(DeploymentError, match=f"{PLANNED} has no retraining deployment"):
        retraining_deployment(PLANNED)


def test_apply_without_a_server_says_how_to_start_one(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(DeploymentError, match="mlpath ui"):
        apply_deployments()
    with pytest.raises(DeploymentError, match="does not answer"):
        apply_deployments(f"http://127.0.0.1:{free_port()}/api")


def test_library_modules_import_no_prefect():
    code = "import sys, pipeline.app.services, pipeline.app.deploy, pipeline.drift; print('prefect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- process handling ------------------------------------------------------------------------

def test_stop_process_ends_the_whole_tree_even_in_other_sessions():
    # a child in the group, and a grandchild in a session of its own (as Prefect starts flow runs)
    # (this interpreter, not `python3`: a pyenv shim is a shell script with children of its own)
    script = f"sleep 300 & {shlex.quote(sys.executable)} -c 'import os, time; os.setsid(); time.sleep(300)' & wait"
    process = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    deadline = time.monotonic() + 20
    while len(_descendants(process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    tree = [process.pid, *_descendants(process.pid)]
    assert len(tree) == 3
    stop_process(process, timeout=5)
    assert not [pid for pid in tree if _alive(pid)]


def test_a_taken_port_is_reported():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(ServiceStartError, match="in use"), local_services(sock.getsockname()[1]):
            pass


# --- against a real Prefect server -----------------------------------------------------------

@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Server, worker and MLflow UI in a temporary home, deployments applied; all stopped after."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path_factory.mktemp("deployments-home")
    started: list[int] = []
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLPATH_HOME", str(home))
        env.setenv("PREFECT_HOME", str(home / "prefect"))
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        try:
            with local_services(free_port(), free_port(),
                                extra_env={"PREFECT_WORKER_QUERY_SECONDS": "1"}) as services:
                names = apply_deployments(services.prefect_api_url)
                with temporary_settings(updates={PREFECT_API_URL: services.prefect_api_url}):
                    try:
                        yield services, names
                    finally:
                        _drain_prefect_workers()
                started = [pid for s in services.processes for pid in (s.process.pid, *_descendants(s.process.pid))]
        finally:
            leaked = [pid for pid in started if _alive(pid)]
            assert not leaked, f"processes still running after the services stopped: {leaked}"


def _drain_prefect_workers() -> None:
    """Send the logs and events of this module's in-process flow runs while their server is up.

    Left queued, they would be flushed at the end of the session, by prefect_test_harness's
    teardown, to a server that is gone: that drain waits forever.
    """
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain():
        for result in (APILogWorker.instance().drain(), EventsWorker.drain_all()):
            if inspect.isawaitable(result):
                await result

    run_coro_as_sync(drain())


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


@pytest.mark.slow
def test_deployments_are_listed_with_schedules(stack):
    services, names = stack
    retraining = {retraining_deployment(unit.id) for unit in implemented_units()}
    assert {"unit01-pca/retrain-unit01", "unit06-evaluation/retrain-unit06", "paper/retrain-paper"} <= retraining
    assert set(names) == retraining | {"learning-path/full", "learning-path/full-dask", "drift-monitor/titanic-unit06",
                                       "serving-drift-monitor/service-unit13-unit11"}
    with _client() as client:
        unit06 = client.read_deployment_by_name("unit06-evaluation/retrain-unit06")
        unit08 = client.read_deployment_by_name("unit08-cnn/retrain-unit08")
        monitor = client.read_deployment_by_name("drift-monitor/titanic-unit06")
    assert unit06.work_pool_name == WORK_POOL and unit06.parameters == {"params": {"profile": "full"}}
    assert unit06.description.startswith("Unit 6: ") and "Sundays at 05:00 UTC: the full run" in unit08.description
    assert monitor.description.startswith("Drift monitor for unit06")
    assert [(s.schedule.cron, s.active) for s in unit06.schedules] == [("0 3 * * 1", True)]
    assert [(s.schedule.cron, s.active) for s in unit08.schedules] == [("0 5 * * 0", True)]
    assert unit06.pull_steps == [{"prefect.deployments.steps.set_working_directory": {
        "directory": str(project_dir())}}]
    # `mlpath ui` applies the file on every start: applying again updates, it does not duplicate
    assert apply_deployments(services.prefect_api_url) == names
    with _client() as client:
        again = client.read_deployment_by_name("unit06-evaluation/retrain-unit06")
    assert again.id == unit06.id and len(again.schedules) == 1
    with urllib.request.urlopen(f"{services.mlflow_url}/health", timeout=10) as response:
        assert response.status == 200
    # the UI calls the API on this server's port, not Prefect's default 4200
    with urllib.request.urlopen(f"{services.prefect_url}/ui-settings", timeout=10) as response:
        assert json.load(response)["api_url"] == services.prefect_api_url


@pytest.mark.slow
def test_deployment_runs_register_and_a_run_that_does_not_win_keeps_the_champion(stack):
    from prefect.deployments import run_deployment

    from pipeline.registry import client, latest_results

    services, _ = stack
    first = run_deployment("unit01-pca/retrain-unit01", parameters=QUICK, timeout=RUN_TIMEOUT_S)
    assert first.state.is_completed(), first.state
    outcome = first.state.result()
    assert (outcome["unit"], outcome["version"], outcome["alias"]) == ("unit01", "1", "champion")
    registered = latest_results(["unit01"])["unit01"]
    assert registered["run_id"] == outcome["run_id"] and registered["profile"] == "quick"
    assert registered["metrics"]["test_accuracy"] == pytest.approx(outcome["value"])
    # the MLflow run and the Prefect flow run lead to each other
    run = client().get_run(outcome["run_id"])
    assert run.info.run_name == outcome["run_name"] == f"unit01-quick-{first.name}"
    assert run.data.tags["prefect.flow_run_id"] == str(first.id)
    assert run.data.tags["prefect.flow_run_url"] == f"{services.prefect_url}/flow-runs/flow-run/{first.id}"
    assert run.data.tags["prefect.deployment"] == "unit01-pca/retrain-unit01"
    assert outcome["run_url"].startswith(f"{services.mlflow_url}/#/experiments/")

    # the same data and seed give the same accuracy: not strictly better, so it stays challenger
    second = run_deployment("unit01-pca/retrain-unit01", parameters=QUICK, timeout=RUN_TIMEOUT_S)
    assert second.state.is_completed(), second.state
    assert second.deployment_id == first.deployment_id
    retrained = second.state.result()
    assert (retrained["version"], retrained["alias"]) == ("2", "challenger")
    assert retrained["champion_before"] == pytest.approx(outcome["value"])
    assert retrained["reason"] == f"tied champion v1 at {outcome['value']:.4f} on the same holdout (quick)"
    registered = latest_results(["unit01"])["unit01"]
    assert (registered["version"], registered["champion_version"], registered["aliases"]) == ("2", "1", ["challenger"])

    # the MLflow UI serves the same registry
    url = f"{services.mlflow_url}/api/2.0/mlflow/registered-models/get?name=mlpath-unit01"
    with urllib.request.urlopen(url, timeout=10) as response:
        aliases = {a["alias"]: a["version"] for a in json.load(response)["registered_model"]["aliases"]}
    assert aliases == {"champion": "1", "challenger": "2"}


def _shifted_titanic(folder: Path) -> Path:
    """A valid labelled batch from a changed world (all Queenstown, survival by fare): see test_retraining."""
    from test_retraining import titanic_batch

    return titanic_batch(folder, world="new")


@pytest.mark.slow
def test_drift_past_the_threshold_triggers_the_retraining_deployment(stack, tmp_path):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, DeploymentFilter, DeploymentFilterId
    from prefect.states import Cancelled, Cancelling

    from flows.monitoring import drift_monitor

    with _client() as client:
        deployment = client.read_deployment_by_name("unit06-evaluation/retrain-unit06")

        def triggered_runs() -> list:
            """unit06's runs that its cron schedule did not create."""
            of_unit06 = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
            return [r for r in client.read_flow_runs(deployment_filter=of_unit06) if not r.auto_scheduled]

        steady = drift_monitor(unit="unit06", dataset="titanic")
        assert not steady["triggered"] and steady["max_psi"] < 0.2
        assert triggered_runs() == []

        shifted = drift_monitor(unit="unit06", dataset="titanic", recent_path=str(_shifted_titanic(tmp_path)))
        assert shifted["triggered"] and shifted["drifted_features"] == ["Embarked"]
        assert shifted["reference"] == "defaults: no champion yet" and shifted["validation"]["passed"]
        run = client.read_flow_run(shifted["retraining_run_id"])
        assert run.deployment_id == deployment.id and "drift-triggered" in run.tags
        # the run retrains on the reference's parameters with the validated batch appended
        assert run.parameters == shifted["retraining_parameters"]
        params = run.parameters["params"]
        assert (params["profile"], params["seed"]) == ("full", 0)
        [kept] = params["append_files"]["titanic/train.csv"]
        assert Path(kept).is_file() and Path(kept).parts[-3:-1] == ("batches", "titanic")
        assert [r.id for r in triggered_runs()] == [run.id]
        # a full unit06 run is not the point here; cancel it (the worker stops it if it started)
        waiting = run.state.is_scheduled() or run.state.is_pending()
        client.set_flow_run_state(run.id, Cancelled() if waiting else Cancelling(), force=True)

        published = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["drift-titanic", "drift-titanic-summary"])))
        assert {a.key for a in published} == {"drift-titanic", "drift-titanic-summary"}

