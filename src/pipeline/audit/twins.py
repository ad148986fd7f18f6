"""From-scratch models against their library twins, with the tolerances stated in each check."""

from __future__ import annotations

import numpy as np

from pipeline.audit import AuditReport
from pipeline.scratch.tree import information_gain, preorder_splits

PCA_TOL = 1e-8
# scikit-learn's trees cast X to float32, so its thresholds carry float32 rounding.
THRESHOLD_TOL = 1e-5
PROBA_TOL = 1e-5
COEF_TOL = 1e-5


def _max_abs_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, float) - np.asarray(b, float))))


def audit_pca(ours, theirs, X, tol: float = PCA_TOL) -> AuditReport:
    """Our PCA against ``sklearn.decomposition.PCA``: components up to sign, variances, projections."""
    report = AuditReport("PCA vs sklearn.decomposition.PCA")
    signs = np.sign(np.sum(ours.components_ * theirs.components_, axis=1))[:, None]
    pairs = {
        "components (up to sign)": (ours.components_ * signs, theirs.components_),
        "explained_variance_": (ours.explained_variance_, theirs.explained_variance_),
        "explained_variance_ratio_": (ours.explained_variance_ratio_, theirs.explained_variance_ratio_),
        "projections (up to sign)": (ours.transform(X) * signs.T, theirs.transform(X)),
    }
    for check, (a, b) in pairs.items():
        diff = _max_abs_diff(a, b)
        report.add(check, diff <= tol, f"max |diff| = {diff:.2e} (tol {tol:.0e})")
    return report


def _internal_node_rows(node, X, idx=None) -> list[np.ndarray]:
    """The training rows reaching each internal node of our tree, in preorder."""
    idx = np.arange(len(X)) if idx is None else idx
    if node.is_leaf:
        return []
    go_left = X[idx, node.feature] <= node.threshold
    return [idx] + _internal_node_rows(node.left, X, idx[go_left]) + _internal_node_rows(
        node.right, X, idx[~go_left])


def audit_tree(ours, theirs, X_train, y_train, X_test) -> AuditReport:
    """Our entropy tree against ``DecisionTreeClassifier(criterion="entropy")``.

    Splits are compared in preorder. Two splits agree when they are the same (feature,
    threshold), or when they cut the node's training rows the same way (on Iris, petal length
    <= 2.45 and petal width <= 0.8 both isolate setosa). scikit-learn breaks ties between equally
    good splits by a random feature order, ours by the lowest feature index; where the trees
    part, the audit passes only if the two splits have equal information gain on that node's
    rows. Identical trees must predict identically.
    """
    report = AuditReport("decision tree vs sklearn DecisionTreeClassifier(entropy)")
    X_train = np.asarray(X_train, float)
    y_train = np.asarray(y_train)
    ours_splits, their_splits = preorder_splits(ours), preorder_splits(theirs)
    node_rows = _internal_node_rows(ours.tree_, X_train)

    def cut(split, rows):
        return X_train[rows, split[0]] <= split[1]

    def identical(a, b):
        return a[0] == b[0] and abs(a[1] - b[1]) <= THRESHOLD_TOL

    agreeing = 0
    for a, b, rows in zip(ours_splits, their_splits, node_rows):
        if not (identical(a, b) or np.array_equal(cut(a, rows), cut(b, rows))):
            break
        agreeing += 1
    all_agree = agreeing == len(ours_splits) == len(their_splits)
    detail = f"{agreeing} of {len(their_splits)} splits agree in preorder (ours has {len(ours_splits)})"
    passed = all_agree
    if not all_agree and agreeing < min(len(ours_splits), len(their_splits)):
        a, b, rows = ours_splits[agreeing], their_splits[agreeing], node_rows[agreeing]
        gains = information_gain(y_train[rows], cut(a, rows)), information_gain(y_train[rows], cut(b, rows))
        passed = abs(gains[0] - gains[1]) <= 1e-12
        detail += (f"; at split {agreeing} ours x[{a[0]}] <= {a[1]:.4f}, sklearn x[{b[0]}] <= {b[1]:.4f}, "
                   f"gains {gains[0]:.6f} vs {gains[1]:.6f} ({'a tie' if passed else 'NOT a tie'})")
    report.add("splits (same, or same partition, where ties allow)", passed, detail)

    strictly_identical = len(ours_splits) == len(their_splits) and all(
        identical(a, b) for a, b in zip(ours_splits, their_splits))
    agreement = float(np.mean(ours.predict(X_test) == theirs.predict(X_test)))
    report.add("test predictions", agreement == 1.0 or not strictly_identical,
               f"{agreement:.1%} agree" + ("" if strictly_identical
                                           else " (trees differ only by tied splits; not required)"))
    return report


def audit_logistic(ours, theirs, X) -> AuditReport:
    """Gradient-descent logistic regression against scikit-learn's (no penalty, lbfgs)."""
    report = AuditReport("logistic regression (GD) vs sklearn LogisticRegression")
    diff = _max_abs_diff(ours.predict_proba(X), theirs.predict_proba(X))
    report.add("predicted probabilities", diff <= PROBA_TOL,
               f"max |diff| = {diff:.2e} (tol {PROBA_TOL:.0e})")
    agreement = float(np.mean(ours.predict(X) == theirs.predict(X)))
    report.add("predictions", agreement >= 0.99, f"{agreement:.1%} agree (need ≥ 99%)")
    return report


def audit_linear(ours, closed_form: tuple[np.ndarray, float], theirs) -> AuditReport:
    """Gradient-descent linear regression against the closed form and scikit-learn."""
    report = AuditReport("linear regression (GD) vs closed form and sklearn LinearRegression")
    coef, intercept = closed_form
    for name, (c, b) in {"closed-form least squares": (coef, intercept),
                         "sklearn LinearRegression": (theirs.coef_, theirs.intercept_)}.items():
        diff = max(_max_abs_diff(ours.coef_, c), abs(float(ours.intercept_) - float(b)))
        report.add(f"coefficients vs {name}", diff <= COEF_TOL,
                   f"max |diff| = {diff:.2e} (tol {COEF_TOL:.0e})")
    return report


def audit_cross_validation(model, X, y, result, cv: int, seed: int) -> AuditReport:
    """Our CV loop against ``sklearn.model_selection.cross_validate`` on the same folds (1e-12)."""
    from sklearn.model_selection import StratifiedKFold, cross_validate

    report = AuditReport("evaluation CV vs sklearn cross_validate")
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    theirs = cross_validate(model, X, y, cv=folds, scoring=["accuracy", "f1"])
    for metric in ("accuracy", "f1"):
        diff = abs(result.metrics[f"cv_{metric}_mean"] - float(theirs[f"test_{metric}"].mean()))
        report.add(f"cv {metric} mean", diff <= 1e-12, f"|diff| = {diff:.1e} (tol 1e-12)")
    return report


def audit_mlp_gradients(net, X, y, tol: float = 1e-6) -> AuditReport:
    """Our network's ``backward()`` against ``torch.autograd`` on one batch, in float64.

    The trained float32 weights are copied to float64 in both, so what is compared is the
    calculus, not rounding: relative error ``|g - g_torch| / (|g| + |g_torch|)`` per layer.
    """
    import copy

    import torch

    report = AuditReport("NumPy network backward() vs torch.autograd")
    ours = copy.deepcopy(net)
    ours.dtype = np.dtype(np.float64)
    ours.weights = [W.astype(np.float64) for W in ours.weights]
    ours.biases = [b.astype(np.float64) for b in ours.biases]
    ours.forward(X)
    grads = ours.backward(y)

    params = [torch.tensor(p, requires_grad=True) for pair in zip(ours.weights, ours.biases) for p in pair]
    activation = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[ours.activation]
    a = torch.tensor(np.asarray(X, np.float64))
    for i in range(0, len(params), 2):
        a = a @ params[i] + params[i + 1]
        if i + 2 < len(params):
            a = activation(a)
    torch.nn.functional.cross_entropy(a, torch.tensor(np.asarray(y))).backward()
    for layer, (dW, db) in enumerate(grads):
        for name, g, t in (("W", dW, params[2 * layer].grad), ("b", db, params[2 * layer + 1].grad)):
            t = t.numpy()
            error = float(np.linalg.norm(g - t) / max(np.linalg.norm(g) + np.linalg.norm(t), 1e-300))
            report.add(f"layer {layer + 1} d{name}", error <= tol, f"relative error {error:.1e} (tol {tol:.0e})")
    return report
