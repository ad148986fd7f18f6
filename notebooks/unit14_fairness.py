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
# # Unit 14 — A bias audit on Adult Census Income
#
# Adult asks whether a person earns more than $50K a year, from 1994 census attributes. This
# notebook fits a boosted model and a logistic regression, then audits them: who each model selects
# and whom it gets wrong, by sex, by race and by both (fairlearn's `MetricFrame`); whether the gaps
# are larger than noise (a two-proportion z-test and a bootstrap interval); what drives the
# predictions (SHAP and LIME); and how four mitigations trade accuracy for a smaller gap.
#
# It runs the same code as the unit's flow, on the quick profile's 4,000 training and 2,000 test
# rows: `pipeline.lessons.fairness`, `pipeline.audit.fairness`, `pipeline.audit.explain` and the
# shared `pipeline.evaluation`. The notes, `docs/unit14_fairness.md`, give the full-data numbers.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets

import numpy as np
import pandas as pd
from IPython.display import Image, display

from pipeline.audit.explain import audit_shap_additivity
from pipeline.audit.fairness import (
    audit_against_fairlearn,
    audit_fairness,
    bootstrap_difference_ci,
    two_proportion_ztest,
)
from pipeline.data import load_dataset
from pipeline.evaluation import compare_models
from pipeline.lessons import fairness as lesson
from pipeline.units.unit14_fairness import Unit14Params

params = Unit14Params(profile="quick")

# %% [markdown]
# ## The data, and the gap it already holds
#
# The loader reads `?` as missing and strips the test file's trailing `.` from the labels. Before
# any model: the share of each group that earns more than $50K, the *base rate*. A model that
# learns the data learns this gap.

# %%
adult = load_dataset("adult", profile="quick")
train = adult.splits["train"]
print(len(train), "training rows;", train["income"].value_counts().to_dict())
for attribute in lesson.SENSITIVE:
    rates = train.groupby(attribute)["income"].agg(base_rate=lambda s: (s == ">50K").mean(), n="size")
    display(rates.round(3))

# %% [markdown]
# ## Two models, evaluated the common way
#
# Sex and race stay inputs (the usual set-up). The boosted model reads categories as ordinal codes
# so that SHAP's TreeExplainer is exact for it (see the notes).

# %%
split = lesson.adult_split(adult)
models = {name: model.fit(split.X_train, split.y_train) for name, model in lesson.models(params).items()}
table, results = compare_models(models, split.X_train, split.y_train, split.X_test, split.y_test, cv=0, fit=False)
display(table[["test_accuracy", "test_f1", "test_roc_auc"]].round(4))

# %% [markdown]
# ## Group metrics: who is selected, who is wrong
#
# `audit_fairness` is what the common evaluate task runs for any dataset that declares sensitive
# columns in the catalog. Selection rate = P(ŷ = >50K); FPR = P(ŷ = >50K | ≤50K); FNR = P(ŷ = ≤50K | >50K).

# %%
boosted = results[lesson.BOOSTED]
audit = audit_fairness(boosted.y_true, boosted.y_pred, split.sensitive, subject=lesson.BOOSTED)
boosted.fairness = audit
display(audit.by_group["sex"].round(4))
display(audit.by_group["race"].round(4))
display(audit.disparities.round(4))

# %% [markdown]
# The demographic-parity difference is the gap between the largest and smallest selection rate;
# by hand for sex, it matches fairlearn's own functions (the audit checks this on every run):

# %%
selected = pd.Series(boosted.y_pred).groupby(split.sensitive["sex"]).mean()
print("by hand:", round(selected.max() - selected.min(), 6),
      " audit:", round(audit.disparities.loc["sex", "dp_difference"], 6))
display(audit_against_fairlearn(boosted.y_true, boosted.y_pred, split.sensitive).table())

# %% [markdown]
# ## Is the error-rate gap significant?
#
# Each group against its attribute's largest group: a pooled two-proportion z-test and a percentile
# bootstrap interval of the difference, with both n. Small groups give wide intervals.

# %%
errors = pd.Series(boosted.y_true != boosted.y_pred).groupby(split.sensitive["sex"]).agg(["sum", "count"])
(kf, nf), (km, nm) = errors.loc["Female"], errors.loc["Male"]
z, p = two_proportion_ztest(kf, nf, km, nm)
low, high = bootstrap_difference_ci(kf, nf, km, nm)
print(f"women {kf}/{nf} wrong, men {km}/{nm}: z = {z:.2f}, p = {p:.2g}, "
      f"95 % CI of the difference [{low:+.3f}, {high:+.3f}]")
display(audit.significance[["attribute", "group", "n_group", "reference", "n_reference", "difference", "p_value",
                            "p_holm", "ci_low", "ci_high"]].round(4))

# %% [markdown]
# ## What drives the predictions: SHAP and LIME

# %%
explanations = lesson.explain(boosted.model, split, params)
display(audit_shap_additivity(explanations.shap).table())
display(explanations.shap.importance().round(4))
print("the other inputs predict sex with ROC AUC", round(explanations.sex_proxy_auc, 3))
display(explanations.proxies.round(3))

# %%
mitigation = lesson.mitigate(adult, boosted.model, split, params)
figures = lesson.figures(boosted, explanations, mitigation, split)
for name in ("group_rates", "shap_importance", "shap_waterfall_female", "lime_female"):
    print(lesson.CAPTIONS[name])
    display(Image(figures[name]))

# %% [markdown]
# ## Mitigation
#
# The baseline against fairness through unawareness, re-weighing, ThresholdOptimizer
# (post-processing) and ExponentiatedGradient (reductions), all on the same test rows.

# %%
display(mitigation.table.round(4))
print("best within the accuracy budget:", lesson.best_mitigation(mitigation.table))
for name in ("mitigation_tradeoff", "selection_by_method"):
    print(lesson.CAPTIONS[name])
    display(Image(figures[name]))

# %% [markdown]
# ## The audit as a gate
#
# With a threshold (the unit's `fairness_max_dp_difference`, or `MLPATH_FAIRNESS_MAX_DP_DIFFERENCE`
# for any flow), a disparity above it is a failed finding; the evaluate task then fails the run
# before anything is registered.

# %%
gate = audit_fairness(boosted.y_true, boosted.y_pred, split.sensitive[["sex"]], max_dp_difference=0.1)
display(gate.report.table())
print("passed:", gate.report.passed, np.round(gate.disparities["dp_difference"].to_numpy(), 4))
