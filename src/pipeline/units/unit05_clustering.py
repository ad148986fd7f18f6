"""Unit 5 — customer segmentation: k-means from scratch, choosing k, hierarchy (Mall Customers)."""

from pydantic import Field

from pipeline.params import UnitParams
from pipeline.units.spec import Experiment, Reference, Schedule, UnitSpec


class Unit05Params(UnitParams):
    k: int = Field(5, ge=2, le=12, description="segments (k-means clusters)")
    k_max: int = Field(10, ge=3, le=15, description="the largest k of the elbow and silhouette scan (from 2)")
    n_init: int = Field(10, ge=1, le=50, description="k-means++ starts; the lowest inertia is kept")
    with_gender: bool = Field(False, description="cluster on Gender too (encoded 0/1 and standardised)")
    perplexity: float = Field(30.0, ge=5, le=50, description="t-SNE perplexity (neighbours each point attends to)")


SPEC = UnitSpec(
    id="unit05",
    number=5,
    title="Customer segmentation: k-means from scratch (Mall Customers)",
    phase=2,
    topics=("k-means: k-means++ seeding, Lloyd iterations, inertia, convergence",
            "choosing k: elbow and silhouette", "hierarchical clustering and the dendrogram",
            "feature scaling", "2-D views: PCA and t-SNE", "feature selection vs extraction",
            "naming segments for the business"),
    challenge="Segment the 200 Mall Customers with k-means from scratch (k-means++ and Lloyd), equal to "
              "sklearn.cluster.KMeans from the same initial centroids (same labels, inertia to 1e-6); "
              "choose k, compare with a ward hierarchy, and describe each segment in business terms.",
    params=Unit05Params,
    flow="flows.unit05_clustering:unit05_clustering",
    datasets=("mall_customers",),
    primary_metric="test_silhouette",
    greater_is_better=True,
    schedule=Schedule("30 2 * * 1"),
    references=(
        Reference("Number of segments on Age, Annual Income and Spending Score", "5 to 6",
                  "the many published analyses of the Kaggle Mall Customer Segmentation data (elbow and "
                  "silhouette on the three standardised numeric columns); on Income × Score alone the "
                  "picture is five clear groups"),
    ),
    notes="docs/unit05_clustering.md",
    notebook="notebooks/unit05_clustering.ipynb",
    quick="t-SNE runs 500 iterations instead of 1000 and k-means 3 starts instead of n_init; the data is "
          "the same 200 customers",
    try_next=(
        Experiment(("k=3",), "the silhouette and the segment table with fewer, larger segments: which "
                             "groups merge, and whether the names still say something useful"),
        Experiment(("k=8",), "the silhouette as k passes the elbow: segments split into look-alikes whose "
                             "names repeat"),
        Experiment(("with_gender=true",), "how a 0/1 column, once standardised, splits every segment by "
                                          "gender and changes the silhouette"),
    ),
    learned=(
        "K-means alternates two steps that each lower the same objective, the inertia: assign each "
        "point to its nearest centroid, then move each centroid to the mean of its points.",
        "It converges to a local minimum that depends on the start; k-means++ seeds the centroids far "
        "apart, and the best of several starts is kept.",
        "Scale first: unscaled, the feature with the largest numbers decides the distances.",
        "The elbow of the inertia and the peak of the silhouette both point to about five or six segments "
        "on Mall Customers; neither is a proof, both are evidence to weigh.",
        "A ward hierarchy finds nearly the same five segments without choosing k in advance: the "
        "dendrogram shows where cutting it is cheap.",
        "Choosing two columns (income and score) gives cleaner, more separated clusters than two PCA "
        "components of all three, because age blurs the groups; extraction keeps more variance, "
        "selection keeps meaning.",
        "A segment is useful to a business when it has a size, a centroid in its own units and a name "
        "derived from them, such as 'affluent savers'.",
    ),
    sources=("src/pipeline/scratch/kmeans.py", "src/pipeline/lessons/clustering.py",
             "src/pipeline/audit/clustering.py", "flows/unit05_clustering.py"),
)
