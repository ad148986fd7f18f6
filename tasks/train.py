"""Train: fit each unit's models. The fitting logic is in ``pipeline``; these add the Prefect run."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.features import Split
from pipeline.lessons import pca, trees
from tasks import run_logger


@task(cache_policy=NO_CACHE, task_run_name="train-pca-k{n_components}")
def train_pca(iris, n_components: int, test_size: float, seed: int) -> pca.PCAFit:
    fit = pca.fit_pca(iris, n_components, test_size, seed)
    fit.models = trees.fit_all(fit.models, fit.split.X_train, fit.split.y_train)
    run_logger().info("explained variance ratio: %s", fit.ours.explained_variance_ratio_.round(4))
    return fit


@task(cache_policy=NO_CACHE, task_run_name="train-{name}")
def train_models(name: str, models: dict, split: Split) -> dict:
    """Fit every model on the same training rows."""
    fitted = trees.fit_all(models, split.X_train, split.y_train)
    run_logger().info("%s: fitted %s", name, ", ".join(fitted))
    return fitted


@task(cache_policy=NO_CACHE, task_run_name="train-linear-regression")
def train_linear_regression(iris, test_size: float, seed: int) -> trees.LinearRegressionFit:
    return trees.fit_linear_regression(iris, test_size, seed)
