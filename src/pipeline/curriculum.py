"""The curriculum outline behind ``mlpath progress``: every unit's topics and challenge, the Phase 5
items, and a box per item ticked from what exists.

The three boxes, each a rule a reader can check by hand:

- **code**: the unit has a flow in ``pipeline.units.UNITS`` (``Unit.flow`` is set). For a Phase 5
  item: its module or document file exists.
- **notes**: a file ``docs/<unit id>*.md`` exists (``docs/unit08_cnn.md``). README rows do not
  count: notes are a page of their own. Design write-ups are their own notes; the portfolio's
  notes are its section in README (the text ``mlpath report``).
- **run**: MLflow holds a successful registered run of the unit (``portfolio.latest_unit_runs``: the
  newest registered model version, or for a unit without a model its newest finished run). For the
  portfolio: a built site at ``MLPATH_HOME/site/index.html``. Design write-ups have no run (``n/a``).

Importing this module is cheap (no MLflow, Prefect or torch); ``progress`` reads MLflow only when
it is not handed the results.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.units import UNITS, Unit

REPO_ROOT = Path(__file__).resolve().parents[2]

PHASES = {
    1: "Mathematical foundations",
    2: "Classical machine learning",
    3: "Deep learning",
    4: "ML in production",
    5: "System design and portfolio",
}


@dataclass(frozen=True)
class OutlineItem:
    """One line of the outline: a unit (``unit`` set) or a Phase 5 item (``paths`` set)."""

    id: str
    phase: int
    title: str
    topics: tuple[str, ...]
    challenge: str
    unit: Unit | None = None
    paths: tuple[str, ...] = ()  # Phase 5: the files that are its code/document, from the repo root


_UNIT_OUTLINE: dict[str, tuple[int, tuple[str, ...], str]] = {
    "unit01": (1, ("vectors, matrices and linear maps", "covariance matrix", "eigendecomposition",
                   "PCA: projection and explained variance"),
               "PCA from scratch on Iris (centre, covariance, eigh, sort, project) equal to "
               "sklearn.decomposition.PCA to 1e-8; a classifier on 2 components against all 4 features."),
    "unit02": (1, ("descriptive statistics", "probability distributions", "sampling and the central limit "
                   "theorem", "confidence intervals and the bootstrap", "hypothesis tests", "Bayes' rule"),
               "Measure rather than fit: describe a real dataset, bootstrap confidence intervals and test a "
               "hypothesis, each number checked against scipy.stats."),
    "unit03": (1, ("derivatives, partial derivatives and the chain rule", "gradients", "gradient descent and "
                   "the learning rate", "momentum and Adam"),
               "Gradient descent on least squares converging to the closed-form solution; optimizers "
               "step for step equal to torch.optim."),
    "unit04": (2, ("entropy and information gain", "recursive tree building", "linear regression (MSE)",
                   "logistic regression (log loss)", "support vector machines"),
               "A decision tree from scratch equal to DecisionTreeClassifier(criterion='entropy') on Iris "
               "and Titanic (same splits where ties allow, both trees printed); linear and logistic "
               "regression by gradient descent beside an SVM."),
    "unit05": (2, ("k-means", "choosing k: elbow and silhouette", "hierarchical clustering", "feature scaling"),
               "Segment the Mall Customers with clustering from scratch, checked against sklearn.cluster, "
               "and describe the segments."),
    "unit06": (2, ("K-fold and stratified cross-validation", "accuracy, precision, recall, F1, ROC AUC",
                   "confusion matrix and ROC curve", "bias and variance", "imbalanced classes"),
               "One evaluation for every model (sklearn, from scratch, torch) on Titanic: CV equal to "
               "sklearn's cross_validate, a validation curve, and when F1/recall beat accuracy."),
    "unit07": (3, ("dense layers and activations", "softmax cross-entropy", "backpropagation",
                   "He/Xavier initialisation", "mini-batch SGD with momentum, learning-rate schedules"),
               "A NumPy neural network on MNIST with backward() equal to torch.autograd (1e-6, float64): "
               ">= 98.0 % test accuracy on the full profile."),
    "unit08": (3, ("convolutions: kernel, stride, padding", "pooling", "batch norm and residual blocks",
                   "data augmentation", "training on CPU and GPU"),
               "CNNs in PyTorch on CIFAR-10: the tutorial net as a baseline and a small residual net "
               ">= 88 % test accuracy."),
    "unit09": (3, ("recurrent networks and backpropagation through time", "vanishing gradients",
                   "LSTM gates", "character-level language models", "time-series forecasting"),
               "An LSTM that writes Tiny Shakespeare and one that forecasts MSFT prices against a "
               "naive last-value baseline."),
    "unit10": (3, ("scaled dot-product attention", "multi-head attention", "positional encoding",
                   "causal masking", "the transformer block"),
               "Attention from scratch equal to torch's scaled_dot_product_attention, in a small "
               "transformer language model."),
    "unit11": (3, ("tokenisation", "pretrained encoders and transfer learning", "fine-tuning schedules",
                   "evaluation on GLUE-style tasks"),
               "Fine-tune a pretrained transformer on SST-2 and compare it with a from-scratch baseline."),
    "unit12": (3, ("generative adversarial networks", "variational autoencoders and the ELBO",
                   "the reparameterisation trick", "latent spaces"),
               "A GAN and a VAE on MNIST: sample grids, latent interpolation, and a measure of sample "
               "quality."),
    "unit13": (4, ("model serving with FastAPI", "input validation", "request batching",
                   "loading from the model registry", "latency and drift monitoring"),
               "Serve the registry's champion behind an API with batching and a drift monitor, and measure "
               "its latency."),
    "unit14": (4, ("group fairness metrics", "demographic parity and equalised odds", "mitigation",
                   "explanations with SHAP"),
               "Audit a model on Adult for fairness by group with fairlearn, mitigate, and explain its "
               "predictions."),
    "unit15": (4, ("data parallelism", "all-reduce", "multi-process and multi-host training",
                   "scaling efficiency"),
               "Data-parallel training across processes, its speed-up measured and its accuracy equal to "
               "the single-process run."),
    "capstone": (4, ("an end-to-end ML system", "validation, training, registry, serving",
                     "monitoring and retraining"),
                 "One system from raw data to a monitored, retrained model in production shape."),
}

PHASE5_ITEMS: tuple[OutlineItem, ...] = (
    OutlineItem("design-fraud", 5, "System design: a real-time fraud-detection service",
                ("streaming features and a feature store", "latency budgets", "imbalanced labels, delayed "
                 "feedback", "failure modes and monitoring"),
                "A design write-up with diagrams, tied to the parts of this project that implement it.",
                paths=("docs/design/fraud_detection.md",)),
    OutlineItem("design-news-feed", 5, "System design: a personalised news feed",
                ("candidate generation and ranking", "user and item features", "freshness and cold start",
                 "online metrics and monitoring"),
                "A design write-up with diagrams, tied to the parts of this project that implement it.",
                paths=("docs/design/news_feed.md",)),
    OutlineItem("portfolio", 5, "The portfolio: a static results site (mlpath report)",
                ("reporting from the registry", "reproducibility: data lineage and commands"),
                "A browsable site of every unit's latest registered run, built from MLflow.",
                paths=("src/pipeline/portfolio.py",)),
)


def outline() -> list[OutlineItem]:
    """Every unit of ``UNITS`` (in order) and then the Phase 5 items."""
    missing = [unit.id for unit in UNITS if unit.id not in _UNIT_OUTLINE]
    if missing:
        raise KeyError(f"no outline for unit(s) {', '.join(missing)}: add them to _UNIT_OUTLINE")
    units = [OutlineItem(unit.id, _UNIT_OUTLINE[unit.id][0], unit.title, _UNIT_OUTLINE[unit.id][1],
                         _UNIT_OUTLINE[unit.id][2], unit=unit) for unit in UNITS]
    return units + list(PHASE5_ITEMS)


@dataclass(frozen=True)
class ProgressRow:
    """One outline item with its boxes: True ticked, False open, None not applicable."""

    item: OutlineItem
    code: bool | None
    notes: bool | None
    run: bool | None
    detail: str = ""

    @property
    def done(self) -> bool:
        return all(box is not False for box in (self.code, self.notes, self.run))


def unit_notes(unit_id: str, root: Path = REPO_ROOT) -> list[Path]:
    """The unit's notes: ``docs/<unit id>*.md``."""
    return sorted((root / "docs").glob(f"{unit_id}*.md"))


def progress(results: Mapping[str, Mapping[str, Any]] | None = None, root: Path = REPO_ROOT,
             site_index: Path | None = None) -> list[ProgressRow]:
    """The outline with its boxes ticked (see the module docstring for the three rules).

    ``results`` maps unit id to its latest successful run (``portfolio.latest_unit_runs``); None reads
    them from the configured MLflow. ``site_index`` defaults to ``MLPATH_HOME/site/index.html``.
    """
    from pipeline import portfolio

    if results is None:
        results = portfolio.latest_unit_runs([unit.id for unit in UNITS])
    if site_index is None:
        site_index = portfolio.default_site_dir() / "index.html"
    rows = []
    for item in outline():
        if item.unit is not None:
            result = results.get(item.id)
            rows.append(ProgressRow(item, item.unit.implemented, bool(unit_notes(item.id, root)),
                                    result is not None, _run_detail(result)))
        elif item.id == "portfolio":
            rows.append(ProgressRow(item, all((root / p).exists() for p in item.paths),
                                    "mlpath report" in _read(root / "README.md"), site_index.exists(),
                                    "site built" if site_index.exists() else ""))
        else:
            written = all((root / p).exists() for p in item.paths)
            rows.append(ProgressRow(item, written, written, None))
    return rows


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _run_detail(result: Mapping[str, Any] | None) -> str:
    if result is None:
        return ""
    metric = result.get("primary_metric")
    value = result.get("metrics", {}).get(metric)
    text = f"{metric} {value:.4f}" if isinstance(value, float) else (metric or "")
    version = f", v{result['version']}" if result.get("version") else ""
    return f"{text} ({result.get('profile') or '?'}{version})"


def _box(state: bool | None) -> str:
    return {True: "[x]", False: "[ ]", None: "n/a"}[state]


def render_progress(rows: list[ProgressRow]):
    """A rich Table of the outline, a section per phase: each item's title, topics and challenge, its
    three boxes, and its latest run."""
    from rich.table import Table
    from rich.text import Text

    done = sum(row.done for row in rows)
    table = Table(title=f"mlpath progress: {done} of {len(rows)} items done", show_lines=True)
    table.add_column("item", style="bold", no_wrap=True)
    table.add_column("title, topics, challenge", ratio=3)
    for box in ("code", "notes", "run"):
        table.add_column(box, justify="center", no_wrap=True)
    table.add_column("latest run", ratio=1, overflow="fold")
    colours = {True: "green", False: "red", None: "dim"}
    phase = None
    for row in rows:
        item = row.item
        if item.phase != phase:
            phase = item.phase
            table.add_row(Text(f"Phase {phase}", style="bold cyan"), Text(PHASES[phase], style="bold cyan"))
        # Text, not markup: titles and challenges may hold brackets that rich would parse
        outline_cell = Text.assemble((item.title, "bold"), "\n", ("topics: " + "; ".join(item.topics), "dim"),
                                     "\n", "challenge: " + item.challenge)
        boxes = [Text(_box(state), style=colours[state]) for state in (row.code, row.notes, row.run)]
        table.add_row(Text(item.id), outline_cell, *boxes, Text(row.detail))
    return table


def print_progress(rows: list[ProgressRow]) -> None:
    from rich.console import Console

    Console().print(render_progress(rows))
