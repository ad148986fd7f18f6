"""Unit 5 — customer segmentation on Mall Customers: k-means from scratch, choosing k, hierarchy.

200 customers, each an age, an annual income (k$) and a spending score (1-100) the mall gave
them. We standardise the three numbers (unscaled, income in k$ and a score out of 100 would weigh
by their units, not by their spread), scan k for the elbow of the inertia and the peak of the
silhouette, fit our k-means with k-means++ beside scikit-learn's and a ward hierarchy, look at the
segments in 2-D (PCA, t-SNE), compare choosing two columns with extracting two components, and end
with what a business reads: each segment's size, centroid in its own units, and a name.

Gender is shown (the share of women per segment) but not clustered on by default: a 0/1 column,
standardised, sits at two points about one standard deviation either side of zero, a gap as wide
as those between real groups, so it splits segments by gender rather than by spending; ``with_gender=true``
encodes it and shows exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.cluster import AgglomerativeClustering
from sklearn.cluster import KMeans as SklearnKMeans
from sklearn.compose import ColumnTransformer
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OrdinalEncoder, StandardScaler

from pipeline.features import Split
from pipeline.scratch.kmeans import KMeans
from pipeline.scratch.pca import PCA

AGE, INCOME, SCORE, GENDER = "Age", "Annual Income (k$)", "Spending Score (1-100)", "Gender"
NUMERIC = [AGE, INCOME, SCORE]
SELECTED = [INCOME, SCORE]  # feature selection: two of the columns, as they are
SHORT = {AGE: "age", INCOME: "income", SCORE: "score", GENDER: "gender (male)"}

OURS = "k-means (ours)"  # the registered model
SKLEARN = "k-means (sklearn)"
WARD = "agglomerative (ward)"

BAND = 0.5  # a centroid this many standard deviations from the population mean is "high" or "low"

CAPTIONS = {
    "elbow": "Inertia (the within-segment sum of squared distances, on standardised features) for "
             "k = 2 to k_max. It always falls as k grows; look for the elbow, where adding a segment "
             "stops buying much. The chosen k is marked.",
    "silhouette_by_k": "Mean silhouette for each k: for every customer, how much nearer its own segment "
                       "is than the next one (1 = far apart, 0 = on a border). Unlike inertia it can "
                       "fall as k grows; its peak is a second opinion on k.",
    "dendrogram": "Ward's hierarchy: each merge joins the two groups whose union adds the least "
                  "within-group variance, at a height that grows with that cost. Read it top down: a "
                  "long vertical stretch before a merge means the groups below it are well apart; the "
                  "dashed line cuts it into k groups.",
    "segments_income_score": "Every customer by annual income and spending score, coloured by segment, "
                             "centroids as black crosses. The segments were found on all the clustering "
                             "features; this is the plane where most of them separate.",
    "segments_pca": "The standardised features projected on their first two principal components (our "
                    "Unit 1 PCA), coloured by segment. PCA keeps distances along the directions of most "
                    "variance, so overlapping segments here may still be apart along the third.",
    "segments_tsne": "t-SNE of the same features: a non-linear map that keeps each customer's near "
                     "neighbours near. Groups that are apart here have no close neighbours in common; "
                     "distances between groups and their sizes mean little.",
    "selection_vs_extraction": "The same k-means on two features each: left, two chosen columns (income "
                               "and spending score, as they are, standardised); right, two PCA components "
                               "extracted from all the features. The silhouette in each title is measured "
                               "in that plane.",
}


@dataclass
class SegmentFit:
    """What the unit fits on all 200 customers: the models, the scan of k, the hierarchy, the views."""

    frame: pd.DataFrame  # the customers as loaded
    columns: list[str]  # the clustering features, original names
    features: Pipeline | ColumnTransformer  # raw columns -> standardised matrix (fitted)
    Z: np.ndarray  # (n, d) standardised features
    k: int
    ours: KMeans
    models: dict[str, Any]  # fitted on Z: ours, sklearn's, ward
    segmenter: Pipeline  # features then our k-means: the registered model, raw columns in
    split: Split  # Z as both train and test rows; no targets
    k_scan: pd.DataFrame  # k, inertia, silhouette
    linkage: np.ndarray  # scipy ward linkage of Z
    pca: PCA
    projection: np.ndarray  # (n, 2) PCA of Z
    tsne: np.ndarray  # (n, 2)
    selection: pd.DataFrame  # selection vs extraction
    selection_points: dict[str, tuple[np.ndarray, np.ndarray]]  # each plane's (n, 2) points and labels

    @property
    def labels(self) -> np.ndarray:
        return self.ours.labels_


def feature_transformer(with_gender: bool) -> Pipeline | ColumnTransformer:
    """Raw columns to the standardised matrix: the three numbers, and Gender as 0/1 when asked."""
    if not with_gender:
        return make_pipeline(StandardScaler())
    gender = make_pipeline(OrdinalEncoder(categories=[["Female", "Male"]]), StandardScaler())
    return ColumnTransformer([("numbers", StandardScaler(), NUMERIC), ("gender", gender, [GENDER])])


def models(k: int, n_init: int, seed: int) -> dict[str, Any]:
    """Our k-means, scikit-learn's with the same settings, and a ward hierarchy cut at k."""
    return {
        OURS: KMeans(k, n_init=n_init, random_state=seed),
        SKLEARN: SklearnKMeans(k, n_init=n_init, random_state=seed, algorithm="lloyd"),
        WARD: AgglomerativeClustering(k, linkage="ward"),
    }


def scan_k(Z: np.ndarray, k_max: int, n_init: int, seed: int) -> pd.DataFrame:
    """Inertia and mean silhouette of our k-means for k = 2 .. k_max."""
    rows = []
    for k in range(2, k_max + 1):
        model = KMeans(k, n_init=n_init, random_state=seed).fit(Z)
        rows.append({"k": k, "inertia": model.inertia_, "silhouette": silhouette_score(Z, model.labels_)})
    return pd.DataFrame(rows)


def tsne_2d(Z: np.ndarray, perplexity: float, max_iter: int, seed: int) -> np.ndarray:
    """t-SNE of Z to 2-D (PCA start, so the picture is stable for a seed)."""
    from sklearn.manifold import TSNE

    perplexity = min(perplexity, (len(Z) - 1) / 3)  # t-SNE needs perplexity < n
    return TSNE(2, perplexity=perplexity, init="pca", max_iter=max_iter, random_state=seed).fit_transform(Z)


def selection_vs_extraction(frame: pd.DataFrame, Z: np.ndarray, columns: list[str], k: int, n_init: int,
                            seed: int, reference: np.ndarray) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """K-means on two chosen columns (income, score) against k-means on two PCA components of all the
    clustering features: silhouette in each plane, variance kept, agreement (ARI) with ``reference``
    (the segments found on all features). Returns the table and each plane's points and labels."""
    chosen = StandardScaler().fit_transform(frame[SELECTED].to_numpy(float))
    pca = PCA(2).fit(Z)
    planes = {"selection: income, score": (chosen, 2 / len(columns)),
              "extraction: PCA, 2 components": (pca.transform(Z), float(pca.explained_variance_ratio_.sum()))}
    rows, points = [], {}
    for name, (P, kept) in planes.items():
        labels = KMeans(k, n_init=n_init, random_state=seed).fit_predict(P)
        rows.append({"approach": name, "silhouette": silhouette_score(P, labels), "variance_kept": kept,
                     "ari_vs_all_features": adjusted_rand_score(reference, labels)})
        points[name] = (P, labels)
    return pd.DataFrame(rows).set_index("approach"), points


def fit_segments(frame: pd.DataFrame, k: int, k_max: int, n_init: int, with_gender: bool,
                 perplexity: float, profile: str, seed: int) -> SegmentFit:
    """Standardise, fit the three models at k, scan k, build the hierarchy and the 2-D views.

    The quick profile keeps every step on the same 200 rows, with 3 k-means starts and 500 t-SNE
    iterations (full: ``n_init`` and 1000).
    """
    from scipy.cluster.hierarchy import linkage

    quick = profile == "quick"
    n_init = min(n_init, 3) if quick else n_init
    columns = NUMERIC + ([GENDER] if with_gender else [])
    features = feature_transformer(with_gender).fit(frame[columns])
    Z = np.asarray(features.transform(frame[columns]), dtype=float)  # (n, d)
    fitted = {name: model.fit(Z) for name, model in models(k, n_init, seed).items()}
    ours = fitted[OURS]
    pca = PCA(2).fit(Z)
    selection, points = selection_vs_extraction(frame, Z, columns, k, n_init, seed, ours.labels_)
    return SegmentFit(
        frame=frame, columns=columns, features=features, Z=Z, k=k, ours=ours, models=fitted,
        segmenter=Pipeline([("features", clone(features).fit(frame[columns])), ("kmeans", ours)]),
        split=Split(Z, Z, None, None), k_scan=scan_k(Z, k_max, n_init, seed),
        linkage=linkage(Z, method="ward"), pca=pca, projection=pca.transform(Z),
        tsne=tsne_2d(Z, perplexity, 500 if quick else 1000, seed), selection=selection,
        selection_points=points)


def segment_name(z: pd.Series) -> str:
    """A name from a centroid's standard scores (age, income, score) against the population:
    beyond ±``BAND`` a trait is named (young/older, low-income/affluent, high spenders/savers)."""
    age = "young" if z["age"] < -BAND else "older" if z["age"] > BAND else ""
    income = "low-income" if z["income"] < -BAND else "affluent" if z["income"] > BAND else ""
    spend = "high spenders" if z["score"] > BAND else "savers" if z["score"] < -BAND else ""
    if not spend:
        spend = "average spenders" if age or income else "average customers"
    return " ".join(word for word in (age, income, spend) if word)


def segment_table(fit: SegmentFit) -> pd.DataFrame:
    """One row per segment (index: the model's cluster number): size, share, the centroid in
    original units (mean age, income k$, spending score; the members' means, which is what a
    k-means centroid is), the share of women, and a name derived from the centroid."""
    frame = fit.frame.assign(segment=fit.labels)
    grouped = frame.groupby("segment")
    table = pd.DataFrame({
        "size": grouped.size(),
        "share": grouped.size() / len(frame),
        "age": grouped[AGE].mean(),
        "income_k$": grouped[INCOME].mean(),
        "spending_score": grouped[SCORE].mean(),
        "female_share": grouped[GENDER].apply(lambda g: float((g == "Female").mean())),
    })
    population = frame[NUMERIC]
    z = (table[["age", "income_k$", "spending_score"]].to_numpy() - population.mean().to_numpy()) \
        / population.std(ddof=0).to_numpy()
    names = [segment_name(pd.Series(row, index=["age", "income", "score"])) for row in z]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):  # two segments with one description: number them
        seen[name] = seen.get(name, 0) + 1
        if names.count(name) > 1:
            names[i] = f"{name} ({seen[name]})"
    table.insert(0, "name", names)
    return table


def segment_metrics(fit: SegmentFit) -> dict[str, float]:
    """Numbers beside the evaluation's: the k the silhouette prefers, ward vs k-means agreement,
    the selection/extraction silhouettes, and the PCA's kept variance."""
    from scipy.cluster.hierarchy import fcluster

    ward = fcluster(fit.linkage, t=fit.k, criterion="maxclust")
    best = fit.k_scan.loc[fit.k_scan["silhouette"].idxmax()]
    return {
        "best_k_by_silhouette": float(best["k"]),
        "best_silhouette_in_scan": float(best["silhouette"]),
        "ward_vs_kmeans_ari": float(adjusted_rand_score(fit.labels, ward)),
        "silhouette_selection": float(fit.selection.loc["selection: income, score", "silhouette"]),
        "silhouette_extraction": float(fit.selection.loc["extraction: PCA, 2 components", "silhouette"]),
        "pca_variance_2_components": float(fit.pca.explained_variance_ratio_.sum()),
        "kmeans_n_iter": float(fit.ours.n_iter_),
        "smallest_segment": float(np.bincount(fit.labels).min()),
    }


def _segment_labels(fit: SegmentFit, names: pd.Series) -> np.ndarray:
    return np.array([f"{label}: {names[label]}" for label in fit.labels])


_LEGEND_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.01, 1), "fontsize": 8}  # segment names are long


def _k_figure(scan: pd.DataFrame, column: str, k: int, title: str, ylabel: str):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(scan["k"], scan[column], marker="o")
    chosen = scan[scan["k"] == k]
    if len(chosen):
        ax.plot(chosen["k"], chosen[column], marker="o", markersize=12, fillstyle="none", color="red",
                label=f"chosen k = {k}")
        ax.legend()
    ax.set(xlabel="k (segments)", ylabel=ylabel, title=title, xticks=scan["k"])
    return fig


def dendrogram_figure(linkage, k: int):
    """The top of the ward tree (last 30 merges) with the cut that leaves k groups."""
    from matplotlib.figure import Figure
    from scipy.cluster.hierarchy import dendrogram

    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    dendrogram(linkage, ax=ax, truncate_mode="lastp", p=30, no_labels=True, color_threshold=0)
    heights = np.sort(linkage[:, 2])
    cut = (heights[-k] + heights[-k + 1]) / 2 if k > 1 else heights[-1]  # between the k-th and (k-1)-th last merges
    ax.axhline(cut, linestyle="--", color="red", label=f"cut into {k} groups")
    ax.set(title="Ward hierarchy of the customers (last 30 merges)", ylabel="merge cost (ward distance)",
           xlabel="groups of customers")
    ax.legend()
    return fig


def income_score_figure(fit: SegmentFit, labels: np.ndarray, centroids: pd.DataFrame):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5.5))
    ax = fig.subplots()
    for label in np.unique(labels):
        rows = labels == label
        ax.scatter(fit.frame.loc[rows, INCOME], fit.frame.loc[rows, SCORE], s=16, alpha=0.75, label=label)
    ax.scatter(centroids["income_k$"], centroids["spending_score"], marker="X", s=140, color="black",
               label="centroids")
    ax.set(xlabel=INCOME, ylabel=SCORE, title=f"{fit.k} segments by income and spending")
    ax.legend(**_LEGEND_OUTSIDE)
    return fig


def selection_figure(fit: SegmentFit):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 5), layout="constrained")
    axes = fig.subplots(1, 2)
    axes_names = {"selection: income, score": ("income (standardised)", "spending score (standardised)"),
                  "extraction: PCA, 2 components": ("PC1", "PC2")}
    for ax, (name, (P, labels)) in zip(axes, fit.selection_points.items()):
        ax.scatter(P[:, 0], P[:, 1], c=labels, cmap="tab10", s=14, alpha=0.8)
        xlabel, ylabel = axes_names[name]
        ax.set(title=f"{name}\nsilhouette {fit.selection.loc[name, 'silhouette']:.3f}", xlabel=xlabel, ylabel=ylabel)
    fig.suptitle(f"Feature selection vs extraction, k-means with k = {fit.k}")
    return fig


def figures(fit: SegmentFit, table: pd.DataFrame) -> dict[str, bytes]:
    """Every figure of the unit as PNG bytes, named as in ``CAPTIONS``; ``table`` is `segment_table`."""
    from pipeline import plots

    labels = _segment_labels(fit, table["name"])
    pca_plot = plots.scatter_2d_figure(fit.projection, labels, "Segments on the first two principal components")
    pca_plot.axes[0].set(xlabel="PC1", ylabel="PC2")
    pca_plot.axes[0].legend(**_LEGEND_OUTSIDE)
    tsne_plot = plots.scatter_2d_figure(fit.tsne, labels, "Segments in a t-SNE map")
    tsne_plot.axes[0].set(xlabel="t-SNE 1", ylabel="t-SNE 2")
    tsne_plot.axes[0].legend(**_LEGEND_OUTSIDE)
    made = {
        "elbow": _k_figure(fit.k_scan, "inertia", fit.k, "Elbow: inertia by k", "inertia"),
        "silhouette_by_k": _k_figure(fit.k_scan, "silhouette", fit.k, "Mean silhouette by k", "silhouette"),
        "dendrogram": dendrogram_figure(fit.linkage, fit.k),
        "segments_income_score": income_score_figure(fit, labels, table),
        "segments_pca": pca_plot,
        "segments_tsne": tsne_plot,
        "selection_vs_extraction": selection_figure(fit),
    }
    return {name: plots.figure_to_png(fig) for name, fig in made.items()}


def _markdown(table: pd.DataFrame, floatfmt: str = ".3f") -> str:
    from pipeline.report import markdown_table

    return markdown_table(table, floatfmt=floatfmt)


def report_markdown(fit: SegmentFit, segments: pd.DataFrame, comparison: pd.DataFrame,
                    metrics: dict[str, float]) -> str:
    """The unit's report for a reader from the business side: the segments first, then the evidence.

    Figures are referenced as ``figures/<name>.png`` (names of ``figures``)."""
    shown = segments.assign(share=(100 * segments["share"]).round(1),
                            female_share=(100 * segments["female_share"]).round(1))
    shown = shown.rename(columns={"share": "share %", "female_share": "women %",
                                  "income_k$": "income (k$)", "spending_score": "spending score"})
    shown.index.name = "segment"
    silhouette = {name: comparison.loc[name, "test_silhouette"] for name in comparison.index}
    features = ", ".join(SHORT[c] for c in fit.columns)
    return "\n".join([
        f"# Mall Customers in {fit.k} segments",
        "",
        f"K-means (our implementation, k-means++ and Lloyd) on the standardised {features} of "
        f"{len(fit.frame)} customers. Each segment's centroid is given in the original units and named "
        f"by how it sits against the whole population (beyond ±{BAND} standard deviations: young or "
        "older, low-income or affluent, high spenders or savers).",
        "",
        _markdown(shown, ".1f"),
        "",
        "![Segments by income and spending score](figures/segments_income_score.png)",
        "",
        "## How good is the segmentation?",
        "",
        f"Mean silhouette {silhouette[OURS]:.3f} for our k-means (scikit-learn's: {silhouette[SKLEARN]:.3f}, "
        f"ward hierarchy: {silhouette[WARD]:.3f}). Across k = 2..{int(fit.k_scan['k'].max())} the silhouette "
        f"peaks at k = {int(metrics['best_k_by_silhouette'])} ({metrics['best_silhouette_in_scan']:.3f}); "
        f"the ward hierarchy cut at k = {fit.k} agrees with k-means at ARI "
        f"{metrics['ward_vs_kmeans_ari']:.3f}.",
        "",
        "![Elbow](figures/elbow.png)",
        "",
        "![Silhouette by k](figures/silhouette_by_k.png)",
        "",
        "![Dendrogram](figures/dendrogram.png)",
        "",
        "## Choosing columns or extracting components",
        "",
        _markdown(fit.selection),
        "",
        "![Selection vs extraction](figures/selection_vs_extraction.png)",
        "",
        "## The segments in 2-D",
        "",
        "![PCA](figures/segments_pca.png)",
        "",
        "![t-SNE](figures/segments_tsne.png)",
        "",
    ])
