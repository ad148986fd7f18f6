"""Unit 3: the calculus against finite differences, the three variants against np.linalg.lstsq,
divergence caught and reported, the estimator contract, the dataset, and the flow on quick."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.utils.estimator_checks import check_estimator

from pipeline.audit.gradient_descent import BATCH_TOL, STOCHASTIC_TOL, audit_gradient_descent
from pipeline.scratch.gradient_descent import (
    DESCENT,
    DivergenceError,
    GradientDescentRegressor,
    batch_gd,
    chain_rule_gradient,
    design_matrix,
    minibatch_gd,
    mse_gradient,
    mse_loss,
    numerical_gradient,
    stability_limit,
    stochastic_gd,
)
from pipeline.units.unit03_gradient_descent import Unit03Params


def line(n: int = 400, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, size=(n, 1))
    return x, 3.0 * x[:, 0] + 2.0 + rng.normal(0.0, 1.0, size=n)


def lstsq(X, y) -> np.ndarray:
    return np.linalg.lstsq(design_matrix(X), y, rcond=None)[0]


# --- calculus ----------------------------------------------------------------------------------


@pytest.mark.parametrize("theta", [np.zeros(2), np.array([3.0, 2.0]), np.array([-4.0, 7.5])])
def test_analytic_gradient_equals_central_differences(theta):
    X, y = line()
    D = design_matrix(X)
    analytic = mse_gradient(theta, D, y)
    numeric = numerical_gradient(lambda t: mse_loss(t, D, y), theta)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-7)


def test_gradient_is_zero_at_the_least_squares_solution():
    X, y = line()
    np.testing.assert_allclose(mse_gradient(lstsq(X, y), design_matrix(X), y), 0.0, atol=1e-10)


def test_chain_rule_multiplies_local_derivatives_and_matches_finite_differences():
    m, b, x, y = 1.5, -0.5, 2.0, 4.0
    pieces = chain_rule_gradient(m, b, x, y)
    u = m * x + b - y
    assert pieces["dL/dm"] == pytest.approx(2 * u * x) and pieces["dL/db"] == pytest.approx(2 * u)
    numeric = numerical_gradient(lambda t: (t[0] * x + t[1] - y) ** 2, np.array([m, b]))
    np.testing.assert_allclose([pieces["dL/dm"], pieces["dL/db"]], numeric, rtol=1e-8)


def test_stability_limit_is_two_over_the_largest_hessian_eigenvalue():
    X, _ = line()
    D = design_matrix(X)
    hessian = numerical_gradient(lambda t: mse_gradient(t, D, np.zeros(len(D)))[0], np.zeros(2))
    assert hessian[0] == pytest.approx(2 * np.mean(X[:, 0] ** 2), rel=1e-6)
    assert stability_limit(X) == pytest.approx(2 / np.linalg.eigvalsh(2 * D.T @ D / len(D)).max())


# --- the three variants ------------------------------------------------------------------------


@pytest.mark.parametrize(("descend", "kwargs", "tol"), [
    (batch_gd, {"learning_rate": 0.1, "epochs": 300}, BATCH_TOL),
    (stochastic_gd, {"learning_rate": 0.01, "epochs": 10, "decay": 1.0}, STOCHASTIC_TOL),
    (minibatch_gd, {"learning_rate": 0.05, "epochs": 10, "decay": 1.0, "batch_size": 32}, STOCHASTIC_TOL),
], ids=["batch", "sgd", "minibatch"])
def test_each_variant_converges_to_lstsq_within_its_tolerance(descend, kwargs, tol):
    X, y = line()
    result = descend(X, y, **kwargs)
    assert not result.diverged
    np.testing.assert_allclose(result.theta, lstsq(X, y), atol=tol)
    assert np.all(np.isfinite(result.losses)) and result.losses[-1] < result.losses[0]
    assert len(result.losses) == len(result.examples_seen) == len(result.path) == result.n_updates + 1


def test_updates_and_examples_seen_per_variant():
    X, y = line(n=100)
    batch = batch_gd(X, y, 0.1, 3)
    sgd = stochastic_gd(X, y, 0.01, 3)
    mini = minibatch_gd(X, y, 0.05, 3, batch_size=32)  # 32 + 32 + 32 + 4 rows per epoch
    assert (batch.n_updates, sgd.n_updates, mini.n_updates) == (3, 300, 12)
    assert batch.examples_seen[-1] == sgd.examples_seen[-1] == mini.examples_seen[-1] == 300
    assert list(mini.examples_seen[1:5]) == [32, 64, 96, 100]


def test_batch_gd_is_monotone_and_stops_at_tol():
    X, y = line()
    result = batch_gd(X, y, 0.1, 10_000, tol=1e-8)
    assert result.converged and result.n_updates < 10_000
    assert np.all(np.diff(result.losses) <= 1e-12)


@pytest.mark.parametrize("descend", list(DESCENT.values()), ids=list(DESCENT))
def test_divergence_is_detected_and_reported_without_nans(descend):
    X, y = line()
    result = descend(X, y, 5.0, 50)
    assert result.diverged and result.diverged_at == result.n_updates + 1
    assert np.all(np.isfinite(result.losses)) and np.all(np.isfinite(result.path))
    assert np.all(np.isfinite(result.theta))
    assert "diverged at update" in result.describe()


def test_a_rate_just_above_the_limit_diverges_and_just_below_converges():
    X, y = line()
    limit = stability_limit(X)
    assert batch_gd(X, y, 1.05 * limit, 2000).diverged
    below = batch_gd(X, y, 0.95 * limit, 2000)
    assert not below.diverged
    np.testing.assert_allclose(below.theta, lstsq(X, y), atol=BATCH_TOL)


def test_same_seed_same_run_and_shuffles_differ_by_seed():
    X, y = line()
    a, b, c = (stochastic_gd(X, y, 0.01, 2, seed=s) for s in (0, 0, 1))
    np.testing.assert_array_equal(a.losses, b.losses)
    assert not np.array_equal(a.losses, c.losses)


# --- the estimator -----------------------------------------------------------------------------


# These checks fit on X ~ N(100, 1), unscaled: the stability limit there is about 1e-4, so any of
# the rates below diverges, and fit raises DivergenceError, by design (see the test after).
UNSCALED = {check: "X ~ N(100, 1): the rate is above the stability limit, fit raises DivergenceError"
            for check in ("check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in")}


@pytest.mark.parametrize(("variant", "learning_rate", "epochs"), [
    ("batch", 0.01, 3000), ("sgd", 0.01, 20), ("minibatch", 0.02, 50)])
def test_estimator_passes_sklearn_check_estimator(variant, learning_rate, epochs):
    check_estimator(GradientDescentRegressor(variant=variant, learning_rate=learning_rate, epochs=epochs),
                    expected_failed_checks=UNSCALED)


def test_unscaled_features_diverge_and_say_so():
    X = np.random.default_rng(0).normal(100.0, 1.0, size=(50, 2))
    y = X.sum(axis=1)
    assert stability_limit(X) < 1e-3
    with pytest.raises(DivergenceError, match="lower learning_rate"):
        GradientDescentRegressor("batch", learning_rate=0.01).fit(X, y)
    model = GradientDescentRegressor("batch", learning_rate=0.5 * stability_limit(X), epochs=50).fit(X, y)
    assert model.loss_history_[-1] < model.loss_history_[0]


def test_estimator_fits_lstsq_and_scores_like_linear_regression():
    from sklearn.linear_model import LinearRegression

    X, y = line()
    model = GradientDescentRegressor("batch", learning_rate=0.1, epochs=500).fit(X, y)
    np.testing.assert_allclose(np.append(model.coef_, model.intercept_), lstsq(X, y), atol=BATCH_TOL)
    np.testing.assert_allclose(cross_val_score(model, X, y, cv=3), cross_val_score(LinearRegression(), X, y, cv=3),
                               atol=1e-9)
    assert not hasattr(clone(model), "coef_")


def test_estimator_raises_divergence_error_and_not_fitted_error():
    X, y = line()
    with pytest.raises(DivergenceError, match="lower learning_rate=5.0"):
        GradientDescentRegressor("minibatch", learning_rate=5.0).fit(X, y)
    with pytest.raises(NotFittedError):
        GradientDescentRegressor().predict(X)
    with pytest.raises(ValueError, match="variant must be one of"):
        GradientDescentRegressor(variant="adam").fit(X, y)


# --- the dataset, the audit, the flow ----------------------------------------------------------


def test_line_dataset_is_generated_deterministically():
    from pipeline.data import load_dataset

    first, second = load_dataset("line"), load_dataset("line", "quick")
    frame = first.splits["data"]
    assert list(frame.columns) == ["x", "y"] and len(frame) == 1000
    assert frame["x"].between(-3, 3).all() and np.isfinite(frame["y"]).all()
    assert frame.equals(second.splits["data"]) and first.ref.source == "mlpath (generated)"
    slope, intercept = lstsq(frame[["x"]].to_numpy(), frame["y"].to_numpy())
    assert slope == pytest.approx(3.0, abs=0.1) and intercept == pytest.approx(2.0, abs=0.1)


def test_audit_fails_a_variant_outside_its_tolerance_and_a_missed_divergence():
    X, y = line()
    coef = lstsq(X, y)
    closed = (coef[:-1], float(coef[-1]))
    good = {"batch GD": GradientDescentRegressor("batch", 0.1, 300).fit(X, y)}
    sweep = {"good": batch_gd(X, y, 0.1, 50), "divergent": batch_gd(X, y, 0.5, 50)}
    assert audit_gradient_descent(good, closed, X, y, sweep).passed

    short = {"batch GD": GradientDescentRegressor("batch", 0.1, 5).fit(X, y)}  # stopped far from lstsq
    failed = {f.check for f in audit_gradient_descent(short, closed, X, y, sweep).findings if not f.passed}
    assert failed == {"batch GD: (m, b) vs np.linalg.lstsq"}

    # a run at a rate above the limit that reports no divergence contradicts the theory: it fails
    missed = replace(batch_gd(X, y, 0.1, 50), learning_rate=0.5)
    failed = {f.check for f in audit_gradient_descent(good, closed, X, y, {"divergent": missed}).findings
              if not f.passed}
    assert len(failed) == 1 and failed.pop().startswith("divergence detected")


@pytest.mark.slow
def test_unit03_flow_registers_a_run_with_its_figures(prefect_harness, fresh_home):
    from flows.unit03_gradient_descent import unit03_gradient_descent
    from pipeline.registry import client

    outcome = unit03_gradient_descent(Unit03Params(profile="quick", cv_folds=2))
    assert outcome["status"] == "succeeded" and outcome["unit"] == "unit03"
    assert outcome["primary_metric"] == "test_mse" and 0.5 < outcome["value"] < 1.5
    assert (outcome["version"], outcome["alias"]) == ("1", "champion")
    run = client().get_run(outcome["run_id"])
    assert run.data.metrics["batch_m"] == pytest.approx(run.data.metrics["lstsq_m"], abs=BATCH_TOL)
    assert run.data.metrics["divergent_diverged_at"] > 0
    artifacts = {a.path for a in client().list_artifacts(outcome["run_id"], "figures")}
    assert {f"figures/{name}.png" for name in ("loss_curves", "learning_rates", "loss_surface",
                                               "fitted_line")} <= artifacts
