"""Unit 9 — recurrent networks: a character LSTM on Tiny Shakespeare, LSTM price forecasts on MSFT."""

from __future__ import annotations

from prefect import flow

from pipeline.audit.rnn import audit_recurrent_cells
from pipeline.features import Split
from pipeline.lessons import recurrent
from pipeline.units.unit09_lstm import SPEC as UNIT
from pipeline.units.unit09_lstm import Unit09Params
from tasks.audit import audit
from tasks.evaluate import evaluate
from tasks.register import register
from tasks.train import train_with
from tasks.validate import ingest_validated


@flow(name="unit09-lstm", log_prints=True)
def unit09_lstm(params: Unit09Params = Unit09Params()) -> dict:
    shakespeare = ingest_validated("tinyshakespeare", params)
    stocks = ingest_validated("stocks", params)
    norms, runs = train_with("gradient-demos", recurrent.gradient_demos, params.seed)
    settings = recurrent.char_settings(params.profile, params.epochs, params.hidden, params.seq_len)
    temperatures = tuple(sorted({*recurrent.TEMPERATURES, params.temperature}))
    lm = train_with("char-lstm", recurrent.train_char_lm, shakespeare.splits["text"], settings, temperatures,
                    params.seed)
    windows = recurrent.price_windows(stocks.splits["prices"], params.window)
    models = train_with("msft-forecasters", recurrent.fit_price_models,
                        recurrent.price_models(params.profile, params.seed, params.price_epochs), windows)
    # The validation period picked the LSTM's epoch; the test period is scored once, by every model alike.
    _, val_results = evaluate("msft-validation", models, Split(windows.X_train, windows.X_val, windows.y_train,
                                                               windows.y_val), cv=0, fit=False, task="regression")
    _, test_results = evaluate("msft-test", models, Split(windows.X_train, windows.X_test, windows.y_train,
                                                         windows.y_test), cv=0, fit=False, task="regression")
    cells = audit(audit_recurrent_cells, seed=params.seed)
    return register(recurrent.unit_report(UNIT, params, lm, windows, val_results, test_results, norms, runs,
                                          {"cells": cells}, [shakespeare.ref, stocks.ref]))
