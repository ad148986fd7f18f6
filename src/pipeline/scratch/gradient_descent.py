"""Gradient descent on least squares, three ways: batch, stochastic and mini-batch.

The model is ``y ≈ X @ coef + intercept``; with one feature, ``y ≈ m·x + b``. Stacking a column
of ones onto X (the *design* matrix ``D``, shape (n, F+1)) puts every parameter in one vector
``theta = [coef..., intercept]``, and the mean squared error and its gradient are

    L(theta)      = mean((D @ theta - y) ** 2)
    grad L(theta) = 2 / n · D.T @ (D @ theta - y)          (F+1,)

The three variants differ only in how many rows estimate that gradient before each step: all
``n`` (batch), one (stochastic), or ``batch_size`` (mini-batch), rows shuffled every epoch. Each
returns a ``DescentResult`` with the parameters and the history: the MSE on *all* rows before the
first update and after every update, and how many examples the updates had used by then.

At the minimum the full gradient is zero, so batch GD can keep a constant step and settle there.
A one-row or few-row gradient is not zero there (each row pulls its own way), so with a constant
step SGD keeps jittering in a band around the minimum whose width grows with the step; ``decay``
shrinks the step every epoch, ``learning_rate / (1 + decay · epoch)``, and the jitter dies down.

A learning rate too large makes the loss grow geometrically. Rather than run on into ``inf`` and
``nan``, the loop stops at the first update whose loss is not finite or exceeds
``divergence_factor`` times the starting loss (and 1), keeps the last parameters that were within
bounds, and records the update as ``diverged_at``: results never hold NaNs. The estimator
``GradientDescentRegressor`` raises ``DivergenceError`` instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

# A loss this many times the starting loss (or 1, whichever is larger) counts as diverged.
DIVERGENCE_FACTOR = 1e6
VARIANTS = ("batch", "sgd", "minibatch")


class DivergenceError(FloatingPointError):
    """Gradient descent's loss left every bound: the learning rate is too large."""


@dataclass(frozen=True)
class DescentResult:
    """What one run of gradient descent found, and how it got there.

    ``losses[k]`` is the MSE on all rows after ``k`` updates (``losses[0]`` before any);
    ``examples_seen[k]`` the examples whose gradients those ``k`` updates used; ``path[k]`` the
    parameters then. All three hold finite
    values only: a diverging run stops before the first bad loss, ``diverged_at`` being that update
    (1-based) and ``coef``/``intercept`` the parameters before it.
    """

    variant: str
    coef: np.ndarray  # (F,)
    intercept: float
    losses: np.ndarray  # (updates + 1,)
    examples_seen: np.ndarray  # (updates + 1,)
    path: np.ndarray  # (updates + 1, F+1): theta = [coef..., intercept] at each loss
    learning_rate: float
    batch_size: int
    epochs_run: int
    converged: bool  # the full gradient's norm fell below tol
    diverged_at: int | None
    seconds: float

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @property
    def n_updates(self) -> int:
        return len(self.losses) - 1

    @property
    def theta(self) -> np.ndarray:
        return np.append(self.coef, self.intercept)

    def describe(self) -> str:
        if self.diverged:
            return (f"{self.variant} lr={self.learning_rate:g}: diverged at update {self.diverged_at} "
                    f"(last finite MSE {self.losses[-1]:.3g})")
        return (f"{self.variant} lr={self.learning_rate:g}: MSE {self.losses[-1]:.6g} after "
                f"{self.n_updates} updates ({self.examples_seen[-1]} examples seen)")


# --- calculus: the loss, its gradient, and a check of it -------------------------------------


def design_matrix(X) -> np.ndarray:
    """``X`` (n, F) with a column of ones appended: (n, F+1), so ``D @ theta`` adds the intercept."""
    X = np.asarray(X, dtype=np.float64)
    X = X.reshape(-1, 1) if X.ndim == 1 else X
    return np.column_stack([X, np.ones(len(X))])


def mse_loss(theta, D, y) -> float:
    """Mean squared error of ``theta`` (F+1,) on design ``D`` (n, F+1) and targets ``y`` (n,)."""
    residual = D @ theta - y  # (n,)
    return float(residual @ residual / len(y))


def mse_gradient(theta, D, y) -> np.ndarray:
    """The analytic gradient of ``mse_loss``: ``2 / n · D.T @ (D @ theta - y)``, shape (F+1,).

    For one feature, ``dL/dm = 2/n · Σ (m·x_i + b - y_i) · x_i`` and ``dL/db = 2/n · Σ (m·x_i + b - y_i)``.
    """
    return 2.0 * D.T @ (D @ theta - y) / len(y)


def numerical_gradient(f: Callable[[np.ndarray], float], theta, eps: float = 1e-6) -> np.ndarray:
    """Central differences ``(f(theta + eps·e_i) - f(theta - eps·e_i)) / (2·eps)`` per coordinate.

    The error is O(eps²) for smooth ``f`` (exact for a quadratic, up to rounding): the oracle an
    analytic gradient is checked against.
    """
    theta = np.asarray(theta, dtype=np.float64)
    grad = np.empty_like(theta)
    for i in range(len(theta)):
        step = np.zeros_like(theta)
        step[i] = eps
        grad[i] = (f(theta + step) - f(theta - step)) / (2.0 * eps)
    return grad


def chain_rule_gradient(m: float, b: float, x: float, y: float) -> dict[str, float]:
    """One example's squared error ``L = (m·x + b - y)²`` differentiated link by link.

    ``ŷ = m·x + b``, ``u = ŷ - y``, ``L = u²``; the chain rule multiplies the local derivatives:
    ``dL/dm = dL/du · du/dŷ · dŷ/dm = 2u · 1 · x`` and ``dL/db = 2u · 1 · 1``.
    """
    y_hat = m * x + b
    u = y_hat - y
    pieces = {"y_hat": y_hat, "u": u, "L": u * u, "dL/du": 2.0 * u, "du/dy_hat": 1.0,
              "dy_hat/dm": x, "dy_hat/db": 1.0}
    pieces["dL/dm"] = pieces["dL/du"] * pieces["du/dy_hat"] * pieces["dy_hat/dm"]
    pieces["dL/db"] = pieces["dL/du"] * pieces["du/dy_hat"] * pieces["dy_hat/db"]
    return pieces


def stability_limit(X) -> float:
    """The largest learning rate for which batch gradient descent on the MSE converges.

    The MSE is a quadratic with Hessian ``H = 2 / n · D.T @ D``; a step multiplies the error along
    each eigenvector of ``H`` by ``1 - lr·λ``, so it shrinks for every direction iff
    ``lr < 2 / λ_max``. Above it, the loss grows geometrically.
    """
    D = design_matrix(X)
    return float(2.0 / np.linalg.eigvalsh(2.0 * D.T @ D / len(D)).max())


# --- the three variants ------------------------------------------------------------------------


def batch_gd(X, y, learning_rate: float = 0.1, epochs: int = 100, *, seed: int = 0, tol: float = 0.0,
             decay: float = 0.0, divergence_factor: float = DIVERGENCE_FACTOR) -> DescentResult:
    """Batch gradient descent: every update uses the gradient over all ``n`` rows (one update per
    epoch). Stops early once that gradient's norm is below ``tol``. ``seed`` is unused (nothing is
    random), kept so the three variants share a signature."""
    return _descend("batch", X, y, learning_rate, epochs, None, seed, tol, decay, divergence_factor)


def stochastic_gd(X, y, learning_rate: float = 0.01, epochs: int = 10, *, seed: int = 0, tol: float = 0.0,
                  decay: float = 0.0, divergence_factor: float = DIVERGENCE_FACTOR) -> DescentResult:
    """Stochastic gradient descent: one update per row, rows in a new random order every epoch
    (``seed``): ``n`` noisy updates per epoch. ``tol`` is checked on the full gradient after each
    epoch."""
    return _descend("sgd", X, y, learning_rate, epochs, 1, seed, tol, decay, divergence_factor)


def minibatch_gd(X, y, learning_rate: float = 0.05, epochs: int = 50, *, seed: int = 0, tol: float = 0.0,
                 decay: float = 0.0, divergence_factor: float = DIVERGENCE_FACTOR,
                 batch_size: int = 32) -> DescentResult:
    """Mini-batch gradient descent: one update per ``batch_size`` rows of a shuffled epoch (the
    last batch may be smaller), ``ceil(n / batch_size)`` updates per epoch."""
    return _descend("minibatch", X, y, learning_rate, epochs, batch_size, seed, tol, decay, divergence_factor)


DESCENT: dict[str, Callable[..., DescentResult]] = {
    "batch": batch_gd, "sgd": stochastic_gd, "minibatch": minibatch_gd,
}


def _descend(variant: str, X, y, learning_rate: float, epochs: int, batch_size: int | None, seed: int,
             tol: float, decay: float, divergence_factor: float) -> DescentResult:
    """The loop the three variants share: shuffle, step along each batch's gradient, record the
    full MSE after every update, stop at convergence (``tol``) or divergence."""
    start = time.perf_counter()
    D, y = design_matrix(X), np.asarray(y, dtype=np.float64)  # (n, F+1), (n,)
    n = len(y)
    size = n if batch_size is None else max(1, min(int(batch_size), n))
    rng = np.random.default_rng(seed)
    theta = np.zeros(D.shape[1])
    losses, seen, path = [mse_loss(theta, D, y)], [0], [theta]
    bound = divergence_factor * max(losses[0], 1.0)
    converged, diverged_at, epochs_run = False, None, 0

    def small(grad) -> bool:
        return tol > 0 and float(np.sqrt(grad @ grad)) < tol

    for epoch in range(epochs):
        step = learning_rate / (1.0 + decay * epoch)
        order = np.arange(n) if size == n else rng.permutation(n)
        for begin in range(0, n, size):
            rows = order[begin:begin + size]
            grad = mse_gradient(theta, D[rows], y[rows])  # (F+1,)
            if size == n and small(grad):
                converged = True
                break
            with np.errstate(over="ignore", invalid="ignore"):  # a diverging step is caught below
                candidate = theta - step * grad
                loss = mse_loss(candidate, D, y)
            if not (np.isfinite(loss) and loss <= bound):
                diverged_at = len(losses)
                break
            theta = candidate
            path.append(theta)
            losses.append(loss)
            seen.append(seen[-1] + len(rows))
        epochs_run += 1
        if converged or diverged_at is not None:
            break
        if size < n and small(mse_gradient(theta, D, y)):
            converged = True
            break
    return DescentResult(variant, theta[:-1].copy(), float(theta[-1]), np.asarray(losses),
                         np.asarray(seen, dtype=np.int64), np.asarray(path), float(learning_rate), size,
                         epochs_run,
                         converged, diverged_at, time.perf_counter() - start)


# --- the estimator -----------------------------------------------------------------------------


class GradientDescentRegressor(RegressorMixin, BaseEstimator):
    """Least-squares linear regression fitted by batch, stochastic or mini-batch gradient descent.

    Features are used as given (no scaling inside), so ``coef_`` and ``intercept_`` are directly
    comparable with ``np.linalg.lstsq``; on badly scaled features lower the learning rate or
    standardise first.

    Parameters
    ----------
    variant : {"batch", "sgd", "minibatch"}, default="minibatch"
    learning_rate : float, default=0.05
    epochs : int, default=50
        Passes over the data (batch: one update each).
    batch_size : int, default=32
        Rows per update of the mini-batch variant (batch uses all rows, SGD one).
    tol : float, default=0.0
        Stop once the full gradient's norm is below this (0: run every epoch).
    decay : float, default=0.0
        Epoch ``e`` steps with ``learning_rate / (1 + decay · e)``.
    seed : int, default=0
        Seed of the per-epoch shuffles.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    loss_history_ : ndarray of shape (n_updates_ + 1,)
        Training MSE before the first update and after each one.
    examples_seen_ : ndarray of shape (n_updates_ + 1,)
    path_ : ndarray of shape (n_updates_ + 1, n_features + 1)
        ``[coef..., intercept]`` at each entry of ``loss_history_``.
    n_updates_ : int
    fit_seconds_ : float

    Raises
    ------
    DivergenceError
        From ``fit``, when the loss diverges (the learning rate is too large).
    """

    def __init__(self, variant="minibatch", learning_rate=0.05, epochs=50, batch_size=32, tol=0.0, decay=0.0,
                 seed=0):
        self.variant = variant
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.tol = tol
        self.decay = decay
        self.seed = seed

    def fit(self, X, y):
        """Fit on X (n_samples, n_features) and targets y (n_samples,); returns self."""
        if self.variant not in DESCENT:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        extra = {"batch_size": self.batch_size} if self.variant == "minibatch" else {}
        result = DESCENT[self.variant](X, y, self.learning_rate, self.epochs, seed=self.seed, tol=self.tol,
                                       decay=self.decay, **extra)
        if result.diverged:
            raise DivergenceError(f"{type(self).__name__}(variant={self.variant!r}) diverged at update "
                                  f"{result.diverged_at}: lower learning_rate={self.learning_rate}.")
        self.coef_, self.intercept_ = result.coef, result.intercept
        self.loss_history_, self.examples_seen_, self.path_ = result.losses, result.examples_seen, result.path
        self.n_updates_, self.fit_seconds_ = result.n_updates, result.seconds
        return self

    def predict(self, X):
        """Predicted targets for X (n_samples, n_features): shape (n_samples,)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_ + self.intercept_
