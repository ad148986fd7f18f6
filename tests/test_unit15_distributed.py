"""Unit 15: data-parallel training with Horovod and DDP, two real processes on the CPU each.

One 2-process run per engine (module fixture, with ``--grad-check``) on a slice of MNIST carries
the consistency checks: after training every rank holds bit-identical parameters, and the
gradient training applied on the first step is the mean of the ranks' local gradients. Then a
1-process run must learn, a killed worker must surface as an error (not a hang), Ctrl-C must
leave no process behind, and a Python without Horovod must say how to install it.
"""

from __future__ import annotations

import os
import signal
import time
import venv

import numpy as np
import psutil
import pytest
import torch
from safetensors.torch import load_file

from pipeline.data import load_dataset
from pipeline.features import image_split
from pipeline.training.distributed import (
    DistributedTrainingError,
    HorovodNotInstalledError,
    launch_commands,
    train_distributed,
)
from pipeline.training.export import load_torch_classifier, save_torch_classifier

TRAIN_ROWS, TEST_ROWS = 1024, 500
SMALL = {"epochs": 2, "batch_size": 32, "lr": 0.05, "hidden": (32,), "seed": 0, "timeout_s": 180}
# float32 all-reduce (sum, then divide) against numpy's mean of two: a few ulps apart at most
GRAD_RTOL, GRAD_ATOL = 1e-5, 1e-7


@pytest.fixture(scope="module")
def mnist():
    split = image_split(load_dataset("mnist", "quick"), flatten=True)
    return split.X_train[:TRAIN_ROWS], split.y_train[:TRAIN_ROWS], split.X_test[:TEST_ROWS], split.y_test[:TEST_ROWS]


@pytest.fixture(scope="module")
def two_process_runs(mnist, tmp_path_factory):
    """engine -> its 2-process run, each made once, when a test first asks for it."""
    X, y, _, _ = mnist
    runs = {}

    def run(engine):
        if engine not in runs:
            runs[engine] = train_distributed(engine, X, y, processes=2, workdir=tmp_path_factory.mktemp(engine),
                                             grad_check=True, **SMALL)
        return runs[engine]
    return run


@pytest.fixture(params=["horovod", "ddp"])
def two_process_run(request, two_process_runs):
    return two_process_runs(request.param)


def test_replicas_are_identical_after_training(two_process_run):
    assert two_process_run.world_size == 2
    assert len(two_process_run.digests) == 2
    assert two_process_run.replicas_identical, two_process_run.digests


def test_averaged_gradient_is_the_mean_of_local_gradients(two_process_run):
    grads = [load_file(two_process_run.out / f"grads-rank-{rank}.safetensors") for rank in range(2)]
    names = [key.removeprefix("local.") for key in grads[0] if key.startswith("local.")]
    assert names
    for name in names:
        local = [g[f"local.{name}"] for g in grads]
        assert not torch.equal(local[0], local[1]), "the ranks' shards should give different gradients"
        mean = (local[0] + local[1]) / 2
        for g in grads:
            torch.testing.assert_close(g[f"averaged.{name}"], mean, rtol=GRAD_RTOL, atol=GRAD_ATOL)


def test_the_trained_model_is_a_registrable_classifier(two_process_run, mnist, tmp_path):
    _, _, X_test, y_test = mnist
    model = two_process_run.model
    accuracy = float(np.mean(model.predict(X_test) == y_test))
    assert accuracy > 0.75, accuracy
    reloaded = load_torch_classifier(save_torch_classifier(model, tmp_path / "model"))
    np.testing.assert_array_equal(reloaded.predict(X_test), model.predict(X_test))
    history = two_process_run.history
    assert len(history["loss"]) == SMALL["epochs"] and history["loss"][-1] < history["loss"][0]
    assert two_process_run.images_per_second > 0


def test_horovod_and_ddp_train_the_same_model(two_process_runs):
    """Same seed, shards, batches and averaged gradients: the engines differ only in how they
    all-reduce, so the weights agree up to float rounding."""
    horovod, ddp = (load_file(two_process_runs(engine).out / "weights.safetensors") for engine in ("horovod", "ddp"))
    for name in ddp:
        torch.testing.assert_close(horovod[name], ddp[name], rtol=1e-4, atol=1e-6)


def test_one_process_learns(mnist, tmp_path):
    X, y, X_test, y_test = mnist
    run = train_distributed("ddp", X, y, processes=1, workdir=tmp_path, **SMALL)
    assert run.world_size == 1 and run.metrics["scaled_lr"] == SMALL["lr"]
    assert run.history["loss"][-1] < run.history["loss"][0] < np.log(10)
    assert float(np.mean(run.model.predict(X_test) == y_test)) > 0.75


def _workers() -> list[psutil.Process]:
    """Our worker processes: ``python -m pipeline.training.distributed``, anywhere below us."""
    def is_worker(process):
        try:
            return process.cmdline()[1:3] == ["-m", "pipeline.training.distributed"]
        except psutil.Error:
            return False
    return [p for p in psutil.Process().children(recursive=True) if is_worker(p)]


def _long_run(engine, mnist, workdir, on_first_epoch):
    X, y, _, _ = mnist
    def log(line):
        if "epoch 1/" in line:
            on_first_epoch()
    return train_distributed(engine, X, y, processes=2, workdir=workdir, log=log, **{**SMALL, "epochs": 10_000})


@pytest.mark.parametrize("engine", ["horovod", "ddp"])
def test_a_killed_worker_fails_the_run_without_hanging(engine, mnist, tmp_path):
    def kill_one_worker():
        workers = _workers()
        assert len(workers) == 2
        workers[-1].kill()

    started = time.monotonic()
    with pytest.raises(DistributedTrainingError, match=rf"^{engine} training failed \(exit code -?\d+\)"):
        _long_run(engine, mnist, tmp_path, kill_one_worker)
    assert time.monotonic() - started < 120
    assert _workers() == []


def test_ctrl_c_stops_every_process_within_seconds(mnist, tmp_path):
    interrupted = []

    def press_ctrl_c():
        interrupted.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)  # what a terminal sends; Python raises KeyboardInterrupt

    already = {p.pid for p in psutil.Process().children(recursive=True)}  # e.g. a test Prefect server
    # Python's own SIGINT handler (a terminal's Ctrl-C becomes KeyboardInterrupt), whatever the test
    # runner installed: a pytest-xdist worker ignores SIGINT, leaving Ctrl-C to the controlling process.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            _long_run("horovod", mnist, tmp_path, press_ctrl_c)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - interrupted[0] < 10
    assert [p for p in psutil.Process().children(recursive=True) if p.pid not in already] == []


def test_horovod_missing_says_how_to_install_it(mnist, tmp_path):
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)  # a real interpreter without Horovod (or torch)
    X, y, _, _ = mnist
    with pytest.raises(HorovodNotInstalledError, match=r"engine 'horovod'.*make horovod"):
        train_distributed("horovod", X, y, workdir=tmp_path, python=str(bare / "bin" / "python"), **SMALL)


def test_launch_commands_across_hosts():
    args = ["--data", "d.npz", "--out", "o"]
    (horovod,) = launch_commands("horovod", args, processes=4, hosts=["node-a:2", "node-b:2"], python="py")
    assert horovod[:8] == ["py", "-m", "horovod.runner.launch", "-np", "4", "-H", "node-a:2,node-b:2", "--gloo"]
    assert horovod[8:13] == ["py", "-m", "pipeline.training.distributed", "--engine", "horovod"]
    first, second = launch_commands("ddp", args, processes=4, hosts=["node-a:2", "node-b:2"], python="py",
                                    env={"OMP_NUM_THREADS": "1"}, cwd="/shared/run")
    assert first[:2] == ["ssh", "-o"] and second[:2] == ["ssh", "-o"]
    assert "--nnodes=2" in first[-1] and "--rdzv-endpoint=node-a:29400" in first[-1]
    assert first[-1].startswith("cd /shared/run && env OMP_NUM_THREADS=1 py -m torch.distributed.run")
    with pytest.raises(ValueError, match="slots"):
        launch_commands("ddp", args, processes=3, hosts=["node-a:2", "node-b:2"])


# --- the flow ---------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("engine", ["horovod", "ddp"])
def test_unit15_flow_trains_on_two_processes_and_registers(engine, prefect_harness, fresh_home):
    from flows.unit15_distributed import unit15_distributed
    from pipeline.registry import client, load_version
    from pipeline.units.unit15_distributed import Unit15Params

    outcome = unit15_distributed(Unit15Params(profile="quick", engine=engine, epochs=2))
    assert outcome["status"] == "succeeded" and outcome["primary_metric"] == "test_accuracy"
    assert outcome["value"] > 0.85 and (outcome["version"], outcome["alias"]) == ("1", "champion")
    metrics = client().get_run(outcome["run_id"]).data.metrics
    assert metrics["distributed_processes"] == 2 and metrics["distributed_replicas_identical"] == 1
    assert {"mnist_adam_test_accuracy", "rosenbrock_sgd_final_loss"} <= set(metrics)
    model = load_version("mlpath-unit15", "1")
    assert model.predict(np.zeros((3, 784), dtype=np.float32)).shape == (3,)
    # the run keeps its log, weights and metrics, not its copy of the data
    runs = list((fresh_home / "distributed").iterdir())
    assert len(runs) == 1 and (runs[0] / "out" / "weights.safetensors").is_file()
    assert not (runs[0] / "train.npz").exists()
