"""Unit 15 — optimizers from scratch, and data-parallel training with Horovod or DDP (MNIST)."""

from typing import Literal

from pydantic import Field

from pipeline.params import UnitParams
from pipeline.units.spec import Experiment, Reference, Schedule, UnitSpec


class Unit15Params(UnitParams):
    cv_folds: int = Field(0, ge=0, le=10, description="cross-validation folds (0: test metrics only; each fold "
                                                     "would launch the workers again)")
    engine: Literal["horovod", "ddp"] = Field(
        "horovod", description="horovod: horovodrun + hvd.DistributedOptimizer (Gloo on CPU, NCCL on GPUs); "
                               "ddp: torchrun + torch.distributed DistributedDataParallel")
    processes: int = Field(2, ge=1, le=64, description="worker processes in all (one per GPU on a GPU machine)")
    hosts: str | None = Field(None, min_length=1,
                              description="comma-separated host:slots for several machines, e.g. "
                                          "'10.0.0.1:4,10.0.0.2:4' (None: this machine)")
    launcher: Literal["local", "kubernetes"] = Field(
        "local", description="local: the engine's launcher on this machine or the hosts; kubernetes: an "
                             "MPIJob (horovod) or PyTorchJob (ddp) on the cluster kubectl points at")
    epochs: int | None = Field(None, ge=1, le=100, description="distributed training epochs (None: the profile's)")
    lr: float | None = Field(None, gt=0, le=10, description="learning rate of one process (None: the profile's); "
                                                           "the workers scale it by their number")
    batch_size: int | None = Field(None, ge=1, le=4096, description="batch size per process (None: the profile's)")
    timeout_s: int = Field(1800, ge=10, description="seconds before the workers are stopped and the run fails")


SPEC = UnitSpec(
    id="unit15",
    number=15,
    title="Optimizers and distributed training (MNIST)",
    phase=4,
    topics=(
        "optimizers: SGD, momentum, Nesterov, RMSprop, Adam, AdamW from scratch against torch.optim",
        "adaptive step sizes, bias correction, decoupled weight decay",
        "data parallelism: sharded data, averaged gradients",
        "ring all-reduce: Horovod (horovodrun, Gloo/NCCL) and PyTorch DDP (torchrun)",
        "scaling efficiency; multi-host and Kubernetes (MPIJob, PyTorchJob)",
    ),
    challenge=("Write six optimizers that match torch.optim step for step (1e-7, float64) and compare them "
               "on Rosenbrock and the Unit 7 network; then train that network data-parallel across "
               "processes with Horovod or DDP, every rank ending with the same weights, and register it."),
    params=Unit15Params,
    flow="flows.unit15_distributed:unit15_distributed",
    datasets=("mnist",),
    primary_metric="test_accuracy",
    schedule=Schedule("0 7 * * 4"),
    references=(
        Reference("Ring all-reduce: data each worker sends and receives", "2(N-1)/N of the gradient",
                  "Patarasuk & Yuan 2009, “Bandwidth optimal all-reduce algorithms”; Sergeev & Del Balso "
                  "2018, “Horovod: fast and easy distributed deep learning in TensorFlow”"),
        Reference("MNIST test accuracy of an MLP (784-512-512-10, dropout, RMSprop, 20 epochs)", "0.9840",
                  "Keras examples, mnist_mlp.py", "test_accuracy"),
    ),
    notes="docs/unit15_distributed.md",
    notebook="notebooks/unit15_distributed.ipynb",
    quick="MNIST 784-128-10 on the 6,000 quick images: 5 epochs per optimizer, 3 epochs of distributed "
          "training on 2 processes; Rosenbrock 5,000 steps",
    try_next=(
        Experiment(("engine=ddp",), "the same training with torchrun and DistributedDataParallel: the same "
                                    "accuracy, and how the two launchers' start-up times compare"),
        Experiment(("processes=1",), "one process: the baseline the scaling efficiency divides by"),
        Experiment(("lr=0.5",), "a learning rate far too large once scaled by the number of workers: "
                                "watch the loss diverge"),
    ),
    learned=(
        "An optimizer is an update rule on the gradient. Ours, in NumPy, equal torch.optim step for step "
        "(3.6e-15 in float64): the details that matter are where the learning rate multiplies "
        "(outside momentum's buffer), where eps goes (outside the square root) and Adam's bias correction.",
        "Adaptive methods give every coordinate its own step size from a running mean of its squared "
        "gradients: on Rosenbrock's narrow curved valley plain SGD needs 7,156 steps to reach loss 1e-3, "
        "momentum 1,391 and Adam 1,564.",
        "On the MNIST network, with tuned learning rates, all six end within 0.3 points (0.979 to 0.982): "
        "momentum and Nesterov reach the lowest training and test loss, Adam and RMSprop the fastest start.",
        "AdamW decays the weights directly (decoupled) instead of adding an L2 term to the gradient that "
        "Adam's step size then rescales.",
        "Data parallelism: each rank trains on its shard, gradients are averaged by an all-reduce after "
        "every backward pass, so every rank applies the same update; with N ranks the learning rate is "
        "scaled by N. Both ranks ended bit-identical (same sha256), and Horovod and DDP from the same "
        "seed give the same weights.",
        "Horovod (horovodrun, DistributedOptimizer, broadcasts) and PyTorch DDP (torchrun, the model "
        "wrapper) are two launchers and APIs over the same ring all-reduce; on 2 CPU cores two processes "
        "gain little, across GPUs and hosts the same code scales.",
    ),
    sources=("src/pipeline/scratch/optimizers.py", "src/pipeline/lessons/optimizers.py",
             "src/pipeline/audit/optimizers.py", "src/pipeline/training/distributed.py",
             "src/pipeline/lessons/distributed.py", "src/pipeline/app/cluster.py", "flows/unit15_distributed.py"),
)
