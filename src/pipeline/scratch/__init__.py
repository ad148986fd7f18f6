"""From-scratch algorithms with the scikit-learn estimator contract, NumPy-only maths.

Each is checked against its library counterpart in tests/test_scratch.py.
"""

from pipeline.scratch.linear import (
    LinearRegressionGD,
    LogisticRegressionGD,
    closed_form_least_squares,
)
from pipeline.scratch.mlp import NeuralNetwork, NumpyMLPClassifier
from pipeline.scratch.pca import PCA, linear_map_demo
from pipeline.scratch.tree import (
    DecisionTreeClassifier,
    Node,
    best_split,
    entropy,
    export_text,
    information_gain,
    preorder_splits,
)

__all__ = [
    "PCA",
    "NeuralNetwork",
    "NumpyMLPClassifier",
    "DecisionTreeClassifier",
    "LinearRegressionGD",
    "LogisticRegressionGD",
    "Node",
    "best_split",
    "closed_form_least_squares",
    "entropy",
    "export_text",
    "information_gain",
    "linear_map_demo",
    "preorder_splits",
]
