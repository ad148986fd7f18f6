"""Unit 8: CNN shape arithmetic against PyTorch's layers, the models, and batch augmentation.

The oracle for ``conv_output_size``/``pool_output_size`` is ``nn.Conv2d``/``nn.MaxPool2d`` itself;
the unit's notes (docs/unit08_cnn.md) are checked against ``trace_shapes`` and the parameter counts.
"""

import itertools
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.augment import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    cifar_eval_transform,
    cifar_train_transform,
    normalize,
    random_crop,
    random_hflip,
    to_tensor_images,
)
from pipeline.data import load_dataset
from pipeline.models import MODELS, ResNetSmall, SimpleCNN, conv_output_size, pool_output_size, trace_shapes

NOTES = Path(__file__).resolve().parents[1] / "docs" / "unit08_cnn.md"


@pytest.fixture(scope="module")
def cifar_sample():
    """The quick profile's training images: uint8 (5000, 32, 32, 3) and labels."""
    return load_dataset("cifar10", "quick").splits["train"]


def n_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- output-shape arithmetic ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 4, 5, 7, 14, 28, 32])
def test_conv_output_size_matches_conv2d(size):
    for kernel, stride, padding, dilation in itertools.product([1, 2, 3, 5], [1, 2, 3], [0, 1, 2], [1, 2]):
        conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
        x = torch.zeros(1, 1, size, size)
        if dilation * (kernel - 1) + 1 > size + 2 * padding:
            with pytest.raises(RuntimeError):
                conv(x)
            with pytest.raises(ValueError, match="does not fit"):
                conv_output_size(size, kernel, stride, padding, dilation)
            continue
        expected = conv(x).shape[-1]
        assert conv_output_size(size, kernel, stride, padding, dilation) == expected, (
            size, kernel, stride, padding, dilation)  # fmt: skip


@pytest.mark.parametrize("size", [2, 5, 7, 10, 14, 28, 32])
def test_pool_output_size_matches_maxpool2d(size):
    for kernel, stride, dilation, ceil_mode in itertools.product([2, 3, 4], [None, 1, 2, 3], [1, 2], [False, True]):
        for padding in range(kernel // 2 + 1):
            if dilation * (kernel - 1) + 1 > size + 2 * padding:
                continue
            pool = nn.MaxPool2d(kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
            expected = pool(torch.zeros(1, 1, size, size)).shape[-1]
            got = pool_output_size(size, kernel, stride, padding, dilation, ceil_mode)
            assert got == expected, (size, kernel, stride, padding, dilation, ceil_mode)


def test_shape_arithmetic_rejects_impossible_windows():
    with pytest.raises(ValueError, match="half the kernel"):
        pool_output_size(8, 2, padding=2)
    with pytest.raises(ValueError, match="stride"):
        conv_output_size(8, 3, stride=0)


def test_model_a_arithmetic_chain():
    size = conv_output_size(32, 5)  # conv1
    assert size == 28
    size = pool_output_size(size, 2)
    assert size == 14
    size = conv_output_size(size, 5)  # conv2
    assert size == 10
    size = pool_output_size(size, 2)
    assert size == 5
    assert 16 * size * size == 400 == SimpleCNN().fc1.in_features


# --- the notes' tables ---------------------------------------------------------------------------


def notes_table(heading: str) -> list[tuple[str, tuple[int, ...], int]]:
    """(layer, shape with B, parameters) of each backticked row of the table under ``heading``."""
    text = NOTES.read_text()
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        match = re.match(r"\| `([\w.]+)` \|[^|]*\| \(B, ([\d, ]+)\) \|[^|]*\| ([^|]*) \|$", line)
        if match:
            name, dims, params = match.groups()
            count = int(params.rsplit("=", 1)[-1].replace(",", "").strip())  # "6·3·5·5 + 6 = 456" -> 456
            rows.append((name, tuple(int(d) for d in dims.split(",")), count))
    return rows


def test_notes_model_a_table_matches_trace():
    table = notes_table("Model A")
    traced = trace_shapes(SimpleCNN(), (2, 3, 32, 32))
    assert [(name, (2, *dims)) for name, dims, _ in table] == traced
    model = SimpleCNN()
    for name, _, count in table:
        assert n_parameters(model.get_submodule(name)) == count, name


def test_notes_model_b_table_matches_trace():
    table = notes_table("Model B")
    traced = trace_shapes(ResNetSmall(), (2, 3, 32, 32), depth=1)
    assert [(name, (2, *dims)) for name, dims, _ in table] == traced
    model = ResNetSmall()
    for name, _, count in table:
        assert n_parameters(model.get_submodule(name)) == count, name
    assert "**6,573,130**" in NOTES.read_text()


def test_trace_shapes_leaves_and_model_state():
    model = ResNetSmall(width=4).train()
    stats_before = model.prep[1].running_mean.clone()
    leaves = trace_shapes(model, (1, 3, 32, 32))
    assert model.training
    assert torch.equal(model.prep[1].running_mean, stats_before)
    assert leaves[0] == ("prep.0", (1, 4, 32, 32))
    assert leaves[-1] == ("fc", (1, 10))
    assert len(leaves) == 30  # 8 conv_bn x 3 layers, 3 max pools, global pool, flatten, fc


def test_model_a_receptive_field_is_16():
    """A unit after the second pool sees a 16 x 16 patch, as the notes compute.

    The receptive field depends only on the geometry; average pools (instead of max) with all-ones
    weights make every pixel inside it contribute a non-zero gradient.
    """
    features = nn.Sequential(nn.Conv2d(3, 6, 5), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.AvgPool2d(2))
    for module in features:
        if isinstance(module, nn.Conv2d):
            nn.init.ones_(module.weight)
    x = torch.zeros(1, 3, 32, 32, requires_grad=True)
    features(x)[0, 0, 2, 2].backward()
    rows, cols = x.grad[0].abs().sum(0).nonzero(as_tuple=True)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (16, 16)


# --- models --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kwargs"), [("simple", {}), ("resnet", {}), ("resnet", {"width": 8})])
def test_model_maps_images_to_logits_and_backprops(name, kwargs):
    torch.manual_seed(0)
    model = MODELS[name](**kwargs)
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    F.cross_entropy(logits, torch.tensor([3, 7])).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_parameter_counts():
    assert n_parameters(SimpleCNN()) == 62006

    def resnet_count(w):
        def conv_bn(c_in, c_out):
            return 9 * c_in * c_out + 2 * c_out  # conv weights + batch-norm scale and shift

        return (
            conv_bn(3, w) + conv_bn(w, 2 * w) + 2 * conv_bn(2 * w, 2 * w) + conv_bn(2 * w, 4 * w)
            + conv_bn(4 * w, 8 * w) + 2 * conv_bn(8 * w, 8 * w) + (8 * w * 10 + 10)
        )  # fmt: skip

    assert n_parameters(ResNetSmall()) == resnet_count(64) == 6_573_130
    assert n_parameters(ResNetSmall(width=16)) == resnet_count(16) == 412_954
    assert ResNetSmall(num_classes=3).fc.out_features == 3


def test_models_registry():
    assert MODELS == {"simple": SimpleCNN, "resnet": ResNetSmall}
    with pytest.raises(ValueError, match="width"):
        ResNetSmall(width=0)


# --- augmentation --------------------------------------------------------------------------------


def test_to_tensor_images_layout_and_range():
    images = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    x = to_tensor_images(images)
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and x.is_contiguous()
    assert torch.equal(x[1, 2, 5, 7], torch.tensor(images[1, 5, 7, 2] / 255, dtype=torch.float32))
    assert 0.0 <= x.min() and x.max() <= 1.0
    with pytest.raises(ValueError, match="uint8"):
        to_tensor_images(images.astype(np.float32))


@pytest.mark.parametrize("padding_mode", ["reflect", "constant"])
def test_random_crop_matches_per_image_loop(padding_mode):
    x = torch.rand(6, 3, 32, 32)
    crops = random_crop(x, 4, torch.Generator().manual_seed(1), padding_mode=padding_mode)
    assert crops.shape == x.shape
    # Same draws, in the same order, cut out one image at a time.
    generator = torch.Generator().manual_seed(1)
    top, left = torch.randint(9, (6,), generator=generator), torch.randint(9, (6,), generator=generator)
    padded = F.pad(x, (4, 4, 4, 4), mode=padding_mode)
    expected = torch.stack([padded[i, :, top[i] : top[i] + 32, left[i] : left[i] + 32] for i in range(6)])
    assert torch.equal(crops, expected)


def test_random_crop_without_padding_is_identity():
    x = torch.rand(5, 3, 32, 32)
    assert torch.equal(random_crop(x, padding=0), x)


def test_random_hflip_identities():
    x = torch.rand(5, 3, 32, 32)
    assert torch.equal(random_hflip(x, p=1.0), x.flip(-1))
    assert torch.equal(random_hflip(random_hflip(x, p=1.0), p=1.0), x)
    assert torch.equal(random_hflip(x, p=0.0), x)
    flipped = random_hflip(x, generator=torch.Generator().manual_seed(0))
    per_image = [torch.equal(flipped[i], x[i].flip(-1)) or torch.equal(flipped[i], x[i]) for i in range(5)]
    assert all(per_image)


def test_train_transform_is_deterministic_under_a_seed():
    x = torch.rand(16, 3, 32, 32)
    first = cifar_train_transform(torch.Generator().manual_seed(7))(x)
    again = cifar_train_transform(torch.Generator().manual_seed(7))(x)
    other = cifar_train_transform(torch.Generator().manual_seed(8))(x)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert torch.equal(cifar_eval_transform()(x), normalize(x))


def test_transforms_take_uint8_dataset_batches_and_compose_like_the_trainer():
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8))
    as_float = to_tensor_images(images)
    assert torch.equal(cifar_eval_transform()(images), normalize(as_float))
    whole = cifar_train_transform(torch.Generator().manual_seed(3))(images)
    # Trainer order: train_transform (augment only), then input_transform (normalise).
    augment_only = cifar_train_transform(torch.Generator().manual_seed(3), normalize=False)
    assert torch.equal(cifar_eval_transform()(augment_only(as_float)), whole)


def test_train_transform_pickles_with_its_generator_state():
    transform = cifar_train_transform(torch.Generator().manual_seed(5))
    copy = pickle.loads(pickle.dumps(transform))
    x = torch.rand(8, 3, 32, 32)
    assert torch.equal(transform(x), copy(x))


def test_normalize_gives_zero_mean_unit_std_on_real_images(cifar_sample):
    images, _ = cifar_sample
    x = normalize(to_tensor_images(images))
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(3), atol=0.03), mean
    assert torch.allclose(std, torch.ones(3), atol=0.03), std
    # The constants are the quick sample's statistics too, to well within sampling error.
    raw = to_tensor_images(images)
    assert torch.allclose(raw.mean(dim=(0, 2, 3)), torch.tensor(CIFAR10_MEAN), atol=0.01)
    assert torch.allclose(raw.std(dim=(0, 2, 3)), torch.tensor(CIFAR10_STD), atol=0.01)


def test_simple_cnn_training_reduces_loss_on_real_images(cifar_sample):
    torch.manual_seed(0)
    images, labels = cifar_sample
    x = cifar_eval_transform()(to_tensor_images(images[:256]))
    y = torch.from_numpy(labels[:256])
    model = SimpleCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    transform = cifar_train_transform(torch.Generator().manual_seed(0))
    raw = to_tensor_images(images[:256])

    with torch.no_grad():
        loss_before = F.cross_entropy(model(x), y).item()
    for _ in range(30):
        optimizer.zero_grad()
        F.cross_entropy(model(transform(raw)), y).backward()
        optimizer.step()
    with torch.no_grad():
        loss_after = F.cross_entropy(model(x), y).item()
    assert loss_before == pytest.approx(np.log(10), abs=0.1)  # untrained: about uniform over 10 classes
    assert loss_after < loss_before - 0.5


def test_the_shape_audit_passes_on_model_a_and_fails_on_a_wrong_net(monkeypatch):
    from pipeline.audit import shapes

    assert shapes.audit_simple_cnn_shapes().passed
    monkeypatch.setattr(shapes, "conv_output_size", lambda size, kernel, *args, **kwargs: size)
    assert not shapes.audit_simple_cnn_shapes().passed
