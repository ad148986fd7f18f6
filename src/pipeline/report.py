"""What a unit run hands to the register stage: metrics, model, data lineage, figures, tables."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

# A document's link to one of the report's figures: ``![alt](figures/<name>.png)``.
FIGURE_LINK = re.compile(r"!\[[^\]]*\]\(figures/([^)]+)\.png\)")


@dataclass(frozen=True)
class ExtraModel:
    """A second model a unit registers beside its main one (e.g. Unit 12's GAN generator beside its
    VAE): registered as ``<main model name>-<key>`` and promoted on its own logged ``metric``."""

    model: Any
    metric: str
    greater_is_better: bool = True
    example: Any | None = None


@dataclass
class UnitReport:
    """Everything one unit run produced, in the shape MLflow and Prefect artifacts want.

    ``metrics`` are flat floats (logged as MLflow metrics); ``figures`` are PNG bytes by name and
    ``captions`` what to look for in them, by the same names (logged as ``figures/captions.json``;
    the results site prints each under its figure; the shared evaluation's figures come with
    theirs); ``tables`` are DataFrames by name; ``histories`` per-epoch training metrics by model
    (a list of dicts or a dict of lists), logged as MLflow metric histories; ``notes`` is markdown
    for the run summary. ``documents`` are Markdown reports by name (a unit's deliverable document:
    question, figures, analysis, conclusion) that show figures as ``![alt](figures/<name>.png)``,
    ``<name>`` a key of ``figures``; logged as ``reports/<name>.md`` beside the figures, published
    as a Prefect markdown artifact with the figures inlined, and rendered on the unit's page.
    ``model`` is the estimator to register (None for units that measure
    rather than fit), ``model_example`` a few input rows for its signature. ``holdout`` is the
    (X_test, y_test) the model's evaluation scored: promotion scores the current champion on it too,
    so the two are compared on the same rows (kept in memory, not logged; only its row count and a
    digest are tagged on the model version). ``model_name`` is the registered model's name (the
    spec's, ``mlpath-<unit>`` by default); ``extra_models`` more models to register, by key.
    ``files`` are other artifacts as bytes by relative path (an animated GIF, per-epoch images),
    logged under ``files/`` as they are; a GIF among them is also shown in the Prefect figures artifact
    and on the results site, captioned by ``captions[<its path>]``.
    """

    unit: str
    primary_metric: str
    greater_is_better: bool
    params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    data_refs: list[Any] = field(default_factory=list)
    model: Any | None = None
    model_example: Any | None = None
    figures: dict[str, bytes] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    documents: dict[str, str] = field(default_factory=dict)
    histories: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    holdout: tuple[Any, Any] | None = None
    model_name: str | None = None
    extra_models: dict[str, ExtraModel] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def for_unit(cls, unit, params, evaluation, audits: dict[str, Any], *, class_names=None,
                 **fields) -> UnitReport:
        """A unit's report: its registered model's evaluation and its audits, plus ``fields``.

        ``unit`` is a ``pipeline.units.Unit``, ``params`` its pydantic parameters, ``audits`` the
        audit reports by label; ``class_names`` name the evaluation's classes in its figures (see
        ``EvaluationResult.figures``).
        """
        fields.setdefault("model_name", unit.model_name)
        report = cls(unit.id, unit.primary_metric, unit.greater_is_better, params.model_dump(), **fields)
        report.add_evaluation(evaluation, class_names=class_names)
        for label, audit in audits.items():
            report.add_audit(audit, label)
        return report

    def add_evaluation(self, result, prefix: str = "", class_names=None) -> None:
        """Metrics, figures (with their captions) and table of one Unit 6 evaluation, names
        prefixed by ``prefix``; ``class_names`` as ``EvaluationResult.figures`` takes them. An
        evaluation with a fairness audit (its dataset declares sensitive columns) adds its
        ``fairness_*`` metrics, group tables and findings: the fairness section."""
        from pipeline.plots import figure_to_png

        self.metrics.update({f"{prefix}{k}": float(v) for k, v in result.metrics.items()})
        for name, fig in result.figures(class_names).items():
            self.figures[f"{prefix}{name}"] = figure_to_png(fig)
        for name, caption in result.captions(class_names).items():
            self.captions.setdefault(f"{prefix}{name}", caption)
        self.tables[f"{prefix}evaluation"] = result.table()
        fairness = getattr(result, "fairness", None)
        if fairness is not None:
            self.metrics.update(fairness.metrics(prefix))
            self.tables.update(fairness.tables(prefix))
            self.add_audit(fairness.report, prefix.rstrip("_"))

    def add_audit(self, audit, label: str = "") -> None:
        """The audit's findings as a table; ``label`` tells apart two audits of one kind."""
        self.tables[f"audit: {audit.subject}" + (f" ({label})" if label else "")] = audit.table()

    def document_figures(self, name: str) -> list[str]:
        """The figures document ``name`` shows (``figures/<figure>.png`` links), in order."""
        return FIGURE_LINK.findall(self.documents[name])

    @property
    def registered_name(self) -> str:
        """The name the main model registers under."""
        return self.model_name or f"mlpath-{self.unit}"

    @property
    def primary_value(self) -> float:
        try:
            return self.metrics[self.primary_metric]
        except KeyError:
            raise KeyError(
                f"{self.unit}: primary metric {self.primary_metric!r} was not computed; "
                f"metrics are {sorted(self.metrics)}"
            ) from None

    def summary_markdown(self) -> str:
        """A short markdown summary: the primary metric, the data used, the notes, the tables."""
        lines = [
            f"# {self.unit}",
            "",
            f"**{self.primary_metric}** = {self.primary_value:.4f}",
            "",
            "## Data",
            "",
            "| dataset | version | rows | source | profile |",
            "|---|---|---|---|---|",
        ]
        for ref in self.data_refs:
            d = ref.as_dict()
            lines.append(f"| {d['name']} | `{d['version'][:12]}` | {d['rows']} | {d['source']} | {d['profile']} |")
        if self.notes:
            lines += ["", self.notes.strip()]
        for name, table in self.tables.items():
            lines += ["", f"## {name}", "", markdown_table(table, floatfmt=".4f")]
        return "\n".join(lines) + "\n"


def markdown_table(table: pd.DataFrame, **options) -> str:
    """``table`` as a Markdown (pipe) table as a person reads it (`display_frame`), a ``|`` inside
    a cell or a header escaped so that "P(survived | female)" stays one cell; ``options`` go to
    ``DataFrame.to_markdown`` (``floatfmt=".4f"``)."""
    frame = display_frame(table)
    frame = frame.rename(columns=_escape_pipes)
    text_columns = [c for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])]
    frame = frame.assign(**{c: frame[c].map(_escape_pipes) for c in text_columns})
    return frame.to_markdown(index=False, **options)


def _escape_pipes(value):
    return value.replace("|", "\\|") if isinstance(value, str) else value


def display_frame(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` as a person reads it: no pandas index column (a plain 0..n-1 index is dropped, a
    meaningful one such as model or class names becomes the first column, named after the index or
    "name"), and counts as counts (a numeric column whose values are all whole shows 150, not 150.0)."""
    frame = table
    if not (isinstance(frame.index, pd.RangeIndex) and frame.index.name is None):
        frame = frame.reset_index(names=[str(n) if n is not None else "name" for n in frame.index.names])
    whole = [column for column in frame.columns if _whole_numbers(frame[column])]
    return frame.astype({column: "Int64" for column in whole}) if whole else frame


def _whole_numbers(column: pd.Series) -> bool:
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return False
    values = column.dropna()
    return bool(len(values)) and bool((values == values.round()).all())
