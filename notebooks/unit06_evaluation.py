# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Unit 6 — The evaluation pipeline: cross-validation and metrics, on Titanic
#
# A model's score on the rows it was trained on says little: a big enough model memorises them.
# What matters is its score on rows it has never seen, measured so that the number is both honest
# and steady. This unit builds the one evaluation every unit uses, `pipeline.evaluation`, and
# applies it on Titanic: six models compared, a validation curve over tree depth, and an
# imbalanced example where accuracy misleads.
#
# The code is the unit's own: `pipeline.evaluation` (the evaluation), `pipeline.lessons.model_selection`
# (what the unit compares) and `audit_cross_validation` in `pipeline.audit.twins` (our CV against
# scikit-learn's `cross_validate`). The notes, `docs/unit06_evaluation.md`, say more.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets

from IPython.display import Markdown, display

from pipeline.audit.twins import audit_cross_validation
from pipeline.data import load_dataset
from pipeline.evaluation import compare_models, evaluate, validation_curve_table
from pipeline.features import split_titanic
from pipeline.lessons import model_selection
from pipeline.plots import show, validation_curve_figure
from pipeline.units import get_unit

# %% [markdown]
# ## Train and test
#
# The test set (25 %, stratified, seed 0) is only ever scored, never used to choose anything:
# choosing by test score would tune the choice to those rows and make the score optimistic.
# Every choice is made by cross-validation on the training rows instead. Stratified means both
# parts keep Titanic's 38 % survivors.

# %%
titanic = load_dataset("titanic", profile="quick").splits["train"]
split = split_titanic(titanic, test_size=0.25, seed=0)
print(f"train {len(split.y_train)} rows, {split.y_train.mean():.3f} survived; "
      f"test {len(split.y_test)} rows, {split.y_test.mean():.3f} survived")

# %% [markdown]
# ## K-fold cross-validation, ours beside scikit-learn's
#
# K-fold CV cuts the training rows into `K` folds; each fold in turn is held out while a fresh
# clone of the model trains on the other `K − 1`. Every row is scored once, by a model that never
# saw it; the mean is the estimate and the spread across folds says how much it would move with
# another split. The imputer, scaler and encoder sit inside the model's pipeline, so each fold
# refits them on its own training rows and nothing about the held-out fold leaks in.
#
# `evaluate` runs that loop itself, then fits on all training rows and scores the test rows.
# `audit_cross_validation` reruns the same folds through scikit-learn's `cross_validate`; the
# means must agree to 1e-12.

# %%
model = model_selection.titanic_candidates(seed=0)["logistic regression"]
result = evaluate(model, split.X_train, split.y_train, split.X_test, split.y_test, cv=5, seed=0)
print(result.cv_strategy)
for fold, scores in enumerate(result.fold_metrics, start=1):
    print(f"fold {fold}: accuracy {scores['accuracy']:.4f}, f1 {scores['f1']:.4f}")
print(f"mean:   accuracy {result.metrics['cv_accuracy_mean']:.4f} ± {result.metrics['cv_accuracy_std']:.4f}")
report = audit_cross_validation(model, split.X_train, split.y_train, result, cv=5, seed=0)
for finding in report.findings:
    print(f"{'PASS' if finding.passed else 'FAIL'}  {finding.check}: {finding.detail}")
assert report.passed

# %% [markdown]
# ## Metrics from the confusion matrix
#
# On the test rows, with "survived" the positive class: precision is `TP / (TP + FP)` (of the
# passengers flagged as survivors, how many were), recall `TP / (TP + FN)` (of the survivors, how
# many were found), F1 their harmonic mean. ROC AUC ignores the threshold: it is the chance that a
# random survivor scores higher than a random victim. Worked out by hand from the counts, they
# are the numbers `evaluate` reports (from `sklearn.metrics`).

# %%
(tn, fp), (fn, tp) = result.confusion_matrix  # rows: true 0, 1; columns: predicted 0, 1
by_hand = {"accuracy": (tp + tn) / (tp + tn + fp + fn), "precision": tp / (tp + fp), "recall": tp / (tp + fn)}
by_hand["f1"] = 2 * by_hand["precision"] * by_hand["recall"] / (by_hand["precision"] + by_hand["recall"])
print(f"TP {tp}, FP {fp}, FN {fn}, TN {tn}")
for name, value in by_hand.items():
    reported = result.metrics[f"test_{name}"]
    print(f"{name:9s} by hand {value:.4f}, evaluate {reported:.4f}, |diff| = {abs(value - reported):.1e}")
figures = result.figures()
show(figures["confusion_matrix"])
show(figures["roc_curve"])

# %% [markdown]
# ## Six models, one evaluation
#
# `model_selection.titanic_candidates` puts six models behind the same feature pipeline;
# `compare_models` evaluates them on the same split and the same folds. The winner is chosen by
# cross-validated F1, never by a test score, so a model cannot win by ignoring the survivors.

# %%
table, results = compare_models(model_selection.titanic_candidates(seed=0), split.X_train, split.y_train,
                                split.X_test, split.y_test, cv=5, seed=0)
columns = ["cv_f1_mean", "cv_f1_std", "cv_accuracy_mean", "test_f1", "test_accuracy", "test_roc_auc"]
display(table[columns].sort_values("cv_f1_mean", ascending=False).round(4))
print("chosen by", model_selection.SELECTION_METRIC, "→", model_selection.best_model(table))

# %% [markdown]
# ## Bias and variance: a validation curve over tree depth
#
# A stump is too simple (bias: training and CV scores both low); a deep tree fits the noise of
# its training rows (variance: the training score keeps rising while CV falls). The validation
# curve scores both across the depth; the best depth is where the CV score peaks.

# %%
curve = validation_curve_table(model_selection.depth_curve_model(seed=0), split.X_train, split.y_train,
                               model_selection.DEPTH, list(range(1, 13)), cv=5, seed=0)
print(model_selection.best_depth(curve))
show(validation_curve_figure(curve, model_selection.DEPTH, "Titanic tree: accuracy against depth"))

# %% [markdown]
# ## When accuracy misleads
#
# With about 5 % positives, a model that always answers "negative" is about 95 % accurate and
# finds nothing. `imbalance_demo` shows it, and what reweighting the classes buys.

# %%
display(model_selection.imbalance_demo(seed=0).round(4))
display(Markdown(model_selection.METRIC_GUIDE))

# %% [markdown]
# ## Try next
#
# The unit's experiments, each one run of the flow with a parameter changed:

# %%
for experiment in get_unit("unit06").try_next:
    print(experiment.command("unit06"), "—", experiment.look_for)
