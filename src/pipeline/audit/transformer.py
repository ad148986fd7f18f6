"""The paper unit's Transformer against torch's, and its decoding against its own training view.

`audit_transformer_modules` copies the weights of ``torch.nn.MultiheadAttention``,
``nn.TransformerEncoderLayer`` and ``nn.TransformerDecoderLayer`` (post-norm, ReLU, batch first)
into ours and compares the outputs in float64, with and without masks; it also checks the
positional encodings against the paper's formula written out element by element.
`audit_seq2seq_decoding` checks a trained model: greedy decoding agrees with teacher forcing on
which test strings are right, and a save/reload round trip (safetensors + JSON) predicts the same.
"""

from __future__ import annotations

import math
import tempfile

import numpy as np
import torch
from torch import nn

from pipeline.audit import AuditReport
from pipeline.models.transformer import (
    DecoderLayer,
    EncoderLayer,
    MultiHeadAttention,
    causal_mask,
    sinusoid_table,
)

MODULE_TOL = 1e-6  # float64: the same arithmetic in a different order
PE_TOL = 1e-6  # the table is stored in float32
AGREEMENT_TOL = 0.005  # share of strings where an argmax tie may make greedy and teacher forcing differ


def copy_attention(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    """``theirs``'s packed input projection (3·d, d) and output projection into ours."""
    d = ours.d_model
    with torch.no_grad():
        for i, proj in enumerate((ours.q_proj, ours.k_proj, ours.v_proj)):
            proj.weight.copy_(theirs.in_proj_weight[i * d:(i + 1) * d])
            proj.bias.copy_(theirs.in_proj_bias[i * d:(i + 1) * d])
        ours.out_proj.weight.copy_(theirs.out_proj.weight)
        ours.out_proj.bias.copy_(theirs.out_proj.bias)


def _copy_linear_norm(ours_layer, theirs_layer, norms: tuple[str, ...]) -> None:
    with torch.no_grad():
        ours_layer.feed_forward.net[0].load_state_dict(theirs_layer.linear1.state_dict())
        ours_layer.feed_forward.net[3].load_state_dict(theirs_layer.linear2.state_dict())
        for ours_name, theirs_name in zip(norms, ("norm1", "norm2", "norm3"), strict=False):
            getattr(ours_layer, ours_name).load_state_dict(getattr(theirs_layer, theirs_name).state_dict())


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def audit_transformer_modules(seed: int = 0, d_model: int = 32, n_heads: int = 4,
                              tol: float = MODULE_TOL) -> AuditReport:
    """Our attention, encoder layer and decoder layer against torch's with the same weights (float64)."""
    report = AuditReport("Transformer modules vs torch.nn")
    gen = torch.Generator().manual_seed(seed)
    B, L, S = 3, 5, 7
    query = torch.randn(B, L, d_model, generator=gen, dtype=torch.float64)
    memory = torch.randn(B, S, d_model, generator=gen, dtype=torch.float64)
    padding = torch.zeros(B, S, dtype=torch.bool)
    padding[1, 4:], padding[2, 6:] = True, True
    blocked = torch.rand(L, S, generator=gen) > 0.6
    blocked[:, 0] = False  # every query keeps a key: a fully masked row is NaN in both

    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(d_model, n_heads, batch_first=True).double().eval()
    ours = MultiHeadAttention(d_model, n_heads).double().eval()
    copy_attention(ours, theirs)
    cases = {"no mask": {}, "key padding mask": {"key_padding_mask": padding},
             "attention mask": {"attn_mask": blocked},
             "both masks": {"attn_mask": blocked, "key_padding_mask": padding}}
    with torch.no_grad():
        for case, masks in cases.items():
            diff = _max_diff(ours(query, memory, memory, **masks), theirs(query, memory, memory, need_weights=False,
                                                                          **masks)[0])
            report.add(f"multi-head attention, {case}", diff <= tol, f"max |diff| = {diff:.1e} (tol {tol:.0e})")

        enc_theirs = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout=0.0, batch_first=True,
                                                norm_first=False).double().eval()
        enc_ours = EncoderLayer(d_model, n_heads, 4 * d_model, dropout=0.0).double().eval()
        copy_attention(enc_ours.self_attn, enc_theirs.self_attn)
        _copy_linear_norm(enc_ours, enc_theirs, ("norm1", "norm2"))
        diff = _max_diff(enc_ours(memory, key_padding_mask=padding), enc_theirs(memory, src_key_padding_mask=padding))
        report.add("encoder layer (post-norm), padding mask", diff <= tol, f"max |diff| = {diff:.1e} (tol {tol:.0e})")

        dec_theirs = nn.TransformerDecoderLayer(d_model, n_heads, 4 * d_model, dropout=0.0, batch_first=True,
                                                norm_first=False).double().eval()
        dec_ours = DecoderLayer(d_model, n_heads, 4 * d_model, dropout=0.0).double().eval()
        copy_attention(dec_ours.self_attn, dec_theirs.self_attn)
        copy_attention(dec_ours.cross_attn, dec_theirs.multihead_attn)
        _copy_linear_norm(dec_ours, dec_theirs, ("norm1", "norm2", "norm3"))
        mask = causal_mask(L)
        diff = _max_diff(dec_ours(query, mask, memory, padding),
                         dec_theirs(query, memory, tgt_mask=mask, memory_key_padding_mask=padding))
        report.add("decoder layer (post-norm), causal + memory padding masks", diff <= tol,
                   f"max |diff| = {diff:.1e} (tol {tol:.0e})")

    table = sinusoid_table(50, d_model).double()
    formula = torch.tensor([[math.sin(p / 10000 ** (i / d_model)) if i % 2 == 0
                             else math.cos(p / 10000 ** ((i - 1) / d_model)) for i in range(d_model)]
                            for p in range(50)], dtype=torch.float64)
    diff = _max_diff(table, formula)
    report.add("positional encoding = sin/cos(pos / 10000^(2i/d))", diff <= PE_TOL,
               f"max |diff| = {diff:.1e} (tol {PE_TOL:.0e})")
    return report


def audit_seq2seq_decoding(model, src: torch.Tensor, tgt: torch.Tensor, sources,
                           tol: float = AGREEMENT_TOL) -> AuditReport:
    """A trained seq2seq `TorchModel` on test rows: ``src`` (n, S) and ``tgt`` (n, T+1) ids, ``sources``
    the strings. Greedy exact match agrees with teacher-forced exact match per string, and the
    model reloaded from its stored form predicts the same strings."""
    from pipeline.training.device import one_thread
    from pipeline.training.export import load_torch_model, save_torch_model
    from pipeline.training.seq2seq import sequence_metrics

    report = AuditReport("Transformer decoding and storage")
    module = model.module.eval()
    with torch.no_grad(), one_thread():
        logits = module(src, tgt[:, :-1])
        target = tgt[:, 1:]
        real = target != 0
        forced = ((logits.argmax(-1) == target) | ~real).all(dim=1).numpy()
        greedy = module.greedy_decode(src, target.shape[1])
        width = target.shape[1]
        greedy_right = (greedy[:, :width] == target).all(dim=1).numpy()
        teacher = float(sequence_metrics(logits, target)["exact_match"])
    disagree = float(np.mean(forced != greedy_right))
    report.add("greedy decoding right exactly where teacher forcing is", disagree <= tol,
               f"{disagree:.2%} of {len(src)} strings differ (tol {tol:.1%}); teacher-forced exact match "
               f"{teacher:.4f}, greedy {greedy_right.mean():.4f}")
    with tempfile.TemporaryDirectory() as folder, one_thread():
        reloaded = load_torch_model(save_torch_model(model, folder))
        same = np.array_equal(model.predict(sources), reloaded.predict(sources))
    report.add("reloaded from safetensors + JSON predicts the same strings", same,
               f"{len(sources)} strings, {'identical' if same else 'different'} outputs")
    return report
