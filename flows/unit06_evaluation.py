"""Unit 6 — the evaluation pipeline: models compared on Titanic, bias–variance, imbalanced metrics.

The candidates, the validation curve's depths and the imbalance example are independent: they are
submitted together and gathered in a fixed order (``tasks.fanout``), on the run's task runner."""

from __future__ import annotations

from prefect import flow

from pipeline.audit.twins import audit_cross_validation
from pipeline.fanout import task_runner
from pipeline.features import split_titanic
from pipeline.lessons import model_selection
from pipeline.lessons.classes import TITANIC_OUTCOMES
from pipeline.lessons.model_selection import DEPTH
from pipeline.plots import figure_to_png, validation_curve_figure
from pipeline.report import UnitReport
from pipeline.units.unit06_evaluation import SPEC as UNIT
from pipeline.units.unit06_evaluation import Unit06Params
from tasks.audit import audit
from tasks.evaluate import imbalance_example
from tasks.fanout import comparison, evaluate_each, share, stacked, validation_curve_each
from tasks.register import register
from tasks.validate import ingest_validated


@flow(name="unit06-evaluation", log_prints=True, task_runner=task_runner())
def unit06_evaluation(params: Unit06Params = Unit06Params()) -> dict:
    titanic = ingest_validated("titanic", params)
    split = split_titanic(titanic.splits["train"], params.test_size, params.seed)
    shared = share("titanic-split", split)
    evaluations = evaluate_each("titanic-candidates", model_selection.titanic_candidates(params.seed), shared,
                                cv=params.cv_folds, seed=params.seed)
    curve_parts = validation_curve_each(model_selection.depth_curve_model(params.seed), shared, DEPTH,
                                        params.max_depth_range, cv=params.cv_folds, seed=params.seed)
    imbalance = imbalance_example.submit(params.seed)
    table, results = comparison(evaluations)
    best = model_selection.best_model(table)
    checks = audit(audit_cross_validation, results[best].model, split.X_train, split.y_train, results[best],
                   params.cv_folds, params.seed)
    curve = stacked(curve_parts)

    report = UnitReport.for_unit(
        UNIT, params, results[best], {"titanic": checks}, class_names=TITANIC_OUTCOMES,
        metrics=model_selection.best_depth(curve), data_refs=[titanic.ref], model=results[best].model,
        model_example=split.X_test.head(5), holdout=(split.X_test, split.y_test),
        figures={"validation_curve_depth": figure_to_png(validation_curve_figure(curve, DEPTH))},
        captions=model_selection.CAPTIONS,
        tables={"model comparison": table, "validation curve (tree depth)": curve,
                "imbalanced example": imbalance.result()},
        notes=f"Selected by {model_selection.SELECTION_METRIC}: **{best}**\n\n" + model_selection.METRIC_GUIDE)
    return register(report)
