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
# # Unit 4 — Decision trees, linear and logistic regression from scratch
#
# Three classic models, each written in NumPy and grown beside its scikit-learn twin on the same
# rows: a **decision tree** on Iris and on Titanic, **logistic regression** by gradient descent
# on Titanic, and **linear regression** by gradient descent on Iris, checked against the exact
# least-squares solution.
#
# The code is the unit's own: `pipeline.scratch.tree` and `pipeline.scratch.linear` (the models),
# `pipeline.lessons.trees` (what the unit fits and prints), and `audit_tree`, `audit_logistic`,
# `audit_linear` in `pipeline.audit.twins` (the checks that fail a run). The notes,
# `docs/unit04_trees.md`, go through each step in more detail.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets

import numpy as np

from pipeline import plots
from pipeline.audit.twins import (
    COEF_TOL,
    PROBA_TOL,
    THRESHOLD_TOL,
    audit_linear,
    audit_logistic,
    audit_tree,
)
from pipeline.data import load_dataset
from pipeline.estimators import fit_all
from pipeline.evaluation import compare_models
from pipeline.features import IRIS_FEATURES, split_iris, split_titanic
from pipeline.lessons import trees
from pipeline.plots import show
from pipeline.scratch import best_split, entropy, information_gain
from pipeline.units import get_unit


def print_audit(report):
    for finding in report.findings:
        print(f"{'PASS' if finding.passed else 'FAIL'}  {finding.check}: {finding.detail}")
    assert report.passed, report.subject


# %% [markdown]
# ## The data
#
# Both datasets come through the catalog every flow reads from. Iris is bundled with
# scikit-learn; Titanic is Kaggle's labelled `train.csv` (891 passengers, 38 % survived), read
# from the local mirror and checksummed. Neither is subsampled by the quick profile.

# %%
iris = load_dataset("iris", profile="quick").splits["data"]
titanic = load_dataset("titanic", profile="quick").splits["train"]
print(f"iris {iris.shape}, titanic {titanic.shape}, survival rate {titanic['Survived'].mean():.3f}")
titanic.head(3)

# %% [markdown]
# ## Entropy and information gain
#
# A tree asks, at each node, the question that best separates the classes of the rows reaching
# it. "Best" is measured in bits: the entropy `H = −Σ p_k log2 p_k` of the class proportions is
# 0 for a pure node and `log2 3` for three equal classes, and a split's information gain is the
# entropy it removes, `H(parent) − (n_L/n) H(left) − (n_R/n) H(right)`.
#
# On Iris, "petal length ≤ 2.45" isolates the 50 setosa: the left child is pure, the right one a
# 50/50 mix (1 bit, weighted by 2/3), so the gain is `log2(3) − 2/3`. "Petal width ≤ 0.8" cuts
# the same rows: a genuine **tie**. `best_split` tries every feature and every midpoint between
# two sorted values and, among equal gains, keeps the lowest feature index.

# %%
X_iris = iris[IRIS_FEATURES].to_numpy(dtype=float)
y_iris = iris["target"].to_numpy()
expected = np.log2(3) - 2 / 3
print(f"H(all of Iris) = {entropy(y_iris):.6f} bits (log2 3 = {np.log2(3):.6f})")
for name, mask in [("petal_length <= 2.45", X_iris[:, 2] <= 2.45), ("petal_width <= 0.8", X_iris[:, 3] <= 0.8)]:
    gain = information_gain(y_iris, mask)
    print(f"gain of {name:21s} {gain:.12f}   |gain - (log2 3 - 2/3)| = {abs(gain - expected):.1e}")
feature, threshold, gain = best_split(X_iris, y_iris)
print(f"best_split: {IRIS_FEATURES[feature]} <= {threshold} (gain {gain:.6f})")

# %% [markdown]
# ## Our tree beside scikit-learn's, on Iris
#
# `trees.tree_pair` makes our `DecisionTreeClassifier` and scikit-learn's
# `DecisionTreeClassifier(criterion="entropy")` with the unit's default depth limit, 4. Both are
# fitted on the same stratified 75 % of the flowers and printed side by side.
#
# `audit_tree` walks both trees root first: two splits agree when they are the same (feature and
# threshold within `THRESHOLD_TOL`; scikit-learn stores `X` as float32) or cut the node's rows the
# same way; where the trees part, the audit passes only if the two splits are a tie (equal gain).

# %%
iris_split = split_iris(iris, test_size=0.25, seed=0)
iris_trees = fit_all(trees.tree_pair(max_depth=4, min_samples_split=2, seed=0),
                     iris_split.X_train, iris_split.y_train)
print(trees.trees_side_by_side(*iris_trees.values(), IRIS_FEATURES))
print(f"\nTHRESHOLD_TOL = {THRESHOLD_TOL:.0e}")
print_audit(audit_tree(*trees.tree_audit_inputs(iris_trees, iris_split)))

# %% [markdown]
# The roots differ, but they are the tie above and cut the same rows. Deeper down, a second tie:
# our `sepal_length <= 5.85` and scikit-learn's `petal_width <= 1.85` have the same gain on that
# node's rows. The audit accepts it, and the two trees still agree on every test flower.

# %% [markdown]
# ## Titanic: trees, logistic regression and an SVM through one feature pipeline
#
# `trees.titanic_models` puts every model behind the shared Titanic features (median-imputed
# numbers, one-hot `Sex` and `Embarked`): the two trees on unscaled features, so their
# thresholds read as ages and fares; our gradient-descent logistic regression, scikit-learn's
# (no penalty, tight tolerance) and an RBF SVM on standardised ones.

# %%
titanic_split = split_titanic(titanic, test_size=0.25, seed=0)
titanic_models = fit_all(trees.titanic_models(max_depth=4, min_samples_split=2, seed=0),
                         titanic_split.X_train, titanic_split.y_train)
names = trees.feature_names(titanic_models[trees.OURS_TREE], [])
print(trees.trees_side_by_side(titanic_models[trees.OURS_TREE], titanic_models[trees.SKLEARN_TREE], names))

# %% [markdown]
# The root asks about `Sex`; women's next question is about their class, men's about the fare. The
# audits compare our tree with scikit-learn's, and our logistic regression's predicted
# probabilities on the test rows with scikit-learn's, to `PROBA_TOL`.

# %%
print_audit(audit_tree(*trees.tree_audit_inputs(titanic_models, titanic_split)))
print_audit(audit_logistic(*trees.logistic_audit_inputs(titanic_models, titanic_split)))
ours_logistic = titanic_models[trees.OURS_LOGISTIC][-1]  # the model at the end of its pipeline
theirs_logistic = titanic_models[trees.SKLEARN_LOGISTIC][-1]
coef_diff = np.abs(ours_logistic.coef_ - theirs_logistic.coef_).max()
print(f"PROBA_TOL = {PROBA_TOL:.0e}; coefficients (not audited): max |ours - sklearn| = {coef_diff:.1e}, "
      f"after {ours_logistic.n_iter_} gradient steps")

# %% [markdown]
# Unit 6's evaluation scores all five models the same way: 5-fold stratified cross-validation
# on the training rows, then the test rows.

# %%
table, results = compare_models(titanic_models, titanic_split.X_train, titanic_split.y_train,
                                titanic_split.X_test, titanic_split.y_test, cv=5, seed=0, fit=False)
table[["cv_accuracy_mean", "cv_accuracy_std", "test_accuracy", "test_f1", "test_roc_auc"]].round(4)

# %%
show(results[trees.OURS_TREE].figures()["confusion_matrix"])

# %% [markdown]
# ## Linear regression by gradient descent, against the exact answer
#
# Petal width from the other three measurements: `ŷ = X @ w + b`, mean squared error, its
# gradient `2 X.T (ŷ − y) / n`, and steps downhill until the gradient's norm is below `tol`.
# `LinearRegressionGD` standardises the features first (on different scales the loss is a long,
# thin valley that gradient descent crawls along). The oracle is the closed form,
# `closed_form_least_squares` (`np.linalg.lstsq`), and scikit-learn's `LinearRegression`.

# %%
linear = trees.fit_linear_regression(iris, test_size=0.25, seed=0)
coef, intercept = linear.closed_form
print(f"ours (GD, {linear.ours.n_iter_} steps): coef {np.round(linear.ours.coef_, 6)}, "
      f"intercept {linear.ours.intercept_:.6f}")
print(f"closed form:             coef {np.round(coef, 6)}, intercept {intercept:.6f}")
print(f"COEF_TOL = {COEF_TOL:.0e}")
print_audit(audit_linear(linear.ours, linear.closed_form, linear.theirs))
show(plots.predicted_vs_actual_figure(linear.split.y_test, linear.ours.predict(linear.split.X_test),
                                      "Petal width: GD linear regression on the test flowers"))

# %% [markdown]
# ## Try next
#
# The unit's experiments, each one run of the flow with a parameter changed:

# %%
for experiment in get_unit("unit04").try_next:
    print(experiment.command("unit04"), "—", experiment.look_for)
