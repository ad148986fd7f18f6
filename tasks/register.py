"""Register: the MLflow run and model version (champion/challenger), and the Prefect artifacts.

The MLflow run is named ``<unit>-<profile>-<flow run name>`` and tagged with the Prefect flow run
(id, name, deployment, and its UI URL when a Prefect server is configured), so each leads to the
other; ``pipeline.registry`` gets these as plain strings and never imports Prefect.

A registry error other than "no champion yet" fails the registration without moving an alias
(``pipeline.registry``); the task retries twice, a few seconds apart, each try a new MLflow run and
version (a failed try's version stays tagged ``mlpath.incomplete``). Promotion holds a file lock
under MLPATH_HOME; when the tracking store is a server (shared by machines that do not share
MLPATH_HOME) the task also holds the Prefect global concurrency limit ``mlpath-register-<unit>``,
which the operator creates with a limit of 1 (``prefect gcl create mlpath-register-unit01 --limit
1``); without it that step is a no-op.
"""

from __future__ import annotations

import base64
import re
from contextlib import nullcontext

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from pipeline import settings
from pipeline.registry import (
    PREFECT_FLOW_RUN_ID,
    PREFECT_FLOW_RUN_NAME,
    PREFECT_FLOW_RUN_URL,
    Registration,
    log_unit_run,
)
from pipeline.report import UnitReport
from tasks import run_logger, table_rows


def _artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def prefect_context(report: UnitReport) -> tuple[str | None, dict[str, str]]:
    """The MLflow run name and tags from the Prefect flow run this runs in; (None, {}) outside one.

    The flow run's UI URL is tagged only when a Prefect server is configured (``PREFECT_UI_URL``,
    derived from ``PREFECT_API_URL``): an ephemeral API is gone once the run ends.
    """
    from prefect.runtime import deployment, flow_run
    from prefect.settings import PREFECT_UI_URL

    run_id = flow_run.get_id()
    if not run_id:
        return None, {}
    name = flow_run.get_name() or run_id
    tags = {PREFECT_FLOW_RUN_ID: str(run_id), PREFECT_FLOW_RUN_NAME: name,
            "prefect.flow_name": flow_run.get_flow_name() or ""}
    try:  # the deployment's name is read from the API; the run is logged without it if that fails
        if deployment.get_name():
            tags["prefect.deployment"] = f"{flow_run.get_flow_name()}/{deployment.get_name()}"
    except Exception:  # noqa: BLE001 - a tag is not worth failing the registration for
        pass
    ui_url = PREFECT_UI_URL.value()
    if ui_url:
        tags[PREFECT_FLOW_RUN_URL] = f"{ui_url.rstrip('/')}/flow-runs/flow-run/{run_id}"
    return f"{report.unit}-{report.params.get('profile', '')}-{name}", tags


def publish_artifacts(report: UnitReport, registration: Registration) -> None:
    """A markdown summary, the metrics and the report's tables as tables, the figures (and GIF files)
    as images."""
    unit = report.unit
    run = (f"[{registration.run_name}]({registration.run_url})" if registration.run_url
           else f"`{registration.run_name}`")
    header = (f"MLflow run {run} in experiment `{registration.experiment}`"
              + (f"; model `{registration.model_name}` v{registration.version} @{registration.alias}"
                 + (f": {registration.reason}" if registration.reason else "")
                 if registration.version else ""))
    create_markdown_artifact(header + "\n\n" + report.summary_markdown(),
                             key=_artifact_key(unit, "summary"), description=f"{unit} run summary")
    create_table_artifact(table_rows([{"metric": k, "value": v} for k, v in sorted(report.metrics.items())]),
                          key=_artifact_key(unit, "metrics"), description=f"{unit} metrics")
    for name, table in report.tables.items():
        create_table_artifact(table_rows(table), key=_artifact_key(unit, "table", name),
                              description=f"{unit}: {name}")
    if report.figures:
        images = [f"### {name}\n\n![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
                  + (f"\n\n{report.captions[name]}" if report.captions.get(name) else "")
                  for name, png in report.figures.items()]
        images += [f"### {name}\n\n![{name}](data:image/gif;base64,{base64.b64encode(data).decode()})"
                   for name, data in report.files.items() if name.endswith(".gif")]
        create_markdown_artifact("\n\n".join(images), key=_artifact_key(unit, "plots"),
                                 description=f"{unit} figures")
    for name in report.documents:
        create_markdown_artifact(inline_figures(report, name), key=_artifact_key(unit, "report", name),
                                 description=f"{unit}: {name}")


def inline_figures(report: UnitReport, name: str) -> str:
    """Document ``name`` with its figures inlined as data URIs: a Prefect artifact has no files."""
    from pipeline.report import FIGURE_LINK

    def inline(match) -> str:
        png = report.figures[match.group(1)]
        return match.group(0).replace(f"(figures/{match.group(1)}.png)",
                                      f"(data:image/png;base64,{base64.b64encode(png).decode()})")

    return FIGURE_LINK.sub(inline, report.documents[name])


def shared_store_limit(unit: str):
    """The Prefect global concurrency limit ``mlpath-register-<unit>`` when the tracking store is a
    server; nothing for a local one, where ``pipeline.registry.registry_lock`` serializes promotion."""
    if not settings.tracking_uri().startswith(("http://", "https://")):
        return nullcontext()
    from prefect.concurrency.sync import concurrency

    return concurrency(f"mlpath-register-{unit}", occupy=1, strict=False)


@task(cache_policy=NO_CACHE, task_run_name="register-{report.unit}", retries=2, retry_delay_seconds=5)
def register(report: UnitReport) -> dict:
    """Log the run, register the model, publish artifacts; returns the unit's outcome."""
    run_name, tags = prefect_context(report)
    with shared_store_limit(report.unit):
        registration = log_unit_run(report, run_name=run_name, tags=tags)
    publish_artifacts(report, registration)
    run_logger().info("%s: %s %.4f → %s; MLflow run %s", report.unit, report.primary_metric,
                      report.primary_value, registration.describe(), registration.run_name)
    return {"unit": report.unit, "status": "succeeded", "primary_metric": report.primary_metric,
            "value": report.primary_value, **registration.as_dict()}
