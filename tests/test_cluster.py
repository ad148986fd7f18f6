"""Unit 15 on Kubernetes without a cluster: infra/k8s/, pipeline.app.cluster and infra/Dockerfile.gpu.

No cluster and no Docker engine run here. The manifests are rendered and read back as a cluster
would get them; the worker command in them is compared with the one the local launcher really
runs (a one-process DDP run through a recording interpreter); ``submit_job`` talks to a stand-in
``kubectl``, a shell script on PATH that records its arguments and standard input and answers as
the operators would; the work-pool template goes through Prefect's own validation and rendering;
the GPU Dockerfile is linted and its build context checked.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.app.cluster import (
    IMAGE_ENV,
    JOB_LABEL,
    ClusterJobError,
    TrainingArgs,
    render_manifest,
    submit_job,
)

from conftest import REPO

K8S = REPO / "infra" / "k8s"
DOCKERFILE_GPU = REPO / "infra" / "Dockerfile.gpu"
ARGS = TrainingArgs(data="/shared/run/train.npz", out="/shared/run/out", epochs=3, batch_size=64, lr=0.05,
                    seed=7, hidden=(32, 16))


def _containers(manifest: dict) -> dict[str, dict]:
    """Each replica type's first (only) container."""
    spec = manifest["spec"]
    replicas = spec.get("mpiReplicaSpecs") or spec["pytorchReplicaSpecs"]
    return {kind: replica["template"]["spec"]["containers"][0] for kind, replica in replicas.items()}


def _replicas(manifest: dict) -> dict[str, int]:
    spec = manifest["spec"]
    return {kind: r["replicas"] for kind, r in (spec.get("mpiReplicaSpecs") or spec["pytorchReplicaSpecs"]).items()}


# --- the manifests ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, api, kind", [("mpijob-horovod.yaml", "kubeflow.org/v2beta1", "MPIJob"),
                                             ("pytorchjob-ddp.yaml", "kubeflow.org/v1", "PyTorchJob")])
def test_manifest_files_are_complete_jobs(name, api, kind):
    manifest = yaml.safe_load((K8S / name).read_text(encoding="utf-8"))
    assert (manifest["apiVersion"], manifest["kind"]) == (api, kind)
    for container in _containers(manifest).values():
        assert "pipeline.training.distributed" in container["command"] or container["command"][0].endswith("sshd")


def test_mpijob_rendered_for_three_workers_with_two_gpus():
    manifest = render_manifest("horovod", ARGS, workers=3, gpus_per_worker=2, image="registry.example/mlpath-gpu:1",
                               name="mlpath-horovod-test", env={"MLFLOW_TRACKING_URI": "http://mlflow.test:5000"})
    text = yaml.safe_dump(manifest)
    assert "&id" not in text and "*id" not in text  # plain YAML: no anchors left from the file
    manifest = yaml.safe_load(text)
    assert (manifest["apiVersion"], manifest["kind"]) == ("kubeflow.org/v2beta1", "MPIJob")
    assert manifest["metadata"]["name"] == "mlpath-horovod-test"
    assert _replicas(manifest) == {"Launcher": 1, "Worker": 3}
    assert manifest["spec"]["slotsPerWorker"] == 2
    assert manifest["spec"]["sshAuthMountPath"] == "/home/mlpath/.ssh"
    launcher, worker = _containers(manifest)["Launcher"], _containers(manifest)["Worker"]
    command = launcher["command"]
    assert command[:2] == ["horovodrun", "--gloo"]
    assert command[command.index("-np") + 1] == "6"  # 3 pods x 2 GPUs
    assert command[command.index("--hostfile") + 1] == "/etc/mpi/hostfile"  # written by the MPI operator
    assert command[command.index("-p") + 1] == "2222"  # the workers' sshd port (infra/Dockerfile.gpu)
    assert command[command.index("-m") - 1:] == ["python", *ARGS.argv("horovod")]
    assert worker["command"][0] == "/usr/sbin/sshd" and worker["readinessProbe"]["tcpSocket"]["port"] == 2222
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert "nvidia.com/gpu" not in launcher.get("resources", {}).get("limits", {})
    for container in (launcher, worker):
        assert container["image"] == "registry.example/mlpath-gpu:1"
        env = {v["name"]: v["value"] for v in container["env"]}
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.test:5000"
        assert {"name": "shared", "mountPath": "/shared"} in container["volumeMounts"]


def test_pytorchjob_rendered_for_four_pods_and_for_one():
    manifest = render_manifest("ddp", ARGS, workers=4, gpus_per_worker=8, image="img:1", name="mlpath-ddp-test",
                               claim="team-rwx")
    assert (manifest["apiVersion"], manifest["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    assert _replicas(manifest) == {"Master": 1, "Worker": 3}
    assert manifest["spec"]["nprocPerNode"] == "8"
    for container in _containers(manifest).values():
        assert container["name"] == "pytorch"  # the training operator finds the container by this name
        command = container["command"]
        assert command[0] == "torchrun"
        # the operator's variables, expanded by Kubernetes when the container starts
        for flag, variable in [("--nnodes", "PET_NNODES"), ("--nproc-per-node", "PET_NPROC_PER_NODE"),
                               ("--node-rank", "PET_NODE_RANK"), ("--master-addr", "MASTER_ADDR"),
                               ("--master-port", "MASTER_PORT")]:
            assert command[command.index(flag) + 1] == f"$({variable})"
        assert command[command.index("-m"):] == ARGS.argv("ddp")
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 8
    for replica in manifest["spec"]["pytorchReplicaSpecs"].values():
        claims = [v["persistentVolumeClaim"]["claimName"] for v in replica["template"]["spec"]["volumes"]
                  if "persistentVolumeClaim" in v]
        assert claims == ["team-rwx"]

    single = render_manifest("ddp", ARGS, workers=1, gpus_per_worker=0, image="img:1", name="mlpath-ddp-one")
    assert _replicas(single) == {"Master": 1}
    assert single["spec"]["nprocPerNode"] == "1"
    assert "nvidia.com/gpu" not in _containers(single)["Master"]["resources"].get("limits", {})  # CPU pods


def _recording_python(tmp_path: Path) -> tuple[Path, Path]:
    """An interpreter that appends its arguments to a file, then runs the real one."""
    record = tmp_path / "argv.txt"
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done >> {shlex.quote(str(record))}\n'
                      f'echo ---- >> {shlex.quote(str(record))}\nexec {shlex.quote(sys.executable)} "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return python, record


def test_worker_command_is_what_the_local_launcher_runs(tmp_path, monkeypatch):
    """A real one-process DDP run of the local launcher, through a recording interpreter: the
    worker it starts gets exactly the arguments the manifests give the workers on the cluster."""
    from pipeline.training.distributed import launch_commands, train_distributed

    python, record = _recording_python(tmp_path)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(48, 12)).astype(np.float32), rng.integers(0, 3, size=48)
    run = train_distributed("ddp", X, y, processes=1, epochs=1, batch_size=16, lr=0.1, seed=3, hidden=(8,),
                            workdir=tmp_path / "run", timeout_s=120, python=str(python), log=lambda line: None)
    assert run.world_size == 1
    invocations = [chunk.strip().splitlines() for chunk in record.read_text().split("----\n") if chunk.strip()]
    worker = next(argv for argv in invocations if argv[:2] == ["-m", "pipeline.training.distributed"])

    args = TrainingArgs(data=str((tmp_path / "run" / "train.npz").resolve()), out=str(run.out.resolve()),
                        epochs=1, batch_size=16, lr=0.1, seed=3, hidden=(8,))
    assert worker == args.argv("ddp")
    pytorchjob = render_manifest("ddp", args, workers=2, gpus_per_worker=1, image="img", name="n")
    assert _containers(pytorchjob)["Master"]["command"][-len(worker):] == worker

    # Horovod: the local launcher passes the same arguments after `--engine horovod`
    local = launch_commands("horovod", worker[4:], processes=2, python="python")[0]
    mpijob = render_manifest("horovod", args, workers=2, gpus_per_worker=1, image="img", name="n")
    launcher = _containers(mpijob)["Launcher"]["command"]
    assert launcher[launcher.index("-m") - 1:] == local[local.index("--gloo") + 1:]


# --- submit_job against a stand-in kubectl -------------------------------------------------------

FAKE_KUBECTL = textwrap.dedent("""\
    #!/bin/sh
    # Records every call; answers as a cluster whose job ends with $FAKE_OUTCOME (Succeeded, Failed
    # or timeout).
    { for a in "$@"; do printf '%s\\n' "$a"; done; echo ----; } >> "$FAKE_DIR/calls.txt"
    case "$1" in
      apply)
        cat > "$FAKE_DIR/applied.yaml"
        echo "job created" ;;
      wait)
        if [ "$FAKE_OUTCOME" = timeout ]; then
          echo "error: timed out waiting for the condition" >&2; exit 1
        fi
        [ "$2" = "--for=condition=$FAKE_OUTCOME" ] && exit 0
        exec sleep 30 ;;
      get)
        echo "launcher: BackoffLimitExceeded" ;;
      logs)
        echo "[pod/job-launcher/launcher] RuntimeError: CUDA out of memory" ;;
      delete)
        echo "deleted" ;;
    esac
    """)


@pytest.fixture
def fake_kubectl(tmp_path, monkeypatch):
    """A `kubectl` on PATH that records its calls in tmp_path/calls.txt (arguments one per line,
    `----` after each call) and the applied manifest in tmp_path/applied.yaml."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DIR", str(tmp_path))
    monkeypatch.setenv(IMAGE_ENV, "registry.example/mlpath-gpu:1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")

    def calls() -> list[list[str]]:
        text = (tmp_path / "calls.txt").read_text()
        return [chunk.strip().splitlines() for chunk in text.split("----\n") if chunk.strip()]

    return calls


def test_submit_applies_the_rendered_manifest_and_waits(fake_kubectl, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_OUTCOME", "Succeeded")
    job = submit_job("horovod", ARGS, workers=2, gpus_per_worker=4, namespace="mlpath", timeout_s=30)
    applied = yaml.safe_load((tmp_path / "applied.yaml").read_text())
    expected = render_manifest("horovod", ARGS, workers=2, gpus_per_worker=4, image="registry.example/mlpath-gpu:1",
                               name=job.name, env={"MLFLOW_TRACKING_URI": "http://mlflow.example:5000",
                                                   "MLPATH_HOME": os.environ["MLPATH_HOME"]})
    assert applied == expected  # the rendered job, with the submitting process's servers
    assert job.resource == f"mpijobs.kubeflow.org/{job.name}" and job.namespace == "mlpath"
    calls = fake_kubectl()
    assert calls[0] == ["apply", "-f", "-", "-n", "mlpath"]
    # one wait per condition; the Failed one is stopped once Succeeded answers (maybe before it ran)
    expected = {c: ["wait", f"--for=condition={c}", job.resource, "-n", "mlpath", "--timeout=30s"]
                for c in ("Succeeded", "Failed")}
    waits = [call for call in calls if call[0] == "wait"]
    assert expected["Succeeded"] in waits and all(call in expected.values() for call in waits)
    assert not any(call[0] == "delete" for call in calls)


def test_a_failed_job_raises_with_the_reason_and_the_pods_logs(fake_kubectl, monkeypatch):
    monkeypatch.setenv("FAKE_OUTCOME", "Failed")
    started = time.monotonic()
    with pytest.raises(ClusterJobError) as failure:
        submit_job("ddp", ARGS, workers=2, timeout_s=30)
    assert time.monotonic() - started < 15  # the Failed condition ends the wait, not the timeout
    message = str(failure.value)
    assert "pytorchjobs.kubeflow.org/mlpath-ddp-" in message and "failed" in message
    assert "BackoffLimitExceeded" in message and "CUDA out of memory" in message
    logs = next(call for call in fake_kubectl() if call[0] == "logs")
    assert logs[1:3] == ["-l", f"{JOB_LABEL}={message.split('pytorchjobs.kubeflow.org/')[1].split()[0]}"]


def test_a_job_past_its_timeout_is_deleted(fake_kubectl, monkeypatch):
    monkeypatch.setenv("FAKE_OUTCOME", "timeout")
    with pytest.raises(ClusterJobError, match="did not finish within 5 s; it was deleted"):
        submit_job("ddp", ARGS, workers=1, gpus_per_worker=1, timeout_s=5)
    deletes = [call for call in fake_kubectl() if call[0] == "delete"]
    assert len(deletes) == 1 and deletes[0][1].startswith("pytorchjobs.kubeflow.org/mlpath-ddp-")


def test_missing_kubectl_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no kubectl anywhere
    with pytest.raises(ClusterJobError, match="`kubectl` is not on PATH: install kubectl"):
        submit_job("horovod", ARGS, image="img:1")


def test_missing_image_is_a_clear_error(fake_kubectl, monkeypatch):
    monkeypatch.delenv(IMAGE_ENV)
    with pytest.raises(ClusterJobError, match=f"pass image= or set {IMAGE_ENV}"):
        submit_job("ddp", ARGS)


# --- the Prefect work pool -----------------------------------------------------------------------

def test_work_pool_is_a_valid_kubernetes_base_job_template():
    """Prefect's server accepts it (every placeholder declared), and rendered with its defaults the
    flow-run pod mounts the shared volume, runs as the submitting service account and tells
    pipeline.app.cluster the image and claim its jobs use."""
    from prefect.server.schemas.actions import WorkPoolCreate
    from prefect.utilities.templating import apply_values

    template = json.loads((K8S / "prefect-work-pool.json").read_text(encoding="utf-8"))
    assert {"job_configuration", "variables"} <= set(template)
    WorkPoolCreate(name="mlpath-kubernetes", type="kubernetes", base_job_template=template)
    defaults = {name: spec.get("default") for name, spec in template["variables"]["properties"].items()}
    config = apply_values(template["job_configuration"], defaults)
    job = config["job_manifest"]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "mlpath-flow-runner"
    rbac = list(yaml.safe_load_all((K8S / "rbac.yaml").read_text(encoding="utf-8")))
    assert {"kind": "ServiceAccount", "name": pod["serviceAccountName"]} in [
        {"kind": d["kind"], "name": d["metadata"]["name"]} for d in rbac if d["kind"] == "ServiceAccount"]
    claim = yaml.safe_load((K8S / "pvc.yaml").read_text(encoding="utf-8"))
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pod["volumes"] == [{"name": "shared", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}]
    container = pod["containers"][0]
    assert {"name": "shared", "mountPath": "/shared"} in container["volumeMounts"]
    env = {v["name"]: v["value"] for v in container["env"]}
    assert env == {"MLPATH_CLUSTER_IMAGE": defaults["image"], "MLPATH_CLUSTER_CLAIM": claim["metadata"]["name"]}
    assert config["env"]["MLPATH_HOME"].startswith("/shared/")  # the flow's state on the shared volume


def test_rbac_lets_the_flow_run_submit_and_watch_jobs():
    role = next(d for d in yaml.safe_load_all((K8S / "rbac.yaml").read_text(encoding="utf-8")) if d["kind"] == "Role")
    allowed = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    for resource in ("mpijobs", "pytorchjobs"):
        for verb in ("get", "list", "watch", "create", "patch", "delete"):  # apply, wait, delete
            assert ("kubeflow.org", resource, verb) in allowed
    assert {("", "pods", "list"), ("", "pods/log", "get")} <= allowed  # logs -l on failure


# --- infra/Dockerfile.gpu -----------------------------------------------------------------------

def test_gpu_dockerfile_stages_and_user():
    from test_infra import _instructions

    instructions = _instructions(DOCKERFILE_GPU)
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert froms[0].startswith("registry.k8s.io/kubectl:v")
    assert froms[1] == "nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS build"
    assert froms[2] == "nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU} AS runtime"
    args = dict(a.split("=", 1) for k, a in instructions if k == "ARG" and "=" in a)
    # PyPI's torch 2.13.0 wheel is the CUDA 13.0 build: the toolkit Horovod compiles against must match
    assert args["CUDA_VERSION"].startswith("13.0.")
    runs = [a for k, a in instructions if k == "RUN"]
    torch_pin = next(a for a in runs if "torch==" in a).split("torch==")[1].split()[0]
    assert f"torch=={torch_pin}" in (REPO / "constraints.txt").read_text(encoding="utf-8").split()
    build = next(a for a in runs if "build-horovod.sh" in a)
    assert "HOROVOD_GPU_OPERATIONS=NCCL" in build
    runtime = [(k, a) for k, a in instructions[instructions.index(("FROM", froms[2])):]]
    users = [a for k, a in runtime if k == "USER"]
    assert users == ["10001:10001"]
    assert [k for k, _ in runtime].index("USER") > max(i for i, (k, _) in enumerate(runtime) if k == "RUN")
    assert json.loads(dict(runtime)["ENTRYPOINT"]) == ["tini", "-g", "--"]
    # the MPIJob's sshAuthMountPath and ssh port are the image's
    mpijob = yaml.safe_load((K8S / "mpijob-horovod.yaml").read_text(encoding="utf-8"))
    ssh_setup = next(a for k, a in runtime if k == "RUN" and "sshd_config" in a)
    assert f"HostKey {mpijob['spec']['sshAuthMountPath']}/id_rsa" in ssh_setup and "Port 2222" in ssh_setup


def test_gpu_docker_build_context_holds_what_it_copies():
    from test_infra import _dockerignored, _instructions

    ignore = DOCKERFILE_GPU.with_name(DOCKERFILE_GPU.name + ".dockerignore")
    patterns = [line.strip() for line in ignore.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")]
    for keyword, args in _instructions(DOCKERFILE_GPU):
        if keyword != "COPY" or "--from=" in args:
            continue
        for source in [a for a in shlex.split(args) if not a.startswith("--")][:-1]:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            assert not _dockerignored(source, patterns), f"COPY {source}: excluded by {ignore.name}"
    for heavy in (".venv", ".git", ".mlpath", "docs", "infra/grafana"):
        assert _dockerignored(heavy, patterns), f"{heavy} would be sent to the builder"


def test_kubernetes_deployments_target_the_pool_and_the_image_folder():
    """infra/k8s/prefect.yaml: both engines on the pool the README creates, run from the image's
    /app; their parameters are valid for the unit once its flow exists."""
    from pipeline.units import get_unit

    project = yaml.safe_load((K8S / "prefect.yaml").read_text(encoding="utf-8"))
    readme = (K8S / "README.md").read_text(encoding="utf-8")
    assert project["pull"] == [{"prefect.deployments.steps.set_working_directory": {"directory": "/app"}}]
    deployments = {d["name"]: d for d in project["deployments"]}
    assert set(deployments) == {"unit15-horovod", "unit15-ddp"}
    unit = get_unit("unit15")
    for engine in ("horovod", "ddp"):
        deployment = deployments[f"unit15-{engine}"]
        pool = deployment["work_pool"]
        assert f"prefect work-pool create {pool['name']} --type kubernetes" in readme
        assert pool["job_variables"]["image"] == "{{ $MLPATH_CLUSTER_IMAGE }}"
        params = deployment["parameters"]["params"]
        assert (params["launcher"], params["engine"]) == ("kubernetes", engine)
        if unit.flow is None:
            continue  # planned: no flow and no parameters to check yet
        assert deployment["entrypoint"] == unit.flow
        unit.params(**params)


# --- docs/distributed-training.md: the diffs are real code -----------------------------------------

DOC = REPO / "docs" / "distributed-training.md"


def _doc_source(diff: str | None = None) -> str:
    """The page's single-process script, or that script with its ``diff`` ("horovod" or "ddp")
    applied; the diff must be against exactly that script."""
    import re

    text = DOC.read_text(encoding="utf-8")
    base = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    if diff is None:
        return base
    lines = re.findall(r"```diff\n(.*?)```", text, re.S)[["horovod", "ddp"].index(diff)].splitlines()
    old = [line[1:] for line in lines if line[:1] in (" ", "-")]
    new = [line[1:] for line in lines if line[:1] in (" ", "+")]
    assert "\n".join(old) + "\n" == base, f"the {diff} diff is not against the page's script"
    return "\n".join(new) + "\n"


def _import(tmp_path: Path, name: str, source: str):
    import importlib.util

    path = tmp_path / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pages_scripts_train_in_one_process(tmp_path, monkeypatch):
    """The single-process script and its DDP and Horovod versions run (one rank each) and write
    weights our MLP loads; with one rank DDP and Horovod take identical steps."""
    from safetensors.torch import load_file

    from pipeline.models.mlp import MLP
    from pipeline.serving.load import free_port

    rng = np.random.default_rng(0)
    data = tmp_path / "train.npz"
    np.savez(data, X_train=rng.normal(size=(48, 12)).astype(np.float32), y_train=rng.integers(0, 3, 48))
    monkeypatch.setenv("LOCAL_RANK", "0")  # what torchrun would set for a single process
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    sources = {"single": _doc_source(), "ddp": _doc_source("ddp"), "horovod": _doc_source("horovod")}
    try:
        import horovod.torch  # noqa: F401
    except ImportError:  # built by `make horovod`; without it the Horovod version is only compiled
        compile(sources.pop("horovod"), "doc_horovod.py", "exec")
    weights = {}
    for engine, source in sources.items():
        out = tmp_path / engine
        out.mkdir()
        script = _import(tmp_path, f"doc_{engine}", source)
        script.train(str(data), str(out), epochs=2, batch_size=16, lr=0.1, seed=0, hidden=(8,))
        weights[engine] = load_file(str(out / "weights.safetensors"))
        MLP(12, 3, (8,)).load_state_dict(weights[engine], strict=True)
    if "horovod" in weights:
        for name, tensor in weights["ddp"].items():
            assert np.allclose(tensor.numpy(), weights["horovod"][name].numpy(), atol=1e-6), name
