"""A decision tree classifier from scratch: entropy, information gain, greedy recursive splits.

At each node we try every feature and every threshold halfway between two consecutive
distinct values, keep the split that lowers the entropy the most, and recurse on both sides
until a node is pure or a stopping rule (max_depth, min_samples_split, min_samples_leaf) fires.
This is scikit-learn's ``DecisionTreeClassifier(criterion="entropy")`` algorithm.

Tie-breaking differs on purpose: scikit-learn visits the features in a random permutation
(drawn from ``random_state``) and keeps the first best split it meets, so when two splits are
equally good the winner depends on the seed. Ours is deterministic: among equally good splits
it keeps the lowest feature index, then the lowest threshold. When a dataset has no exact
ties the two trees are identical.
"""

from dataclasses import dataclass
from io import StringIO

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

# Gains closer than this count as a tie, so rounding noise cannot break the tie-breaking rule.
_TIE_TOLERANCE = 1e-12


def entropy(y):
    """Shannon entropy in bits of the label distribution of y, shape (n_samples,).

    0 for a pure node, 1 for a 50/50 split of two classes, log2(k) for k equal classes.
    """
    _, counts = np.unique(np.asarray(y), return_counts=True)
    return float(_entropy_of_counts(counts))


def _entropy_of_counts(counts):
    """Entropy in bits of class counts along the last axis: (..., n_classes) -> (...)."""
    n = counts.sum(axis=-1, keepdims=True)
    p = np.divide(counts, n, out=np.zeros_like(counts, dtype=np.float64), where=n > 0)
    # 0 * log(0) is 0 in the limit; the where= skips the log of zero instead of producing nan.
    log_p = np.log2(p, out=np.zeros_like(p), where=p > 0)
    return -(p * log_p).sum(axis=-1) + 0.0  # + 0.0 turns -0.0 into 0.0


def information_gain(y, left_mask):
    """Entropy of y minus the size-weighted entropy of its two children.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels at the parent node.
    left_mask : array-like of bool, shape (n_samples,)
        True for the samples that go to the left child.

    Returns
    -------
    float
        The information gain in bits (>= 0).
    """
    y, left_mask = np.asarray(y), np.asarray(left_mask, dtype=bool)
    y_left, y_right = y[left_mask], y[~left_mask]
    weighted_children = (len(y_left) * entropy(y_left) + len(y_right) * entropy(y_right)) / len(y)
    return entropy(y) - weighted_children


def best_split(X, y, min_samples_leaf=1):
    """The split of (X, y) with the highest information gain.

    Candidate thresholds are the midpoints between consecutive distinct sorted values of each
    feature; a sample goes left when ``X[:, feature] <= threshold``. Ties go to the lowest
    feature index, then the lowest threshold.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    min_samples_leaf : int, default=1
        Splits leaving fewer samples than this on either side are not considered.

    Returns
    -------
    tuple
        ``(feature, threshold, gain)``, or ``(None, None, 0.0)`` when no split is possible
        (every feature constant, or too few samples for min_samples_leaf).
    """
    X = np.asarray(X, dtype=np.float64)
    _, y_codes = np.unique(np.asarray(y), return_inverse=True)
    one_hot = np.eye(y_codes.max() + 1)[y_codes]  # (N, K)
    n_samples = len(y_codes)
    parent_entropy = _entropy_of_counts(one_hot.sum(axis=0))
    n_left = np.arange(1, n_samples)  # (N-1,) left-child size when splitting after row i
    n_right = n_samples - n_left

    best = (None, None, 0.0)
    best_gain = -np.inf
    for feature in range(X.shape[1]):
        order = np.argsort(X[:, feature], kind="stable")
        values = X[order, feature]  # (N,) sorted
        # Class counts of the left child for every cut position at once; the right child is
        # the rest. Row i describes the cut between values[i] and values[i + 1].
        left_counts = np.cumsum(one_hot[order], axis=0)[:-1]  # (N-1, K)
        right_counts = left_counts[-1] + one_hot[order[-1]] - left_counts  # (N-1, K)
        children_entropy = (
            n_left * _entropy_of_counts(left_counts) + n_right * _entropy_of_counts(right_counts)
        ) / n_samples
        gains = parent_entropy - children_entropy  # (N-1,)

        # A threshold can only fall between two different values, and each child needs
        # min_samples_leaf samples.
        valid = (
            (values[1:] > values[:-1])
            & (n_left >= min_samples_leaf)
            & (n_right >= min_samples_leaf)
        )
        if not valid.any():
            continue
        gains = np.where(valid, gains, -np.inf)
        top = gains.max()
        cut = int(np.flatnonzero(gains >= top - _TIE_TOLERANCE)[0])  # lowest threshold among ties
        if top > best_gain + _TIE_TOLERANCE:  # strict: an equal gain keeps the earlier feature
            best_gain = top
            threshold = (values[cut] + values[cut + 1]) / 2.0
            best = (feature, float(threshold), float(max(top, 0.0)))
    return best


@dataclass
class Node:
    """One node of the tree; a leaf when ``feature`` is None.

    ``value`` holds the class frequencies (n_classes,) of the training samples that reached the
    node, ``impurity`` their entropy. Samples with ``x[feature] <= threshold`` go ``left``.
    """

    value: np.ndarray
    n_samples: int
    impurity: float
    feature: int | None = None
    threshold: float | None = None
    left: "Node | None" = None
    right: "Node | None" = None

    @property
    def is_leaf(self):
        return self.feature is None


class DecisionTreeClassifier(ClassifierMixin, BaseEstimator):
    """Decision tree classifier grown greedily on information gain (entropy).

    Parameters
    ----------
    max_depth : int or None, default=None
        Maximum depth (the root is depth 0). None grows until leaves are pure or unsplittable.
    min_samples_split : int, default=2
        A node with fewer samples becomes a leaf.
    min_samples_leaf : int, default=1
        Every leaf keeps at least this many samples.
    random_state : None
        Kept so the signature mirrors scikit-learn's; it has no effect, since ties are broken
        deterministically (see the module docstring).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    tree_ : Node
        The root node.
    feature_importances_ : ndarray of shape (n_features,)
        Total entropy decrease brought by each feature, weighted by node size, summing to 1.
    """

    def __init__(self, max_depth=None, min_samples_split=2, min_samples_leaf=1, random_state=None):
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    def fit(self, X, y):
        """Grow the tree on X (n_samples, n_features) and labels y (n_samples,); returns self."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        if self.max_depth is not None and self.max_depth < 1:
            raise ValueError(f"max_depth must be >= 1 or None, got {self.max_depth}.")
        if self.min_samples_split < 2:
            raise ValueError(f"min_samples_split must be >= 2, got {self.min_samples_split}.")
        if self.min_samples_leaf < 1:
            raise ValueError(f"min_samples_leaf must be >= 1, got {self.min_samples_leaf}.")

        self.classes_, y_codes = np.unique(y, return_inverse=True)
        self.tree_ = self._grow(X, y_codes, depth=0)
        self.feature_importances_ = _feature_importances(self.tree_, X.shape[1])
        return self

    def _grow(self, X, y_codes, depth):
        counts = np.bincount(y_codes, minlength=len(self.classes_))
        node = Node(
            value=counts / len(y_codes),
            n_samples=len(y_codes),
            impurity=float(_entropy_of_counts(counts)),
        )
        max_depth = np.inf if self.max_depth is None else self.max_depth
        if (
            depth >= max_depth
            or node.n_samples < self.min_samples_split
            or node.n_samples < 2 * self.min_samples_leaf
            or np.count_nonzero(counts) == 1  # pure: nothing left to separate
        ):
            return node

        feature, threshold, _ = best_split(X, y_codes, self.min_samples_leaf)
        if feature is None:
            return node
        # Like scikit-learn, split even when the best gain is 0: a later split may still help.
        goes_left = X[:, feature] <= threshold
        node.feature, node.threshold = feature, threshold
        node.left = self._grow(X[goes_left], y_codes[goes_left], depth + 1)
        node.right = self._grow(X[~goes_left], y_codes[~goes_left], depth + 1)
        return node

    def predict_proba(self, X):
        """Class frequencies at the leaf each sample reaches: (n_samples, n_classes)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        proba = np.empty((X.shape[0], len(self.classes_)))

        def route(node, rows):
            if node.is_leaf:
                proba[rows] = node.value
                return
            goes_left = X[rows, node.feature] <= node.threshold
            route(node.left, rows[goes_left])
            route(node.right, rows[~goes_left])

        route(self.tree_, np.arange(X.shape[0]))
        return proba

    def predict(self, X):
        """Most frequent class at the leaf each sample reaches: (n_samples,)."""
        proba = self.predict_proba(X)  # first, so an unfitted model raises NotFittedError
        return self.classes_[np.argmax(proba, axis=1)]

    def get_depth(self):
        """Depth of the deepest leaf (a lone root has depth 0)."""
        check_is_fitted(self)
        return _depth(self.tree_)

    def get_n_leaves(self):
        """Number of leaves."""
        check_is_fitted(self)
        return sum(1 for node in _preorder(self.tree_) if node.is_leaf)


def _feature_importances(root, n_features):
    """Entropy removed by each feature's splits, weighted by node size, normalised to sum 1.

    This is scikit-learn's mean decrease in impurity (MDI); a tree without splits gives zeros.
    """
    importances = np.zeros(n_features)
    for node in _preorder(root):
        if not node.is_leaf:
            importances[node.feature] += (
                node.n_samples * node.impurity
                - node.left.n_samples * node.left.impurity
                - node.right.n_samples * node.right.impurity
            )
    total = importances.sum()
    return importances / total if total > 0 else importances


def _depth(node):
    return 0 if node.is_leaf else 1 + max(_depth(node.left), _depth(node.right))


def _preorder(node):
    yield node
    if not node.is_leaf:
        yield from _preorder(node.left)
        yield from _preorder(node.right)


def preorder_splits(model):
    """The (feature, threshold) of every internal node, root first, left subtree before right.

    Works on our DecisionTreeClassifier and on scikit-learn's, so two trees' structures can be
    compared with ``==`` (or np.allclose on the thresholds).

    Returns
    -------
    list of tuple
        ``[(feature, threshold), ...]`` in preorder; empty for a single-leaf tree.
    """
    check_is_fitted(model)
    if isinstance(model.tree_, Node):
        return [(n.feature, n.threshold) for n in _preorder(model.tree_) if not n.is_leaf]

    sk_tree = model.tree_
    splits = []

    def visit(node_id):
        left = sk_tree.children_left[node_id]
        if left == -1:  # scikit-learn marks leaves with child -1
            return
        splits.append((int(sk_tree.feature[node_id]), float(sk_tree.threshold[node_id])))
        visit(left)
        visit(sk_tree.children_right[node_id])

    visit(0)
    return splits


def export_text(tree, feature_names=None, decimals=2, spacing=3, class_names=None):
    """Text rendering of our fitted tree in ``sklearn.tree.export_text``'s layout.

    Parameters
    ----------
    tree : DecisionTreeClassifier
        A fitted tree from this module.
    feature_names : list of str, optional
        Names for the features; defaults to ``feature_0``, ``feature_1``, ...
    decimals : int, default=2
        Digits shown for thresholds.
    spacing : int, default=3
        Width of one level of indentation.
    class_names : list of str, optional
        Names for the classes in ``classes_`` order (scikit-learn's ``class_names``); by default
        the labels themselves.

    Returns
    -------
    str
        One line per branch or leaf, e.g. ``|--- feature_2 <= 2.45``, ``|   |--- class: 0``.
        Unlike scikit-learn's, it always prints the whole tree (no max_depth truncation).
    """
    check_is_fitted(tree)
    if feature_names is None:
        feature_names = [f"feature_{i}" for i in range(tree.n_features_in_)]
    elif len(feature_names) != tree.n_features_in_:
        raise ValueError(
            f"feature_names must contain {tree.n_features_in_} elements, got {len(feature_names)}."
        )
    classes = list(tree.classes_) if class_names is None else list(class_names)
    if len(classes) != len(tree.classes_):
        raise ValueError(f"class_names must contain {len(tree.classes_)} elements, got {len(classes)}.")
    report = StringIO()

    def write(node, depth):
        indent = ("|" + " " * spacing) * depth
        indent = indent[:-spacing] + "-" * spacing
        if node.is_leaf:
            report.write(f"{indent} class: {classes[np.argmax(node.value)]}\n")
            return
        name, threshold = feature_names[node.feature], f"{node.threshold:.{decimals}f}"
        report.write(f"{indent} {name} <= {threshold}\n")
        write(node.left, depth + 1)
        report.write(f"{indent} {name} >  {threshold}\n")
        write(node.right, depth + 1)

    write(tree.tree_, 1)
    return report.getvalue()
