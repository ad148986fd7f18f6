"""Unit 5 — customer segmentation: k-means from scratch on Mall Customers."""

from __future__ import annotations

from prefect import flow

from pipeline.audit.clustering import audit_kmeans
from pipeline.lessons import clustering
from pipeline.report import UnitReport
from pipeline.units.unit05_clustering import SPEC as UNIT
from pipeline.units.unit05_clustering import Unit05Params
from tasks.audit import audit
from tasks.evaluate import evaluate
from tasks.register import register
from tasks.train import train_with
from tasks.validate import ingest_validated


@flow(name="unit05-clustering", log_prints=True)
def unit05_clustering(params: Unit05Params = Unit05Params()) -> dict:
    mall = ingest_validated("mall_customers", params)
    fit = train_with(f"segments-k{params.k}", clustering.fit_segments, mall.splits["data"], params.k,
                     params.k_max, params.n_init, params.with_gender, params.perplexity, params.profile,
                     params.seed)
    # Every customer is both fitted and scored: clustering has no labels to hold out, and CV
    # (fit on k-1 folds, assign the held-out one) measures how the segments carry to new rows.
    table, results = evaluate("mall", fit.models, fit.split, cv=params.cv_folds, seed=params.seed,
                              task="clustering")
    checks = audit(audit_kmeans, fit.ours, fit.Z)

    segments = clustering.segment_table(fit)
    metrics = clustering.segment_metrics(fit)
    report = UnitReport.for_unit(
        UNIT, params, results[clustering.OURS], {"mall": checks}, metrics=metrics, data_refs=[mall.ref],
        model=fit.segmenter, model_example=mall.splits["data"][fit.columns].head(5),
        figures=clustering.figures(fit, segments), captions=clustering.CAPTIONS,
        tables={"segments": segments, "choosing k": fit.k_scan, "models compared": table,
                "selection vs extraction": fit.selection},
        documents={"report": clustering.report_markdown(fit, segments, table, metrics)})
    return register(report)
