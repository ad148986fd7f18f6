"""K-means from scratch: k-means++ seeding, then Lloyd's two steps until the centroids stop moving.

K-means looks for k centroids that minimise the inertia, the sum of squared distances from each
point to its nearest centroid. Lloyd's algorithm alternates two steps, each of which can only
lower that sum: assign every point to its nearest centroid (E-step), then move every centroid to
the mean of its points (M-step). It stops when the centroids move less than a tolerance, or when
no point changes cluster. It finds a local minimum that depends on the start, so the start is
chosen with care (k-means++) and the best of ``n_init`` starts is kept.

This follows scikit-learn's ``KMeans(algorithm="lloyd")`` step for step (same convergence test,
same tolerance scaled by the data's variance, same relocation of an empty cluster), so from the
same initial centroids the two give the same labels and inertia.
"""

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data


def squared_distances(X, centers):
    """Squared Euclidean distance of every row of X (n, d) to every centre (k, d): shape (n, k).

    Computed as the explicit difference, not ``|x|^2 - 2 x.c + |c|^2``: a little slower, but
    without cancellation, so near-ties are decided by the true distances.
    """
    diff = X[:, np.newaxis, :] - centers[np.newaxis, :, :]  # (n, k, d)
    return np.einsum("nkd,nkd->nk", diff, diff)


def kmeans_plusplus(X, n_clusters, random_state=None, n_local_trials=None):
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007): centres far apart, by chance.

    The first centre is a random row. Each next one is drawn with probability proportional to
    D(x)^2, the squared distance from x to its nearest centre so far; the greedy variant draws
    ``n_local_trials`` candidates (2 + log k, as scikit-learn does) and keeps the one that lowers
    the inertia most.

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features), rows of X
    indices : ndarray of shape (n_clusters,), which rows
    """
    X = np.asarray(X, dtype=np.float64)
    n_samples = len(X)
    if not 1 <= n_clusters <= n_samples:
        raise ValueError(f"n_clusters={n_clusters} must be between 1 and n_samples={n_samples}")
    rng = check_random_state(random_state)
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))

    indices = np.empty(n_clusters, dtype=int)
    indices[0] = rng.randint(n_samples)
    closest = squared_distances(X, X[indices[:1]])[:, 0]  # (n,) D(x)^2
    for c in range(1, n_clusters):
        potential = closest.sum()
        if potential == 0:  # fewer distinct points than clusters: any row will do
            candidates = rng.randint(n_samples, size=n_local_trials)
        else:
            draws = rng.uniform(size=n_local_trials) * potential
            candidates = np.searchsorted(np.cumsum(closest), draws)
            np.clip(candidates, None, n_samples - 1, out=candidates)
        # D(x)^2 if each candidate were added: (n, trials)
        with_candidate = np.minimum(closest[:, np.newaxis], squared_distances(X, X[candidates]))
        best = int(np.argmin(with_candidate.sum(axis=0)))
        indices[c] = candidates[best]
        closest = with_candidate[:, best]
    return X[indices].copy(), indices


class KMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """K-means clustering: k-means++ (or given) initial centroids, Lloyd iterations.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters k.
    init : "k-means++", "random" or ndarray of shape (n_clusters, n_features), default="k-means++"
        How to choose the initial centroids; an array is used as given (and ``n_init`` is 1).
    n_init : int, default=10
        Number of starts; the one with the lowest inertia is kept.
    max_iter : int, default=300
        Most Lloyd iterations per start.
    tol : float, default=1e-4
        Convergence: the summed squared centroid shift of one iteration is at most
        ``tol`` times the mean per-feature variance of X (scikit-learn's scale-free test).
    random_state : int, RandomState or None, default=None
        Seeds the initialisation.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    labels_ : ndarray of shape (n_samples,), each training row's cluster
    inertia_ : float, sum of squared distances of the training rows to their centroid
    n_iter_ : int, Lloyd iterations of the kept start
    n_features_in_ : int
    """

    def __init__(self, n_clusters=8, *, init="k-means++", n_init=10, max_iter=300, tol=1e-4,
                 random_state=None):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def fit(self, X, y=None):
        """Cluster X of shape (n_samples, n_features); ``y`` is ignored. Returns self."""
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        if not 1 <= self.n_clusters <= len(X):
            raise ValueError(f"n_clusters={self.n_clusters} must be between 1 and n_samples={len(X)}")
        given = not isinstance(self.init, str)
        if not given and self.init not in ("k-means++", "random"):
            raise ValueError(f"init must be 'k-means++', 'random' or an array, got {self.init!r}")
        if given:
            init = np.asarray(self.init, dtype=np.float64)
            if init.shape != (self.n_clusters, X.shape[1]):
                raise ValueError(f"init has shape {init.shape}; expected {(self.n_clusters, X.shape[1])}")
        rng = check_random_state(self.random_state)
        tol = float(np.mean(np.var(X, axis=0))) * self.tol

        # Centring X changes no distance and makes the sums in the M-step more precise.
        mean = X.mean(axis=0)
        Xc = X - mean
        best = None
        for _ in range(1 if given else self.n_init):
            if given:
                centers = init - mean
            elif self.init == "k-means++":
                centers, _ = kmeans_plusplus(Xc, self.n_clusters, rng)
            else:
                centers = Xc[rng.choice(len(X), self.n_clusters, replace=False)]
            run = _lloyd(Xc, centers, self.max_iter, tol)
            if best is None or run[1] < best[1]:
                best = run
        labels, inertia, centers, n_iter = best
        self.cluster_centers_ = centers + mean
        self.labels_ = labels
        self.inertia_ = float(inertia)
        self.n_iter_ = n_iter
        return self

    def predict(self, X):
        """The nearest centroid's index for each row of X (n, d): shape (n,)."""
        return np.argmin(self.transform(X), axis=1)

    def transform(self, X):
        """Euclidean distance of each row of X (n, d) to each centroid: shape (n, n_clusters)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return np.sqrt(squared_distances(X, self.cluster_centers_))

    def score(self, X, y=None):
        """Minus the inertia of X against the fitted centroids (greater is better, as in sklearn)."""
        d2 = self.transform(X) ** 2
        return -float(d2.min(axis=1).sum())


def _lloyd(X, centers, max_iter, tol):
    """Lloyd's iterations from ``centers`` (k, d); returns (labels, inertia, centers, n_iter).

    The order of the tests is scikit-learn's: stop when no label changed (strict convergence),
    else when the centroids' summed squared shift is at most ``tol``. Unless strictly
    converged, the labels are recomputed once more against the final centroids.
    """
    centers = np.array(centers, dtype=np.float64)
    labels_old = np.full(len(X), -1)
    strict = False
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        d2 = squared_distances(X, centers)  # (n, k)
        labels = np.argmin(d2, axis=1)  # E-step
        new_centers = _cluster_means(X, labels, centers, d2)  # M-step
        shift = float(np.sum((new_centers - centers) ** 2))
        centers = new_centers
        if np.array_equal(labels, labels_old):
            strict = True
            break
        if shift <= tol:
            break
        labels_old = labels
    if not strict:
        labels = np.argmin(squared_distances(X, centers), axis=1)
    inertia = float(np.sum(squared_distances(X, centers)[np.arange(len(X)), labels]))
    return labels, inertia, centers, n_iter


def _cluster_means(X, labels, centers, d2):
    """Each cluster's mean (k, d). An empty cluster takes the point farthest from its own
    centroid (the next farthest for the next empty one), which leaves its old cluster, as
    scikit-learn relocates them; its label is not changed until the next E-step."""
    k = len(centers)
    counts = np.bincount(labels, minlength=k).astype(np.float64)  # (k,)
    sums = np.zeros_like(centers)
    np.add.at(sums, labels, X)  # (k, d)
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        own = d2[np.arange(len(X)), labels]  # (n,)
        farthest = np.argsort(-own, kind="stable")[:len(empty)]
        for cluster, row in zip(empty, farthest):
            old = labels[row]
            sums[old] -= X[row]
            counts[old] -= 1
            sums[cluster] = X[row]
            counts[cluster] = 1
    return sums / counts[:, np.newaxis]
