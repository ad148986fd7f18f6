"""Unit 6 — the evaluation pipeline applied: several models on Titanic, bias and variance,
and which metric to trust when classes are imbalanced.

The evaluation itself is ``pipeline.evaluation``; this module only chooses what to evaluate.
"""

from __future__ import annotations

import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from pipeline.evaluation import compare_models
from pipeline.features import with_titanic_features

SELECTION_METRIC = "cv_f1_mean"

METRIC_GUIDE = """\
## Which metric?

Accuracy counts every mistake the same. When one class is rare, a model that never predicts it
scores the base rate — see the imbalanced example, where predicting "negative" for everyone is
~95 % accurate and finds no positive at all. Prefer **recall** when a missed positive is costly
(fraud, disease screening), **precision** when a false alarm is (spam filtering, alerts that wake
someone), **F1** when both matter and positives are rare, and **ROC AUC** to compare rankings
independently of the threshold. On Titanic (38 % survived) accuracy is informative but F1 is the
selection metric here, so a model cannot win by ignoring survivors.
"""


CAPTIONS = {
    "validation_curve_depth": "Training and cross-validated accuracy of a decision tree on Titanic as "
                              "its maximum depth grows (bands: ± one standard deviation over the folds). "
                              "Shallow trees score low on both: bias. Deeper, the training score keeps "
                              "climbing while the CV score peaks and falls back: variance, the tree "
                              "learning its training rows. The peak is logged as "
                              "best_depth_by_cv_accuracy.",
}


def titanic_candidates(seed: int) -> dict[str, Pipeline]:
    """Candidate models, each behind the shared Titanic feature pipeline."""
    models = {
        "logistic regression": LogisticRegression(max_iter=1000),
        "decision tree (depth 4)": DecisionTreeClassifier(max_depth=4, random_state=seed),
        "random forest": RandomForestClassifier(n_estimators=200, max_depth=6, random_state=seed,
                                                n_jobs=1),
        "gradient boosting": GradientBoostingClassifier(random_state=seed),
        "k-nearest neighbours": KNeighborsClassifier(n_neighbors=15),
        "SVM (RBF)": SVC(),
    }
    return {name: with_titanic_features(model) for name, model in models.items()}


def best_model(table: pd.DataFrame, metric: str = SELECTION_METRIC) -> str:
    """The model with the best cross-validated score — chosen on CV, never on the test set."""
    return str(table[metric].idxmax())


DEPTH = "model__max_depth"


def depth_curve_model(seed: int) -> Pipeline:
    """A tree behind the feature pipeline; its depth (``DEPTH``) is the validation-curve knob."""
    return with_titanic_features(DecisionTreeClassifier(random_state=seed), scale=False)


def best_depth(curve: pd.DataFrame) -> dict[str, float]:
    """The depth with the best CV accuracy on the validation curve, as a metric."""
    return {"best_depth_by_cv_accuracy": float(curve.loc[curve["cv_mean"].idxmax(), DEPTH])}


def imbalance_demo(seed: int = 0, n_samples: int = 4000) -> pd.DataFrame:
    """Why accuracy misleads on imbalanced data: ~95 % accuracy from a model that finds nothing.

    Builds a binary problem with about 5 % positives, then evaluates a majority-class
    baseline and logistic regression with and without ``class_weight="balanced"``.
    Returns one row per model with test accuracy, precision, recall, f1, roc_auc: the
    baseline scores high accuracy but zero recall; reweighting trades precision for recall.
    """
    from sklearn.datasets import make_classification
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    X, y = make_classification(
        n_samples=n_samples, n_features=20, n_informative=5, weights=[0.95, 0.05], flip_y=0.0, random_state=seed
    )
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
    models = {
        "majority class": DummyClassifier(strategy="most_frequent"),
        "logistic regression": LogisticRegression(max_iter=1000),
        "logistic regression, balanced": LogisticRegression(max_iter=1000, class_weight="balanced"),
    }
    table, _ = compare_models(models, X_train, y_train, X_test, y_test, cv=0, seed=seed)
    columns = ["accuracy", "precision", "recall", "f1", "roc_auc"]
    return table[[f"test_{c}" for c in columns]].set_axis(columns, axis=1)
