"""Principal component analysis from scratch: centre, covariance, eigendecomposition, project.

The covariance matrix C of centred data says how the features vary together. Its
eigenvectors are the directions C only stretches (C @ v == lambda * v); the eigenvalue is the
variance of the data along that direction. PCA keeps the directions of largest variance.

This mirrors scikit-learn's ``svd_solver="covariance_eigh"`` path, so on the same data the two
agree to floating-point precision, signs included.
"""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data


class PCA(TransformerMixin, BaseEstimator):
    """Principal component analysis via the eigendecomposition of the covariance matrix.

    Parameters
    ----------
    n_components : int or None, default=None
        Number of components to keep. None keeps ``min(n_samples, n_features)``.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        Per-feature mean of the training data, subtracted before projecting.
    components_ : ndarray of shape (n_components, n_features)
        Principal axes (unit eigenvectors of the covariance), by decreasing variance.
    explained_variance_ : ndarray of shape (n_components,)
        Variance along each axis: the eigenvalues of the covariance (ddof=1).
    explained_variance_ratio_ : ndarray of shape (n_components,)
        Each eigenvalue over the sum of *all* eigenvalues (the total variance).
    singular_values_ : ndarray of shape (n_components,)
        Singular values of the centred data: ``sqrt(explained_variance_ * (n_samples - 1))``.
    n_components_ : int
        Number of components kept.
    """

    def __init__(self, n_components=None):
        self.n_components = n_components

    def fit(self, X, y=None):
        """Fit the principal axes on X of shape (n_samples, n_features); returns self."""
        # Two samples at least: the covariance divides by n_samples - 1.
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        n_samples, n_features = X.shape
        n_components = self.n_components
        if n_components is None:
            n_components = min(n_samples, n_features)
        if not 1 <= n_components <= min(n_samples, n_features):
            raise ValueError(
                f"n_components={n_components} must be between 1 and "
                f"min(n_samples, n_features)={min(n_samples, n_features)}."
            )

        self.mean_ = X.mean(axis=0)  # (F,)
        X_centred = X - self.mean_  # (N, F)
        # Same as np.cov(X, rowvar=False): ddof=1 makes it the unbiased sample covariance.
        cov = X_centred.T @ X_centred / (n_samples - 1)  # (F, F)

        # eigh, not eig: the covariance is symmetric, so eigh is faster, returns real values
        # and orthonormal vectors. It sorts eigenvalues ascending; PCA wants descending.
        eigenvalues, eigenvectors = np.linalg.eigh(cov)  # (F,), (F, F) vectors in columns
        order = np.argsort(eigenvalues)[::-1]
        # Rounding can make a zero eigenvalue slightly negative; variance cannot be.
        eigenvalues = np.clip(eigenvalues[order], 0.0, None)
        components = eigenvectors[:, order].T  # (F, F) one axis per row

        components = _flip_signs(components)

        self.n_components_ = n_components
        self.components_ = components[:n_components]
        self.explained_variance_ = eigenvalues[:n_components]
        self.explained_variance_ratio_ = self.explained_variance_ / eigenvalues.sum()
        self.singular_values_ = np.sqrt(self.explained_variance_ * (n_samples - 1))
        return self

    def transform(self, X):
        """Project X of shape (n_samples, n_features) to shape (n_samples, n_components)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return (X - self.mean_) @ self.components_.T  # (N, F) @ (F, K) -> (N, K)

    def inverse_transform(self, X):
        """Map scores of shape (n_samples, n_components) back to shape (n_samples, n_features).

        Exact when all components are kept; otherwise the projection onto the kept subspace.
        """
        check_is_fitted(self)
        return np.asarray(X, dtype=np.float64) @ self.components_ + self.mean_  # (N, K) @ (K, F)


def _flip_signs(components):
    """Make the largest-magnitude loading of each row positive (scikit-learn's ``svd_flip``).

    An eigenvector is only defined up to sign (-v is as good as v); fixing the sign makes the
    output deterministic and comparable with scikit-learn's.
    """
    largest = np.argmax(np.abs(components), axis=1)  # (K,)
    signs = np.sign(components[np.arange(len(components)), largest])  # (K,)
    return components * signs[:, np.newaxis]


def linear_map_demo(cov, n_points=100):
    """What a covariance matrix does to the unit circle: it stretches it into an ellipse.

    The eigenvectors are the directions that are only scaled, not turned; the ellipse's axes
    lie along them and their half-lengths are the eigenvalues.

    Parameters
    ----------
    cov : array-like of shape (2, 2)
        A symmetric matrix, typically a 2-D covariance.
    n_points : int, default=100
        Number of points on the circle.

    Returns
    -------
    dict
        ``circle`` (n_points, 2) unit-circle points; ``image`` (n_points, 2) those points
        mapped by ``cov``; ``eigenvectors`` (2, 2) unit eigenvectors in the columns, by
        decreasing eigenvalue; ``eigenvalues`` (2,); ``is_only_scaled`` True when
        ``cov @ v == lambda * v`` holds (to floating-point tolerance) for every eigenpair.
    """
    cov = np.asarray(cov, dtype=np.float64)
    if cov.shape != (2, 2) or not np.allclose(cov, cov.T):
        raise ValueError(f"cov must be a symmetric 2x2 matrix, got shape {cov.shape}.")
    angles = np.linspace(0.0, 2.0 * np.pi, n_points)
    circle = np.column_stack([np.cos(angles), np.sin(angles)])  # (P, 2)
    image = circle @ cov.T  # each row is cov @ point

    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    is_only_scaled = bool(np.allclose(cov @ eigenvectors, eigenvectors * eigenvalues))
    return {
        "circle": circle,
        "image": image,
        "eigenvectors": eigenvectors,
        "eigenvalues": eigenvalues,
        "is_only_scaled": is_only_scaled,
    }
