"""Unit 6 evaluation: metrics against hand-computed values, CV mechanics, any-estimator support."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.base import ClassifierMixin
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from pipeline import plots
from pipeline.evaluation import (
    EvaluationResult,
    ModelAdapter,
    compare_models,
    evaluate,
    validation_curve_table,
)
from pipeline.lessons.model_selection import imbalance_demo

# --- hand-written models: prove that non-sklearn models plug in through ModelAdapter ----------


class FixedPredictions(ModelAdapter):
    """Looks up fixed outputs by row id (X[:, 0]); fit is a no-op, so the answers are known."""

    def __init__(self, predictions=(), scores=None):
        self.predictions = predictions
        self.scores = scores

    def fit(self, X, y):
        return self

    def predict(self, X):
        return np.asarray(self.predictions)[np.asarray(X)[:, 0].astype(int)]


class FixedScores(FixedPredictions):
    """FixedPredictions plus predict_proba; columns follow the sorted labels (no classes_)."""

    def predict_proba(self, X):
        scores = np.asarray(self.scores, dtype=float)[np.asarray(X)[:, 0].astype(int)]
        return np.column_stack([1 - scores, scores]) if scores.ndim == 1 else scores


class MajorityClass(ClassifierMixin, ModelAdapter):
    """Predicts the most frequent training label; no scores at all."""

    def fit(self, X, y):
        self.classes_, counts = np.unique(y, return_counts=True)
        self.majority_ = self.classes_[np.argmax(counts)]
        return self

    def predict(self, X):
        return np.full(len(X), self.majority_)


class AlwaysLabel(ClassifierMixin, ModelAdapter):
    """Predicts one label for every row: accuracy on a fold = that label's share of the fold."""

    def __init__(self, label=1):
        self.label = label

    def fit(self, X, y):
        return self

    def predict(self, X):
        return np.full(len(X), self.label)


class ThresholdRule(ClassifierMixin, ModelAdapter):
    """1 where X[:, 0] > threshold: a perfect rule on data built with it."""

    def __init__(self, threshold=0.0):
        self.threshold = threshold

    def fit(self, X, y):
        return self

    def predict(self, X):
        return (np.asarray(X)[:, 0] > self.threshold).astype(int)


def row_ids(n):
    return np.arange(n).reshape(-1, 1)


def pairwise_auc(positive, scores):
    """ROC AUC by its definition: the share of (positive, negative) pairs ranked correctly."""
    pos, neg = scores[positive], scores[~positive]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


# --- metrics against hand-computed values ------------------------------------------------------

BINARY_Y = np.array([0, 0, 1, 1, 1, 0])
BINARY_PRED = np.array([0, 1, 1, 1, 0, 0])  # TP=2 (rows 2, 3), FP=1 (row 1), FN=1 (row 4), TN=2
BINARY_SCORES = np.array([0.1, 0.6, 0.8, 0.7, 0.4, 0.3])  # > 0.5 exactly where BINARY_PRED is 1


def test_binary_metrics_match_hand_computation():
    model = FixedScores(BINARY_PRED, BINARY_SCORES)
    X = row_ids(6)
    result = evaluate(model, X, BINARY_Y, X, BINARY_Y, cv=0)

    m = result.metrics
    assert result.task == "classification"
    assert m["test_accuracy"] == pytest.approx(4 / 6)
    assert m["test_precision"] == pytest.approx(2 / 3)  # TP / (TP + FP)
    assert m["test_recall"] == pytest.approx(2 / 3)  # TP / (TP + FN)
    assert m["test_f1"] == pytest.approx(2 / 3)
    # Positives score 0.8, 0.7, 0.4; negatives 0.1, 0.6, 0.3. 0.8 and 0.7 beat all three
    # negatives, 0.4 beats two: 8 of 9 pairs ranked correctly.
    assert m["test_roc_auc"] == pytest.approx(8 / 9)
    assert pairwise_auc(BINARY_Y == 1, BINARY_SCORES) == pytest.approx(8 / 9)
    np.testing.assert_array_equal(result.confusion_matrix, [[2, 1], [1, 2]])
    assert result.labels == [0, 1]
    np.testing.assert_allclose(result.y_score, BINARY_SCORES)
    assert not any(key.startswith("cv_") for key in m)
    assert all(isinstance(v, float) for v in m.values())


def test_positive_class_is_the_greater_label():
    y = np.where(BINARY_Y == 1, "yes", "no")
    pred = np.where(BINARY_PRED == 1, "yes", "no")
    pred[0] = "yes"  # one more false positive: for "yes" precision 2/4, recall 2/3
    # (were "no" the positive class: precision 1/2, recall 1/3)
    result = evaluate(FixedPredictions(pred), row_ids(6), y, row_ids(6), y, task="classification", cv=0)
    assert result.labels == ["no", "yes"]
    assert result.metrics["test_precision"] == pytest.approx(2 / 4)
    assert result.metrics["test_recall"] == pytest.approx(2 / 3)


MULTI_Y = np.array([0, 0, 1, 1, 2, 2, 2])
MULTI_PRED = np.array([0, 1, 1, 1, 2, 0, 2])
MULTI_PROBA = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.3, 0.6, 0.1],
        [0.1, 0.8, 0.1],
        [0.2, 0.5, 0.3],
        [0.1, 0.2, 0.7],
        [0.5, 0.1, 0.4],
        [0.2, 0.1, 0.7],
    ]
)


def test_multiclass_macro_and_weighted_match_hand_computation():
    # Per class (precision, recall, f1, support):
    #   0: TP=1 FP=1 FN=1 -> 1/2, 1/2, 1/2, 2
    #   1: TP=2 FP=1 FN=0 -> 2/3, 1,   4/5, 2
    #   2: TP=2 FP=0 FN=1 -> 1,   2/3, 4/5, 3
    result = evaluate(FixedScores(MULTI_PRED, MULTI_PROBA), row_ids(7), MULTI_Y, row_ids(7), MULTI_Y, cv=0)
    m = result.metrics
    assert m["test_accuracy"] == pytest.approx(5 / 7)
    assert m["test_precision_macro"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert m["test_recall_macro"] == pytest.approx((1 / 2 + 1 + 2 / 3) / 3)
    assert m["test_f1_macro"] == pytest.approx((1 / 2 + 4 / 5 + 4 / 5) / 3)
    assert m["test_precision_weighted"] == pytest.approx((2 * 1 / 2 + 2 * 2 / 3 + 3 * 1) / 7)
    assert m["test_recall_weighted"] == pytest.approx(5 / 7)
    assert m["test_f1_weighted"] == pytest.approx((2 * 1 / 2 + 2 * 4 / 5 + 3 * 4 / 5) / 7)
    expected_auc = np.mean([pairwise_auc(MULTI_Y == c, MULTI_PROBA[:, c]) for c in range(3)])
    assert m["test_roc_auc"] == pytest.approx(expected_auc)
    assert m["test_roc_auc"] == pytest.approx(roc_auc_score(MULTI_Y, MULTI_PROBA, multi_class="ovr"))
    assert "test_precision" not in m and "test_f1" not in m
    np.testing.assert_array_equal(result.confusion_matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])


def test_regression_metrics_match_hand_computation():
    y = np.array([3.0, -0.5, 2.0, 7.0])
    pred = np.array([2.5, 0.0, 2.0, 8.0])  # errors 0.5, -0.5, 0, -1
    result = evaluate(FixedPredictions(pred), row_ids(4), y, row_ids(4), y, cv=0)
    ss_tot = sum((v - 2.875) ** 2 for v in y)  # mean of y is 11.5 / 4
    assert result.task == "regression"
    assert result.metrics["test_mse"] == pytest.approx(1.5 / 4)
    assert result.metrics["test_rmse"] == pytest.approx(math.sqrt(1.5 / 4))
    assert result.metrics["test_mae"] == pytest.approx(2.0 / 4)
    assert result.metrics["test_r2"] == pytest.approx(1 - 1.5 / ss_tot)
    assert result.confusion_matrix is None and result.labels is None and result.y_score is None


def test_model_without_scores_has_no_roc_auc_and_says_why():
    X, y = row_ids(6), BINARY_Y
    result = evaluate(MajorityClass(), X, y, X, y, cv=3)
    assert "test_roc_auc" not in result.metrics and "cv_roc_auc_mean" not in result.metrics
    assert any("roc_auc" in note for note in result.notes)
    assert result.metrics["test_accuracy"] == pytest.approx(0.5)
    assert result.metrics["test_recall"] == 0.0  # majority is the first of a tie: label 0


def test_multiclass_with_only_decision_function_omits_roc_auc():
    X, y = load_iris(return_X_y=True)
    result = evaluate(LinearSVC(), X, y, X, y, cv=0)
    assert "test_roc_auc" not in result.metrics
    assert any("predict_proba" in note for note in result.notes)


# --- cross-validation -------------------------------------------------------------------------


def test_cv_fold_count_and_std_from_folds():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = (rng.random(60) < 0.5).astype(int)
    result = evaluate(ThresholdRule(0.0), X, y, X, y, cv=4)
    assert len(result.fold_metrics) == 4
    accuracies = [fold["accuracy"] for fold in result.fold_metrics]
    assert result.metrics["cv_accuracy_mean"] == pytest.approx(np.mean(accuracies))
    assert result.metrics["cv_accuracy_std"] == pytest.approx(np.std(accuracies))
    assert "StratifiedKFold" in result.cv_strategy


def test_cv_of_a_perfect_deterministic_model_has_zero_std():
    X = np.linspace(-1, 1, 50).reshape(-1, 1)
    y = (X[:, 0] > 0).astype(int)
    result = evaluate(ThresholdRule(0.0), X, y, X, y, cv=5)
    assert result.metrics["cv_accuracy_mean"] == 1.0
    assert result.metrics["cv_accuracy_std"] == 0.0


def test_stratification_keeps_class_ratios():
    # 20 % positives in 100 rows; AlwaysLabel(1) scores each fold's share of positives.
    X = row_ids(100)
    y = np.zeros(100, dtype=int)
    y[::5] = 1
    stratified = evaluate(AlwaysLabel(1), X, y, X, y, cv=5, stratified=True)
    plain = evaluate(AlwaysLabel(1), X, y, X, y, cv=5, stratified=False)
    assert [f["accuracy"] for f in stratified.fold_metrics] == [0.2] * 5
    assert stratified.metrics["cv_accuracy_std"] == 0.0
    assert plain.metrics["cv_accuracy_std"] > 0.0
    assert "KFold" in plain.cv_strategy and "Stratified" not in plain.cv_strategy


def test_same_seed_same_numbers_other_seed_other_folds():
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    model = LogisticRegression(max_iter=200)
    first = evaluate(model, X_train, y_train, X_test, y_test, cv=3, seed=1, stratified=False)
    again = evaluate(model, X_train, y_train, X_test, y_test, cv=3, seed=1, stratified=False)
    other = evaluate(model, X_train, y_train, X_test, y_test, cv=3, seed=2, stratified=False)
    assert first.metrics == again.metrics
    assert first.fold_metrics != other.fold_metrics


# --- sklearn estimators, DataFrames, fit=False -------------------------------------------------


def test_sklearn_classifier_on_iris_multiclass():
    X, y = load_iris(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    result = evaluate(model, X_train, y_train, X_test, y_test, cv=5)
    m = result.metrics
    for name in ("accuracy", "precision_macro", "recall_weighted", "f1_macro", "f1_weighted", "roc_auc"):
        assert {f"test_{name}", f"cv_{name}_mean", f"cv_{name}_std"} <= m.keys()
    assert m["test_accuracy"] > 0.85 and m["test_roc_auc"] > 0.95
    assert result.labels == [0, 1, 2] and result.confusion_matrix.shape == (3, 3)
    assert result.y_score.shape == (len(y_test), 3)
    assert not hasattr(model[-1], "coef_")  # the input is left unfitted; result.model is fitted
    assert hasattr(result.model[-1], "coef_")
    table = result.table()
    assert list(table.columns) == ["test", "cv_mean", "cv_std"]
    assert table.loc["accuracy", "test"] == m["test_accuracy"]
    summary = result.summary_markdown()
    assert "| accuracy |" in summary and "StratifiedKFold" in summary


def test_sklearn_regressor():
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    result = evaluate(Ridge(alpha=0.1), X_train, y_train, X_test, y_test, cv=5)
    assert result.task == "regression"
    assert {"test_mse", "test_rmse", "test_mae", "test_r2", "cv_r2_mean", "cv_r2_std"} <= result.metrics.keys()
    assert result.metrics["test_r2"] > 0.3
    assert result.metrics["test_rmse"] == pytest.approx(math.sqrt(result.metrics["test_mse"]))
    assert "KFold" in result.cv_strategy and "Stratified" not in result.cv_strategy


def test_regressor_with_integer_targets_follows_the_model_type():
    X = np.arange(20, dtype=float).reshape(-1, 1)
    y = np.arange(20)  # integer targets would look like classes to task="auto"
    assert evaluate(Ridge(), X, y, X, y, cv=0).task == "regression"


def test_fit_false_uses_the_given_fitted_model():
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    result = evaluate(model, None, None, X, y, cv=0, fit=False)
    assert result.model is model
    assert result.metrics["test_accuracy"] == pytest.approx(model.score(X, y))


def test_bad_arguments_raise_clear_errors():
    X, y = row_ids(6), BINARY_Y
    with pytest.raises(ValueError, match="task must be"):
        evaluate(MajorityClass(), X, y, X, y, task="ranking")
    with pytest.raises(ValueError, match="at least two classes"):
        evaluate(MajorityClass(), X, np.zeros(6), X, np.zeros(6), task="classification", cv=0)
    with pytest.raises(ValueError, match="y_train is needed"):
        evaluate(MajorityClass(), X, None, X, y)


# --- model comparison, validation curve, imbalance lesson ---------------------------------------


def test_compare_models_has_a_row_per_model():
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    models = {"majority": MajorityClass(), "logistic": LogisticRegression(max_iter=500)}
    table, results = compare_models(models, X_train, y_train, X_test, y_test, cv=3)
    assert list(table.index) == ["majority", "logistic"]
    assert set(results) == set(models) and all(isinstance(r, EvaluationResult) for r in results.values())
    assert table.loc["logistic", "test_accuracy"] > table.loc["majority", "test_accuracy"]
    assert np.isnan(table.loc["majority", "test_roc_auc"])


def test_validation_curve_table_shape():
    X, y = load_iris(return_X_y=True)
    values = [0.01, 0.1, 1.0, 10.0]
    table = validation_curve_table(LogisticRegression(max_iter=500), X, y, "C", values, cv=3, seed=0)
    assert table.shape == (4, 5)
    assert list(table.columns) == ["C", "train_mean", "train_std", "cv_mean", "cv_std"]
    assert table["C"].tolist() == values
    assert table["train_mean"].iloc[-1] > table["train_mean"].iloc[0]  # less regularisation fits more


def test_imbalance_demo_shows_accuracy_misleads():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zero_division=0: no UndefinedMetricWarning noise
        table = imbalance_demo(seed=0)
    assert list(table.columns) == ["accuracy", "precision", "recall", "f1", "roc_auc"]
    baseline = table.loc["majority class"]
    balanced = table.loc["logistic regression, balanced"]
    assert baseline["accuracy"] >= 0.9
    assert baseline["recall"] == 0.0 and baseline["f1"] == 0.0
    assert baseline["roc_auc"] == pytest.approx(0.5)
    assert balanced["recall"] > baseline["recall"]
    assert balanced["recall"] >= table.loc["logistic regression", "recall"]


# --- figures ------------------------------------------------------------------------------------


def test_classification_figures_render_to_png():
    X, y = load_iris(return_X_y=True)
    result = evaluate(LogisticRegression(max_iter=500), X, y, X, y, cv=0)
    figures = result.figures()
    assert set(figures) == {"confusion_matrix", "roc_curve"}
    assert all(isinstance(fig, Figure) for fig in figures.values())
    assert plots.figure_to_png(figures["roc_curve"]).startswith(b"\x89PNG")

    binary = evaluate(FixedScores(BINARY_PRED, BINARY_SCORES), row_ids(6), BINARY_Y, row_ids(6), BINARY_Y, cv=0)
    assert plots.figure_to_png(binary.figures()["roc_curve"]).startswith(b"\x89PNG")
    no_scores = evaluate(MajorityClass(), row_ids(6), BINARY_Y, row_ids(6), BINARY_Y, cv=0)
    assert set(no_scores.figures()) == {"confusion_matrix"}


def test_regression_and_helper_figures_render_to_png():
    y = np.array([3.0, -0.5, 2.0, 7.0])
    result = evaluate(FixedPredictions(y + 0.5), row_ids(4), y, row_ids(4), y, cv=0)
    assert set(result.figures()) == {"predicted_vs_actual"}

    table = pd.DataFrame(
        {"max_depth": [1, 2, None], "train_mean": [0.7, 0.8, 1.0], "train_std": [0.01] * 3,
         "cv_mean": [0.7, 0.75, 0.7], "cv_std": [0.02] * 3}
    )
    rng = np.random.default_rng(0)
    figures = [
        result.figures()["predicted_vs_actual"],
        plots.validation_curve_figure(table, "max_depth"),
        plots.validation_curve_figure(table.assign(max_depth=[0.01, 1.0, 100.0]), "max_depth"),
        plots.scatter_2d_figure(rng.normal(size=(30, 2)), rng.integers(0, 3, 30), "PCA projection"),
        plots.bar_figure([0.5, 0.3, 0.2], ["PC1", "PC2", "PC3"], "explained variance"),
        plots.confusion_matrix_figure(np.array([[5, 1], [2, 7]]), ["no", "yes"]),
    ]
    for fig in figures:
        assert isinstance(fig, Figure)
        assert plots.figure_to_png(fig).startswith(b"\x89PNG")
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        plots.scatter_2d_figure(np.zeros((5, 3)))


def test_figures_show_class_names_in_the_confusion_matrix_and_roc_legend():
    X, y = load_iris(return_X_y=True)
    species = ("setosa", "versicolor", "virginica")
    result = evaluate(LogisticRegression(max_iter=500), X, y, X, y, cv=0)
    assert result.display_names() == ["0", "1", "2"]  # without names, the codes
    for figures in (result.figures(species), result.figures({0: "setosa", 1: "versicolor", 2: "virginica"}),
                    evaluate(LogisticRegression(max_iter=500), X, y, X, y, cv=0, class_names=species).figures()):
        axes = figures["confusion_matrix"].axes[0]
        assert [t.get_text() for t in axes.get_xticklabels()] == list(species)
        assert [t.get_text() for t in axes.get_yticklabels()] == list(species)
        legend = [t.get_text() for t in figures["roc_curve"].axes[0].get_legend().get_texts()]
        assert legend[0].startswith("setosa vs rest (AUC")
    with pytest.raises(ValueError, match="indexed by the label"):
        result.figures(("setosa", "versicolor"))


def test_evaluation_figures_have_captions_naming_the_classes():
    binary = evaluate(FixedScores(BINARY_PRED, BINARY_SCORES), row_ids(6), BINARY_Y, row_ids(6), BINARY_Y, cv=0)
    captions = binary.captions({0: "died", 1: "survived"})
    assert set(captions) == set(binary.figures())
    assert "died predicted as survived (false positives)" in captions["confusion_matrix"]
    assert "survived predicted as died (false negatives" in captions["confusion_matrix"]
    y = np.array([3.0, -0.5, 2.0, 7.0])
    regression = evaluate(FixedPredictions(y + 0.5), row_ids(4), y, row_ids(4), y, cv=0)
    assert set(regression.captions()) == {"predicted_vs_actual"}
