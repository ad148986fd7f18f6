"""Capstone — Capstone: an end-to-end ML system (planned: no flow yet)."""

from pipeline.units.spec import UnitSpec

SPEC = UnitSpec(
    id="capstone",
    number=17,
    title="Capstone: an end-to-end ML system",
    phase=4,
    topics=(
        "an end-to-end ML system",
        "validation, training, registry, serving",
        "monitoring and retraining",
    ),
    challenge=("One system from raw data to a monitored, retrained model in production shape."),
    datasets=(),
)
