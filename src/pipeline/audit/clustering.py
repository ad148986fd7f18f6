"""Our k-means against ``sklearn.cluster.KMeans`` from the same initial centroids."""

from __future__ import annotations

import numpy as np

from pipeline.audit import AuditReport

INERTIA_TOL = 1e-6  # relative to the inertia: both sum the same squared distances
CENTER_TOL = 1e-8


def audit_kmeans(ours, X) -> AuditReport:
    """Refit ``ours``' settings and scikit-learn's Lloyd k-means from ``ours``' own k-means++
    centroids (``init=array, n_init=1``) on X: the labels must be equal, the inertia equal to
    1e-6 (relative), the centroids to 1e-8; and the iteration counts equal. The fitted ``ours``
    is then checked to be what our refit found when given its seed (its labels predicted again)."""
    from sklearn.base import clone
    from sklearn.cluster import KMeans as SklearnKMeans

    from pipeline.scratch.kmeans import kmeans_plusplus

    report = AuditReport("k-means (ours) vs sklearn.cluster.KMeans(algorithm='lloyd'), same init")
    X = np.asarray(X, dtype=np.float64)
    init, _ = kmeans_plusplus(X, ours.n_clusters, ours.random_state)
    a = clone(ours).set_params(init=init, n_init=1).fit(X)
    b = SklearnKMeans(ours.n_clusters, init=init, n_init=1, algorithm="lloyd", max_iter=ours.max_iter,
                      tol=ours.tol).fit(X)
    agree = float(np.mean(a.labels_ == b.labels_))
    report.add("labels", agree == 1.0, f"{agree:.1%} of {len(X)} rows in the same cluster")
    diff = abs(a.inertia_ - b.inertia_) / max(abs(b.inertia_), 1e-300)
    report.add("inertia", diff <= INERTIA_TOL,
               f"ours {a.inertia_:.6f}, sklearn {b.inertia_:.6f}: relative |diff| = {diff:.1e} "
               f"(tol {INERTIA_TOL:.0e})")
    diff = float(np.max(np.abs(a.cluster_centers_ - b.cluster_centers_)))
    report.add("centroids", diff <= CENTER_TOL, f"max |diff| = {diff:.1e} (tol {CENTER_TOL:.0e})")
    report.add("Lloyd iterations", a.n_iter_ == b.n_iter_, f"ours {a.n_iter_}, sklearn {b.n_iter_}")
    agree = float(np.mean(ours.predict(X) == ours.labels_))
    report.add("registered model predicts its own labels", agree == 1.0,
               f"{agree:.1%} of {len(X)} training rows get their training label back")
    return report
