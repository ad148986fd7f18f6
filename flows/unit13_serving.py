"""Unit 13 — serve the sentiment champion: load-test it with and without micro-batching, evaluate it
through the API, audit bad input and drift, register the measurements (no model of its own)."""

from __future__ import annotations

from prefect import flow

from pipeline.audit.serving import audit_served
from pipeline.lessons import serving
from pipeline.report import UnitReport
from pipeline.units.unit13_serving import SPEC as UNIT
from pipeline.units.unit13_serving import Unit13Params
from tasks.audit import audit
from tasks.evaluate import evaluate
from tasks.register import register
from tasks.train import train_with
from tasks.validate import ingest_validated


@flow(name="unit13-serving", log_prints=True)
def unit13_serving(params: Unit13Params = Unit13Params()) -> dict:
    sst2 = ingest_validated("sst2", params)
    settings = serving.SETTINGS[params.profile]
    texts, labels = serving.dev_texts(sst2.splits, settings["dev_texts"], params.seed)
    served = train_with("load-model", serving.load_served_model, params.model, params.fallback_base, params.seed)
    reference_source = serving.with_reference(served, sst2.splits["dev"]["sentence"].tolist())
    load = train_with("load-test", serving.load_test, served, texts, params.profile, params.max_batch_size,
                      params.max_wait_ms)

    with serving.served(served.model, served.source, max_batch_size=params.max_batch_size,
                        max_wait_ms=params.max_wait_ms, psi_threshold=params.psi_threshold) as api:
        table, results = evaluate("sst2-dev-served", {"served": serving.ServedClassifier(api.url)},
                                  serving.dev_split(texts, labels), cv=0, fit=False)
        drift = serving.drift_checks(served.model, serving.served_drift(api.url), api.app.state.window.snapshot(),
                                     sst2.splits, settings["shifted"], params.seed, params.psi_threshold)
        result, local = results["served"], served.model.predict_proba(texts)[:, 1]
        checks = audit(audit_served, api.url, result.y_score, local, serving.BAD_REQUESTS, drift.reports,
                       int(load["errors"].sum()))

    metrics = serving.unit_metrics(load, drift, result.y_score, local, served)
    report = UnitReport.for_unit(
        UNIT, params, result, {"served model": checks}, class_names=serving.CLASS_NAMES, metrics=metrics,
        data_refs=[sst2.ref], figures=serving.figures(load, drift), captions=serving.CAPTIONS,
        tables={"load": load, "drift": serving.drift_table(drift), "served model": table},
        notes=f"Served {served.source}; reference statistics {reference_source}.",
        documents={"report": serving.report_markdown(served, reference_source, load, result.metrics,
                                                     metrics["served_max_abs_diff"], drift, params.profile)})
    return register(report)
