"""Unit 15 on Kubernetes: the training job rendered from ``infra/k8s/`` and run with ``kubectl``.

The two manifests are complete jobs a user can read and apply by hand: an MPIJob (Kubeflow's MPI
operator, ``kubeflow.org/v2beta1``) whose launcher runs ``horovodrun`` over SSH into GPU workers,
and a PyTorchJob (Kubeflow's training operator, ``kubeflow.org/v1``) whose master and workers each
run ``torchrun``. ``render_manifest`` reads one and sets a run's parameters into it: the name, the
image, the number of worker pods and GPUs per pod, the shared volume, the servers to report to and
the worker's command line, the same ``-m pipeline.training.distributed ...`` that the local
launcher runs (``TrainingArgs``). The launcher's own flags (``horovodrun --gloo --hostfile ...``,
``torchrun --nnodes ...``) stay as the files say.

``submit_job`` applies the rendered manifest with ``kubectl apply -f -`` and waits with
``kubectl wait`` for the job's ``Succeeded`` or ``Failed`` condition, whichever comes first. A
failed job raises ``ClusterJobError`` with the operator's reason and the last lines of its pods'
logs; a timeout or Ctrl-C deletes the job, so no GPU stays held by a run nobody waits for. The
data and the output folder are paths on the shared volume (a ReadWriteMany PVC mounted at
``/shared`` in the flow-run pod and in every job pod), so the flow writes the data and reads the
weights and metrics where the workers see them. Plain Python: no Prefect, no Kubernetes client.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

Engine = Literal["horovod", "ddp"]

MANIFEST_DIR = Path(__file__).resolve().parents[3] / "infra" / "k8s"
MANIFESTS: dict[str, str] = {"horovod": "mpijob-horovod.yaml", "ddp": "pytorchjob-ddp.yaml"}
# kubectl's TYPE.GROUP names, unambiguous next to other operators' job kinds
RESOURCES: dict[str, str] = {"horovod": "mpijobs.kubeflow.org", "ddp": "pytorchjobs.kubeflow.org"}
WORKER_MODULE = "pipeline.training.distributed"
GPU = "nvidia.com/gpu"
# set by both Kubeflow operators on every pod of a job
JOB_LABEL = "training.kubeflow.org/job-name"
# The servers a run reports to and its state folder: a job's pods get the submitting process's values.
FORWARDED_ENV = ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "MLPATH_HOME")
IMAGE_ENV = "MLPATH_CLUSTER_IMAGE"
CLAIM_ENV = "MLPATH_CLUSTER_CLAIM"
DEFAULT_CLAIM = "mlpath-shared"
LOG_TAIL_LINES = 40


class ClusterJobError(RuntimeError):
    """The job could not be submitted, failed on the cluster, or did not finish in time."""


@dataclass(frozen=True)
class TrainingArgs:
    """The training worker's command line: ``python -m pipeline.training.distributed ...``.

    ``data`` is an ``.npz`` with ``X_train``/``y_train``; rank 0 writes the weights and a metrics
    JSON under ``out``. On a cluster both are paths that every pod sees (the shared volume).
    """

    data: str
    out: str
    epochs: int
    batch_size: int
    lr: float
    seed: int
    hidden: tuple[int, ...] | None = None

    def argv(self, engine: Engine) -> list[str]:
        """``-m pipeline.training.distributed --engine ...``: what follows the interpreter (or
        ``torchrun``'s own flags)."""
        argv = ["-m", WORKER_MODULE, "--engine", engine, "--data", str(self.data), "--out", str(self.out),
                "--epochs", str(self.epochs), "--batch-size", str(self.batch_size), "--lr", repr(float(self.lr)),
                "--seed", str(self.seed)]
        if self.hidden:
            argv += ["--hidden", ",".join(str(width) for width in self.hidden)]
        return argv


@dataclass(frozen=True)
class ClusterJob:
    """A job that finished with ``Succeeded``: where it ran and how long it took."""

    name: str
    resource: str
    namespace: str | None
    seconds: float


def job_name(engine: Engine) -> str:
    """A fresh name (a DNS label, as the operators' Services need): ``mlpath-horovod-1a2b3c4d``."""
    return f"mlpath-{engine}-{secrets.token_hex(4)}"


def _replica_specs(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest["spec"]
    return spec.get("mpiReplicaSpecs") or spec["pytorchReplicaSpecs"]


def _launch_command(command: list[str], processes: int, training: list[str]) -> list[str]:
    """The file's launcher flags (everything before ``-m pipeline.training.distributed``), with
    ``horovodrun``'s ``-np`` set to the world size, followed by this run's worker arguments."""
    at = command.index(WORKER_MODULE) - 1
    if command[at] != "-m":
        raise ClusterJobError(f"the manifest's command does not run `-m {WORKER_MODULE}`: {command}")
    launcher = list(command[:at])
    if "-np" in launcher:
        launcher[launcher.index("-np") + 1] = str(processes)
    return launcher + training


def render_manifest(engine: Engine, args: TrainingArgs, *, workers: int, gpus_per_worker: int, image: str,
                    name: str, claim: str = DEFAULT_CLAIM, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The job of ``infra/k8s/`` for ``engine`` with this run's parameters.

    ``workers`` pods train, each with ``gpus_per_worker`` GPUs and as many processes (0 GPUs: one
    process on the CPU), so the world size is ``workers * max(gpus_per_worker, 1)``. Horovod's
    launcher is a pod of its own without a GPU; DDP's master is the first of the ``workers``.
    ``env`` replaces the values of the containers' variables of the same names.
    """
    if workers < 1 or gpus_per_worker < 0:
        raise ValueError(f"need workers >= 1 and gpus_per_worker >= 0, got {workers} and {gpus_per_worker}")
    env = env or {}
    # The files share blocks through YAML anchors; the JSON round trip makes them separate objects,
    # so that a change lands where it is made and the rendered text has no aliases.
    manifest = json.loads(json.dumps(yaml.safe_load((MANIFEST_DIR / MANIFESTS[engine]).read_text(encoding="utf-8"))))
    manifest["metadata"]["name"] = name
    per_pod = max(gpus_per_worker, 1)
    replicas = _replica_specs(manifest)
    if engine == "horovod":
        manifest["spec"]["slotsPerWorker"] = per_pod
        replicas["Worker"]["replicas"] = workers
        launchers = [replicas["Launcher"]]
    else:
        manifest["spec"]["nprocPerNode"] = str(per_pod)
        replicas["Worker"]["replicas"] = workers - 1
        if workers == 1:
            del replicas["Worker"]
        launchers = list(replicas.values())
    for replica in launchers:
        container = replica["template"]["spec"]["containers"][0]
        container["command"] = _launch_command(container["command"], workers * per_pod, args.argv(engine))
    for replica in replicas.values():
        pod = replica["template"]["spec"]
        for volume in pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                volume["persistentVolumeClaim"]["claimName"] = claim
        for container in pod["containers"]:
            container["image"] = image
            limits = container.get("resources", {}).get("limits", {})
            if GPU in limits:
                if gpus_per_worker:
                    limits[GPU] = gpus_per_worker
                else:
                    del limits[GPU]
            for variable in container.get("env", []):
                if variable["name"] in env:
                    variable["value"] = env[variable["name"]]
    return manifest


def _kubectl(kubectl: str) -> str:
    path = shutil.which(kubectl)
    if path is None:
        raise ClusterJobError(f"`{kubectl}` is not on PATH: install kubectl and point it at the cluster "
                              "(KUBECONFIG, or a service account inside it), or train with launcher='local'")
    return path


def _run(command: list[str], *, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout)


def _wait(kubectl: str, ref: str, namespace_args: list[str], timeout_s: float) -> str | None:
    """``Succeeded`` or ``Failed``, whichever condition the job reaches first; None when neither
    came within ``timeout_s``. One ``kubectl wait`` per condition, run side by side: kubectl waits
    for one condition at a time, and a failed job never becomes ``Succeeded``."""
    waits = {condition: subprocess.Popen([kubectl, "wait", f"--for=condition={condition}", ref, *namespace_args,
                                          f"--timeout={max(int(timeout_s), 1)}s"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for condition in ("Succeeded", "Failed")}
    try:
        while True:
            for condition, process in waits.items():
                if process.poll() == 0:
                    return condition
            if all(process.poll() is not None for process in waits.values()):
                errors = {process.stderr.read().strip() for process in waits.values()}
                if any("timed out" in error for error in errors):
                    return None
                raise ClusterJobError(f"`kubectl wait` on {ref} failed: {'; '.join(sorted(errors))}")
            time.sleep(0.2)
    finally:
        for process in waits.values():
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stderr.close()


def _failure_report(kubectl: str, ref: str, name: str, namespace_args: list[str]) -> str:
    """The operator's reason for the ``Failed`` condition and the last log lines of every pod."""
    reason = _run([kubectl, "get", ref, *namespace_args, "-o",
                   'jsonpath={.status.conditions[?(@.type=="Failed")].message}']).stdout.strip()
    logs = _run([kubectl, "logs", "-l", f"{JOB_LABEL}={name}", *namespace_args, "--all-containers", "--prefix",
                 f"--tail={LOG_TAIL_LINES}"])
    return f"{reason or 'no reason given'}\npods' logs (last {LOG_TAIL_LINES} lines each):\n" \
           f"{(logs.stdout + logs.stderr).strip() or '(none)'}"


def submit_job(engine: Engine, args: TrainingArgs, *, workers: int = 2, gpus_per_worker: int = 1,
               image: str | None = None, namespace: str | None = None, claim: str | None = None,
               timeout_s: float = 3600, kubectl: str = "kubectl") -> ClusterJob:
    """Run one distributed training job on the cluster and wait until it ends.

    Parameters
    ----------
    engine : ``"horovod"`` (an MPIJob) or ``"ddp"`` (a PyTorchJob).
    args : the worker's command line; ``args.data`` and ``args.out`` must be on the shared volume.
    workers : training pods; with ``gpus_per_worker`` GPUs each, the world size is their product.
    gpus_per_worker : GPUs (and processes) per pod; 0 trains on CPUs, one process per pod.
    image : the image of every pod, default ``$MLPATH_CLUSTER_IMAGE`` (the work pool sets it to the
        flow run's own image, infra/Dockerfile.gpu).
    namespace : default kubectl's own: the flow-run pod's namespace inside the cluster.
    claim : the shared ReadWriteMany PVC, default ``$MLPATH_CLUSTER_CLAIM`` or ``mlpath-shared``.
    timeout_s : from submission to the end of training; past it the job is deleted.
    kubectl : the kubectl executable, looked up on PATH.

    Returns the finished job; raises ClusterJobError when kubectl is missing, the apply is
    refused, the job fails (with the reason and the pods' logs) or it times out.
    """
    kubectl = _kubectl(kubectl)
    image = image or os.environ.get(IMAGE_ENV)
    if not image:
        raise ClusterJobError(f"no image for the job: pass image= or set {IMAGE_ENV} (built from infra/Dockerfile.gpu)")
    name = job_name(engine)
    manifest = render_manifest(engine, args, workers=workers, gpus_per_worker=gpus_per_worker, image=image,
                               name=name, claim=claim or os.environ.get(CLAIM_ENV, DEFAULT_CLAIM),
                               env={key: os.environ[key] for key in FORWARDED_ENV if os.environ.get(key)})
    namespace_args = ["-n", namespace] if namespace else []
    ref = f"{RESOURCES[engine]}/{name}"
    started = time.monotonic()
    applied = _run([kubectl, "apply", "-f", "-", *namespace_args], input=yaml.safe_dump(manifest, sort_keys=False))
    if applied.returncode != 0:
        raise ClusterJobError(f"`kubectl apply` refused the {manifest['kind']} {name}: {applied.stderr.strip()}")
    try:
        outcome = _wait(kubectl, ref, namespace_args, timeout_s)
    except BaseException:  # Ctrl-C included: the job must not keep its GPUs
        _run([kubectl, "delete", ref, *namespace_args, "--wait=false"])
        raise
    if outcome is None:
        _run([kubectl, "delete", ref, *namespace_args, "--wait=false"])
        raise ClusterJobError(f"{ref} did not finish within {timeout_s:.0f} s; it was deleted")
    if outcome == "Failed":
        raise ClusterJobError(f"{ref} failed: {_failure_report(kubectl, ref, name, namespace_args)}")
    return ClusterJob(name=name, resource=ref, namespace=namespace, seconds=time.monotonic() - started)
