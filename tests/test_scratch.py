"""From-scratch algorithms against their scikit-learn (and scipy) counterparts as oracles.

Like micrograd against PyTorch: fit ours and the library's on the same data, assert the same
numbers. Tolerances are in each test's name or assert.
"""

import numpy as np
import pytest
import scipy.stats
from sklearn import decomposition, linear_model, tree
from sklearn.base import clone
from sklearn.datasets import load_iris, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from pipeline.scratch import (
    PCA,
    DecisionTreeClassifier,
    LinearRegressionGD,
    LogisticRegressionGD,
    best_split,
    closed_form_least_squares,
    entropy,
    export_text,
    information_gain,
    linear_map_demo,
    preorder_splits,
)

IRIS_X, IRIS_Y = load_iris(return_X_y=True)
IRIS_FEATURES = load_iris().feature_names


def random_matrix():
    """200 x 6 correlated Gaussian data: distinct eigenvalues, no special structure."""
    rng = np.random.default_rng(0)
    return rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))


def tie_free_classification():
    """3-class continuous data where no two candidate splits have equal gain up to depth 3.

    Rounded to float32 because scikit-learn's trees compute in float32: with the same values
    both trees see the same candidate thresholds, bit for bit.
    """
    X, y = make_classification(
        n_samples=400, n_features=5, n_informative=3, n_redundant=0, n_classes=3, random_state=0
    )
    return X.astype(np.float32).astype(np.float64), y


def standardised(X):
    return StandardScaler().fit_transform(X)


# --- the scikit-learn estimator contract ----------------------------------------------------


@parametrize_with_checks(
    [
        PCA(),
        DecisionTreeClassifier(),
        LinearRegressionGD(n_iter=2000),
        LogisticRegressionGD(n_iter=300),
    ]
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_passes_sklearn_check_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "estimator",
    [
        PCA(n_components=2),
        DecisionTreeClassifier(max_depth=3),
        LinearRegressionGD(),
        LogisticRegressionGD(),
    ],
)
def test_unfitted_estimator_raises_not_fitted_error(estimator):
    method = "transform" if isinstance(estimator, PCA) else "predict"
    with pytest.raises(NotFittedError):
        getattr(estimator, method)(IRIS_X)


def test_clone_copies_params_not_fitted_state():
    fitted = DecisionTreeClassifier(max_depth=2, min_samples_leaf=3).fit(IRIS_X, IRIS_Y)
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "tree_")


# --- PCA vs sklearn.decomposition.PCA -------------------------------------------------------


@pytest.mark.parametrize("n_components", [None, 2])
@pytest.mark.parametrize("X", [IRIS_X, random_matrix()], ids=["iris", "random_200x6"])
def test_pca_matches_sklearn_to_1e8(X, n_components):
    ours = PCA(n_components=n_components).fit(X)
    theirs = decomposition.PCA(n_components=n_components).fit(X)

    assert ours.n_components_ == theirs.n_components_
    assert ours.components_.shape == theirs.components_.shape
    # The contract is "equal up to sign" (an eigenvector's sign is arbitrary)...
    signs = np.sign(np.sum(ours.components_ * theirs.components_, axis=1))
    np.testing.assert_allclose(ours.components_ * signs[:, None], theirs.components_, atol=1e-8)
    # ...and since we apply sklearn's svd_flip convention, the signs agree as well.
    np.testing.assert_array_equal(signs, 1.0)
    for name in ["mean_", "explained_variance_", "explained_variance_ratio_", "singular_values_"]:
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), atol=1e-8)

    scores = ours.transform(X)
    np.testing.assert_allclose(scores, theirs.transform(X), atol=1e-8)
    np.testing.assert_allclose(ours.fit_transform(X), scores, atol=1e-8)
    np.testing.assert_allclose(
        ours.inverse_transform(scores), theirs.inverse_transform(scores), atol=1e-8
    )


def test_pca_with_all_components_reconstructs_exactly_to_1e10():
    pca = PCA().fit(IRIS_X)
    np.testing.assert_allclose(pca.inverse_transform(pca.transform(IRIS_X)), IRIS_X, atol=1e-10)
    np.testing.assert_allclose(pca.explained_variance_ratio_.sum(), 1.0, atol=1e-12)


def test_pca_explained_variance_is_eigenvalues_of_np_cov_to_1e10():
    pca = PCA().fit(IRIS_X)
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(IRIS_X, rowvar=False)))[::-1]
    np.testing.assert_allclose(pca.explained_variance_, eigenvalues, atol=1e-10)


def test_pca_rejects_too_many_components():
    with pytest.raises(ValueError, match="n_components=5"):
        PCA(n_components=5).fit(IRIS_X)


def test_linear_map_demo_eigenvectors_are_only_scaled_to_1e12():
    cov = np.cov(IRIS_X[:, 2:], rowvar=False)
    demo = linear_map_demo(cov, n_points=50)

    assert demo["is_only_scaled"]
    assert demo["circle"].shape == demo["image"].shape == (50, 2)
    np.testing.assert_allclose(np.linalg.norm(demo["circle"], axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(demo["image"], demo["circle"] @ cov.T, atol=1e-12)
    for eigenvalue, v in zip(demo["eigenvalues"], demo["eigenvectors"].T):
        np.testing.assert_allclose(cov @ v, eigenvalue * v, atol=1e-12)
    assert demo["eigenvalues"][0] >= demo["eigenvalues"][1]
    # The ellipse's longest half-axis is the largest eigenvalue.
    np.testing.assert_allclose(
        np.linalg.norm(demo["image"], axis=1).max(), demo["eigenvalues"][0], rtol=1e-2
    )


# --- entropy and information gain -----------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "bits"),
    [
        ([0, 0, 1, 1], 1.0),
        ([0, 0, 0, 1], 0.8112781244591328),  # -(3/4 log2 3/4 + 1/4 log2 1/4)
        ([0, 1, 2], np.log2(3)),
        ([1, 1, 1], 0.0),
        (["cat", "dog"], 1.0),
    ],
)
def test_entropy_by_hand_to_1e12(labels, bits):
    assert entropy(labels) == pytest.approx(bits, abs=1e-12)


def test_entropy_matches_scipy_base2_to_1e12():
    labels = np.random.default_rng(0).integers(0, 5, size=300)
    counts = np.bincount(labels)
    assert entropy(labels) == pytest.approx(scipy.stats.entropy(counts, base=2), abs=1e-12)


@pytest.mark.parametrize(
    ("labels", "left_mask", "gain"),
    [
        ([0, 0, 1, 1], [True, True, False, False], 1.0),  # perfect split removes all entropy
        ([0, 0, 1, 1], [True, False, True, False], 0.0),  # children as mixed as the parent
        ([0, 0, 0, 1], [True, True, False, False], 0.8112781244591328 - 0.5),  # 0 and 1 bits
    ],
)
def test_information_gain_by_hand_to_1e12(labels, left_mask, gain):
    assert information_gain(labels, left_mask) == pytest.approx(gain, abs=1e-12)


def test_best_split_takes_midpoint_and_breaks_ties_by_lowest_feature():
    X = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])  # both separate y
    assert best_split(X, [0, 0, 1, 1]) == (0, 2.5, 1.0)
    assert best_split(np.ones((4, 2)), [0, 0, 1, 1]) == (None, None, 0.0)  # nothing to split


# --- DecisionTreeClassifier vs sklearn DecisionTreeClassifier(criterion="entropy") ---------


def sklearn_tree(**params):
    return tree.DecisionTreeClassifier(criterion="entropy", random_state=0, **params)


def test_tree_iris_root_is_a_genuine_tie_with_equal_gain_to_1e12():
    # On Iris, "petal length <= 2.45" and "petal width <= 0.8" both isolate setosa exactly.
    # sklearn (random feature order, random_state=0) picks petal width; ours, by its
    # lowest-feature-index rule, petal length. Same gain, same partition of the samples.
    ours, theirs = DecisionTreeClassifier().fit(IRIS_X, IRIS_Y), sklearn_tree().fit(IRIS_X, IRIS_Y)
    (our_feature, our_threshold), (their_feature, their_threshold) = (
        preorder_splits(ours)[0],
        preorder_splits(theirs)[0],
    )
    assert (our_feature, our_threshold) == (2, pytest.approx(2.45))
    our_mask = IRIS_X[:, our_feature] <= our_threshold
    their_mask = IRIS_X[:, their_feature] <= their_threshold
    np.testing.assert_array_equal(our_mask, their_mask)
    assert information_gain(IRIS_Y, our_mask) == pytest.approx(
        information_gain(IRIS_Y, their_mask), abs=1e-12
    )
    assert information_gain(IRIS_Y, our_mask) == pytest.approx(np.log2(3) - 2 / 3, abs=1e-12)


def test_tree_iris_depth3_same_splits_below_the_tied_root_thresholds_to_1e6():
    # Thresholds agree to 1e-6, not better: sklearn stores Iris values as float32.
    ours = preorder_splits(DecisionTreeClassifier(max_depth=3).fit(IRIS_X, IRIS_Y))
    theirs = preorder_splits(sklearn_tree(max_depth=3).fit(IRIS_X, IRIS_Y))
    assert len(ours) == len(theirs)
    assert [f for f, _ in ours[1:]] == [f for f, _ in theirs[1:]]
    np.testing.assert_allclose([t for _, t in ours[1:]], [t for _, t in theirs[1:]], atol=1e-6)


def test_tree_iris_full_depth_same_train_predictions_and_probabilities():
    ours, theirs = DecisionTreeClassifier().fit(IRIS_X, IRIS_Y), sklearn_tree().fit(IRIS_X, IRIS_Y)
    np.testing.assert_array_equal(ours.predict(IRIS_X), theirs.predict(IRIS_X))
    np.testing.assert_allclose(ours.predict_proba(IRIS_X), theirs.predict_proba(IRIS_X), atol=1e-12)
    assert ours.get_depth() == theirs.get_depth()
    assert ours.get_n_leaves() == theirs.get_n_leaves()


def test_tree_iris_held_out_accuracy():
    X_train, X_test, y_train, y_test = train_test_split(
        IRIS_X, IRIS_Y, test_size=0.3, random_state=0, stratify=IRIS_Y
    )
    ours = DecisionTreeClassifier(max_depth=3).fit(X_train, y_train)
    theirs = sklearn_tree(max_depth=3).fit(X_train, y_train)
    np.testing.assert_array_equal(ours.predict(X_test), theirs.predict(X_test))
    assert ours.score(X_test, y_test) == theirs.score(X_test, y_test)

    # Fully grown, the small nodes deep down have many tied splits, and which one sklearn
    # takes depends on its seed; so does its held-out accuracy. Ours is one of those trees.
    ours_full = DecisionTreeClassifier().fit(X_train, y_train).score(X_test, y_test)
    sklearn_full = [
        tree.DecisionTreeClassifier(criterion="entropy", random_state=seed)
        .fit(X_train, y_train)
        .score(X_test, y_test)
        for seed in range(10)
    ]
    assert min(sklearn_full) <= ours_full <= max(sklearn_full)


def test_tree_tie_free_data_identical_to_sklearn_to_1e12():
    X, y = tie_free_classification()
    ours = DecisionTreeClassifier(max_depth=3).fit(X, y)
    theirs = sklearn_tree(max_depth=3).fit(X, y)

    our_splits, their_splits = preorder_splits(ours), preorder_splits(theirs)
    assert [f for f, _ in our_splits] == [f for f, _ in their_splits]
    np.testing.assert_allclose([t for _, t in our_splits], [t for _, t in their_splits], atol=1e-12)
    np.testing.assert_allclose(ours.feature_importances_, theirs.feature_importances_, atol=1e-12)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-12)
    assert export_text(ours) == tree.export_text(theirs)


def test_export_text_matches_sklearn_layout_on_iris_below_the_root():
    ours = export_text(DecisionTreeClassifier(max_depth=3).fit(IRIS_X, IRIS_Y), IRIS_FEATURES)
    theirs = tree.export_text(
        sklearn_tree(max_depth=3).fit(IRIS_X, IRIS_Y), feature_names=IRIS_FEATURES
    )
    assert ours.splitlines()[0] == "|--- petal length (cm) <= 2.45"
    assert theirs.splitlines()[0] == "|--- petal width (cm) <= 0.80"  # the tied root
    assert ours.splitlines()[1:] == [
        line.replace("petal width (cm) >  0.80", "petal length (cm) >  2.45")
        for line in theirs.splitlines()[1:]
    ]


@pytest.mark.parametrize(
    "params",
    [{"max_depth": 1}, {"max_depth": 2}, {"min_samples_split": 40}, {"min_samples_leaf": 15}],
)
def test_tree_stopping_rules_respected_and_leaf_count_matches_sklearn(params):
    X, y = tie_free_classification()
    ours = DecisionTreeClassifier(**params).fit(X, y)
    nodes = []

    def collect(node, depth):
        nodes.append((node, depth))
        if not node.is_leaf:
            collect(node.left, depth + 1)
            collect(node.right, depth + 1)

    collect(ours.tree_, 0)
    assert max(depth for _, depth in nodes) <= params.get("max_depth", np.inf)
    internal = [node for node, _ in nodes if not node.is_leaf]
    leaves = [node for node, _ in nodes if node.is_leaf]
    assert all(node.n_samples >= params.get("min_samples_split", 2) for node in internal)
    assert all(node.n_samples >= params.get("min_samples_leaf", 1) for node in leaves)
    assert ours.get_n_leaves() == sklearn_tree(**params).fit(X, y).get_n_leaves()


def test_tree_works_under_cross_val_score_like_sklearn():
    ours = cross_val_score(DecisionTreeClassifier(max_depth=3), IRIS_X, IRIS_Y, cv=5)
    theirs = cross_val_score(sklearn_tree(max_depth=3), IRIS_X, IRIS_Y, cv=5)
    np.testing.assert_allclose(ours, theirs)


def test_tree_accepts_string_labels():
    labels = np.array(["setosa", "versicolor", "virginica"])[IRIS_Y]
    model = DecisionTreeClassifier(max_depth=2).fit(IRIS_X, labels)
    assert set(model.predict(IRIS_X)) <= set(labels)
    assert "class: setosa" in export_text(model)


# --- LinearRegressionGD vs the closed form and sklearn LinearRegression -------------------


def regression_problems():
    synthetic = make_regression(n_samples=200, n_features=5, noise=5.0, random_state=0)
    # Iris: predict petal width from the other three measurements (strongly correlated).
    iris = (IRIS_X[:, :3], IRIS_X[:, 3])
    return [synthetic, iris]


@pytest.mark.parametrize("problem", regression_problems(), ids=["synthetic", "iris_petal_width"])
def test_linear_regression_gd_matches_closed_form_and_sklearn_to_1e5(problem):
    X, y = problem
    gd = LinearRegressionGD().fit(X, y)
    coef, intercept = closed_form_least_squares(X, y)
    sk = linear_model.LinearRegression().fit(X, y)

    np.testing.assert_allclose(coef, sk.coef_, atol=1e-10)
    assert intercept == pytest.approx(sk.intercept_, abs=1e-10)
    np.testing.assert_allclose(gd.coef_, coef, atol=1e-5)
    assert gd.intercept_ == pytest.approx(intercept, abs=1e-5)
    np.testing.assert_allclose(gd.predict(X), sk.predict(X), atol=1e-5)
    # Full-batch GD with a small enough step never increases the loss.
    assert np.all(np.diff(gd.loss_history_) <= 1e-12)
    assert gd.n_iter_ < gd.n_iter


def test_linear_regression_gd_warns_when_not_converged_and_raises_when_diverging():
    X, y = regression_problems()[1]
    with pytest.warns(ConvergenceWarning, match="n_iter=5"):
        LinearRegressionGD(n_iter=5).fit(X, y)
    with pytest.raises(FloatingPointError, match="lower learning_rate"):
        LinearRegressionGD(learning_rate=5.0).fit(X, y)


def test_linear_regression_gd_under_cross_val_score_equals_sklearn_to_1e6():
    X, y = regression_problems()[0]
    ours = cross_val_score(LinearRegressionGD(), X, y, cv=5)
    theirs = cross_val_score(linear_model.LinearRegression(), X, y, cv=5)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


# --- LogisticRegressionGD vs sklearn LogisticRegression(solver="lbfgs") -------------------


def sklearn_logistic(C):
    # C=np.inf is sklearn 1.9's spelling of "no penalty" (penalty=None is deprecated).
    return linear_model.LogisticRegression(C=C, solver="lbfgs", tol=1e-12, max_iter=10_000)


def noisy_classification(n_classes):
    # flip_y puts wrong labels among the right ones: not separable, so the unpenalised
    # maximum-likelihood solution exists (on separable data the weights would grow forever).
    X, y = make_classification(
        n_samples=300,
        n_features=5,
        n_informative=3,
        n_classes=n_classes,
        flip_y=0.1,
        random_state=0,
    )
    return standardised(X), y


@pytest.mark.parametrize("C", [np.inf, 1.0])
def test_logistic_binary_matches_sklearn_probabilities_to_1e5(C):
    X, y = noisy_classification(n_classes=2)
    ours = LogisticRegressionGD(l2=0.0 if C == np.inf else 1.0 / (C * len(y))).fit(X, y)
    theirs = sklearn_logistic(C).fit(X, y)

    assert ours.coef_.shape == theirs.coef_.shape == (1, 5)
    assert ours.intercept_.shape == theirs.intercept_.shape == (1,)
    # With a single sigmoid score the coefficients are unique, so they must match too.
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-4)
    np.testing.assert_allclose(ours.decision_function(X), theirs.decision_function(X), atol=1e-4)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


@pytest.mark.parametrize(
    ("problem", "C"),
    [
        (noisy_classification(n_classes=3), np.inf),
        # Unpenalised Iris has no optimum (setosa is linearly separable), so use sklearn's
        # default C=1, i.e. l2 = 1 / (C * n_samples).
        ((standardised(IRIS_X), IRIS_Y), 1.0),
    ],
    ids=["noisy_3_classes_unpenalised", "iris_C1"],
)
def test_logistic_multiclass_matches_sklearn_probabilities_to_1e5(problem, C):
    X, y = problem
    ours = LogisticRegressionGD(l2=0.0 if C == np.inf else 1.0 / (C * len(y))).fit(X, y)
    theirs = sklearn_logistic(C).fit(X, y)

    assert ours.coef_.shape == theirs.coef_.shape == (3, X.shape[1])
    assert ours.decision_function(X).shape == (len(y), 3)
    # Softmax is overparameterised (adding one vector to every class's weights changes no
    # probability), so unpenalised coefficients need not match; probabilities must.
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def test_logistic_in_a_pipeline_under_cross_val_score_equals_sklearn():
    X, y = load_iris(return_X_y=True)
    ours = make_pipeline(StandardScaler(), LogisticRegressionGD(l2=1.0 / 120))  # 120 per fold
    theirs = make_pipeline(StandardScaler(), sklearn_logistic(C=1.0))
    np.testing.assert_allclose(
        cross_val_score(ours, X, y, cv=5), cross_val_score(theirs, X, y, cv=5)
    )


def test_logistic_rejects_a_single_class():
    with pytest.raises(ValueError, match="one class"):
        LogisticRegressionGD().fit(IRIS_X[:10], IRIS_Y[:10])


def test_export_text_names_the_classes():
    model = DecisionTreeClassifier(max_depth=1).fit(IRIS_X, IRIS_Y)
    names = ["setosa", "versicolor", "virginica"]
    assert export_text(model, IRIS_FEATURES, class_names=names).splitlines() == [
        "|--- petal length (cm) <= 2.45", "|   |--- class: setosa",
        "|--- petal length (cm) >  2.45", "|   |--- class: versicolor"]  # a 50/50 leaf: the first class
    with pytest.raises(ValueError, match="class_names must contain 3"):
        export_text(model, class_names=names[:2])
