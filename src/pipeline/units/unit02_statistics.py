"""Unit 2 — statistics and a documented hypothesis test (Titanic)."""

from pydantic import Field

from pipeline.params import UnitParams
from pipeline.units.spec import Experiment, Reference, Schedule, UnitSpec


class Unit02Params(UnitParams):
    alpha: float = Field(0.05, gt=0, lt=0.5, description="significance level of every test; intervals are "
                                                          "at 1 − α")
    bootstrap_resamples: int | None = Field(
        None, ge=100, le=100_000,
        description="bootstrap resamples of the median fare difference (None: the profile's setting, "
                    "quick 2000, full 20000)")


SPEC = UnitSpec(
    id="unit02",
    number=2,
    title="Statistics and a documented hypothesis test (Titanic)",
    phase=1,
    topics=("cleaning: missing values reported and handled", "descriptive statistics per group",
            "probability distributions: uniform, normal, binomial", "Bayes' theorem",
            "hypothesis tests: Welch's t, Mann–Whitney U, chi-square", "effect sizes and confidence intervals",
            "the bootstrap"),
    challenge="Did passengers who paid a higher fare have a higher survival rate? Clean Titanic, describe "
              "it, test the hypothesis (Welch's t, Mann–Whitney U, chi-square by fare quartile) with effect "
              "sizes, intervals and a stated α, every statistic by hand and equal to scipy.stats; write it "
              "up as a report, and ask the same question of a logistic regression on fare.",
    params=Unit02Params,
    flow="flows.unit02_statistics:unit02_statistics",
    datasets=("titanic",),
    primary_metric="test_roc_auc",
    schedule=Schedule("0 1 * * 2"),
    references=(
        Reference("Share of women in Kaggle's train.csv who survived", "0.7420",
                  "Kaggle, “Titanic Tutorial” (Alexis Cook): “% of women who survived: 0.7420382165605095”",
                  "p_survived_given_female"),
        Reference("Share of men in Kaggle's train.csv who survived", "0.1889",
                  "same tutorial: “% of men who survived: 0.18890814558058924”", "p_survived_given_male"),
    ),
    notes="docs/unit02_statistics.md",
    notebook="notebooks/unit02_statistics.ipynb",
    quick="2,000 bootstrap resamples instead of 20,000 (the tests always use all 891 passengers)",
    try_next=(
        Experiment(("alpha=0.001",), "a stricter α changes no decision (the largest p-value is about 3e-11): "
                                     "with 891 passengers, the effect sizes, not the p-values, say how much "
                                     "fare mattered"),
        Experiment(("bootstrap_resamples=200",), "a bootstrap with few resamples: a ragged histogram, and "
                                                 "interval ends that move with the seed (add seed=1)"),
        Experiment(("test_size=0.5",), "the fare model's test ROC AUC on 446 passengers instead of 223: it "
                                       "moves, while the Mann–Whitney U / (n₁n₂) on all rows, the same "
                                       "quantity, stays 0.69"),
    ),
    learned=(
        "Report missing values and say what was done with each: Age imputed by class × sex with a flag, "
        "Embarked by the mode, Cabin summarised, and no row dropped.",
        "Fares are heavily right-skewed (mean £32, median £14): describe them with medians and quantiles, "
        "draw them on a log axis, and prefer tests that do not lean on normality.",
        "Bayes' theorem turns P(female | survived) into P(survived | female): 0.74 for women, against 0.19 "
        "for men.",
        "All four tests reject 'fare and survival are unrelated' at α = 0.05, but the effect is moderate: "
        "a random survivor out-paid a random non-survivor with probability 0.69 (Cramér's V 0.30).",
        "A p-value says how surprising the data would be under H0, not how large the effect is, and a "
        "significant association is not a cause: fare follows class, and class and sex decided survival.",
        "Mann–Whitney's U / (n₁n₂) is the ROC AUC of fare as a score: the fare-only logistic regression "
        "scores about the same on held-out passengers.",
    ),
    sources=("src/pipeline/scratch/stats.py", "src/pipeline/lessons/statistics.py",
             "src/pipeline/audit/stats.py", "flows/unit02_statistics.py"),
)
