"""Paper — "Attention Is All You Need" (Vaswani et al., 2017), rebuilt small enough for a CPU."""

from pydantic import Field

from pipeline.params import UnitParams
from pipeline.units.spec import Experiment, Reference, Schedule, UnitSpec


class PaperParams(UnitParams):
    epochs: int | None = Field(None, ge=1, description="seq2seq Transformer epochs (None: the profile's)")
    lm_budget_s: float | None = Field(None, gt=0, description="seconds of training for each character LM "
                                                               "(None: the profile's)")


SPEC = UnitSpec(
    id="paper",
    number=16,
    title="Paper: Attention Is All You Need",
    phase=5,
    topics=("multi-head scaled dot-product attention", "positional encoding",
            "post-norm residual blocks", "encoder–decoder with teacher forcing and greedy decoding",
            "warm-up learning-rate schedule and label smoothing", "decoder-only language models"),
    challenge="The Transformer from our own modules, audited against torch: reverse held-out digit strings "
              "to >= 99 % exact match, and race its decoder-only form against Unit 9's LSTM as a "
              "character model of Tiny Shakespeare.",
    params=PaperParams,
    flow="flows.paper:paper",
    datasets=("digit_strings", "tinyshakespeare"),
    primary_metric="test_exact_match",
    greater_is_better=True,
    schedule=Schedule("30 6 * * 0", why="the full run takes about 25 minutes on one CPU thread"),
    references=(
        Reference("Validation loss (nats/char) of a 10.7M-parameter character Transformer on Tiny Shakespeare "
                  "after about 3 minutes on one A100", "1.47",
                  "karpathy/nanoGPT README, “quick start” (shakespeare_char; its own 90/10 split)",
                  "lm_transformer_val_loss"),
    ),
    notes="docs/paper.md",
    notebook="notebooks/paper.ipynb",
    try_next=(
        Experiment(("epochs=20",), "given 20 epochs even the quick model finds the reversal rule (about 95 % "
                                   "exact match): at which epoch does validation exact match take off?"),
        Experiment(("lm_budget_s=10.0",), "a longer race: does the LSTM's early lead hold?"),
    ),
    learned=(
        "Attention is a soft lookup: each position's query is compared with every key, and the softmax "
        "of the scaled scores weighs the values; several heads look for different things at once.",
        "Without recurrence the model has no sense of order: the sinusoidal positional encodings add it.",
        "Masks do the bookkeeping: padding is never attended to, and a causal mask keeps the decoder "
        "from reading the future, so one teacher-forced pass trains every position at once.",
        "The paper's recipe matters on a small task too: warm-up then 1/√step, label smoothing, "
        "Adam with β₂ = 0.98.",
        "Per second of one CPU thread a small LSTM is the stronger character model: on the full profile, "
        "in about 6.5 minutes each, the LSTM reaches 1.55 nats/char and a Transformer of its size 2.12 "
        "(half as many updates); the Transformer's advantage is parallelism, which a GPU pays out.",
        "Full profile: 99.7 % exact match reversing held-out digit strings after 10 epochs.",
    ),
    sources=("src/pipeline/models/transformer.py", "src/pipeline/training/seq2seq.py",
             "src/pipeline/audit/transformer.py", "src/pipeline/lessons/transformer.py", "flows/paper.py"),
    quick="the seq2seq model is half as wide and trains 2 epochs on 3,000 strings; each character model "
          "trains 2 seconds on 60,000 characters",
)
