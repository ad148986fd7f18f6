"""Unit 15 — Distributed training (planned: no flow yet)."""

from pipeline.units.spec import UnitSpec

SPEC = UnitSpec(
    id="unit15",
    number=15,
    title="Distributed training",
    phase=4,
    topics=(
        "data parallelism",
        "all-reduce",
        "multi-process and multi-host training",
        "scaling efficiency",
    ),
    challenge=("Data-parallel training across processes, its speed-up measured and its accuracy equal to "
               "the single-process run."),
    datasets=(),
)
