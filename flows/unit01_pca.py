"""Unit 1 — linear algebra and PCA from scratch on Iris."""

from __future__ import annotations

from prefect import flow

from pipeline.audit.twins import audit_pca
from pipeline.lessons import pca
from pipeline.lessons.classes import IRIS_SPECIES
from pipeline.report import UnitReport
from pipeline.units.unit01_pca import SPEC as UNIT
from pipeline.units.unit01_pca import Unit01Params
from tasks.audit import audit
from tasks.evaluate import evaluate
from tasks.register import register
from tasks.train import train_with
from tasks.validate import ingest_validated


@flow(name="unit01-pca", log_prints=True)
def unit01_pca(params: Unit01Params = Unit01Params()) -> dict:
    iris = ingest_validated("iris", params)
    fit = train_with(f"pca-k{params.n_components}", pca.fit_pca, iris.splits["data"], params.n_components,
                     params.test_size, params.seed)
    table, results = evaluate("iris", fit.models, fit.split, cv=params.cv_folds, seed=params.seed)
    checks = audit(audit_pca, fit.ours, fit.theirs, fit.X)

    main = results[pca.ON_COMPONENTS]
    report = UnitReport.for_unit(
        UNIT, params, main, {"iris": checks}, class_names=IRIS_SPECIES, metrics=pca.variance_metrics(fit.ours),
        data_refs=[iris.ref], model=main.model, model_example=fit.split.X_test[:5],
        holdout=(fit.split.X_test, fit.split.y_test),
        figures=pca.pca_figures(fit), captions=pca.CAPTIONS,
        tables={"explained variance": pca.variance_table(fit.ours), "loadings": pca.loadings_table(fit.ours),
                "classifier on components vs all features": table})
    return register(report)
