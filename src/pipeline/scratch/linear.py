"""Linear and logistic regression trained by batch gradient descent, plus the closed form.

Both models are ``scores = X @ coef_.T + intercept_`` followed by a link: the identity for
regression, the sigmoid (two classes) or softmax (more) for classification. With the matching
loss (mean squared error, mean log loss) the gradient has the same shape in every case,
``X.T @ (prediction - target) / n``, which is why one loop can train them all.
"""

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from pipeline.scratch.gradient_descent import DivergenceError, batch_gd


def closed_form_least_squares(X, y):
    """Exact least-squares fit of ``y ~ X @ coef + intercept``, the oracle for gradient descent.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)

    Returns
    -------
    tuple
        ``(coef, intercept)``: ndarray of shape (n_features,) and a float.
    """
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    design = np.column_stack([X, np.ones(len(X))])  # (N, F+1): the last weight is the intercept
    # lstsq solves via SVD, stable even when X.T @ X is ill-conditioned (unlike inverting it).
    weights, *_ = np.linalg.lstsq(design, y, rcond=None)
    return weights[:-1], float(weights[-1])


class LinearRegressionGD(RegressorMixin, BaseEstimator):
    """Least-squares linear regression fitted by batch gradient descent on the mean squared error.

    Features are standardised inside ``fit``: on raw features of different scales the loss
    surface is a long thin valley and a learning rate small enough for the steep direction
    barely moves along the flat one. The reported coefficients are converted back to the
    original units, so they are comparable with ``closed_form_least_squares``.

    Parameters
    ----------
    learning_rate : float, default=0.1
        Step size, in standardised units.
    n_iter : int, default=50_000
        Maximum number of gradient steps.
    tol : float, default=1e-9
        Stop once the Euclidean norm of the gradient falls below this.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    loss_history_ : list of float
        Mean squared error before the first step and after each one.
    n_iter_ : int
        Number of iterations run (gradient evaluations).
    """

    def __init__(self, learning_rate=0.1, n_iter=50_000, tol=1e-9):
        self.learning_rate = learning_rate
        self.n_iter = n_iter
        self.tol = tol

    def fit(self, X, y):
        """Fit on X (n_samples, n_features) and targets y (n_samples,); returns self."""
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale == 0.0] = 1.0  # a constant feature stays 0 after centring; don't divide by 0
        Z = (X - mean) / scale  # (N, F)

        # Unit 3's batch gradient descent; a diverging run stops there, never returning NaNs.
        result = batch_gd(Z, y, self.learning_rate, self.n_iter, tol=self.tol)
        if result.diverged:
            raise DivergenceError(f"Gradient descent diverged at step {result.diverged_at}; lower "
                                  f"learning_rate={self.learning_rate}.")
        if not result.converged:
            _warn_not_converged(self)
        self.loss_history_ = list(result.losses)
        self.n_iter_ = len(self.loss_history_)
        weights, bias = result.coef, result.intercept

        # z = (x - mean) / scale, so w @ z + b = (w / scale) @ x + (b - (w / scale) @ mean).
        self.coef_ = weights / scale
        self.intercept_ = float(bias - self.coef_ @ mean)
        return self

    def predict(self, X):
        """Predicted targets for X (n_samples, n_features): shape (n_samples,)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_ + self.intercept_


class LogisticRegressionGD(ClassifierMixin, BaseEstimator):
    """Logistic regression fitted by batch gradient descent on the mean log loss.

    Two classes use one sigmoid score (``coef_`` of shape (1, n_features), like scikit-learn);
    more classes use a softmax over one score per class (``coef_`` (n_classes, n_features)).
    Features are used as given: standardise them first (e.g. a StandardScaler in a Pipeline),
    or gradient descent crawls.

    The objective is ``mean log loss + l2 / 2 * ||coef_||^2`` (intercept not penalised). That
    is scikit-learn's ``LogisticRegression(C=C)`` objective divided by ``C * n_samples``, so
    ``l2 = 1 / (C * n_samples)`` gives the same minimiser; ``l2=0`` matches ``C=np.inf``.

    Parameters
    ----------
    learning_rate : float, default=0.5
    n_iter : int, default=50_000
        Maximum number of gradient steps.
    tol : float, default=1e-7
        Stop once the Euclidean norm of the gradient falls below this.
    l2 : float, default=0.0
        Strength of the L2 penalty on the coefficients.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    loss_history_ : list of float
        Penalised mean log loss before each step.
    n_iter_ : int
        Number of iterations run (gradient evaluations).
    """

    def __init__(self, learning_rate=0.5, n_iter=50_000, tol=1e-7, l2=0.0):
        self.learning_rate = learning_rate
        self.n_iter = n_iter
        self.tol = tol
        self.l2 = l2

    def fit(self, X, y):
        """Fit on X (n_samples, n_features) and labels y (n_samples,); returns self."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y_codes = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                f"Need at least 2 classes to fit, got only one class: {self.classes_}."
            )
        # Targets in the shape of the scores: P(class 1) for the sigmoid, one-hot for softmax.
        n_scores = 1 if n_classes == 2 else n_classes
        if n_scores == 1:
            targets = y_codes[:, np.newaxis].astype(np.float64)  # (N, 1)
        else:
            targets = np.eye(n_classes)[y_codes]  # (N, K)

        coef, intercept = np.zeros((n_scores, X.shape[1])), np.zeros(n_scores)
        self.loss_history_ = []
        for _ in range(self.n_iter):
            scores = X @ coef.T + intercept  # (N, C)
            penalty = 0.5 * self.l2 * np.sum(coef**2)
            self.loss_history_.append(_mean_log_loss(scores, targets) + penalty)
            _check_finite(self.loss_history_[-1], self.learning_rate)
            # For sigmoid + binary log loss and softmax + cross-entropy alike, the gradient of
            # the loss with respect to the scores is simply (probabilities - targets).
            error = (_probabilities(scores) - targets) / len(y)  # (N, C)
            grad_coef = error.T @ X + self.l2 * coef  # (C, F)
            grad_intercept = error.sum(axis=0)  # (C,)
            if np.sqrt(np.sum(grad_coef**2) + np.sum(grad_intercept**2)) < self.tol:
                break
            coef -= self.learning_rate * grad_coef
            intercept -= self.learning_rate * grad_intercept
        else:
            _warn_not_converged(self)
        self.n_iter_ = len(self.loss_history_)

        self.coef_, self.intercept_ = coef, intercept
        return self

    def decision_function(self, X):
        """Raw scores: shape (n_samples,) for two classes, (n_samples, n_classes) otherwise."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        scores = X @ self.coef_.T + self.intercept_  # (N, C)
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns ordered as ``classes_``."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p_positive = _probabilities(scores[:, np.newaxis])[:, 0]
            return np.column_stack([1.0 - p_positive, p_positive])
        return _probabilities(scores)

    def predict(self, X):
        """Most probable class for each sample: shape (n_samples,)."""
        proba = self.predict_proba(X)  # first, so an unfitted model raises NotFittedError
        return self.classes_[np.argmax(proba, axis=1)]


def _probabilities(scores):
    """Sigmoid of a single score column, softmax across several: (N, C) -> (N, C)."""
    if scores.shape[1] == 1:
        # 1 / (1 + exp(-z)) overflows for very negative z; exp(-log(1 + exp(-z))) does not.
        return np.exp(-np.logaddexp(0.0, -scores))
    # Subtracting the row max leaves softmax unchanged and keeps exp from overflowing.
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _mean_log_loss(scores, targets):
    """Mean negative log-likelihood, computed from scores so it never takes log(0)."""
    if scores.shape[1] == 1:
        # -[y log s(z) + (1 - y) log(1 - s(z))] simplifies to log(1 + e^z) - y z.
        return float(np.mean(np.logaddexp(0.0, scores) - targets * scores))
    # -log softmax(z)_y = logsumexp(z) - z_y
    top = scores.max(axis=1, keepdims=True)
    log_normaliser = top[:, 0] + np.log(np.exp(scores - top).sum(axis=1))
    return float(np.mean(log_normaliser - np.sum(targets * scores, axis=1)))


def _check_finite(loss, learning_rate):
    if not np.isfinite(loss):
        raise FloatingPointError(
            f"Gradient descent diverged (loss is {loss}); lower learning_rate={learning_rate}."
        )


def _warn_not_converged(model):
    warnings.warn(
        f"{type(model).__name__} stopped after n_iter={model.n_iter} steps with the gradient "
        f"norm still above tol={model.tol}; raise n_iter or learning_rate.",
        ConvergenceWarning,
        stacklevel=3,
    )
