"""Unit 8 — convolutional networks in PyTorch on CIFAR-10.

Model A is the curriculum's simple CNN (two conv + pool stages, then dense layers); Model B a small
residual network with batch norm. Both train in the shared loop (``pipeline.training``) with
random-crop and flip augmentation in plain torch, and are scored by the shared evaluation.

Checkpoints go to ``MLPATH_HOME/runs/unit08/<model>/``, one folder per training set and settings:
an interrupted run resumes where it stopped (same data and settings); a finished one is trained
anew, as a scheduled retraining should be.

The mirror's CIFAR-10 is a JPEG re-encoding of the official images: accuracies on it are close
to, not exactly comparable with, results on the official data.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np
import pandas as pd
import torch

from pipeline.augment import cifar_eval_transform, cifar_train_transform
from pipeline.data import CIFAR10_CLASSES
from pipeline.features import Split
from pipeline.models import ResNetSmall, SimpleCNN
from pipeline.settings import mlpath_home
from pipeline.training import TorchClassifier, TrainConfig
from pipeline.units.unit08_cnn import SPEC

SIMPLE = "Model A: simple CNN"
RESNET = "Model B: small ResNet"

# What to look for in each figure of the unit, printed under it on the results site.
CAPTIONS = {
    "misclassified": "Test images Model B got wrong, each captioned true → predicted. Look for the "
                     "confusions that repeat: classes that share shapes, colours and backgrounds (cat "
                     "and dog, automobile and truck, deer and horse, airplane and ship against blue). "
                     "At 32 × 32 pixels some are hard for a person too.",
}

# Per profile: (model factory, training settings). Quick fits 2 CPU cores in about a minute; full
# is the real run: Model B follows the ResNet-9 recipe (24-epoch one-cycle SGD, with the label
# smoothing of 0.2 from its authors' later runs) at half its width, a quarter of its compute, so
# that it trains on 2 CPU cores in under an hour.
# Model B trains in bf16 on CPUs that have it and in channels-last layout, together 2.1-2.7x
# faster there than float32 (`make bench` measures it); on CUDA, `amp` does the same.
_FAST = {"cpu_bf16": True, "channels_last": True}
SETTINGS = {
    "quick": {
        SIMPLE: (SimpleCNN, TrainConfig(epochs=5, batch_size=64, lr=2e-3, optimizer="adamw")),
        RESNET: (partial(ResNetSmall, width=16), TrainConfig(
            epochs=4, batch_size=128, lr=0.05, optimizer="sgd", momentum=0.9, weight_decay=5e-4,
            scheduler="onecycle", **_FAST)),  # no label smoothing: 4 epochs are too few for it
    },
    "full": {
        SIMPLE: (SimpleCNN, TrainConfig(epochs=20, batch_size=64, lr=2e-3, optimizer="adamw",
                                        scheduler="cosine")),
        RESNET: (partial(ResNetSmall, width=32), TrainConfig(
            epochs=24, batch_size=256, lr=0.1, optimizer="sgd", momentum=0.9, weight_decay=5e-4,
            scheduler="onecycle", label_smoothing=0.2, **_FAST)),
    },
}


def cnn_classifiers(profile: str, seed: int, epochs: dict[str, int | None]) -> dict[str, TorchClassifier]:
    """Both models, ready to fit; ``epochs`` overrides the profile's epochs per model name."""
    models = {}
    for name, (factory, config) in SETTINGS[profile].items():
        config = replace(config, seed=seed, label=name,
                         epochs=epochs.get(name) or config.epochs,
                         checkpoint_dir=str(mlpath_home() / "runs" / SPEC.id / short_name(name)))
        models[name] = TorchClassifier(
            factory, config,
            train_transform=cifar_train_transform(torch.Generator().manual_seed(seed), normalize=False),
            input_transform=cifar_eval_transform())
    return models


def data_note(ref) -> str:
    """What the CIFAR-10 numbers can be compared with, by where the data came from."""
    if ref.source.startswith("mirror:"):
        return ("CIFAR-10 here is the mirror's JPEG re-encoding of the official images: accuracies "
                "are close to, not exactly comparable with, results on the official files.")
    return f"CIFAR-10 from {ref.source}."


def short_name(name: str) -> str:
    """"Model A: simple CNN" -> "model_a", for folders and metric names."""
    return name.split(":")[0].lower().replace(" ", "_")


def per_class_accuracy(confusion: np.ndarray) -> pd.Series:
    """Test accuracy of each class: the confusion matrix's diagonal over its row sums."""
    return pd.Series(np.diag(confusion) / confusion.sum(axis=1), index=list(CIFAR10_CLASSES),
                     name="accuracy")


def misclassified_figure(split: Split, y_pred: np.ndarray, n: int = 32):
    """The first ``n`` test images Model B got wrong, captioned "true → predicted"."""
    from pipeline.plots import mistakes_figure

    return mistakes_figure(split.X_test, split.y_test, y_pred, CIFAR10_CLASSES, n, what="test images")
