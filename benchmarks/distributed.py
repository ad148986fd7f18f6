"""Unit 15: data-parallel training throughput, Horovod and DDP, 1 and 2 processes, in one run.

Unit 7's network (784-512-256-10) on the 60,000 MNIST training images, batch 128 per process,
``EPOCHS`` epochs through `pipeline.training.distributed.train_distributed`. Throughput is all
processes' images per second over the epochs after the first (start-up and warm-up excluded; the
whole launch is shown as "wall"). Scaling efficiency is throughput with N processes over N times
the 1-process throughput (1.00 = perfect); the Horovod/DDP ratio divides Horovod's seconds per
epoch by DDP's at the same number of processes (above 1: Horovod is slower). On the CPU every
process has one thread, so N processes use N cores. Also checks that the replicas ended
identical in every run.
"""

from __future__ import annotations

import tempfile
from statistics import median

from pipeline.data import load_dataset
from pipeline.features import image_split
from pipeline.training.distributed import ENGINES, train_distributed

EPOCHS = 3
PROCESSES = (1, 2)
SETTINGS = {"epochs": EPOCHS, "batch_size": 128, "lr": 0.05, "hidden": (512, 256), "seed": 0}


def measure(engine: str, processes: int, X, y) -> dict[str, float]:
    """Steady images/s and seconds per epoch (first epoch left out), the launch's wall seconds."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{engine}-") as workdir:
        run = train_distributed(engine, X, y, processes=processes, workdir=workdir, timeout_s=1800,
                                log=lambda line: None, **SETTINGS)
    seconds = median(run.history["seconds"][1:])
    return {"images_per_second": run.metrics["rows_per_rank"] * processes / seconds, "epoch_seconds": seconds,
            "wall_seconds": run.wall_seconds, "identical": run.replicas_identical}


def main() -> None:
    split = image_split(load_dataset("mnist", "full"), flatten=True)
    results = {(engine, n): measure(engine, n, split.X_train, split.y_train) for engine in ENGINES for n in PROCESSES}
    print(f"\nUnit 15 — data-parallel MLP 784-512-256-10 on {len(split.X_train):,} MNIST images, batch "
          f"{SETTINGS['batch_size']} per process, {EPOCHS} epochs (the first left out)")
    print(f"  {'engine':8s} {'procs':>5s} {'images/s':>9s} {'s/epoch':>8s} {'wall s':>7s} {'scaling eff.':>12s} "
          f"{'identical':>9s}")
    for (engine, n), result in results.items():
        efficiency = result["images_per_second"] / (n * results[engine, 1]["images_per_second"])
        print(f"  {engine:8s} {n:5d} {result['images_per_second']:9.0f} {result['epoch_seconds']:8.2f} "
              f"{result['wall_seconds']:7.1f} {efficiency:12.2f} {'yes' if result['identical'] else 'NO':>9s}")
    for n in PROCESSES:
        ratio = results["horovod", n]["epoch_seconds"] / results["ddp", n]["epoch_seconds"]
        print(f"  Horovod/DDP time per epoch, {n} process{'es' if n > 1 else ''}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
