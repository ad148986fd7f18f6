"""Unit 10: the NumPy attention against torch to 1e-6 (functional, module, masks), the softmax's
stability, the positional encodings against the paper's formula, the torch mirror against the
NumPy one, the tokenizer, the classifier in the sklearn contract, and the flow on quick."""

from __future__ import annotations

import json
import math
import tempfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.audit.attention import (
    ATTENTION_TOL,
    audit_attention,
    audit_positional_encoding,
    audit_torch_mirror,
    paper_positional_encoding,
)
from pipeline.data.words import PAD_ID, UNK_ID, TokenCounts, Vocabulary, tokenize
from pipeline.models.attention import AttentionClassifier, MultiHeadSelfAttention, TokenIds
from pipeline.models.attention import scaled_dot_product_attention as torch_attention
from pipeline.scratch.attention import (
    MultiHeadAttention,
    SelfAttention,
    causal_mask,
    scaled_dot_product_attention,
    sinusoidal_positional_encoding,
    softmax,
)
from pipeline.training import TorchClassifier, TrainConfig
from pipeline.units.unit10_attention import Unit10Params


@pytest.fixture
def one_thread():
    """Torch on one thread: a tiny model trains in seconds, instead of waiting on busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def qkv(shape=(2, 3, 5, 4), seed: int = 0):
    rng = np.random.default_rng(seed)
    return tuple(rng.normal(size=shape) for _ in range(3))


def test_softmax_is_stable_for_huge_scores_and_zero_for_minus_infinity():
    scores = np.array([[1000.0, 1001.0, -np.inf], [-1e308, 0.0, 1e3]])
    weights = softmax(scores)
    assert np.all(np.isfinite(weights))
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0)
    np.testing.assert_allclose(weights[0], [1 / (1 + math.e), math.e / (1 + math.e), 0.0])
    assert weights[0, 2] == 0.0
    assert np.all(np.isnan(softmax(np.array([-np.inf, -np.inf]))))  # nothing to attend to, as torch


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_matches_torch_functional_in_float64(causal):
    q, k, v = qkv()
    out, weights = scaled_dot_product_attention(q, k, v, causal=causal)
    theirs = F.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (q, k, v)), is_causal=causal)
    np.testing.assert_allclose(out, theirs.numpy(), atol=ATTENTION_TOL, rtol=0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0)
    assert out.shape == (2, 3, 5, 4) and weights.shape == (2, 3, 5, 5)


def test_sdpa_with_a_boolean_mask_and_different_lengths_matches_torch():
    rng = np.random.default_rng(3)
    q, k, v = rng.normal(size=(4, 6)), rng.normal(size=(9, 6)), rng.normal(size=(9, 2))
    mask = rng.random((4, 9)) < 0.6
    mask[:, 0] = True  # every query keeps a key
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    theirs = F.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (q, k, v)),
                                            attn_mask=torch.from_numpy(mask))
    np.testing.assert_allclose(out, theirs.numpy(), atol=ATTENTION_TOL, rtol=0)
    assert np.all(weights[~mask] == 0.0)
    with pytest.raises(TypeError, match="boolean"):
        scaled_dot_product_attention(q, k, v, mask=mask.astype(float))


def test_causal_mask_is_the_lower_triangle_aligned_top_left():
    np.testing.assert_array_equal(causal_mask(3), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    assert causal_mask(2, 4).tolist() == [[True, False, False, False], [True, True, False, False]]
    q, k, v = qkv((1, 5, 3))
    _, weights = scaled_dot_product_attention(q, k, v, causal=True)
    assert weights[0, 0, 0] == 1.0 and np.all(np.triu(weights[0], 1) == 0)


def test_attention_with_identical_keys_averages_the_values():
    v = np.arange(12.0).reshape(4, 3)
    out, weights = scaled_dot_product_attention(np.ones((2, 5)), np.ones((4, 5)), v)
    np.testing.assert_allclose(weights, 0.25)
    np.testing.assert_allclose(out, np.tile(v.mean(axis=0), (2, 1)))


@pytest.mark.parametrize("n_heads", [1, 4])
def test_multi_head_matches_nn_multihead_attention_with_the_same_weights(n_heads):
    torch.manual_seed(0)
    module = nn.MultiheadAttention(8, n_heads, batch_first=True, dtype=torch.float64).eval()
    with torch.no_grad():
        module.in_proj_bias.uniform_(-1, 1)
        module.out_proj.bias.uniform_(-1, 1)
    ours = MultiHeadAttention.from_torch(module)
    x = np.random.default_rng(1).normal(size=(3, 6, 8))
    tx = torch.from_numpy(x)
    out, weights = ours(x, causal=True)
    with torch.no_grad():
        theirs, their_weights = module(tx, tx, tx, attn_mask=~torch.from_numpy(causal_mask(6)),
                                       average_attn_weights=False)
    np.testing.assert_allclose(out, theirs.numpy(), atol=ATTENTION_TOL, rtol=0)
    np.testing.assert_allclose(weights, their_weights.numpy(), atol=ATTENTION_TOL, rtol=0)
    assert weights.shape == (3, n_heads, 6, 6)


def test_cross_attention_and_unbatched_inputs():
    layer = MultiHeadAttention(8, 2, seed=4)
    rng = np.random.default_rng(0)
    query, memory = rng.normal(size=(3, 8)), rng.normal(size=(7, 8))
    out, weights = layer(query, memory)
    assert out.shape == (3, 8) and weights.shape == (2, 3, 7)
    batched, _ = layer(query[None], memory[None])
    np.testing.assert_allclose(batched[0], out)
    with pytest.raises(ValueError, match="multiple"):
        MultiHeadAttention(10, 4)


def test_self_attention_is_one_head():
    layer = SelfAttention(6, seed=2)
    x = np.random.default_rng(0).normal(size=(4, 6))
    out, weights = layer(x)
    q, k, v = x @ layer.W_q + layer.b_q, x @ layer.W_k + layer.b_k, x @ layer.W_v + layer.b_v
    expected, expected_weights = scaled_dot_product_attention(q, k, v)
    np.testing.assert_allclose(out, expected @ layer.W_o + layer.b_o)
    np.testing.assert_allclose(weights[0], expected_weights)


def test_positional_encoding_follows_the_paper():
    pe = sinusoidal_positional_encoding(20, 10)
    np.testing.assert_allclose(pe, paper_positional_encoding(20, 10), atol=1e-12)
    np.testing.assert_allclose(pe[0], [0, 1] * 5)
    assert pe[3, 0] == pytest.approx(math.sin(3)) and pe[3, 1] == pytest.approx(math.cos(3))
    assert sinusoidal_positional_encoding(5, 7).shape == (5, 7)
    assert audit_positional_encoding().passed


def test_the_audit_passes_and_fails_when_the_attention_is_wrong(monkeypatch):
    report = audit_attention()
    assert report.passed and len(report.findings) >= 15

    import pipeline.audit.attention as module

    def unscaled(q, k, v, mask=None, causal=False):  # forgets the 1/√d
        return scaled_dot_product_attention(q * math.sqrt(q.shape[-1]), k, v, mask, causal)

    monkeypatch.setattr(module, "scaled_dot_product_attention", unscaled)
    assert not module.audit_attention().passed


def test_torch_mirror_equals_numpy_and_handles_padding(one_thread):
    torch.manual_seed(0)
    model = AttentionClassifier(30, d_model=16, n_heads=4).eval()
    ids = np.array([[2, 3, 4, 0, 0, 0], [5, 6, 7, 8, 9, 10], [11, 0, 0, 0, 0, 0]])
    report = audit_torch_mirror(model, ids)
    assert report.passed, report.table()
    with torch.no_grad():
        logits = model(torch.as_tensor(ids))
        padded_more = model(torch.as_tensor(np.pad(ids, ((0, 0), (0, 10)))))  # padding changes nothing
        weights = model.attention(torch.as_tensor(ids))
    torch.testing.assert_close(logits, padded_more)
    assert weights.shape == (3, 4, 6, 6)
    assert torch.all(weights[0, :, :, 3:] == 0)  # no query reads padding


def test_torch_functional_mirror_matches_numpy():
    q, k, v = qkv()
    for causal in (False, True):
        out, weights = torch_attention(*(torch.from_numpy(a) for a in (q, k, v)), causal=causal)
        ours, our_weights = scaled_dot_product_attention(q, k, v, causal=causal)
        np.testing.assert_allclose(out.numpy(), ours, atol=ATTENTION_TOL, rtol=0)
        np.testing.assert_allclose(weights.numpy(), our_weights, atol=ATTENTION_TOL, rtol=0)
    layer = MultiHeadSelfAttention(8, 2)
    assert MultiHeadAttention.from_torch(layer).n_heads == 2


def test_tokenizer_and_vocabulary_come_from_training_text_only():
    assert tokenize("It's NOT good!") == ["it's", "not", "good", "!"]
    assert tokenize("the film 's n't well-made") == ["the", "film", "'s", "n't", "well-made"]
    vocab = Vocabulary.build(["a good film", "a bad film", "a film"], min_count=1)
    assert vocab.words[:4] == ("<pad>", "<unk>", "a", "film")
    ids = vocab.encode(["a great film", ""], max_len=4)
    assert ids.dtype == np.int64 and ids.shape == (2, 4)
    assert ids[0].tolist() == [vocab.index["a"], UNK_ID, vocab.index["film"], PAD_ID]
    assert ids[1].tolist() == [UNK_ID, PAD_ID, PAD_ID, PAD_ID]
    assert vocab.decode(ids[0]) == ["a", "<unk>", "film"]
    assert vocab.encode(["a a a a a a"], max_len=3).tolist() == [[2, 2, 2]]
    counts = TokenCounts(len(vocab)).fit_transform(ids).toarray()
    assert counts[0, vocab.index["a"]] == 1 and counts[:, PAD_ID].sum() == 0 and counts[1, UNK_ID] == 1


def test_attention_classifier_learns_a_keyword_task_in_the_sklearn_contract(one_thread):
    rng = np.random.default_rng(0)
    X = rng.integers(3, 20, size=(300, 8))
    X[:, 6:] = PAD_ID
    y = (X == 3).any(axis=1).astype(int)  # positive when word 3 occurs
    from functools import partial

    model = TorchClassifier(partial(AttentionClassifier, vocab_size=20, d_model=16, n_heads=2, max_len=8),
                            TrainConfig(epochs=20, batch_size=32, lr=5e-3), input_transform=TokenIds())
    model.fit(X, y)
    assert np.mean(model.predict(X) == y) > 0.9
    assert model.predict_proba(X[:3]).shape == (3, 2)


def test_params_bounds():
    assert Unit10Params().cv_folds == 0
    with pytest.raises(ValueError):
        Unit10Params(n_heads=0)


@pytest.mark.slow
def test_unit10_flow_registers_the_attention_classifier(prefect_harness, fresh_home):
    from flows.unit10_attention import unit10_attention
    from pipeline.registry import client

    outcome = unit10_attention(Unit10Params(profile="quick", epochs=2))
    assert outcome["status"] == "succeeded" and outcome["unit"] == "unit10"
    assert outcome["primary_metric"] == "test_accuracy" and outcome["value"] > 0.55
    assert (outcome["version"], outcome["alias"]) == ("1", "champion")
    metrics = client().get_run(outcome["run_id"]).data.metrics
    assert {"baseline_test_accuracy", "dev_accuracy", "test_roc_auc", "test_f1"} <= set(metrics)
    assert metrics["baseline_test_accuracy"] > 0.7
    with tempfile.TemporaryDirectory() as tmp:
        path = client().download_artifacts(outcome["run_id"], "figures/captions.json", tmp)
        captions = json.loads(open(path, encoding="utf-8").read())
    assert {"attention_heads", "causal_mask", "positional_encoding", "pe_similarity"} <= set(captions)
    assert "query" in captions["attention_heads"]
    from pipeline.registry import load_version

    registered = load_version("mlpath-unit10", "1")  # raw sentences in, labels out: no pickle
    labels = registered.predict(np.array(["a wonderful , moving film", "dull and lifeless"], dtype=object))
    assert labels.shape == (2,) and set(labels.tolist()) <= {0, 1}


def test_registered_model_reads_raw_sentences_with_its_own_vocabulary(tmp_path, one_thread):
    from pipeline.lessons.attention import MAX_LEN, models, registered_model
    from pipeline.training.export import load_torch_model, save_torch_model

    train = ["a good film", "a bad film", "good fun", "bad acting", "very good", "very bad"] * 10
    vocab = Vocabulary.build(train)
    X, y = vocab.encode(train, MAX_LEN), np.array([1, 0, 1, 0, 1, 0] * 10)
    classifier = models(len(vocab), "quick", seed=0, epochs=1)["attention classifier"]
    classifier.config = classifier.config.__class__(epochs=1, batch_size=16)  # no checkpoint folder
    classifier.fit(X, y)
    model = registered_model(classifier, vocab)
    texts = np.array(["a good film", "bad", "never seen words"], dtype=object)
    expected = classifier.predict(vocab.encode(texts, MAX_LEN))
    np.testing.assert_array_equal(model.predict(texts), expected)
    reloaded = load_torch_model(save_torch_model(model, tmp_path / "model"))
    np.testing.assert_array_equal(reloaded.predict(texts), expected)
    assert reloaded.meta["vocab"][:2] == ["<pad>", "<unk>"] and reloaded.meta["classes"] == [0, 1]
