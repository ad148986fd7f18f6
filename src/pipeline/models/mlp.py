"""Unit 7's network as a torch module, for the units that train it with torch (Unit 15).

The same network as ``pipeline.scratch.mlp.NeuralNetwork`` with ReLU: dense layers
``n_features → hidden… → n_classes``, ReLU between them, raw logits out, weights drawn He-normal
(``N(0, 2 / fan_in)``) and biases zero, as the NumPy version draws them. Sized like
``TorchClassifier(..., size_from_data=True)`` builds a module: ``MLP(n_features, n_classes, hidden=...)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """Dense ReLU network; (B, n_features) floats → (B, n_classes) logits."""

    def __init__(self, n_features: int = 784, n_classes: int = 10, hidden: Sequence[int] = (512, 256)):
        super().__init__()
        widths = [n_features, *hidden, n_classes]
        layers: list[nn.Module] = []
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            linear = nn.Linear(n_in, n_out)
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            nn.init.zeros_(linear.bias)
            layers += [linear, nn.ReLU()]
        self.net = nn.Sequential(*layers[:-1])  # no ReLU on the logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))  # (B, ...) → (B, n_features) → (B, n_classes)
