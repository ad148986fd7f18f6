"""Trained-model audits: what a fitted torch classifier predicts must survive a save and reload.

The registry ships a model's weights and the serving side rebuilds the module from them; a buffer
left out of the state dict (batch norm's running statistics), a layer the factory builds
differently, or weights that only work in one memory layout would all change the predictions.
"""

from __future__ import annotations

import copy
import io

import numpy as np
import torch
from torch import nn

from pipeline.audit import AuditReport

# Same weights, same input, same layout: only the order of float32 sums may differ.
RELOAD_TOL = 1e-5
# Channels-last and contiguous convolutions take other kernels: float32 rounding, relative to the
# largest logit.
LAYOUT_TOL = 1e-4


def reload_module(model) -> nn.Module:
    """The fitted ``model``'s weights saved with ``torch.save`` and loaded into a fresh module (CPU)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.module_.state_dict().items()}, buffer)
    buffer.seek(0)
    module = model.module_factory(model.n_features_in_, len(model.classes_)) if model.size_from_data \
        else model.module_factory()
    module.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    return module


def _logits(module: nn.Module, x: torch.Tensor, channels_last: bool) -> np.ndarray:
    """Float32 logits of ``module`` (eval mode, CPU) with weights and batch in the given layout."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    module = module.to(memory_format=layout).eval()
    with torch.inference_mode():
        return module(x.contiguous(memory_format=layout) if x.ndim == 4 else x).float().numpy()


def audit_torch_reload(model, X, rtol: float = RELOAD_TOL, layout_tol: float = LAYOUT_TOL) -> AuditReport:
    """A fitted ``TorchClassifier`` on a few rows ``X``: reload round trip and memory layouts, fp32.

    The fitted module (a copy, on the CPU, in float32, eval mode) gives the reference logits, in
    the layout it trained in. Its state dict goes through ``torch.save``/``torch.load`` into a
    module freshly built by the model's factory; that one's logits must match the reference to
    ``rtol`` times the largest reference logit, and its predictions must all agree. The reloaded
    module's logits in channels-last and in contiguous layout must match to ``layout_tol``
    (relative alike). The model itself is not touched: everything runs on copies.
    """
    subject = f"trained {type(model.module_).__name__}: save/reload round trip and memory layouts"
    report = AuditReport(subject)
    x = torch.as_tensor(np.asarray(X))
    if model.input_transform is not None:
        x = model.input_transform(x)
    x = x.float()
    channels_last = bool(model.config.channels_last)
    layout_name = "channels-last" if channels_last else "contiguous"

    reference = _logits(copy.deepcopy(model.module_).cpu().float(), x, channels_last)
    scale = max(float(np.max(np.abs(reference))), 1.0)
    reloaded_module = reload_module(model).cpu().float()
    reloaded = _logits(reloaded_module, x, channels_last)
    diff = float(np.max(np.abs(reloaded - reference)))
    report.add(f"logits after save/reload ({layout_name}, fp32)", diff <= rtol * scale,
               f"{len(x)} rows: max |diff| = {diff:.2e} (tol {rtol:.0e} × {scale:.1f}, the largest logit)")
    agreement = float(np.mean(reloaded.argmax(axis=1) == reference.argmax(axis=1)))
    report.add("predictions after save/reload", agreement == 1.0, f"{agreement:.1%} of {len(x)} rows agree")

    other = _logits(reloaded_module, x, not channels_last)
    diff = float(np.max(np.abs(other - reloaded)))
    report.add("logits channels-last vs contiguous (fp32)", diff <= layout_tol * scale,
               f"{len(x)} rows: max |diff| = {diff:.2e} (tol {layout_tol:.0e} × {scale:.1f})")
    return report
