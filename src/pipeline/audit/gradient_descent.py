"""Unit 3's checks: gradient descent against the closed form, the calculus against finite differences,
and every learning rate against the stability limit that theory predicts."""

from __future__ import annotations

import numpy as np

from pipeline.audit import AuditReport
from pipeline.scratch.gradient_descent import (
    DescentResult,
    design_matrix,
    mse_gradient,
    mse_loss,
    numerical_gradient,
    stability_limit,
)

# Batch GD's steps are exact gradients: with a constant step it lands on the minimum to rounding.
BATCH_TOL = 1e-6
# SGD and mini-batch estimate the gradient from a few rows; even with a decaying step they end
# within a few thousandths of the minimum on this line (worst seen 0.02, quick profile): 0.05 is
# under 2 % of the slope m = 3.
STOCHASTIC_TOL = 0.05
TOLERANCES = {"batch": BATCH_TOL, "sgd": STOCHASTIC_TOL, "minibatch": STOCHASTIC_TOL}
# Central differences on a quadratic are exact up to rounding: relative error ~1e-9 here.
GRADIENT_TOL = 1e-6


def gradient_check_points(closed_form: tuple[np.ndarray, float], seed: int = 0) -> dict[str, np.ndarray]:
    """Where the analytic gradient is compared: the start (0), near the minimum, and a random point."""
    optimum = np.append(closed_form[0], closed_form[1])
    rng = np.random.default_rng(seed)
    return {"theta = 0 (the start)": np.zeros_like(optimum),
            "least squares + (0.5, -0.5)": optimum + np.resize([0.5, -0.5], optimum.shape),
            "a random point": rng.normal(0.0, 5.0, size=optimum.shape)}


def gradient_errors(X, y, points: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Per point: (analytic gradient, numerical gradient, relative error |a - n| / (|a| + |n|))."""
    D, y = design_matrix(X), np.asarray(y, float)
    errors = {}
    for name, theta in points.items():
        analytic = mse_gradient(theta, D, y)
        numeric = numerical_gradient(lambda t: mse_loss(t, D, y), theta)
        norm = max(float(np.linalg.norm(analytic) + np.linalg.norm(numeric)), 1e-300)
        errors[name] = (analytic, numeric, float(np.linalg.norm(analytic - numeric) / norm))
    return errors


def audit_gradient_descent(models: dict[str, object], closed_form: tuple[np.ndarray, float], X, y,
                           sweep: dict[str, DescentResult], seed: int = 0) -> AuditReport:
    """The three variants and the learning-rate sweep, checked.

    - the analytic MSE gradient against central differences (relative error ≤ ``GRADIENT_TOL``);
    - each fitted ``GradientDescentRegressor`` (``models``, by name) against ``closed_form``
      (``np.linalg.lstsq`` on the same training rows ``X``, ``y``): max |Δ| over (m, b) within
      ``TOLERANCES[variant]``;
    - each batch-GD run of ``sweep``: diverged exactly when its rate exceeds the stability limit
      ``2 / λ_max`` (or, just above it, at least ended above its starting loss), the update where it
      diverged reported;
    - no history holds NaN or inf.
    """
    report = AuditReport("gradient descent vs np.linalg.lstsq, finite differences and the stability limit")
    errors = gradient_errors(X, y, gradient_check_points(closed_form, seed))
    worst = max(error for *_, error in errors.values())
    report.add("analytic gradient vs central differences", worst <= GRADIENT_TOL,
               f"{len(errors)} points, max relative error {worst:.1e} (tol {GRADIENT_TOL:.0e})")

    optimum = np.append(closed_form[0], closed_form[1])
    for name, model in models.items():
        tol = TOLERANCES[model.variant]
        diff = float(np.max(np.abs(np.append(model.coef_, model.intercept_) - optimum)))
        report.add(f"{name}: (m, b) vs np.linalg.lstsq", diff <= tol,
                   f"m={model.coef_[0]:.6f}, b={model.intercept_:.6f} vs m={optimum[0]:.6f}, "
                   f"b={optimum[-1]:.6f}: max |diff| = {diff:.2e} (tol {tol:.0e}) after "
                   f"{model.n_updates_} updates")

    limit = stability_limit(X)
    verdicts, agree = [], True
    for label, run in sweep.items():
        above = run.learning_rate > limit
        blew_up = run.diverged or run.losses[-1] > run.losses[0]
        agree &= blew_up if above else not run.diverged
        outcome = (f"diverged at update {run.diverged_at}" if run.diverged
                   else f"final MSE {run.losses[-1]:.4g} after {run.n_updates} updates")
        verdicts.append(f"{label}: lr={run.learning_rate:g} {'>' if above else '≤'} limit, {outcome}")
    report.add(f"divergence detected where 2/λ_max = {limit:.4f} predicts it", agree, "; ".join(verdicts))

    histories = [model.loss_history_ for model in models.values()] + [run.losses for run in sweep.values()]
    histories += [model.path_ for model in models.values()] + [run.path for run in sweep.values()]
    finite = all(np.all(np.isfinite(history)) for history in histories)
    report.add("no NaN or inf in any loss or parameter history", finite,
               f"{len(histories)} histories, {sum(np.size(h) for h in histories):,} values")
    return report
