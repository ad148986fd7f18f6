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
# # Unit 3 — Calculus and gradient descent, on a generated line
#
# Fit `y = m·x + b` to 1,000 generated points by walking downhill on the mean squared error, three
# ways: batch, stochastic and mini-batch gradient descent. The closed-form least-squares solution
# is the oracle for every step.
#
# It steps through the same code the unit's flow runs: `pipeline.scratch.gradient_descent` (the
# maths and the three variants), `pipeline.lessons.gradient_descent` (what the unit fits and
# draws) and `pipeline.audit.gradient_descent` (the checks that fail a run). The notes,
# `docs/unit03_gradient_descent.md`, explain each step in more detail.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets

import numpy as np
from IPython.display import display

from pipeline.audit.gradient_descent import audit_gradient_descent
from pipeline.data import load_dataset
from pipeline.evaluation import compare_models
from pipeline.lessons import gradient_descent as lesson
from pipeline.plots import show
from pipeline.scratch.gradient_descent import (
    chain_rule_gradient,
    design_matrix,
    minibatch_gd,
    mse_gradient,
    mse_loss,
    numerical_gradient,
    stability_limit,
    stochastic_gd,
)
from pipeline.units import get_unit
from pipeline.units.unit03_gradient_descent import Unit03Params

# %% [markdown]
# ## The data
#
# `line` is a catalog dataset like any other, only generated: `x ~ U(-3, 3)`, `y = 3x + 2 + N(0, 1)`,
# 1,000 rows from a fixed seed. The flow validates it against `expectations/line.json` and holds
# out 25 % for testing.

# %%
params = Unit03Params(profile="quick")
frame = load_dataset("line", profile="quick").splits["data"]
split = lesson.split_line(frame, params.test_size, params.seed)
X, y = split.X_train.to_numpy(), split.y_train  # (750, 1), (750,)
D = design_matrix(X)  # (750, 2): x and a column of ones, so D @ (m, b) = m·x + b
frame.describe().round(3)

# %% [markdown]
# ## The chain rule, one example at a time
#
# For one point, `ŷ = m·x + b`, `u = ŷ − y`, `L = u²`. The chain rule multiplies the local
# derivatives: `dL/dm = 2u · 1 · x` and `dL/db = 2u · 1 · 1`. Central differences, which know nothing
# about calculus, agree.

# %%
pieces = chain_rule_gradient(m=1.5, b=-0.5, x=2.0, y=4.0)
print({name: round(value, 4) for name, value in pieces.items()})
numeric = numerical_gradient(lambda t: (t[0] * 2.0 + t[1] - 4.0) ** 2, np.array([1.5, -0.5]))
print(f"central differences: dL/dm = {numeric[0]:.6f}, dL/db = {numeric[1]:.6f}")

# %% [markdown]
# ## The gradient of the MSE, checked
#
# Averaged over the rows, `∇L = 2/n · D.T @ (D @ θ − y)`. `numerical_gradient` nudges each
# parameter by ±1e-6; on a quadratic the two agree to rounding. At the least-squares solution the
# gradient is zero: that is what "minimum" means.

# %%
for theta in (np.zeros(2), np.array([3.5, 1.5])):
    analytic = mse_gradient(theta, D, y)
    numeric = numerical_gradient(lambda t: mse_loss(t, D, y), theta)
    print(f"θ = {theta}: analytic {analytic.round(6)}, numerical {numeric.round(6)}, "
          f"max |diff| = {np.abs(analytic - numeric).max():.1e}")
optimum = np.linalg.lstsq(D, y, rcond=None)[0]
print(f"np.linalg.lstsq: m = {optimum[0]:.6f}, b = {optimum[1]:.6f}; gradient there "
      f"{mse_gradient(optimum, D, y).round(12)}")

# %% [markdown]
# ## Three variants
#
# `lesson.fit_variants` fits batch GD (200 updates on the quick profile), SGD and mini-batch GD
# (10 epochs each, the step shrinking as `η / (1 + epoch)`) and the closed form, all on the
# training rows.

# %%
fit = lesson.fit_variants(frame, params)
display(lesson.parameters_table(fit).round(6))

# %% [markdown]
# Per update, batch GD is the straightest path down; per example seen, SGD is ahead early, because
# it updates after every row. The stochastic curves stay ragged and settle only as the step decays.

# %%
show(lesson.loss_curves_figure(fit))
show(lesson.loss_surface_figure(fit))

# %% [markdown]
# Why the step must shrink: with a constant step SGD keeps jittering around the minimum, in a band
# that widens with the step.

# %%
for rate, decay in ((0.01, 0.0), (0.01, 1.0), (0.05, 0.0)):
    run = stochastic_gd(X, y, rate, 10, decay=decay)
    print(f"SGD lr={rate:g} decay={decay:g}: max |θ - lstsq| = {np.abs(run.theta - optimum).max():.4f}")
run = minibatch_gd(X, y, 0.05, 10, decay=1.0, batch_size=32)
print(f"mini-batch lr=0.05 decay=1: max |θ - lstsq| = {np.abs(run.theta - optimum).max():.4f}")

# %% [markdown]
# ## The learning rate
#
# The MSE's Hessian is `H = 2/n · D.T @ D`; a batch step scales the error along each eigenvector by
# `1 − η·λ`, so batch GD converges iff `η < 2/λ_max`. Above that limit the loss grows
# geometrically: the run stops at the first update past 10⁶ × the starting loss and reports where,
# instead of running on into NaN.

# %%
print(f"stability limit 2/λ_max = {stability_limit(X):.4f}")
sweep = lesson.learning_rate_sweep(split, params)
for run in sweep.values():
    print(run.describe())
show(lesson.learning_rates_figure(sweep, X))

# %% [markdown]
# ## The audit
#
# The check the flow runs: the analytic gradient against central differences, each variant's
# `(m, b)` against `np.linalg.lstsq` within its tolerance (1e-6 for batch GD, 0.05 for the
# stochastic two), divergence exactly where theory predicts it, and no NaN anywhere.

# %%
report = audit_gradient_descent(fit.variants, fit.closed_form, split.X_train, split.y_train, sweep)
for finding in report.findings:
    print(f"{'PASS' if finding.passed else 'FAIL'}  {finding.check}: {finding.detail}")
assert report.passed

# %% [markdown]
# ## Evaluation
#
# Unit 6's `compare_models` cross-validates every model on the training rows and scores the test
# rows. All four lines score the same: their test MSE is the noise variance of the test points.

# %%
table, results = compare_models(fit.models, split.X_train, split.y_train, split.X_test, split.y_test,
                                cv=5, seed=0, fit=False)
table[["cv_r2_mean", "test_mse", "test_r2"]].round(4)

# %%
show(lesson.fitted_line_figure(fit))

# %% [markdown]
# ## Try next
#
# The unit's experiments, each one run of the flow with a parameter changed:

# %%
for experiment in get_unit("unit03").try_next:
    print(experiment.command("unit03"), "—", experiment.look_for)
