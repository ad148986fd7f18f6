"""Unit 14 — Fairness and explainability (Adult) (planned: no flow yet)."""

from pipeline.units.spec import Reference, UnitSpec

SPEC = UnitSpec(
    id="unit14",
    number=14,
    title="Fairness and explainability (Adult)",
    phase=4,
    topics=(
        "group fairness metrics",
        "demographic parity and equalised odds",
        "mitigation",
        "explanations with SHAP",
    ),
    challenge=("Audit a model on Adult for fairness by group with fairlearn, mitigate, and explain its "
               "predictions."),
    datasets=("adult",),
    references=(
        Reference("Adult test accuracy of C4.5 (error 15.54 %)", "0.8446",
                  "UCI Adult data set, adult.names (MLC++ runs on the original train/test split)",
                  "test_accuracy"),
        Reference("Adult test accuracy of NBTree (error 14.10 %)", "0.8590", "same file", "test_accuracy"),
        Reference("Adult test accuracy of Naive Bayes (error 16.12 %)", "0.8388", "same file",
                  "test_accuracy"),
    ),
)
