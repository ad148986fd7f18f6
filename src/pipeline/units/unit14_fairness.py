"""Unit 14 — a model bias audit on Adult Census Income: group metrics, significance, explanations,
mitigation (fairlearn, SHAP, LIME)."""

from pydantic import Field

from pipeline.params import UnitParams
from pipeline.units.spec import Experiment, Reference, Schedule, UnitSpec


class Unit14Params(UnitParams):
    boosting_iterations: int = Field(200, ge=10, le=1000,
                                     description="boosting iterations of the HistGradientBoosting model (quick: 50)")
    learning_rate: float = Field(0.1, gt=0, le=1, description="the boosted model's learning rate")
    sensitive_inputs: bool = Field(True, description="give the models sex and race as inputs (the usual Adult set-up)")
    eg_iterations: int = Field(30, ge=2, le=200,
                               description="ExponentiatedGradient's iterations, one boosted fit each (quick: 8)")
    eg_eps: float = Field(0.01, gt=0, le=0.5,
                          description="ExponentiatedGradient's allowed demographic-parity violation")
    fairness_max_dp_difference: float | None = Field(
        None, ge=0, le=1, description="fail the run (before register) when a model's demographic-parity difference "
                                      "by any sensitive attribute exceeds this; None reports only")
    fairness_max_eo_difference: float | None = Field(
        None, ge=0, le=1, description="the same for the equalized-odds difference")


SPEC = UnitSpec(
    id="unit14",
    number=14,
    title="Fairness and explainability (Adult)",
    phase=4,
    topics=(
        "group fairness metrics: selection rate, FPR, FNR by group and intersection",
        "demographic parity and equalised odds",
        "is a gap significant? two-proportion z-test and bootstrap",
        "explanations with SHAP (TreeExplainer) and LIME; proxies",
        "mitigation: re-weighing, ThresholdOptimizer, ExponentiatedGradient",
        "sources of bias and trade-offs",
    ),
    challenge=("Audit a boosted model (≥ 86 % test accuracy) and a logistic regression on Adult for fairness by sex "
               "and race with fairlearn, test whether the error-rate gaps are significant, explain the predictions "
               "with SHAP and LIME, and cut the demographic-parity difference by sex by ≥ 70 % at a cost of ≤ 2 "
               "accuracy points; any flow whose dataset declares sensitive columns gets the fairness audit."),
    params=Unit14Params,
    flow="flows.unit14_fairness:unit14_fairness",
    datasets=("adult",),
    primary_metric="test_accuracy",
    greater_is_better=True,
    schedule=Schedule("0 4 * * 3"),
    references=(
        Reference("Adult test accuracy of C4.5 (error 15.54 %)", "0.8446",
                  "UCI Adult data set, adult.names (MLC++ runs on the original train/test split)",
                  "test_accuracy"),
        Reference("Adult test accuracy of NBTree (error 14.10 %)", "0.8590", "same file", "test_accuracy"),
        Reference("Adult test accuracy of Naive Bayes (error 16.12 %)", "0.8388", "same file",
                  "test_accuracy"),
        Reference("Demographic-parity difference by sex, unmitigated → ExponentiatedGradient", "~0.15 → ~0.02",
                  "fairlearn's user guide, mitigation example on Adult (its own model and split)",
                  "mitigation_dp_difference_sex"),
    ),
    notes="docs/unit14_fairness.md",
    notebook="notebooks/unit14_fairness.ipynb",
    quick="the catalog's quick subsample (4,000 train / 2,000 test rows), 50 boosting iterations and 8 "
          "ExponentiatedGradient iterations of 30-iteration boosted models; LIME with 1,000 samples",
    try_next=(
        Experiment(("sensitive_inputs=false",), "fairness through unawareness: the disparities barely move, because "
                                                "relationship and marital status carry sex"),
        Experiment(("fairness_max_dp_difference=0.1",), "the audit as a gate: the run fails before register, naming "
                                                        "the model, the attribute and the gap"),
        Experiment(("eg_eps=0.05",), "a looser ExponentiatedGradient constraint: more accuracy back, a larger "
                                     "demographic-parity difference"),
    ),
    learned=(
        "Fairness has several incompatible definitions: demographic parity compares selection rates, equalised "
        "odds compares error rates given the true label; with different base rates a classifier cannot satisfy "
        "both unless it is perfect.",
        "A gap measured on a test set is an estimate: a two-proportion test or a bootstrap interval, with the n "
        "of each group, says whether it could be noise; small intersectional groups rarely give an answer.",
        "Dropping the sensitive column does not remove its signal: relationship (Husband/Wife) and marital "
        "status carry sex (the other inputs predict it with ROC AUC 0.93), and SHAP ranks both among the four "
        "strongest inputs while sex itself ranks 8th of 12.",
        "SHAP values add up exactly to the model's output (checked, to 1e-6), LIME's are a sampled local "
        "linear fit; they mostly agree on what drives one prediction.",
        "Post-processing with group-specific thresholds cuts the demographic-parity gap most cheaply, but "
        "needs the sensitive attribute at prediction time, which is disparate treatment in law; reductions "
        "and re-weighing do not.",
        "A fairness audit is a stage: any flow whose dataset declares sensitive columns gets it, and a "
        "threshold makes it fail the run before a model is registered.",
    ),
    sources=("src/pipeline/audit/fairness.py", "src/pipeline/audit/explain.py", "src/pipeline/lessons/fairness.py",
             "flows/unit14_fairness.py"),
)
