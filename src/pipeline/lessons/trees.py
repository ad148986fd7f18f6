"""Unit 4 — decision trees, linear and logistic regression from scratch, beside scikit-learn.

Our entropy tree and ``DecisionTreeClassifier(criterion="entropy")`` are grown on the same rows
(Iris, then Titanic through one feature pipeline) and printed side by side; gradient-descent
logistic regression meets scikit-learn's, and an SVM joins the Titanic comparison. Linear
regression by gradient descent is checked against the closed-form least-squares solution.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import zip_longest

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier as SklearnTree
from sklearn.tree import export_text as sklearn_export_text

from pipeline.estimators import final_step
from pipeline.features import IRIS_FEATURES, Split, with_titanic_features
from pipeline.lessons.classes import IRIS_SPECIES, TITANIC_OUTCOMES
from pipeline.scratch import (
    DecisionTreeClassifier,
    LinearRegressionGD,
    LogisticRegressionGD,
    closed_form_least_squares,
    export_text,
)

OURS_TREE, SKLEARN_TREE = "ours: decision tree", "sklearn: decision tree"
OURS_LOGISTIC, SKLEARN_LOGISTIC = "ours: logistic regression (GD)", "sklearn: logistic regression"
BOUNDARY_FEATURES = (2, 3)  # petal length and width: the two Iris features the trees split on most

# What to look for in each figure of `unit04_figures`, printed under it on the results site.
CAPTIONS = {
    "gradient_descent_loss": "Linear regression by gradient descent (petal width from the other three "
                             "Iris measurements): the mean squared error before each step, against the "
                             "exact least-squares minimum (dashed). Left: nearly all of the fall happens "
                             "in the first few dozen steps. Right: the distance to the minimum on a log "
                             "axis, a straight line while each step removes the same fraction of what is "
                             "left, until the gradient is below the tolerance and descent stops.",
    "tree_iris": "Our entropy tree on the Iris training rows, drawn from its fitted nodes. Read from the "
                 "left: each box asks one question of one measurement (yes takes the upper branch) and "
                 "gives the entropy of the rows reaching it. The first question isolates setosa by "
                 "petal length; the next ones separate versicolor from virginica, and the last, deep "
                 "splits on a handful of rows are where a tree starts to fit noise. Leaves give the "
                 "majority species, their rows and that species' share.",
    "tree_titanic": "Our tree on the Titanic training rows, the unit's registered model. The root asks "
                    "about sex (Sex_male ≤ 0.50: yes for women), the single most informative question; "
                    "class, fare and age refine each side. The big leaves stay mixed (passengers alike "
                    "in these columns did not all share a fate) and the pure ones hold a few rows "
                    "each: the reason the tree's test accuracy stays near 0.78.",
    "decision_boundary_iris": "Our tree grown again on two Iris features only (petal length and width, "
                              "the unit's depth settings), the species it predicts shaded over the "
                              "plane; dots are training flowers, crosses test flowers. A tree's regions "
                              "are rectangles with sides parallel to the axes, since every split is one "
                              "threshold on one feature. A cross on another species' colour is a "
                              "mistake.",
}


def tree_pair(max_depth: int | None, min_samples_split: int, seed: int) -> dict[str, object]:
    return {
        OURS_TREE: DecisionTreeClassifier(max_depth=max_depth, min_samples_split=min_samples_split),
        SKLEARN_TREE: SklearnTree(criterion="entropy", max_depth=max_depth,
                                  min_samples_split=min_samples_split, random_state=seed),
    }


def titanic_models(max_depth: int | None, min_samples_split: int, seed: int) -> dict[str, Pipeline]:
    """The Titanic comparison, each model behind the same feature pipeline.

    Trees see unscaled features (their thresholds then read as ages and fares); the linear
    models and the SVM see standardised ones.
    """
    trees = {name: with_titanic_features(model, scale=False)
             for name, model in tree_pair(max_depth, min_samples_split, seed).items()}
    scaled = {
        OURS_LOGISTIC: LogisticRegressionGD(),
        # A tight tol: lbfgs's default (1e-4) stops ~1e-3 away in probability from the optimum.
        SKLEARN_LOGISTIC: LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000),
        "sklearn: SVM (RBF)": SVC(),  # decision_function gives ROC AUC; no probability calibration
    }
    return trees | {name: with_titanic_features(model) for name, model in scaled.items()}


def feature_names(model, default: list[str]) -> list[str]:
    return list(model[:-1].get_feature_names_out()) if isinstance(model, Pipeline) else default


def trees_side_by_side(ours, theirs, names: list[str], class_names: list[str] | None = None) -> str:
    """Both trees in scikit-learn's text layout, in two columns; leaves name their class by
    ``class_names`` (in ``classes_`` order) when given."""
    left = export_text(final_step(ours)[0], feature_names=names, class_names=class_names).splitlines()
    right = sklearn_export_text(final_step(theirs)[0], feature_names=names,
                                class_names=class_names).splitlines()
    width = max(len(line) for line in left + [OURS_TREE])
    rows = [f"{OURS_TREE:<{width}}  | {SKLEARN_TREE}", "-" * (width + 3 + len(SKLEARN_TREE))]
    rows += [f"{a:<{width}}  | {b}" for a, b in zip_longest(left, right, fillvalue="")]
    return "\n".join(rows)


@dataclass
class LinearRegressionFit:
    """Petal width from the other three Iris measurements, three ways."""

    ours: LinearRegressionGD
    closed_form: tuple[np.ndarray, float]
    theirs: LinearRegression
    split: Split


def fit_linear_regression(iris: pd.DataFrame, test_size: float, seed: int) -> LinearRegressionFit:
    X = iris[IRIS_FEATURES[:3]].to_numpy(dtype=float)
    y = iris["petal_width"].to_numpy(dtype=float)
    split = Split(*train_test_split(X, y, test_size=test_size, random_state=seed))
    return LinearRegressionFit(
        ours=LinearRegressionGD().fit(split.X_train, split.y_train),
        closed_form=closed_form_least_squares(split.X_train, split.y_train),
        theirs=LinearRegression().fit(split.X_train, split.y_train),
        split=split,
    )


def tree_audit_inputs(models: dict, split: Split) -> tuple:
    """(ours, theirs, X_train, y_train, X_test) as the trees see them, for ``audit_tree``."""
    ours, transform = final_step(models[OURS_TREE])
    theirs, _ = final_step(models[SKLEARN_TREE])
    return ours, theirs, transform(split.X_train), split.y_train, transform(split.X_test)


def logistic_audit_inputs(models: dict, split: Split) -> tuple:
    """(ours, theirs, X_test) as the logistic regressions see them, for ``audit_logistic``."""
    ours, transform = final_step(models[OURS_LOGISTIC])
    theirs, _ = final_step(models[SKLEARN_LOGISTIC])
    return ours, theirs, transform(split.X_test)


def gradient_descent_figure(fit: LinearRegressionFit):
    """The scratch linear regression's loss history against the closed-form minimum."""
    from pipeline.plots import loss_curve_figure

    coef, intercept = fit.closed_form
    optimum = float(np.mean((fit.split.X_train @ coef + intercept - fit.split.y_train) ** 2))
    return loss_curve_figure(fit.ours.loss_history_, optimum, "Linear regression by gradient descent",
                             "mean squared error")


def decision_boundary_tree(max_depth: int | None, min_samples_split: int, split: Split) -> DecisionTreeClassifier:
    """Our tree grown on the two ``BOUNDARY_FEATURES`` of the Iris training rows, for the boundary plot."""
    return DecisionTreeClassifier(max_depth=max_depth, min_samples_split=min_samples_split).fit(
        split.X_train[:, BOUNDARY_FEATURES], split.y_train)


def unit04_figures(iris_trees: dict, titanic_models: dict, iris_split: Split, linear: LinearRegressionFit,
                   max_depth: int | None, min_samples_split: int) -> dict[str, bytes]:
    """The unit's own figures: the gradient-descent loss curve, our two trees drawn, and a decision
    boundary on two Iris features (captions in ``CAPTIONS``)."""
    from pipeline.plots import decision_boundary_figure, figure_to_png, tree_figure

    titanic_tree = final_step(titanic_models[OURS_TREE])[0]
    boundary = decision_boundary_tree(max_depth, min_samples_split, iris_split)
    columns = list(BOUNDARY_FEATURES)
    return {
        "gradient_descent_loss": figure_to_png(gradient_descent_figure(linear)),
        "tree_iris": figure_to_png(tree_figure(
            iris_trees[OURS_TREE].tree_, IRIS_FEATURES, IRIS_SPECIES, "Our decision tree on Iris")),
        "tree_titanic": figure_to_png(tree_figure(
            titanic_tree.tree_, feature_names(titanic_models[OURS_TREE], []), TITANIC_OUTCOMES,
            "Our decision tree on Titanic")),
        "decision_boundary_iris": figure_to_png(decision_boundary_figure(
            boundary, iris_split.X_train[:, columns], iris_split.y_train,
            [IRIS_FEATURES[c] for c in columns], IRIS_SPECIES,
            "Our tree on petal length and width: decision regions",
            X_test=iris_split.X_test[:, columns], y_test=iris_split.y_test)),
    }
