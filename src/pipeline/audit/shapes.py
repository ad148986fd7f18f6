"""Shape audits: the output-size arithmetic a lesson teaches, against the shapes torch produces."""

from __future__ import annotations

from pipeline.audit import AuditReport
from pipeline.models.cnn import SimpleCNN, conv_output_size, pool_output_size, trace_shapes


def audit_simple_cnn_shapes() -> AuditReport:
    """Model A's documented shapes: the output-size formula against what torch actually produces."""
    report = AuditReport("conv/pool output-size arithmetic vs torch")
    conv1 = conv_output_size(32, 5)  # 28
    pool1 = pool_output_size(conv1, 2)  # 14
    conv2 = conv_output_size(pool1, 5)  # 10
    pool2 = pool_output_size(conv2, 2)  # 5
    expected = [(1, 6, conv1, conv1), (1, 6, pool1, pool1), (1, 16, conv2, conv2), (1, 16, pool2, pool2)]
    traced = [shape for _, shape in trace_shapes(SimpleCNN(), (1, 3, 32, 32)) if len(shape) == 4]
    actual = [s for i, s in enumerate(traced) if i == 0 or s != traced[i - 1]]  # ReLU repeats a shape
    report.add("Model A feature-map shapes", actual == expected, f"formula {expected}, torch {actual}")
    return report
