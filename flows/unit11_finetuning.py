"""Unit 11 — fine-tuning a pretrained transformer on SST-2 beside four baselines; registers mlpath-sentiment."""

from __future__ import annotations

from prefect import flow

from pipeline.audit.finetuning import audit_sentiment_model
from pipeline.lessons import finetuning
from pipeline.units.unit11_finetuning import SPEC as UNIT
from pipeline.units.unit11_finetuning import Unit11Params
from tasks.audit import audit
from tasks.evaluate import evaluate
from tasks.register import register
from tasks.train import train_with
from tasks.validate import ingest_validated

AUDIT_ROWS = 16  # dev sentences on which the fine-tuned model's storage, padding and batching are checked


@flow(name="unit11-finetuning", log_prints=True)
def unit11_finetuning(params: Unit11Params = Unit11Params()) -> dict:
    sst2 = ingest_validated("sst2", params)
    config = finetuning.unit_settings(params)
    data = finetuning.sst2_texts(sst2, config, params.seed)
    base = train_with("base-model", finetuning.load_base, params.base_model)
    meta = finetuning.model_meta([sst2.ref], base)
    trained = train_with("baselines", finetuning.fit_baselines, base, data, config, params.seed)
    trained[finetuning.FINE_TUNED] = train_with("full-fine-tuning", finetuning.fine_tune, base, data, config,
                                                params.seed, meta=meta)
    trained[finetuning.LORA] = train_with("lora", finetuning.fine_tune, base, data, config, params.seed, lora=True,
                                          meta=meta)
    models = {name: row.model for name, row in trained.items()}
    _, dev_results = evaluate("sst2-dev", models, finetuning.split(data.dev), cv=0, fit=False)
    _, test_results = evaluate("sst2-test", models, finetuning.split(data.test), cv=0, fit=False)
    checks = audit(audit_sentiment_model, models[finetuning.FINE_TUNED], data.dev[0][:AUDIT_ROWS])
    return register(finetuning.unit_report(UNIT, params, trained, data, dev_results, test_results, base,
                                           {"fine-tuned model": checks}, [sst2.ref]))
