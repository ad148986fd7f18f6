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
from pipeline.scratch import (
    DecisionTreeClassifier,
    LinearRegressionGD,
    LogisticRegressionGD,
    closed_form_least_squares,
    export_text,
)

OURS_TREE, SKLEARN_TREE = "ours: decision tree", "sklearn: decision tree"
OURS_LOGISTIC, SKLEARN_LOGISTIC = "ours: logistic regression (GD)", "sklearn: logistic regression"


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


def trees_side_by_side(ours, theirs, names: list[str]) -> str:
    """Both trees in scikit-learn's text layout, in two columns."""
    left = export_text(final_step(ours)[0], feature_names=names).splitlines()
    right = sklearn_export_text(final_step(theirs)[0], feature_names=names).splitlines()
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
