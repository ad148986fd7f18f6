"""Fan-out inside a flow: models trained and evaluated as separate tasks, submitted together and
gathered in a fixed order, on whichever task runner the run uses (``pipeline.fanout``).

Heavy inputs are shared, not copied per task: under Dask, `share` submits the value once as a task
of its own and the other tasks take its future, so the scheduler ships the value to each worker
once (and keeps it there) instead of pickling it into every task. We pass a future rather than
reloading the data on each worker from the dataset's name: the flow's split is the validated,
subsampled, deterministic one, and rebuilding it per worker would repeat ingest and validation.
On threads every task already sees the same object, so `share` returns it as it is.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.features import Split
from tasks.evaluate import evaluate, validation_curve
from tasks.train import train_models


@task(cache_policy=NO_CACHE, task_run_name="share-{name}")
def shared_value(name: str, value: Any) -> Any:
    """``value``, now held by the cluster: the other tasks take this task's future."""
    return value


def share(name: str, value: Any) -> Any:
    """``value`` as the flow's tasks should take it: a future held by the Dask cluster under a
    DaskTaskRunner (sent once), else the value itself."""
    from prefect.context import FlowRunContext
    from prefect.futures import PrefectFuture

    if isinstance(value, PrefectFuture):  # shared already
        return value
    context = FlowRunContext.get()
    dask = sys.modules.get("prefect_dask.task_runners")  # not imported: no Dask runner in this process
    if context is None or dask is None or not isinstance(context.task_runner, dask.DaskTaskRunner):
        return value
    return shared_value.submit(name, value)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def evaluate_each(name: str, models: dict, split: Split, *, cv: int = 5, seed: int = 0, task: str = "auto") -> list:
    """Submit, per model, its training and then its evaluation (each evaluation waits only for its
    own model); returns the evaluation futures in ``models``' order, for `comparison`.

    The numbers are those of ``evaluate(name, train_models(name, models, split), split, ...)``: each
    model is fitted on the same rows and cross-validated with the same seeded folds.
    """
    split = share(name, split)
    futures = []
    for model_name, model in models.items():
        label = f"{name}-{_slug(model_name)}"
        fitted = train_models.submit(label, {model_name: model}, split)
        futures.append(evaluate.submit(label, fitted, split, cv=cv, seed=seed, task=task))
    return futures


def comparison(evaluations: list) -> tuple[pd.DataFrame, dict]:
    """The evaluations of `evaluate_each`, gathered in submission order: the comparison table (one
    row per model, index ``model``) and the results by model name, as ``evaluate`` returns them.
    A task that failed raises its own error here, failing the flow."""
    parts = [future.result() for future in evaluations]
    table = pd.concat([part_table for part_table, _ in parts])
    table.index.name = "model"
    results = {model_name: result for _, part in parts for model_name, result in part.items()}
    return table, results


def validation_curve_each(model, split: Split, param_name: str, values: list, *, cv: int, seed: int) -> list:
    """Submit one validation-curve task per value of ``param_name``; futures in ``values``' order."""
    split = share("validation-curve", split)
    return [validation_curve.submit(model, split, param_name, [value], cv, seed) for value in values]


def stacked(futures: list) -> pd.DataFrame:
    """The tables of ``futures``, one under the other in submission order, indexed 0..n-1."""
    return pd.concat([future.result() for future in futures], ignore_index=True)


def fitted_models(results: dict) -> dict:
    """The fitted models of evaluation results, by model name."""
    return {model_name: result.model for model_name, result in results.items()}
