# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Unit 9 — Recurrent networks and LSTMs
#
# A recurrent network reads a sequence one step at a time and carries a **hidden state** from
# step to step. This notebook builds the cells from scratch and checks them against torch,
# shows why gradients vanish and explode through time, trains a small character-level LSTM on
# Tiny Shakespeare and samples from it, and forecasts MSFT's next close against two honest
# baselines.
#
# Code: `pipeline.scratch.rnn` (NumPy cells), `pipeline.models.rnn` (torch modules),
# `pipeline.training.lm` (truncated BPTT in the shared loop), `pipeline.lessons.recurrent` (the
# unit). Everything here runs on the quick settings; the notes (`docs/unit09_lstm.md`) give the
# full-profile numbers.

# %%
import numpy as np
import torch
from IPython.display import display

from pipeline.audit.rnn import audit_recurrent_cells
from pipeline.data import load_dataset
from pipeline.evaluation import compare_models
from pipeline.lessons import recurrent
from pipeline.plots import show
from pipeline.scratch.rnn import init_weights, run_sequence

_ = torch.manual_seed(0)

# %% [markdown]
# ## The cells, from scratch
#
# One LSTM step in NumPy (float64): four blocks of gates from `W_ih x + W_hh h + b`, then
# `c' = f ⊙ c + i ⊙ g` and `h' = o ⊙ tanh(c')`. `run_sequence` applies a stack of cells over a
# batch of sequences and returns every output and the final state — pass that state back in and
# the sequence continues exactly where it stopped.

# %%
layers = init_weights("lstm", input_size=3, hidden_size=4, num_layers=1)
X = np.random.default_rng(0).normal(size=(2, 10, 3))  # (B, T, D)
whole, _ = run_sequence("lstm", X, layers)
first, state = run_sequence("lstm", X[:, :6], layers)
rest, _ = run_sequence("lstm", X[:, 6:], layers, state)
print("outputs", whole.shape, "| two calls with the carried state equal one call:",
      np.allclose(np.concatenate([first, rest], axis=1), whole))

# %% [markdown]
# The audit copies the weights of `nn.RNN`, `nn.LSTM` and `nn.GRU` (two layers, float64) into the
# NumPy cells and compares outputs and final states; it runs in the flow and fails the run
# beyond 1e-6.

# %%
display(audit_recurrent_cells().table())

# %% [markdown]
# ## Vanishing gradients
#
# The loss depends on the last step only; back-propagation multiplies one Jacobian per step on
# the way back. For the vanilla RNN each factor is `W_hh` times `tanh'`, and the product shrinks
# geometrically; the LSTM's cell state is updated additively, so its gradient is scaled by the
# forget gate instead.

# %%
norms = recurrent.gradient_through_time()
show(recurrent.gradient_figure(norms))
print(recurrent.CAPTIONS["gradient_through_time"])

# %% [markdown]
# ## Exploding gradients, and clipping
#
# Make the recurrent weights large (spectral radius 1.8) and the same product grows instead. One
# SGD step with such a gradient throws the weights far away; `clip_grad_norm_` rescales the
# gradient to norm 1 when it is larger, so each step stays small.

# %%
runs = recurrent.exploding_runs()
show(recurrent.exploding_figure(runs))
display(runs.groupby("run", sort=False).head(4))

# %% [markdown]
# ## A character-level LSTM on Tiny Shakespeare
#
# The text is split 90/10 into contiguous training and validation parts. Truncated BPTT lays the
# training stream out as 32 parallel rows and feeds windows of 50 characters; the hidden state
# from one window is passed (detached) into the next. Here: one epoch on the first 120,000
# characters — a smoke run; the full profile trains on everything.

# %%
text = load_dataset("tinyshakespeare").splits["text"]
settings = recurrent.char_settings("quick", epochs=1)
lm = recurrent.train_char_lm(text, settings, temperatures=(0.5, 1.0))
print(f"{len(lm.vocab)} characters; validation {lm.val_nats:.3f} nats/char "
      f"({lm.val_bits:.3f} bits/char); uniform guessing would be {np.log(len(lm.vocab)):.3f}")
display(recurrent.char_history(lm))

# %% [markdown]
# Sampling: each next character is drawn from `softmax(logits / T)`. A low temperature picks
# likely characters (repetitive, safer text); 1.0 samples the model's own distribution.

# %%
for t, sample_text in lm.samples.items():
    print(f"--- temperature {t} ---\n{sample_text}\n")

# %% [markdown]
# ## Forecasting MSFT's next close
#
# 30-day windows of closes predict the next close. The split is chronological (70/15/15 by the
# predicted day), and the scaler of the daily log returns is fitted on the training windows only.
# Three forecasters go through the shared evaluation: persistence (tomorrow = today), linear
# regression on the window, and the LSTM (early stopping on the validation period).

# %%
prices = load_dataset("stocks").splits["prices"]
windows = recurrent.price_windows(prices)
models = recurrent.fit_price_models(recurrent.price_models("quick", seed=0), windows)
_, results = compare_models(models, windows.X_train, windows.y_train, windows.X_test, windows.y_test,
                            cv=0, fit=False, task="regression")
table = recurrent.price_table(results, windows.X_test, windows.y_test, "test")
display(table)
print(recurrent.price_verdict(table, windows.X_test, windows.y_test, {name: r.y_pred for name, r in results.items()}))

# %%
show(recurrent.price_figure(windows, {name: r.y_pred for name, r in results.items()}))

# %% [markdown]
# All three forecasts trail the actual price by about a day: with daily prices, today's close is
# most of what can be known about tomorrow's. The errors differ by fractions of a percent, and
# the Diebold–Mariano test says whether such a difference is more than chance. Directional
# accuracy shows it from another side: a model that knew the direction of tomorrow's move would
# be worth a great deal, and none of these is far from the share of up days.
