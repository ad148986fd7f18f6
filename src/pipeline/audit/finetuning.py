"""Fine-tuned model audits: what the registered SentimentModel predicts must not depend on how it
is stored or batched.

The registry stores the model as safetensors + tokenizer files and serving rebuilds it from them; a
head left out of the saved weights, a tokenizer saved with other settings (lower-casing, truncation)
or a padding token the attention mask does not hide would change the predictions. Each check runs
on copies of the inputs; the model is not touched.
"""

from __future__ import annotations

import tempfile

import numpy as np

from pipeline.audit import AuditReport

# Same weights, same inputs: only the order of float32 sums may differ.
RELOAD_TOL = 1e-6
# Padding to 128 tokens instead of the batch's longest changes the matrix shapes, hence the sums.
PADDING_TOL = 1e-4


def _proba(model, texts: list[str], padding: bool | str = True) -> np.ndarray:
    """Probabilities of one batch of ``texts``, padded as ``padding`` says (the tokenizer's option),
    computed directly (not through the model's remembered results)."""
    import torch

    with torch.inference_mode():
        batch = model.tokenizer(texts, padding=padding, truncation=True, max_length=model.max_length,
                                return_tensors="pt")
        return torch.softmax(model.model(**batch).logits.double(), dim=-1).numpy()


def audit_sentiment_model(model, texts, reload_tol: float = RELOAD_TOL, padding_tol: float = PADDING_TOL
                          ) -> AuditReport:
    """A trained ``SentimentModel`` on a few ``texts``: save/load round trip, padding, batch size."""
    from pipeline.models.sentiment import SentimentModel

    texts = list(texts)
    report = AuditReport(f"fine-tuned {model.meta.get('base_model', 'model')}: storage, padding and batching")
    reference = model.predict_proba(texts)
    with tempfile.TemporaryDirectory() as tmp:
        reloaded = SentimentModel.load(model.save(tmp))
        gap = float(np.abs(reloaded.predict_proba(texts) - reference).max())
    report.add("save/load round trip (safetensors + tokenizer files)", gap <= reload_tol,
               f"max |Δp| = {gap:.2e} (tolerance {reload_tol:g})")
    gap = float(np.abs(_proba(model, texts, "max_length") - reference).max())
    report.add(f"dynamic padding = padding to {model.max_length} tokens (the attention mask hides pads)",
               gap <= padding_tol, f"max |Δp| = {gap:.2e} (tolerance {padding_tol:g})")
    single = np.vstack([_proba(model, [t]) for t in texts])
    gap = float(np.abs(single - reference).max())
    report.add("one sentence at a time = batches of 64", gap <= padding_tol,
               f"max |Δp| = {gap:.2e} (tolerance {padding_tol:g})")
    rows = np.abs(reference.sum(axis=1) - 1).max()
    report.add("probabilities sum to 1", rows <= 1e-9, f"max |Σp - 1| = {rows:.1e}")
    return report
