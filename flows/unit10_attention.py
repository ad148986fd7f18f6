"""Unit 10 — attention from scratch, audited against torch, and an attention classifier on SST-2."""

from __future__ import annotations

from prefect import flow

from pipeline.audit.attention import audit_attention, audit_torch_mirror
from pipeline.lessons import attention
from pipeline.report import UnitReport
from pipeline.units.unit10_attention import SPEC as UNIT
from pipeline.units.unit10_attention import Unit10Params
from tasks.audit import audit
from tasks.evaluate import evaluate
from tasks.register import register
from tasks.train import train_models
from tasks.validate import ingest_validated

AUDIT_ROWS = 32  # test sentences on which the trained block is checked against the NumPy attention


@flow(name="unit10-attention", log_prints=True)
def unit10_attention(params: Unit10Params = Unit10Params()) -> dict:
    sst2 = ingest_validated("sst2", params)
    vocab, split, dev = attention.sst2_split(sst2)
    scratch = audit(audit_attention, seed=params.seed)
    models = train_models("sst2-attention", attention.models(
        len(vocab), params.profile, params.seed, params.epochs, params.d_model, params.n_heads), split)
    table, results = evaluate("sst2", models, split, cv=params.cv_folds, seed=params.seed)
    mirror = audit(audit_torch_mirror, models[attention.ATTENTION], split.X_test[:AUDIT_ROWS])

    parts = attention.report_parts(models, results, vocab, dev)
    # Registered over raw sentences with its vocabulary: the champion is scored on the same text.
    holdout = attention.sentences(sst2, "test")
    report = UnitReport.for_unit(
        UNIT, params, results[attention.ATTENTION], {"NumPy vs torch": scratch, "trained block": mirror},
        class_names=attention.CLASS_NAMES, data_refs=[sst2.ref],
        model=attention.registered_model(models[attention.ATTENTION], vocab),
        model_example=holdout[0][:2], holdout=holdout,
        tables={"models": table, **parts.pop("tables")}, captions=attention.CAPTIONS, **parts)
    return register(report)
