"""Unit 10's audit: our NumPy attention against torch's, in float64, to ``ATTENTION_TOL``.

- `scaled_dot_product_attention` against ``torch.nn.functional.scaled_dot_product_attention``
  (outputs, with and without ``is_causal``, and with a boolean padding mask); our weights against
  softmax(q kᵀ / √d) computed by torch (its fused function does not return them);
- `MultiHeadAttention.from_torch` against ``nn.MultiheadAttention`` with the same weights: outputs
  and per-head weights (``average_attn_weights=False``), plain, causal and with padding;
- the positional encodings against the paper's formula written out element by element;
- the trained classifier's torch attention block (``pipeline.models.attention``) against the NumPy
  one with its weights copied over, on real sentences (float32 weights, computed in float64).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.audit import AuditReport
from pipeline.scratch.attention import (
    MultiHeadAttention,
    causal_mask,
    scaled_dot_product_attention,
    sinusoidal_positional_encoding,
)

ATTENTION_TOL = 1e-6  # float64 on both sides: the differences are rounding, ~1e-15
PE_TOL = 1e-12


def _diff(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        return math.inf
    both_nan = np.isnan(a) & np.isnan(b)
    return float(np.max(np.abs(np.where(both_nan, 0.0, a - b)), initial=0.0))


def _check(report: AuditReport, name: str, ours, theirs, tol: float) -> None:
    diff = _diff(ours, theirs)
    report.add(name, diff <= tol, f"max |diff| = {diff:.2e} (tol {tol:.0e})")


def _padding(batch: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """(batch, length) booleans, True for real tokens: each row 1..length real, then padding."""
    lengths = rng.integers(1, length + 1, size=batch)
    lengths[0] = length
    return np.arange(length)[None, :] < lengths[:, None]


def audit_attention(seed: int = 0, batch: int = 3, length: int = 7, d_model: int = 16, n_heads: int = 4,
                    tol: float = ATTENTION_TOL) -> AuditReport:
    """Our NumPy attention against torch's functional and module attention, float64."""
    report = AuditReport("attention vs torch (F.scaled_dot_product_attention, nn.MultiheadAttention)")
    rng = np.random.default_rng(seed)
    q, k, v = (rng.normal(size=(batch, n_heads, length, d_model // n_heads)) for _ in range(3))
    tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
    real = _padding(batch, length, rng)  # (B, L)
    key_mask = real[:, None, None, :]  # (B, 1, 1, L): every query sees the real keys

    for label, kwargs, torch_kwargs in (
        ("", {}, {}),
        (", causal", {"causal": True}, {"is_causal": True}),
        (", padding mask", {"mask": key_mask}, {"attn_mask": torch.from_numpy(key_mask)}),
    ):
        out, weights = scaled_dot_product_attention(q, k, v, **kwargs)
        theirs = F.scaled_dot_product_attention(tq, tk, tv, **torch_kwargs)
        _check(report, f"sdpa outputs{label}", out, theirs.numpy(), tol)
        scores = tq @ tk.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if "causal" in kwargs:
            scores = scores.masked_fill(~torch.from_numpy(causal_mask(length)), -math.inf)
        if "mask" in kwargs:
            scores = scores.masked_fill(~torch.from_numpy(key_mask), -math.inf)
        _check(report, f"sdpa weights{label}", weights, torch.softmax(scores, dim=-1).numpy(), tol)
    _, weights = scaled_dot_product_attention(q, k, v, causal=True)
    above = np.abs(weights[..., ~causal_mask(length)]).max()
    report.add("causal weights above the diagonal are 0", above == 0.0, f"max = {above:.1e}")

    torch.manual_seed(seed)
    module = nn.MultiheadAttention(d_model, n_heads, batch_first=True, dtype=torch.float64).eval()
    with torch.no_grad():  # non-zero biases, so that copying them is checked too
        module.in_proj_bias.normal_()
        module.out_proj.bias.normal_()
    ours = MultiHeadAttention.from_torch(module)
    x = rng.normal(size=(batch, length, d_model))
    tx = torch.from_numpy(x)
    for label, kwargs, torch_kwargs in (
        ("", {}, {}),
        (", causal", {"causal": True},
         {"attn_mask": ~torch.from_numpy(causal_mask(length)), "is_causal": True}),
        (", key padding", {"mask": key_mask}, {"key_padding_mask": ~torch.from_numpy(real)}),
    ):
        out, weights = ours(x, **kwargs)
        with torch.no_grad():  # torch's masks are True where attention is NOT allowed
            theirs, their_weights = module(tx, tx, tx, need_weights=True, average_attn_weights=False,
                                           **torch_kwargs)
        _check(report, f"MultiheadAttention outputs{label}", out, theirs.numpy(), tol)
        _check(report, f"MultiheadAttention per-head weights{label}", weights, their_weights.numpy(), tol)
    out, weights = ours(x)
    with torch.no_grad():
        _, averaged = module(tx, tx, tx, need_weights=True, average_attn_weights=True)
    _check(report, "MultiheadAttention head-averaged weights", weights.mean(axis=-3), averaged.numpy(), tol)
    return report + audit_positional_encoding()


def paper_positional_encoding(n_positions: int, d_model: int) -> np.ndarray:
    """The formula of Vaswani et al. (2017, §3.5), one element at a time:
    PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model))."""
    pe = np.zeros((n_positions, d_model))
    for pos in range(n_positions):
        for j in range(d_model):
            i = j // 2
            angle = pos / 10000 ** (2 * i / d_model)
            pe[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return pe


def audit_positional_encoding(n_positions: int = 50, tol: float = PE_TOL) -> AuditReport:
    """Our vectorised encodings against the element-by-element formula, even and odd widths."""
    report = AuditReport("positional encoding vs the paper's formula")
    for d_model in (16, 15):
        _check(report, f"PE ({n_positions} x {d_model})", sinusoidal_positional_encoding(n_positions, d_model),
               paper_positional_encoding(n_positions, d_model), tol)
    return report


def audit_torch_mirror(model, ids: np.ndarray, tol: float = ATTENTION_TOL) -> AuditReport:
    """A trained ``AttentionClassifier``'s attention block (torch) against our NumPy
    `MultiHeadAttention` with its weights, on the block's inputs for the rows ``ids`` (n, L).

    Both run in float64 on the same float32 weights, so they agree to rounding."""
    from pipeline.models.attention import PAD_ID
    from pipeline.models.attention import sinusoidal_positional_encoding as torch_pe

    report = AuditReport("torch attention block vs the NumPy attention (same weights)")
    module = model.module_ if hasattr(model, "module_") else model
    module = module.eval()
    ids_t = torch.as_tensor(np.asarray(ids), dtype=torch.long, device=next(module.parameters()).device)
    with torch.no_grad():
        x = module.embeddings(ids_t).double().cpu()  # (n, L', d)
        real = (ids_t != PAD_ID)[:, : x.shape[1]].cpu()  # (n, L')
        mask = real[:, None, None, :]
        out, weights = copy.deepcopy(module.attn).cpu().double()(x, mask=mask)
    ours = MultiHeadAttention.from_torch(module.attn)
    our_out, our_weights = ours(x.numpy(), mask=mask.numpy())
    _check(report, "block outputs on real sentences", our_out, out.numpy(), tol)
    _check(report, "block per-head weights on real sentences", our_weights, weights.numpy(), tol)
    _check(report, "positional encodings (torch vs NumPy)", torch_pe(60, module.d_model).numpy(),
           sinusoidal_positional_encoding(60, module.d_model), 1e-6)  # torch's are float32
    return report
