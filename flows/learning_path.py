"""The whole path: every selected unit's flow as a subflow, one failure not stopping the rest;
units that share no state overlap.

``PROGRESS`` tells the caller how far a run got while it runs: an interrupted run (Ctrl-C,
SIGTERM, a lost Prefect API) raises instead of returning, and the CLI prints its summary from it.
"""

from __future__ import annotations

import ctypes
import importlib
import threading
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline.fanout import shared_cluster, task_runner, unit_prerequisites
from pipeline.params import build_params, in_path_params
from pipeline.settings import path_concurrency
from pipeline.units import get_unit, resolve_selection


@dataclass
class Progress:
    """The run in this process: its flow run id, the units selected, the outcomes so far (in the
    order units finished), and the units running now (in path order)."""

    flow_run_id: str | None = None
    units: list[str] = field(default_factory=list)
    outcomes: list[dict] = field(default_factory=list)
    running: list[str] = field(default_factory=list)

    def start(self, flow_run_id: str | None, units: list[str], outcomes: list[dict]) -> None:
        self.flow_run_id, self.units, self.outcomes, self.running = flow_run_id, units, outcomes, []

    @property
    def current(self) -> str | None:
        """The earliest unit of the path running now; None between units."""
        return self.running[0] if self.running else None


PROGRESS = Progress()
_UNIT_THREADS: dict[str, int] = {}  # unit id -> the thread running it, while it runs beside others


def _unit_flow(unit_id: str):
    module, _, name = get_unit(unit_id).flow.partition(":")
    return getattr(importlib.import_module(module), name)


@flow(name="learning-path", log_prints=True, task_runner=ThreadPoolTaskRunner())
def learning_path(units: list[str] | None = None, profile: Literal["quick", "full"] = "full",
                  overrides: dict[str, Any] | None = None) -> list[dict]:
    """Run each unit (default: every built unit) with ``overrides`` applied where they fit.

    Up to ``MLPATH_PATH_CONCURRENCY`` units run at once, each as a subflow in a thread of this
    process, its own tasks on the run's task runner (``MLPATH_TASK_RUNNER``; "dask" shares one
    cluster among the units); a unit that needs another's
    registered model (`pipeline.fanout.unit_prerequisites`) starts only after it finished. Units
    start in path order and every unit has its own seeds, so the numbers do not depend on which
    finished first. Returns one outcome per unit, in path order: status, primary metric and model
    version, or the error.
    """
    unit_ids = [unit.id for unit in resolve_selection(units or ["all"])]
    params = in_path_params(unit_ids, build_params(unit_ids, profile, overrides or {}), overrides or {})
    outcomes: list[dict] = []
    PROGRESS.start(_flow_run_id(), unit_ids, outcomes)
    with shared_cluster():
        _run_units(unit_ids, params, outcomes)
    by_unit = {outcome["unit"]: outcome for outcome in outcomes}
    return [by_unit[unit_id] for unit_id in unit_ids]


def _run_units(unit_ids: list[str], params: dict, outcomes: list[dict]) -> None:
    """Start each unit in path order as soon as a slot is free and its prerequisites finished; wait
    for all. One slot (or one unit) runs them in this thread, as the path always did; more submit
    each unit as a `run_unit` task on this flow's threads (a unit's flow holds its MLflow run and
    registers its model, so it stays in this process; its own tasks go to the run's task runner)."""
    slots = min(path_concurrency(), len(unit_ids))
    if slots <= 1:
        for unit_id in unit_ids:
            PROGRESS.running = [unit_id]
            outcomes.append(_run_unit(unit_id, params[unit_id]))
            PROGRESS.running = []
        return
    needs = unit_prerequisites(unit_ids)
    pending, running = list(unit_ids), {}
    try:
        while pending or running:
            finished = {uid for uid in unit_ids if uid not in pending and uid not in running}
            for unit_id in [uid for uid in pending if set(needs[uid]) <= finished][:slots - len(running)]:
                pending.remove(unit_id)
                running[unit_id] = run_unit.submit(unit_id, params[unit_id])
            PROGRESS.running = [uid for uid in unit_ids if uid in running]
            done, _ = wait([future.wrapped_future for future in running.values()], return_when=FIRST_COMPLETED)
            for unit_id in [uid for uid, future in running.items() if future.wrapped_future in done]:
                outcomes.append(running.pop(unit_id).result())
            PROGRESS.running = [uid for uid in unit_ids if uid in running]
    except BaseException:  # Ctrl-C, SIGTERM, a lost API: it reached this thread only
        _interrupt(_UNIT_THREADS[uid] for uid in running if uid in _UNIT_THREADS)
        raise


def _interrupt(thread_ids) -> None:
    """Raise KeyboardInterrupt in each unit thread, as the signal did in this one: Prefect then marks
    that unit's task and flow runs crashed, and its register task never moves an alias. (Python
    delivers it at the thread's next bytecode; the CLI's exit deadline covers a long C call.)"""
    for thread_id in thread_ids:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(KeyboardInterrupt))


@task(cache_policy=NO_CACHE, task_run_name="run-{unit_id}")
def run_unit(unit_id: str, params) -> dict:
    """A unit of the path beside others: its flow runs as a subflow in this task's thread, recorded
    in ``_UNIT_THREADS`` for `_interrupt`. (A subflow started from a plain thread of the path's flow
    waits for the other units' subflows to finish before it starts; from a task it does not.)"""
    _UNIT_THREADS[unit_id] = threading.get_ident()
    try:
        return _run_unit(unit_id, params)
    finally:
        _UNIT_THREADS.pop(unit_id, None)


def _run_unit(unit_id: str, params) -> dict:
    """One unit's subflow on the run's task runner; its outcome, "failed" with the error if it failed."""
    unit_flow = _unit_flow(unit_id).with_options(task_runner=task_runner())
    state = unit_flow(params, return_state=True)
    if state.is_completed():
        return state.result()
    try:
        state.result()
    except Exception as exc:  # the unit's own error, re-raised by Prefect
        error = f"{type(exc).__name__}: {exc}"
    else:
        error = state.message or state.name
    get_run_logger().error("%s failed: %s", unit_id, error)
    return {"unit": unit_id, "status": "failed", "error": error, "primary_metric": get_unit(unit_id).primary_metric}


def _flow_run_id() -> str | None:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else None
