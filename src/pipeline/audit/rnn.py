"""From-scratch recurrent cells against ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` on the same weights.

Each torch module is built in float64 with its own random initialisation, its weights are copied
into the NumPy cells, and both run the same batch of sequences from the same non-zero initial
state: every output and the final state (h, and c for the LSTM) must agree to ``RNN_TOL``.
The run is split in two halves, the second started from the first's final state, so the check
also proves the state is carried correctly from one call to the next (what TBPTT relies on).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipeline.audit import AuditReport
from pipeline.scratch.rnn import KINDS, Weights, run_sequence

RNN_TOL = 1e-6  # float64 on both sides: only the order of the sums differs
_MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def torch_weights(module: nn.RNNBase) -> list[Weights]:
    """A torch recurrent module's weights per layer as float64 arrays, in the scratch layout."""
    return [{name: getattr(module, f"{name.replace('W_', 'weight_').replace('b_', 'bias_')}_l{layer}")
             .detach().double().numpy().copy() for name in ("W_ih", "W_hh", "b_ih", "b_hh")}
            for layer in range(module.num_layers)]


def compare_with_torch(kind: str, batch: int = 3, steps: int = 12, input_size: int = 5, hidden_size: int = 7,
                       num_layers: int = 2, seed: int = 0) -> dict[str, float]:
    """Max |diff| between the scratch ``kind`` and its torch twin: outputs, final h (and c)."""
    torch.manual_seed(seed)
    module = _MODULES[kind](input_size, hidden_size, num_layers, batch_first=True).double()
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(batch, steps, input_size))
    state = tuple(rng.normal(scale=0.5, size=(num_layers, batch, hidden_size))
                  for _ in range(2 if kind == "lstm" else 1))
    layers, half = torch_weights(module), steps // 2
    ours_a, ours_state = run_sequence(kind, X[:, :half], layers, state)
    ours_b, ours_state = run_sequence(kind, X[:, half:], layers, ours_state)
    with torch.no_grad():
        torch_state = tuple(torch.from_numpy(s) for s in state)
        theirs, theirs_state = module(torch.from_numpy(X), torch_state if kind == "lstm" else torch_state[0])
    theirs_state = theirs_state if kind == "lstm" else (theirs_state,)
    diffs = {"outputs": float(np.max(np.abs(np.concatenate([ours_a, ours_b], axis=1) - theirs.numpy())))}
    for name, ours_s, theirs_s in zip(("final h", "final c"), ours_state, theirs_state, strict=False):
        diffs[name] = float(np.max(np.abs(ours_s - theirs_s.numpy())))
    return diffs


def audit_recurrent_cells(tol: float = RNN_TOL, seed: int = 0) -> AuditReport:
    """The three scratch cells, stacked two deep, against torch: outputs and final states to ``tol``."""
    report = AuditReport("recurrent cells (NumPy) vs nn.RNN / nn.LSTM / nn.GRU")
    for kind in KINDS:
        for name, diff in compare_with_torch(kind, seed=seed).items():
            report.add(f"{kind}: {name}", diff <= tol,
                       f"2 layers, 12 steps in two calls: max |diff| = {diff:.2e} (tol {tol:.0e})")
    return report
