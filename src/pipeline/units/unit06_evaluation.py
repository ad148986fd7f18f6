"""Unit 6 — the evaluation pipeline: cross-validation and metrics (Titanic)."""

from typing import Annotated

from pydantic import Field

from pipeline.params import UnitParams
from pipeline.units.spec import DriftMonitor, Experiment, Reference, Schedule, UnitSpec

# Units 4 and 6 both score Titanic; these published numbers set their results in scale.
TITANIC_REFERENCES = (
    Reference("Kaggle Titanic accuracy of the gender-only baseline (gender_submission.csv)", "0.7655",
              "Kaggle, “Titanic – Machine Learning from Disaster”, public leaderboard score of the "
              "sample submission; measured on Kaggle's hidden test set, not our hold-out",
              "test_accuracy"),
    Reference("Kaggle Titanic accuracy of typical tuned tree or linear models", "≈ 0.78–0.80",
              "Kaggle Titanic public leaderboard and tutorials, a community range, approximate",
              "test_accuracy"),
)


class Unit06Params(UnitParams):
    cv_folds: int = Field(5, ge=2, le=20, description="cross-validation folds (model selection needs CV)")
    max_depth_range: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: list(range(1, 13)), min_length=2,
        description="tree depths for the bias-variance validation curve")


SPEC = UnitSpec(
    id="unit06",
    number=6,
    title="The evaluation pipeline: cross-validation and metrics (Titanic)",
    phase=2,
    topics=("K-fold and stratified cross-validation", "accuracy, precision, recall, F1, ROC AUC",
            "confusion matrix and ROC curve", "bias and variance", "imbalanced classes"),
    challenge="One evaluation for every model (sklearn, from scratch, torch) on Titanic: CV equal to "
              "sklearn's cross_validate, a validation curve, and when F1/recall beat accuracy.",
    params=Unit06Params,
    flow="flows.unit06_evaluation:unit06_evaluation",
    datasets=("titanic",),
    primary_metric="test_f1",
    schedule=Schedule("0 3 * * 1"),
    references=TITANIC_REFERENCES,
    notes="docs/unit06_evaluation.md",
    notebook="notebooks/unit06_evaluation.ipynb",
    try_next=(
        Experiment(("cv_folds=10",), "the CV standard deviations: more, smaller folds make each "
                                     "estimate noisier while the mean barely moves"),
        Experiment(("max_depth_range=[1,2,4,8,16,32]",),
                   "the validation curve: training accuracy keeps rising with depth while CV "
                   "accuracy peaks early and falls (variance)"),
        Experiment(("test_size=0.4",), "whether the model chosen on CV F1 changes when less data trains it"),
    ),
    learned=(
        "Choose models on cross-validation over the training rows and report the test set once; "
        "choosing on test scores turns the test set into training data.",
        "Stratified K-fold keeps each fold's class balance; the spread across folds says how much "
        "a score can be trusted.",
        "The confusion matrix is where accuracy, precision, recall and F1 come from; ROC AUC scores "
        "the ranking, independent of the threshold.",
        "When positives are rare, accuracy flatters a model that finds none: read recall and F1.",
        "The validation curve shows bias (both scores low) and variance (training far above CV) "
        "as the tree deepens.",
    ),
    sources=("src/pipeline/evaluation.py", "src/pipeline/lessons/model_selection.py",
             "flows/unit06_evaluation.py"),
    monitor=DriftMonitor("titanic", threshold=0.2, cron="0 6 * * *"),
)
