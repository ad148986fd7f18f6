"""Evaluate: Unit 6's evaluation, the one every unit uses."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.evaluation import compare_models, validation_curve_table
from pipeline.features import Split
from pipeline.lessons.model_selection import imbalance_demo
from tasks import run_logger

_HEADLINE = ("test_accuracy", "cv_accuracy_mean", "test_f1", "test_f1_macro", "test_roc_auc", "test_r2", "test_mse",
             "test_silhouette", "cv_silhouette_mean")


@task(cache_policy=NO_CACHE, task_run_name="evaluate-{name}")
def evaluate(name: str, models: dict, split: Split, *, cv: int = 5, seed: int = 0,
             fit: bool = False, task: str = "auto", fairness_max_dp_difference: float | None = None,
             fairness_max_eo_difference: float | None = None):
    """Evaluate models side by side: CV on the training rows, metrics on the test rows.

    Models come fitted from the train stage (``fit=False``); CV always fits fresh clones.
    ``task`` as `pipeline.evaluation.evaluate` takes it; for "clustering" the split's targets
    may be None.

    When the split carries the test rows' sensitive attributes (the dataset declares sensitive
    columns in the catalog), each binary classifier's predictions are audited by group
    (`pipeline.audit.fairness.audit_fairness`, kept as ``result.fairness``); a disparity above a
    configured threshold (these arguments, else ``MLPATH_FAIRNESS_MAX_*_DIFFERENCE``) raises
    AuditFailedError here, so the run fails before anything is registered.
    Returns (comparison table, results by model name).
    """
    table, results = compare_models(models, split.X_train, split.y_train, split.X_test,
                                     split.y_test, cv=cv, seed=seed, fit=fit, task=task)
    logger = run_logger()
    for model_name, result in results.items():
        headline = ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items() if k in _HEADLINE)
        logger.info("%s / %s: %s", name, model_name, headline)
    if split.sensitive is not None:
        _audit_fairness(name, results, split.sensitive, seed, fairness_max_dp_difference, fairness_max_eo_difference)
    return table, results


def _audit_fairness(name: str, results: dict, sensitive, seed: int, max_dp: float | None, max_eo: float | None):
    from pipeline.audit import raise_for_failures
    from pipeline.audit.fairness import audit_evaluations

    report = audit_evaluations(name, results, sensitive, seed=seed, max_dp_difference=max_dp,
                               max_eo_difference=max_eo)
    logger = run_logger()
    for finding in report.findings:
        logger.info("%s: %s %s: %s", name, "PASS" if finding.passed else "FAIL", finding.check, finding.detail)
    raise_for_failures(report)


@task(cache_policy=NO_CACHE, task_run_name="validation-curve-{param_name}-{param_range}")
def validation_curve(model, split: Split, param_name: str, param_range: list, cv: int, seed: int):
    """Train and CV score across one hyper-parameter on the training rows: the bias–variance
    picture. Each value's scores depend only on the value and the seeded folds, so the curve can be
    computed a value per task (`tasks.fanout.validation_curve_each`) with the same numbers."""
    return validation_curve_table(model, split.X_train, split.y_train, param_name, param_range, cv=cv, seed=seed)


@task(cache_policy=NO_CACHE, task_run_name="imbalance-example")
def imbalance_example(seed: int):
    """A rare-positive problem where accuracy flatters a model that finds nothing."""
    return imbalance_demo(seed)
