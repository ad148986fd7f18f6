"""Drift monitoring: a recent batch against the training reference; past the threshold, retrain.

The statistic is ``pipeline.drift`` (PSI per feature). Retraining is the unit's deployment in
``deployments/prefect.yaml``, started with ``run_deployment`` and left to run on a worker; its model
becomes champion only if it beats the current one, like any scheduled retraining.
"""

from __future__ import annotations

from prefect import flow

from pipeline.app.deploy import retraining_deployment
from pipeline.drift import reference_split
from pipeline.params import UnitParams
from pipeline.units import get_unit
from tasks.ingest import ingest
from tasks.monitor import measure_drift, read_batch, trigger_retraining


@flow(name="drift-monitor", log_prints=True)
def drift_monitor(unit: str, dataset: str | None = None, recent_path: str | None = None,
                  threshold: float | None = None) -> dict:
    """Compare ``recent_path`` (a CSV; default: the held-out rows) with ``dataset``'s training rows.

    ``dataset`` and ``threshold`` default to the unit spec's ``monitor``. Past ``threshold`` on any
    feature, start ``unit``'s retraining deployment. Returns the drift report with ``triggered`` and
    ``retraining_run_id``.
    """
    deployment = retraining_deployment(unit)  # fails before any work if the unit has none
    monitor = get_unit(unit).monitor
    if dataset is None or threshold is None:
        if monitor is None:
            raise ValueError(f"{unit}'s spec declares no drift monitor: pass dataset and threshold")
        dataset = dataset or monitor.dataset
        threshold = monitor.threshold if threshold is None else threshold
    defaults = UnitParams()
    data = ingest(dataset, "full", defaults.seed)
    reference, held_out = reference_split(dataset, data.splits, defaults.test_size, defaults.seed)
    recent = read_batch(recent_path) if recent_path else held_out
    source = recent_path or "the held-out rows"
    report = measure_drift(dataset, reference, recent, threshold, source)
    run_id = None
    if report.drifted:
        run_id = trigger_retraining(deployment, f"PSI {report.max_psi:.3f} > {threshold} in "
                                                f"{', '.join(report.drifted_features)}")
    return {"unit": unit, "dataset": dataset, "recent": source, "deployment": deployment,
            **report.as_dict(), "triggered": run_id is not None, "retraining_run_id": run_id}
