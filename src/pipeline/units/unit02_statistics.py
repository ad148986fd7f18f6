"""Unit 2 — Statistics and probability (planned: no flow yet)."""

from pipeline.units.spec import UnitSpec

SPEC = UnitSpec(
    id="unit02",
    number=2,
    title="Statistics and probability",
    phase=1,
    topics=(
        "descriptive statistics",
        "probability distributions",
        "sampling and the central limit theorem",
        "confidence intervals and the bootstrap",
        "hypothesis tests",
        "Bayes' rule",
    ),
    challenge=("Measure rather than fit: describe a real dataset, bootstrap confidence intervals and "
               "test a hypothesis, each number checked against scipy.stats."),
    datasets=("titanic",),
)
