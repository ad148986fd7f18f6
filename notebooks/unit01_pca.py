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
# # Unit 1 — Linear algebra and PCA from scratch, on Iris
#
# Iris is 150 flowers, each measured four times in centimetres (sepal length and width, petal
# length and width), 50 of each of three species. This notebook finds the directions along which
# those four numbers vary most with nothing but a covariance matrix and its eigenvectors, and
# checks the result against scikit-learn's `PCA`.
#
# It steps through the same code the unit's flow runs: `pipeline.scratch.pca` (the maths),
# `pipeline.lessons.pca` (what the unit fits and draws) and `audit_pca` in
# `pipeline.audit.twins` (the check that fails a run). The notes, `docs/unit01_pca.md`, explain
# every step in more detail.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets

import numpy as np
from IPython.display import display

from pipeline import plots
from pipeline.audit.twins import PCA_TOL, audit_pca
from pipeline.data import load_dataset
from pipeline.evaluation import compare_models
from pipeline.features import IRIS_FEATURES
from pipeline.lessons import pca as lesson
from pipeline.plots import show
from pipeline.scratch import PCA
from pipeline.units import get_unit

# %% [markdown]
# ## The data
#
# `load_dataset` is the catalog every flow reads from. Iris ships with scikit-learn, so the quick
# profile is the whole dataset: a DataFrame with the four measurements, the species and its code.

# %%
iris = load_dataset("iris", profile="quick").splits["data"]
X = iris[IRIS_FEATURES].to_numpy(dtype=float)  # (150, 4)
print(X.shape)
iris.head()

# %% [markdown]
# ## Covariance: how the features vary together
#
# Centre each column, then `C = Xc.T @ Xc / (n - 1)`. The diagonal holds each feature's variance;
# `C[j, k]` is positive when features `j` and `k` tend to be above their means together. Dividing
# by `n - 1` (ddof=1) makes it the unbiased sample covariance, what `np.cov` returns.

# %%
n = len(X)
Xc = X - X.mean(axis=0)
C = Xc.T @ Xc / (n - 1)  # (4, 4)
print(np.round(C, 3))
print(f"max |C - np.cov(X)| = {np.abs(C - np.cov(X, rowvar=False)).max():.1e}")

# %% [markdown]
# ## Eigenvectors: the directions the covariance only stretches
#
# Read `C` as a linear map `v -> C @ v`. Most vectors come out turned; an eigenvector only gets
# scaled, `C @ v = λ v`, and for a covariance `λ` is the variance of the data along `v`.
# `np.linalg.eigh` is the solver for symmetric matrices: real eigenvalues, orthonormal vectors,
# in *ascending* order, so PCA sorts them the other way.
#
# The figure maps the unit circle through the covariance of two standardised features: the circle
# becomes an ellipse whose axes are the eigenvectors, with half-lengths equal to the eigenvalues.

# %%
eigenvalues, eigenvectors = np.linalg.eigh(C)
order = np.argsort(eigenvalues)[::-1]
eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
print("eigenvalues:", np.round(eigenvalues, 4))
print(f"max |C V - V Λ| = {np.abs(C @ eigenvectors - eigenvectors * eigenvalues).max():.1e}")
show(lesson.linear_map_figure(X))

# %% [markdown]
# ## PCA from scratch beside scikit-learn
#
# `pipeline.scratch.PCA` is that eigendecomposition behind scikit-learn's estimator contract
# (`fit`, `transform`, `inverse_transform`). `lesson.fit_pca` fits it and
# `sklearn.decomposition.PCA(svd_solver="full")` on all 150 rows. scikit-learn takes the SVD of
# the centred data instead: a different algorithm for the same numbers, which makes it a good
# oracle. `audit_pca` is the check the flow runs on every run: the max absolute difference of
# each quantity against `PCA_TOL`; one above it fails the run.

# %%
fit = lesson.fit_pca(iris, n_components=2, test_size=0.25, seed=0)
report = audit_pca(fit.ours, fit.theirs, fit.X)
print(f"tolerance PCA_TOL = {PCA_TOL:.0e}")
for finding in report.findings:
    print(f"{'PASS' if finding.passed else 'FAIL'}  {finding.check:28s} {finding.detail}")
assert report.passed

# %% [markdown]
# Our eigenvalues are the first two of those computed by hand above, and the explained-variance
# ratio divides each by the sum of *all* four: PC1 alone carries 92.5 % of the variance.
# The loadings say how much each feature contributes to each component: PC1 is mostly petal length.

# %%
print(f"max |ours - eigh by hand| = {np.abs(fit.ours.explained_variance_ - eigenvalues[:2]).max():.1e}")
display(lesson.variance_table(fit.ours).round(4))
display(lesson.loadings_table(fit.ours).round(4))

# %% [markdown]
# Projected on the first two components, the species separate: setosa on its own, versicolor
# and virginica side by side with a little overlap.

# %%
projection = fit.ours.transform(fit.X)
show(plots.scatter_2d_figure(projection, fit.species, "Iris projected on the first two principal components"))

# %% [markdown]
# ## What two components leave out
#
# Keeping `K` of `F` components is lossy compression. The squared reconstruction error summed
# over the rows is `(n - 1)` times the sum of the eigenvalues dropped: here the last two.

# %%
reconstructed = fit.ours.inverse_transform(projection)
error = ((fit.X - reconstructed) ** 2).sum()
dropped = (n - 1) * eigenvalues[2:].sum()
print(f"reconstruction error {error:.6f}, (n - 1) x dropped eigenvalues {dropped:.6f}, "
      f"|diff| = {abs(error - dropped):.1e}")
full = PCA().fit(fit.X)  # all four components: the round trip is exact
print(f"all 4 components: max |X - inverse(transform(X))| = "
      f"{np.abs(fit.X - full.inverse_transform(full.transform(fit.X))).max():.1e}")

# %% [markdown]
# ## A classifier on 2 components against all 4 features
#
# The practical question: how much does a linear classifier lose on the 2-D projection? The two
# models `fit_pca` built were fitted on the training rows (a stratified 25 % hold-out, 38 test
# flowers); the PCA inside the first one is refitted on training rows only, so nothing about the
# test rows leaks into its components. Unit 6's `compare_models` cross-validates both on the
# training rows and scores the test rows.

# %%
split = fit.split
table, results = compare_models(fit.models, split.X_train, split.y_train, split.X_test, split.y_test,
                                cv=5, seed=0, fit=False)
table[["cv_accuracy_mean", "cv_accuracy_std", "test_accuracy"]].round(4)

# %% [markdown]
# Two numbers out of four keep almost all the information a linear classifier needs. With 38 test
# rows one flower moves the test accuracy by 2.6 points, so the CV mean over the 112 training rows
# is the steadier estimate.
#
# ## Try next
#
# The unit's experiments, each one run of the flow with a parameter changed:

# %%
for experiment in get_unit("unit01").try_next:
    print(experiment.command("unit01"), "—", experiment.look_for)
