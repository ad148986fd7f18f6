"""Every audit passes on the real model and fails on a perturbed one.

An audit that cannot be seen to fail checks nothing: each twin audit (``pipeline.audit.twins``)
and Unit 8's trained-model audit (``pipeline.audit.reload``) gets its real model and a model with
one thing changed (a moved threshold, a rotated component, a wrong gradient, other folds, nudged
coefficients, one perturbed weight).
"""

import copy

import numpy as np
import pytest
import torch
from sklearn import decomposition, linear_model, tree
from sklearn.datasets import load_iris, make_classification, make_regression
from sklearn.model_selection import train_test_split

from pipeline.audit import AuditFailedError, raise_for_failures, reload, twins
from pipeline.evaluation import evaluate
from pipeline.scratch import (
    PCA,
    DecisionTreeClassifier,
    LinearRegressionGD,
    LogisticRegressionGD,
    closed_form_least_squares,
    information_gain,
    preorder_splits,
)
from pipeline.scratch.mlp import NeuralNetwork

IRIS_X, IRIS_Y = load_iris(return_X_y=True)


def failed_checks(report) -> set[str]:
    return {finding.check for finding in report.failures}


# --- decision tree ---------------------------------------------------------------------------


def sklearn_tree(**params):
    return tree.DecisionTreeClassifier(criterion="entropy", random_state=0, **params)


@pytest.fixture(scope="module")
def tie_free():
    """Trees without a tie to depth 3 (see tests/test_scratch.py): ours and sklearn's identical."""
    X, y = make_classification(n_samples=400, n_features=5, n_informative=3, n_redundant=0, n_classes=3,
                               random_state=0)
    X = X.astype(np.float32).astype(np.float64)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    ours = DecisionTreeClassifier(max_depth=3).fit(X_train, y_train)
    return ours, sklearn_tree(max_depth=3).fit(X_train, y_train), X_train, y_train, X_test


@pytest.fixture(scope="module")
def iris_trees():
    X_train, X_test, y_train, _ = train_test_split(IRIS_X, IRIS_Y, test_size=0.3, random_state=0,
                                                   stratify=IRIS_Y)
    return DecisionTreeClassifier().fit(X_train, y_train), sklearn_tree().fit(X_train, y_train), \
        X_train, y_train, X_test


def node_at(model, path: str):
    node = model.tree_
    for step in path:
        node = node.left if step == "L" else node.right
    return node


def test_tree_audit_passes_on_identical_trees_comparing_every_split_and_row(tie_free):
    report = twins.audit_tree(*tie_free)
    assert report.passed, report.table()
    splits, predictions = (f.detail for f in report.findings)
    n = len(preorder_splits(tie_free[1]))
    assert n >= 5 and splits.startswith(f"{n} of {n} splits (sklearn {n}) match: {n} same") and "tied" not in splits
    assert predictions.startswith(f"{len(tie_free[4])} of {len(tie_free[4])} test rows")


def test_tree_audit_passes_on_iris_through_ties_and_walks_below_the_tied_root(iris_trees):
    report = twins.audit_tree(*iris_trees)
    assert report.passed, report.table()
    splits = report.findings[0].detail
    # The root (petal length vs petal width, same rows) is a tie the walk goes on below; deeper,
    # ties with equal gain but other rows part the trees, and only their subtrees go uncompared.
    assert "1 another feature cutting the rows alike" in splits and "tied split(s) with equal gain" in splits
    n_compared = int(report.findings[1].detail.split(" of ")[0])
    assert 0 < n_compared < len(iris_trees[4])


def test_tree_audit_fails_on_a_moved_threshold_below_the_root(tie_free):
    ours, theirs, X_train, y_train, X_test = tie_free
    moved = copy.deepcopy(ours)
    node = node_at(moved, "L")
    rows = X_train[X_train[:, ours.tree_.feature] <= ours.tree_.threshold]
    node.threshold = float(np.median(rows[:, node.feature]))  # other rows go left: not a tie
    report = twins.audit_tree(moved, theirs, X_train, y_train, X_test)
    assert "splits, whole tree (ties by equal gain)" in failed_checks(report)
    assert "MISMATCH(ES): at root.L ours" in report.findings[0].detail
    with pytest.raises(AuditFailedError, match="NOT|MISMATCH"):
        raise_for_failures(report)


def test_tree_audit_fails_on_a_moved_threshold_deep_in_the_tree_after_a_tie(iris_trees):
    # The old audit stopped comparing at the first tie (Iris's root): a change below it went unseen.
    ours, theirs, X_train, y_train, X_test = iris_trees
    moved = copy.deepcopy(ours)
    node = node_at(moved, "RL")  # below the tied root
    node.threshold += 0.3  # petal widths are 0.1 apart: other rows go left
    assert not twins.audit_tree(moved, theirs, X_train, y_train, X_test).passed
    assert twins.audit_tree(ours, theirs, X_train, y_train, X_test).passed


def test_tree_audit_fails_on_a_threshold_off_the_midpoint_even_with_the_same_rows():
    ours, theirs = DecisionTreeClassifier(max_depth=3).fit(IRIS_X, IRIS_Y), sklearn_tree(max_depth=3).fit(
        IRIS_X, IRIS_Y)
    moved = copy.deepcopy(ours)
    node = node_at(moved, "R")  # petal width <= 1.75, between 1.7 and 1.8
    assert node.feature == 3 and node.threshold == pytest.approx(1.75)
    node.threshold = 1.72
    report = twins.audit_tree(moved, theirs, IRIS_X, IRIS_Y, IRIS_X)
    assert not report.passed and "the threshold is not where the twin puts it" in report.findings[0].detail


def test_tree_audit_fails_when_a_leaf_predicts_otherwise(tie_free):
    ours, theirs, X_train, y_train, X_test = tie_free
    changed = copy.deepcopy(ours)
    leaf = node_at(changed, "LL")
    while not leaf.is_leaf:
        leaf = leaf.left
    leaf.value = leaf.value[::-1].copy()
    report = twins.audit_tree(changed, theirs, X_train, y_train, X_test)
    assert failed_checks(report) == {"splits, whole tree (ties by equal gain)",
                                     "test predictions where both trees' paths agree"}


def test_tree_audit_passes_a_tie_with_other_rows_and_fails_the_same_split_with_a_lower_gain():
    # Symmetric data: x0 <= 0.5 and x1 <= 0.5 each set one end row apart, with the same gain.
    X = np.array([[0, 3], [1, 2], [2, 1], [3, 0]] * 3, float)
    y = np.array([0, 1, 1, 0] * 3)
    ours = DecisionTreeClassifier(max_depth=1).fit(X, y)
    mirrored = DecisionTreeClassifier(max_depth=1).fit(X[:, ::-1], y)  # picks the other feature
    mirrored.tree_.feature = 1 - mirrored.tree_.feature
    (fa, ta), (fb, tb) = (ours.tree_.feature, ours.tree_.threshold), (1, mirrored.tree_.threshold)
    assert fa != fb and information_gain(y, X[:, fa] <= ta) == pytest.approx(information_gain(y, X[:, fb] <= tb))
    report = twins.audit_tree(ours, mirrored, X, y, X)
    assert report.passed, report.table()
    assert "1 tied split(s) with equal gain" in report.findings[0].detail

    worse = copy.deepcopy(mirrored)
    worse.tree_.threshold = 1.5  # rows {0, 1} vs {2, 3}: no gain at all
    assert not twins.audit_tree(ours, worse, X, y, X).passed


# --- PCA ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pca_pair():
    X = np.random.default_rng(0).normal(size=(200, 6)) @ np.random.default_rng(1).normal(size=(6, 6))
    return PCA(n_components=3).fit(X), decomposition.PCA(n_components=3).fit(X), X


def test_pca_audit_passes_on_the_real_model_and_a_sign_flip(pca_pair):
    ours, theirs, X = pca_pair
    assert twins.audit_pca(ours, theirs, X).passed
    flipped = copy.deepcopy(ours)
    flipped.components_ = flipped.components_ * np.array([[-1.0], [1.0], [-1.0]])
    assert twins.audit_pca(flipped, theirs, X).passed


def test_pca_audit_fails_on_a_rotated_component(pca_pair):
    ours, theirs, X = pca_pair
    rotated = copy.deepcopy(ours)
    angle = 1e-3
    c, s = np.cos(angle), np.sin(angle)
    first, second = rotated.components_[0].copy(), rotated.components_[1].copy()
    rotated.components_[0], rotated.components_[1] = c * first - s * second, s * first + c * second
    assert {"components (up to sign)", "projections (up to sign)"} <= failed_checks(
        twins.audit_pca(rotated, theirs, X))


# --- MLP gradients ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlp_batch():
    rng = np.random.default_rng(0)
    net = NeuralNetwork([10, 8, 6, 3], activation="relu", seed=0)
    return net, rng.normal(size=(16, 10)).astype(np.float32), rng.integers(0, 3, size=16)


def test_mlp_gradient_audit_passes_on_the_real_backward(mlp_batch):
    report = twins.audit_mlp_gradients(*mlp_batch)
    assert report.passed and len(report.findings) == 6


def test_mlp_gradient_audit_fails_on_a_wrong_weight_gradient(mlp_batch, monkeypatch):
    backward = NeuralNetwork.backward

    def wrong_backward(self, y):
        grads = backward(self, y)
        dW, db = grads[1]
        dW = dW.copy()
        dW[0, 0] += 1e-3 * (np.abs(dW).max() + 1.0)  # one entry of layer 2's weight gradient
        grads[1] = (dW, db)
        return grads

    monkeypatch.setattr(NeuralNetwork, "backward", wrong_backward)
    assert failed_checks(twins.audit_mlp_gradients(*mlp_batch)) == {"layer 2 dW"}


# --- cross-validation -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cv_problem():
    X, y = make_classification(n_samples=200, n_features=6, flip_y=0.1, random_state=0)
    model = tree.DecisionTreeClassifier(max_depth=3, random_state=0)
    return model, X, y, evaluate(model, X, y, X[:20], y[:20], cv=5, seed=0)


def test_cv_audit_passes_on_the_same_folds(cv_problem):
    model, X, y, result = cv_problem
    report = twins.audit_cross_validation(model, X, y, result, cv=5, seed=0)
    assert report.passed and {"cv accuracy per fold", "cv f1 mean"} <= {f.check for f in report.findings}


def test_cv_audit_fails_on_results_from_other_folds(cv_problem):
    model, X, y, _ = cv_problem
    other_folds = evaluate(model, X, y, X[:20], y[:20], cv=5, seed=1)
    assert not twins.audit_cross_validation(model, X, y, other_folds, cv=5, seed=0).passed


def test_cv_audit_fails_on_shifted_folds_even_when_the_mean_agrees(cv_problem):
    model, X, y, result = cv_problem
    shifted = copy.copy(result)
    shifted.fold_metrics = result.fold_metrics[1:] + result.fold_metrics[:1]  # fold k scored as k+1
    failed = failed_checks(twins.audit_cross_validation(model, X, y, shifted, cv=5, seed=0))
    assert failed == {"cv accuracy per fold", "cv f1 per fold"}  # the means alone would pass


# --- logistic and linear regression -----------------------------------------------------------


@pytest.fixture(scope="module")
def logistic_pair():
    X, y = make_classification(n_samples=300, n_features=5, n_informative=3, flip_y=0.1, random_state=0)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    theirs = linear_model.LogisticRegression(C=np.inf, solver="lbfgs", tol=1e-12, max_iter=10_000).fit(X, y)
    return LogisticRegressionGD().fit(X, y), theirs, X


def test_logistic_audit_passes_on_the_real_model(logistic_pair):
    assert twins.audit_logistic(*logistic_pair).passed


def test_logistic_audit_fails_on_perturbed_coefficients(logistic_pair):
    ours, theirs, X = logistic_pair
    nudged = copy.deepcopy(ours)
    nudged.coef_ = nudged.coef_ + 1e-3
    assert "predicted probabilities" in failed_checks(twins.audit_logistic(nudged, theirs, X))


@pytest.fixture(scope="module")
def linear_fit():
    X, y = make_regression(n_samples=200, n_features=4, noise=5.0, random_state=0)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return (LinearRegressionGD().fit(X, y), closed_form_least_squares(X, y),
            linear_model.LinearRegression().fit(X, y))


def test_linear_audit_passes_on_the_real_model(linear_fit):
    assert twins.audit_linear(*linear_fit).passed


@pytest.mark.parametrize("attribute", ["coef_", "intercept_"])
def test_linear_audit_fails_on_perturbed_coefficients(linear_fit, attribute):
    ours, closed_form, theirs = linear_fit
    nudged = copy.deepcopy(ours)
    setattr(nudged, attribute, getattr(nudged, attribute) + 1e-3)
    assert len(twins.audit_linear(nudged, closed_form, theirs).failures) == 2


# --- Unit 8: the trained model through a save/reload and both memory layouts -------------------


@pytest.fixture(scope="module")
def small_resnet():
    """Model B's architecture at width 4, trained one epoch on 128 random images (BN statistics set)."""
    from pipeline.augment import cifar_eval_transform
    from pipeline.lessons.cifar_cnn import SETTINGS
    from pipeline.models import ResNetSmall
    from pipeline.training import TorchClassifier, TrainConfig

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(128, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=128)
    _, quick = SETTINGS["quick"]["Model B: small ResNet"]
    config = TrainConfig(epochs=1, batch_size=64, lr=0.05, optimizer="sgd", device="cpu",
                         channels_last=quick.channels_last)
    model = TorchClassifier(ResNetWidth4(), config, input_transform=cifar_eval_transform()).fit(X, y)
    assert isinstance(model.module_, ResNetSmall)
    return model, X[:16]


class ResNetWidth4:
    """A picklable factory (a partial of a class would do as well)."""

    def __call__(self):
        from pipeline.models import ResNetSmall

        return ResNetSmall(width=4)


def test_reload_audit_passes_on_the_trained_model_and_leaves_it_untouched(small_resnet):
    model, X = small_resnet
    before = {k: v.clone() for k, v in model.module_.state_dict().items()}
    proba = model.predict_proba(X)
    report = reload.audit_torch_reload(model, X)
    assert report.passed, report.table()
    assert len(report.findings) == 3
    after = model.module_.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    np.testing.assert_array_equal(model.predict_proba(X), proba)


def test_reload_audit_fails_when_the_reloaded_model_differs(small_resnet, monkeypatch):
    model, X = small_resnet
    real_reload = reload.reload_module

    def one_weight_off(fitted):
        module = real_reload(fitted)
        with torch.no_grad():
            weight = next(p for name, p in module.named_parameters() if name.endswith("weight") and p.ndim == 4)
            weight.view(-1)[0] += 0.5  # one weight of the first convolution
        return module

    monkeypatch.setattr(reload, "reload_module", one_weight_off)
    assert "logits after save/reload (channels-last, fp32)" in failed_checks(reload.audit_torch_reload(model, X))


def test_reload_audit_fails_when_batch_norm_statistics_are_lost(small_resnet, monkeypatch):
    model, X = small_resnet
    real_reload = reload.reload_module

    def without_buffers(fitted):
        module = real_reload(fitted)
        for layer in module.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                layer.reset_running_stats()
        return module

    monkeypatch.setattr(reload, "reload_module", without_buffers)
    assert not reload.audit_torch_reload(model, X).passed
