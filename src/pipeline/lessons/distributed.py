"""Unit 15, second half: Unit 7's network trained data-parallel by Horovod or DDP, and what it shows.

The mechanics (the worker, the launchers, the cluster job) live in `pipeline.training.distributed`
and `pipeline.app.cluster`; this module holds what the unit chooses: how much data and training
each profile gets, where a run's files go, and the table, figure and metrics of the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.features import Split


@dataclass(frozen=True)
class Settings:
    """Per process: ``batch_size`` rows per step and the single-process ``lr`` (the workers scale
    it by their number). Every training image of the profile's data is used."""

    hidden: tuple[int, ...]
    epochs: int
    batch_size: int
    lr: float


# Quick: a smoke run (the 6,000 quick images, one narrow layer, 3 epochs): it proves the launch, the
# all-reduce and the registration in seconds of training, most of the time being start-up. Full:
# Unit 7's layers on all 60,000 images.
SETTINGS = {
    "quick": Settings(hidden=(128,), epochs=3, batch_size=64, lr=0.05),
    "full": Settings(hidden=(512, 256), epochs=10, batch_size=128, lr=0.05),
}

CAPTIONS = {
    "distributed_loss": "Training loss per epoch, averaged over every rank's rows (rank 0 logs it). Look "
                        "for a curve like the single-process one: the averaged gradient over N shards is "
                        "the gradient of one batch N times as large, which the scaled learning rate "
                        "matches.",
}


def settings(params) -> Settings:
    """The profile's settings with the run's ``epochs``/``lr``/``batch_size`` overrides."""
    base = SETTINGS[params.profile]
    overrides = {k: getattr(params, k) for k in ("epochs", "lr", "batch_size") if getattr(params, k) is not None}
    return replace(base, **overrides)


def run_folder(root: Path) -> Path:
    """A new folder for one run's data, log and outputs under ``root`` (on a cluster, ``root`` is
    on the volume every pod mounts)."""
    folder = Path(root) / "distributed" / time.strftime("%Y%m%d-%H%M%S")
    for suffix in range(1000):
        candidate = folder.with_name(f"{folder.name}-{suffix}") if suffix else folder
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free run folder under {folder.parent}")


def train(split: Split, params, workdir: Path):
    """Train on ``split``'s training images with ``params.engine`` across ``params.processes``
    workers, on this machine (or ``params.hosts``) or, with ``launcher="kubernetes"``, as a job on
    the cluster; returns the `DistributedRun`."""
    from pipeline.training.distributed import train_distributed

    s = settings(params)
    X, y = split.X_train, split.y_train
    common = dict(epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, seed=params.seed, hidden=s.hidden,
                  workdir=workdir, timeout_s=params.timeout_s)
    try:
        if params.launcher == "kubernetes":
            from pipeline.training.distributed import train_on_cluster

            return train_on_cluster(params.engine, X, y, workers=params.processes, **common)
        hosts = [h.strip() for h in params.hosts.split(",")] if params.hosts else None
        return train_distributed(params.engine, X, y, processes=params.processes, hosts=hosts, **common)
    finally:  # the run keeps its log, weights and metrics; the data is a copy of the catalog's
        (Path(workdir) / "train.npz").unlink(missing_ok=True)


def run_table(run) -> pd.DataFrame:
    """One row: the engine, the world size, the time and throughput, whether every replica ended equal."""
    return pd.DataFrame([{
        "engine": run.engine, "processes": run.world_size, "training s": round(run.seconds, 2),
        "wall s (with start-up)": round(run.wall_seconds, 2), "images/s": round(run.images_per_second, 1),
        "replicas identical": run.replicas_identical, "final loss": round(run.history["loss"][-1], 4),
    }]).set_index("engine")


def run_metrics(run) -> dict[str, float]:
    return {"distributed_processes": float(run.world_size), "distributed_seconds": float(run.seconds),
            "distributed_wall_seconds": float(run.wall_seconds),
            "distributed_images_per_second": float(run.images_per_second),
            "distributed_replicas_identical": float(run.replicas_identical),
            "distributed_final_loss": float(run.history["loss"][-1])}


def loss_figure(run):
    from matplotlib.figure import Figure

    loss = np.asarray(run.history["loss"], dtype=float)
    fig = Figure(figsize=(5.5, 3.5))
    ax = fig.subplots()
    ax.plot(np.arange(1, len(loss) + 1), loss, marker="o")
    ax.set(xlabel="epoch", ylabel="training loss (mean over ranks)",
           title=f"{run.engine}: {run.world_size} processes")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
