"""From-scratch models against their library twins, with the tolerances stated in each check."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.audit import AuditReport
from pipeline.scratch.tree import Node, information_gain

PCA_TOL = 1e-8
# scikit-learn's trees cast X to float32, so its thresholds carry float32 rounding (relative).
THRESHOLD_TOL = 1e-5
GAIN_TIE_TOL = 1e-12  # two splits whose information gains differ by less are a tie
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


class _TreeView:
    """One fitted tree, ours (``Node`` objects) or scikit-learn's (node ids), seen the same way.

    ``data(X)`` is X as the tree compares it: scikit-learn's trees cast X to float32 first.
    """

    def __init__(self, model):
        self.model = model
        self.ours = isinstance(model.tree_, Node)
        self.root = model.tree_ if self.ours else 0

    def data(self, X) -> np.ndarray:
        X = np.asarray(X, float)
        return X if self.ours else X.astype(np.float32).astype(float)

    def is_leaf(self, node) -> bool:
        return node.is_leaf if self.ours else self.model.tree_.children_left[node] == -1

    def split(self, node) -> tuple[int, float]:
        if self.ours:
            return int(node.feature), float(node.threshold)
        return int(self.model.tree_.feature[node]), float(self.model.tree_.threshold[node])

    def children(self, node):
        if self.ours:
            return node.left, node.right
        sk = self.model.tree_
        return sk.children_left[node], sk.children_right[node]

    def leaf_frequencies(self, node) -> np.ndarray:
        if self.ours:
            return np.asarray(node.value, float)
        value = np.asarray(self.model.tree_.value[node][0], float)  # counts or fractions by version
        return value / value.sum()

    def n_splits(self, node) -> int:
        if self.is_leaf(node):
            return 0
        left, right = self.children(node)
        return 1 + self.n_splits(left) + self.n_splits(right)


@dataclass
class _TreeWalk:
    """What walking two trees side by side found."""

    same_split: int = 0  # same feature, same threshold (to float32 rounding)
    same_partition: int = 0  # another feature (or threshold) cutting the node's training rows alike
    ties: list[str] = field(default_factory=list)  # equal gain, different partitions: not compared below
    mismatches: list[str] = field(default_factory=list)
    skipped: tuple[int, int] = (0, 0)  # splits (ours, theirs) below ties and mismatches, not compared
    leaves: int = 0
    compared_rows: list[np.ndarray] = field(default_factory=list)  # test rows whose paths agree

    def skip(self, a: _TreeView, b: _TreeView, node_a, node_b) -> None:
        """Count the splits below two compared nodes (or of an uncompared node) as not compared."""
        def below(view, node):
            return sum(map(view.n_splits, view.children(node))) if not view.is_leaf(node) else 0

        compared = not (a.is_leaf(node_a) or b.is_leaf(node_b))
        self.skipped = tuple(n + (below(view, node) if compared else view.n_splits(node))
                             for n, view, node in zip(self.skipped, (a, b), (node_a, node_b)))


def _walk_trees(a: _TreeView, b: _TreeView, X_train, y_train, X_test) -> _TreeWalk:
    """Walk both trees in step, from the roots, through every pair of nodes that correspond.

    Two nodes correspond when their ancestors' splits cut the training rows alike; their splits
    then agree when they are the same (feature, threshold), or when another feature cuts the
    node's training rows the same way (a tie whose subtrees still correspond). Where the splits
    cut the rows differently, they must have equal information gain (a tie, below which the trees
    legitimately part and are not compared), or it is a mismatch. A leaf facing a split, or two
    leaves with different class frequencies, is a mismatch. Test rows follow both trees and are
    kept (``compared_rows``) only while both send them the same way, down to a pair of leaves.
    """
    walk = _TreeWalk()
    train = a.data(X_train), b.data(X_train)
    test = a.data(X_test), b.data(X_test)

    def visit(node_a, node_b, rows, test_rows, path):
        leaf_a, leaf_b = a.is_leaf(node_a), b.is_leaf(node_b)
        if leaf_a and leaf_b:
            diff = _max_abs_diff(a.leaf_frequencies(node_a), b.leaf_frequencies(node_b))
            if diff > PROBA_TOL:
                walk.mismatches.append(f"at {path} the leaves' class frequencies differ by {diff:.2e}")
            else:
                walk.leaves += 1
            walk.compared_rows.append(test_rows)
            return
        if leaf_a or leaf_b:
            walk.mismatches.append(f"at {path} {'ours' if leaf_a else 'sklearn'} has a leaf, the other "
                                   f"a split ({len(rows)} training rows)")
            walk.skip(a, b, node_a, node_b)
            return
        (fa, ta), (fb, tb) = a.split(node_a), b.split(node_b)
        cut_a, cut_b = train[0][rows, fa] <= ta, train[1][rows, fb] <= tb
        same_threshold = abs(ta - tb) <= THRESHOLD_TOL * max(1.0, abs(tb))
        described = f"at {path} ours x[{fa}] <= {ta:.6g}, sklearn x[{fb}] <= {tb:.6g}"
        if fa == fb and same_threshold:
            walk.same_split += 1
        elif np.array_equal(cut_a, cut_b) and fa != fb:
            walk.same_partition += 1
        else:
            gains = information_gain(y_train[rows], cut_a), information_gain(y_train[rows], cut_b)
            tie = abs(gains[0] - gains[1]) <= GAIN_TIE_TOL and not np.array_equal(cut_a, cut_b)
            detail = f"{described}, gains {gains[0]:.6f} vs {gains[1]:.6f} ({len(rows)} training rows)"
            if np.array_equal(cut_a, cut_b):  # same feature, same rows, another threshold
                detail += ": same partition, but the threshold is not where the twin puts it"
            (walk.ties if tie else walk.mismatches).append(detail)
            walk.skip(a, b, node_a, node_b)
            return
        go_a, go_b = test[0][test_rows, fa] <= ta, test[1][test_rows, fb] <= tb
        (left_a, right_a), (left_b, right_b) = a.children(node_a), b.children(node_b)
        visit(left_a, left_b, rows[cut_a], test_rows[go_a & go_b], path + ".L")
        visit(right_a, right_b, rows[~cut_a], test_rows[~go_a & ~go_b], path + ".R")

    visit(a.root, b.root, np.arange(len(train[0])), np.arange(len(test[0])), "root")
    return walk


def _first(items: list[str], n: int = 3) -> str:
    return "; ".join(items[:n]) + (f"; and {len(items) - n} more" if len(items) > n else "")


def audit_tree(ours, theirs, X_train, y_train, X_test) -> AuditReport:
    """Our entropy tree against ``DecisionTreeClassifier(criterion="entropy")``, the whole tree.

    Both trees are walked in step (see ``_walk_trees``). scikit-learn breaks ties between equally
    good splits by a random feature order, ours by the lowest feature index, so at a tie the two
    may pick different splits: where those cut the node's training rows alike (on Iris, petal
    length <= 2.45 and petal width <= 0.8 both isolate setosa) the walk goes on below them; where
    they cut differently but with equal information gain (to 1e-12) the trees part there and
    their subtrees are not compared; a split that differs without a tie fails the audit, as
    does a leaf facing a split or leaves with other class frequencies. The test rows whose paths
    agree in both trees must get the same probabilities (1e-5) and so the same predictions.
    """
    report = AuditReport("decision tree vs sklearn DecisionTreeClassifier(entropy)")
    X_train, X_test, y_train = np.asarray(X_train, float), np.asarray(X_test, float), np.asarray(y_train)
    a, b = _TreeView(ours), _TreeView(theirs)
    walk = _walk_trees(a, b, X_train, y_train, X_test)

    matched = walk.same_split + walk.same_partition
    detail = (f"{matched} of {a.n_splits(a.root)} splits (sklearn {b.n_splits(b.root)}) match: "
              f"{walk.same_split} same, {walk.same_partition} another feature cutting the rows alike; "
              f"{walk.leaves} leaves match")
    if walk.ties:
        detail += (f"; {len(walk.ties)} tied split(s) with equal gain part the trees, "
                   f"{walk.skipped[0]} of our and {walk.skipped[1]} of sklearn's splits below them "
                   f"not compared: " + _first(walk.ties))
    if walk.mismatches:
        detail += f"; {len(walk.mismatches)} MISMATCH(ES): " + _first(walk.mismatches)
    report.add("splits, whole tree (ties by equal gain)", not walk.mismatches, detail)

    rows = np.concatenate(walk.compared_rows) if walk.compared_rows else np.array([], int)
    if len(rows):
        agreement = float(np.mean(ours.predict(X_test[rows]) == theirs.predict(X_test[rows])))
        diff = _max_abs_diff(ours.predict_proba(X_test[rows]), theirs.predict_proba(X_test[rows]))
    else:
        agreement, diff = 1.0, 0.0
    report.add("test predictions where both trees' paths agree", agreement == 1.0 and diff <= PROBA_TOL,
               f"{len(rows)} of {len(X_test)} test rows take agreeing paths: {agreement:.1%} same "
               f"prediction, probabilities max |diff| = {diff:.2e} (tol {PROBA_TOL:.0e})")
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
    """Our CV loop against ``sklearn.model_selection.cross_validate`` on the same folds (1e-12).

    Fold by fold where ``result.fold_metrics`` holds the folds (a loop that scored other folds
    fails even when its mean happens to agree), and the means.
    """
    from sklearn.model_selection import StratifiedKFold, cross_validate

    report = AuditReport("evaluation CV vs sklearn cross_validate")
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    theirs = cross_validate(model, X, y, cv=folds, scoring=["accuracy", "f1"])
    fold_metrics = getattr(result, "fold_metrics", None)
    for metric in ("accuracy", "f1"):
        if fold_metrics:
            ours = np.array([fold[metric] for fold in fold_metrics])
            same_count = len(ours) == len(theirs[f"test_{metric}"])
            diff = _max_abs_diff(ours, theirs[f"test_{metric}"]) if same_count else np.inf
            report.add(f"cv {metric} per fold", diff <= 1e-12,
                       f"{len(ours)} folds (sklearn {len(theirs[f'test_{metric}'])}), "
                       f"max |diff| = {diff:.1e} (tol 1e-12)")
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
