"""The paper unit: our Transformer modules against torch, the Noam schedule, the digit strings, the flow."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.audit.transformer import audit_transformer_modules, copy_attention
from pipeline.models.transformer import (
    BOS,
    EOS,
    PAD,
    MultiHeadAttention,
    PositionalEncoding,
    Transformer,
    TransformerLM,
    causal_mask,
    decode_ids,
    encode_texts,
    sinusoid_table,
)
from pipeline.training import TrainConfig, build_scheduler
from pipeline.training.config import noam_factor
from pipeline.training.seq2seq import exact_match_scores, sequence_metrics
from pipeline.units.paper import PaperParams

MHA_TOL = 1e-6


def _pair(d_model: int = 16, n_heads: int = 4):
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(d_model, n_heads, batch_first=True).double().eval()
    ours = MultiHeadAttention(d_model, n_heads).double().eval()
    copy_attention(ours, theirs)
    return ours, theirs


@pytest.mark.parametrize("masks", ["none", "padding", "attn", "both", "causal"])
def test_multi_head_attention_equals_torch_with_the_same_weights(masks):
    ours, theirs = _pair()
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(2, 6, 16, generator=gen, dtype=torch.float64)
    kv = q if masks == "causal" else torch.randn(2, 8, 16, generator=gen, dtype=torch.float64)
    padding = torch.zeros(2, kv.shape[1], dtype=torch.bool)
    padding[1, -3:] = True
    blocked = torch.rand(6, kv.shape[1], generator=gen) > 0.5
    blocked[:, 0] = False
    kwargs = {"none": {}, "padding": {"key_padding_mask": padding}, "attn": {"attn_mask": blocked},
              "both": {"attn_mask": blocked, "key_padding_mask": padding},
              "causal": {"attn_mask": causal_mask(6)}}[masks]
    with torch.no_grad():
        expected, _ = theirs(q, kv, kv, need_weights=False, **kwargs)
        assert torch.allclose(ours(q, kv, kv, **kwargs), expected, atol=MHA_TOL, rtol=0)


def test_masked_keys_do_not_change_the_output():
    ours, _ = _pair()
    q = torch.randn(1, 3, 16, dtype=torch.float64)
    kv = torch.randn(1, 5, 16, dtype=torch.float64)
    padding = torch.tensor([[False, False, False, True, True]])
    changed = kv.clone()
    changed[0, 3:] = 100.0
    with torch.no_grad():
        before = ours(q, kv, kv, key_padding_mask=padding)
        assert torch.allclose(before, ours(q, changed, changed, key_padding_mask=padding))


def test_causal_mask_hides_the_future():
    assert causal_mask(3).tolist() == [[False, True, True], [False, False, True], [False, False, False]]
    torch.manual_seed(0)
    lm = TransformerLM(10, d_model=16, n_heads=2, n_layers=2, d_ff=32, dropout=0.0, block_size=8).eval()
    x = torch.randint(0, 10, (1, 8))
    y = x.clone()
    y[0, 5:] = (y[0, 5:] + 1) % 10
    with torch.no_grad():
        assert torch.allclose(lm(x)[0][0, :5], lm(y)[0][0, :5], atol=1e-6)
        assert not torch.allclose(lm(x)[0][0, 5:], lm(y)[0][0, 5:])


def test_the_audit_passes_for_attention_layers_and_encodings():
    report = audit_transformer_modules()
    assert report.passed and len(report.findings) == 7


def test_positional_encoding_is_the_papers_formula():
    table = sinusoid_table(20, 8)
    pos, i = 7, 3  # dimension 2i = 6 and 2i + 1 = 7
    assert table[pos, 2 * i].item() == pytest.approx(math.sin(pos / 10000 ** (2 * i / 8)), abs=1e-6)
    assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(pos / 10000 ** (2 * i / 8)), abs=1e-6)
    assert table[0, 0::2].abs().max() == 0 and torch.all(table[0, 1::2] == 1)
    x = torch.zeros(2, 5, 8)
    assert torch.equal(PositionalEncoding(8, 20)(x), table[:5].expand(2, 5, 8))
    with pytest.raises(ValueError, match="positions"):
        PositionalEncoding(8, 4)(x)


def test_noam_schedule_values():
    w = 400
    assert noam_factor(w - 1, w) == pytest.approx(1.0)  # the peak, at update w
    assert noam_factor(0, w) == pytest.approx(1 / w)  # linear warm-up from lr / w
    assert noam_factor(4 * w - 1, w) == pytest.approx(0.5)  # then lr · sqrt(w / s)
    d_model, warmup = 512, 4000  # the paper's base model: lr = d_model^-0.5 · min(s^-0.5, s · w^-1.5)
    lr = (d_model * warmup) ** -0.5
    for s in (1, 100, 4000, 10_000):
        paper = d_model ** -0.5 * min(s ** -0.5, s * warmup ** -1.5)
        assert lr * noam_factor(s - 1, warmup) == pytest.approx(paper)


def test_noam_scheduler_in_the_config_steps_the_optimizer():
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    scheduler = build_scheduler(optimizer, TrainConfig(lr=0.1, optimizer="sgd", scheduler="noam", warmup_steps=4), None)
    lrs = []
    for _ in range(8):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1]) and lrs[7] == pytest.approx(0.1 * math.sqrt(4 / 8))
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainConfig(scheduler="noam", warmup_steps=0)


def test_forward_shapes_and_greedy_decoding_shape():
    torch.manual_seed(0)
    model = Transformer(13, 13, d_model=32, n_heads=4, d_ff=64, max_len=16).eval()
    src = encode_texts(["12345", "987654321012"], "0123456789", 12)
    tgt = encode_texts(["54321", "210123456789"], "0123456789", 14, bos=True, eos=True)
    assert model(src, tgt[:, :-1]).shape == (2, 13, 13)
    out = model.greedy_decode(src, 13)
    assert out.shape == (2, 13) and out.dtype == torch.long
    lm = TransformerLM(65, d_model=32, n_heads=4, n_layers=2, d_ff=64, block_size=16)
    logits, state = lm(torch.zeros(3, 16, dtype=torch.long))
    assert logits.shape == (3, 16, 65) and state is None


def test_tied_weights_are_stored_once():
    model = Transformer(13, 13, d_model=16, n_heads=2, d_ff=32)
    names = [name for name in model.state_dict() if "embed" in name]
    assert names == ["src_embed.embed.weight"]
    assert model.tgt_embed is model.src_embed


def test_text_encoding_round_trip():
    ids = encode_texts(["042", "7"], "0123456789", 6, bos=True, eos=True)
    assert ids.tolist() == [[BOS, 3, 7, 5, EOS, PAD], [BOS, 10, EOS, PAD, PAD, PAD]]
    assert decode_ids(ids[:, 1:], "0123456789") == ["042", "7"]
    with pytest.raises(ValueError, match="positions"):
        encode_texts(["1234"], "0123456789", 3)


def test_sequence_metrics_ignore_padding_and_exact_match_scores():
    target = torch.tensor([[5, 6, EOS, PAD], [7, EOS, PAD, PAD]])
    logits = torch.nn.functional.one_hot(torch.tensor([[5, 6, EOS, 9], [8, EOS, 0, 0]]), 12).float()
    metrics = sequence_metrics(logits, target)
    assert metrics["token_accuracy"].item() == pytest.approx(4 / 5) and metrics["exact_match"].item() == 0.5
    scores = exact_match_scores(["123", "45", "6789"], ["123", "54", "678"])
    assert scores["exact_match"] == pytest.approx(1 / 3) and scores["length_accuracy"] == pytest.approx(2 / 3)
    assert scores["char_accuracy"] == pytest.approx((3 + 0 + 3) / (3 + 2 + 4))


def test_digit_strings_are_reversals_disjoint_across_splits():
    from pipeline.data.loaders import make_digit_strings

    splits = make_digit_strings({})
    assert {k: len(v) for k, v in splits.items()} == {"train": 20000, "val": 1000, "test": 1000}
    every = np.concatenate([frame["source"].to_numpy() for frame in splits.values()])
    assert len(set(every)) == len(every)
    for frame in splits.values():
        assert (frame["target"] == frame["source"].str[::-1]).all()
        assert frame["source"].str.fullmatch(r"[0-9]{5,12}").all()
    assert make_digit_strings({})["test"].equals(splits["test"])  # fixed seed


def test_params_refuse_bad_values():
    assert PaperParams().epochs is None
    with pytest.raises(ValueError):
        PaperParams(epochs=0)
    with pytest.raises(ValueError):
        PaperParams(lm_budget_s=-1.0)


@pytest.mark.slow
def test_paper_flow_registers_the_seq2seq_transformer(prefect_harness, fresh_home, monkeypatch):
    from flows.paper import paper
    from pipeline.registry import client

    outcome = paper(PaperParams(profile="quick", epochs=1, lm_budget_s=1.0))
    assert outcome["status"] == "succeeded" and outcome["unit"] == "paper"
    assert outcome["primary_metric"] == "test_exact_match" and 0.0 <= outcome["value"] <= 1.0
    assert (outcome["version"], outcome["alias"]) == ("1", "champion")
    run = client().get_run(outcome["run_id"])
    assert {"lm_transformer_val_loss", "lm_lstm_val_loss", "test_char_accuracy"} <= set(run.data.metrics)
    artifacts = {a.path for a in client().list_artifacts(outcome["run_id"], "figures")}
    assert {f"figures/{name}.png" for name in ("seq2seq_training", "learning_rate", "lm_val_loss_vs_time")} <= artifacts
