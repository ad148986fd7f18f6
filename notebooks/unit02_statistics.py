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
# # Unit 2 — Statistics and a documented hypothesis test, on Titanic
#
# **Question:** did passengers who paid a higher fare have a higher survival rate?
#
# This notebook answers it with the same code the unit's flow runs: `pipeline.scratch.stats`
# (every statistic by hand), `pipeline.lessons.statistics` (cleaning, tables, figures, the tests
# and the report) and `audit_statistics` in `pipeline.audit.stats` (the check against
# `scipy.stats` that fails a run). The notes, `docs/unit02_statistics.md`, explain each idea.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets

import numpy as np
from IPython.display import Markdown, display
from scipy import stats as sps

from pipeline.audit.stats import audit_statistics
from pipeline.data import load_dataset
from pipeline.evaluation import compare_models
from pipeline.features import split_titanic
from pipeline.lessons import statistics as lesson
from pipeline.plots import show
from pipeline.scratch import stats
from pipeline.units import get_unit

ALPHA = 0.05  # stated before looking at any p-value

# %% [markdown]
# ## The data, and cleaning it
#
# Kaggle's `train.csv` holds the 891 passengers whose outcome is known (`test.csv` has no
# `Survived` column, so it cannot test anything). Three columns have gaps. `clean_titanic` fills
# or summarises each, says what it did, and drops no row.

# %%
passengers = load_dataset("titanic", profile="quick").splits["train"]
clean, cleaning = lesson.clean_titanic(passengers)
print(f"{len(passengers)} rows in, {len(clean)} rows out")
cleaning[cleaning["missing"] > 0]

# %% [markdown]
# ## Descriptive statistics per group
#
# Fares are skewed: the mean is more than twice the median and the skewness is large, because a
# few first-class tickets cost over £200. Survivors' fares are higher on every measure, and far
# more spread out.

# %%
lesson.descriptive_table(clean, "Fare").round(2)

# %% [markdown]
# ## Three distributions
#
# `scipy.stats` gives each distribution's density (or mass, for a count) and cumulative
# distribution function. A normal fitted to log(1 + fare) is a fair sketch of the middle of the
# fares, not of their tails; the binomial counts survivors among 10 passengers picked at random.

# %%
show(lesson.distributions_figure(clean))
rate = clean["Survived"].mean()
print(f"P(at least 5 of 10 random passengers survived) = {sps.binom(10, rate).sf(4):.3f}")

# %% [markdown]
# ## Bayes' theorem from the counts
#
# P(survived | female) = P(female | survived) · P(survived) / P(female). The theorem and the direct
# count agree, as they must: it is the same fraction written two ways.

# %%
lesson.bayes_table(clean)

# %% [markdown]
# ## Looking before testing
#
# Fare by outcome on a log axis (fare + 1 keeps the free tickets), survival by fare quartile with
# Wilson intervals, and the two variables that drive both: class and sex.

# %%
analysis = lesson.analyse(passengers, alpha=ALPHA, resamples=2_000, seed=0)
show(lesson.fare_by_survival_figure(clean))
show(lesson.survival_by_fare_quartile_figure(analysis))
analysis.by_quartile.round(3)

# %%
show(lesson.survival_by_class_sex_figure(clean))
show(lesson.fare_by_class_figure(clean))

# %% [markdown]
# ## The tests, by hand and against scipy
#
# H0: fare and survival are unrelated. Welch's t compares means without assuming equal
# variances; it is repeated on log(1 + fare) because raw fares are far from normal. Mann–Whitney U
# compares ranks. The chi-square test asks whether survival is independent of fare quartile.
# Here is Welch's t written out, next to scipy's:

# %%
survivors, others = analysis.survivors, analysis.others
va, vb = survivors.var(ddof=1) / len(survivors), others.var(ddof=1) / len(others)
t = (survivors.mean() - others.mean()) / np.sqrt(va + vb)
df = (va + vb) ** 2 / (va**2 / (len(survivors) - 1) + vb**2 / (len(others) - 1))
print(f"by hand: t = {t:.4f}, df = {df:.1f}")
print("ours:   ", stats.welch_t_test(survivors, others))
print("scipy:  ", sps.ttest_ind(survivors, others, equal_var=False))

# %% [markdown]
# The audit checks every statistic of the unit the same way, at stated tolerances; the flow fails
# on any disagreement.

# %%
report = audit_statistics(*lesson.audit_inputs(analysis))
for finding in report.findings:
    print(f"{'PASS' if finding.passed else 'FAIL'}  {finding.check}")
assert report.passed

# %%
lesson.tests_table(analysis).drop(columns=["H0"]).round(4)

# %%
show(lesson.bootstrap_figure(analysis))

# %% [markdown]
# ## The same question, asked of a model
#
# A logistic regression of survival on log(1 + fare), fitted on 75 % of the passengers and scored
# on the rest, beside a majority-class baseline and a model that also knows sex and class. Its
# test ROC AUC is close to the Mann–Whitney U / (n₁n₂) on all rows: the same quantity.

# %%
split = split_titanic(passengers, test_size=0.25, seed=0)
table, results = compare_models(lesson.fare_models(0), split.X_train, split.y_train, split.X_test,
                                split.y_test, cv=5, seed=0)
print(f"Mann–Whitney U / (n1 n2) on all rows: {analysis.mann_whitney.common_language:.3f}")
table[["test_roc_auc", "cv_roc_auc_mean", "test_accuracy"]].round(4)

# %% [markdown]
# ## Conclusion

# %%
display(Markdown(lesson.conclusion(analysis)))

# %% [markdown]
# ## Try next
#
# The unit's experiments, each one run of the flow with a parameter changed:

# %%
for experiment in get_unit("unit02").try_next:
    print(experiment.command("unit02"), "—", experiment.look_for)
