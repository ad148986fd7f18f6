"""Prediction functions for registered `pipeline.training.export.TorchModel`s: ``f(module, meta, X)``.

A stored model names its prediction function by reference, and only functions under
``pipeline.models.`` may be named; a unit with a model of its own kind adds its function beside
its module (``pipeline.models.rnn.predict_next_char``). ``forward_numpy`` is the plain case.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def forward_numpy(module: torch.nn.Module, meta: dict[str, Any], X: Any) -> np.ndarray:
    """The module's output for the float rows ``X`` (float32, on the module's device), as an array."""
    device = next(module.parameters()).device
    return module(torch.as_tensor(np.asarray(X, dtype=np.float32), device=device)).float().cpu().numpy()
