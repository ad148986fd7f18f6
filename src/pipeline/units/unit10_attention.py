"""Unit 10 — attention from scratch (NumPy, audited against torch) and an attention classifier on SST-2."""

from pydantic import Field

from pipeline.params import UnitParams
from pipeline.units.spec import Experiment, Reference, Schedule, UnitSpec


class Unit10Params(UnitParams):
    cv_folds: int = Field(0, ge=0, le=10, description="cross-validation folds (0: test metrics only)")
    epochs: int | None = Field(None, ge=1, le=50, description="attention classifier epochs (None: the profile's)")
    d_model: int | None = Field(None, ge=8, le=256, description="model width (None: the profile's)")
    n_heads: int | None = Field(None, ge=1, le=16, description="attention heads, dividing d_model "
                                                               "(None: the profile's)")


SPEC = UnitSpec(
    id="unit10",
    number=10,
    title="Attention from scratch (SST-2)",
    phase=3,
    topics=(
        "scaled dot-product attention: queries, keys, values",
        "a numerically stable softmax",
        "causal and padding masks",
        "multi-head attention",
        "sinusoidal positional encoding",
    ),
    challenge=("Attention from scratch in NumPy equal to torch's scaled_dot_product_attention and "
               "nn.MultiheadAttention to 1e-6, then a one-block attention classifier on SST-2 beside a "
               "bag-of-words baseline, with its attention drawn head by head."),
    params=Unit10Params,
    flow="flows.unit10_attention:unit10_attention",
    datasets=("sst2",),
    primary_metric="test_accuracy",
    greater_is_better=True,
    schedule=Schedule("30 3 * * 2"),
    references=(
        Reference("SST binary sentence accuracy of Naive Bayes on bag-of-words features", "0.818",
                  "Socher et al. 2013, “Recursive Deep Models for Semantic Compositionality Over a "
                  "Sentiment Treebank”, Table 1 (the same 1,821 test sentences; trained on the "
                  "treebank's phrases)", "baseline_test_accuracy"),
        Reference("SST binary sentence accuracy of the RNTN (recursive tensor network)", "0.854",
                  "same table", "test_accuracy"),
    ),
    notes="docs/unit10_attention.md",
    notebook="notebooks/unit10_attention.ipynb",
    quick="4,000 training phrases and 1,000 test sentences; a 32-wide, 2-head model for 4 epochs "
          "instead of 64 wide, 4 heads",
    try_next=(
        Experiment(("n_heads=1",), "one head instead of two: does the accuracy move, and what does "
                                   "the single head's heatmap look like?"),
        Experiment(("epochs=10",), "more epochs on 4,000 phrases: training accuracy climbs, test "
                                   "accuracy stalls — overfitting on a small set"),
        Experiment(("d_model=64", "n_heads=4"), "the full profile's width on the quick data"),
    ),
    learned=(
        "Attention is softmax(q kᵀ / √d) v: each word scores every other word, and reads a weighted "
        "average of their values; the √d keeps the scores from saturating the softmax.",
        "Our NumPy attention equals torch's scaled_dot_product_attention and nn.MultiheadAttention "
        "(same weights) to about 1e-15 in float64, masks included.",
        "A mask sets forbidden scores to -inf before the softmax, so their weights are exactly 0: "
        "causal for language models, padding for batches of sentences.",
        "Attention ignores word order by itself; sinusoidal positional encodings add it, one "
        "clock per pair of dimensions.",
        "A single attention block on SST-2 is about as accurate as a bag-of-words logistic "
        "regression (full profile: 0.808 against 0.818 test accuracy): one block sees which words "
        "occur, little of how they combine.",
        "The trained heads are readable: on “the film is not good at all” every head sends most "
        "of its attention to “not”.",
    ),
    sources=("src/pipeline/scratch/attention.py", "src/pipeline/models/attention.py",
             "src/pipeline/audit/attention.py", "src/pipeline/lessons/attention.py",
             "src/pipeline/data/words.py", "flows/unit10_attention.py"),
)
