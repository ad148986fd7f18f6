"""Unit 1 — linear algebra and PCA from scratch, on Iris.

PCA is the eigendecomposition of the covariance matrix: its eigenvectors are the directions the
covariance only stretches, its eigenvalues how much variance lies along each. We fit our PCA and
scikit-learn's side by side, project Iris to 2-D, and ask a practical question of the projection:
how well does a classifier do on 2 components instead of all 4 features?
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA as SklearnPCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from pipeline.estimators import fit_all
from pipeline.features import IRIS_FEATURES, Split, split_iris
from pipeline.scratch import PCA, linear_map_demo

ON_COMPONENTS = "logistic regression on the principal components"  # the registered model
ON_ALL_FEATURES = "logistic regression on all 4 features"

# What to look for in each figure of `pca_figures`, printed under it on the results site.
CAPTIONS = {
    "projection_2d": "All 150 flowers projected on the first two principal components, coloured by "
                     "species, which PCA never saw. Setosa stands apart along PC1 alone; versicolor "
                     "and virginica touch: the few flowers a classifier on two components can still "
                     "get wrong lie where they meet.",
    "explained_variance": "The share of Iris's total variance along each kept component: PC1 about "
                          "92 %, PC2 about 5 %. The four measurements lie close to a line, and almost "
                          "entirely in a plane, which is why two components lose so little.",
    "linear_map": "The covariance matrix (of standardised sepal length and petal width) applied to "
                  "the unit circle: the circle becomes an ellipse. Only the eigenvectors (arrows) "
                  "keep their direction, scaled by their eigenvalue λ; every other direction turns. "
                  "PCA's components are these directions, largest λ first.",
}


@dataclass
class PCAFit:
    """Our PCA and scikit-learn's fitted on all of Iris, and the classifiers to compare."""

    ours: PCA
    theirs: SklearnPCA
    X: np.ndarray  # (150, 4)
    species: np.ndarray  # (150,)
    split: Split
    models: dict[str, Pipeline | LogisticRegression]


def fit_pca(iris: pd.DataFrame, n_components: int, test_size: float, seed: int) -> PCAFit:
    """Fit both PCAs on the features, and 'PCA(k) + logistic' and 'all features + logistic' on the
    training rows."""
    X = iris[IRIS_FEATURES].to_numpy(dtype=float)
    ours = PCA(n_components=n_components).fit(X)
    theirs = SklearnPCA(n_components=n_components, svd_solver="full").fit(X)
    models = {
        ON_COMPONENTS: Pipeline(
            [("pca", PCA(n_components=n_components)), ("model", LogisticRegression(max_iter=1000))]),
        ON_ALL_FEATURES: LogisticRegression(max_iter=1000),
    }
    split = split_iris(iris, test_size, seed)
    return PCAFit(ours, theirs, X, iris["species"].to_numpy(), split,
                  fit_all(models, split.X_train, split.y_train))


def variance_metrics(pca: PCA) -> dict[str, float]:
    ratios = pca.explained_variance_ratio_
    metrics = {f"explained_variance_ratio_pc{i + 1}": float(r) for i, r in enumerate(ratios)}
    metrics["explained_variance_ratio_total"] = float(ratios.sum())
    return metrics


def variance_table(pca: PCA) -> pd.DataFrame:
    return pd.DataFrame(
        {"eigenvalue": pca.explained_variance_, "explained_ratio": pca.explained_variance_ratio_,
         "cumulative": np.cumsum(pca.explained_variance_ratio_)},
        index=pd.Index([f"PC{i + 1}" for i in range(pca.n_components_)], name="component"))


def loadings_table(pca: PCA) -> pd.DataFrame:
    return pd.DataFrame(pca.components_.T, index=pd.Index(IRIS_FEATURES, name="feature"),
                        columns=[f"PC{i + 1}" for i in range(pca.n_components_)])


def linear_map_figure(X: np.ndarray):
    """The unit circle under the covariance of standardised sepal length and petal width.

    Standardised, the covariance is the correlation matrix [[1, r], [r, 1]]: its eigenvectors lie
    on the diagonals, the circle becomes an ellipse along them, and nothing else keeps its direction.
    """
    from matplotlib.figure import Figure

    pair = X[:, [0, 3]]  # sepal length, petal width
    demo = linear_map_demo(np.cov((pair - pair.mean(0)) / pair.std(0, ddof=1), rowvar=False))
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot(*demo["circle"].T, label="unit circle")
    ax.plot(*demo["image"].T, label="Σ · circle")
    for value, vector in zip(demo["eigenvalues"], demo["eigenvectors"].T):
        ax.annotate("", xy=value * vector, xytext=(0, 0), arrowprops={"arrowstyle": "->", "lw": 2})
        ax.text(*(value * vector + 0.08), f"λ={value:.2f}")
    limit = 1.1 * max(1.0, float(np.abs(demo["image"]).max()))
    ax.set(xlim=(-limit, limit), ylim=(-limit, limit), aspect="equal",
           xlabel="sepal length (standardised)", ylabel="petal width (standardised)")
    ax.set_title("Covariance as a linear map: eigenvectors are only scaled (by λ)")
    ax.legend(loc="lower right")
    return fig


def pca_figures(fit: PCAFit) -> dict[str, bytes]:
    from pipeline import plots

    projection = fit.ours.transform(fit.X)
    return {
        "projection_2d": plots.figure_to_png(plots.scatter_2d_figure(
            projection[:, :2], fit.species, "Iris projected on the first two principal components")),
        "explained_variance": plots.figure_to_png(plots.bar_figure(
            fit.ours.explained_variance_ratio_, [f"PC{i + 1}" for i in range(fit.ours.n_components_)],
            "Explained variance ratio", "ratio")),
        "linear_map": plots.figure_to_png(linear_map_figure(fit.X)),
    }
