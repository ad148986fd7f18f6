"""Drift monitoring: a recent batch against the champion's training reference; past the threshold,
retrain with the batch.

The statistic is ``pipeline.drift`` (PSI per feature). The reference is the training rows of the
unit's champion, rebuilt from that model version's run parameters (defaults before any champion).
A recent batch is labelled: validated first by the dataset's suite as the retraining run will see
it (a failing batch is quarantined and triggers nothing), then, past the threshold, appended to the
training data of the unit's retraining deployment (``deployments/prefect.yaml``), which is started
with ``run_deployment`` on the champion's parameters plus ``append_files`` and left to run on a
worker. Its model becomes champion only if it beats the current one on the new holdout.

``serving_drift_monitor`` watches the sentiment service instead (Unit 13): it reads the service's
own drift report (its rolling window of served texts against the reference statistics saved when
the model was registered) and, past the thresholds, starts Unit 11's retraining deployment. There is
no labelled batch to append: the service sees no labels, so retraining reruns the fine-tuning.
"""

from __future__ import annotations

from prefect import flow

from pipeline.app.deploy import retraining_deployment
from pipeline.drift import LABELLED_FILES, reference_split
from pipeline.serving.monitoring import crossed
from pipeline.units import get_unit
from tasks.ingest import ingest
from tasks.monitor import (
    champion_params,
    keep_batch,
    measure_drift,
    read_batch,
    read_service_drift,
    trigger_retraining,
    validate_batch,
    with_batch,
)


@flow(name="drift-monitor", log_prints=True)
def drift_monitor(unit: str, dataset: str | None = None, recent_path: str | None = None,
                  threshold: float | None = None) -> dict:
    """Compare ``recent_path`` (a labelled CSV; default: the champion's held-out rows) with the
    champion's training rows of ``dataset``.

    ``dataset`` and ``threshold`` default to the unit spec's ``monitor``. A batch that fails the
    dataset's suite is quarantined and nothing more happens (``validation`` lists the failures).
    Past ``threshold`` on any feature, start ``unit``'s retraining deployment with the champion's
    parameters and the batch appended to the dataset's labelled file. Returns the drift report with
    ``reference`` (whose parameters), ``validation``, ``triggered``, ``retraining_run_id`` and
    ``retraining_parameters``.
    """
    deployment = retraining_deployment(unit)  # fails before any work if the unit has none
    monitor = get_unit(unit).monitor
    if dataset is None or threshold is None:
        if monitor is None:
            raise ValueError(f"{unit}'s spec declares no drift monitor: pass dataset and threshold")
        dataset = dataset or monitor.dataset
        threshold = monitor.threshold if threshold is None else threshold
    params, basis = champion_params(unit)
    outcome = {"unit": unit, "dataset": dataset, "recent": recent_path or "the held-out rows",
               "deployment": deployment, "reference": basis, "validation": None, "triggered": False,
               "retraining_run_id": None, "retraining_parameters": None}
    labelled_file = LABELLED_FILES.get(dataset)
    if recent_path and labelled_file:
        outcome["validation"] = validate_batch(dataset, params, labelled_file, recent_path)
        if not outcome["validation"]["passed"]:
            return {**outcome, "quarantined": outcome["validation"]["quarantine_path"]}

    data = ingest(dataset, params.profile, params.seed, params.data_files, params.append_files)
    reference, held_out = reference_split(dataset, data.splits, params.test_size, params.seed)
    recent = read_batch(recent_path) if recent_path else held_out
    report = measure_drift(dataset, reference, recent, threshold, outcome["recent"], basis)
    outcome.update(report.as_dict())
    if report.drifted:
        retrain = params
        if recent_path and labelled_file:
            retrain = with_batch(params, labelled_file, keep_batch(dataset, recent_path))
        parameters = {"params": retrain.model_dump(mode="json")}
        reason = (f"PSI {report.max_psi:.3f} > {threshold} in {', '.join(report.drifted_features)}; "
                  f"retraining on {basis}'s parameters"
                  + (f" with the batch appended to {labelled_file}" if retrain is not params else ""))
        outcome.update(triggered=True, retraining_parameters=parameters,
                       retraining_run_id=trigger_retraining(deployment, reason, parameters))
    return outcome


@flow(name="serving-drift-monitor", log_prints=True)
def serving_drift_monitor(url: str, unit: str, psi_threshold: float = 0.2, coverage_drop: float = 0.05) -> dict:
    """Read a service's drift report at ``url`` (the sentiment API) and, when a PSI is past ``psi_threshold``
    or the vocabulary coverage fell by more than ``coverage_drop``, start ``unit``'s retraining
    deployment (its defaults: the full fine-tuning). A report that cannot compare yet (too few texts,
    no reference statistics) triggers nothing. Returns the report with ``triggered``, ``reasons``,
    ``deployment`` and ``retraining_run_id``."""
    deployment = retraining_deployment(unit)  # fails before any work if the unit has none
    report = read_service_drift(url)
    drifted, reasons = crossed(report, psi_threshold, coverage_drop)
    outcome = {**report, "url": url, "unit": unit, "deployment": deployment, "psi_threshold": psi_threshold,
               "coverage_drop": coverage_drop, "reasons": reasons, "triggered": False, "retraining_run_id": None}
    if drifted:
        reason = f"the sentiment service at {url} drifted: {'; '.join(reasons)}"
        outcome.update(triggered=True, retraining_run_id=trigger_retraining(deployment, reason))
    return outcome
