"""Audit of a served model: the API answers what the model says, refuses bad input with a 4xx, and
its drift report separates in-distribution traffic from shifted traffic."""

from __future__ import annotations

import json

import numpy as np

from pipeline.audit import AuditReport

PROBABILITY_TOLERANCE = 1e-5  # float64 softmax of the same logits; padding with other texts changes nothing


def audit_served(url: str, served_proba: np.ndarray, local_proba: np.ndarray, bad_requests: dict,
                 drift_reports: dict[str, dict], load_errors: int) -> AuditReport:
    """``served_proba`` came through ``url``'s /predict, ``local_proba`` from the model in process;
    ``bad_requests`` name -> body (JSON-able, or bytes sent as they are); ``drift_reports`` by traffic
    name, "served traffic" expected steady and every other one drifted."""
    import httpx

    report = AuditReport("served sentiment model")
    diff = float(np.max(np.abs(np.asarray(served_proba) - np.asarray(local_proba))))
    report.add("served = in-process probabilities", diff <= PROBABILITY_TOLERANCE,
               f"max |difference| {diff:.2e} over {len(local_proba)} texts (tolerance {PROBABILITY_TOLERANCE})")
    statuses = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        for name, body in bad_requests.items():
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            response = http.post("/predict", content=content, headers={"content-type": "application/json"})
            statuses[name] = response.status_code
    wrong = {name: status for name, status in statuses.items() if not 400 <= status < 500}
    report.add("bad input gets a 4xx", not wrong,
               f"{len(statuses)} malformed requests: " + ", ".join(f"{n} {s}" for n, s in statuses.items()))
    report.add("no failed request under load", load_errors == 0, f"{load_errors} errors")
    for name, drift in drift_reports.items():
        expected = name != "served traffic"
        report.add(f"drift report on {name}", drift["status"] == "ok" and drift["drifted"] == expected,
                   f"status {drift['status']}, drifted {drift['drifted']} (expected {expected}); "
                   + ("; ".join(drift["reasons"]) or "no statistic past its threshold"))
    return report
