"""Unit 15, optimizers: each from-scratch optimizer against torch.optim step for step (float64),
argument checks, the audit (and that it fails on a wrong optimizer), Rosenbrock behaviour, and the
MNIST comparison on tiny data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from pipeline.audit import AuditFailedError, raise_for_failures
from pipeline.audit.optimizers import CASES, TOL, TORCH_TWINS, audit_optimizers
from pipeline.features import Split
from pipeline.lessons import optimizers as lesson
from pipeline.scratch.optimizers import (
    OPTIMIZERS,
    SGD,
    Adam,
    AdamW,
    RMSprop,
    make,
    rosenbrock,
    rosenbrock_gradient,
    rosenbrock_hessian,
)

SHAPES = ((4, 3), (3,))


def _run_both(name: str, hyper: dict, steps: int = 25, seed: int = 0):
    """Ours and torch's twin on the same float64 start and gradients; yields after every step."""
    rng = np.random.default_rng(seed)
    start = [rng.normal(size=shape) for shape in SHAPES]
    ours_params = [p.copy() for p in start]
    theirs_params = [torch.tensor(p, requires_grad=True) for p in start]
    ours = make(name, ours_params, **hyper)
    theirs = getattr(torch.optim, TORCH_TWINS[name])(theirs_params, **hyper)
    for _ in range(steps):
        grads = [rng.normal(size=shape) for shape in SHAPES]
        ours.step(grads)
        for p, g in zip(theirs_params, grads):
            p.grad = torch.from_numpy(g.copy())
        theirs.step()
        yield ours, ours_params, theirs, theirs_params


# --- against torch.optim ----------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "hyper"), list(CASES.values()), ids=list(CASES))
def test_parameters_and_state_equal_torch_step_for_step(name, hyper):
    for ours, ours_params, theirs, theirs_params in _run_both(name, hyper):
        for i, (a, b) in enumerate(zip(ours_params, theirs_params)):
            np.testing.assert_allclose(a, b.detach().numpy(), rtol=0, atol=TOL)
            theirs_state = theirs.state[b]
            assert set(ours.state[i]) <= set(theirs_state)  # our state is a subset of torch's, by its names
            for key, value in ours.state[i].items():
                np.testing.assert_allclose(value, torch.as_tensor(theirs_state[key]).numpy(), rtol=0, atol=TOL)


def test_in_practice_the_difference_is_rounding():
    *_, (_, ours_params, _, theirs_params) = _run_both("adam", {"lr": 0.01, "weight_decay": 1e-2}, steps=100)
    assert max(float(np.abs(a - b.detach().numpy()).max()) for a, b in zip(ours_params, theirs_params)) < 1e-14


def test_the_learning_rate_is_read_at_every_step_as_a_scheduler_sets_it():
    params = [np.ones(3)]
    sgd = SGD(params, lr=0.1, momentum=0.9)
    sgd.step([np.ones(3)])
    sgd.lr = 0.0
    before = params[0].copy()
    sgd.step([np.ones(3)])  # torch's form: the buffer holds gradients, lr multiplies it now
    np.testing.assert_array_equal(params[0], before)


def test_parameters_are_updated_in_place_and_gradients_left_alone():
    W, b = np.ones((2, 3), np.float32), np.zeros(3, np.float32)
    grads = [np.full((2, 3), 0.5, np.float32), np.full(3, -1.0, np.float32)]
    copies = [g.copy() for g in grads]
    for cls in (SGD, RMSprop, Adam, AdamW):
        optimizer = cls([W, b], lr=0.1) if cls is not SGD else cls([W, b], lr=0.1, momentum=0.9, weight_decay=0.1)
        before = W.copy()
        optimizer.step(grads)
        optimizer.step(grads)
        assert optimizer.params[0] is W and not np.array_equal(W, before)
        assert W.dtype == np.float32 and all(v.dtype == np.float32 for v in optimizer.state[0].values()
                                             if isinstance(v, np.ndarray))
        for g, copy in zip(grads, copies):
            np.testing.assert_array_equal(g, copy)


def test_first_steps_show_the_textbook_magnitudes():
    # Adam's bias correction makes the first step lr * sign(g); RMSprop's missing one makes it
    # lr / sqrt(1 - alpha) = 10 lr for alpha = 0.99.
    g = np.array([1e-3, -5.0, 40.0])
    adam_p, rms_p = np.zeros(3), np.zeros(3)
    Adam([adam_p], lr=0.01, eps=0.0).step([g])
    RMSprop([rms_p], lr=0.01, eps=0.0).step([g])
    np.testing.assert_allclose(adam_p, -0.01 * np.sign(g), rtol=1e-12)
    np.testing.assert_allclose(rms_p, -0.1 * np.sign(g), rtol=1e-12)


def test_adamw_decays_every_weight_alike_and_adam_l2_does_not():
    # The second weight has no gradient of its own. AdamW shrinks it by a factor (1 - lr·λ) a step,
    # whatever the gradients; with L2 its whole gradient is λp, which Adam normalises to steps of
    # ~lr, so it collapses far faster: under L2, how hard a weight decays depends on its gradients.
    decoupled, coupled = [np.ones(2)], [np.ones(2)]
    adamw = AdamW(decoupled, lr=0.01, weight_decay=0.1)
    adam = Adam(coupled, lr=0.01, weight_decay=0.1)
    rng = np.random.default_rng(0)
    for _ in range(200):
        g = np.array([100.0 * rng.normal(), 0.0])
        adamw.step([g])
        adam.step([g])
    assert abs(decoupled[0][1] - (1 - 0.01 * 0.1) ** 200) < 1e-12  # no gradient: decay alone
    assert abs(coupled[0][1]) < 0.2


# --- argument checks -------------------------------------------------------------------------------

@pytest.mark.parametrize(("cls", "kwargs", "message"), [
    (SGD, {"lr": -0.1}, "lr must be >= 0"),
    (RMSprop, {"lr": -1e-3}, "lr must be >= 0"),
    (Adam, {"lr": -1e-3}, "lr must be >= 0"),
    (AdamW, {"lr": -1e-3}, "lr must be >= 0"),
    (SGD, {"lr": 0.1, "momentum": -0.5}, "momentum must be >= 0"),
    (SGD, {"lr": 0.1, "weight_decay": -1.0}, "weight_decay must be >= 0"),
    (SGD, {"lr": 0.1, "nesterov": True}, "Nesterov momentum requires a momentum"),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}, "zero dampening"),
    (RMSprop, {"alpha": -0.9}, "alpha must be >= 0"),
    (RMSprop, {"eps": -1e-8}, "eps must be >= 0"),
    (Adam, {"betas": (1.0, 0.999)}, r"betas\[0\] must be in \[0, 1\)"),
    (Adam, {"betas": (0.9, -0.1)}, r"betas\[1\] must be in \[0, 1\)"),
    (AdamW, {"betas": (0.9, 1.5)}, r"betas\[1\] must be in \[0, 1\)"),
    (Adam, {"lr": float("nan")}, "lr must be >= 0"),
])
def test_bad_arguments_raise_a_clear_value_error(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls([np.zeros(2)], **kwargs)


@pytest.mark.parametrize(("cls", "kwargs"), [
    (SGD, {"lr": 0.1, "nesterov": True}),
    (Adam, {"betas": (1.0, 0.999)}),
    (SGD, {"lr": -0.1}),
])
def test_torch_refuses_the_same_arguments(cls, kwargs):
    with pytest.raises(ValueError):
        getattr(torch.optim, cls.__name__)([torch.zeros(2, requires_grad=True)], **kwargs)


def test_bad_parameters_and_gradients_are_refused():
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="floating-point numpy array"):
        SGD([np.zeros(3, dtype=int)], lr=0.1)
    with pytest.raises(TypeError, match="floating-point numpy array"):
        SGD([[0.0, 1.0]], lr=0.1)
    optimizer = Adam([np.zeros(3), np.zeros(2)])
    with pytest.raises(ValueError, match="1 gradients for 2 parameters"):
        optimizer.step([np.zeros(3)])
    with pytest.raises(ValueError, match=r"gradient 1 has shape \(3,\), its parameter \(2,\)"):
        optimizer.step([np.zeros(3), np.zeros(3)])
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'; known: sgd, rmsprop, adam, adamw"):
        make("adagrad", [np.zeros(2)])


# --- the audit --------------------------------------------------------------------------------------

class TextbookMomentum(SGD):
    """v = μ v - lr g; p = p + v: right in the textbooks, and equal to torch's SGD while lr is constant."""

    def _update(self, p, g, state):
        velocity = state.setdefault("velocity", np.zeros_like(p))
        velocity *= self.momentum
        velocity -= self.lr * g
        p += velocity


class CoupledAdamW(AdamW):
    """AdamW whose decay goes through the gradient, as Adam's L2 does."""

    def __init__(self, params, **hyper):
        super().__init__(params, **hyper)
        self.decoupled_weight_decay = False


class EpsInsideTheRoot(Adam):
    """The paper's Adam with eps under the square root, ``m̂ / sqrt(v̂ + eps)``: torch adds it outside."""

    def _update(self, p, g, state):
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(p), exp_avg_sq=np.zeros_like(p))
        state["step"] += 1
        (beta1, beta2), t = self.betas, state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1 - beta1) * (g - m)
        v *= beta2
        v += (1 - beta2) * g * g
        p -= self.lr * (m / (1 - beta1**t)) / np.sqrt(v / (1 - beta2**t) + self.eps)


def test_audit_passes_for_every_case():
    report = audit_optimizers()
    assert report.passed, report.table()
    assert len(report.findings) == len(CASES) + 5
    raise_for_failures(report)


def test_textbook_momentum_agrees_at_a_constant_rate_but_the_audit_catches_it():
    params, theirs = [np.ones(3)], [torch.ones(3, dtype=torch.float64, requires_grad=True)]
    ours, twin = TextbookMomentum(params, lr=0.1, momentum=0.9), torch.optim.SGD(theirs, lr=0.1, momentum=0.9)
    for step in range(5):
        g = np.full(3, float(step + 1))
        ours.step([g])
        theirs[0].grad = torch.from_numpy(g.copy())
        twin.step()
    np.testing.assert_allclose(params[0], theirs[0].detach().numpy(), atol=1e-12)

    case = {"SGD, momentum": CASES["SGD, momentum"]}
    report = audit_optimizers(case, {}, optimizers={**OPTIMIZERS, "sgd": TextbookMomentum})
    assert not report.passed
    with pytest.raises(AuditFailedError, match="SGD, momentum: random gradients"):
        raise_for_failures(report)


def test_audit_fails_adamw_with_coupled_weight_decay():
    cases = {"AdamW": CASES["AdamW"]}
    rosenbrock_cases = {"AdamW": ("adamw", {"lr": 1e-2})}
    report = audit_optimizers(cases, rosenbrock_cases, optimizers={**OPTIMIZERS, "adamw": CoupledAdamW})
    assert [f.passed for f in report.findings] == [False, False]


class NaNAdam(Adam):
    """An optimizer that breaks down: NaN from the first step."""

    def _update(self, p, g, state):
        p[...] = np.nan


def test_audit_fails_on_nan_rather_than_skipping_it():
    report = audit_optimizers({"Adam": CASES["Adam"]}, {"Adam": ("adam", {"lr": 1e-2})},
                              optimizers={**OPTIMIZERS, "adam": NaNAdam})
    assert [f.passed for f in report.findings] == [False, False]
    assert "max |diff| = inf" in report.findings[0].detail


def test_audit_catches_eps_in_the_wrong_place():
    # Only the gradients at scale 1e-8 (where sqrt(v) is the size of eps) tell the two apart.
    report = audit_optimizers({"Adam": CASES["Adam"]}, {}, optimizers={**OPTIMIZERS, "adam": EpsInsideTheRoot})
    assert not report.passed


# --- Rosenbrock -------------------------------------------------------------------------------------

def test_rosenbrock_gradient_and_hessian_equal_autograd():
    def loss(xy):
        return (1 - xy[0]) ** 2 + 100 * (xy[1] - xy[0] ** 2) ** 2

    for point in ([-1.5, 2.0], [1.0, 1.0], [0.3, -0.7]):
        xy = torch.tensor(point, dtype=torch.float64, requires_grad=True)
        loss(xy).backward()
        np.testing.assert_allclose(rosenbrock_gradient(np.array(point)), xy.grad.numpy(), rtol=1e-14, atol=1e-14)
        hessian = torch.autograd.functional.hessian(loss, xy.detach())
        np.testing.assert_allclose(rosenbrock_hessian(np.array(point)), hessian.numpy(), rtol=1e-14, atol=1e-12)
    assert rosenbrock(np.array([1.0, 1.0])) == 0.0
    # Curvature ~1000 across the valley, ~0.4 along it, at the minimum: SGD's rate is capped by the first.
    assert lesson.sgd_stability_limit() == pytest.approx(2 / 1001.6, rel=1e-4)


def test_rosenbrock_descents_fall_and_adam_reaches_the_minimum():
    descents = lesson.rosenbrock_descents("quick")
    assert list(descents) == list(lesson.ROSENBROCK_OPTIMIZERS)
    for run in descents.values():
        assert run.diverged_at is None and run.losses[-1] < 1e-2 * run.losses[0]
        assert run.path.shape == (lesson.ROSENBROCK_STEPS["quick"] + 1, 2)
    adam, sgd = descents["Adam"], descents["SGD"]
    assert adam.losses[-1] < 1e-12 and np.linalg.norm(adam.path[-1] - 1.0) < 1e-6
    assert sgd.steps_to_threshold is None  # plain gradient descent is still crawling along the valley
    assert descents["momentum"].steps_to_threshold < 2 * adam.steps_to_threshold

    table = lesson.rosenbrock_table(descents)
    assert table.loc["SGD", "steps to loss < 0.001"] == "not reached"
    assert table.loc["Adam", "steps to loss < 0.001"] == adam.steps_to_threshold
    assert table.loc["Adam", "distance to (1, 1)"] < 1e-6


def test_a_divergent_rate_is_stopped_and_reported():
    run = lesson.descend_rosenbrock("SGD", "sgd", {"lr": 0.01}, steps=500)
    assert run.diverged_at is not None and run.diverged_at < 50
    assert np.all(np.isfinite(run.path)) and len(run.path) == run.diverged_at
    assert lesson.rosenbrock_table({"SGD": run}).loc["SGD", "diverged at step"] == run.diverged_at


# --- MNIST ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_mnist() -> Split:
    from pipeline.data import load_dataset
    from pipeline.features import image_split

    split = image_split(load_dataset("mnist", "quick"), flatten=True)
    return Split(split.X_train[:300], split.X_test[:100], split.y_train[:300], split.y_test[:100])


def test_mnist_comparison_runs_every_optimizer_on_the_same_start(tiny_mnist):
    epochs, batch = 2, lesson.MNIST["quick"]["batch_size"]
    comparison = lesson.compare_optimizers(tiny_mnist, "quick", seed=0, epochs=epochs, rosenbrock_steps=200)
    runs = comparison.runs
    assert list(runs) == list(lesson.MNIST_OPTIMIZERS)
    assert all(len(run.losses) == 201 for run in comparison.descents.values())
    first = {label: run.history["test_loss"][0] for label, run in runs.items()}
    assert len(set(first.values())) == 1  # the same initial weights for everyone
    for run in runs.values():
        assert len(run.history["step_loss"]) == epochs * -(-300 // batch)
        assert len(run.history["test_loss"]) == epochs + 1
        assert run.history["test_loss"][-1] < run.history["test_loss"][0]
        assert run.net.layer_sizes == (784, *lesson.MNIST["quick"]["hidden"], 10)

    tables = comparison.tables()
    mnist = tables["mnist_optimizers"]
    assert list(mnist.index) == list(lesson.MNIST_OPTIMIZERS)
    assert list(mnist.columns) == ["settings", "train loss", "test loss", "test accuracy", "seconds"]
    assert (mnist["test accuracy"] > 0.5).all() and (mnist["seconds"] > 0).all()
    assert isinstance(tables["rosenbrock"], pd.DataFrame)

    figures = comparison.figures()
    assert set(figures) == set(lesson.CAPTIONS)
    assert all(isinstance(fig, Figure) for fig in figures.values())

    metrics = comparison.metrics()
    assert len(metrics) == 2 * len(lesson.ROSENBROCK_OPTIMIZERS) + 3 * len(lesson.MNIST_OPTIMIZERS)
    assert all(np.isfinite(value) for value in metrics.values())
    assert metrics["mnist_adam_test_accuracy"] == mnist.loc["Adam", "test accuracy"]


def test_mnist_runs_are_reproducible_and_the_optimizer_is_the_only_difference(tiny_mnist):
    only_sgd = {"SGD": lesson.MNIST_OPTIMIZERS["SGD"]}
    a = lesson.mnist_runs(tiny_mnist, "quick", seed=3, optimizers=only_sgd)["SGD"]
    b = lesson.mnist_runs(tiny_mnist, "quick", seed=3, optimizers=only_sgd)["SGD"]
    assert a.history["step_loss"] == b.history["step_loss"]
    for W_a, W_b in zip(a.net.weights, b.net.weights):
        np.testing.assert_array_equal(W_a, W_b)
