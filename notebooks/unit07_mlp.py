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
# # Unit 7 — A neural network from scratch in NumPy, on MNIST
#
# MNIST is 70,000 grey 28 × 28 images of handwritten digits. This unit classifies them with a
# dense network written in NumPy alone: forward pass, backpropagation, mini-batch SGD with
# momentum and a learning-rate schedule, each checked against PyTorch.
#
# The code is the unit's own: `pipeline.scratch.mlp` (the network and its training loop),
# `pipeline.lessons.mnist_mlp` (the unit's settings and figures) and `audit_mlp_gradients` in
# `pipeline.audit.twins` (`backward()` against `torch.autograd`, the check that fails a run).
# The notes, `docs/unit07_mlp.md`, derive every formula used here.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets

import numpy as np
import pandas as pd
from IPython.display import display

from pipeline import plots
from pipeline.audit.twins import audit_mlp_gradients
from pipeline.data import load_dataset
from pipeline.evaluation import evaluate
from pipeline.features import image_split
from pipeline.lessons import mnist_mlp
from pipeline.plots import show
from pipeline.scratch.mlp import NeuralNetwork, cross_entropy
from pipeline.units import get_unit

# %% [markdown]
# ## The data
#
# The quick profile is a seeded subsample: 6,000 training and 1,000 test images.
# `image_split(..., flatten=True)` turns each image into a row of 784 floats in [0, 1], what a
# dense network takes.

# %%
mnist = load_dataset("mnist", profile="quick")
split = image_split(mnist, flatten=True)
print(f"train {split.X_train.shape} {split.X_train.dtype}, test {split.X_test.shape}; "
      f"labels {np.bincount(split.y_train)}")
show(plots.image_grid_figure(split.X_train[:16].reshape(-1, 28, 28), [str(y) for y in split.y_train[:16]],
                             ncols=8, title="The first 16 training digits"))

# %% [markdown]
# ## Forward pass
#
# A dense network is a chain of matrix products and non-linearities:
# `z_l = a_{l−1} @ W_l + b_l`, `a_l = relu(z_l)`, and raw scores (logits) from the last layer.
# The unit's network is 784-512-256-10: `784·512 + 512` + `512·256 + 256` + `256·10 + 10` weights
# and biases. Softmax turns the logits into probabilities and the loss is the mean cross-entropy,
# `−log p(true class)`; an untrained network guesses uniformly, so it starts near `ln 10`.

# %%
net = NeuralNetwork((784, 512, 256, 10), activation="relu", init="he", seed=0)
print("weights", [W.shape for W in net.weights], "biases", [b.shape for b in net.biases])
by_formula = sum(n_in * n_out + n_out for n_in, n_out in zip(net.layer_sizes[:-1], net.layer_sizes[1:]))
counted = sum(W.size + b.size for W, b in zip(net.weights, net.biases))
print(f"parameters: {counted:,} counted, {by_formula:,} by the formula")
logits = net.forward(split.X_train[:256], cache=False)
print(f"logits {logits.shape}; loss of the untrained net {cross_entropy(logits, split.y_train[:256]):.4f}, "
      f"ln 10 = {np.log(10):.4f}")

# %% [markdown]
# ## Backward pass, checked two ways
#
# Backpropagation is the chain rule run from the loss backwards. At the logits, softmax and
# cross-entropy together have the gradient `(softmax(z) − onehot(y)) / B`; each layer then gives
# `dW = a_in.T @ delta`, `db = delta.sum(0)` and passes `delta @ W.T * relu'(z)` to the layer
# before it.
#
# First, by definition: nudge one weight by `±ε` and compare the slope of the loss,
# `(L(w + ε) − L(w − ε)) / 2ε`, with `backward()`. In float64, so rounding stays far below the
# difference.

# %%
X_check, y_check = mnist_mlp.gradient_check_batch(split)  # the first 64 training images
net64 = NeuralNetwork((784, 512, 256, 10), dtype=np.float64, seed=0)
net64.forward(X_check)
grads = net64.backward(y_check)
eps = 1e-6
for layer, (i, j) in [(0, (406, 7)), (1, (5, 100)), (2, (42, 3))]:  # pixel 406: the centre
    W = net64.weights[layer]
    W[i, j] += eps
    up = net64.loss(X_check, y_check)
    W[i, j] -= 2 * eps
    down = net64.loss(X_check, y_check)
    W[i, j] += eps
    slope, analytic = (up - down) / (2 * eps), grads[layer][0][i, j]
    print(f"layer {layer + 1} W[{i}, {j}]: finite difference {slope:+.8e}, backward {analytic:+.8e}, "
          f"|diff| = {abs(slope - analytic):.1e}")

# %% [markdown]
# They agree to about seven digits, all that central differences with `ε = 1e-6` can show. Then
# every gradient at once, against PyTorch: `audit_mlp_gradients` copies the network to
# float64, runs our `backward()` on the 64 images and `torch.autograd` on the same weights, and
# compares each layer's `dW` and `db` by relative error `‖g − g_torch‖ / (‖g‖ + ‖g_torch‖)`,
# against a tolerance of 1e-6. The flow runs it on the trained network; here it checks the
# untrained one (and again below, after training).

# %%
def print_audit(report):
    for finding in report.findings:
        print(f"{'PASS' if finding.passed else 'FAIL'}  {finding.check}: {finding.detail}")
    assert report.passed, report.subject


print_audit(audit_mlp_gradients(net, X_check, y_check))

# %% [markdown]
# ## Training: mini-batch SGD with momentum
#
# `mnist_mlp.mlp_classifier` is the unit's network with the profile's settings: batches of 128,
# momentum 0.9, weight decay 5e-4, a cosine learning-rate schedule from 0.05, and random shifts of
# up to 2 pixels as augmentation. The quick profile trains 10 epochs; two are enough to see it
# learn. It is a scikit-learn-style estimator, so Unit 6's `evaluate` scores it like any other
# model.

# %%
model = mnist_mlp.mlp_classifier("quick", seed=0, epochs=2)
model.fit(split.X_train, split.y_train)
display(pd.DataFrame(model.history_).round(4))
result = evaluate(model, None, None, split.X_test, split.y_test, cv=0, fit=False)
print(f"test accuracy {result.metrics['test_accuracy']:.4f} on {len(split.y_test)} test digits")
print_audit(audit_mlp_gradients(model.net_, X_check, y_check))

# %% [markdown]
# Some of the digits it still gets wrong, captioned `true → predicted`:

# %%
show(mnist_mlp.misclassified_figure(split, result.y_pred, n=16))

# %% [markdown]
# ## Try next
#
# The unit's experiments, each one run of the flow with a parameter changed:

# %%
for experiment in get_unit("unit07").try_next:
    print(experiment.command("unit07"), "—", experiment.look_for)
