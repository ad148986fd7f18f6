"""Capstone — the sentiment system end to end on one machine.

Unit 11's flow fine-tunes MiniLM and registers ``mlpath-sentiment`` (champion only if it beats the
current one); then the registry's champion is served by the Unit 13 API on a free loopback port, a
smoke batch goes through ``POST /predict``, ``/monitoring/drift``, ``/ready`` and ``/metrics`` are
read, the served model is evaluated through the API, and the server stops. The run registers the
outcome; the model it served stays Unit 11's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import numpy as np

from pipeline.audit import AuditReport
from pipeline.units.unit11_finetuning import Unit11Params

CHAMPION_URI = "models:/mlpath-sentiment@champion"
# Unit 11's outcome when the capstone serves the champion without fine-tuning first (fine_tune=false).
NOT_FINE_TUNED = {"status": "skipped", "reason": "fine_tune=false: serving the champion already registered"}


def unit11_params(params) -> Unit11Params:
    """Unit 11's parameters for the capstone: its profile and seed, and the capstone's size overrides."""
    overrides = {k: getattr(params, k) for k in ("train_size", "epochs") if getattr(params, k) is not None}
    return Unit11Params(profile=params.profile, seed=params.seed, **overrides)


def champion_version(model_name: str = "mlpath-sentiment") -> dict:
    """The registered champion: ``{"version", "run_id"}``, or Nones when there is none."""
    from pipeline.registry import client, current_champion

    mlflow_client = client()
    version = current_champion(mlflow_client, model_name)
    if version is None:
        return {"version": None, "run_id": None}
    return {"version": version, "run_id": mlflow_client.get_model_version(model_name, version).run_id}


@dataclass
class Smoke:
    """What the running API answered to the smoke batch."""

    ready: dict
    predictions: list[dict]
    latency_ms: float
    drift: dict
    metrics_text: str


def smoke(url: str, texts: Sequence[str]) -> Smoke:
    """``/ready``, one ``POST /predict`` with ``texts``, then ``/monitoring/drift`` and ``/metrics``."""
    with httpx.Client(base_url=url, timeout=120) as http:
        ready = http.get("/ready").json()
        start = time.perf_counter()
        response = http.post("/predict", json={"texts": list(texts)})
        latency = 1000 * (time.perf_counter() - start)
        response.raise_for_status()
        drift = http.get("/monitoring/drift").json()
        metrics_text = http.get("/metrics").text
    return Smoke(ready, response.json()["predictions"], latency, drift, metrics_text)


def audit_system(unit11: dict, champion: dict, smoke_result: Smoke, n_texts: int, served_score: np.ndarray,
                 local_score: np.ndarray) -> AuditReport:
    """The system's checks: Unit 11 registered, a champion exists and is what the API serves, the
    smoke batch is answered whole, the drift report compares, served = in-process predictions."""
    report = AuditReport("sentiment system")
    if unit11.get("status") == "skipped":
        report.add("Unit 11 not run (fine_tune=false)", champion["version"] is not None,
                   f"{unit11.get('reason')}: v{champion['version']}")
    else:
        report.add("Unit 11 ran and registered", unit11.get("status") == "succeeded" and unit11.get("version"),
                   f"{unit11.get('model_name')} v{unit11.get('version')} @{unit11.get('alias')}: "
                   f"{unit11.get('reason')}")
    report.add("a champion is registered", champion["version"] is not None,
               f"mlpath-sentiment@champion = v{champion['version']}")
    report.add("the API is ready with the champion", smoke_result.ready.get("ready") is True,
               f"/ready: {smoke_result.ready}")
    sums = [sum(p["probabilities"].values()) for p in smoke_result.predictions]
    whole = len(smoke_result.predictions) == n_texts and np.allclose(sums, 1.0)
    report.add("the smoke batch is answered whole", whole,
               f"{len(smoke_result.predictions)} predictions for {n_texts} texts in {smoke_result.latency_ms:.0f} ms")
    report.add("the drift report compares", smoke_result.drift.get("status") == "ok",
               f"status {smoke_result.drift.get('status')}, drifted {smoke_result.drift.get('drifted')}, "
               f"window {smoke_result.drift.get('window')}")
    diff = float(np.max(np.abs(np.asarray(served_score) - np.asarray(local_score))))
    report.add("served = in-process probabilities", diff <= 1e-5, f"max |difference| {diff:.2e}")
    return report


def metrics(unit11: dict, champion: dict, smoke_result: Smoke) -> dict[str, float]:
    drift = smoke_result.drift.get("metrics", {})
    values = {"unit11_dev_accuracy": unit11.get("value"), "champion_version": champion["version"],
              "smoke_latency_ms": smoke_result.latency_ms, "smoke_texts": len(smoke_result.predictions),
              "drift_length_psi": drift.get("length_psi"), "drift_probability_psi": drift.get("probability_psi")}
    return {k: float(v) for k, v in values.items() if v is not None}


def report_markdown(unit11: dict, champion: dict, served_source: str, smoke_result: Smoke, evaluation: dict,
                    profile: str) -> str:
    drift = smoke_result.drift
    return "\n".join([
        "# Capstone: the sentiment system end to end",
        "",
        f"Profile **{profile}**. " + (
            f"Unit 11 was not run ({unit11.get('reason')})." if unit11.get("status") == "skipped" else
            f"Unit 11 registered `{unit11.get('model_name')}` v{unit11.get('version')} as @{unit11.get('alias')} "
            f"(dev accuracy {unit11.get('value', float('nan')):.4f}; {unit11.get('reason')})."),
        f"Served: {served_source}, the champion v{champion['version']}.",
        "",
        f"Smoke batch: {len(smoke_result.predictions)} dev sentences in one `POST /predict`, answered in "
        f"{smoke_result.latency_ms:.0f} ms. Through the API on those sentences: "
        + ", ".join(f"{k} {v:.4f}" for k, v in evaluation.items() if k in ("test_accuracy", "test_f1",
                                                                            "test_roc_auc")) + ".",
        "",
        f"Drift report after the smoke traffic: status {drift.get('status')}, drifted {drift.get('drifted')} "
        f"({'; '.join(drift.get('reasons', [])) or 'no statistic past its threshold'}).",
    ])
