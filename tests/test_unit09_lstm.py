"""Unit 9: the char vocabulary and TBPTT batches, the LM step in the shared loop, the from-scratch
cells against torch, the gradient demos, the price windows (no look-ahead), and the flow on quick."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from pipeline.audit.rnn import RNN_TOL, audit_recurrent_cells, compare_with_torch
from pipeline.data.chars import CharVocab, char_split
from pipeline.lessons.recurrent import (
    LinearWindow,
    LSTMForecaster,
    Persistence,
    ReturnScaler,
    diebold_mariano,
    directional_accuracy,
    exploding_runs,
    gradient_through_time,
    price_windows,
)
from pipeline.models.rnn import CharLSTM, PriceLSTM, predict_next_char, predict_price
from pipeline.scratch.rnn import gru_cell, init_weights, lstm_cell, rnn_cell, run_sequence
from pipeline.training import TrainConfig, Trainer
from pipeline.training.export import TorchModel
from pipeline.training.lm import LanguageModelStep, detach_state, evaluate_lm, lm_batches, sample
from pipeline.units.unit09_lstm import Unit09Params

TEXT = "To be, or not to be, that is the question:\n" * 40


# --- characters ----------------------------------------------------------------------------------


def test_vocab_round_trip_sorted_and_json():
    vocab = CharVocab.fit(TEXT)
    assert vocab.chars == sorted(set(TEXT))
    ids = vocab.encode(TEXT)
    assert ids.dtype == np.int64 and vocab.decode(ids) == TEXT
    again = CharVocab.from_json(json.loads(json.dumps(vocab.to_json())))
    assert again == vocab and again.decode(torch.as_tensor(ids[:5])) == TEXT[:5]
    with pytest.raises(KeyError, match="'Z'"):
        vocab.encode("Zebra")
    with pytest.raises(ValueError):
        CharVocab.from_json({"chars": ["b", "a"]})


def test_char_split_is_contiguous_and_ninety_ten():
    text = "".join(chr(65 + i % 26) for i in range(1000))
    train, val = char_split(text)
    assert train + val == text and len(train) == 900
    with pytest.raises(ValueError):
        char_split(text, 0.0)


# --- TBPTT batches and the step --------------------------------------------------------------------


def test_lm_batches_rows_continue_across_batches():
    ids = np.arange(1001)
    batches = lm_batches(ids, batch_size=4, seq_len=10)  # rows of 250 steps: 25 windows
    assert len(batches) == 25
    x0, y0 = batches[0]
    x1, _ = batches[1]
    assert x0.shape == (4, 10) and x0.dtype == torch.int64
    assert torch.equal(y0, x0 + 1)  # targets are the next token
    assert torch.equal(x1[:, 0], x0[:, -1] + 1)  # row b continues where it stopped
    assert torch.equal(x0[:, 0], torch.tensor([0, 250, 500, 750]))
    with pytest.raises(ValueError):
        lm_batches(np.arange(5), batch_size=4, seq_len=10)


def test_detach_state_keeps_values_drops_graph():
    h = torch.ones(2, requires_grad=True) * 2
    state = detach_state((h, h))
    assert isinstance(state, tuple) and not state[0].requires_grad and torch.equal(state[0], h.detach())
    assert detach_state(None) is None


class _Recorder(CharLSTM):
    """A CharLSTM that records whether each call received a carried state."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.got_state: list[bool] = []

    def forward(self, x, state=None):
        self.got_state.append(state is not None)
        return super().forward(x, state)


def test_language_model_step_carries_state_and_learns():
    torch.manual_seed(0)
    vocab = CharVocab.fit(TEXT)
    ids = vocab.encode(TEXT)
    train = lm_batches(ids[:1400], batch_size=4, seq_len=25)
    val = lm_batches(ids[1400:], batch_size=2, seq_len=25)
    model = _Recorder(len(vocab), embed_dim=8, hidden_size=32)
    before = evaluate_lm(model, ids[1400:], batch_size=2, seq_len=25)
    model.got_state.clear()
    result = Trainer(model, TrainConfig(epochs=6, lr=1e-2, grad_clip=1.0), LanguageModelStep(),
                     callbacks=[]).fit(train, X_val=val)
    after = evaluate_lm(model, ids[1400:], batch_size=2, seq_len=25)
    # each epoch: the first window starts fresh, the next ones carry the state; validation likewise
    per_epoch = [False] + [True] * (len(train) - 1) + [False] + [True] * (len(val) - 1)
    assert model.got_state[: len(per_epoch) * 2] == per_epoch * 2
    assert after < before < math.log(len(vocab)) + 0.5 and after < 1.0
    assert result.history[-1]["val_loss"] == pytest.approx(result.history[-1]["val_bits"] * math.log(2))


def test_evaluate_lm_equals_the_mean_cross_entropy_with_carried_state():
    torch.manual_seed(0)
    model = CharLSTM(7, embed_dim=4, hidden_size=8)
    ids = np.random.default_rng(0).integers(0, 7, 203)
    got = evaluate_lm(model, ids, batch_size=2, seq_len=30)  # rows of 101: 4 windows, the last partial
    assert model.training  # put back in the mode it was in
    x = torch.as_tensor(ids[:202]).view(2, 101)
    y = torch.as_tensor(ids[1:203]).view(2, 101)
    with torch.no_grad():
        logits, _ = model(x)  # one pass over the whole rows = windows with carried state
    expected = float(nn.functional.cross_entropy(logits.reshape(-1, 7), y.reshape(-1)))
    assert got == pytest.approx(expected, rel=1e-5)


def test_sample_is_seeded_starts_with_the_prompt_and_stateless_models_work():
    torch.manual_seed(0)
    vocab = CharVocab.fit(TEXT)
    model = CharLSTM(len(vocab), embed_dim=8, hidden_size=16)
    a = sample(model, vocab, "To be", 30, temperature=0.8, seed=3)
    assert a.startswith("To be") and len(a) == 35 and a == sample(model, vocab, "To be", 30, 0.8, seed=3)
    greedy = sample(model, vocab, "To be", 10, temperature=0)
    assert greedy == sample(model, vocab, "To be", 10, temperature=0, seed=9)

    class Stateless(nn.Module):  # an attention-like model: logits only, a fixed context
        block_size = 4

        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            assert x.shape[1] <= 4
            return self.inner(x)[0], None

    # the LSTM rereading its last 4 characters: a different text, same length, no error
    assert len(sample(Stateless(), vocab, "To be", 12, temperature=1.0)) == 17


def test_predict_next_char_returns_ids_and_refuses_unknown_ones():
    model = CharLSTM(5, embed_dim=4, hidden_size=8)
    meta = {"vocab": {"chars": list("abcde")}}
    out = predict_next_char(model, meta, np.array([[0, 1, 2], [3, 4, 0]]))
    assert out.shape == (2,) and out.dtype == np.int64 and ((0 <= out) & (out < 5)).all()
    with pytest.raises(ValueError):
        predict_next_char(model, meta, np.array([[0, 5]]))


def test_price_lstm_shapes():
    out = PriceLSTM(hidden_size=8)(torch.randn(3, 29))
    assert out.shape == (3,)


# --- from-scratch cells against torch ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_scratch_cells_equal_torch_on_the_same_weights(kind):
    diffs = compare_with_torch(kind, batch=2, steps=9, input_size=3, hidden_size=4, num_layers=2, seed=1)
    assert set(diffs) == ({"outputs", "final h", "final c"} if kind == "lstm" else {"outputs", "final h"})
    assert max(diffs.values()) <= RNN_TOL


def test_lstm_cell_matches_nn_lstmcell_step_by_step():
    torch.manual_seed(2)
    cell = nn.LSTMCell(3, 5).double()
    w = {"W_ih": cell.weight_ih.detach().numpy(), "W_hh": cell.weight_hh.detach().numpy(),
         "b_ih": cell.bias_ih.detach().numpy(), "b_hh": cell.bias_hh.detach().numpy()}
    rng = np.random.default_rng(0)
    h, c = rng.normal(size=(2, 5)), rng.normal(size=(2, 5))
    th, tc = torch.from_numpy(h), torch.from_numpy(c)
    for _ in range(4):  # the state carried by hand, step after step
        x = rng.normal(size=(2, 3))
        h, c = lstm_cell(x, h, c, w)
        with torch.no_grad():
            th, tc = cell(torch.from_numpy(x), (th, tc))
    np.testing.assert_allclose(h, th.numpy(), atol=1e-12)
    np.testing.assert_allclose(c, tc.numpy(), atol=1e-12)


def test_scratch_rnn_and_gru_cells_and_unknown_kind():
    w = init_weights("rnn", 2, 3)[0]
    x, h = np.ones((1, 2)), np.zeros((1, 3))
    np.testing.assert_allclose(rnn_cell(x, h, w), np.tanh(x @ w["W_ih"].T + w["b_ih"] + w["b_hh"]))
    g = init_weights("gru", 2, 3, seed=1)[0]
    assert gru_cell(x, h, g).shape == (1, 3)
    with pytest.raises(ValueError, match="kind"):
        run_sequence("transformer", np.zeros((1, 2, 2)), [w])


def test_audit_recurrent_cells_passes():
    report = audit_recurrent_cells()
    assert report.passed and len(report.findings) == 7


# --- gradient demos ----------------------------------------------------------------------------------


def test_vanilla_rnn_gradient_vanishes_faster_than_the_lstm():
    norms = gradient_through_time(steps=60, hidden_size=16, input_size=4, batch=4)
    assert list(norms.columns) == ["t", "rnn", "lstm", "gru"] and len(norms) == 60
    assert norms["rnn"].iloc[-1] == pytest.approx(norms["lstm"].iloc[-1])  # same readout at the last step
    assert norms["rnn"].iloc[0] < 1e-3 * norms["lstm"].iloc[0]


def test_clipping_keeps_the_exploding_run_finite():
    runs = exploding_runs(updates=12)
    unclipped = runs[runs["run"] == "no clipping"]
    clipped = runs[runs["run"] != "no clipping"]
    assert unclipped["grad_norm"].iloc[0] > 1e3  # the recurrent weights make the gradient explode
    assert not np.isfinite(unclipped["loss"].iloc[-1])
    assert np.isfinite(clipped["loss"]).all() and clipped["loss"].iloc[-1] < clipped["loss"].iloc[0] / 10


# --- MSFT windows, scaler and forecasters --------------------------------------------------------------


def prices(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 20 * np.exp(np.cumsum(rng.normal(0.0005, 0.02, n)))
    return pd.DataFrame({"Date": pd.bdate_range("2001-01-01", periods=n), "Close": close})


def test_price_windows_are_chronological_and_targets_follow_inputs():
    w = price_windows(prices(), window=30)
    close = prices()["Close"].to_numpy()
    assert w.X_train.shape[1] == 30 and len(w.y_train) + len(w.y_val) + len(w.y_test) == 400 - 30
    assert w.dates_train[-1] < w.dates_val[0] and w.dates_val[-1] < w.dates_test[0]
    np.testing.assert_array_equal(w.X_train[0], close[:30])
    assert w.y_train[0] == close[30] and w.y_test[-1] == close[-1]
    np.testing.assert_array_equal(w.X_test[-1], close[-31:-1])


def test_no_look_ahead_later_prices_change_neither_training_windows_nor_scaler():
    base = prices()
    w = price_windows(base)
    changed = base.copy()
    later = changed["Date"] > w.train_end
    changed.loc[later, "Close"] *= np.random.default_rng(1).uniform(0.2, 5.0, later.sum())
    w2 = price_windows(changed)
    np.testing.assert_array_equal(w.X_train, w2.X_train)
    np.testing.assert_array_equal(w.y_train, w2.y_train)
    assert not np.allclose(w.y_test, w2.y_test)
    a, b = ReturnScaler().fit(w.X_train, w.y_train), ReturnScaler().fit(w2.X_train, w2.y_train)
    assert (a.mean_, a.scale_) == (b.mean_, b.scale_)
    lin_a, lin_b = LinearWindow().fit(w.X_train, w.y_train), LinearWindow().fit(w2.X_train, w2.y_train)
    np.testing.assert_array_equal(lin_a.linear_.coef_, lin_b.linear_.coef_)


def test_scaler_round_trip_and_forecasters_predict_prices():
    w = price_windows(prices())
    scaler = ReturnScaler().fit(w.X_train, w.y_train)
    np.testing.assert_allclose(scaler.price(w.X_val, scaler.target(w.X_val, w.y_val)), w.y_val, rtol=1e-12)
    np.testing.assert_array_equal(Persistence().fit(w.X_train, w.y_train).predict(w.X_test), w.X_test[:, -1])
    lstm = LSTMForecaster(hidden_size=4, epochs=3, patience=2).fit(w.X_train, w.y_train, w.X_val, w.y_val)
    pred = lstm.predict(w.X_test)
    assert pred.shape == w.y_test.shape and np.all(np.abs(pred / w.X_test[:, -1] - 1) < 0.2)
    assert 1 <= lstm.best_epoch_ <= 3 and "val_loss" in lstm.history_[0]
    model = TorchModel(lstm.module_, PriceLSTM, {"hidden_size": 4}, predict_price, scaler_json(lstm))
    np.testing.assert_allclose(model.predict(w.X_test), pred)


def scaler_json(model: LSTMForecaster) -> dict:
    return model.scaler_.to_json()


def test_directional_accuracy_counts_the_sign_of_the_move():
    X = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])
    y = np.array([3.0, 1.0, 2.0])
    assert directional_accuracy(X, y, np.array([2.5, 1.5, 3.0])) == pytest.approx(2 / 3)
    assert directional_accuracy(X, y, X[:, -1]) == pytest.approx(1 / 3)  # persistence: only the flat day


# --- the flow ----------------------------------------------------------------------------------------


def test_params_refuse_cross_validation_and_bad_values():
    assert Unit09Params().cv_folds == 0
    with pytest.raises(ValidationError):
        Unit09Params(cv_folds=5)
    with pytest.raises(ValidationError):
        Unit09Params(temperature=0.0)


@pytest.mark.slow
def test_unit09_flow_on_quick(prefect_harness, fresh_home):
    from mlflow import MlflowClient

    from flows.unit09_lstm import unit09_lstm
    from pipeline.registry import load_version

    outcome = unit09_lstm(Unit09Params(profile="quick", epochs=1, price_epochs=2))
    assert outcome["status"] == "succeeded" and outcome["alias"] == "champion"
    assert 1.0 < outcome["value"] < math.log(65)  # one epoch on a slice: better than uniform
    run = MlflowClient().get_run(outcome["run_id"])
    assert {"val_loss", "val_bits_per_char", "msft_lstm_test_rmse", "msft_persistence_test_rmse",
            "msft_linear_test_directional_accuracy"} <= set(run.data.metrics)
    model = load_version(outcome["model_name"], outcome["version"])
    ids = model.predict(np.array([[0, 1, 2, 3], [4, 5, 6, 7]]))
    assert ids.shape == (2,) and model.meta["vocab"]["chars"][0] == "\n"


def test_diebold_mariano_sees_a_clearly_better_forecast_and_not_a_tie():
    rng = np.random.default_rng(0)
    y = rng.normal(size=500)
    good, bad = y + rng.normal(scale=0.1, size=500), y + rng.normal(scale=1.0, size=500)
    stat, p = diebold_mariano(y, good, bad)
    assert stat < 0 and p < 1e-6
    _, p_tie = diebold_mariano(y, good, good + rng.normal(scale=1e-6, size=500))
    assert p_tie > 0.01
