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
# # Unit 15 — Optimizers from scratch, and data-parallel training with Horovod and DDP
#
# Two halves. First the update rules every training loop in this path has used: SGD, momentum,
# Nesterov, RMSprop, Adam and AdamW, written in NumPy (`pipeline.scratch.optimizers`) and checked
# step for step against `torch.optim` in float64. Then the same network as Unit 7, trained by
# several processes at once, each on its own shard of the images, their gradients averaged by an
# all-reduce after every backward pass: with Horovod (`horovodrun`) and with PyTorch's
# `DistributedDataParallel` (`torchrun`), from `pipeline.training.distributed`.
#
# The notes, `docs/unit15_distributed.md`, explain the optimizers; `docs/distributed-training.md`
# explains Horovod, ring all-reduce and the code changes data parallelism takes.

# %%
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")

import numpy as np
import torch
from IPython.display import display

from pipeline.audit.optimizers import audit_optimizers
from pipeline.data import load_dataset
from pipeline.features import image_split
from pipeline.lessons import optimizers as lesson
from pipeline.plots import show
from pipeline.scratch import optimizers
from pipeline.training.distributed import train_distributed

# %% [markdown]
# ## One optimizer, two implementations
#
# Adam keeps, per parameter, a running mean of the gradient (`m`, momentum) and of its square (`v`),
# corrects both for starting at zero, and steps by `lr · m̂ / (√v̂ + eps)`: a step size of its own
# for every coordinate. Ours and PyTorch's take the same parameters and the same gradients:

# %%
rng = np.random.default_rng(0)
ours = [rng.normal(size=(3, 4))]
theirs = [torch.tensor(ours[0].copy(), requires_grad=True)]
adam, torch_adam = optimizers.Adam(ours, lr=0.1), torch.optim.Adam(theirs, lr=0.1)
for _ in range(100):
    grad = rng.normal(size=(3, 4))
    adam.step([grad])
    theirs[0].grad = torch.tensor(grad)
    torch_adam.step()
print(f"largest difference after 100 steps: {np.abs(ours[0] - theirs[0].detach().numpy()).max():.1e}")

# %% [markdown]
# The unit's audit does this for all six optimizers and their options (momentum, dampening,
# Nesterov, weight decay, centred RMSprop, AMSGrad, decoupled decay), and on the Rosenbrock
# function; a flow run fails if one of them is off by more than 1e-7.

# %%
checks = audit_optimizers()
display(checks.table().head(8))
print("all passed:", checks.passed)

# %% [markdown]
# ## Rosenbrock's valley and the Unit 7 network
#
# Rosenbrock's function has its minimum at (1, 1) at the bottom of a long curved valley: steep
# across, nearly flat along. Plain gradient descent must take steps small enough for the steep
# direction and then crawls along the flat one; momentum builds speed along the valley; Adam
# divides each coordinate's step by its own gradient scale. On MNIST the same six train Unit 7's
# network from the same start and the same batches.

# %%
split = image_split(load_dataset("mnist", profile="quick"), flatten=True)
comparison = lesson.compare_optimizers(split, "quick", seed=0)
tables = comparison.tables()
display(tables["rosenbrock"])
display(tables["mnist_optimizers"])
for name, fig in comparison.figures().items():
    print(lesson.CAPTIONS.get(name, name))
    show(fig)

# %% [markdown]
# ## Data parallelism: two processes, one model
#
# `train_distributed` writes the training rows to a file, starts the workers with `torchrun` (or
# `horovodrun`), and each rank trains on its shard. After every backward pass the ranks average
# their gradients, so every rank applies the same update and the replicas stay equal, which the
# sha256 of each rank's final parameters shows. The learning rate is scaled by the number of
# processes: two ranks with batches of 64 make one step of 128 rows.

# %%
with tempfile.TemporaryDirectory() as tmp:
    runs = {engine: train_distributed(engine, split.X_train, split.y_train, processes=2, epochs=2, batch_size=64,
                                      lr=0.05, hidden=(128,), workdir=Path(tmp) / engine, timeout_s=300,
                                      log=lambda line: None)
            for engine in ("ddp", "horovod")}
for engine, run in runs.items():
    accuracy = (run.model.predict(split.X_test) == split.y_test).mean()
    print(f"{engine:8s} {run.world_size} processes: loss {run.history['loss'][-1]:.4f}, test accuracy "
          f"{accuracy:.3f}, {run.images_per_second:,.0f} images/s, replicas identical: {run.replicas_identical} "
          f"({run.digests[0][:12]} on every rank)")

# %% [markdown]
# Both engines ran the same worker (`python -m pipeline.training.distributed`): only the launch
# and three calls differ (`hvd.DistributedOptimizer` against the `DistributedDataParallel`
# wrapper). On two cores two processes barely gain speed: each step waits for the slower rank
# and for the all-reduce. Across GPUs or machines, where a step's computation is large against
# the gradient's size, the same code scales; `make bench` measures the scaling here.
#
# ## Try next
#
# - `mlpath run unit15 --profile quick --set engine=ddp`: the same run with DDP.
# - `mlpath run unit15 --profile quick --set processes=1`: the baseline of the scaling efficiency.
# - `mlpath run unit15 --profile quick --set lr=0.5`: scaled by the number of workers, too large.
