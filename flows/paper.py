"""Paper — "Attention Is All You Need": a seq2seq Transformer and a decoder-only character model."""

from __future__ import annotations

from prefect import flow

from pipeline.audit.transformer import audit_seq2seq_decoding, audit_transformer_modules
from pipeline.lessons import transformer
from pipeline.report import UnitReport
from pipeline.units.paper import SPEC as UNIT
from pipeline.units.paper import PaperParams
from tasks.audit import audit
from tasks.register import register
from tasks.train import train_with
from tasks.validate import ingest_validated


@flow(name="paper", log_prints=True)
def paper(params: PaperParams = PaperParams()) -> dict:
    digits = ingest_validated("digit_strings", params)
    shakespeare = ingest_validated("tinyshakespeare", params)
    seq = train_with("seq2seq-transformer", transformer.train_seq2seq, digits.splits, params.profile,
                     params.seed, params.epochs)
    runs = train_with("char-lms", transformer.train_char_models, shakespeare.splits["text"], params.profile,
                      params.seed, params.lm_budget_s)
    model = transformer.seq2seq_model(seq)
    test = digits.splits["test"]
    # Exact match by greedy decoding is our own metric: the shared evaluation scores one label per row.
    metrics, by_length, examples = transformer.evaluate_seq2seq(model, test)
    modules = audit(audit_transformer_modules, params.seed)
    decoding = audit(audit_seq2seq_decoding, model, *transformer.seq2seq_tensors(test), test["source"].to_numpy())

    report = UnitReport(
        UNIT.id, UNIT.primary_metric, UNIT.greater_is_better, params.model_dump(),
        metrics=metrics | transformer.lm_metrics(runs), data_refs=[digits.ref, shakespeare.ref],
        model=model, model_example=test["source"].to_numpy()[:2],
        figures=transformer.figures(seq, runs), captions=transformer.CAPTIONS,
        tables={"exact match by length": by_length, "seq2seq examples": examples,
                "character models": transformer.lm_table(runs)},
        texts={f"sample: {name}": run.sample for name, run in runs.items()},
        documents={"report": transformer.report_document(params.profile, metrics, seq, by_length, examples, runs)},
        histories={"seq2seq": seq.history} | {transformer.SHORT_NAMES[name]: run.history for name, run in runs.items()})
    for label, checks in {"modules": modules, "decoding": decoding}.items():
        report.add_audit(checks, label)
    return register(report)
