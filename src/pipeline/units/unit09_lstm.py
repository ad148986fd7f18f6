"""Unit 9 — recurrent networks and LSTMs (Tiny Shakespeare, MSFT prices)."""

from pydantic import Field

from pipeline.params import UnitParams
from pipeline.units.spec import Experiment, Reference, Schedule, UnitSpec


class Unit09Params(UnitParams):
    cv_folds: int = Field(0, ge=0, le=0, description="no cross-validation: shuffled folds of a time series "
                                                      "would train on the future of the days they score")
    epochs: int | None = Field(None, ge=1, le=100, description="char LSTM epochs (None: the profile's)")
    hidden: int | None = Field(None, ge=8, le=2048, description="char LSTM hidden units (None: the profile's)")
    seq_len: int | None = Field(None, ge=8, le=512, description="TBPTT window in characters (None: the profile's)")
    temperature: float = Field(0.8, gt=0, le=2.0, description="sampling temperature of the headline sample "
                                                             "(0.5, 0.8 and 1.0 are always sampled)")
    window: int = Field(30, ge=5, le=120, description="days of closes in each price window")
    price_epochs: int | None = Field(None, ge=1, le=500, description="price LSTM epochs, at most (early "
                                                                     "stopping on validation)")


SPEC = UnitSpec(
    id="unit09",
    number=9,
    title="Recurrent networks and LSTMs (Tiny Shakespeare, MSFT prices)",
    phase=3,
    topics=(
        "recurrent networks and backpropagation through time",
        "vanishing and exploding gradients, gradient clipping",
        "LSTM and GRU gates",
        "character-level language models, truncated BPTT, sampling temperature",
        "time-series forecasting against honest baselines",
    ),
    challenge=("An LSTM that writes Tiny Shakespeare (validation loss <= 1.60 nats/char) and one that "
               "forecasts MSFT prices against a naive last-value baseline."),
    params=Unit09Params,
    flow="flows.unit09_lstm:unit09_lstm",
    datasets=("tinyshakespeare", "stocks"),
    primary_metric="val_loss",
    greater_is_better=False,
    schedule=Schedule("0 7 * * 0", why="the full run takes about 10 minutes on one CPU thread"),
    references=(
        Reference("Tiny Shakespeare character-level validation loss (last 10 % of the text, as here) of "
                  "nanoGPT's 6-layer, 6-head, 384-channel Transformer with a 256-character context: a "
                  "larger, attention-based model, for scale", "1.4697 nats/char",
                  "karpathy/nanoGPT README, “quick start” (config/train_shakespeare_char.py, ~3 min "
                  "on one A100)", "val_loss"),
    ),
    notes="docs/unit09_lstm.md",
    notebook="notebooks/unit09_lstm.ipynb",
    try_next=(
        Experiment(("hidden=256", "epochs=12"), "a smaller LSTM for longer: where does it stop improving?"),
        Experiment(("seq_len=25",), "shorter BPTT windows: the carried state still reaches back, the "
                                    "gradient no longer does"),
        Experiment(("window=60",), "twice the history for the price models: does any of them get closer "
                                   "to beating persistence?"),
    ),
    learned=(
        "A recurrent network applies one cell at every step and carries its hidden state forward; "
        "backpropagation through time multiplies one Jacobian per step, so gradients vanish or explode.",
        "The LSTM's cell state is updated additively, scaled by a forget gate, so gradient survives many "
        "more steps than in a vanilla RNN; gradient clipping tames the exploding case.",
        "Truncated BPTT trains on short windows but carries the (detached) state between them, so the "
        "model still reads context from earlier windows.",
        "A character LSTM learns spelling, words and the play's format from raw text; temperature trades "
        "safe, repetitive text for varied, error-prone text.",
        "On daily prices a fair comparison needs a chronological split, a scaler fitted on the past only and "
        "the persistence baseline: an LSTM does not beat 'tomorrow = today' here.",
    ),
    sources=("src/pipeline/scratch/rnn.py", "src/pipeline/models/rnn.py", "src/pipeline/training/lm.py",
             "src/pipeline/lessons/recurrent.py", "flows/unit09_lstm.py"),
    quick="the char LSTM trains 3 epochs on the first 120,000 characters at 128 units (a smoke run, "
          "val ≈ 2.3 nats/char); the price LSTM 4 epochs at 16 units",
)
