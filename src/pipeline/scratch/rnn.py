"""Unit 9: recurrent cells from scratch in NumPy (float64) — vanilla RNN, LSTM, GRU.

A recurrent network applies one cell at every timestep, feeding it the input x_t and the state it
returned at t-1; the same weights serve every step. The weight layout is torch's (``nn.RNN``,
``nn.LSTM``, ``nn.GRU``), so the audit copies a torch module's weights in and expects the same
numbers: ``W_ih (G*H, D)``, ``W_hh (G*H, H)``, ``b_ih (G*H,)``, ``b_hh (G*H,)`` with G = 1, 4, 3
blocks of rows.

- RNN:  h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
- LSTM: blocks (i, f, g, o); i, f, o = σ(·) are the input, forget and output gates, g = tanh(·)
  the candidate; c' = f ⊙ c + i ⊙ g (the memory: an additive update), h' = o ⊙ tanh(c')
- GRU:  blocks (r, z, n); r, z = σ(·); n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn));
  h' = (1 - z) ⊙ n + z ⊙ h

``run_sequence`` runs a (stacked) cell over a batch of sequences, carrying the state through time
and returning every step's output and the final state, as the torch modules do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

KINDS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # blocks of rows in W_ih / W_hh

Weights = dict[str, np.ndarray]  # W_ih, W_hh, b_ih, b_hh of one layer


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, computed without overflow for large |z|."""
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def rnn_cell(x: np.ndarray, h: np.ndarray, w: Weights) -> np.ndarray:
    """One vanilla RNN step: x (B, D), h (B, H) -> h' (B, H)."""
    return np.tanh(x @ w["W_ih"].T + w["b_ih"] + h @ w["W_hh"].T + w["b_hh"])


def lstm_cell(x: np.ndarray, h: np.ndarray, c: np.ndarray, w: Weights) -> tuple[np.ndarray, np.ndarray]:
    """One LSTM step: x (B, D), h (B, H), c (B, H) -> (h', c'), each (B, H)."""
    z = x @ w["W_ih"].T + w["b_ih"] + h @ w["W_hh"].T + w["b_hh"]  # (B, 4H)
    i, f, g, o = np.split(z, 4, axis=1)
    i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
    c_next = f * c + i * g  # forget part of the memory, write the gated candidate
    return o * np.tanh(c_next), c_next


def gru_cell(x: np.ndarray, h: np.ndarray, w: Weights) -> np.ndarray:
    """One GRU step: x (B, D), h (B, H) -> h' (B, H)."""
    xr, xz, xn = np.split(x @ w["W_ih"].T + w["b_ih"], 3, axis=1)  # (B, H) each
    hr, hz, hn = np.split(h @ w["W_hh"].T + w["b_hh"], 3, axis=1)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)  # the reset gate scales the recurrent part of the candidate only
    return (1.0 - z) * n + z * h


def _step(kind: str) -> Callable[..., Any]:
    if kind == "lstm":
        return lambda x, state, w: lstm_cell(x, state[0], state[1], w)
    cell = rnn_cell if kind == "rnn" else gru_cell
    return lambda x, state, w: (cell(x, state[0], w),)


def init_weights(kind: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 seed: int = 0) -> list[Weights]:
    """Weights per layer, uniform in ±1/sqrt(H) as torch initialises them (its own random draws)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    rng = np.random.default_rng(seed)
    bound, rows = 1.0 / np.sqrt(hidden_size), GATES[kind] * hidden_size
    layers = []
    for layer in range(num_layers):
        d = input_size if layer == 0 else hidden_size
        layers.append({"W_ih": rng.uniform(-bound, bound, (rows, d)),
                       "W_hh": rng.uniform(-bound, bound, (rows, hidden_size)),
                       "b_ih": rng.uniform(-bound, bound, rows), "b_hh": rng.uniform(-bound, bound, rows)})
    return layers


def run_sequence(kind: str, X: np.ndarray, layers: Sequence[Weights],
                 state: tuple[np.ndarray, ...] | None = None) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Run a stack of ``kind`` cells over X (B, T, D), batch first, carrying the state through time.

    ``state`` is torch's: ``(h0,)`` for rnn/gru, ``(h0, c0)`` for lstm, each (num_layers, B, H);
    None starts from zeros. Returns the last layer's outputs (B, T, H) and the final state in the
    same layout, so a second call with it continues the sequences exactly.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    X = np.asarray(X, dtype=np.float64)
    batch, steps, _ = X.shape
    hidden = layers[0]["W_hh"].shape[1]
    n_state = 2 if kind == "lstm" else 1
    if state is None:
        state = tuple(np.zeros((len(layers), batch, hidden)) for _ in range(n_state))
    step = _step(kind)
    inputs, finals = X, []
    for index, w in enumerate(layers):
        layer_state = tuple(s[index] for s in state)
        outputs = []
        for t in range(steps):
            layer_state = step(inputs[:, t], layer_state, w)  # the state carried to step t + 1
            outputs.append(layer_state[0])
        inputs = np.stack(outputs, axis=1)  # (B, T, H): the next layer's input sequence
        finals.append(layer_state)
    return inputs, tuple(np.stack([f[k] for f in finals]) for k in range(n_state))
