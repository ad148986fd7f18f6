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
# # Unit 8 — Convolutional networks in PyTorch, on CIFAR-10
#
# CIFAR-10 is 60,000 colour images of 32 × 32 pixels in ten classes. This unit trains two
# networks on it in plain PyTorch: **Model A**, the small CNN of PyTorch's "Training a
# classifier" tutorial, and **Model B**, a residual network with batch norm ("ResNet-9").
#
# The code is the unit's own: `pipeline.models.cnn` (both models and the arithmetic of their
# shapes), `pipeline.lessons.cifar_cnn` (the unit's settings), `pipeline.training` (the one
# training loop every torch unit shares) and `audit_simple_cnn_shapes` in `pipeline.audit.shapes`.
# The notes, `docs/unit08_cnn.md`, work through both models layer by layer.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets

from dataclasses import replace

import pandas as pd
import torch
from IPython.display import display

from pipeline import plots
from pipeline.audit.shapes import audit_simple_cnn_shapes
from pipeline.data import CIFAR10_CLASSES, load_dataset
from pipeline.evaluation import evaluate
from pipeline.features import image_split
from pipeline.lessons import cifar_cnn
from pipeline.models import ResNetSmall, SimpleCNN, conv_output_size, pool_output_size, trace_shapes
from pipeline.plots import show
from pipeline.units import get_unit

# %% [markdown]
# ## The data
#
# The quick profile is a seeded subsample: 5,000 training and 1,000 test images, uint8
# `(N, 32, 32, 3)`. The torch models normalise them batch by batch on the device. (The data
# mirror's CIFAR-10 is a JPEG re-encoding of the official images: accuracies on it are close to,
# not exactly comparable with, published numbers.)

# %%
cifar = load_dataset("cifar10", profile="quick")
split = image_split(cifar, flatten=False)
print(f"train {split.X_train.shape} {split.X_train.dtype}, test {split.X_test.shape}")
first_of_each = [int((split.y_train == label).argmax()) for label in range(len(CIFAR10_CLASSES))]
show(plots.image_grid_figure(split.X_train[first_of_each], list(CIFAR10_CLASSES), ncols=10,
                             title="One training image of each class"), dpi=60)

# %% [markdown]
# ## Shape arithmetic
#
# A convolution slides a `k × k` kernel over the image. Along one side of an `n`-pixel input,
# with stride `s`, padding `p` and dilation `d`, it fits at
#
#     out = floor((n + 2p − d(k − 1) − 1) / s) + 1
#
# positions. `conv_output_size` computes it; a max pool is the same arithmetic with the stride
# defaulting to the kernel. First the formula against what `nn.Conv2d` actually produces:

# %%
for n, k, s, p in [(32, 5, 1, 0), (32, 3, 1, 1), (32, 3, 2, 1), (14, 5, 1, 0), (7, 3, 2, 0)]:
    produced = torch.nn.Conv2d(1, 1, k, stride=s, padding=p)(torch.zeros(1, 1, n, n)).shape[-1]
    print(f"n={n:2d} k={k} s={s} p={p}: formula {conv_output_size(n, k, s, p):2d}, nn.Conv2d {produced:2d}")

# %% [markdown]
# Model A has no padding, so each 5 × 5 convolution trims 4 pixels and each pool halves:
# 32 → 28 → 14 → 10 → 5, and 16 channels of 5 × 5 are the 400 inputs of its first dense layer.
# `trace_shapes` runs the model once and records what every layer produced;
# `audit_simple_cnn_shapes` is the flow's check of the formula against it.

# %%
conv1 = conv_output_size(32, kernel=5)
pool1 = pool_output_size(conv1, kernel=2)
conv2 = conv_output_size(pool1, kernel=5)
pool2 = pool_output_size(conv2, kernel=2)
print(f"by the formula: 32 → {conv1} → {pool1} → {conv2} → {pool2}; flattened 16 · {pool2} · {pool2} = {16 * pool2**2}")
print("traced by torch:")
for name, shape in trace_shapes(SimpleCNN(), (1, 3, 32, 32)):
    print(f"  {name:8s} {shape}")
for finding in audit_simple_cnn_shapes().findings:
    print(f"{'PASS' if finding.passed else 'FAIL'}  {finding.check}")
    assert finding.passed, finding.detail

# %% [markdown]
# ## Parameter counts: Model A and Model B
#
# A `Conv2d(c_in → c_out, k)` has `c_out · c_in · k · k + c_out` parameters however large the
# image; a `Linear(n_in → n_out)` has `n_in · n_out + n_out`. Model B's `conv_bn` blocks are
# 3 × 3 convolutions without bias (batch norm's shift replaces it) plus batch norm's scale and
# shift: `9 · c_in · c_out + 2 · c_out`. Its `width` scales every channel count; the quick profile
# uses 16, the full one 32, the published net 64.

# %%
def n_parameters(model):
    return sum(p.numel() for p in model.parameters())


def conv_bn_by_hand(c_in, c_out):
    return 9 * c_in * c_out + 2 * c_out


def resnet_by_hand(width, classes=10):
    c1, c2, c3, c4 = width, 2 * width, 4 * width, 8 * width
    return (conv_bn_by_hand(3, c1) + conv_bn_by_hand(c1, c2) + 2 * conv_bn_by_hand(c2, c2)
            + conv_bn_by_hand(c2, c3) + conv_bn_by_hand(c3, c4) + 2 * conv_bn_by_hand(c4, c4)
            + c4 * classes + classes)


simple_by_hand = (6 * 3 * 5 * 5 + 6) + (16 * 6 * 5 * 5 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
rows = [("Model A: SimpleCNN", n_parameters(SimpleCNN()), simple_by_hand)]
for width in (16, 32, 64):
    rows.append((f"Model B: ResNetSmall(width={width})", n_parameters(ResNetSmall(width=width)), resnet_by_hand(width)))
pd.DataFrame(rows, columns=["model", "counted by torch", "by hand"]).set_index("model")

# %% [markdown]
# Model B keeps the size with padding 1 and only its max pools shrink the maps, doubling the
# channels each time; the global max pool at the end makes the classifier independent of the
# image size.

# %%
for name, shape in trace_shapes(ResNetSmall(width=16), (1, 3, 32, 32), depth=1):
    print(f"  {name:8s} {shape}")

# %% [markdown]
# ## A short training of Model A
#
# `cifar_cnn.cnn_classifiers` builds the unit's models with the profile's settings (Model A:
# AdamW, learning rate 2e-3, batches of 64, random-crop and flip augmentation). Each is a
# `TorchClassifier`: the shared training loop behind scikit-learn's contract, so Unit 6's
# `evaluate` scores it like any other model. The quick profile trains Model A for 5 epochs; two
# on the 5,000 quick images take a few seconds on an idle 2-core CPU. The flow checkpoints every
# epoch under `MLPATH_HOME`; here checkpoints are off.

# %%
model = cifar_cnn.cnn_classifiers("quick", seed=0, epochs={cifar_cnn.SIMPLE: 2})[cifar_cnn.SIMPLE]
model.set_params(config=replace(model.config, checkpoint_dir=None))
model.fit(split.X_train, split.y_train)
display(pd.DataFrame(model.history_)[["epoch", "train_loss", "train_accuracy", "lr"]].round(4))
result = evaluate(model, None, None, split.X_test, split.y_test, cv=0, fit=False)
print(f"test accuracy {result.metrics['test_accuracy']:.4f} on {len(split.y_test)} images (chance: 0.10)")

# %% [markdown]
# Two epochs are far from the 67 % Model A reaches on the full data in 20; the per-class
# accuracies and the confusion matrix show which classes it already tells apart.

# %%
display(cifar_cnn.per_class_accuracy(result.confusion_matrix).round(3).to_frame().T)
show(plots.confusion_matrix_figure(result.confusion_matrix, list(CIFAR10_CLASSES), "Model A, 2 epochs"))

# %% [markdown]
# ## Try next
#
# The unit's experiments, each one run of the flow with a parameter changed:

# %%
for experiment in get_unit("unit08").try_next:
    print(experiment.command("unit08"), "—", experiment.look_for)
