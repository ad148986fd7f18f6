"""The sentiment API: ``POST /predict``, health and readiness, Prometheus metrics, drift.

``create_app(config)`` builds one FastAPI app with its own Prometheus registry, model slot, batcher
and traffic window, so tests can run several side by side. At start-up (the lifespan) the model is
loaded from ``config.model``: a folder written by ``SentimentModel.save`` (or a downloaded MLflow
model) when the path exists, else an MLflow URI (default ``models:/mlpath-sentiment@champion``).
A model that cannot be loaded does not stop the service: ``/health`` answers, ``/ready`` and
``/predict`` answer 503 with the reason, so an orchestrator sees an unready replica, not a crash loop.

Every bad request is a 4xx with a reason: a body over ``max_body_bytes`` is refused (413) before it
is parsed; malformed JSON, wrong types, blank texts, too many texts and over-long texts fail the
request schema (422, which the OpenAPI document states, so a fuzzer can see the limits).
"""


import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Union

import numpy as np
from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag, create_model

from pipeline.serving.batching import DirectRunner, MicroBatcher, QueueFullError
from pipeline.serving.config import ServingConfig
from pipeline.serving.monitoring import TrafficWindow, drift_report, positive_probability, text_statistics

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
RETRY_AFTER_SECONDS = 1
_NOT_BLANK = r"\S"  # JSON-Schema and pydantic patterns both search: at least one non-space character


class Prediction(BaseModel):
    label: str = Field(description="the predicted label: negative or positive")
    probability: float = Field(ge=0, le=1, description="the model's probability of the predicted label")
    probabilities: dict[str, float] = Field(description="probability of each label")


class PredictResponse(BaseModel):
    predictions: list[Prediction] = Field(description="one per input text, in order")
    model: str = Field(description="which model answered (URI or folder, and its version when known)")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    model: str | None = None
    reason: str | None = None


class ErrorBody(BaseModel):
    detail: Any = Field(description="why the request was refused")


def request_model(max_texts: int, max_chars: int):
    """The /predict body for these limits: ``{"text": str}`` or ``{"texts": [str, ...]}``, nothing else.

    Two closed objects under ``oneOf`` in the schema; the validator picks one by the key present
    (``texts`` if given), so a bad body gets that shape's errors only. Every text is non-blank.
    """
    Text = Annotated[str, StringConstraints(min_length=1, max_length=max_chars, pattern=_NOT_BLANK)]
    closed = ConfigDict(extra="forbid")
    One = create_model("PredictOne", __config__=closed,
                       text=(Text, Field(description=f"one text, 1 to {max_chars} characters, not blank",
                                         examples=["a gorgeous, witty, seductive movie."])))
    Many = create_model("PredictMany", __config__=closed,
                        texts=(list[Text], Field(min_length=1, max_length=max_texts,
                                                 description=f"1 to {max_texts} texts of 1 to {max_chars} "
                                                             "characters, none blank",
                                                 examples=[["a gorgeous movie.", "a dull mess."]])))

    def shape(body: Any) -> str | None:
        if not isinstance(body, dict):
            return None
        return "texts" if "texts" in body else "text"

    return Annotated[Union[Annotated[One, Tag("text")], Annotated[Many, Tag("texts")]],  # noqa: UP007
                     Discriminator(shape, custom_error_type="invalid_body",
                                   custom_error_message='the body must be a JSON object: {"text": "..."} or '
                                                        '{"texts": ["...", ...]}')]


class _BodyLimit:
    """ASGI middleware: refuse a request body over ``max_bytes`` with 413 before anything parses it.

    A declared Content-Length is checked first; a chunked body is read up to the limit and replayed.
    """

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def _refuse(self, send, status: int, reason: str) -> None:
        body = json.dumps({"detail": reason}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                return await self._refuse(send, 400, "Content-Length is not a number")
            if int(declared) > self.max_bytes:
                return await self._refuse(send, 413, f"request body of {int(declared)} bytes is over the "
                                                     f"limit of {self.max_bytes} bytes")
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                return await self._refuse(send, 413, f"request body is over the limit of {self.max_bytes} bytes")
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


class _RequestMetrics:
    """ASGI middleware: count every HTTP request by route template, method and status, and time it."""

    def __init__(self, app, metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")  # set by the router; templates only, so label values stay few
            path = getattr(route, "path", None) or "other"
            self.metrics.requests.labels(path, scope["method"], str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)


class ServiceMetrics:
    """The app's Prometheus series, in a registry of its own."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("mlpath_http_requests", "HTTP requests by path, method and status",
                                ["path", "method", "status"], registry=self.registry)
        self.latency = Histogram("mlpath_http_request_duration_seconds", "HTTP request latency by path",
                                 ["path"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.predictions = Counter("mlpath_predictions", "texts predicted, by predicted label", ["label"],
                                   registry=self.registry)
        self.batch_size = Histogram("mlpath_inference_batch_size", "texts per inference batch",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry)
        self.queue_depth = Gauge("mlpath_inference_queue_depth", "requests waiting for inference",
                                 registry=self.registry)
        self.model_loaded = Gauge("mlpath_model_loaded", "1 when a model is loaded and /predict answers",
                                  registry=self.registry)
        self.drift_psi = Gauge("mlpath_drift_psi", "PSI of the traffic window against the reference, as of the "
                               "last drift report", ["statistic"], registry=self.registry)


def load_model(source: str):
    """A SentimentModel from a folder (if ``source`` is an existing path) or an MLflow model URI."""
    from pipeline.models.sentiment import load_model_folder, load_registered

    if Path(source).exists():
        return load_model_folder(source)
    if ":/" not in source:
        raise FileNotFoundError(f"{source} is neither a model folder nor an MLflow URI (models:/NAME@ALIAS)")
    return load_registered(source)


def describe_model(source: str, model) -> str:
    """``source``, with the registered version an alias URI (``models:/NAME@ALIAS``) pointed at on loading."""
    version = model.meta.get("registered_version")
    if version is None and source.startswith("models:/") and "@" in source:
        from pipeline.registry import client

        name, _, alias = source.removeprefix("models:/").partition("@")
        try:
            version = client().get_model_version_by_alias(name, alias).version
        except Exception:  # noqa: BLE001 - a description is not worth failing the start-up for
            version = None
    return f"{source} (v{version})" if version else source


def create_app(config: ServingConfig | None = None, model=None, source: str | None = None) -> FastAPI:
    """The API for ``config``; ``model`` (a SentimentModel, described as ``source``) skips loading
    ``config.model``."""
    config = config or ServingConfig.from_env()
    metrics = ServiceMetrics()
    window = TrafficWindow(config.window_size)
    state: dict[str, Any] = {"model": model, "reason": None,
                             "source": (source or "given at start-up") if model is not None else config.model}

    def infer(texts: list[str]) -> list[tuple[np.ndarray, Any]]:
        """Runs in the inference thread: probabilities and text statistics of a batch."""
        served = state["model"]
        probabilities = served.predict_proba(texts, batch_size=config.forward_batch)
        return list(zip(probabilities, _stats_rows(text_statistics(texts, served.tokenizer))))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        if config.torch_threads:
            import torch

            torch.set_num_threads(config.torch_threads)
        if state["model"] is None:
            try:
                state["model"] = await asyncio.get_running_loop().run_in_executor(executor, load_model, config.model)
            except Exception as error:  # the service still starts: /ready says why it is not ready
                state["reason"] = f"no model loaded from {config.model}: {error}"
        if state["model"] is not None and source is None:
            state["source"] = describe_model(state["source"], state["model"])
        if state["model"] is not None and config.int8:
            from pipeline.models.sentiment import quantize_int8

            state["model"] = await asyncio.get_running_loop().run_in_executor(executor, quantize_int8, state["model"])
            state["source"] += ", int8"
        metrics.model_loaded.set(state["model"] is not None)
        observe = metrics.batch_size.observe
        runner = (MicroBatcher(infer, executor, max_batch_size=config.max_batch_size, max_wait_ms=config.max_wait_ms,
                               max_queue=config.max_queue, on_batch=observe)
                  if config.batching else DirectRunner(infer, executor, on_batch=observe))
        await runner.start()
        app.state.runner = runner
        try:
            yield
        finally:
            await runner.stop()
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="mlpath sentiment API", version="1.0",
                  description="Sentiment of English sentences (SST-2 style) from the registry's champion "
                              "`mlpath-sentiment`, with micro-batching, Prometheus metrics and a drift report.",
                  lifespan=lifespan)
    app.state.config, app.state.metrics, app.state.window, app.state.model_state = config, metrics, window, state
    PredictRequest = request_model(config.max_texts, config.max_chars)

    app.add_middleware(_BodyLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(_RequestMetrics, metrics=metrics)  # outermost: a 413 is counted too

    def unavailable(reason: str, retry: bool = False) -> JSONResponse:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if retry else None
        return JSONResponse({"detail": reason}, status_code=503, headers=headers)

    errors = {400: {"model": ErrorBody, "description": "the body cannot be read (not UTF-8, a bad Content-Length)"},
              413: {"model": ErrorBody, "description": "the body is over the size limit"},
              422: {"description": "the body is not valid JSON or breaks the schema's limits"},
              503: {"model": ErrorBody, "description": "no model loaded, or the inference queue is full"}}

    @app.post("/predict", response_model=PredictResponse, responses=errors,
              summary="Sentiment of one text or a list of texts")
    async def predict(body: Annotated[PredictRequest, Body()]) -> PredictResponse | JSONResponse:
        if state["model"] is None:
            return unavailable(state["reason"] or "the model is still loading")
        texts = body.texts if hasattr(body, "texts") else [body.text]
        try:
            rows = await app.state.runner.submit(texts)
        except QueueFullError as error:
            return unavailable(f"overloaded: {error}; retry shortly", retry=True)
        finally:
            metrics.queue_depth.set(app.state.runner.depth)
        probabilities = np.array([row[0] for row in rows])
        window.add(_stats_from_rows([row[1] for row in rows]), positive_probability(probabilities))
        labels = state["model"].labels
        predictions = []
        for p in probabilities.tolist():
            best = int(np.argmax(p))
            metrics.predictions.labels(labels[best]).inc()
            predictions.append({"label": labels[best], "probability": p[best], "probabilities": dict(zip(labels, p))})
        # built as PredictResponse documents it; returned as JSON directly (no second validation pass)
        return JSONResponse({"predictions": predictions, "model": state["source"]})

    @app.get("/health", response_model=Health, summary="Liveness: the process answers")
    async def health() -> Health:
        return Health(status="ok")

    @app.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}},
             summary="Readiness: a model is loaded")
    async def ready() -> Readiness | JSONResponse:
        if state["model"] is None:
            return JSONResponse(Readiness(ready=False, reason=state["reason"] or "the model is still loading")
                                .model_dump(), status_code=503)
        return Readiness(ready=True, model=state["source"])

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}})
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/monitoring/drift", summary="Drift of recent traffic against the model's reference statistics")
    async def drift() -> dict:
        reference = None if state["model"] is None else state["model"].reference
        report = drift_report(reference, window.snapshot(), psi_threshold=config.psi_threshold,
                              coverage_drop=config.coverage_drop, min_window=config.min_window)
        for name in ("length_psi", "probability_psi"):
            if name in report["metrics"]:
                metrics.drift_psi.labels(name.removesuffix("_psi")).set(report["metrics"][name])
        return {**report, "model": state["source"], "texts_seen": window.seen}

    return app


def _stats_rows(stats) -> list[tuple[int, int]]:
    return list(zip(stats.n_words.tolist(), stats.n_whole.tolist()))


def _stats_from_rows(rows: list[tuple[int, int]]):
    from pipeline.serving.monitoring import TextStats

    array = np.array(rows, dtype=int).reshape(-1, 2)
    return TextStats(array[:, 0], array[:, 1])
