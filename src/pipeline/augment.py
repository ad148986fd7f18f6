"""CIFAR-10 image batches in plain torch: to tensors, normalise, augment.

Everything works on a whole batch ``(N, 3, H, W)`` at once, on whatever device the batch is on,
with no Python loop over images: on a GPU the augmentation costs next to nothing beside the
model. Random choices come from an optional ``torch.Generator``, so a seeded generator gives the
same augmented batches on every run. They are drawn on the generator's device (the CPU when there
is none) and then moved to the batch, so a CPU generator gives the same crops on CPU and GPU.

Augmentation shows the model a slightly different picture of each image every epoch: shifted by
a few pixels (``random_crop``) and mirrored left-right (``random_hflip``), changes that do not
change the label. It is only for training; evaluation just normalises.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

# Per-channel (R, G, B) mean and standard deviation of the 50,000 training images scaled to
# [0, 1], over all pixels. Computed from the data mirror's copy, a JPEG re-encoding of CIFAR-10,
# not the official file: the figures usually quoted for that have the same means to 1e-4 and stds
# up to 0.002 larger (0.2470, 0.2435, 0.2616), JPEG having smoothed the finest detail away.
CIFAR10_MEAN = (0.4913, 0.4821, 0.4465)
CIFAR10_STD = (0.2452, 0.2428, 0.2606)


def to_tensor_images(images: np.ndarray | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 images ``(N, H, W, C)`` (as ``load_dataset("cifar10")`` gives) -> float ``(N, C, H, W)`` in [0, 1].

    With ``device``, the uint8 pixels are moved first (a quarter of the bytes of float32).
    """
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(
            f"expected uint8 images of shape (N, H, W, C); got {images.dtype} of shape {tuple(images.shape)}"
        )
    images = images.to(device)
    return images.permute(0, 3, 1, 2).float().div_(255).contiguous()  # (N, C, H, W)


def normalize(
    x: torch.Tensor, mean: tuple[float, ...] = CIFAR10_MEAN, std: tuple[float, ...] = CIFAR10_STD
) -> torch.Tensor:
    """Per channel ``(x - mean) / std`` of a batch ``(N, C, H, W)``: each channel then has mean 0, std 1.

    Inputs on a common scale keep the first layer's gradients balanced across channels.
    """
    mean_ = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std_ = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean_) / std_


def random_crop(
    x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None, padding_mode: str = "reflect"
) -> torch.Tensor:
    """Pad each image of ``(N, C, H, W)`` by ``padding`` pixels, then cut an ``H x W`` window at a random offset.

    The image moves by up to ``padding`` pixels in each direction. ``padding_mode`` is
    ``"reflect"`` (mirror the border, no artificial black frame) or ``"constant"`` (zeros).
    ``padding=0`` returns the batch unchanged.
    """
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding_mode not in ("reflect", "constant"):
        raise ValueError(f"padding_mode must be 'reflect' or 'constant', got {padding_mode!r}")
    n, _, height, width = x.shape
    padded = F.pad(x, (padding, padding, padding, padding), mode=padding_mode)  # (N, C, H + 2p, W + 2p)

    # Every H x W window of every image, as a view (no copy): windows[i, c, t, l] is image i's
    # window whose top-left corner is at (t, l), for t, l in 0 .. 2p.
    windows = padded.unfold(2, height, 1).unfold(3, width, 1)  # (N, C, 2p + 1, 2p + 1, H, W)
    top = _randint(2 * padding + 1, n, generator).to(x.device)  # (N,)
    left = _randint(2 * padding + 1, n, generator).to(x.device)  # (N,)
    # One window per image, picked for the whole batch in a single indexing operation.
    return windows[torch.arange(n, device=x.device), :, top, left]  # (N, C, H, W)


def random_hflip(x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image of ``(N, C, H, W)`` left-right with probability ``p``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p}")
    flip = (_rand(x.shape[0], generator) < p).to(x.device)  # (N,)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


@dataclass
class CifarTransform:
    """A batch of CIFAR images -> float ``(N, 3, H, W)``, augmented if ``augment``, normalised if ``normalize``.

    A batch is either uint8 ``(N, H, W, 3)``, the dataset's own layout (a training set kept on the
    GPU as uint8 takes a quarter of the memory), or float ``(N, 3, H, W)`` in [0, 1] as
    ``to_tensor_images`` returns it. Augmenting is ``random_crop`` with ``padding`` then
    ``random_hflip``, drawing from ``generator``. An instance pickles and deep-copies with its
    generator's state, so ``TorchClassifier`` can store it and train each fit on a fresh copy:
    every fit and every clone augments alike.
    """

    augment: bool
    normalize: bool = True
    generator: torch.Generator | None = field(default=None, repr=False)
    padding: int = 4

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = to_tensor_images(x)
        if self.augment:
            x = random_crop(x, padding=self.padding, generator=self.generator)
            x = random_hflip(x, generator=self.generator)
        return normalize(x) if self.normalize else x


def cifar_train_transform(
    generator: torch.Generator | None = None, padding: int = 4, normalize: bool = True
) -> CifarTransform:
    """The training transform: random crop, random flip, then (unless ``normalize=False``) normalise.

    With ``pipeline.training.ClassificationStep`` (and so ``TorchClassifier``), which applies its
    ``input_transform`` after the ``train_transform``, pass ``normalize=False`` here and
    ``cifar_eval_transform()`` as the ``input_transform``.
    """
    return CifarTransform(augment=True, normalize=normalize, generator=generator, padding=padding)


def cifar_eval_transform() -> CifarTransform:
    """The evaluation transform: normalise only, nothing random (uint8 batches become float first)."""
    return CifarTransform(augment=False)


def _randint(high: int, n: int, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else "cpu"
    return torch.randint(high, (n,), generator=generator, device=device)


def _rand(n: int, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else "cpu"
    return torch.rand(n, generator=generator, device=device)
