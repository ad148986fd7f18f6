"""Unit 13: the serving lesson's pieces, the unit's flow once on the quick profile, and the
scheduled monitor that reads the service's drift report and starts Unit 11's retraining."""

from __future__ import annotations

import json
import tempfile

import numpy as np
import pandas as pd
import pytest

from pipeline.lessons import serving
from pipeline.serving.config import ServingConfig
from pipeline.serving.load import ServerThread, percentile
from pipeline.serving.monitoring import crossed
from pipeline.units.unit13_serving import Unit13Params


@pytest.fixture(scope="module")
def tiny():
    from pipeline.models.sentiment import tiny_model

    return tiny_model()


def test_percentile_matches_numpy():
    values = [5.0, 1.0, 9.0, 3.0]
    assert percentile(values, 50) == pytest.approx(np.median(values))
    assert percentile(values, 99) == pytest.approx(np.percentile(values, 99))
    assert np.isnan(percentile([], 50))


def test_load_metrics_and_the_speedup():
    table = pd.DataFrame([{"mode": mode, "concurrency": c, "rps": rps, "p50_ms": 10.0, "p99_ms": 20.0,
                           "mean_batch": 1.0 if mode == "unbatched" else c / 2}
                          for mode, base in (("unbatched", 10.0), ("micro-batching", 10.0)) for c in (1, 8, 32)
                          for rps in [base * (c if mode == "micro-batching" else 1)]])
    metrics = serving.load_metrics(table)
    assert metrics["batched_rps_c32"] == 320.0 and metrics["speedup_c32"] == pytest.approx(32.0)
    assert metrics["mean_batch_c32"] == 16.0 and metrics["p99_ms_c8_unbatched"] == 20.0


def test_typos_misspell_long_words_only():
    text = "an utterly charming and hilarious film"
    changed = serving.typos([text] * 20, rate=1.0, seed=0)
    for line in changed:
        words, original = line.split(), text.split()
        assert words[0] == "an" and words[3] == "and"  # words under four letters are kept
        assert all(w != o for w, o in zip(words, original) if len(o) >= 4)
    assert serving.typos([text], rate=0.0) == [text]


def test_crossed_redecides_at_the_callers_thresholds():
    report = {"status": "ok", "metrics": {"length_psi": 0.15, "probability_psi": 0.05,
                                          "coverage": {"change": -0.02}}}
    assert crossed(report, psi_threshold=0.2) == (False, [])
    drifted, reasons = crossed(report, psi_threshold=0.1, coverage_drop=0.01)
    assert drifted and len(reasons) == 2 and "length PSI 0.150 > 0.1" in reasons[0]
    assert crossed({"status": "insufficient-data", "reasons": ["3 texts"]}) == (False, ["3 texts"])


def test_served_classifier_predicts_through_the_api(tiny):
    texts = ["a gorgeous film", "a tedious mess", "fine"]
    with ServerThread(ServingConfig(), model=tiny) as server:
        served = serving.ServedClassifier(server.url, chunk=2)
        proba = served.predict_proba(pd.Series(texts))
    np.testing.assert_allclose(proba, tiny.predict_proba(texts), atol=1e-6)
    with pytest.raises(TypeError, match="not refitted"):
        served.fit(texts, [0, 1, 1])


def test_unit13_params_refuse_bad_values():
    with pytest.raises(ValueError):
        Unit13Params(max_batch_size=0)
    with pytest.raises(ValueError):
        Unit13Params(psi_threshold=-1.0)


@pytest.mark.slow
def test_unit13_flow_serves_measures_and_registers_a_run(prefect_harness, fresh_home, tiny, tmp_path):
    from flows.unit13_serving import unit13_serving
    from pipeline.registry import client

    folder = tiny.save(tmp_path / "model")
    outcome = unit13_serving(Unit13Params(profile="quick", model=str(folder)))
    assert outcome["status"] == "succeeded" and outcome["primary_metric"] == "batched_rps_c32"
    assert outcome["value"] > 0 and outcome["version"] is None  # a run, no model of its own
    metrics = client().get_run(outcome["run_id"]).data.metrics
    assert metrics["served_max_abs_diff"] <= 1e-5 and metrics["served_model_trained"] == 1.0
    assert {"speedup_c32", "p99_ms_c32_batched", "test_accuracy", "drift_phrases_length_psi"} <= set(metrics)
    assert metrics["drift_phrases_length_psi"] > 0.2 and metrics["drift_typos_coverage_change"] < -0.05
    with tempfile.TemporaryDirectory() as tmp:
        path = client().download_artifacts(outcome["run_id"], "figures/captions.json", tmp)
        assert set(serving.CAPTIONS) <= set(json.loads(open(path, encoding="utf-8").read()))


@pytest.mark.slow
def test_serving_drift_monitor_triggers_unit11_retraining_only_past_the_threshold(prefect_harness, tiny,
                                                                                  monkeypatch):
    import flows.monitoring as monitoring
    from pipeline.serving.monitoring import reference_statistics

    started = []
    monkeypatch.setattr(monitoring, "retraining_deployment", lambda unit: f"{unit}-flow/retrain-{unit}")
    monkeypatch.setattr(monitoring, "trigger_retraining",
                        lambda deployment, reason, parameters=None: started.append((deployment, reason)) or "run-1")
    sentences = ["a gorgeous , witty film", "the plot is a dull mess", "an affecting , often funny journey"] * 30
    tiny.reference = reference_statistics(sentences, tiny.predict_proba(sentences), tiny.tokenizer)
    try:
        with ServerThread(ServingConfig(min_window=20), model=tiny) as server:
            import httpx

            httpx.post(f"{server.url}/predict", json={"texts": sentences[:60]}, timeout=60)
            steady = monitoring.serving_drift_monitor(server.url, "unit11")
            httpx.post(f"{server.url}/predict", json={"texts": ["zqxv " * 40] * 60}, timeout=60)
            shifted = monitoring.serving_drift_monitor(server.url, "unit11")
    finally:
        tiny.reference = None
    assert steady["status"] == "ok" and not steady["triggered"]
    assert shifted["triggered"] and shifted["retraining_run_id"] == "run-1"
    assert started == [("unit11-flow/retrain-unit11", started[0][1])] and "length PSI" in started[0][1]
