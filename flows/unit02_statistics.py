"""Unit 2 — statistics and a documented hypothesis test on Titanic: did a higher fare mean survival?"""

from __future__ import annotations

from prefect import flow

from pipeline.audit.stats import audit_statistics
from pipeline.features import split_titanic
from pipeline.lessons import statistics
from pipeline.lessons.classes import TITANIC_OUTCOMES
from pipeline.report import UnitReport
from pipeline.units.unit02_statistics import SPEC as UNIT
from pipeline.units.unit02_statistics import Unit02Params
from tasks.audit import audit
from tasks.evaluate import evaluate
from tasks.register import register
from tasks.train import train_models, train_with
from tasks.validate import ingest_validated


@flow(name="unit02-statistics", log_prints=True)
def unit02_statistics(params: Unit02Params = Unit02Params()) -> dict:
    titanic = ingest_validated("titanic", params)
    passengers = titanic.splits["train"]  # the 891 labelled rows; test.csv has no outcome to test
    resamples = params.bootstrap_resamples or statistics.RESAMPLES[params.profile]
    analysis = train_with("hypothesis-tests", statistics.analyse, passengers, params.alpha, resamples, params.seed)
    split = split_titanic(passengers, params.test_size, params.seed)
    models = train_models("fare-models", statistics.fare_models(params.seed), split)
    table, results = evaluate("titanic-fare", models, split, cv=params.cv_folds, seed=params.seed)
    checks = audit(audit_statistics, *statistics.audit_inputs(analysis))

    main = results[statistics.FARE_ONLY]
    report = UnitReport.for_unit(
        UNIT, params, main, {"titanic": checks}, class_names=TITANIC_OUTCOMES,
        metrics=statistics.statistics_metrics(analysis), data_refs=[titanic.ref], model=main.model,
        model_example=split.X_test.head(5), holdout=(split.X_test, split.y_test),
        figures=statistics.statistics_figures(analysis), captions=statistics.CAPTIONS,
        tables=statistics.statistics_tables(analysis) | {"fare models": table},
        documents={"report": statistics.report_markdown(analysis, table)})
    return register(report)
