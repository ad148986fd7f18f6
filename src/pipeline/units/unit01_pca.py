"""Unit 1 — linear algebra and PCA from scratch on Iris."""

from pydantic import Field

from pipeline.params import UnitParams
from pipeline.units.spec import Experiment, Reference, Schedule, UnitSpec


class Unit01Params(UnitParams):
    n_components: int = Field(2, ge=2, le=4, description="principal components to keep")


SPEC = UnitSpec(
    id="unit01",
    number=1,
    title="Linear algebra and PCA from scratch (Iris)",
    phase=1,
    topics=("vectors, matrices and linear maps", "covariance matrix", "eigendecomposition",
            "PCA: projection and explained variance"),
    challenge="PCA from scratch on Iris (centre, covariance, eigh, sort, project) equal to "
              "sklearn.decomposition.PCA to 1e-8; a classifier on 2 components against all 4 features.",
    params=Unit01Params,
    flow="flows.unit01_pca:unit01_pca",
    datasets=("iris",),
    primary_metric="test_accuracy",
    schedule=Schedule("0 1 * * 1"),
    references=(
        Reference("PC1 explained-variance ratio on Iris", "0.9246",
                  "scikit-learn documentation, example “Comparison of LDA and PCA 2D projection of "
                  "Iris dataset”: explained variance ratio [0.92461872, 0.05306648]",
                  "explained_variance_ratio_pc1"),
        Reference("PC2 explained-variance ratio on Iris", "0.0531", "same example",
                  "explained_variance_ratio_pc2"),
    ),
    notes="docs/unit01_pca.md",
    notebook="notebooks/unit01_pca.ipynb",
    try_next=(
        Experiment(("n_components=3",), "the classifier's CV accuracy as the third component adds back "
                                        "the 1.7 % of variance that two leave out"),
        Experiment(("test_size=0.5",), "how the test accuracy moves when half the 150 flowers are held "
                                       "out: with 38 test rows one flower is 2.6 points"),
    ),
    learned=(
        "The covariance matrix says how features vary together; as a linear map it stretches space "
        "along its eigenvectors, by its eigenvalues, and only turns every other direction.",
        "PCA is centre, covariance, eigendecomposition, sort, project: the eigenvectors of the largest "
        "eigenvalues are the directions of most variance.",
        "On Iris, PC1 alone holds 92 % of the variance and two components 98 %: four measurements "
        "are nearly two-dimensional.",
        "A classifier on 2 components scores almost what it scores on all 4 features, and with 38 "
        "test rows the CV mean is the steadier estimate.",
        "Our PCA equals scikit-learn's to 1e-8, once eigenvector signs (which are arbitrary) are "
        "fixed the same way.",
    ),
    sources=("src/pipeline/scratch/pca.py", "src/pipeline/lessons/pca.py", "flows/unit01_pca.py"),
)
