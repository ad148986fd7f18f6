"""Feature pipelines and train/test splits shared by the units.

Preprocessing lives inside an sklearn ``Pipeline`` with the model, so cross-validation refits it on
each training fold and nothing about the held-out rows leaks into training.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

TITANIC_NUMERIC = ["Pclass", "Age", "SibSp", "Parch", "Fare"]
TITANIC_CATEGORICAL = ["Sex", "Embarked"]
TITANIC_TARGET = "Survived"
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


class Split(NamedTuple):
    """Train and test rows, in ``train_test_split``'s order.

    ``sensitive`` holds the test rows' protected attributes (raw values, one column per column
    the dataset's catalog entry declares sensitive; see `sensitive_attributes`), in the order of
    ``X_test``; with it, the common evaluate task audits each binary classifier's fairness by them.
    """

    X_train: Any
    X_test: Any
    y_train: np.ndarray
    y_test: np.ndarray
    sensitive: pd.DataFrame | None = None


def sensitive_attributes(dataset: str, test_rows: pd.DataFrame) -> pd.DataFrame | None:
    """The catalog's sensitive columns of ``dataset`` taken from ``test_rows`` (index reset), or
    None when the dataset declares none."""
    from pipeline.data import DATASETS

    columns = list(DATASETS[dataset].sensitive)
    if not columns:
        return None
    missing = [column for column in columns if column not in test_rows.columns]
    if missing:
        raise ValueError(f"{dataset} declares sensitive column(s) {missing} that the test rows lack; "
                         f"they have {list(test_rows.columns)}")
    return test_rows[columns].reset_index(drop=True)


def titanic_features(scale: bool = True) -> ColumnTransformer:
    """Median-impute and (optionally) standardise numbers; one-hot encode Sex and Embarked.

    Trees need no scaling, and unscaled thresholds read as ages and fares when printed. Sex is
    encoded as a single column (``drop="if_binary"``) so a tree cannot tie between two mirrored
    columns.
    """
    numeric = [SimpleImputer(strategy="median")] + ([StandardScaler()] if scale else [])
    categorical = [SimpleImputer(strategy="most_frequent"),
                   OneHotEncoder(drop="if_binary", handle_unknown="ignore", sparse_output=False)]
    return ColumnTransformer(
        [("num", make_pipeline(*numeric), TITANIC_NUMERIC),
         ("cat", make_pipeline(*categorical), TITANIC_CATEGORICAL)],
        verbose_feature_names_out=False,
    )


def with_titanic_features(model, scale: bool = True) -> Pipeline:
    return Pipeline([("features", titanic_features(scale)), ("model", model)])


def split_titanic(train: pd.DataFrame, test_size: float, seed: int) -> Split:
    """Stratified split of Kaggle's labelled ``train.csv`` (the Kaggle test set has no labels), with
    the test passengers' Sex (the catalog's sensitive column) for the fairness audit."""
    X = train[TITANIC_NUMERIC + TITANIC_CATEGORICAL]
    y = train[TITANIC_TARGET].to_numpy(dtype=int)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed)
    return Split(X_train, X_test, y_train, y_test, sensitive_attributes("titanic", X_test))


def split_iris(data: pd.DataFrame, test_size: float, seed: int) -> Split:
    X = data[IRIS_FEATURES].to_numpy(dtype=float)
    y = data["target"].to_numpy(dtype=int)
    return Split(*train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed))


def image_split(dataset, flatten: bool) -> Split:
    """Train and test images of an image dataset as the models take them.

    ``flatten=True`` gives (N, H*W*C) floats in [0, 1] for a dense network; ``False`` keeps the
    uint8 images, which the torch models normalise on the device batch by batch.
    """
    (X_train, y_train), (X_test, y_test) = dataset.splits["train"], dataset.splits["test"]
    if flatten:
        X_train = X_train.reshape(len(X_train), -1).astype(np.float32) / 255.0
        X_test = X_test.reshape(len(X_test), -1).astype(np.float32) / 255.0
    return Split(X_train, X_test, y_train, y_test)
