"""Unit 6: the one evaluation every unit uses — cross-validation on train, metrics on test.

``evaluate(model, X_train, y_train, X_test, y_test)`` fits a fresh clone of the model on each
K-fold (stratified for classification) split of the training data and scores the held-out fold,
then fits a clone on the whole training set and scores the test set with the same metrics.
The metrics come from ``sklearn.metrics``; this module is the pipeline around them: one flat
``dict[str, float]`` (``test_<m>``, ``cv_<m>_mean``, ``cv_<m>_std``) that goes straight to MLflow,
plus the confusion matrix, the test predictions and figures for the report.

Clustering (``task="clustering"``, or a clusterer with ``task="auto"``) needs no targets: the
metrics are the cluster-quality scores of the labels the model gives the test rows (silhouette,
Calinski-Harabasz, Davies-Bouldin, and the inertia for a model with ``score``), plus the adjusted
Rand index when reference labels ``y_test`` are given. Its CV fits a clone on k-1 folds and scores
the labels it predicts for the held-out fold: how well the clustering carries to unseen rows.

Any object with the sklearn estimator contract goes through: sklearn estimators and pipelines,
our from-scratch estimators, and non-sklearn models wrapped as a ``ModelAdapter``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.base import BaseEstimator, clone, is_classifier, is_clusterer, is_regressor
from sklearn.model_selection import KFold, StratifiedKFold, validation_curve
from sklearn.utils.multiclass import type_of_target

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TASKS = ("classification", "regression", "clustering")
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2")


class ModelAdapter(ABC, BaseEstimator):
    """Base class for a model that is not an sklearn estimator but should go through `evaluate`.

    The contract is sklearn's, reduced to what the evaluation calls:

    - ``__init__`` only stores its arguments as attributes of the same names, so ``get_params``
      and ``sklearn.base.clone`` work: cross-validation fits a fresh clone on every fold.
    - ``fit(X, y)`` trains and returns ``self``; learned state goes in trailing-underscore
      attributes (``classes_``, ``weights_``).
    - ``predict(X)`` returns labels (classification) or values (regression), shape (n,).
    - Optional ``predict_proba(X)``, shape (n, n_classes), columns in the order of ``classes_``
      (or of the sorted labels when the model has no ``classes_``); or, for binary problems,
      ``decision_function(X)``, shape (n,), larger meaning the greater label. With neither,
      ROC AUC is left out of the metrics and the result's ``notes`` say why.

    Put ``ClassifierMixin`` or ``RegressorMixin`` before ``ModelAdapter`` in the bases to
    declare the task; otherwise ``evaluate(task="auto")`` infers it from the targets.

    Examples
    --------
    >>> from sklearn.base import ClassifierMixin
    >>> class MajorityClass(ClassifierMixin, ModelAdapter):
    ...     def fit(self, X, y):
    ...         self.classes_, counts = np.unique(y, return_counts=True)
    ...         self.majority_ = self.classes_[np.argmax(counts)]
    ...         return self
    ...     def predict(self, X):
    ...         return np.full(len(X), self.majority_)
    """

    @abstractmethod
    def fit(self, X, y) -> ModelAdapter:
        """Train on X (n, d) and y (n,); return self."""

    @abstractmethod
    def predict(self, X) -> np.ndarray:
        """Predictions for X (n, d), shape (n,)."""


@dataclass
class EvaluationResult:
    """What `evaluate` measured.

    ``metrics`` is flat (``test_<m>``, ``cv_<m>_mean``, ``cv_<m>_std``) so it can be logged to
    MLflow as is; ``fold_metrics`` holds the per-fold values behind the cv_ entries.
    ``labels``, ``confusion_matrix`` (rows = true, columns = predicted, labels sorted) and
    ``y_score`` are None for regression and clustering (whose ``y_true`` is None without
    reference labels, and ``y_pred`` the cluster of each test row); ``y_score`` is the
    positive-class score (n,) for binary problems, the class probabilities (n, n_classes) for multiclass, None when the
    model gives no scores. ``class_names`` names the ``labels`` in figures (same order), None to
    show the labels as they are. ``fairness`` is the ``pipeline.audit.fairness.FairnessAudit`` of
    the test predictions when the evaluate task had the test rows' sensitive attributes, else None.
    """

    task: str
    model: Any
    metrics: dict[str, float]
    metric_names: list[str]
    y_true: np.ndarray | None
    y_pred: np.ndarray
    y_score: np.ndarray | None = None
    labels: list | None = None
    confusion_matrix: np.ndarray | None = None
    fold_metrics: list[dict[str, float]] = field(default_factory=list)
    cv_strategy: str = "none"
    notes: list[str] = field(default_factory=list)
    class_names: list[str] | None = None
    fairness: Any | None = None

    def table(self) -> pd.DataFrame:
        """One row per metric; columns ``test``, ``cv_mean``, ``cv_std`` (NaN without CV)."""
        rows = {
            name: {
                "test": self.metrics.get(f"test_{name}", np.nan),
                "cv_mean": self.metrics.get(f"cv_{name}_mean", np.nan),
                "cv_std": self.metrics.get(f"cv_{name}_std", np.nan),
            }
            for name in self.metric_names
        }
        table = pd.DataFrame.from_dict(rows, orient="index", columns=["test", "cv_mean", "cv_std"])
        table.index.name = "metric"
        return table

    def summary_markdown(self) -> str:
        """The metrics table and notes as Markdown, for a Prefect artifact or a results doc."""
        lines = [
            f"**{self.task.capitalize()}** — {len(self.y_pred)} test rows, CV: {self.cv_strategy}",
            "",
            "| metric | test | cv mean | cv std |",
            "|---|---:|---:|---:|",
        ]
        for name, row in self.table().iterrows():
            cells = " | ".join("—" if np.isnan(v) else f"{v:.4f}" for v in row)
            lines.append(f"| {name} | {cells} |")
        if self.notes:
            lines += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines) + "\n"

    def display_names(self, class_names=None) -> list[str]:
        """The classes as figures show them: ``class_names`` (see `class_display_names`), else the
        result's ``class_names``, else the labels as text."""
        if class_names is not None:
            return class_display_names(self.labels, class_names)
        return list(self.class_names) if self.class_names else [str(label) for label in self.labels]

    def figures(self, class_names=None) -> dict[str, Figure]:
        """Figures for the test set: confusion matrix and ROC curve(s), or predicted vs actual.

        Classes are shown by name: ``class_names`` maps each label to its name (a dict) or is
        indexed by the label (a sequence, for labels 0 .. k-1); without it, the result's own
        ``class_names``, else the labels themselves.
        """
        from pipeline import plots  # matplotlib only when figures are asked for

        if self.task == "clustering":  # a unit draws its clusters in its own feature space
            return {}
        if self.task == "regression":
            return {"predicted_vs_actual": plots.predicted_vs_actual_figure(self.y_true, self.y_pred)}
        names = self.display_names(class_names)
        figures = {"confusion_matrix": plots.confusion_matrix_figure(self.confusion_matrix, names)}
        if self.y_score is not None:
            figures["roc_curve"] = plots.roc_curve_figure(self.y_true, self.y_score, self.labels, names=names)
        return figures

    def captions(self, class_names=None) -> dict[str, str]:
        """What to look for in each of `figures`, by the same names."""
        if self.task == "clustering":
            return {}
        if self.task == "regression":
            return {"predicted_vs_actual": PREDICTED_VS_ACTUAL_CAPTION}
        captions = {"confusion_matrix": CONFUSION_MATRIX_CAPTION}
        if len(self.labels) == 2:
            negative, positive = self.display_names(class_names)
            captions["confusion_matrix"] += (
                f" Top right: {negative} predicted as {positive} (false positives); bottom left: "
                f"{positive} predicted as {negative} (false negatives, the misses that lower recall).")
        if self.y_score is not None:
            captions["roc_curve"] = ROC_CURVE_CAPTION
        return captions


CONFUSION_MATRIX_CAPTION = (
    "Test rows counted by true class (rows) and predicted class (columns). The diagonal holds the "
    "correct predictions, every other cell one kind of mistake: look for the largest counts off the "
    "diagonal, the classes the model confuses, and in which direction.")
ROC_CURVE_CAPTION = (
    "True-positive rate against false-positive rate as the decision threshold sweeps from strict to "
    "lenient (one-vs-rest, one curve per class, when there are more than two). The dashed diagonal "
    "is guessing; the nearer a curve runs to the top-left corner (AUC near 1), the better the "
    "model's scores rank positives above negatives, whatever threshold is chosen.")
PREDICTED_VS_ACTUAL_CAPTION = (
    "Each test row's prediction against its true value; a perfect model puts every point on the "
    "dashed y = x line. Look for points far from it, and for a curve or a fan shape: errors that "
    "depend on the value.")


def class_display_names(labels: Sequence, class_names) -> list[str]:
    """Names for ``labels``: ``class_names`` is a mapping label -> name (labels it lacks are shown
    as they are) or a sequence indexed by the label, for integer labels 0 .. k-1 (CIFAR-10's ten
    names, the digits of MNIST)."""
    if isinstance(class_names, Mapping):
        return [str(class_names.get(label, label)) for label in labels]
    names = list(class_names)
    shown = []
    for label in labels:
        if not isinstance(label, (int, np.integer)) or not 0 <= label < len(names):
            raise ValueError(f"class_names as a sequence is indexed by the label; label {label!r} has no "
                             f"name among {len(names)}; pass a dict label -> name")
        shown.append(str(names[label]))
    return shown


def evaluate(
    model,
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    task: str = "auto",
    cv: int = 5,
    stratified: bool = True,
    seed: int = 0,
    fit: bool = True,
    class_names=None,
) -> EvaluationResult:
    """Cross-validate on the training set, fit on all of it, and score the test set.

    Parameters
    ----------
    model : estimator following the sklearn contract (clonable; fit returns self).
        Not modified: CV and the final fit use clones; the fitted one is ``result.model``.
    X_train, y_train : training data, (n, d) array or DataFrame and (n,).
    X_test, y_test : held-out data, (m, d) and (m,).
    task : "classification", "regression", "clustering" or "auto" (the model's sklearn type,
        else the targets' type: integer or string labels are classes, floats are a regression).
        Clustering takes no targets (``y_train`` and ``y_test`` may be None); a ``y_test`` given
        is reference labels for the adjusted Rand index, and a clusterer without ``predict``
        (agglomerative) is scored on the clusters it finds in the test rows, without CV.
    cv : number of folds; 0 or 1 skips cross-validation.
    stratified : use StratifiedKFold for classification (KFold for regression regardless).
    seed : shuffles the folds.
    fit : False evaluates ``model`` as already fitted on the test set (CV still fits clones).
    class_names : names of the classes for figures, a dict label -> name or a sequence indexed
        by the label (see `class_display_names`); None shows the labels.

    Returns
    -------
    EvaluationResult
    """
    if cv < 0 or int(cv) != cv:
        raise ValueError(f"cv must be a number of folds (0 or 1 to skip CV), got {cv!r}")
    if task == "clustering" or (task == "auto" and _is_clusterer(model)):
        return _evaluate_clustering(model, X_train, X_test, y_test, cv=int(cv), seed=seed, fit=fit)
    y_test = _as_1d(y_test, "y_test")
    y_train = None if y_train is None else _as_1d(y_train, "y_train")
    if y_train is None and (fit or cv > 1):
        raise ValueError("y_train is needed to fit the model or cross-validate it")
    task = _resolve_task(task, model, y_train if y_train is not None else y_test)
    labels = None
    if task == "classification":
        known = [y_test] + [y for y in (y_train, getattr(model, "classes_", None)) if y is not None]
        labels = np.unique(np.concatenate(known))
        if len(labels) < 2:
            raise ValueError(f"classification needs at least two classes, found only {labels.tolist()}")

    notes: list[str] = []
    fold_metrics: list[dict[str, float]] = []
    cv_strategy = "none"
    if cv > 1:
        splitter = _splitter(task == "classification" and stratified, int(cv), seed)
        cv_strategy = f"{type(splitter).__name__}(n_splits={int(cv)}, shuffle=True, random_state={seed})"
        for train_idx, val_idx in splitter.split(X_train, y_train):
            fold_model = clone(model)
            fold_model.fit(_rows(X_train, train_idx), y_train[train_idx])
            scores, _, _ = _score(fold_model, _rows(X_train, val_idx), y_train[val_idx], task, labels, notes)
            fold_metrics.append(scores)

    if fit:
        fitted = clone(model)
        fitted.fit(X_train, y_train)
    else:
        fitted = model
    test_scores, y_pred, y_score = _score(fitted, X_test, y_test, task, labels, notes)

    metrics = {f"test_{name}": value for name, value in test_scores.items()}
    for name in test_scores:
        values = np.array([fold[name] for fold in fold_metrics])
        if len(values):
            metrics[f"cv_{name}_mean"] = float(values.mean())
            metrics[f"cv_{name}_std"] = float(values.std())
    return EvaluationResult(
        task=task,
        model=fitted,
        metrics=metrics,
        metric_names=list(test_scores),
        y_true=y_test,
        y_pred=y_pred,
        y_score=y_score,
        labels=None if labels is None else labels.tolist(),
        confusion_matrix=None if labels is None else skm.confusion_matrix(y_test, y_pred, labels=labels),
        fold_metrics=fold_metrics,
        cv_strategy=cv_strategy,
        notes=notes,
        class_names=None if labels is None or class_names is None
        else class_display_names(labels.tolist(), class_names),
    )


def compare_models(
    models: Mapping[str, Any], X_train, y_train, X_test, y_test, **kwargs
) -> tuple[pd.DataFrame, dict[str, EvaluationResult]]:
    """Evaluate several models on the same data and splits (same seed), side by side.

    Returns a table with one row per model (index ``model``) and the flat metrics as
    columns (NaN where a model lacks one, e.g. roc_auc), and the results by name.
    ``kwargs`` go to `evaluate`.
    """
    results = {name: evaluate(model, X_train, y_train, X_test, y_test, **kwargs) for name, model in models.items()}
    table = pd.DataFrame.from_dict({name: r.metrics for name, r in results.items()}, orient="index")
    table.index.name = "model"
    return table, results


def validation_curve_table(
    model,
    X,
    y,
    param_name: str,
    param_range: Sequence,
    cv: int = 5,
    seed: int = 0,
    *,
    scoring: str | None = None,
) -> pd.DataFrame:
    """Train and CV scores across one hyper-parameter: the bias–variance picture.

    A wide train–CV gap means variance (overfitting); both low means bias (underfitting).
    ``scoring`` defaults to the estimator's ``score`` (accuracy, R²). Returns one row per
    value: ``param_name``, ``train_mean``, ``train_std``, ``cv_mean``, ``cv_std``.
    """
    if cv < 2:
        raise ValueError(f"a validation curve needs cv >= 2 folds, got {cv}")
    y = _as_1d(y, "y")
    task = _resolve_task("auto", model, y)
    splitter = _splitter(task == "classification", cv, seed)
    train, test = validation_curve(
        model, X, y, param_name=param_name, param_range=param_range, cv=splitter, scoring=scoring
    )  # (n_values, n_folds) each
    return pd.DataFrame(
        {
            param_name: list(param_range),
            "train_mean": train.mean(axis=1),
            "train_std": train.std(axis=1),
            "cv_mean": test.mean(axis=1),
            "cv_std": test.std(axis=1),
        }
    )


def _score(model, X, y, task, labels, notes) -> tuple[dict[str, float], np.ndarray, np.ndarray | None]:
    y_pred = np.asarray(model.predict(X)).ravel()
    if task == "regression":
        scores = {
            "mse": skm.mean_squared_error(y, y_pred),
            "rmse": skm.root_mean_squared_error(y, y_pred),
            "mae": skm.mean_absolute_error(y, y_pred),
            "r2": skm.r2_score(y, y_pred),
        }
        return {k: float(v) for k, v in scores.items()}, y_pred, None
    y_score = _class_scores(model, X, labels, notes)
    return _classification_metrics(y, y_pred, y_score, labels, notes), y_pred, y_score


def _classification_metrics(y, y_pred, y_score, labels, notes) -> dict[str, float]:
    scores = {"accuracy": skm.accuracy_score(y, y_pred)}
    if len(labels) == 2:
        p, r, f, _ = skm.precision_recall_fscore_support(
            y, y_pred, pos_label=labels[-1], average="binary", zero_division=0
        )
        scores.update(precision=p, recall=r, f1=f)
    else:
        # Averages over the classes present in this y / y_pred, as sklearn's scorers do.
        for average in ("macro", "weighted"):
            p, r, f, _ = skm.precision_recall_fscore_support(y, y_pred, average=average, zero_division=0)
            scores.update({f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f})
    if y_score is not None:
        scores["roc_auc"] = _roc_auc(y, y_score, labels, notes)
    return {k: float(v) for k, v in scores.items()}


def _roc_auc(y, y_score, labels, notes) -> float:
    present = np.unique(y)
    if len(present) < 2:
        _note(notes, "roc_auc is NaN where a split holds a single class")
        return np.nan
    if y_score.ndim == 1:
        return skm.roc_auc_score(y == labels[-1], y_score)
    # One-vs-rest, macro: the mean of per-class binary AUCs over the classes present in y.
    # Equals roc_auc_score(multi_class="ovr") when every class is present, and stays
    # defined on a CV fold that misses one.
    return float(np.mean([skm.roc_auc_score(y == c, y_score[:, i]) for i, c in enumerate(labels) if c in present]))


def _class_scores(model, X, labels, notes) -> np.ndarray | None:
    """Scores aligned with ``labels``: (n,) for the greater label if binary, else (n, k)."""
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X))  # (n, n_model_classes)
        classes = getattr(model, "classes_", None)
        if classes is None:
            if proba.shape[1] != len(labels):
                raise ValueError(
                    f"predict_proba gave {proba.shape[1]} columns for {len(labels)} labels and the model "
                    "has no classes_ to say which is which; set classes_ in fit"
                )
            classes = labels
        column = {c: j for j, c in enumerate(labels)}
        aligned = np.zeros((proba.shape[0], len(labels)))
        for j, c in enumerate(classes):
            aligned[:, column[c]] = proba[:, j]
        return aligned[:, 1] if len(labels) == 2 else aligned
    if hasattr(model, "decision_function"):
        if len(labels) == 2:
            return np.asarray(model.decision_function(X), dtype=float).ravel()
        _note(notes, "roc_auc omitted: multiclass ROC AUC needs predict_proba, the model has only decision_function")
        return None
    _note(notes, "roc_auc omitted: the model has neither predict_proba nor decision_function")
    return None


def _evaluate_clustering(model, X_train, X_test, y_test, *, cv: int, seed: int, fit: bool) -> EvaluationResult:
    """`evaluate` for a clusterer: cluster-quality metrics of the labels it gives the test rows."""
    y_test = None if y_test is None else _as_1d(y_test, "y_test")
    notes: list[str] = []
    fold_metrics: list[dict[str, float]] = []
    cv_strategy = "none"
    predicts = hasattr(model, "predict")
    if cv > 1 and not predicts:
        _note(notes, f"no CV: {type(model).__name__} cannot assign new rows to its clusters (no predict)")
    elif cv > 1:
        splitter = _splitter(False, cv, seed)
        cv_strategy = f"{type(splitter).__name__}(n_splits={cv}, shuffle=True, random_state={seed})"
        for train_idx, val_idx in splitter.split(X_train):
            fold_model = clone(model).fit(_rows(X_train, train_idx))
            X_val = _rows(X_train, val_idx)
            fold_metrics.append(_clustering_metrics(fold_model, X_val, fold_model.predict(X_val), None, notes))

    if not predicts:
        fitted = clone(model)
        y_pred = np.asarray(fitted.fit_predict(X_test)).ravel()
        _note(notes, f"{type(model).__name__} has no predict: its test clusters are those it finds in the "
                     "test rows (fit_predict)")
    else:
        fitted = clone(model).fit(X_train) if fit else model
        y_pred = np.asarray(fitted.predict(X_test)).ravel()
    test_scores = _clustering_metrics(fitted, X_test, y_pred, y_test, notes)

    metrics = {f"test_{name}": value for name, value in test_scores.items()}
    for name in test_scores:
        values = np.array([fold[name] for fold in fold_metrics if name in fold])
        if len(values):
            metrics[f"cv_{name}_mean"] = float(values.mean())
            metrics[f"cv_{name}_std"] = float(values.std())
    return EvaluationResult(task="clustering", model=fitted, metrics=metrics, metric_names=list(test_scores),
                            y_true=y_test, y_pred=y_pred, fold_metrics=fold_metrics, cv_strategy=cv_strategy,
                            notes=notes)


def _clustering_metrics(model, X, labels, y, notes) -> dict[str, float]:
    """Silhouette, Calinski-Harabasz and Davies-Bouldin of ``labels`` on X (NaN unless there are 2 to
    n-1 clusters), minus ``model.score(X)`` as the inertia when the model scores, and the adjusted
    Rand index against reference labels ``y`` when given."""
    X = np.asarray(X, dtype=float)
    n_clusters = len(np.unique(labels))
    if 2 <= n_clusters <= len(X) - 1:
        scores = {"silhouette": skm.silhouette_score(X, labels),
                  "calinski_harabasz": skm.calinski_harabasz_score(X, labels),
                  "davies_bouldin": skm.davies_bouldin_score(X, labels)}
    else:
        _note(notes, "silhouette, calinski_harabasz and davies_bouldin are NaN where the rows fall in "
                     "fewer than 2 clusters (or each in its own)")
        scores = dict.fromkeys(("silhouette", "calinski_harabasz", "davies_bouldin"), np.nan)
    if hasattr(model, "score"):
        scores["inertia"] = -model.score(X)
    if y is not None:
        scores["adjusted_rand"] = skm.adjusted_rand_score(y, labels)
    return {k: float(v) for k, v in scores.items()}


def _is_clusterer(model) -> bool:
    try:
        return is_clusterer(model)
    except AttributeError:  # not an sklearn estimator: no tags to read
        return False


def _resolve_task(task: str, model, y) -> str:
    if task in TASKS:
        return task
    if task != "auto":
        raise ValueError(f"task must be 'classification', 'regression', 'clustering' or 'auto', got {task!r}")
    try:
        if is_classifier(model):
            return "classification"
        if is_regressor(model):
            return "regression"
    except AttributeError:  # not an sklearn estimator: no tags to read
        pass
    kind = type_of_target(y)
    if kind in ("binary", "multiclass"):
        return "classification"
    if kind == "continuous":
        return "regression"
    raise ValueError(f"cannot infer the task from targets of type {kind!r}; pass task='classification' or 'regression'")


def _splitter(stratified: bool, cv: int, seed: int) -> KFold | StratifiedKFold:
    kind = StratifiedKFold if stratified else KFold
    return kind(n_splits=cv, shuffle=True, random_state=seed)


def _rows(X, idx):
    return X.iloc[idx] if hasattr(X, "iloc") else X[idx]


def _as_1d(y, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"{name} must be one target per row, shape (n,); got shape {y.shape}")
    return y


def _note(notes: list[str], note: str) -> None:
    if note not in notes:
        notes.append(note)
