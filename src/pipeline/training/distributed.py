"""Unit 15: data-parallel training of Unit 7's network across processes and hosts, Horovod or DDP.

Data parallelism keeps one replica of the model per process (a *rank*). Every rank starts from
rank 0's weights, trains on its own shard of the rows, and after each backward pass the ranks
average their gradients (an all-reduce), so every rank applies the same update and the replicas
stay identical. N ranks with batch B see N·B rows per step, so the learning rate is scaled by N
(the linear scaling rule of Goyal et al., 2017).

Two halves of one protocol live here:

- the **worker**, one process per rank, started by ``horovodrun`` or ``torchrun``::

      python -m pipeline.training.distributed --engine {horovod,ddp} --data train.npz --out DIR \\
          --epochs N --batch-size B --lr LR --seed S [--hidden 128,64] [--grad-check]

  It reads ``X_train`` (float32, (n, n_features)) and ``y_train`` (int64 class indices) from the
  npz and writes to ``DIR``: ``weights.safetensors`` and ``metrics.json`` from rank 0 (after every
  epoch, so a stopped run keeps its last epoch), and ``rank-<r>.json`` from every rank with a
  digest of its final parameters. ``--grad-check`` also writes ``grads-rank-<r>.safetensors``:
  the rank's local gradient on its first batch and the averaged gradient training applied there.
- the **launcher**, `train_distributed`, which the Unit 15 flow calls: it writes the data, builds
  the ``horovodrun``/``torchrun`` command(s), streams rank 0's log, stops every process on
  failure, timeout or Ctrl-C, and returns a `DistributedRun` whose ``model`` is a fitted
  `TorchClassifier`, so the common evaluation and registry take it unchanged.

Engines: ``horovod`` (``hvd.init``, ``broadcast_parameters``/``broadcast_optimizer_state``,
``hvd.DistributedOptimizer``; Gloo between CPUs, NCCL between GPUs when Horovod was built with it)
and ``ddp`` (``torch.distributed`` + ``DistributedDataParallel``; Gloo on CPUs, NCCL on GPUs).
Horovod is built by ``infra/build-horovod.sh`` (``make horovod``).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import queue
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import psutil
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.mlp import MLP
from pipeline.training.classifier import TorchClassifier
from pipeline.training.config import TrainConfig

ENGINES = ("horovod", "ddp")
MOMENTUM = 0.9  # SGD with momentum, as Unit 7 trains
WEIGHTS, METRICS = "weights.safetensors", "metrics.json"
INSTALL_HOROVOD = "make horovod  (or: infra/build-horovod.sh {python})"
STOP_GRACE_S = 3.0  # after SIGTERM, how long processes get before SIGKILL


class DistributedTrainingError(RuntimeError):
    """A distributed run failed: a worker exited with an error, it timed out, or an engine is missing."""


class HorovodNotInstalledError(DistributedTrainingError):
    """``engine="horovod"`` with an interpreter that cannot import Horovod."""


# --- the worker: one process per rank ------------------------------------------------------------


class HorovodEngine:
    """Horovod's recipe: broadcast rank 0's state, average gradients in the optimizer."""

    name = "horovod"

    def __init__(self):
        import horovod.torch as hvd

        hvd.init()
        self.hvd = hvd
        self.rank, self.size = hvd.rank(), hvd.size()
        # A Horovod built without GPU operations cannot all-reduce CUDA tensors: train on the CPU.
        gpu_built = hvd.nccl_built() or hvd.cuda_built() or hvd.rocm_built()
        self.device = _rank_device(hvd.local_rank()) if gpu_built else torch.device("cpu")

    def distribute(self, module: nn.Module, optimizer: torch.optim.Optimizer):
        """(model to call, optimizer to step): every rank starts from rank 0's weights and state."""
        self.hvd.broadcast_parameters(module.state_dict(), root_rank=0)
        self.hvd.broadcast_optimizer_state(optimizer, root_rank=0)
        return module, self.hvd.DistributedOptimizer(optimizer, named_parameters=module.named_parameters())

    def backward(self, loss: torch.Tensor, optimizer) -> None:
        """Backward starts an all-reduce per gradient as it is ready; ``synchronize`` waits for
        them, so afterwards every ``p.grad`` is the mean over ranks."""
        loss.backward()
        optimizer.synchronize()

    def step(self, optimizer) -> None:
        with optimizer.skip_synchronize():  # already averaged in `backward`
            optimizer.step()

    def mean(self, value: torch.Tensor) -> float:
        return float(self.hvd.allreduce(value, op=self.hvd.Average))

    def close(self) -> None:
        self.hvd.shutdown()


class DDPEngine:
    """PyTorch's recipe: ``DistributedDataParallel`` broadcasts rank 0's weights when it wraps the
    module and averages gradients bucket by bucket during backward."""

    name = "ddp"

    def __init__(self):
        import torch.distributed as dist

        self.dist = dist
        self.device = _rank_device(int(os.environ["LOCAL_RANK"]))  # set by torchrun
        dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.rank, self.size = dist.get_rank(), dist.get_world_size()

    def distribute(self, module: nn.Module, optimizer: torch.optim.Optimizer):
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids), optimizer

    def backward(self, loss: torch.Tensor, optimizer) -> None:
        loss.backward()  # returns once DDP's all-reduces are done: p.grad is the mean over ranks

    def step(self, optimizer) -> None:
        optimizer.step()

    def mean(self, value: torch.Tensor) -> float:
        value = value.clone()
        self.dist.all_reduce(value)  # a sum: Gloo has no average
        return float(value) / self.size

    def close(self) -> None:
        self.dist.destroy_process_group()


WORKER_ENGINES = {"horovod": HorovodEngine, "ddp": DDPEngine}


def _rank_device(local_rank: int) -> torch.device:
    """This rank's GPU (one per process on a host), or the CPU without CUDA."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def shard_rows(n_rows: int, rank: int, size: int, seed: int) -> np.ndarray:
    """Row indices of ``rank``'s shard: a seeded permutation cut into ``size`` equal parts.

    Equal parts, so every rank takes the same number of steps (an all-reduce waits for all of
    them); the ``n_rows % size`` rows left over are not used.
    """
    per_rank = n_rows // size
    if per_rank == 0:
        raise ValueError(f"{n_rows} rows cannot be split into {size} shards")
    order = np.random.default_rng(seed).permutation(n_rows)
    return np.sort(order[rank * per_rank:(rank + 1) * per_rank])


def parameter_digest(module: nn.Module) -> dict[str, float | str]:
    """sha256 of the parameters' bytes (state-dict order) and their sum: equal digests on every
    rank mean bit-identical replicas."""
    sha, total = hashlib.sha256(), 0.0
    for tensor in module.state_dict().values():
        values = tensor.detach().cpu().contiguous()
        sha.update(values.numpy().tobytes())
        total += float(values.double().sum())
    return {"sha256": sha.hexdigest(), "sum": total}


def _local_gradients(module: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> dict[str, torch.Tensor]:
    """This rank's own gradient on a batch: plain autograd on a copy, outside the engine."""
    local = copy.deepcopy(module)
    local.zero_grad()
    F.cross_entropy(local(xb), yb).backward()
    return {name: p.grad.detach().cpu() for name, p in local.named_parameters()}


def _save_atomic(write: Callable[[Path], None], path: Path) -> None:
    """Write through a temporary file, so a reader never sees half a file."""
    partial = path.with_name(path.name + ".tmp")
    write(partial)
    partial.replace(path)


def _write_json(data: dict, path: Path) -> None:
    _save_atomic(lambda p: p.write_text(json.dumps(data, indent=2)), path)


def _write_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    _save_atomic(lambda p: save_file(tensors, str(p)), path)


def train_epoch(engine, model: nn.Module, module: nn.Module, optimizer, X: torch.Tensor, y: torch.Tensor,
                order: torch.Tensor, batch_size: int, grad_check_to: Path | None = None) -> torch.Tensor:
    """One pass over this rank's shard (X, y) in ``order``; returns the summed loss, a device scalar.

    ``model`` is what the engine trains (``module`` itself, or DDP's wrapper around it). With
    ``grad_check_to``, the first step also writes there the rank's local gradient of its batch and
    the averaged gradient the step then applies (``local.<name>``, ``averaged.<name>``).
    """
    loss_sum = torch.zeros((), device=X.device)
    for first in range(0, len(order), batch_size):
        batch = order[first:first + batch_size]
        xb, yb = X[batch], y[batch]  # (B, n_features), (B,)
        local = _local_gradients(module, xb, yb) if grad_check_to else {}
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        engine.backward(loss, optimizer)
        if grad_check_to:
            averaged = {f"averaged.{name}": p.grad for name, p in module.named_parameters()}
            _write_tensors({**{f"local.{name}": g for name, g in local.items()}, **averaged}, grad_check_to)
            grad_check_to = None
        engine.step(optimizer)
        loss_sum += loss.detach() * len(batch)
    return loss_sum


def run_worker(args: argparse.Namespace) -> None:
    """Train this rank's replica; rank 0 logs and writes the weights and metrics after each epoch."""
    engine = WORKER_ENGINES[args.engine]()
    out = Path(args.out)
    rank, size, device = engine.rank, engine.size, engine.device
    say = print if rank == 0 else (lambda *_, **__: None)

    with np.load(args.data) as data:
        X_all, y_all = data["X_train"], data["y_train"]
    rows = shard_rows(len(X_all), rank, size, args.seed)
    X = torch.as_tensor(X_all[rows], dtype=torch.float32, device=device)  # (n_shard, n_features)
    y = torch.as_tensor(y_all[rows], dtype=torch.int64, device=device)    # (n_shard,)
    n_classes = int(y_all.max()) + 1
    del X_all, y_all

    torch.manual_seed(args.seed)
    module = MLP(X.shape[1], n_classes, args.hidden).to(device)
    lr = args.lr * size  # N ranks step with N·B rows: the linear scaling rule
    optimizer = torch.optim.SGD(module.parameters(), lr=lr, momentum=MOMENTUM)
    model, optimizer = engine.distribute(module, optimizer)
    say(f"{engine.name}: {size} process(es) on {device.type}, {len(rows)} rows per rank, batch {args.batch_size} "
        f"per rank, lr {args.lr} × {size} = {lr:g}", flush=True)

    history: dict[str, list[float]] = {"loss": [], "seconds": [], "images_per_second": []}
    images_per_epoch = len(rows) * size
    for epoch in range(args.epochs):
        order = torch.as_tensor(np.random.default_rng([args.seed, rank, epoch]).permutation(len(rows)), device=device)
        started = time.perf_counter()
        grad_check_to = out / f"grads-rank-{rank}.safetensors" if args.grad_check and epoch == 0 else None
        loss_sum = train_epoch(engine, model, module, optimizer, X, y, order, args.batch_size, grad_check_to)
        loss = engine.mean(loss_sum / len(rows))  # also waits for every rank: the epoch is over
        seconds = time.perf_counter() - started
        history["loss"].append(loss)
        history["seconds"].append(seconds)
        history["images_per_second"].append(images_per_epoch / seconds)
        say(f"epoch {epoch + 1}/{args.epochs}  loss {loss:.4f}  {images_per_epoch / seconds:,.0f} images/s  "
            f"{seconds:.2f} s", flush=True)
        if rank == 0:
            total_seconds = sum(history["seconds"])
            _write_tensors(module.state_dict(), out / WEIGHTS)
            _write_json({"engine": engine.name, "world_size": size, "device": device.type, "epochs": args.epochs,
                         "batch_size": args.batch_size, "lr": args.lr, "scaled_lr": lr, "seed": args.seed,
                         "hidden": list(args.hidden), "n_features": int(X.shape[1]), "n_classes": n_classes,
                         "rows_per_rank": len(rows), "history": history, "seconds": total_seconds,
                         "images_per_second": images_per_epoch * (epoch + 1) / total_seconds}, out / METRICS)
    _write_json({"rank": rank, "world_size": size, **parameter_digest(module)}, out / f"rank-{rank}.json")
    engine.close()


def _hidden_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive widths like 128,64, got {text!r}")
    return sizes


def worker_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.training.distributed",
                                     description="One rank of data-parallel MLP training (Unit 15).")
    parser.add_argument("--engine", choices=ENGINES, required=True)
    parser.add_argument("--data", required=True, help="npz with X_train (float32) and y_train (int64)")
    parser.add_argument("--out", required=True, help="folder for weights, metrics and per-rank digests")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128, help="rows per step on each rank")
    parser.add_argument("--lr", type=float, default=0.05, help="single-process learning rate, scaled by N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=_hidden_sizes, default=(512, 256), help="hidden widths, e.g. 128,64")
    parser.add_argument("--grad-check", action="store_true",
                        help="write each rank's local and the averaged gradient of the first batch")
    return parser


# --- the launcher: what the flow calls -----------------------------------------------------------


@dataclass
class DistributedRun:
    """A finished distributed run.

    ``model`` is a fitted `TorchClassifier` around rank 0's trained module; ``seconds`` and
    ``images_per_second`` cover the training epochs only (all ranks' images), ``wall_seconds``
    the whole launch, start-up included; ``digests`` holds each rank's parameter sha256, by rank.
    """

    engine: str
    world_size: int
    model: TorchClassifier
    seconds: float
    images_per_second: float
    wall_seconds: float
    digests: list[str]
    history: dict[str, list[float]]
    commands: list[list[str]]
    out: Path
    metrics: dict = field(repr=False, default_factory=dict)

    @property
    def replicas_identical(self) -> bool:
        return len(set(self.digests)) == 1


def _parse_hosts(hosts: Sequence[str]) -> list[tuple[str, int]]:
    parsed = []
    for entry in hosts:
        name, _, slots = entry.partition(":")
        if not name or not slots.isdigit() or int(slots) < 1:
            raise ValueError(f"hosts are 'name:slots' with slots >= 1, got {entry!r}")
        parsed.append((name, int(slots)))
    return parsed


def _is_local(host: str) -> bool:
    return host in {"localhost", "127.0.0.1", socket.gethostname(), socket.getfqdn()}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def launch_commands(engine: str, worker_args: Sequence[str], *, processes: int = 2,
                    hosts: Sequence[str] | None = None, python: str = sys.executable,
                    env: dict[str, str] | None = None, cwd: str | None = None) -> list[list[str]]:
    """The command lines that start ``processes`` workers: one ``horovodrun`` (it reaches other
    hosts over ssh itself), or one ``torchrun`` per host (remote ones through ``ssh``, with
    ``env`` and ``cwd`` set there). ``hosts`` are ``"name:slots"``; without them, this machine.
    Each host needs the same ``python`` path and a shared filesystem for the data and outputs."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    worker = [python, "-m", "pipeline.training.distributed", "--engine", engine, *worker_args]
    host_slots = _parse_hosts(hosts) if hosts else [("localhost", processes)]
    if sum(slots for _, slots in host_slots) < processes:
        raise ValueError(f"{processes} processes do not fit the hosts' slots {list(hosts or [])}")
    if engine == "horovod":
        host_list = ",".join(f"{name}:{slots}" for name, slots in host_slots)
        return [[python, "-m", "horovod.runner.launch", "-np", str(processes), "-H", host_list, "--gloo", *worker]]
    if len(host_slots) == 1 and _is_local(host_slots[0][0]):
        return [[python, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
                 f"--nproc-per-node={processes}", "--no-python", *worker]]
    if sum(slots for _, slots in host_slots) != processes:
        raise ValueError(f"with ddp every slot of every host runs a worker: {processes} processes, "
                         f"{sum(s for _, s in host_slots)} slots")
    endpoint_host = host_slots[0][0]
    port = _free_port() if _is_local(endpoint_host) else 29400
    run_id = uuid.uuid4().hex[:12]
    commands = []
    for name, slots in host_slots:
        torchrun = [python, "-m", "torch.distributed.run", f"--nnodes={len(host_slots)}",
                    f"--nproc-per-node={slots}", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint_host}:{port}",
                    f"--rdzv-id={run_id}", "--no-python", *worker]
        if _is_local(name):
            commands.append(torchrun)
        else:
            settings = [f"{k}={v}" for k, v in (env or {}).items()]
            remote = f"cd {shlex.quote(cwd or os.getcwd())} && env {shlex.join(settings)} {shlex.join(torchrun)}"
            commands.append(["ssh", "-o", "BatchMode=yes", name, remote])
    return commands


def require_engine(engine: str, python: str = sys.executable) -> None:
    """Raise `HorovodNotInstalledError` (with the command that installs it) when ``python``
    cannot find Horovod; DDP ships with torch."""
    if engine != "horovod":
        return
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('horovod') is None)"
    if subprocess.run([python, "-c", probe], capture_output=True).returncode != 0:
        raise HorovodNotInstalledError(
            f"engine 'horovod': Horovod is not installed for {python}. Build and install it with "
            f"`{INSTALL_HOROVOD.format(python=python)}` (about 10 minutes on 2 cores, then cached), "
            "or use engine='ddp'.")


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)  # this stream is done


def _stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM every launcher and all its descendants (a launcher may put workers in sessions of
    their own, out of its process group), then SIGKILL what is left after `STOP_GRACE_S`."""
    victims = []
    for process in processes:
        try:
            launcher = psutil.Process(process.pid)
            victims += [launcher, *launcher.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    for victim in victims:
        try:
            victim.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(victims, timeout=STOP_GRACE_S)
    for victim in alive:
        try:
            victim.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=STOP_GRACE_S)
    for process in processes:
        process.wait()


def run_workers(engine: str, commands: list[list[str]], env: dict[str, str], timeout_s: float,
                log: Callable[[str], None], log_file: Path) -> None:
    """Run the launch commands to the end, passing every output line to ``log`` (the workers
    print only on rank 0) and into ``log_file``. Raises `DistributedTrainingError` naming the
    engine, the exit code and the last lines when a launcher fails or ``timeout_s`` passes; on
    any error or interrupt (Ctrl-C) every process is stopped before it propagates."""
    lines: queue.Queue = queue.Queue()
    tail: deque[str] = deque(maxlen=30)
    processes: list[subprocess.Popen] = []
    deadline = time.monotonic() + timeout_s

    def failure(what: str) -> DistributedTrainingError:
        last = "\n".join(f"  {line}" for line in tail) or "  (no output)"
        return DistributedTrainingError(f"{engine} training {what}; command: {shlex.join(commands[0])}\n"
                                        f"last lines of the log ({log_file}):\n{last}")

    with open(log_file, "w") as record:
        try:
            for command in commands:
                # A session of their own: a terminal's Ctrl-C reaches only us, and we stop them.
                process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                           env=env, start_new_session=True)
                processes.append(process)
                threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
            open_streams = len(processes)
            while open_streams:
                try:
                    line = lines.get(timeout=0.2)
                except queue.Empty:
                    line = ""
                if line is None:
                    open_streams -= 1
                elif line:
                    tail.append(line)
                    record.write(line + "\n")
                    record.flush()
                    log(line)
                failed = [p.returncode for p in processes if p.poll() not in (None, 0)]
                if failed:
                    _stop(processes)
                    raise failure(f"failed (exit code {failed[0]})")
                if time.monotonic() > deadline:
                    _stop(processes)
                    raise failure(f"timed out after {timeout_s:g} s")
            for process in processes:
                if process.wait() != 0:
                    raise failure(f"failed (exit code {process.returncode})")
        except BaseException:
            _stop(processes)
            raise


def _classifier(module: nn.Module, classes: np.ndarray, n_features: int, hidden: Sequence[int],
                epochs: int, batch_size: int, lr: float, seed: int) -> TorchClassifier:
    """A fitted `TorchClassifier` around a trained `MLP`, as ``load_torch_classifier`` builds one:
    the shared evaluation predicts with it and the registry stores it (safetensors, no pickle)."""
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer="sgd", momentum=MOMENTUM,
                         seed=seed, label="distributed")
    model = TorchClassifier(partial(MLP, hidden=list(hidden)), config, size_from_data=True)
    model.classes_ = np.asarray(classes)
    model.n_features_in_ = n_features
    model.module_ = module.eval()
    return model


def write_training_data(X, y, workdir: str | os.PathLike) -> tuple[Path, Path, np.ndarray]:
    """The workers' input: X (n, ...) flattened to float32 rows and y mapped to class indices (as
    `TorchClassifier` does) in ``workdir/train.npz``; an empty ``workdir/out`` for their outputs
    (replaced: stale digests must never pass for this run's). Returns (data, out, classes)."""
    workdir = Path(workdir)
    out = workdir / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)  # (n, n_features)
    classes, y_index = np.unique(np.asarray(y), return_inverse=True)
    data = workdir / "train.npz"
    np.savez(data, X_train=X, y_train=y_index.astype(np.int64))
    return data, out, classes


def read_run(engine: str, out: Path, classes: np.ndarray, *, wall_seconds: float,
             commands: list[list[str]]) -> DistributedRun:
    """What the workers left in ``out`` (rank 0's weights and metrics, every rank's digest) as a
    `DistributedRun` whose model is a fitted `TorchClassifier`."""
    from safetensors.torch import load_file

    metrics = json.loads((out / METRICS).read_text())
    ranks = [json.loads((out / f"rank-{rank}.json").read_text()) for rank in range(metrics["world_size"])]
    hidden = tuple(metrics["hidden"])
    module = MLP(metrics["n_features"], len(classes), hidden)
    module.load_state_dict(load_file(str(out / WEIGHTS)), strict=True)
    model = _classifier(module, classes, metrics["n_features"], hidden, metrics["epochs"], metrics["batch_size"],
                        metrics["lr"], metrics["seed"])
    return DistributedRun(
        engine=engine, world_size=metrics["world_size"], model=model, seconds=metrics["seconds"],
        images_per_second=metrics["images_per_second"], wall_seconds=wall_seconds,
        digests=[rank["sha256"] for rank in ranks], history=metrics["history"], commands=commands, out=out,
        metrics=metrics)


def train_distributed(engine: str, X, y, *, processes: int = 2, hosts: Sequence[str] | None = None,
                      epochs: int = 10, batch_size: int = 128, lr: float = 0.05, seed: int = 0,
                      hidden: Sequence[int] = (512, 256), workdir: str | os.PathLike, timeout_s: float = 3600,
                      grad_check: bool = False, python: str = sys.executable,
                      log: Callable[[str], None] = print) -> DistributedRun:
    """Train Unit 7's MLP on (X, y) with ``processes`` data-parallel workers; see the module docstring.

    X (n, ...) is flattened to float32 rows, y any class labels (mapped to indices, as
    `TorchClassifier` does). ``batch_size`` is per process and ``lr`` the single-process rate
    (multiplied by the number of processes in the workers). ``hosts`` are ``"name:slots"``
    (default: this machine); ``python`` is the interpreter on every host. ``workdir`` holds the
    data (``train.npz``), the log (``train.log``) and the outputs (``out/``, replaced).
    Every worker gets ``OMP_NUM_THREADS=1``; on a machine with CUDA each takes one GPU (NCCL).
    """
    require_engine(engine, python)
    workdir = Path(workdir)
    data, out, classes = write_training_data(X, y, workdir)

    # One thread per worker (torchrun's default too): N workers with a thread per core each would
    # fight over the cores; on GPUs the threads only feed the device.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    worker_args = ["--data", str(data.resolve()), "--out", str(out.resolve()), "--epochs", str(epochs),
                   "--batch-size", str(batch_size), "--lr", repr(float(lr)), "--seed", str(seed),
                   "--hidden", ",".join(str(width) for width in hidden)] + (["--grad-check"] if grad_check else [])
    commands = launch_commands(engine, worker_args, processes=processes, hosts=hosts, python=python,
                               env={k: env[k] for k in ("PYTHONUNBUFFERED", "OMP_NUM_THREADS")})
    started = time.perf_counter()
    run_workers(engine, commands, env, timeout_s, log, workdir / "train.log")
    return read_run(engine, out, classes, wall_seconds=time.perf_counter() - started, commands=commands)


def train_on_cluster(engine: str, X, y, *, workers: int = 2, gpus_per_worker: int = 1, epochs: int = 10,
                     batch_size: int = 128, lr: float = 0.05, seed: int = 0, hidden: Sequence[int] = (512, 256),
                     workdir: str | os.PathLike, timeout_s: float = 3600,
                     log: Callable[[str], None] = print) -> DistributedRun:
    """The same training as a Kubernetes job (`pipeline.app.cluster.submit_job`: an MPIJob for
    Horovod, a PyTorchJob for DDP) of ``workers`` pods with ``gpus_per_worker`` GPUs each.
    ``workdir`` must be on the volume every pod mounts (under MLPATH_HOME in the work pool)."""
    from pipeline.app.cluster import TrainingArgs, submit_job

    workdir = Path(workdir)
    data, out, classes = write_training_data(X, y, workdir)
    args = TrainingArgs(data=str(data.resolve()), out=str(out.resolve()), epochs=epochs, batch_size=batch_size,
                        lr=float(lr), seed=seed, hidden=tuple(hidden))
    started = time.perf_counter()
    job = submit_job(engine, args, workers=workers, gpus_per_worker=gpus_per_worker, timeout_s=timeout_s)
    log(f"{engine}: job {job.name} succeeded in {job.seconds:.0f} s")
    return read_run(engine, out, classes, wall_seconds=time.perf_counter() - started,
                    commands=[["kubectl", "apply", f"({job.resource} {job.name})"]])


def main(argv: Sequence[str] | None = None) -> None:
    run_worker(worker_parser().parse_args(argv))


if __name__ == "__main__":
    main()
