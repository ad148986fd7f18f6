"""`TorchClassifier`: a torch classifier in the sklearn contract, trained by the shared loop.

So the Unit 6 ``evaluate``, ``clone`` and cross-validation take torch models unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from pipeline.evaluation import ModelAdapter
from pipeline.training.checkpoint import settings_key
from pipeline.training.config import TrainConfig
from pipeline.training.data import as_tensor, fingerprint
from pipeline.training.device import seed_everything
from pipeline.training.loop import Trainer
from pipeline.training.steps import ClassificationStep, Transform


class TorchClassifier(ClassifierMixin, ModelAdapter):
    """A torch classifier trained by `Trainer` with `ClassificationStep`, for `evaluate` and CV.

    ``module_factory()`` builds a fresh ``nn.Module`` mapping a batch (B, ...) to logits
    (B, n_classes); with ``size_from_data`` it is called as ``module_factory(n_features, n_classes)``
    instead, for a net sized by the training data (X (n, n_features)). It and the transforms must
    be picklable (module-level functions or classes, not lambdas) for the fitted model to pickle.
    To be registered (``pipeline.training.export``: safetensors weights, no pickle) the factory is
    a class or function, or a ``functools.partial`` of one with plain arguments, and the input
    transform a dataclass with plain fields, from ``pipeline.models``, ``pipeline.augment`` or
    ``torch.nn``.
    ``input_transform`` (e.g. normalisation) is applied to every input, in fit and predict;
    ``train_transform`` (augmentation) only in training, before it. ``fit`` trains with a copy of
    ``train_transform``, so its random generator is never advanced: every fit and clone augments
    alike. Without an ``input_transform`` the inputs are cast to float32; with one they reach it
    as given (uint8 images stay uint8 until the device). With a ``config.checkpoint_dir``, each
    training set and settings gets its own subfolder, so CV folds and runs with other settings
    never resume from each other, while a rerun in a new process resumes its own.
    Fitted: ``classes_``, ``n_features_in_``, ``module_``, ``trainer_``, ``history_``.
    """

    def __init__(
        self,
        module_factory: Callable[..., nn.Module],
        config: TrainConfig,
        train_transform: Transform | None = None,
        input_transform: Transform | None = None,
        size_from_data: bool = False,
    ):
        self.module_factory = module_factory
        self.config = config
        self.train_transform = train_transform
        self.input_transform = input_transform
        self.size_from_data = size_from_data

    def fit(self, X, y) -> TorchClassifier:
        """Train a fresh module on X (n, ...) and labels y (n,); returns self."""
        X, y = validate_data(self, X, y, allow_nd=True, dtype=self._input_dtype())
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        X, y_index = as_tensor(X), torch.as_tensor(y_index)
        config = self.config
        if config.checkpoint_dir is not None:
            folder = Path(config.checkpoint_dir) / f"{fingerprint(X, y_index)[:16]}-{self._settings_key()}"
            config = replace(config, checkpoint_dir=str(folder))
        seed_everything(config.seed)  # the same initial weights for the same seed
        if self.size_from_data:
            self.module_ = self.module_factory(self.n_features_in_, len(self.classes_))
        else:
            self.module_ = self.module_factory()
        step = ClassificationStep(train_transform=copy.deepcopy(self.train_transform),
                                  input_transform=self.input_transform)
        self.trainer_ = Trainer(self.module_, config, step)
        self.history_ = self.trainer_.fit(X, y_index).history
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns in the order of ``classes_``."""
        check_is_fitted(self, "module_")
        X = validate_data(self, X, reset=False, allow_nd=True, dtype=self._input_dtype())
        step = ClassificationStep(input_transform=self.input_transform)
        return Trainer(self.module_, self.config, step, callbacks=[]).predict_proba(X)

    def predict(self, X) -> np.ndarray:
        """Most probable class per row, shape (n,)."""
        proba = self.predict_proba(X)  # (n, n_classes); raises NotFittedError before fit
        return self.classes_[np.argmax(proba, axis=1)]

    def _input_dtype(self):
        return "numeric" if self.input_transform is not None else np.float32

    def _settings_key(self) -> str:
        """What else the weights depend on: the settings, the model factory and the transforms."""
        return settings_key(replace(self.config, checkpoint_dir=None, label=""), self.module_factory,
                            self.train_transform, self.input_transform, self.size_from_data)

    def __getstate__(self):
        # A fitted model pickles as its weights on the CPU; the trainer (optimizer moments, callbacks)
        # is training state and stays behind.
        state = dict(super().__getstate__())  # on Python >= 3.11 that is self.__dict__ itself
        state.pop("trainer_", None)
        if "module_" in state:
            state["module_"] = copy.deepcopy(self.module_).cpu()
        return state
