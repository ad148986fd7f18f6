# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Unit 5 — Customer segmentation: k-means from scratch, on Mall Customers
#
# 200 customers of a mall: gender, age, annual income (k$) and a spending score (1–100). No
# labels. This notebook groups them with k-means written from scratch (k-means++ seeding, Lloyd
# iterations), checks it against scikit-learn's `KMeans`, asks how many groups the data supports
# (elbow, silhouette, a ward hierarchy), looks at the groups in 2-D (PCA, t-SNE), compares choosing
# two columns with extracting two components, and ends with a segment table a business can read.
#
# It runs the same code as the unit's flow: `pipeline.scratch.kmeans`, `pipeline.lessons.clustering`,
# `pipeline.audit.clustering` and the shared `pipeline.evaluation`. The notes,
# `docs/unit05_clustering.md`, explain each step in more detail.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets

import numpy as np
from IPython.display import Image, display
from sklearn.cluster import KMeans as SklearnKMeans

from pipeline.audit.clustering import audit_kmeans
from pipeline.data import load_dataset
from pipeline.evaluation import compare_models
from pipeline.lessons import clustering as lesson
from pipeline.scratch.kmeans import KMeans, kmeans_plusplus

# %% [markdown]
# ## The data
#
# `load_dataset` is the catalog every flow reads from; the quick and full profiles are the same 200
# rows. The three numbers live on different scales (income up to 137, age up to 70), so they are
# standardised before any distance is taken.

# %%
mall = load_dataset("mall_customers", profile="quick").splits["data"]
display(mall.head())
display(mall[lesson.NUMERIC].describe().round(1))
print(mall["Gender"].value_counts().to_dict())

# %%
Z = lesson.feature_transformer(with_gender=False).fit_transform(mall[lesson.NUMERIC])  # (200, 3)
print(Z.shape, "means", Z.mean(axis=0).round(6), "stds", Z.std(axis=0).round(6))

# %% [markdown]
# ## k-means++ and Lloyd, against scikit-learn
#
# `kmeans_plusplus` draws the first centroid at random, then each next one with probability
# proportional to its squared distance from the nearest centroid so far. From those same starting
# centroids our `KMeans` and `sklearn.cluster.KMeans(algorithm="lloyd")` must take the same steps:
# same labels, same inertia, same number of iterations.

# %%
init, rows = kmeans_plusplus(Z, 5, random_state=0)
print("k-means++ picked rows", rows.tolist())
ours = KMeans(5, init=init, n_init=1).fit(Z)
theirs = SklearnKMeans(5, init=init, n_init=1, algorithm="lloyd").fit(Z)
print(f"labels equal: {np.array_equal(ours.labels_, theirs.labels_)}; inertia {ours.inertia_:.6f} vs "
      f"{theirs.inertia_:.6f}; iterations {ours.n_iter_} vs {theirs.n_iter_}")

# %% [markdown]
# The flow runs the same comparison as an audit that fails the run on any mismatch:

# %%
model = KMeans(5, n_init=10, random_state=0).fit(Z)
report = audit_kmeans(model, Z)
for finding in report.findings:
    print(f"{'PASS' if finding.passed else 'FAIL'}  {finding.check:42s} {finding.detail}")
assert report.passed

# %% [markdown]
# ## Everything the unit fits
#
# `fit_segments` standardises, fits our k-means, scikit-learn's and a ward hierarchy at k = 5,
# scans k = 2..10, builds the scipy linkage, the PCA and t-SNE views and the selection/extraction
# comparison. (The quick profile uses 3 k-means starts and 500 t-SNE iterations.)

# %%
fit = lesson.fit_segments(mall, k=5, k_max=10, n_init=10, with_gender=False, perplexity=30.0,
                          profile="quick", seed=0)
segments = lesson.segment_table(fit)
pictures = lesson.figures(fit, segments)


def picture(name: str) -> None:
    display(Image(pictures[name], width=620))
    print(lesson.CAPTIONS[name])


# %% [markdown]
# ## Choosing k: elbow and silhouette

# %%
display(fit.k_scan.round(4))
picture("elbow")
picture("silhouette_by_k")

# %% [markdown]
# ## A hierarchy: ward and its dendrogram
#
# Ward merges the two groups whose union adds least within-group variance; cut into 5 groups it
# should find nearly what k-means finds (adjusted Rand index near 1).

# %%
picture("dendrogram")
metrics = lesson.segment_metrics(fit)
print(f"ward vs k-means ARI at k=5: {metrics['ward_vs_kmeans_ari']:.3f}")

# %% [markdown]
# ## The shared evaluation, for clustering
#
# `task="clustering"` takes no targets: silhouette, Calinski-Harabasz, Davies-Bouldin and (for
# k-means) the inertia on all the customers; CV fits on 4/5 of them and scores the held-out fifth
# with the clusters the model predicts for it. The ward hierarchy cannot assign new rows, so it has
# no CV.

# %%
table, results = compare_models(fit.models, fit.Z, None, fit.Z, None, task="clustering", cv=5, fit=False)
display(table[["test_silhouette", "cv_silhouette_mean", "test_calinski_harabasz", "test_davies_bouldin",
               "test_inertia"]].round(4))

# %% [markdown]
# ## The segments in 2-D: PCA (Unit 1) and t-SNE

# %%
picture("segments_pca")
picture("segments_tsne")

# %% [markdown]
# ## Feature selection vs extraction
#
# Two chosen columns (income, spending score) against two PCA components of all three features,
# the same k-means on each.

# %%
display(fit.selection.round(3))
picture("selection_vs_extraction")

# %% [markdown]
# ## The segment table
#
# Size, centroid in original units (the members' means), share of women, and a name from how the
# centroid sits against the population (beyond ±0.5 standard deviations).

# %%
display(segments.round(2))
picture("segments_income_score")

# %% [markdown]
# The same table, figures and this narrative are logged by the flow as `reports/report.md` in its
# MLflow run, published as a Prefect artifact, and shown on the unit's page of the results site.
