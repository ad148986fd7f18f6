"""Unit 13 — serving the sentiment model: API, micro-batching, monitoring."""

from pydantic import Field

from pipeline.params import UnitParams
from pipeline.units.spec import Experiment, Reference, Schedule, ServiceMonitor, UnitSpec


class Unit13Params(UnitParams):
    model: str = Field("models:/mlpath-sentiment@champion",
                       description="what to serve: an MLflow model URI or a folder saved by SentimentModel.save")
    fallback_base: bool = Field(True, description="when the registry has no such model, serve the base MiniLM "
                                                  "with an untrained head (same compute, chance accuracy)")
    max_batch_size: int = Field(32, ge=1, le=256, description="texts per forward pass with micro-batching")
    max_wait_ms: float = Field(5.0, ge=0, le=200, description="how long a batch waits for more requests")
    psi_threshold: float = Field(0.2, gt=0, le=5, description="PSI past which the drift report says drifted")


SPEC = UnitSpec(
    id="unit13",
    number=13,
    title="Serving a model: API, batching, monitoring",
    phase=4,
    topics=(
        "model serving with FastAPI",
        "input validation",
        "request batching",
        "loading from the model registry",
        "latency and drift monitoring",
    ),
    challenge=("Serve the registry's champion behind an API with batching and a drift monitor, and "
               "measure its latency."),
    params=Unit13Params,
    flow="flows.unit13_serving:unit13_serving",
    datasets=("sst2",),
    # The unit registers a run, not a model: it serves Unit 11's champion (`mlpath-sentiment`), whose
    # champion/challenger decision stays Unit 11's, on accuracy. What this unit measures is the
    # service, so its primary metric is the throughput it sustains at 32 concurrent clients with
    # micro-batching; runs are compared on it, no model version is promoted by it.
    primary_metric="batched_rps_c32",
    schedule=Schedule("0 7 * * 1", why="re-measures the service of whatever Unit 11's champion is now"),
    references=(
        Reference("Micro-batching goal at 32 concurrent clients", "≥ 3× the unbatched requests/s, p99 ≤ 250 ms",
                  "this project's issue 16 (2 shared CPU cores)", "speedup_c32"),
        Reference("PSI reading", "< 0.1 stable, 0.1–0.2 moderate, > 0.2 shift",
                  "common credit-scoring practice (e.g. Yurdakul 2018, “Statistical properties of the population "
                  "stability index”)", "drift_phrases_length_psi"),
    ),
    # hourly: the running API's drift report; past the thresholds, Unit 11 retrains the served model
    service_monitor=ServiceMonitor("http://127.0.0.1:8000", retrains="unit11", psi_threshold=0.2, coverage_drop=0.05),
    notes="docs/unit13_serving.md",
    notebook="notebooks/unit13_serving.ipynb",
    quick="48 requests per concurrency level and mode (full: 600), 120 dev sentences evaluated through the API "
          "(full: all 872) and shifted batches of 200 texts (full: 872)",
    try_next=(
        Experiment(("max_batch_size=8",), "smaller batches: less padding waste, but at 32 clients the queue "
                                          "drains four forward passes per round; throughput falls toward the "
                                          "unbatched line"),
        Experiment(("max_wait_ms=0",), "no waiting for company: batches still form from requests that queued "
                                       "during the previous forward pass, so the speed-up mostly survives"),
        Experiment(("max_wait_ms=50",), "waiting longer fills batches at low concurrency but adds up to 50 ms "
                                        "to every request at 1 client: watch p50 at concurrency 1"),
    ),
    learned=(
        "A model behind an API is judged on what a model run never shows: requests per second, tail latency, "
        "behaviour under bad input and under overload.",
        "Validate at the boundary: a body-size limit before parsing, then a schema with lengths and counts, so "
        "every bad request is a 4xx with a reason, and a fuzzer reading the same OpenAPI schema finds no 5xx.",
        "Micro-batching trades a few milliseconds of waiting for one forward pass over many requests; a bounded "
        "queue turns overload into a fast 503 with Retry-After instead of unbounded latency.",
        "Labels never reach a service: monitor inputs (length, vocabulary coverage) and outputs (prediction "
        "mix) against statistics saved at registration, and let a drift threshold trigger retraining.",
    ),
    sources=("src/pipeline/serving/app.py", "src/pipeline/serving/batching.py", "src/pipeline/serving/monitoring.py",
             "src/pipeline/lessons/serving.py", "flows/unit13_serving.py"),
)
