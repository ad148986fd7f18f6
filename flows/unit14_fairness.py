"""Unit 14 — a bias audit of income models on Adult: group metrics, significance, SHAP and LIME,
mitigation. The fairness section of the evaluation comes from the catalog (adult declares sex
and race sensitive); a configured threshold fails the run in the evaluate stage."""

from __future__ import annotations

from prefect import flow

from pipeline.audit.explain import audit_shap_additivity
from pipeline.audit.fairness import audit_against_fairlearn
from pipeline.lessons import fairness
from pipeline.report import UnitReport
from pipeline.units.unit14_fairness import SPEC as UNIT
from pipeline.units.unit14_fairness import Unit14Params
from tasks.audit import audit
from tasks.evaluate import evaluate
from tasks.register import register
from tasks.train import train_models, train_with
from tasks.validate import ingest_validated


@flow(name="unit14-fairness", log_prints=True)
def unit14_fairness(params: Unit14Params = Unit14Params()) -> dict:
    adult = ingest_validated("adult", params)
    split = fairness.adult_split(adult, params.sensitive_inputs)
    models = train_models("adult-income", fairness.models(params), split)
    table, results = evaluate("adult", models, split, cv=params.cv_folds, seed=params.seed,
                              fairness_max_dp_difference=params.fairness_max_dp_difference,
                              fairness_max_eo_difference=params.fairness_max_eo_difference)
    boosted = results[fairness.BOOSTED]
    mitigation = train_with("mitigations", fairness.mitigate, adult, models[fairness.BOOSTED], split, params)
    explanations = train_with("explanations", fairness.explain, models[fairness.BOOSTED], split, params)
    checks = {"SHAP": audit(audit_shap_additivity, explanations.shap),
              "group metrics": audit(audit_against_fairlearn, boosted.y_true, boosted.y_pred, split.sensitive,
                                     subject=fairness.BOOSTED)}

    metrics = fairness.headline_metrics(boosted, explanations, mitigation)
    report = UnitReport.for_unit(
        UNIT, params, boosted, checks, class_names=fairness.CLASS_NAMES, metrics=metrics, data_refs=[adult.ref],
        model=models[fairness.BOOSTED], model_example=split.X_test.head(5), holdout=(split.X_test, split.y_test),
        figures=fairness.figures(boosted, explanations, mitigation, split), captions=fairness.CAPTIONS,
        tables={"models compared": table, **fairness.tables(mitigation, explanations)},
        documents={"report": fairness.report_markdown(results, explanations, mitigation, metrics, split)})
    return register(report)
