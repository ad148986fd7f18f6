"""Unit 3 — calculus and gradient descent: batch, stochastic and mini-batch on a generated line."""

from __future__ import annotations

from prefect import flow

from pipeline.audit.gradient_descent import audit_gradient_descent
from pipeline.lessons import gradient_descent as lesson
from pipeline.report import UnitReport
from pipeline.units.unit03_gradient_descent import SPEC as UNIT
from pipeline.units.unit03_gradient_descent import Unit03Params
from tasks.audit import audit
from tasks.evaluate import evaluate
from tasks.register import register
from tasks.train import train_with
from tasks.validate import ingest_validated


@flow(name="unit03-gradient-descent", log_prints=True)
def unit03_gradient_descent(params: Unit03Params = Unit03Params()) -> dict:
    line = ingest_validated("line", params)
    fit = train_with("gd-variants", lesson.fit_variants, line.splits["data"], params)
    sweep = train_with("learning-rates", lesson.learning_rate_sweep, fit.split, params)
    table, results = evaluate("line", fit.models, fit.split, cv=params.cv_folds, seed=params.seed)
    checks = audit(audit_gradient_descent, fit.variants, fit.closed_form, fit.split.X_train, fit.split.y_train,
                   sweep, seed=params.seed)

    main = results[lesson.REGISTERED]
    report = UnitReport.for_unit(
        UNIT, params, main, {"line": checks}, metrics=lesson.descent_metrics(fit, sweep),
        data_refs=[line.ref], model=main.model, model_example=fit.split.X_test[:5],
        holdout=(fit.split.X_test, fit.split.y_test),
        figures=lesson.gradient_descent_figures(fit, sweep), captions=lesson.CAPTIONS,
        tables={"parameters vs least squares": lesson.parameters_table(fit),
                "learning rates": lesson.sweep_table(sweep, fit.split.X_train),
                "gradient check": lesson.gradient_check_table(fit, params.seed),
                "variants and the closed form": table},
        documents={"report": lesson.report_document(fit, sweep)})
    return register(report)
