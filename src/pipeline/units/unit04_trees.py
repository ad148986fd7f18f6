"""Unit 4 — decision trees, linear and logistic regression from scratch (Iris, Titanic)."""

from pydantic import Field

from pipeline.params import UnitParams
from pipeline.units.spec import Experiment, Schedule, UnitSpec
from pipeline.units.unit06_evaluation import TITANIC_REFERENCES


class Unit04Params(UnitParams):
    max_depth: int | None = Field(4, ge=1, description="tree depth limit (None: grow fully)")
    min_samples_split: int = Field(2, ge=2, description="smallest node that may be split")


SPEC = UnitSpec(
    id="unit04",
    number=4,
    title="Decision trees, linear and logistic regression from scratch (Iris, Titanic)",
    phase=2,
    topics=("entropy and information gain", "recursive tree building", "linear regression (MSE)",
            "logistic regression (log loss)", "support vector machines"),
    challenge="A decision tree from scratch equal to DecisionTreeClassifier(criterion='entropy') on Iris "
              "and Titanic (same splits where ties allow, both trees printed); linear and logistic "
              "regression by gradient descent beside an SVM.",
    params=Unit04Params,
    flow="flows.unit04_trees:unit04_trees",
    datasets=("iris", "titanic"),
    primary_metric="test_accuracy",
    schedule=Schedule("0 2 * * 1"),
    references=TITANIC_REFERENCES,
    notes="docs/unit04_trees.md",
    notebook="notebooks/unit04_trees.ipynb",
    try_next=(
        Experiment(("max_depth=12",), "over-fitting: the CV and test accuracy fall below depth 4's while "
                                      "the printed trees grow many leaves of a few rows each"),
        Experiment(("max_depth=null", "min_samples_split=20"),
                   "a fully grown tree held back only by node size: compare its printed size and test "
                   "accuracy with depth 4"),
        Experiment(("max_depth=1",), "a stump: the root split on Sex alone, and how much accuracy one "
                                     "question already buys"),
    ),
    learned=(
        "Entropy measures how mixed a node's classes are; a split's information gain is the entropy "
        "it removes, weighted by the size of each side.",
        "A tree is grown greedily: at every node, try every feature and every midpoint threshold, "
        "keep the best, recurse. Its decision regions are axis-aligned rectangles.",
        "Depth is the knob between bias and variance: a deeper tree fits the training rows better "
        "and new rows worse.",
        "Gradient descent on standardised features walks the mean squared error down to the "
        "closed-form least-squares solution; the loss falls geometrically once near it.",
        "Logistic regression is the same loop with a sigmoid and the log loss; ours matches "
        "scikit-learn's unpenalised fit, and both trees make the same splits where no ties occur.",
    ),
    sources=("src/pipeline/scratch/tree.py", "src/pipeline/scratch/linear.py",
             "src/pipeline/lessons/trees.py", "flows/unit04_trees.py"),
)
