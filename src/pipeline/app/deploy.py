"""Prefect deployments, generated from the unit specs, applied to a Prefect server.

``render_prefect_yaml`` writes the deployments from the specs (``pipeline.units``): every built
unit's retraining deployment ``retrain-<unit>`` on its ``schedule``, the whole path (on threads,
and on Dask as ``full-dask``: the task runner is each deployment's ``MLPATH_TASK_RUNNER``), and a drift
monitor for every spec with a ``monitor``, all on the process work pool ``mlpath-process``, each
with a description from its spec (title, schedule and why). The committed
``deployments/prefect.yaml`` is that text (``make deployments`` rewrites it; a test fails when it is
stale), so a reader sees what gets applied. ``apply_deployments`` creates the pool when it is
missing and runs ``prefect deploy --all`` from the repository root on the text rendered now, so a
unit whose spec was just added or changed is deployed as declared. Prefect is imported only inside
the functions.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from pipeline import settings
from pipeline.units import UnitSpec, all_units, get_unit

WORK_POOL = "mlpath-process"
PREFECT_FILE = Path("deployments") / "prefect.yaml"
RETRAINING_TAG = "retraining"


class DeploymentError(RuntimeError):
    """The deployments could not be applied (no server, bad prefect.yaml, a flow that fails to load)."""


def project_dir() -> Path:
    """The repository root holding ``deployments/prefect.yaml`` (deployments need a source checkout)."""
    root = Path(__file__).resolve().parents[3]
    if not (root / PREFECT_FILE).is_file():
        raise DeploymentError(f"{PREFECT_FILE} not found under {root}: deployments run from a source "
                              "checkout of mlpath (pip install -e .)")
    return root


_HEADER = """\
# mlpath deployments: every unit flow, the whole path and the drift monitors, on one process work pool.
#
# GENERATED from the unit specs (src/pipeline/units/) by `make deployments`; do not edit by hand.
# A unit's schedule is its spec's `schedule`, its drift monitor the spec's `monitor`; change the
# spec and run `make deployments` (tests/test_units.py fails while this file is stale).
#
# Apply with `mlpath deploy` (or `make deploy`; `mlpath ui` applies it too). That creates the work pool
# if it is missing and runs, from the repository root,
#     prefect --no-prompt deploy --all --prefect-file $MLPATH_HOME/deployments/prefect.yaml
# where that file is this text, rendered from the specs at that moment,
# against PREFECT_API_URL. Runs execute on a worker for the pool:
#     prefect worker start --pool mlpath-process
#
# Parameters default to the full profile; a run from the UI or `prefect deployment run` can change
# them (the form is each unit's typed parameters). Schedules are cron strings in UTC, fields
# "minute hour day-of-month month day-of-week": "0 2 * * 1" is Mondays at 02:00; `active: false`
# keeps a schedule but pauses it. The UI can pause or edit one too (Deployments -> the deployment ->
# Schedules) until the deployments are applied again, which `mlpath ui` does each time it starts
# (`mlpath ui --no-deploy` keeps the UI's edits). A scheduled run is an ordinary run: its model
# becomes @champion only if it beats the current champion (pipeline.registry.promote_if_better),
# else it is registered as @challenger.

name: mlpath
prefect-version: {prefect_version}

# Runs start in the folder the deployments were applied from (the repository root), so a run sees
# the same code and relative paths (the default MLPATH_HOME, ./.mlpath) as `mlpath run` there.
# The build step records that folder when the file is applied.
build:
  - prefect.deployments.steps.run_shell_script:
      id: project
      script: pwd
      stream_output: false

push: null

pull:
  - prefect.deployments.steps.set_working_directory:
      directory: "{{{{ project.stdout }}}}"

definitions:
  work_pool: &pool
    name: {work_pool}
    work_queue_name: default
  # A unit's retraining deployment: full profile, one run at a time (champion promotion reads then
  # sets the alias, so two runs of one unit must not finish together).
  # Where a run's independent tasks go is a setting (MLPATH_TASK_RUNNER: threads, dask or
  # sequential), set per deployment in its job variables; "dask" uses the scheduler at the
  # worker's MLPATH_DASK_ADDRESS (infra/compose.yaml sets it), else a local cluster per run.
  threads: &threads {{env: {{MLPATH_TASK_RUNNER: threads}}}}
  dask: &dask {{env: {{MLPATH_TASK_RUNNER: dask}}}}
  unit: &unit
    tags: [mlpath, {retraining_tag}]
    work_pool: *pool
    job_variables: *threads
    concurrency_limit: 1
    parameters: {{params: {{profile: full}}}}

deployments:
"""
PREFECT_VERSION = "3.9.1"


def _schedule(cron: str, active: bool = True) -> str:
    return f"[{{cron: {json.dumps(cron)}, timezone: UTC{'' if active else ', active: false'}}}]"


_WEEKDAYS = ("Sundays", "Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays")


def describe_cron(cron: str) -> str:
    """A cron string in words where it is a daily or weekly time ("Mondays at 03:00 UTC"), else
    the cron string itself."""
    minute, hour, day, month, weekday = cron.split()
    if minute.isdigit() and hour.isdigit() and day == month == "*":
        at = f"at {int(hour):02d}:{int(minute):02d} UTC"
        if weekday == "*":
            return f"daily {at}"
        if weekday.isdigit() and int(weekday) <= 7:
            return f"{_WEEKDAYS[int(weekday) % 7]} {at}"
    return f'on cron "{cron}" (UTC)'


def retraining_name(unit_id: str) -> str:
    """A unit's retraining deployment: ``retrain-<unit>`` (the flow's name comes before the slash)."""
    return f"retrain-{unit_id}"


def unit_description(unit: UnitSpec) -> str:
    """The retraining deployment's description: the unit, when it retrains and why then."""
    text = f"Unit {unit.number}: {unit.title}. Retrains on the full profile "
    if unit.schedule is None:
        text += "when run (no schedule)"
    else:
        text += describe_cron(unit.schedule.cron) + ("" if unit.schedule.active else " (paused)")
        if unit.schedule.why:
            text += f": {unit.schedule.why}"
    return text + ". A new model becomes @champion only if it beats the current one, else @challenger."


def monitor_description(unit: UnitSpec) -> str:
    monitor = unit.monitor
    return (f"Drift monitor for {unit.id}, {describe_cron(monitor.cron)}: compares a recent {monitor.dataset} "
            f"batch with the unit's training reference and, past PSI {monitor.threshold}, runs its retraining "
            f"deployment `{retraining_name(unit.id)}`.")


def path_description(runner: str) -> str:
    """The whole path's deployment on ``runner`` (threads or dask), in words."""
    where = ("their tasks on threads of the run's process" if runner == "threads" else
             "their tasks on the Dask cluster at the worker's MLPATH_DASK_ADDRESS (else a local one)")
    return ("The whole path: every built unit on the full profile, units that share no state side by side, "
            f"{where}. No schedule: each unit's `retrain-<unit>` deployment retrains it on its own.")


def render_prefect_yaml(units: tuple[UnitSpec, ...] | None = None) -> str:
    """The deployments of ``units`` (default: every unit of the path) as prefect.yaml text."""
    units = all_units() if units is None else units
    built = [unit for unit in units if unit.implemented]
    lines = [_HEADER.format(prefect_version=PREFECT_VERSION, work_pool=WORK_POOL,
                            retraining_tag=RETRAINING_TAG).rstrip("\n")]
    lines.append('  # unit flows: "<flow-name>/retrain-<unit>", e.g. unit06-evaluation/retrain-unit06')
    for unit in built:
        lines += ["  - <<: *unit",
                  f"    name: {retraining_name(unit.id)}",
                  f"    entrypoint: {json.dumps(unit.flow)}",
                  f"    description: {json.dumps(unit_description(unit), ensure_ascii=False)}"]
        if unit.schedule is not None:
            lines.append(f"    schedules: {_schedule(unit.schedule.cron, unit.schedule.active)}")
    lines.append("")
    lines.append("  # every built unit (no schedule: the unit deployments retrain on their own)")
    for name, runner in (("full", "threads"), ("full-dask", "dask")):
        lines += [f"  - name: {name}",
                  '    entrypoint: "flows.learning_path:learning_path"',
                  f"    description: {json.dumps(path_description(runner))}",
                  "    tags: [mlpath]",
                  "    work_pool: *pool",
                  f"    job_variables: *{runner}",
                  "    concurrency_limit: 1",
                  "    parameters: {profile: full}"]
    for unit in built:
        if unit.monitor is None:
            continue
        monitor = unit.monitor
        lines += ["",
                  "  # drift-triggered retraining: compares a recent batch with the training reference and, past",
                  "  # the threshold, runs the unit's retraining deployment. Point recent_path at your serving window.",
                  f"  - name: {monitor.dataset}-{unit.id}",
                  '    entrypoint: "flows.monitoring:drift_monitor"',
                  f"    description: {json.dumps(monitor_description(unit), ensure_ascii=False)}",
                  "    tags: [mlpath, monitoring]",
                  "    work_pool: *pool",
                  f"    parameters: {{unit: {unit.id}, dataset: {monitor.dataset}, "
                  f"threshold: {monitor.threshold}}}",
                  f"    schedules: {_schedule(monitor.cron)}"]
    lines += _service_monitor_lines(built)
    return "\n".join(lines) + "\n"


def service_monitor_description(unit: UnitSpec) -> str:
    m = unit.service_monitor
    return (f"Drift monitor of {unit.id}'s service, {describe_cron(m.cron)}: reads {m.url}/monitoring/drift and, "
            f"past PSI {m.psi_threshold} or a {m.coverage_drop} drop in vocabulary coverage, runs {m.retrains}'s "
            f"retraining deployment `{retraining_name(m.retrains)}`. Set url to where the service runs.")


def _service_monitor_lines(built: list[UnitSpec]) -> list[str]:
    """A ``flows.monitoring:serving_drift_monitor`` deployment per built unit with a ``service_monitor``
    whose retrained unit is built too."""
    lines, ids = [], {unit.id for unit in built}
    for unit in built:
        m = unit.service_monitor
        if m is None or m.retrains not in ids:
            continue
        lines += ["",
                  "  # a service's drift monitor: reads its /monitoring/drift; past the thresholds, runs the",
                  "  # retraining deployment of the unit that trains the served model",
                  f"  - name: service-{unit.id}-{m.retrains}",
                  '    entrypoint: "flows.monitoring:serving_drift_monitor"',
                  f"    description: {json.dumps(service_monitor_description(unit), ensure_ascii=False)}",
                  "    tags: [mlpath, monitoring]",
                  "    work_pool: *pool",
                  f"    parameters: {{url: {json.dumps(m.url)}, unit: {m.retrains}, psi_threshold: {m.psi_threshold}, "
                  f"coverage_drop: {m.coverage_drop}}}",
                  f"    schedules: {_schedule(m.cron)}"]
    return lines


def write_prefect_yaml(path: Path | None = None) -> Path:
    """Write ``render_prefect_yaml()`` to ``path`` (default: the checkout's deployments/prefect.yaml)."""
    path = path or project_dir() / PREFECT_FILE
    path.write_text(render_prefect_yaml(), encoding="utf-8")
    return path


def deployment_specs(prefect_text: str | None = None) -> list[dict[str, Any]]:
    """The ``deployments`` entries of prefect.yaml text (default: rendered from the specs now),
    anchors and merge keys resolved."""
    import yaml

    return yaml.safe_load(prefect_text if prefect_text is not None else render_prefect_yaml())["deployments"]


def _flow_name(entrypoint: str) -> str:
    module, _, name = entrypoint.partition(":")
    return getattr(importlib.import_module(module), name).name


def retraining_deployment(unit_id: str) -> str:
    """``"<flow-name>/<deployment-name>"`` of the unit's retraining deployment."""
    unit = get_unit(unit_id)
    for spec in deployment_specs():
        if spec["entrypoint"] == unit.flow and RETRAINING_TAG in spec.get("tags", []):
            return f"{_flow_name(unit.flow)}/{spec['name']}"
    raise DeploymentError(f"{unit_id} has no retraining deployment: its spec names no flow")


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
    """Create the work pool if missing and apply the deployments rendered from the specs (written to
    ``MLPATH_HOME/deployments/prefect.yaml``); returns ``flow/deployment`` names.

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
        rendered = settings.mlpath_home() / "deployments" / "prefect.yaml"
        rendered.parent.mkdir(parents=True, exist_ok=True)
        rendered.write_text(render_prefect_yaml(), encoding="utf-8")
        command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all",
                   "--prefect-file", str(rendered)]
        try:
            done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise DeploymentError(f"`prefect deploy` took longer than {timeout:.0f} s") from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()[-4000:]
            raise DeploymentError(f"`prefect deploy --all` failed (exit {done.returncode}):\n{output}")
        return _deployment_names(client)


if __name__ == "__main__":  # `make deployments`
    print(f"wrote {write_prefect_yaml()}")
