"""Unit 13: the sentiment API (pipeline.serving) on a tiny random BERT.

Shapes and probabilities, every bad-input case (a 4xx with a reason, never a 5xx), a schemathesis
fuzz run against the app's own OpenAPI document, micro-batching (each caller gets its own rows,
batches bigger than one form under concurrency, a full queue refuses), the Prometheus series, the
drift report, and `mlpath serve` as a subprocess: the command the Dockerfile's CMD runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from pipeline.serving.app import create_app
from pipeline.serving.batching import MicroBatcher, QueueFullError
from pipeline.serving.config import ServingConfig, ServingConfigError
from pipeline.serving.load import free_port
from pipeline.serving.monitoring import TrafficWindow, drift_report, reference_statistics, text_statistics

from conftest import MIRROR, REPO

SENTENCES = ["a gorgeous, witty, seductive movie.", "the plot is a dull mess.", "it 's a charming and often "
             "affecting journey.", "unflinchingly bleak and desperate", "one long string of cliches ."]


@pytest.fixture(scope="module")
def model():
    from pipeline.models.sentiment import tiny_model

    tiny = tiny_model()
    tiny.reference = reference_statistics(SENTENCES * 20, tiny.predict_proba(SENTENCES * 20), tiny.tokenizer)
    return tiny


@pytest.fixture(scope="module")
def client(model):
    config = ServingConfig(max_texts=8, max_chars=200, max_body_bytes=4096, min_window=10)
    with TestClient(create_app(config, model=model)) as test_client:
        yield test_client


# --- the endpoints ------------------------------------------------------------------------------

def test_health_ready_and_docs(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    schema = client.get("/openapi.json").json()
    assert {"/predict", "/health", "/ready", "/metrics", "/monitoring/drift"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200


def test_predict_one_text_and_a_batch_match_the_model(client, model):
    one = client.post("/predict", json={"text": SENTENCES[0]})
    assert one.status_code == 200
    (prediction,) = one.json()["predictions"]
    expected = model.predict_proba([SENTENCES[0]])[0]
    assert prediction["probabilities"]["negative"] == pytest.approx(expected[0], abs=1e-6)
    assert prediction["label"] == model.labels[int(np.argmax(expected))]
    assert prediction["probability"] == pytest.approx(expected.max(), abs=1e-6)

    many = client.post("/predict", json={"texts": SENTENCES}).json()["predictions"]
    assert len(many) == len(SENTENCES)
    p = np.array([[m["probabilities"]["negative"], m["probabilities"]["positive"]] for m in many])
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(p, model.predict_proba(SENTENCES), atol=1e-5)  # padding with others changes nothing


def _post(client, body=None, **kwargs):
    return client.post("/predict", json=body, **kwargs) if body is not None else client.post("/predict", **kwargs)


@pytest.mark.parametrize("body, status, reason", [
    ({"text": ""}, 422, "at least 1 character"),
    ({"text": "   \n"}, 422, "pattern"),
    ({"texts": []}, 422, "at least 1 item"),
    ({"texts": ["fine", ""]}, 422, "at least 1 character"),
    ({"texts": ["ok"] * 9}, 422, "at most 8 items"),
    ({"text": "x" * 201}, 422, "at most 200 characters"),
    ({"text": 3}, 422, "valid string"),
    ({"texts": "not a list"}, 422, "valid list"),
    ({"texts": [1, 2]}, 422, "valid string"),
    ({}, 422, "Field required"),
    ({"text": "a", "texts": ["b"]}, 422, "Extra inputs"),
    ({"text": "a", "extra": 1}, 422, "Extra inputs"),
    ([SENTENCES[0]], 422, "must be a JSON object"),
])
def test_bad_json_bodies_get_a_422_with_a_reason(client, body, status, reason):
    response = _post(client, body)
    assert response.status_code == status
    assert reason in json.dumps(response.json()["detail"])


def test_non_json_and_oversized_bodies_are_4xx(client):
    broken = _post(client, content=b'{"text": "unclosed', headers={"content-type": "application/json"})
    assert broken.status_code == 422 and "JSON decode error" in broken.text
    undecodable = _post(client, content=b'{"text": "\xff\xfe"}', headers={"content-type": "application/json"})
    assert undecodable.status_code == 400 and "parsing the body" in undecodable.text
    plain = _post(client, content=b"just words", headers={"content-type": "text/plain"})
    assert plain.status_code == 422 and "must be a JSON object" in plain.text
    declared = _post(client, content=json.dumps({"text": "x" * 5000}).encode(),
                     headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "over the limit of 4096 bytes" in declared.json()["detail"]

    def chunks():  # no Content-Length: the body is counted as it arrives
        yield b'{"text": "'
        for _ in range(50):
            yield b"y" * 100
        yield b'"}'

    streamed = _post(client, content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


def test_no_model_starts_but_is_not_ready(tmp_path):
    config = ServingConfig(model=str(tmp_path / "missing-model"))
    with TestClient(create_app(config)) as unready:
        assert unready.get("/health").status_code == 200
        ready = unready.get("/ready")
        assert ready.status_code == 503 and "missing-model" in ready.json()["reason"]
        refused = unready.post("/predict", json={"text": "hello"})
        assert refused.status_code == 503 and "no model loaded" in refused.json()["detail"]


def test_no_champion_registered_says_so(fresh_home):
    with TestClient(create_app(ServingConfig())) as unready:
        reason = unready.get("/ready").json()["reason"]
    assert "models:/mlpath-sentiment@champion" in reason


def test_config_from_the_environment(monkeypatch):
    monkeypatch.setenv("MLPATH_SERVE_MODEL", "/srv/model")
    monkeypatch.setenv("MLPATH_SERVE_MAX_TEXTS", "3")
    config = ServingConfig.from_env(port=9001)
    assert (config.model, config.max_texts, config.port) == ("/srv/model", 3, 9001)
    monkeypatch.setenv("MLPATH_SERVE_PORT", "not-a-port")
    with pytest.raises(ServingConfigError, match="port"):
        ServingConfig.from_env()


def test_metrics_count_requests_latency_and_labels(model):
    with TestClient(create_app(ServingConfig(), model=model)) as fresh:
        fresh.post("/predict", json={"texts": SENTENCES})
        fresh.post("/predict", json={"text": ""})
        text = fresh.get("/metrics").text
    assert 'mlpath_http_requests_total{method="POST",path="/predict",status="200"} 1.0' in text
    assert 'mlpath_http_requests_total{method="POST",path="/predict",status="422"} 1.0' in text
    assert 'mlpath_http_request_duration_seconds_count{path="/predict"} 2.0' in text
    labelled = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("mlpath_predictions_total{"))
    assert labelled == len(SENTENCES)
    assert "mlpath_inference_batch_size_count 1.0" in text
    assert "mlpath_model_loaded 1.0" in text


def test_two_apps_keep_separate_metrics(model):
    first, second = create_app(ServingConfig(), model=model), create_app(ServingConfig(), model=model)
    assert first.state.metrics.registry is not second.state.metrics.registry


# --- micro-batching -----------------------------------------------------------------------------

def test_concurrent_requests_share_batches_and_get_their_own_rows(model):
    config = ServingConfig(max_batch_size=16, max_wait_ms=50, min_window=1)
    app = create_app(config, model=model)
    texts = [f"{SENTENCES[i % len(SENTENCES)]} take {i}" for i in range(24)]
    expected = model.predict_proba(texts)

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport,
                                                                         base_url="http://test") as http:
            responses = await asyncio.gather(*(http.post("/predict", json={"text": t}) for t in texts))
            metrics = (await http.get("/metrics")).text
        return responses, metrics

    responses, metrics = asyncio.run(run())
    got = np.array([[r.json()["predictions"][0]["probabilities"][k] for k in ("negative", "positive")]
                    for r in responses])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    batches = float(next(line.split()[-1] for line in metrics.splitlines()
                         if line.startswith("mlpath_inference_batch_size_count")))
    assert batches < len(texts), "every request ran alone: nothing was batched"


def test_batcher_splits_outputs_and_holds_back_what_does_not_fit():
    sizes = []

    def predict(texts):
        sizes.append(len(texts))
        return [t.upper() for t in texts]

    async def run():
        batcher = MicroBatcher(predict, ThreadPoolExecutor(1), max_batch_size=4, max_wait_ms=30)
        await batcher.start()
        try:
            return await asyncio.gather(batcher.submit(["a", "b"]), batcher.submit(["c"]), batcher.submit(["d", "e"]),
                                        batcher.submit(["f", "g", "h", "i", "j"]))
        finally:
            await batcher.stop()

    results = asyncio.run(run())
    assert [list(r) for r in results] == [["A", "B"], ["C"], ["D", "E"], ["F", "G", "H", "I", "J"]]
    assert sizes[0] == 3 and max(sizes) == 5  # 2 + 1, then 2 could not join; 5 alone (bigger than a batch)


def test_full_queue_refuses_instead_of_waiting():
    release = asyncio.Event()

    async def run():
        loop = asyncio.get_running_loop()

        def slow(texts):
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result()
            return texts

        batcher = MicroBatcher(slow, ThreadPoolExecutor(1), max_batch_size=1, max_wait_ms=0, max_queue=1)
        await batcher.start()
        first = asyncio.create_task(batcher.submit(["running"]))
        await asyncio.sleep(0.05)  # the first request is in the inference thread now
        second = asyncio.create_task(batcher.submit(["queued"]))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFullError, match="already waiting"):
            await batcher.submit(["refused"])
        release.set()
        done = await asyncio.gather(first, second)
        await batcher.stop()
        return done

    assert [list(r) for r in asyncio.run(run())] == [["running"], ["queued"]]


def test_full_queue_is_a_503_with_retry_after(model, monkeypatch):
    app = create_app(ServingConfig(), model=model)

    async def refuse(texts):
        raise QueueFullError("256 requests are already waiting for inference")

    with TestClient(app) as overloaded:
        monkeypatch.setattr(app.state.runner, "submit", refuse)
        response = overloaded.post("/predict", json={"text": "hello"})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "overloaded" in response.json()["detail"]


def test_unbatched_mode_gives_the_same_answers(model):
    with TestClient(create_app(ServingConfig(batching=False), model=model)) as plain:
        got = plain.post("/predict", json={"texts": SENTENCES[:2]}).json()["predictions"]
    expected = model.predict_proba(SENTENCES[:2])
    assert [g["probabilities"]["positive"] for g in got] == pytest.approx(expected[:, 1].tolist(), abs=1e-6)


def test_int8_serving_answers_with_the_quantised_copy_and_leaves_the_model_alone(model, monkeypatch):
    import torch

    from pipeline.models.sentiment import quantize_int8

    monkeypatch.setenv("MLPATH_SERVE_INT8", "true")
    config = ServingConfig.from_env()
    assert config.int8
    with TestClient(create_app(config, model=model)) as fast:
        assert fast.get("/ready").json()["model"].endswith(", int8")
        got = fast.post("/predict", json={"texts": SENTENCES}).json()["predictions"]
    served = np.array([g["probabilities"]["positive"] for g in got])
    int8 = quantize_int8(model)
    assert served == pytest.approx(int8.predict_proba(SENTENCES)[:, 1], abs=1e-6)
    assert int8.meta["quantized"].startswith("int8")
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in int8.model.modules())
    assert not any(type(m) is torch.nn.Linear for m in int8.model.modules())  # every one quantised
    # the served model is a copy: the original's layers and answers are those of fp32
    assert any(type(m) is torch.nn.Linear for m in model.model.modules())
    assert np.abs(model.predict_proba(SENTENCES)[:, 1] - served).max() < 0.05


# --- monitoring ---------------------------------------------------------------------------------

def test_reference_statistics_by_hand(model):
    texts = ["good good film", "bad", "zzqxj qqzzx film !", "a fine , fine day"]
    p = np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6], [0.45, 0.55]])
    ref = reference_statistics(texts, p, model.tokenizer)
    json.dumps(ref)  # JSON-able
    assert ref["n"] == 4
    assert ref["length"]["mean"] == pytest.approx((3 + 1 + 3 + 4) / 4)  # punctuation is not a word
    assert sum(ref["length"]["shares"]) == pytest.approx(1.0)
    assert ref["prediction"]["share_positive"] == 0.75
    assert ref["prediction"]["probability_shares"][8] == 0.25  # 0.8 falls in [0.8, 0.9)
    stats = text_statistics(["zzqxj qqzzx film"], model.tokenizer)  # made-up words split into pieces
    assert (stats.n_words[0], stats.n_whole[0]) == (3, 1)
    assert ref["vocabulary"]["coverage"] == pytest.approx((11 - 2) / 11)
    with pytest.raises(ValueError, match="2 probabilities"):
        reference_statistics(texts, p[:2], model.tokenizer)


def test_drift_report_flags_a_shift_and_not_the_reference_itself(model):
    texts = SENTENCES * 20
    ref = model.reference
    same = TrafficWindow(500)
    same.add(text_statistics(texts, model.tokenizer), model.predict_proba(texts)[:, 1])
    steady = drift_report(ref, same.snapshot(), min_window=10)
    assert steady["status"] == "ok" and not steady["drifted"]
    assert steady["metrics"]["length_psi"] == pytest.approx(0.0, abs=1e-9)

    odd = ["qzx vbnrt kplmw " * 8] * 100  # long texts of words the vocabulary splits
    shifted = TrafficWindow(500)
    shifted.add(text_statistics(odd, model.tokenizer), np.full(len(odd), 0.99))
    report = drift_report(ref, shifted.snapshot(), min_window=10)
    assert report["drifted"]
    assert report["metrics"]["length_psi"] > 0.2 and report["metrics"]["coverage"]["change"] < -0.05
    assert any("coverage" in r for r in report["reasons"])
    assert drift_report(None, shifted.snapshot())["status"] == "no-reference"
    assert drift_report(ref, shifted.snapshot()[:5], min_window=10)["status"] == "insufficient-data"


def test_drift_endpoint_reports_the_window(model):
    config = ServingConfig(min_window=5, window_size=50)
    with TestClient(create_app(config, model=model)) as fresh:
        assert fresh.get("/monitoring/drift").json()["status"] == "insufficient-data"
        fresh.post("/predict", json={"texts": SENTENCES * 2})
        report = fresh.get("/monitoring/drift").json()
    assert report["status"] == "ok" and report["window"] == 10 and report["texts_seen"] == 10
    assert {"length_psi", "probability_psi", "coverage", "share_positive"} <= set(report["metrics"])


# --- the fuzz test ------------------------------------------------------------------------------

def test_schemathesis_fuzz_never_a_server_error(model):
    """Requests generated from the app's OpenAPI document, valid ones (each must be accepted) and
    invalid ones (each must be refused with a 4xx): every answer documented, never a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.generation import GenerationMode

    app = create_app(ServingConfig(max_texts=4, max_chars=64, max_body_bytes=2048), model=model)
    with TestClient(app):  # runs the lifespan: the model slot and the batcher exist
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        failures = []
        cases = [("POST", "/predict", GenerationMode.POSITIVE, 50), ("POST", "/predict", GenerationMode.NEGATIVE, 50),
                 *[("GET", path, GenerationMode.POSITIVE, 3) for path in ("/ready", "/health", "/monitoring/drift")]]
        for method, path, mode, examples in cases:
            @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            @given(case=schema[path][method].as_strategy(generation_mode=mode))
            def fuzz(case):
                response = case.call_and_validate()  # schemathesis' checks: no 5xx, documented status and body
                assert response.status_code < 500, (case.body, response.text)

            try:
                fuzz()
            except Exception as error:  # collect every operation's failure before failing
                failures.append(f"{method} {path} ({mode.value}): {error}")
        assert not failures, "\n".join(failures)


# --- `mlpath serve`, as make serve and the container run it ---------------------------------------

def _dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    from test_infra import _instructions

    return _instructions(path)


def _make_serve_argv() -> list[str]:
    """`make serve`'s command line, with the venv's bin folder dropped from the program."""
    out = subprocess.run(["make", "-s", "-n", "serve"], cwd=REPO, capture_output=True, text=True, timeout=30,
                         env={**os.environ, "SERVE_PORT": "8000"})
    argv = out.stdout.strip().splitlines()[-1].split()
    return [Path(argv[0]).name, *argv[1:]]


READY_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def served(model, tmp_path_factory):
    """`mlpath serve --port P` in a subprocess, serving a saved tiny model; yields the base URL."""
    folder = model.save(tmp_path_factory.mktemp("served") / "model")
    port = free_port()
    env = {**os.environ, "MLPATH_SERVE_MODEL": str(folder), "MLPATH_HOME": str(tmp_path_factory.mktemp("home")),
           "MLPATH_DATA_MIRROR": str(MIRROR), "OMP_NUM_THREADS": "1"}
    argv = _make_serve_argv()
    argv[argv.index("--port") + 1] = str(port)
    server = subprocess.Popen([str(Path(sys.executable).parent / argv[0]), *argv[1:]], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        # Importing torch and transformers and loading the model takes seconds on an idle machine,
        # but well over a minute on 2 cores shared with a training run and another pytest worker.
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert server.poll() is None, server.communicate()[0]
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            server.terminate()
            pytest.fail(f"mlpath serve was not ready in {READY_TIMEOUT_S} s:\n{server.communicate(timeout=30)[0]}")
        yield url, folder
    finally:
        if server.returncode is None:
            server.terminate()
            output = server.communicate(timeout=30)[0]
    assert f"mlpath serve: {url}" in output


def test_mlpath_serve_answers_predict(served):
    url, folder = served
    response = httpx.post(f"{url}/predict", json={"texts": SENTENCES[:2]}, timeout=30)
    assert response.status_code == 200
    assert response.json()["model"].startswith(str(folder))
    assert len(response.json()["predictions"]) == 2


def test_the_container_runs_make_serves_command():
    instructions = _dockerfile_instructions(REPO / "infra" / "Dockerfile.api")
    values = dict(instructions)
    argv = json.loads(values["ENTRYPOINT"]) + json.loads(values["CMD"])
    assert argv == _make_serve_argv() == ["mlpath", "serve", "--port", "8000"]
    env = " ".join(args for keyword, args in instructions if keyword == "ENV")
    assert "MLPATH_SERVE_HOST=0.0.0.0" in env and "MLPATH_SERVE_MODEL=${MODEL_URI:+/model}" in env


def test_api_dockerfile_is_multi_stage_non_root_with_a_healthcheck():
    instructions = _dockerfile_instructions(REPO / "infra" / "Dockerfile.api")
    keywords = [k for k, _ in instructions]
    stages = [args for k, args in instructions if k == "FROM"]
    assert len(stages) == 3 and all(re_stage.startswith("python:3.11.") or re_stage.startswith("build ")
                                    for re_stage in stages)
    runs = [args for k, args in instructions if k == "RUN"]
    assert "--index-url https://download.pytorch.org/whl/cpu" in next(r for r in runs if "torch==" in r)
    user = [args for k, args in instructions if k == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    assert "HEALTHCHECK" in keywords and "/health" in dict(instructions)["HEALTHCHECK"]
    from test_infra import _dockerignored

    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for keyword, args in instructions:
        if keyword == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                assert (REPO / source).exists() and not _dockerignored(source, patterns), source


def test_compose_monitoring_services_and_dashboard():
    import yaml

    services = yaml.safe_load((REPO / "infra" / "compose.yaml").read_text())["services"]
    api = services["api"]
    assert api["build"] == {"context": "..", "dockerfile": "infra/Dockerfile.api"}
    assert api["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]
    scrape = yaml.safe_load((REPO / "infra" / "prometheus.yml").read_text())["scrape_configs"]
    assert scrape[0]["static_configs"][0]["targets"] == ["api:8000"] and scrape[0]["metrics_path"] == "/metrics"
    grafana = services["grafana"]
    assert {"./grafana/provisioning:/etc/grafana/provisioning:ro",
            "./grafana/dashboards:/var/lib/grafana/dashboards:ro"} <= set(grafana["volumes"])
    datasource = yaml.safe_load((REPO / "infra/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((REPO / "infra/grafana/provisioning/dashboards/mlpath.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboard = json.loads((REPO / "infra/grafana/dashboards/sentiment-api.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    assert all(p["datasource"]["uid"] == uid for p in dashboard["panels"])
    metrics = create_app(ServingConfig()).state.metrics.registry  # every series the dashboard plots exists
    names = {m.name for m in metrics.collect()}
    for series in ("mlpath_http_requests", "mlpath_http_request_duration_seconds", "mlpath_predictions",
                   "mlpath_inference_batch_size", "mlpath_inference_queue_depth", "mlpath_drift_psi"):
        assert series in names and series in exprs, series


def test_prometheus_scrapes_the_running_api(served, tmp_path):
    """Debian's prometheus with infra/prometheus.yml (loopback target, 1 s scrapes) against `mlpath
    serve`: the request-count and latency series come back from its query API."""
    import yaml

    program = shutil.which("prometheus")
    assert program, "prometheus is not installed: `make test-deps` (as root) installs Debian's package"
    url, _ = served
    config = yaml.safe_load((REPO / "infra" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["scrape_configs"][0]["static_configs"][0]["targets"] = [url.removeprefix("http://")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    prometheus = subprocess.Popen([program, f"--config.file={tmp_path / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={tmp_path / 'data'}",
                                   f"--web.listen-address=127.0.0.1:{port}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    api = f"http://127.0.0.1:{port}/api/v1/query"
    try:
        for _ in range(3):
            assert httpx.post(f"{url}/predict", json={"texts": SENTENCES}, timeout=30).status_code == 200
        queries = {"count": 'sum(mlpath_http_requests_total{path="/predict",status="200"})',
                   "latency": 'sum(mlpath_http_request_duration_seconds_count{path="/predict"})',
                   "p99": 'histogram_quantile(0.99, sum by (le) (mlpath_http_request_duration_seconds_bucket'
                          '{path="/predict"}))'}
        found: dict[str, float] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(found) < len(queries):
            assert prometheus.poll() is None, prometheus.communicate()[0]
            for name, query in queries.items():
                try:
                    result = httpx.get(api, params={"query": query}, timeout=5).json()["data"]["result"]
                except (httpx.TransportError, KeyError, ValueError):
                    result = []
                if result:
                    found[name] = float(result[0]["value"][1])
            time.sleep(0.5)
        assert set(found) == set(queries), f"prometheus returned only {found}"
        assert found["count"] >= 3 and found["latency"] >= 3 and found["p99"] > 0
    finally:
        prometheus.terminate()
        prometheus.communicate(timeout=30)
