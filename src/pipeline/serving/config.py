"""The serving configuration: where the model comes from, request limits, batching, monitoring.

Every field can be set from the environment as ``MLPATH_SERVE_<FIELD>`` (``MLPATH_SERVE_MODEL`` for
``model``), so the same ``mlpath serve`` command runs on a laptop, in ``make serve`` and in the
container, which only differ in their environment.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, Field, ValidationError

DEFAULT_MODEL_URI = "models:/mlpath-sentiment@champion"


class ServingConfigError(ValueError):
    """A ``MLPATH_SERVE_*`` value that is not valid for its field."""


class ServingConfig(BaseModel):
    """How the API serves: model source, limits (422/413 past them), micro-batching, drift window."""

    model: str = Field(DEFAULT_MODEL_URI, description="an MLflow model URI or a folder written by SentimentModel.save")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_texts: int = Field(64, ge=1, description="texts per request")
    max_chars: int = Field(2000, ge=1, description="characters per text")
    max_body_bytes: int = Field(1_048_576, ge=1, description="request body size, checked before parsing")
    batching: bool = Field(True, description="micro-batch concurrent requests; off: one inference per request")
    max_batch_size: int = Field(32, ge=1, description="texts per inference batch")
    forward_batch: int = Field(8, ge=1, description="texts per forward pass within a batch: sorted by length, "
                                                    "so a small one pads little")
    max_wait_ms: float = Field(5.0, ge=0, description="how long a batch waits for more requests once it has one")
    max_queue: int = Field(256, ge=1, description="requests waiting for inference before 503 + Retry-After")
    torch_threads: int | None = Field(None, ge=1, description="torch intra-op threads (default: torch's)")
    int8: bool = Field(False, description="serve the model with its Linear layers dynamically quantised to int8: "
                                          "faster on a CPU, probabilities moved slightly (measure first)")
    window_size: int = Field(1000, ge=1, description="recent texts kept for the drift report")
    min_window: int = Field(50, ge=1, description="texts needed before the drift report decides")
    psi_threshold: float = Field(0.2, gt=0, description="PSI past which a histogram counts as drifted")
    coverage_drop: float = Field(0.05, gt=0, description="drop in vocabulary coverage that counts as drift")

    @classmethod
    def from_env(cls, **overrides) -> ServingConfig:
        """Defaults, then ``MLPATH_SERVE_*`` variables, then ``overrides`` (those not None)."""
        values: dict = {}
        for name in cls.model_fields:
            variable = "MLPATH_SERVE_MODEL" if name == "model" else f"MLPATH_SERVE_{name.upper()}"
            if os.environ.get(variable):
                values[name] = os.environ[variable]
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise ServingConfigError(f"invalid serving configuration: {error}") from error
