"""Train: fit a unit's models. The fitting logic is in ``pipeline``; these add the Prefect run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.estimators import fit_all
from pipeline.features import Split
from tasks import run_logger


@task(cache_policy=NO_CACHE, task_run_name="train-{name}")
def train_models(name: str, models: dict, split: Split) -> dict:
    """Fit every model on the same training rows."""
    fitted = fit_all(models, split.X_train, split.y_train)
    run_logger().info("%s: fitted %s", name, ", ".join(fitted))
    return fitted


@task(cache_policy=NO_CACHE, task_run_name="train-{name}")
def train_with(name: str, fit: Callable[..., Any], *args, **kwargs) -> Any:
    """Run a lesson's own fitting function (``fit(*args, **kwargs)``) as a Prefect task."""
    result = fit(*args, **kwargs)
    run_logger().info("%s: trained with %s.%s", name, fit.__module__, fit.__qualname__)
    return result
