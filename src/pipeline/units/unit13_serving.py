"""Unit 13 — Serving a model: API, batching, monitoring (planned: no flow yet)."""

from pipeline.units.spec import UnitSpec

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
    datasets=(),
)
