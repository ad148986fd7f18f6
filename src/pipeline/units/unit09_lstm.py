"""Unit 9 — Recurrent networks and LSTMs (Tiny Shakespeare, MSFT prices) (planned: no flow yet)."""

from pipeline.units.spec import UnitSpec

SPEC = UnitSpec(
    id="unit09",
    number=9,
    title="Recurrent networks and LSTMs (Tiny Shakespeare, MSFT prices)",
    phase=3,
    topics=(
        "recurrent networks and backpropagation through time",
        "vanishing gradients",
        "LSTM gates",
        "character-level language models",
        "time-series forecasting",
    ),
    challenge=("An LSTM that writes Tiny Shakespeare and one that forecasts MSFT prices against a naive "
               "last-value baseline."),
    datasets=("tinyshakespeare", "stocks"),
)
