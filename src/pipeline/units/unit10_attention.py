"""Unit 10 — Attention and transformers from scratch (planned: no flow yet)."""

from pipeline.units.spec import UnitSpec

SPEC = UnitSpec(
    id="unit10",
    number=10,
    title="Attention and transformers from scratch",
    phase=3,
    topics=(
        "scaled dot-product attention",
        "multi-head attention",
        "positional encoding",
        "causal masking",
        "the transformer block",
    ),
    challenge=("Attention from scratch equal to torch's scaled_dot_product_attention, in a small "
               "transformer language model."),
    datasets=("tinyshakespeare",),
)
