"""Register: the MLflow run and model version (champion/challenger), and the Prefect artifacts."""

from __future__ import annotations

import base64
import re

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from pipeline.registry import Registration, log_unit_run
from pipeline.report import UnitReport
from tasks import run_logger


def _artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def publish_artifacts(report: UnitReport, registration: Registration) -> None:
    """A markdown summary, the metrics as a table, and the figures embedded as images."""
    unit = report.unit
    header = (f"MLflow run `{registration.run_id}` in experiment `{registration.experiment}`"
              + (f"; model `{registration.model_name}` v{registration.version} "
                 f"@{registration.alias}" if registration.version else ""))
    create_markdown_artifact(header + "\n\n" + report.summary_markdown(),
                             key=_artifact_key(unit, "summary"), description=f"{unit} run summary")
    create_table_artifact([{"metric": k, "value": round(v, 6)} for k, v in sorted(report.metrics.items())],
                          key=_artifact_key(unit, "metrics"), description=f"{unit} metrics")
    if report.figures:
        images = [f"### {name}\n\n![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
                  for name, png in report.figures.items()]
        create_markdown_artifact("\n\n".join(images), key=_artifact_key(unit, "plots"),
                                 description=f"{unit} figures")


@task(cache_policy=NO_CACHE, task_run_name="register-{report.unit}")
def register(report: UnitReport) -> dict:
    """Log the run, register the model, publish artifacts; returns the unit's outcome."""
    registration = log_unit_run(report)
    publish_artifacts(report, registration)
    run_logger().info("%s: %s = %.4f -> %s", report.unit, report.primary_metric,
                          report.primary_value, registration.as_dict())
    return {"unit": report.unit, "status": "succeeded", "primary_metric": report.primary_metric,
            "value": report.primary_value, **registration.as_dict()}
