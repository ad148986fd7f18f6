"""PyTorch models of the learning path, by unit; ``MODELS`` names the CNNs of Unit 8."""

from pipeline.models.cnn import (
    MODELS,
    Residual,
    ResNetSmall,
    SimpleCNN,
    conv_bn,
    conv_output_size,
    pool_output_size,
    trace_shapes,
)

__all__ = [
    "MODELS",
    "ResNetSmall",
    "Residual",
    "SimpleCNN",
    "conv_bn",
    "conv_output_size",
    "pool_output_size",
    "trace_shapes",
]
