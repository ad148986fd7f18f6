"""Convolutional networks for CIFAR-10 (Unit 8), and the arithmetic of their shapes.

A convolution slides a small kernel (k x k weights per input channel) over the image and writes
one number per position and output channel. How many positions there are along one side:

    out = floor((n + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1

``conv_output_size`` and ``pool_output_size`` compute it; ``trace_shapes`` runs a model once and
records what each layer actually produced, so the two can be compared (the tests do).

- ``SimpleCNN`` (Model A) is the PyTorch "Training a classifier" tutorial's net: two 5x5
  convolutions, each followed by ReLU and 2x2 max-pooling, then three dense layers.
- ``ResNetSmall`` (Model B) is the "ResNet-9" of the DAWNBench CIFAR-10 entries (David Page,
  "How to train your ResNet"): 3x3 convolutions with batch norm, two residual blocks, a global
  max pool. ``width`` scales every channel count, so CPU runs can use a narrower net.

The notes in ``docs/unit08_cnn.md`` work the shapes through for both models.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Side length of a convolution's output, as ``nn.Conv2d`` computes it.

    Parameters
    ----------
    size : input side length n.
    kernel, stride, padding, dilation : as in ``nn.Conv2d`` (one side; square kernels).

    Returns
    -------
    int : ``floor((n + 2p - d(k - 1) - 1) / s) + 1``.

    Raises
    ------
    ValueError : if an argument is out of range or the (dilated) kernel is larger than the padded
        input, so not a single output position fits.
    """
    _check_window(size, kernel, stride, padding, dilation)
    # The kernel's first tap can sit at padded positions 0 .. n + 2p - span, every s-th one.
    span = dilation * (kernel - 1) + 1
    return (size + 2 * padding - span) // stride + 1


def pool_output_size(
    size: int,
    kernel: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Side length of a max/average pool's output, as ``nn.MaxPool2d`` computes it.

    Same arithmetic as a convolution, with two differences: ``stride`` defaults to ``kernel``
    (non-overlapping windows), and ``ceil_mode=True`` rounds up, keeping a last, partial window
    as long as it starts inside the input or its left padding.

    Raises
    ------
    ValueError : as ``conv_output_size``, or if ``padding`` exceeds half the kernel (PyTorch
        refuses a window that could hold only padding).
    """
    stride = kernel if stride is None else stride
    _check_window(size, kernel, stride, padding, dilation)
    if padding > kernel // 2:
        raise ValueError(f"pool padding={padding} must be at most half the kernel ({kernel} // 2)")
    span = dilation * (kernel - 1) + 1
    if not ceil_mode:
        return (size + 2 * padding - span) // stride + 1
    out = math.ceil((size + 2 * padding - span) / stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1  # that last window would start in the right padding and see no input
    return out


def _check_window(size: int, kernel: int, stride: int, padding: int, dilation: int) -> None:
    if size < 1 or kernel < 1 or stride < 1 or dilation < 1 or padding < 0:
        raise ValueError(
            f"need size, kernel, stride, dilation >= 1 and padding >= 0; got size={size}, "
            f"kernel={kernel}, stride={stride}, padding={padding}, dilation={dilation}"
        )
    span = dilation * (kernel - 1) + 1
    if span > size + 2 * padding:
        raise ValueError(f"a kernel spanning {span} pixels does not fit an input of {size} with padding {padding}")


def trace_shapes(
    model: nn.Module, input_shape: tuple[int, ...], depth: int | None = None
) -> list[tuple[str, tuple[int, ...]]]:
    """Run ``model`` once on zeros and record every layer's output shape, in call order.

    Parameters
    ----------
    model : the network; left in the train/eval mode it was in, its weights and batch-norm
        statistics untouched (the pass runs in eval mode, without gradients).
    input_shape : full input shape, batch included, e.g. ``(1, 3, 32, 32)``.
    depth : None records the leaf layers (those without sub-modules); ``d`` records the modules
        ``d`` levels down (``depth=1``: the model's own attributes), plus any shallower leaves.

    Returns
    -------
    list of (name, shape) : the module's qualified name (``"layer1.0"``) and its output shape, batch
        included. A module called twice (a shared pooling layer) appears twice.
    """
    records: list[tuple[str, tuple[int, ...]]] = []
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue  # the model itself
        level = name.count(".") + 1
        is_leaf = next(module.children(), None) is None
        if (depth is None and is_leaf) or (depth is not None and (level == depth or (level < depth and is_leaf))):
            handles.append(module.register_forward_hook(_recorder(name, records)))

    was_training = model.training
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else None
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return records


def _recorder(name: str, records: list[tuple[str, tuple[int, ...]]]):
    def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:
        records.append((name, tuple(output.shape)))

    return hook


class SimpleCNN(nn.Module):
    """Model A: the PyTorch tutorial's CIFAR-10 net (62,006 parameters with 10 classes).

    Input ``(B, 3, 32, 32)`` normalised images; output ``(B, num_classes)`` logits. The first dense
    layer hard-codes 16 * 5 * 5 inputs, so only 32 x 32 images fit.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, kernel_size=5)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)  # no weights: one module, used twice
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))  # (B, 6, 28, 28)   32 - 5 + 1 = 28
        x = self.pool(x)  # (B, 6, 14, 14)
        x = torch.relu(self.conv2(x))  # (B, 16, 10, 10)  14 - 5 + 1 = 10
        x = self.pool(x)  # (B, 16, 5, 5)
        x = self.flatten(x)  # (B, 400)
        x = torch.relu(self.fc1(x))  # (B, 120)
        x = torch.relu(self.fc2(x))  # (B, 84)
        return self.fc3(x)  # (B, num_classes)


def conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution (padding 1 keeps the size) -> batch norm -> ReLU.

    No conv bias: batch norm subtracts the per-channel mean right after, which would cancel it;
    its own shift (beta) plays that role.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    """``x + f(x)`` with f two ``conv_bn`` blocks that keep channels and size.

    The identity path lets the gradient reach earlier layers unchanged, and a block whose f learns
    nothing useful still passes its input through, so adding blocks cannot make the net worse.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetSmall(nn.Module):
    """Model B: "ResNet-9", 3x3 convolutions with batch norm and two residual blocks.

    Parameters
    ----------
    num_classes : size of the output.
    width : channels of the first layer; the later stages use 2x, 4x and 8x. The default 64 is
        the published net (6.57 M parameters, 94 % on CIFAR-10 in its authors' 24-epoch schedule).
        Compute grows with the square of the width: Unit 8's full profile uses 32 (1/4 of it),
        the quick profile 16 (1/16).

    Input ``(B, 3, H, W)`` with H, W multiples of 8 (32 for CIFAR); output ``(B, num_classes)``
    logits. Shapes below are for width 64 and 32 x 32 inputs.
    """

    def __init__(self, num_classes: int = 10, width: int = 64):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be a positive channel count, got {width}")
        c1, c2, c3, c4 = width, 2 * width, 4 * width, 8 * width
        self.prep = conv_bn(3, c1)
        self.layer1 = nn.Sequential(conv_bn(c1, c2), nn.MaxPool2d(2))
        self.res1 = Residual(c2)
        self.layer2 = nn.Sequential(conv_bn(c2, c3), nn.MaxPool2d(2))
        self.layer3 = nn.Sequential(conv_bn(c3, c4), nn.MaxPool2d(2))
        self.res3 = Residual(c4)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prep(x)  # (B, 64, 32, 32)
        x = self.layer1(x)  # (B, 128, 16, 16)
        x = self.res1(x)  # (B, 128, 16, 16)
        x = self.layer2(x)  # (B, 256, 8, 8)
        x = self.layer3(x)  # (B, 512, 4, 4)
        x = self.res3(x)  # (B, 512, 4, 4)
        x = self.pool(x)  # (B, 512, 1, 1)   the strongest response of each channel, anywhere
        x = self.flatten(x)  # (B, 512)
        return self.fc(x)  # (B, num_classes)


MODELS: dict[str, type[nn.Module]] = {"simple": SimpleCNN, "resnet": ResNetSmall}
