"""Capstone — the sentiment system end to end: Unit 11 fine-tunes and registers, the champion is served
on a loopback port, a smoke batch goes through /predict and /monitoring/drift, the run is registered."""

from __future__ import annotations

from prefect import flow

from flows.unit11_finetuning import unit11_finetuning
from pipeline.lessons import capstone as system
from pipeline.lessons import serving
from pipeline.report import UnitReport
from pipeline.units.capstone import SPEC as UNIT
from pipeline.units.capstone import CapstoneParams
from tasks.audit import audit
from tasks.evaluate import evaluate
from tasks.register import register
from tasks.train import train_with
from tasks.validate import ingest_validated


@flow(name="capstone", log_prints=True)
def capstone(params: CapstoneParams = CapstoneParams()) -> dict:
    # ingest → validate → fine-tune → … → register; in the whole path Unit 11 has just done it
    unit11 = unit11_finetuning(system.unit11_params(params)) if params.fine_tune else system.NOT_FINE_TUNED
    sst2 = ingest_validated("sst2", params)
    texts, labels = serving.dev_texts(sst2.splits, params.smoke_texts, params.seed)
    champion = train_with("champion", system.champion_version)
    served = train_with("load-champion", serving.load_served_model, system.CHAMPION_URI, False, params.seed)
    serving.with_reference(served, sst2.splits["dev"]["sentence"].tolist())

    with serving.served(served.model, served.source, min_window=min(50, params.smoke_texts)) as api:
        smoke = train_with("smoke-batch", system.smoke, api.url, texts)
        table, results = evaluate("sst2-dev-served", {"served": serving.ServedClassifier(api.url)},
                                  serving.dev_split(texts, labels), cv=0, fit=False)
    result = results["served"]
    checks = audit(system.audit_system, unit11, champion, smoke, len(texts), result.y_score,
                   served.model.predict_proba(texts)[:, 1])

    report = UnitReport.for_unit(
        UNIT, params, result, {"system": checks}, class_names=serving.CLASS_NAMES,
        metrics=system.metrics(unit11, champion, smoke), data_refs=[sst2.ref], tables={"served model": table},
        notes=f"Served {served.source}.",
        documents={"report": system.report_markdown(unit11, champion, served.source, smoke, result.metrics,
                                                    params.profile)})
    return register(report)
