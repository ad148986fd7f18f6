"""One device-aware torch training loop, shared by every unit that trains a torch model.

``Trainer(model, TrainConfig(...), step).fit(X, y, X_val, y_val)`` trains on CUDA when present
(with mixed precision there) and on the CPU otherwise (in bf16 where the CPU has it and the config
asks), seeded, with data kept on the device when it fits and streamed there when it does not. The
unit supplies the work of one batch as a `Step` (default: `ClassificationStep`, cross-entropy);
callbacks add a progress bar, MLflow metrics, early stopping and checkpoints that the next ``fit``
resumes from. `TorchClassifier` wraps it in the sklearn contract for the Unit 6 ``evaluate``.

Modules: ``config`` (what to train with), ``device`` (where and in what precision), ``data``
(batches), ``steps`` (one batch), ``loop`` (the epochs), ``callbacks`` and ``checkpoint`` (around
them), ``classifier`` (sklearn).
"""

from pipeline.training.callbacks import Callback, EarlyStopping, MLflowLogger, OnEpochEnd, ProgressBar
from pipeline.training.checkpoint import Checkpoint, settings_key, stable_repr
from pipeline.training.classifier import TorchClassifier
from pipeline.training.config import OPTIMIZERS, SCHEDULERS, TrainConfig, build_optimizer, build_scheduler
from pipeline.training.data import LoaderBatches, TensorBatches, fingerprint
from pipeline.training.device import autocast_dtype, cpu_has_native_bf16, pick_device, seed_everything
from pipeline.training.loop import Trainer, TrainResult, default_callbacks
from pipeline.training.steps import ClassificationStep, Step

__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "Callback",
    "Checkpoint",
    "ClassificationStep",
    "EarlyStopping",
    "LoaderBatches",
    "MLflowLogger",
    "OnEpochEnd",
    "ProgressBar",
    "Step",
    "TensorBatches",
    "TorchClassifier",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "autocast_dtype",
    "build_optimizer",
    "build_scheduler",
    "cpu_has_native_bf16",
    "default_callbacks",
    "fingerprint",
    "pick_device",
    "seed_everything",
    "settings_key",
    "stable_repr",
]
