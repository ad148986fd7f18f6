"""Unit 2 — statistics and a documented hypothesis test, on Titanic.

The question: *did passengers who paid a higher fare have a higher survival rate?* The lesson
cleans Kaggle's labelled ``train.csv`` (every missing value reported and handled, no row
dropped), describes it per group, draws the distributions the tests lean on, works Bayes' theorem
from the counts, and tests the hypothesis four ways (Welch's t on fare and on log fare,
Mann–Whitney U, chi-square of survival against fare quartile) with effect sizes and intervals,
all computed by hand in ``pipeline.scratch.stats`` and audited against scipy. A logistic
regression of survival on log(1 + fare) then asks the same question predictively, beside a
majority-class baseline and a model that also knows sex and class. ``report_markdown`` writes it
all up as one document.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from pipeline.report import markdown_table
from pipeline.scratch import stats

BASELINE = "baseline: majority class"
FARE_ONLY = "logistic regression on log(1 + fare)"  # the registered model
FARE_SEX_CLASS = "logistic regression on log(1 + fare), sex and class"
QUARTILES = ("Q1 (lowest)", "Q2", "Q3", "Q4 (highest)")
RESAMPLES = {"quick": 2_000, "full": 20_000}  # bootstrap resamples per profile

# What to look for in each figure of `statistics_figures`, printed under it on the results site.
CAPTIONS = {
    "fare_by_survival": "Fares of those who died and those who survived, on a log axis (fare + 1, so "
                        "the 15 free tickets can be drawn). Left: each group's histogram as a density; "
                        "right: the same as boxes. The survivors' distribution sits to the right, "
                        "but the two overlap widely, and both have a long right tail: the reason the "
                        "tests on log fare and on ranks are trusted over the t-test on raw pounds.",
    "survival_by_fare_quartile": "The share who survived in each quarter of passengers by fare, with "
                                 "95 % Wilson intervals; dashed: the overall rate. The rate climbs "
                                 "with every quartile, and the intervals of the lowest and highest "
                                 "quartiles are far apart: the chi-square test's finding, drawn.",
    "survival_by_class_sex": "Survival rate by ticket class and sex, with 95 % Wilson intervals. Sex "
                             "matters most (women far above men in every class), then class. Fare "
                             "tracks class, so part of what the fare tests find is the class effect.",
    "fare_by_class": "Fare (log axis) by ticket class, split by outcome. Fares differ by an order of "
                     "magnitude between classes and far less within one: fare is largely a stand-in "
                     "for class, a confounder any conclusion about fare must name.",
    "distributions": "The three distributions of the unit, each as density (or mass) and cumulative "
                     "distribution, from scipy.stats. Uniform: ages 0–80 if every age were equally "
                     "likely, a straight CDF. Normal: fitted to log(1 + fare), over its histogram: "
                     "the log makes the skewed fares roughly bell-shaped (look at the misfit in the "
                     "tails). Binomial: survivors among 10 passengers drawn at random, with p the "
                     "overall survival rate; the CDF is a staircase.",
    "bootstrap_median_difference": "The survivors' median fare minus the non-survivors', over the "
                                   "bootstrap resamples, with the 95 % percentile interval (dashed). "
                                   "The whole interval lies above 0: the difference in typical fare "
                                   "is not an accident of this sample. Its lumpiness comes from the "
                                   "many repeated fares (medians jump between them).",
}


# --- cleaning ------------------------------------------------------------------------------------

def clean_titanic(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labelled passengers cleaned, and a table of what was missing and what was done.

    Age is imputed with the median age of the passenger's class × sex (flagged in
    ``age_was_missing``); Embarked with the most frequent port; Cabin is kept as it is (three
    quarters missing: too sparse to impute) and summarised as ``has_cabin`` and ``deck``
    ("unknown" when missing). No row is dropped.
    """
    frame = raw.copy()
    missing = raw.isna().sum()
    frame["Survived"] = frame["Survived"].astype(int)
    frame["Pclass"] = frame["Pclass"].astype(int)
    frame["Sex"] = frame["Sex"].astype(str)
    frame["Fare"] = frame["Fare"].astype(float)

    frame["age_was_missing"] = frame["Age"].isna()
    group_median = frame.groupby(["Pclass", "Sex"])["Age"].transform("median")
    frame["Age"] = frame["Age"].fillna(group_median)
    port = frame["Embarked"].mode().iloc[0]
    frame["Embarked"] = frame["Embarked"].fillna(port)
    frame["has_cabin"] = frame["Cabin"].notna()
    frame["deck"] = frame["Cabin"].str[0].fillna("unknown")
    if len(frame) != len(raw):
        raise AssertionError("cleaning must not drop rows")

    actions = {
        "Age": "imputed with the median age of the passenger's class × sex; flagged in age_was_missing",
        "Embarked": f"filled with the most frequent port, {port!r}",
        "Cabin": "kept as missing (too sparse to impute); has_cabin and deck (first letter, "
                 "'unknown' when missing) derived",
    }
    report = pd.DataFrame({
        "column": raw.columns,
        "dtype": [str(frame[c].dtype) for c in raw.columns],
        "missing": [int(missing[c]) for c in raw.columns],
        "missing_share": [float(missing[c]) / len(raw) for c in raw.columns],
        "action": [actions.get(c, "none needed") if missing[c] else "none needed" for c in raw.columns],
    })
    return frame, report


# --- description ---------------------------------------------------------------------------------

def descriptive_table(clean: pd.DataFrame, column: str = "Fare") -> pd.DataFrame:
    """n, mean, median, mode, variance and std of ``column`` for everyone and per group
    (outcome, class, sex), from ``stats.describe``."""
    groups = {"all": clean}
    groups |= {f"Survived={k}": g for k, g in clean.groupby("Survived")}
    groups |= {f"Pclass={k}": g for k, g in clean.groupby("Pclass")}
    groups |= {f"Sex={k}": g for k, g in clean.groupby("Sex")}
    keep = ("n", "mean", "median", "mode", "variance", "std", "skewness")
    rows = {name: {k: v for k, v in stats.describe(g[column]).items() if k in keep}
            for name, g in groups.items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "group"
    return table


def survival_rates(clean: pd.DataFrame, by: str | list[str], confidence: float = 0.95) -> pd.DataFrame:
    """Survivors, passengers, survival rate and its Wilson interval per group of ``by``."""
    counts = clean.groupby(by, observed=True)["Survived"].agg(["sum", "count"])
    intervals = [stats.wilson_interval(int(k), int(n), confidence) for k, n in counts.to_numpy()]
    return pd.DataFrame({"survived": counts["sum"], "passengers": counts["count"],
                         "rate": counts["sum"] / counts["count"],
                         "ci_low": [lo for lo, _ in intervals], "ci_high": [hi for _, hi in intervals]},
                        index=counts.index)


def fare_quartile(clean: pd.DataFrame) -> pd.Series:
    """Each passenger's fare quartile (equal-count bins of the 891 fares)."""
    return pd.qcut(clean["Fare"], 4, labels=list(QUARTILES)).rename("fare_quartile")


def bayes_table(clean: pd.DataFrame) -> pd.DataFrame:
    """P(survived | female) by Bayes' theorem from P(female | survived), P(survived), P(female),
    beside the direct count."""
    survived = clean["Survived"] == 1
    female = clean["Sex"] == "female"
    p_s, p_f = survived.mean(), female.mean()
    p_f_given_s = (female & survived).sum() / survived.sum()
    rows = [
        ("P(survived)", "survivors / passengers", p_s),
        ("P(female)", "women / passengers", p_f),
        ("P(female | survived)", "women among survivors", p_f_given_s),
        ("P(survived | female) by Bayes", "P(female | survived) · P(survived) / P(female)", p_f_given_s * p_s / p_f),
        ("P(survived | female) counted", "surviving women / women", (female & survived).sum() / female.sum()),
        ("P(survived | male) counted", "surviving men / men", (~female & survived).sum() / (~female).sum()),
    ]
    return pd.DataFrame(rows, columns=["quantity", "how", "value"])


# --- the hypothesis tests ------------------------------------------------------------------------

@dataclass
class Analysis:
    """Everything Unit 2 measures on the labelled passengers."""

    clean: pd.DataFrame
    cleaning: pd.DataFrame
    alpha: float
    confidence: float
    welch: stats.WelchResult
    welch_log: stats.WelchResult
    mann_whitney: stats.MannWhitneyResult
    chi_square: stats.ChiSquareResult
    contingency: pd.DataFrame  # rows died, survived; columns fare quartiles
    cohens_d: float
    cohens_d_log: float
    hedges_g: float
    bootstrap: tuple[float, float, int, int]  # (low, high, resamples, seed) of the median difference
    bootstrap_differences: np.ndarray
    by_quartile: pd.DataFrame
    bayes: pd.DataFrame

    @property
    def survivors(self) -> np.ndarray:
        return self.clean.loc[self.clean["Survived"] == 1, "Fare"].to_numpy(float)

    @property
    def others(self) -> np.ndarray:
        return self.clean.loc[self.clean["Survived"] == 0, "Fare"].to_numpy(float)

    def p_values(self) -> dict[str, float]:
        return {"Welch t on fare": self.welch.pvalue, "Welch t on log(1 + fare)": self.welch_log.pvalue,
                "Mann–Whitney U on fare": self.mann_whitney.pvalue,
                "chi-square: survival × fare quartile": self.chi_square.pvalue}

    @property
    def rejected(self) -> bool:
        """H0 is rejected when every test rejects at α (and the survivors' fares are the higher)."""
        return all(p < self.alpha for p in self.p_values().values()) and self.welch.mean_difference > 0


def analyse(raw: pd.DataFrame, alpha: float = 0.05, resamples: int = 2_000, seed: int = 0) -> Analysis:
    """Clean ``raw`` (Kaggle train.csv) and run every test of the unit on all its rows."""
    clean, cleaning = clean_titanic(raw)
    confidence = 1 - alpha
    quartile = fare_quartile(clean)
    contingency = pd.crosstab(clean["Survived"], quartile)
    contingency.index = pd.Index(["died", "survived"], name="outcome")
    a = clean.loc[clean["Survived"] == 1, "Fare"].to_numpy(float)
    b = clean.loc[clean["Survived"] == 0, "Fare"].to_numpy(float)
    low, high, differences = stats.bootstrap_interval(a, b, np.median, resamples, confidence, seed)
    return Analysis(
        clean=clean, cleaning=cleaning, alpha=alpha, confidence=confidence,
        welch=stats.welch_t_test(a, b, confidence), welch_log=stats.welch_t_test(np.log1p(a), np.log1p(b), confidence),
        mann_whitney=stats.mann_whitney_u(a, b), chi_square=stats.chi_square_independence(contingency.to_numpy()),
        contingency=contingency, cohens_d=stats.cohens_d(a, b), cohens_d_log=stats.cohens_d(np.log1p(a), np.log1p(b)),
        hedges_g=stats.hedges_g(a, b), bootstrap=(low, high, resamples, seed), bootstrap_differences=differences,
        by_quartile=survival_rates(clean.assign(fare_quartile=quartile), "fare_quartile", confidence),
        bayes=bayes_table(clean),
    )


def audit_inputs(analysis: Analysis) -> tuple:
    """(survivors' fares, others' fares, contingency, confidence, bootstrap) for ``audit_statistics``."""
    return (analysis.survivors, analysis.others, analysis.contingency.to_numpy(), analysis.confidence,
            analysis.bootstrap)


def tests_table(analysis: Analysis) -> pd.DataFrame:
    """One row per test: statistic, df, p-value, effect size, interval and the decision at α."""
    a = analysis
    level = f"{a.confidence:.0%}"
    rows = [
        ("Welch t on fare", "equal mean fare", a.welch.statistic, a.welch.df, a.welch.pvalue,
         "Cohen's d", a.cohens_d, f"{level} CI of the mean difference (£)", a.welch.ci_low, a.welch.ci_high),
        ("Welch t on log(1 + fare)", "equal mean log fare", a.welch_log.statistic, a.welch_log.df,
         a.welch_log.pvalue, "Cohen's d (log fare)", a.cohens_d_log,
         f"{level} CI of the fare ratio exp(Δ mean log)", np.exp(a.welch_log.ci_low), np.exp(a.welch_log.ci_high)),
        ("Mann–Whitney U on fare", "P(fare_survivor > fare_other) = 1/2", a.mann_whitney.statistic, np.nan,
         a.mann_whitney.pvalue, "rank-biserial r", a.mann_whitney.rank_biserial,
         f"{level} bootstrap CI of the median difference (£)", a.bootstrap[0], a.bootstrap[1]),
        ("chi-square: survival × fare quartile", "survival independent of fare quartile", a.chi_square.statistic,
         float(a.chi_square.df), a.chi_square.pvalue, "Cramér's V", a.chi_square.cramers_v,
         f"per-quartile {level} Wilson CIs: see survival by fare quartile", np.nan, np.nan),
    ]
    table = pd.DataFrame(rows, columns=["test", "H0", "statistic", "df", "p_value", "effect_size",
                                        "effect", "interval", "ci_low", "ci_high"])
    table[f"reject H0 at α={a.alpha:g}"] = table["p_value"] < a.alpha
    return table


def statistics_metrics(analysis: Analysis) -> dict[str, float]:
    """The key numbers as flat MLflow metrics."""
    a = analysis
    metrics = {
        "alpha": a.alpha, "welch_t": a.welch.statistic, "welch_df": a.welch.df, "welch_p": a.welch.pvalue,
        "mean_fare_difference": a.welch.mean_difference, "mean_fare_difference_ci_low": a.welch.ci_low,
        "mean_fare_difference_ci_high": a.welch.ci_high, "welch_log_t": a.welch_log.statistic,
        "welch_log_p": a.welch_log.pvalue, "mannwhitney_u": a.mann_whitney.statistic,
        "mannwhitney_p": a.mann_whitney.pvalue, "rank_biserial": a.mann_whitney.rank_biserial,
        "fare_auc": a.mann_whitney.common_language, "chi2": a.chi_square.statistic, "chi2_p": a.chi_square.pvalue,
        "cramers_v": a.chi_square.cramers_v, "cohens_d": a.cohens_d, "cohens_d_log": a.cohens_d_log,
        "hedges_g": a.hedges_g, "median_fare_difference_ci_low": a.bootstrap[0],
        "median_fare_difference_ci_high": a.bootstrap[1], "reject_h0": float(a.rejected),
        "survival_rate": float(a.clean["Survived"].mean()),
    }
    for i, rate in enumerate(a.by_quartile["rate"], start=1):
        metrics[f"survival_rate_q{i}"] = float(rate)
    bayes = a.bayes.set_index("quantity")["value"]
    metrics["p_survived_given_female"] = float(bayes["P(survived | female) by Bayes"])
    metrics["p_survived_given_male"] = float(bayes["P(survived | male) counted"])
    return metrics


def conclusion(analysis: Analysis) -> str:
    a = analysis
    q = a.by_quartile["rate"]
    if a.rejected:
        welch, low, high = a.welch, a.welch.ci_low, a.welch.ci_high
        verdict = (f"**We reject the null hypothesis at α = {a.alpha:g}.** All four tests agree (largest "
                   f"p-value {max(a.p_values().values()):.1e}): survivors paid more (mean "
                   f"£{welch.mean_difference:.2f} more, {a.confidence:.0%} CI £{low:.2f}–£{high:.2f}), and the "
                   f"survival rate climbs from {q.iloc[0]:.1%} in the cheapest fare quartile to {q.iloc[-1]:.1%} "
                   f"in the dearest.")
    else:
        verdict = (f"**We fail to reject the null hypothesis at α = {a.alpha:g}**: the p-values are "
                   + ", ".join(f"{k} {v:.3g}" for k, v in a.p_values().items()) + ".")
    return (verdict + f" The effect is moderate, not large: a random survivor out-paid a random non-survivor "
            f"with probability {a.mann_whitney.common_language:.2f} (rank-biserial r = "
            f"{a.mann_whitney.rank_biserial:.2f}; Cramér's V = {a.chi_square.cramers_v:.2f}). This is an "
            "association, not a cause: fare follows ticket class (and class, with sex, decided who reached "
            "the boats), so the tests do not say that paying more would have saved anyone.")


# --- the predictive check --------------------------------------------------------------------------

def _log_fare() -> FunctionTransformer:
    return FunctionTransformer(np.log1p, feature_names_out="one-to-one")


def fare_models(seed: int = 0) -> dict[str, object]:
    """The hypothesis asked predictively: does log(1 + fare) rank survivors above the others? A
    majority-class baseline below, fare + sex + class above, all taking the Kaggle columns."""
    fare_only = ColumnTransformer([("log_fare", _log_fare(), ["Fare"])], verbose_feature_names_out=False)
    fare_sex_class = ColumnTransformer(
        [("log_fare", _log_fare(), ["Fare"]),
         ("categories", OneHotEncoder(drop="if_binary", handle_unknown="ignore", sparse_output=False),
          ["Sex", "Pclass"])], verbose_feature_names_out=False)
    return {
        BASELINE: DummyClassifier(strategy="most_frequent"),
        FARE_ONLY: Pipeline([("features", fare_only), ("scale", StandardScaler()),
                             ("model", LogisticRegression(random_state=seed))]),
        FARE_SEX_CLASS: Pipeline([("features", fare_sex_class), ("scale", StandardScaler()),
                                  ("model", LogisticRegression(random_state=seed))]),
    }


# --- figures ---------------------------------------------------------------------------------------

def _rate_bars(ax, rates: pd.DataFrame, labels, colour=None, offset: float = 0.0, width: float = 0.8, label=None):
    x = np.arange(len(rates)) + offset
    error = np.vstack([rates["rate"] - rates["ci_low"], rates["ci_high"] - rates["rate"]])
    ax.bar(x, rates["rate"], width=width, color=colour, label=label, yerr=error, capsize=4)
    ax.set_xticks(np.arange(len(rates)), labels)


def fare_by_survival_figure(clean: pd.DataFrame):
    import seaborn as sns
    from matplotlib.figure import Figure

    data = clean.assign(outcome=clean["Survived"].map({0: "died", 1: "survived"}), fare_plus_1=clean["Fare"] + 1)
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    sns.histplot(data=data, x="fare_plus_1", hue="outcome", log_scale=True, stat="density", common_norm=False,
                 element="step", bins=30, ax=left)
    left.set(xlabel="fare + 1 (£, log scale)", title="Fare by outcome")
    sns.boxplot(data=data, x="outcome", y="fare_plus_1", hue="outcome", log_scale=True, ax=right)
    right.set(ylabel="fare + 1 (£, log scale)", xlabel="", title="Survivors paid more, with wide overlap")
    return fig


def survival_by_fare_quartile_figure(analysis: Analysis):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    rates = analysis.by_quartile
    _rate_bars(ax, rates, [str(q) for q in rates.index], colour="tab:blue")
    ax.axhline(analysis.clean["Survived"].mean(), ls="--", color="grey", label="overall")
    ax.set(ylabel="survival rate", xlabel="fare quartile", ylim=(0, 1),
           title=f"Survival by fare quartile ({analysis.confidence:.0%} Wilson CIs)")
    ax.legend()
    return fig


def survival_by_class_sex_figure(clean: pd.DataFrame, confidence: float = 0.95):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for i, (sex, colour) in enumerate((("female", "tab:orange"), ("male", "tab:blue"))):
        rates = survival_rates(clean[clean["Sex"] == sex], "Pclass", confidence)
        _rate_bars(ax, rates, [f"class {c}" for c in rates.index], colour, offset=(i - 0.5) * 0.4, width=0.4,
                   label=sex)
    ax.set(ylabel="survival rate", ylim=(0, 1), title="Survival by class and sex")
    ax.legend()
    return fig


def fare_by_class_figure(clean: pd.DataFrame):
    import seaborn as sns
    from matplotlib.figure import Figure

    data = clean.assign(outcome=clean["Survived"].map({0: "died", 1: "survived"}), fare_plus_1=clean["Fare"] + 1)
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    sns.boxplot(data=data, x="Pclass", y="fare_plus_1", hue="outcome", log_scale=True, ax=ax)
    ax.set(xlabel="ticket class", ylabel="fare + 1 (£, log scale)", title="Fare is mostly class")
    return fig


def distributions_figure(clean: pd.DataFrame):
    """Uniform, normal and binomial: density (mass) above, CDF below, from scipy.stats."""
    from matplotlib.figure import Figure
    from scipy import stats as sps

    log_fare = np.log1p(clean["Fare"].to_numpy(float))
    rate = float(clean["Survived"].mean())
    uniform = sps.uniform(loc=0, scale=80)
    normal = sps.norm(loc=log_fare.mean(), scale=log_fare.std(ddof=1))
    binomial = sps.binom(n=10, p=rate)
    fig = Figure(figsize=(13, 7))
    axes = fig.subplots(2, 3)
    ages = np.linspace(-5, 85, 400)
    axes[0, 0].plot(ages, uniform.pdf(ages))
    axes[0, 0].set(title="Uniform(0, 80): PDF", xlabel="age")
    axes[1, 0].plot(ages, uniform.cdf(ages))
    axes[1, 0].set(title="Uniform(0, 80): CDF", xlabel="age")
    grid = np.linspace(log_fare.min() - 0.5, log_fare.max() + 0.5, 400)
    axes[0, 1].hist(log_fare, bins=30, density=True, alpha=0.4, label="passengers")
    axes[0, 1].plot(grid, normal.pdf(grid), label=f"N({normal.mean():.2f}, {normal.std():.2f}²)")
    axes[0, 1].set(title="Normal fitted to log(1 + fare): PDF", xlabel="log(1 + fare)")
    axes[0, 1].legend()
    axes[1, 1].plot(grid, normal.cdf(grid), label="normal CDF")
    axes[1, 1].step(np.sort(log_fare), np.arange(1, len(log_fare) + 1) / len(log_fare), where="post",
                    label="empirical CDF")
    axes[1, 1].set(title="Normal vs empirical CDF", xlabel="log(1 + fare)")
    axes[1, 1].legend()
    k = np.arange(0, 11)
    axes[0, 2].bar(k, binomial.pmf(k))
    axes[0, 2].set(title=f"Binomial(10, {rate:.3f}): PMF", xlabel="survivors among 10")
    axes[1, 2].step(k, binomial.cdf(k), where="post")
    axes[1, 2].set(title=f"Binomial(10, {rate:.3f}): CDF", xlabel="survivors among 10")
    fig.tight_layout()
    return fig


def bootstrap_figure(analysis: Analysis):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.hist(analysis.bootstrap_differences, bins=60)
    for end in analysis.bootstrap[:2]:
        ax.axvline(end, ls="--", color="black")
    ax.axvline(0, color="red", lw=1)
    ax.set(xlabel="median fare of survivors − of non-survivors (£)", ylabel="resamples",
           title=f"Bootstrap ({analysis.bootstrap[2]} resamples), {analysis.confidence:.0%} interval")
    return fig


def statistics_figures(analysis: Analysis) -> dict[str, bytes]:
    """The unit's own figures as PNG (captions in ``CAPTIONS``)."""
    from pipeline.plots import figure_to_png

    clean = analysis.clean
    figures = {
        "fare_by_survival": fare_by_survival_figure(clean),
        "survival_by_fare_quartile": survival_by_fare_quartile_figure(analysis),
        "survival_by_class_sex": survival_by_class_sex_figure(clean, analysis.confidence),
        "fare_by_class": fare_by_class_figure(clean),
        "distributions": distributions_figure(clean),
        "bootstrap_median_difference": bootstrap_figure(analysis),
    }
    return {name: figure_to_png(fig) for name, fig in figures.items()}


# --- the document ----------------------------------------------------------------------------------

def statistics_tables(analysis: Analysis) -> dict[str, pd.DataFrame]:
    return {
        "cleaning: missing values and what was done": analysis.cleaning,
        "fare by group": descriptive_table(analysis.clean, "Fare"),
        "age by group (after imputation)": descriptive_table(analysis.clean, "Age"),
        "survival by fare quartile": analysis.by_quartile,
        "survival × fare quartile (counts)": analysis.contingency,
        "Bayes' theorem: P(survived | female)": analysis.bayes,
        "hypothesis tests": tests_table(analysis),
    }


def _md(table: pd.DataFrame) -> str:
    return markdown_table(table, floatfmt=".4g")


def _tests_md(analysis: Analysis) -> str:
    """The tests table as a reader wants it: p-values in scientific notation, intervals as [low, high]."""
    table = tests_table(analysis)
    decision = table.columns[-1]

    def number(value: float, spec: str) -> str:
        return "—" if pd.isna(value) else format(value, spec)

    shown = pd.DataFrame({
        "test": table["test"], "H0": table["H0"],
        "statistic": [number(v, ",.2f") for v in table["statistic"]],
        "df": [number(v, ".1f") for v in table["df"]],
        "p-value": [number(v, ".2e") for v in table["p_value"]],
        "effect size": [f"{name} = {value:.3f}" for name, value in zip(table["effect_size"], table["effect"])],
        "interval": [what if pd.isna(low) else f"{what}: [{low:.2f}, {high:.2f}]"
                     for what, low, high in zip(table["interval"], table["ci_low"], table["ci_high"])],
        decision: ["yes" if r else "no" for r in table[decision]],
    })
    return markdown_table(shown, disable_numparse=True)


def _figure(name: str, alt: str) -> str:
    return f"![{alt}](figures/{name}.png)"


def report_markdown(analysis: Analysis, models: pd.DataFrame) -> str:
    """The unit's deliverable: question, data, visual and statistical analysis, conclusion.

    Figures are referenced as ``figures/<name>.png`` (names of ``statistics_figures`` and the
    evaluation's ``roc_curve``); ``models`` is the evaluation's comparison table.
    """
    a = analysis
    tables = statistics_tables(a)
    n, survivors = len(a.clean), int(a.clean["Survived"].sum())
    bayes = a.bayes.set_index("quantity")["value"]
    model_columns = [c for c in ("test_roc_auc", "cv_roc_auc_mean", "test_accuracy", "cv_accuracy_mean")
                     if c in models.columns]
    return "\n".join([
        "# Did passengers who paid a higher fare survive more often?",
        "",
        f"**Hypothesis.** Passengers who paid a higher fare had a higher survival rate. **Null "
        f"hypothesis H0:** fare and survival are unrelated (survivors' and non-survivors' fares come from "
        f"the same distribution; survival is independent of fare quartile). Significance level "
        f"**α = {a.alpha:g}**, two-sided tests, {a.confidence:.0%} intervals. Data: the {n} labelled passengers "
        f"of Kaggle's Titanic `train.csv` ({survivors} survived); the tests use all of them.",
        "",
        "## Data and cleaning",
        "",
        "Every missing value is reported and handled; no row is dropped. Fare, the variable under test, "
        "has no missing values.",
        "",
        _md(a.cleaning),
        "",
        "## Descriptive statistics",
        "",
        "Fare per group (variance and std with ddof = 1; skewness > 0 is a long right tail):",
        "",
        _md(tables["fare by group"]),
        "",
        "Mean fare far above the median in every group, and a large skewness: a few very high fares pull "
        "the mean. That is why the analysis adds tests on log fare and on ranks to the t-test on pounds.",
        "",
        "## Distributions",
        "",
        _figure("distributions", "Uniform, normal and binomial distributions, density and CDF"),
        "",
        "## Bayes' theorem from the data",
        "",
        f"P(survived | female) = P(female | survived) · P(survived) / P(female) = "
        f"{bayes['P(female | survived)']:.3f} · {bayes['P(survived)']:.3f} / {bayes['P(female)']:.3f} = "
        f"**{bayes['P(survived | female) by Bayes']:.3f}**, the same as counting surviving women directly "
        f"(men: {bayes['P(survived | male) counted']:.3f}).",
        "",
        _md(a.bayes),
        "",
        "## What the data look like",
        "",
        _figure("fare_by_survival", "Fare by outcome, log scale"),
        "",
        _figure("survival_by_fare_quartile", "Survival rate by fare quartile"),
        "",
        _md(a.by_quartile.reset_index()),
        "",
        _figure("survival_by_class_sex", "Survival rate by class and sex"),
        "",
        _figure("fare_by_class", "Fare by class and outcome"),
        "",
        "## The tests",
        "",
        "- **Welch's t-test** compares mean fares without assuming equal variances (the survivors' "
        "fares vary far more). Its normal approximation is strained by the skew, so it is repeated on "
        "log(1 + fare).",
        "- **Mann–Whitney U** compares ranks, so it needs no normality and is untouched by the tail; "
        "its effect size, the rank-biserial r, and U / (n₁ n₂), the chance a random survivor paid more "
        f"than a random non-survivor ({a.mann_whitney.common_language:.3f}), read directly.",
        "- **Chi-square test of independence** of survival against fare quartile, with Cramér's V.",
        "",
        _tests_md(a),
        "",
        _figure("bootstrap_median_difference", "Bootstrap distribution of the median fare difference"),
        "",
        "## A predictive check",
        "",
        "The same question as a model: logistic regression of survival on log(1 + fare), fitted on a "
        "stratified 75 % of the passengers and scored on the other 25 %, beside a majority-class "
        "baseline and a model that also knows sex and class. A test ROC AUC above 0.5 means fare ranks "
        "survivors above non-survivors on passengers the model never saw.",
        "",
        _md(models[model_columns]),
        "",
        _figure("roc_curve", "ROC curve of the fare-only model"),
        "",
        "## Conclusion",
        "",
        conclusion(a),
        "",
        "Every statistic above was computed by hand (`pipeline.scratch.stats`) and checked against "
        "scipy.stats by the run's audit, which fails the run on any disagreement.",
        "",
    ])
