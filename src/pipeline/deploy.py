"""Prefect deployments: apply ``deployments/prefect.yaml`` to a Prefect server.

The YAML is the source: every unit's retraining deployment, the whole path and the drift monitor,
on the process work pool ``mlpath-process``. ``apply_deployments`` creates the pool when it is
missing and runs ``prefect deploy --all`` on the file from the repository root, so a user who
reads the YAML sees exactly what gets applied. Prefect is imported only inside the functions.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from pipeline import settings
from pipeline.units import get_unit

WORK_POOL = "mlpath-process"
PREFECT_FILE = Path("deployments") / "prefect.yaml"
RETRAINING_TAG = "retraining"


class DeploymentError(RuntimeError):
    """The deployments could not be applied (no server, bad prefect.yaml, a flow that fails to load)."""


def project_dir() -> Path:
    """The repository root holding ``deployments/prefect.yaml`` (deployments need a source checkout)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / PREFECT_FILE).is_file():
        raise DeploymentError(f"{PREFECT_FILE} not found under {root}: deployments run from a source "
                              "checkout of mlpath (pip install -e .)")
    return root


def deployment_specs(prefect_file: Path | None = None) -> list[dict[str, Any]]:
    """The ``deployments`` entries of prefect.yaml, anchors and merge keys resolved."""
    import yaml

    path = prefect_file or project_dir() / PREFECT_FILE
    return yaml.safe_load(path.read_text())["deployments"]


def _flow_name(entrypoint: str) -> str:
    module, _, name = entrypoint.partition(":")
    return getattr(importlib.import_module(module), name).name


def retraining_deployment(unit_id: str, prefect_file: Path | None = None) -> str:
    """``"<flow-name>/<deployment-name>"`` of the unit's retraining deployment in prefect.yaml."""
    unit = get_unit(unit_id)
    for spec in deployment_specs(prefect_file):
        if spec["entrypoint"] == unit.flow and RETRAINING_TAG in spec.get("tags", []):
            return f"{_flow_name(unit.flow)}/{spec['name']}"
    raise DeploymentError(f"{unit_id} has no deployment tagged {RETRAINING_TAG!r} in {PREFECT_FILE}; "
                          f"add one line for entrypoint {unit.flow!r}")


def _api_url(api_url: str | None) -> str:
    url = api_url or os.environ.get("PREFECT_API_URL")
    if not url:
        raise DeploymentError("no Prefect server to deploy to: start one with `mlpath ui` (which applies "
                              "the deployments itself) or set PREFECT_API_URL, e.g. http://127.0.0.1:4200/api")
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=10):
            pass
    except OSError as exc:
        raise DeploymentError(f"the Prefect server at {url} does not answer ({exc}); is it running?") from exc
    return url


def _ensure_work_pool(client, name: str) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    try:
        client.read_work_pool(name)
    except ObjectNotFound:
        try:
            client.create_work_pool(WorkPoolCreate(
                name=name, type=ProcessWorker.type,
                base_job_template=ProcessWorker.get_default_base_job_template()))
        except ObjectAlreadyExists:  # a worker started beside us created it first
            pass


def _deployment_names(client) -> list[str]:
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName

    deployments = client.read_deployments(
        work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[WORK_POOL])))
    flows = {d.flow_id: client.read_flow(d.flow_id).name for d in deployments}
    return sorted(f"{flows[d.flow_id]}/{d.name}" for d in deployments)


def apply_deployments(api_url: str | None = None, timeout: float = 600) -> list[str]:
    """Create the work pool if missing and apply prefect.yaml; returns ``flow/deployment`` names.

    ``api_url`` defaults to ``$PREFECT_API_URL``. Raises DeploymentError with Prefect's output
    when ``prefect deploy`` fails.
    """
    settings.configure_environment()
    url = _api_url(api_url)
    root = project_dir()
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        _ensure_work_pool(client, WORK_POOL)
        env = {**os.environ, "PREFECT_API_URL": url, "PREFECT_HOME": os.environ["PREFECT_HOME"]}
        command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all",
                   "--prefect-file", str(PREFECT_FILE)]
        try:
            done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise DeploymentError(f"`prefect deploy` took longer than {timeout:.0f} s") from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()[-4000:]
            raise DeploymentError(f"`prefect deploy --all` failed (exit {done.returncode}):\n{output}")
        return _deployment_names(client)
