"""Fan-out: where a run's independent tasks go, and which units of the path may overlap.

The task runner is a setting, not code (``pipeline.settings.task_runner_name``): flows submit their
independent tasks (``task.submit``) and gather the futures in a fixed order, and the same flow runs
them on threads (the default), one at a time ("sequential", the baseline) or on Dask worker
processes ("dask": prefect-dask's ``DaskTaskRunner``, on the scheduler at ``MLPATH_DASK_ADDRESS`` or
on a local cluster). Seeds travel with each task's inputs, so the numbers do not depend on the
runner or on which task finished first.

The whole path starts one local cluster for all its units (`shared_cluster`) instead of one per
unit flow: each unit's runner connects to it by address. Prefect is imported only inside functions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from pipeline import settings

_shared_address: str | None = None


def task_runner(name: str | None = None):
    """The Prefect task runner for ``name`` (default: the ``MLPATH_TASK_RUNNER`` setting).

    "dask" connects to ``MLPATH_DASK_ADDRESS``, else to the path's `shared_cluster`, else has
    prefect-dask start a local cluster of ``MLPATH_DASK_WORKERS`` single-threaded processes for
    the flow run.
    """
    name = name or settings.task_runner_name()
    if name == "dask":
        from prefect_dask import DaskTaskRunner

        address = settings.dask_address() or _shared_address
        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs())
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=1 if name == "sequential" else None)


def local_cluster_kwargs() -> dict:
    """A local cluster of worker processes, one thread each: the models inside a task (torch,
    sklearn) bring their own threads, and processes sidestep the GIL for pure-Python from-scratch
    code. Workers inherit this process's environment (MLPATH_HOME, the mirror, Prefect's settings)."""
    return {"n_workers": settings.dask_workers(), "threads_per_worker": 1, "processes": True,
            "dashboard_address": None}


@contextmanager
def shared_cluster() -> Iterator[str | None]:
    """One local Dask cluster for every flow run inside the block, when the runner is "dask" and no
    ``MLPATH_DASK_ADDRESS`` is set; yields its scheduler address (None when none was started)."""
    global _shared_address
    if settings.task_runner_name() != "dask" or settings.dask_address() or _shared_address:
        yield _shared_address
        return
    from distributed import LocalCluster

    with LocalCluster(**local_cluster_kwargs()) as cluster:
        _shared_address = cluster.scheduler_address
        try:
            yield _shared_address
        finally:
            _shared_address = None


def unit_prerequisites(unit_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """For each selected unit, the earlier selected units it must wait for: those its ``in_path``
    names (the capstone serves the model Unit 11 just registered) and the unit whose model its
    service serves (``service_monitor.retrains``: Unit 13 serves Unit 11's champion). Every other
    unit shares no state with the rest and may overlap them."""
    from pipeline.units import get_unit

    order = {uid: index for index, uid in enumerate(unit_ids)}
    needs = {}
    for uid in unit_ids:
        spec = get_unit(uid)
        named = set(spec.in_path.after if spec.in_path else ())
        if spec.service_monitor is not None:
            named.add(spec.service_monitor.retrains)
        needs[uid] = tuple(sorted((n for n in named if order.get(n, len(order)) < order[uid]), key=order.get))
    return needs
