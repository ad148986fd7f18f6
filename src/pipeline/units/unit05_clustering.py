"""Unit 5 — Clustering (Mall Customers) (planned: no flow yet)."""

from pipeline.units.spec import UnitSpec

SPEC = UnitSpec(
    id="unit05",
    number=5,
    title="Clustering (Mall Customers)",
    phase=2,
    topics=(
        "k-means",
        "choosing k: elbow and silhouette",
        "hierarchical clustering",
        "feature scaling",
    ),
    challenge=("Segment the Mall Customers with clustering from scratch, checked against "
               "sklearn.cluster, and describe the segments."),
    datasets=("mall_customers",),
)
