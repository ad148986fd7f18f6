"""Unit 3 — calculus and gradient descent: batch, stochastic and mini-batch, on a generated line."""

from pydantic import Field

from pipeline.params import UnitParams
from pipeline.units.spec import Experiment, Schedule, UnitSpec


class Unit03Params(UnitParams):
    learning_rate: float = Field(0.1, gt=0, le=10, description="batch GD's step size, also the 'good' rate "
                                                               "of the learning-rate figure")
    minibatch_learning_rate: float = Field(0.05, gt=0, le=10, description="mini-batch GD's step size")
    sgd_learning_rate: float = Field(0.01, gt=0, le=10, description="stochastic GD's step size")
    decay: float = Field(1.0, ge=0, le=100, description="SGD and mini-batch step in epoch e: "
                                                        "rate / (1 + decay · e); batch GD keeps its step")
    batch_size: int = Field(32, ge=1, le=1000, description="rows per mini-batch update")
    epochs: int | None = Field(None, ge=1, le=1000, description="passes of SGD and mini-batch over the "
                                                                "training rows (None: quick 10, full 50)")
    iterations: int | None = Field(None, ge=1, le=100_000, description="batch GD updates (None: quick 200, "
                                                                       "full 1000)")
    too_small_learning_rate: float = Field(0.001, gt=0, le=10, description="the 'too small' rate of the "
                                                                           "learning-rate figure")
    divergent_learning_rate: float = Field(0.5, gt=0, le=10, description="the 'too large' rate of the "
                                                                         "learning-rate figure")


SPEC = UnitSpec(
    id="unit03",
    number=3,
    title="Calculus and gradient descent (a generated line)",
    phase=1,
    topics=(
        "derivatives, partial derivatives and the chain rule",
        "gradients, checked against central differences",
        "batch, stochastic and mini-batch gradient descent",
        "the learning rate: too small, good, divergent",
    ),
    challenge=("Fit y = m·x + b with batch, stochastic and mini-batch gradient descent written from "
               "scratch; each reaches np.linalg.lstsq's (m, b) within a stated tolerance, and a divergent "
               "learning rate is detected and reported, not left as NaNs."),
    params=Unit03Params,
    flow="flows.unit03_gradient_descent:unit03_gradient_descent",
    datasets=("line",),
    primary_metric="test_mse",
    greater_is_better=False,
    schedule=Schedule("30 1 * * 1"),
    notes="docs/unit03_gradient_descent.md",
    notebook="notebooks/unit03_gradient_descent.ipynb",
    quick="SGD and mini-batch 10 epochs instead of 50, batch GD 200 updates instead of 1,000",
    try_next=(
        Experiment(("divergent_learning_rate=0.36",),
                   "a rate just above the stability limit 2/λ_max ≈ 0.34: the loss still explodes, "
                   "only later than at 0.5"),
        Experiment(("batch_size=8",),
                   "mini-batch moving toward SGD: four times the updates per epoch, a noisier curve, "
                   "ahead of the 32-row batches per example seen"),
        Experiment(("decay=0.1",),
                   "SGD with a nearly constant step: its loss curve stays a noisy band above the "
                   "least-squares MSE"),
    ),
    learned=(
        "A derivative is the slope of the loss along one parameter; the gradient collects them all, "
        "and the chain rule multiplies local derivatives: dL/dm = 2(m·x + b − y) · x.",
        "An analytic gradient is checked against central differences (f(θ+ε) − f(θ−ε)) / 2ε; on the "
        "MSE they agree to about 1e-10 (relative).",
        "Batch, stochastic and mini-batch gradient descent are one loop: they differ only in how "
        "many rows estimate the gradient before each step.",
        "Per example seen, SGD gets close fastest; batch GD's steps are exact and it ends on the "
        "least-squares solution to rounding (audited at 1e-6); the stochastic variants need a "
        "shrinking step to settle.",
        "The learning rate has a hard ceiling on a quadratic loss, 2/λ_max of the Hessian: below it "
        "the loss falls (slowly when the rate is tiny), above it the loss explodes geometrically.",
    ),
    sources=("src/pipeline/scratch/gradient_descent.py", "src/pipeline/lessons/gradient_descent.py",
             "src/pipeline/audit/gradient_descent.py", "flows/unit03_gradient_descent.py"),
)
