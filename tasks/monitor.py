"""Monitor: drift of a recent batch against the champion's training reference, and retraining on
the batch past a threshold.

The reference is rebuilt from the champion model version's own run parameters (seed, test_size,
data_files, append_files, ...), read from MLflow; with no champion yet, from the unit's defaults.
A recent batch is labelled: it is validated by the dataset's suite as the retraining run will see
it (the champion's data with the batch appended), kept under ``MLPATH_HOME/batches/`` when it
passes and quarantined (``MLPATH_HOME/quarantine/``) when it fails. Retraining runs the champion's
parameters with the kept batch added to ``append_files``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.deployments import run_deployment

from pipeline.drift import FEATURES, DriftReport, drift_report
from pipeline.params import UnitParams
from pipeline.units import get_unit
from pipeline.validation import DataValidationError, ValidationReport
from tasks import run_logger, table_rows

DRIFT_TAG = "drift-triggered"


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 8], task_run_name="read-batch")
def read_batch(path: str) -> pd.DataFrame:
    return pd.read_csv(path)


def params_from_run(unit: str, run_params: dict[str, str]) -> UnitParams:
    """The unit's parameter model from an MLflow run's string-valued params (``registry._param_value``
    wrote dicts and lists as JSON, everything else with ``str``); fields the run lacks keep defaults."""
    model = get_unit(unit).params
    values: dict[str, Any] = {}
    for name in model.model_fields:
        if name not in run_params:
            continue
        raw = run_params[name]
        try:
            values[name] = None if raw == "None" else json.loads(raw)
        except json.JSONDecodeError:
            values[name] = raw
    return model.model_validate(values)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 8], task_run_name="champion-params-{unit}")
def champion_params(unit: str) -> tuple[UnitParams, str]:
    """The parameters the unit's champion was trained with, and where they came from ("champion v3"
    or "defaults: no champion yet")."""
    from pipeline.registry import client, current_champion

    mlflow_client = client()
    model_name = get_unit(unit).model_name
    champion = current_champion(mlflow_client, model_name)  # a registry error raises (and retries)
    version = None if champion is None else mlflow_client.get_model_version(model_name, champion)
    if version is None:
        run_logger().info("%s has no champion: the drift reference uses the default parameters", unit)
        return get_unit(unit).params(), "defaults: no champion yet"
    params = params_from_run(unit, mlflow_client.get_run(version.run_id).data.params)
    run_logger().info("%s: the drift reference uses champion v%s's parameters %s", unit, version.version,
                      params.model_dump(mode="json"))
    return params, f"champion v{version.version}"


def with_batch(params: UnitParams, catalog_file: str, batch_path: str) -> UnitParams:
    """``params`` with ``batch_path``'s rows appended to ``catalog_file`` (after any earlier batches)."""
    files = {key: list(paths) for key, paths in params.append_files.items()}
    if batch_path not in files.get(catalog_file, []):
        files.setdefault(catalog_file, []).append(batch_path)
    return params.model_copy(update={"append_files": files})


@task(cache_policy=NO_CACHE, task_run_name="validate-batch-{dataset}")
def validate_batch(dataset: str, params: UnitParams, catalog_file: str, batch_path: str) -> dict:
    """Validate the batch as the retraining run will: ``params``' data with the batch appended.

    Returns ``{"passed", "summary", "failures", "quarantine_path"}``; a failing batch (and the data
    it was checked in) is quarantined, never raised: the monitor reports it and triggers nothing.
    """
    from pipeline.data import load_dataset
    from pipeline.validation import validate_frame, validation_frame

    files = {key.split("/", 1)[1]: path for key, path in params.data_files.items()
             if key.split("/", 1)[0] == dataset}
    append = {key.split("/", 1)[1]: paths for key, paths in with_batch(params, catalog_file, batch_path)
              .append_files.items() if key.split("/", 1)[0] == dataset}
    try:  # every row, as the retraining run validates before it takes its quick subsample
        data = load_dataset(dataset, params.profile, seed=params.seed, files=files or None, append=append,
                            subsample=False)
    except DataValidationError as error:  # a batch that cannot even be read (DataLoadError)
        run_logger().warning("%s: the batch cannot be loaded; nothing retrains.\n%s", dataset, error)
        return {"passed": False, "summary": str(error), "failures": error.report.failures,
                "quarantine_path": None}
    label = f"batch-{Path(batch_path).stem}"
    try:
        report: ValidationReport = validate_frame(validation_frame(dataset, data.splits), dataset,
                                                  batch_label=label, extra_rows=data.appended_rows)
    except DataValidationError as error:
        report = error.report
        kept = None
        if report.quarantine_path is not None:
            kept = report.quarantine_path.with_name(f"{report.quarantine_path.stem}.batch{Path(batch_path).suffix}")
            shutil.copyfile(batch_path, kept)
        run_logger().warning("%s: the batch fails validation, quarantined in %s; nothing retrains.\n%s",
                             dataset, kept, report.summary())
        create_markdown_artifact(f"## {dataset} batch quarantined\n\n`{batch_path}` fails the `{dataset}` "
                                 f"suite; it is kept as `{kept}` and triggers no retraining.\n\n```\n"
                                 f"{report.summary()}\n```", key=f"drift-{dataset}-quarantine",
                                 description=f"{dataset}: a batch that failed validation")
        return {"passed": False, "summary": report.summary(), "failures": report.failures,
                "quarantine_path": None if kept is None else str(kept)}
    run_logger().info("%s: the batch passes validation (%d expectations, %d rows appended)", dataset,
                      report.n_expectations, data.appended_rows)
    return {"passed": True, "summary": report.summary(), "failures": [], "quarantine_path": None}


@task(cache_policy=NO_CACHE, task_run_name="keep-batch-{dataset}")
def keep_batch(dataset: str, batch_path: str) -> str:
    """Copy a validated batch to ``MLPATH_HOME/batches/<dataset>/<sha256 prefix>-<name>``, where
    retraining runs (and later drift references) read it even after the original is gone."""
    from pipeline.settings import mlpath_home

    source = Path(batch_path)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    target = mlpath_home() / "batches" / dataset / f"{digest}-{source.name}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return str(target)


@task(cache_policy=NO_CACHE, task_run_name="drift-{dataset}")
def measure_drift(dataset: str, reference: pd.DataFrame, recent: pd.DataFrame, threshold: float,
                  source: str, basis: str = "") -> DriftReport:
    """Per-feature PSI (and KS for numbers), published as a table and a markdown summary artifact."""
    report = drift_report(reference, recent, FEATURES[dataset], threshold)
    create_table_artifact(table_rows(report.table), key=f"drift-{dataset}",
                          description=f"{dataset}: drift per feature")
    verdict = (f"**drift** in {', '.join(report.drifted_features)}" if report.drifted else "no drift")
    basis = f", parameters of {basis}" if basis else ""
    create_markdown_artifact(
        f"## Drift of {dataset}: {verdict}\n\nRecent batch: {source} ({report.recent_rows} rows) against "
        f"the training reference ({report.reference_rows} rows{basis}); PSI over {report.bins} quantile "
        f"bins, threshold {threshold}, largest {report.max_psi:.3f}.\n\n"
        + report.table.to_markdown(index=False, floatfmt=".4f"),
        key=f"drift-{dataset}-summary", description=f"{dataset}: drift verdict")
    run_logger().info("%s drift: max PSI %.4f (threshold %s) -> %s", dataset, report.max_psi, threshold, verdict)
    return report


@task(cache_policy=NO_CACHE, task_run_name="retrain-{deployment}")
def trigger_retraining(deployment: str, reason: str, parameters: dict | None = None) -> str:
    """Start a run of the retraining deployment without waiting for it; returns its flow-run id.

    ``parameters`` replace the deployment's defaults (the monitor passes ``{"params": ...}``: the
    champion's parameters with the new batch appended)."""
    run = run_deployment(name=deployment, parameters=parameters, timeout=0, tags=[DRIFT_TAG])
    run_logger().info("started %s as flow run %s: %s", deployment, run.name, reason)
    return str(run.id)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 8], task_run_name="service-drift")
def read_service_drift(url: str) -> dict:
    """The sentiment service's ``GET <url>/monitoring/drift`` (its rolling window against the served
    model's reference statistics), published as a markdown artifact."""
    import httpx

    response = httpx.get(f"{url.rstrip('/')}/monitoring/drift", timeout=30)
    response.raise_for_status()
    report = response.json()
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in report.get("metrics", {}).items() if isinstance(v, float))
    create_markdown_artifact(f"## Service drift at {url}: {report['status']}\n\n{report['window']} texts in the "
                             f"window; model {report.get('model')}.\n\n| statistic | value |\n|---|---|\n{rows}\n\n"
                             + "\n".join(f"- {r}" for r in report.get("reasons", [])),
                             key="drift-sentiment-service", description="sentiment service: drift report")
    run_logger().info("service drift at %s: %s, drifted %s", url, report["status"], report.get("drifted"))
    return report
