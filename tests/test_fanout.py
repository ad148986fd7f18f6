"""Fan-out: the task runner as a setting, Unit 6 on a real Dask cluster with the sequential run's
numbers, a task that raises on a worker failing its run cleanly, and the path overlapping the units
that share no state while keeping its order where one needs another's model."""

from __future__ import annotations

import threading
import time

import pytest
from prefect import flow, task

from pipeline import fanout
from pipeline.lessons import model_selection
from pipeline.params import UnitParams
from pipeline.settings import SettingError, path_concurrency, task_runner_name
from pipeline.units import UnitSpec, register_unit
from pipeline.units.spec import PathOverrides
from pipeline.units.unit06_evaluation import Unit06Params

UNIT6 = Unit06Params(profile="quick", max_depth_range=[1, 3, 6], cv_folds=3)


@pytest.fixture(scope="module")
def dask_cluster():
    """A real local Dask cluster: a scheduler and two single-threaded worker processes."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


def test_runner_setting(monkeypatch):
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    monkeypatch.delenv("MLPATH_TASK_RUNNER", raising=False)
    assert task_runner_name() == "threads" and isinstance(fanout.task_runner(), ThreadPoolTaskRunner)
    assert fanout.task_runner("sequential")._max_workers == 1
    monkeypatch.setenv("MLPATH_TASK_RUNNER", "dask")
    monkeypatch.setenv("MLPATH_DASK_ADDRESS", "tcp://scheduler:8786")
    runner = fanout.task_runner()
    assert isinstance(runner, DaskTaskRunner) and runner.address == "tcp://scheduler:8786"
    monkeypatch.setenv("MLPATH_TASK_RUNNER", "ray")
    with pytest.raises(SettingError, match="MLPATH_TASK_RUNNER='ray': choose one of threads, dask, sequential"):
        task_runner_name()
    monkeypatch.setenv("MLPATH_PATH_CONCURRENCY", "0")
    with pytest.raises(SettingError, match="MLPATH_PATH_CONCURRENCY"):
        path_concurrency()


def test_units_that_need_a_model_wait_for_it():
    needs = fanout.unit_prerequisites(["unit04", "unit11", "unit13", "capstone"])
    assert needs == {"unit04": (), "unit11": (), "unit13": ("unit11",), "capstone": ("unit11",)}
    assert fanout.unit_prerequisites(["unit13", "unit04"])["unit13"] == ()  # unit11 not selected: nothing to wait for


def _metrics(outcome: dict) -> dict[str, float]:
    from pipeline.registry import client

    assert outcome["status"] == "succeeded"
    return client().get_run(outcome["run_id"]).data.metrics


def test_unit06_on_dask_gives_the_sequential_numbers(prefect_harness, fresh_home, dask_cluster, monkeypatch):
    from flows.unit06_evaluation import unit06_evaluation

    sequential = _metrics(unit06_evaluation.with_options(task_runner=fanout.task_runner("sequential"))(UNIT6))
    monkeypatch.setenv("MLPATH_DASK_ADDRESS", dask_cluster.scheduler_address)
    on_dask = _metrics(unit06_evaluation.with_options(task_runner=fanout.task_runner("dask"))(UNIT6))

    assert on_dask == pytest.approx(sequential, abs=1e-12)
    # each model trained and was evaluated on a worker, each depth of the curve too; the split
    # was shipped to the cluster once, by one task, and every other task took its future
    computed = {name: prefix.state_counts["memory"] for name, prefix in dask_cluster.scheduler.task_prefixes.items()}
    models = len(model_selection.titanic_candidates(0))
    assert computed == {"shared_value": 1, "train_models": models, "evaluate": models,
                        "validation_curve": len(UNIT6.max_depth_range), "imbalance_example": 1}


class WorkerFailure(RuntimeError):
    pass


@task
def fail_on_worker(rows: int) -> int:
    raise WorkerFailure(f"no model for {rows} rows")


@task
def square(x: int) -> int:
    return x * x


@flow(name="unit96-fails-on-a-worker")
def failing_unit(params: UnitParams = UnitParams()) -> dict:  # noqa: B008 - the units' own form
    fine = square.submit(3)
    failed = fail_on_worker.submit(10)
    return {"unit": "unit96", "status": "succeeded", "value": float(fine.result() + failed.result())}


FAILING = UnitSpec(id="unit96", number=96, title="fails on a worker", phase=4, topics=("tests",),
                   challenge="raise on a Dask worker", flow="test_fanout:failing_unit", datasets=("iris",),
                   primary_metric="test_accuracy")


def test_a_task_that_raises_on_a_worker_fails_the_run(prefect_harness, fresh_home, dask_cluster, monkeypatch):
    from flows.learning_path import learning_path
    from pipeline.app.cli import run_table

    monkeypatch.setenv("MLPATH_TASK_RUNNER", "dask")
    monkeypatch.setenv("MLPATH_DASK_ADDRESS", dask_cluster.scheduler_address)
    state = failing_unit.with_options(task_runner=fanout.task_runner())(return_state=True)
    assert state.is_failed()
    with pytest.raises(WorkerFailure, match="no model for 10 rows"):
        state.result()

    with register_unit(FAILING):
        outcomes = learning_path(units=["unit96"], profile="quick")
    assert outcomes == [{"unit": "unit96", "status": "failed", "error": "WorkerFailure: no model for 10 rows",
                         "primary_metric": "test_accuracy"}]
    columns, rows = run_table(outcomes)  # the summary table still has the unit, its error included
    assert rows[0][columns.index("status")] == "failed" and "no model for 10 rows" in rows[0][-1]


SPANS: dict[str, tuple[float, float]] = {}
STARTED = {u: threading.Event() for u in ("unit91", "unit92", "unit93")}
PARTNER = {"unit91": "unit92", "unit92": "unit91"}  # the two that may run together
SAW_PARTNER: dict[str, bool] = {}


def _sleepy_flow(unit_id: str):
    @flow(name=f"{unit_id}-sleeps")
    def sleeps(params: UnitParams = UnitParams()) -> dict:  # noqa: B008 - the units' own form
        start = time.monotonic()
        STARTED[unit_id].set()
        if unit_id in PARTNER:  # overlap proven, not timed: each waits to see the other one start
            SAW_PARTNER[unit_id] = STARTED[PARTNER[unit_id]].wait(timeout=60)
        SPANS[unit_id] = (start, time.monotonic())
        return {"unit": unit_id, "status": "succeeded", "primary_metric": "test_accuracy", "value": 1.0}

    return sleeps


unit91_flow, unit92_flow, unit93_flow = (_sleepy_flow(u) for u in ("unit91", "unit92", "unit93"))
SLEEPY = tuple(UnitSpec(id=u, number=n, title=f"sleeps ({u})", phase=4, topics=("tests",), challenge="sleep",
                        flow=f"test_fanout:{u}_flow", datasets=("iris",), primary_metric="test_accuracy",
                        in_path=PathOverrides(after=("unit91",), overrides=()) if u == "unit93" else None)
               for u, n in (("unit91", 91), ("unit92", 92), ("unit93", 93)))


def test_path_overlaps_independent_units_and_keeps_dependents_in_order(prefect_harness, fresh_home, monkeypatch):
    from flows.learning_path import learning_path

    monkeypatch.setenv("MLPATH_PATH_CONCURRENCY", "2")
    SPANS.clear()
    SAW_PARTNER.clear()
    for event in STARTED.values():
        event.clear()
    with register_unit(SLEEPY[0]), register_unit(SLEEPY[1]), register_unit(SLEEPY[2]):
        outcomes = learning_path(units=["unit91", "unit92", "unit93"], profile="quick")
    assert [o["unit"] for o in outcomes] == ["unit91", "unit92", "unit93"]
    assert all(o["status"] == "succeeded" for o in outcomes)
    assert SAW_PARTNER == {"unit91": True, "unit92": True}  # 91 and 92 ran at the same time
    assert SPANS["unit93"][0] >= SPANS["unit91"][1]  # 93 needs 91's model: it started after 91 finished


@task
def sleep_on_worker(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@flow(name="loses-its-scheduler")
def loses_its_scheduler() -> float:
    return sleep_on_worker.submit(120.0).result()


KILL_AFTER_S = 8.0


def test_a_run_that_loses_its_scheduler_fails_within_seconds_saying_why(prefect_harness, monkeypatch):
    """A scheduler of its own (`dask scheduler`, `dask worker` processes), killed while a task runs:
    the flow run fails soon after, and its message says the scheduler was lost."""
    import subprocess
    import sys
    import threading

    from distributed import Client
    from distributed.utils import open_port

    port = open_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", str(port),
                                  "--dashboard-address", ":0"], **quiet)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                               "--dashboard-address", ":0"], **quiet)
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
        monkeypatch.setenv("MLPATH_DASK_ADDRESS", address)
        threading.Timer(KILL_AFTER_S, scheduler.kill).start()
        start = time.monotonic()
        state = loses_its_scheduler.with_options(task_runner=fanout.task_runner("dask"))(return_state=True)
        elapsed = time.monotonic() - start
    finally:
        scheduler.kill()
        worker.kill()
    assert state.is_failed()
    assert "scheduler-connection-lost" in state.message and "lost the connection to the scheduler" in state.message
    assert elapsed < KILL_AFTER_S + 20  # not the task's two minutes
