"""Unit 3 — Calculus and gradient descent (planned: no flow yet)."""

from pipeline.units.spec import UnitSpec

SPEC = UnitSpec(
    id="unit03",
    number=3,
    title="Calculus and gradient descent",
    phase=1,
    topics=(
        "derivatives, partial derivatives and the chain rule",
        "gradients",
        "gradient descent and the learning rate",
        "momentum and Adam",
    ),
    challenge=("Gradient descent on least squares converging to the closed-form solution; optimizers "
               "step for step equal to torch.optim."),
    datasets=(),
)
