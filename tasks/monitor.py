"""Monitor: drift of a recent batch against the training reference, and retraining past a threshold."""

from __future__ import annotations

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.deployments import run_deployment

from pipeline.drift import FEATURES, DriftReport, drift_report
from tasks import run_logger, table_rows


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 8], task_run_name="read-batch")
def read_batch(path: str) -> pd.DataFrame:
    return pd.read_csv(path)


@task(cache_policy=NO_CACHE, task_run_name="drift-{dataset}")
def measure_drift(dataset: str, reference: pd.DataFrame, recent: pd.DataFrame, threshold: float,
                  source: str) -> DriftReport:
    """Per-feature PSI (and KS for numbers), published as a table and a markdown summary artifact."""
    report = drift_report(reference, recent, FEATURES[dataset], threshold)
    create_table_artifact(table_rows(report.table), key=f"drift-{dataset}",
                          description=f"{dataset}: drift per feature")
    verdict = (f"**drift** in {', '.join(report.drifted_features)}" if report.drifted else "no drift")
    create_markdown_artifact(
        f"## Drift of {dataset}: {verdict}\n\nRecent batch: {source} ({report.recent_rows} rows) against "
        f"the training reference ({report.reference_rows} rows); PSI over {report.bins} quantile bins, "
        f"threshold {threshold}, largest {report.max_psi:.3f}.\n\n"
        + report.table.to_markdown(index=False, floatfmt=".4f"),
        key=f"drift-{dataset}-summary", description=f"{dataset}: drift verdict")
    run_logger().info("%s drift: max PSI %.4f (threshold %s) -> %s", dataset, report.max_psi, threshold, verdict)
    return report


@task(cache_policy=NO_CACHE, task_run_name="retrain-{deployment}")
def trigger_retraining(deployment: str, reason: str) -> str:
    """Start a run of the retraining deployment without waiting for it; returns its flow-run id."""
    run = run_deployment(name=deployment, timeout=0, tags=["drift-triggered"])
    run_logger().info("started %s as flow run %s: %s", deployment, run.name, reason)
    return str(run.id)
