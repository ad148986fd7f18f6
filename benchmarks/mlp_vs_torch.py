"""Unit 7: seconds per epoch of our NumPy network against the same network in PyTorch (CPU).

Same architecture (784-512-256-10 ReLU), batch size, SGD with momentum and weight decay, on the
same full MNIST training set, timed in one process. Goal from the issue: NumPy ≤ 1.5× PyTorch.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from pipeline.data import load_dataset
from pipeline.features import image_split
from pipeline.lessons.mnist_mlp import FULL as UNIT07_FULL
from pipeline.models.mlp import MLP
from pipeline.scratch.mlp import NeuralNetwork, train_epoch

EPOCHS = 3
GOAL = 1.5


def numpy_epoch_seconds(X: np.ndarray, y: np.ndarray) -> list[float]:
    cfg = UNIT07_FULL
    net = NeuralNetwork((784, *cfg["hidden"], 10), "relu", "he", np.float32, seed=0)
    rng = np.random.default_rng(0)
    times = []
    for _ in range(EPOCHS):
        start = time.perf_counter()
        train_epoch(net, X, y, cfg["batch_size"], cfg["lr"], cfg["momentum"], rng,
                    weight_decay=cfg["weight_decay"])
        times.append(time.perf_counter() - start)
    return times


def torch_epoch_seconds(X: np.ndarray, y: np.ndarray) -> list[float]:
    cfg = UNIT07_FULL
    torch.manual_seed(0)
    model = MLP(784, 10, cfg["hidden"])  # the same network as Unit 15's torch twin (He init: timing unchanged)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                                weight_decay=cfg["weight_decay"])
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(0)
    times = []
    for _ in range(EPOCHS):
        start = time.perf_counter()
        for batch in torch.randperm(len(Xt), generator=generator).split(cfg["batch_size"]):
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(Xt[batch]), yt[batch]).backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    split = image_split(load_dataset("mnist", "full"), flatten=True)
    X, y = split.X_train, split.y_train.astype(np.int64)
    ours, theirs = np.median(numpy_epoch_seconds(X, y)), np.median(torch_epoch_seconds(X, y))
    ratio = ours / theirs
    print(f"\nUnit 7 — seconds per epoch on {len(X)} MNIST images, CPU, torch threads "
          f"{torch.get_num_threads()} (median of {EPOCHS})")
    print(f"  NumPy network   {ours:7.2f} s")
    print(f"  PyTorch         {theirs:7.2f} s")
    print(f"  ratio NumPy/PyTorch = {ratio:.2f}x (goal <= {GOAL}x: {'met' if ratio <= GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
