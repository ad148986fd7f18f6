"""The portfolio: a static HTML site of every unit's latest registered run, built from MLflow.

``build_site(out_dir)`` writes ``index.html`` (the whole results table) and one page per unit with
a run, ``units/<unit>/index.html``, with the run's figures copied beside it and its tables inlined.
A unit page teaches: its figures with captions saying what to look for (``figures/captions.json``
of the run), "What you learned" and "Try next" from the unit's spec, the spec's from-scratch
source files copied beside the page as HTML (``units/<unit>/source/``, so the site works far from
the checkout), the lesson notes (the spec's ``notes`` markdown) and what the quick profile meant
for this unit; then the comparison with the library twins, tables, data, and every metric last.
The site reads from disk with no server, loads nothing from the network and uses no JavaScript.
The pages are Jinja2 templates (``templates/site/``, every value autoescaped); notes are
CommonMark with tables, raw HTML and images off.

Reference numbers (each unit spec's ``references``) are published results from elsewhere, shown
next to ours for scale; this project did not measure them, and their data or split may differ.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import struct
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markdown_it import MarkdownIt
from markupsafe import Markup

from pipeline import settings
from pipeline.units import UnitSpec, all_units, get_unit

SITE_DIR_NAME = "site"
_AUDIT_PREFIX = "audit:"
REPO_ROOT = Path(__file__).resolve().parents[3]  # the checkout: notes and sources are read from it
_WIDE_FIGURE_PX = 760  # a PNG wider than this gets a row of its own on the page


def default_site_dir() -> Path:
    """Where ``mlpath report`` writes the site unless told: ``MLPATH_HOME/site``."""
    return settings.mlpath_home() / SITE_DIR_NAME


def latest_unit_runs(unit_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per unit with a successful registered run: ``registry.latest_results``' entry (its newest
    complete model version: a failed or killed registration is never shown).

    Units that register no model (they measure rather than fit) get their experiment's newest
    finished run instead, with ``model``, ``version`` and ``champion_version`` None; a run that
    registers a model (tagged ``RUN_MODEL_TAG``) is shown only through its complete version.
    """
    from pipeline.registry import RUN_MODEL_TAG, client, latest_results

    results = latest_results(unit_ids)
    mlflow_client = client()
    for unit_id in unit_ids:
        if unit_id in results:
            continue
        experiment = mlflow_client.get_experiment_by_name(f"mlpath-{unit_id}")
        if experiment is None:
            continue
        runs = mlflow_client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'",
                                         order_by=["attributes.start_time DESC"], max_results=50)
        run = next((r for r in runs if not r.data.tags.get(RUN_MODEL_TAG)), None)
        if run is not None:
            results[unit_id] = {
                "model": None, "version": None, "aliases": [], "champion_version": None,
                "run_id": run.info.run_id,
                "profile": run.data.tags.get("mlpath.profile"),
                "primary_metric": run.data.tags.get("mlpath.primary_metric"),
                "metrics": dict(sorted(run.data.metrics.items())),
            }
    return {unit_id: results[unit_id] for unit_id in unit_ids if unit_id in results}


@dataclass
class UnitPage:
    """What one unit's page shows: its latest run as read back from MLflow."""

    unit: UnitSpec
    result: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    started: datetime | None = None
    figures: dict[str, Path] = field(default_factory=dict)  # figure name -> downloaded PNG or GIF
    captions: dict[str, str] = field(default_factory=dict)  # figure name -> what to look for
    tables: dict[str, Any] = field(default_factory=dict)  # name -> DataFrame
    texts: dict[str, str] = field(default_factory=dict)
    documents: dict[str, str] = field(default_factory=dict)  # name -> markdown (reports/<name>.md)
    data_refs: list[dict[str, Any]] = field(default_factory=list)
    notes: str = ""

    @property
    def primary_metric(self) -> str | None:
        return self.result.get("primary_metric") or self.unit.primary_metric

    @property
    def primary_value(self) -> float | None:
        return self.result["metrics"].get(self.primary_metric) if self.primary_metric else None

    @property
    def profile(self) -> str:
        return self.result.get("profile") or self.params.get("profile", "")

    @property
    def metric_names(self) -> list[str]:
        """The run's metrics, the primary one first."""
        metrics, primary = self.result["metrics"], self.primary_metric
        return ([primary] if primary in metrics else []) + [m for m in metrics if m != primary]


def build_site(out_dir: Path) -> Path:
    """Write the portfolio under ``out_dir`` from the configured MLflow; return index.html's path.

    Each unit's folder (``units/<unit>/``) is rewritten whole, so no stale figure survives; nothing
    else under ``out_dir`` is removed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = latest_unit_runs([unit.id for unit in all_units()])
    pages: dict[str, UnitPage] = {}
    with tempfile.TemporaryDirectory(prefix="mlpath-site-") as tmp, _no_download_progress_bars():
        for unit_id, result in results.items():
            page = _read_run(get_unit(unit_id), result, Path(tmp) / unit_id)
            folder = out_dir / "units" / unit_id
            if folder.exists():
                shutil.rmtree(folder)
            (folder / "figures").mkdir(parents=True)
            sources = _write_sources(page.unit, folder / "source")
            _write(folder / "index.html", _unit_html(page, _copy_figures(page, folder / "figures"), sources))
            pages[unit_id] = page
    index = out_dir / "index.html"
    _write(index, _index_html(pages))
    return index


@contextmanager
def _no_download_progress_bars():
    """MLflow draws a progress bar per artifact download: a dozen bars per unit on the terminal."""
    variable = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(variable)
    os.environ[variable] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = before


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _read_run(unit: UnitSpec, result: dict[str, Any], download_dir: Path) -> UnitPage:
    """The run's params, tags and artifacts (figures, tables, texts, data refs, notes)."""
    import pandas as pd

    from pipeline.registry import client

    mlflow_client = client()
    run = mlflow_client.get_run(result["run_id"])
    download_dir.mkdir(parents=True)
    root = Path(mlflow_client.download_artifacts(result["run_id"], "", str(download_dir)))
    page = UnitPage(unit, result, params=dict(run.data.params), tags=dict(run.data.tags),
                    started=datetime.fromtimestamp(run.info.start_time / 1000, UTC))
    images = {png.stem: png for png in sorted((root / "figures").glob("*.png"))}
    files = root / "files"
    for gif in sorted(files.rglob("*.gif")):  # animations logged as files, named by their path
        images.setdefault(gif.relative_to(files).with_suffix("").as_posix().replace("/", "-"), gif)
    captions_file = root / "figures" / "captions.json"
    if captions_file.exists():  # the report's figure order, and a caption for each
        page.captions = {name: text for name, text in json.loads(captions_file.read_text(encoding="utf-8")).items()
                         if name in images}
    page.figures = {name: images[name] for name in page.captions} | images
    page.tables = {csv.stem: pd.read_csv(csv, index_col=0) for csv in sorted((root / "tables").glob("*.csv"))}
    page.texts = {txt.stem: txt.read_text(encoding="utf-8") for txt in sorted(root.glob("*.txt"))}
    page.documents = {md.stem: md.read_text(encoding="utf-8") for md in sorted((root / "reports").glob("*.md"))}
    if (root / "data_refs.json").exists():
        page.data_refs = json.loads((root / "data_refs.json").read_text(encoding="utf-8"))
    if (root / "summary.md").exists():
        page.notes = notes_from_summary((root / "summary.md").read_text(encoding="utf-8"),
                                        list(page.tables))
    return page


def notes_from_summary(summary: str, table_files: list[str] = ()) -> str:
    """The unit's own notes inside ``UnitReport.summary_markdown()``: after the data table, up to
    the first table's section (``## <table name>``); notes may have headings of their own.

    ``table_files`` are the run's table file stems, named as the registry names them ("/" -> "-").
    """
    lines = summary.splitlines()
    try:
        i = lines.index("## Data") + 1
    except ValueError:
        return ""
    while i < len(lines) and (not lines[i].strip() or lines[i].startswith("|")):
        i += 1
    notes = []
    for line in lines[i:]:
        if line.startswith("## ") and line[3:].replace("/", "-") in table_files:
            break
        notes.append(line)
    return "\n".join(notes).strip()


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "figure"


@dataclass(frozen=True)
class FigureView:
    """A figure as the page shows it: a title from its name, the copied PNG, its caption."""

    name: str
    src: str  # relative to the page
    caption: str
    wide: bool

    @property
    def title(self) -> str:
        return figure_title(self.name)


_ACRONYMS = {"roc": "ROC", "pca": "PCA", "mlp": "MLP", "cnn": "CNN", "cv": "CV", "2d": "2-D"}


def figure_title(name: str) -> str:
    """A figure's name as a title: "confusion_matrix" -> "Confusion matrix", "roc_curve" -> "ROC curve"."""
    text = " ".join(_ACRONYMS.get(word, word) for word in name.replace("_", " ").split())
    return text[:1].upper() + text[1:]


def _copy_figures(page: UnitPage, folder: Path) -> list[FigureView]:
    """Copy the PNGs (and GIFs) under file names safe in any URL, in the report's order, with their captions."""
    copied: list[FigureView] = []
    for figure, image in page.figures.items():
        name, n, suffix = _slug(figure), 1, image.suffix.lower()
        while (folder / f"{name}{suffix}").exists():
            n += 1
            name = f"{_slug(figure)}-{n}"
        shutil.copyfile(image, folder / f"{name}{suffix}")
        copied.append(FigureView(figure, f"figures/{name}{suffix}", page.captions.get(figure, ""),
                                 _image_width(image) > _WIDE_FIGURE_PX))
    return copied


def _image_width(image: Path) -> int:
    """Width in pixels from a PNG header (IHDR) or a GIF's logical screen; 0 for anything else."""
    with image.open("rb") as file:
        head = file.read(24)
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">I", head[16:20])[0]
    return struct.unpack("<H", head[6:8])[0] if head[:6] in (b"GIF87a", b"GIF89a") else 0


@dataclass(frozen=True)
class SourceLink:
    """One of the unit's from-scratch source files: its path in the repository and, when it was
    found and copied, the HTML copy's path relative to the unit page."""

    path: str
    href: str | None


def _write_sources(unit: UnitSpec, folder: Path, root: Path = REPO_ROOT) -> list[SourceLink]:
    """Copy each of the spec's ``sources`` as an HTML page (the text escaped, lines numbered)."""
    links = []
    for path in unit.sources:
        source = root / path
        if not source.is_file():
            links.append(SourceLink(path, None))
            continue
        folder.mkdir(exist_ok=True)
        name = f"{_slug(path)}.html"
        _write(folder / name, _templates().get_template("source.html").render(
            unit=unit, path=path, lines=source.read_text(encoding="utf-8").splitlines()))
        links.append(SourceLink(path, f"source/{name}"))
    return links


def lesson_notes(unit: UnitSpec, root: Path = REPO_ROOT) -> str:
    """The unit's notes (its spec's ``notes`` markdown) without their title, "" when missing: the
    page has the unit's title already."""
    if unit.notes is None or not (root / unit.notes).is_file():
        return ""
    lines = (root / unit.notes).read_text(encoding="utf-8").splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(lines).strip()


def profile_note(page: UnitPage) -> str:
    """What the run's profile meant for this unit, from its data references (rows, profile, and
    the catalog's quick sizes) and the spec's ``quick``; "" for a full run."""
    if page.profile != "quick":
        return ""
    from pipeline.data import DATASETS

    whole, subsets = [], []
    for ref in page.data_refs:
        name, rows = ref.get("name", ""), ref.get("rows")
        rows = f"{rows:,} rows" if isinstance(rows, int) else "its rows"
        sizes = dict(DATASETS[name].quick_sizes) if name in DATASETS else {}
        if sizes and ref.get("profile") == "quick":
            splits = ", ".join(f"{n:,} {split}" for split, n in sizes.items())
            subsets.append(f"{name}, {rows} drawn at random: {splits}")
        else:
            whole.append(f"{name}, {rows}")
    if not page.data_refs:
        return "Quick profile: a smoke run; the full profile gives the numbers to quote."
    if not subsets and not page.unit.quick:
        return (f"Quick profile, with the data whole ({'; '.join(whole)}) and the same settings as the full "
                "profile: the numbers are the unit's results.")
    parts = ([f"a subset of the data ({'; '.join(subsets)})"] if subsets else []) + \
            ([f"the whole of {'; '.join(whole)}"] if whole else []) + \
            ([page.unit.quick] if page.unit.quick else [])
    return ("Quick profile: " + "; ".join(parts) + ". A smoke run, not the unit's result: the full profile "
            "gives the numbers to quote.")


def reproduce_command(unit_id: str, profile: str, params: dict[str, str]) -> str:
    """The ``mlpath run`` line that repeats a run: its profile plus ``--set`` for every parameter the
    run changed from the profile's defaults (read from MLflow's string-valued params)."""
    parts = ["mlpath", "run", unit_id, "--profile", profile or "full"]
    if params:
        defaults = get_unit(unit_id).params(profile=profile or "full").model_dump()
        for key, default in defaults.items():
            if key == "profile" or key not in params:
                continue
            if key == "data_files":
                files = json.loads(params[key]) if params[key] else {}
                parts += [f"--set data_files.{name}={shlex.quote(path)}" for name, path in sorted(files.items())]
                continue
            if params[key] != _mlflow_param(default):
                value = "null" if params[key] == "None" else params[key]
                parts.append(f"--set {key}={shlex.quote(value)}")
    return " ".join(parts)


def _mlflow_param(value: Any) -> str:
    """A parameter as MLflow stores it (see ``registry._param_value``)."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list, tuple)) else str(value)


# --- HTML -------------------------------------------------------------------------------------

# CommonMark as the notes are written; their raw HTML is shown as text, and images are off because
# the site loads nothing from the network.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table").disable("image")


@cache
def _templates() -> Environment:
    env = Environment(loader=PackageLoader("pipeline.app", "templates/site"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["value"] = format_value
    env.filters["markdown"] = markdown_html
    return env


def format_value(value: Any) -> str:
    """Numbers as the site shows them: counts plainly, scores to four decimals; NaN as a dash.

    A float that is a whole number above 1 (a depth, an epoch) is a count; 0.0 and 1.0 are scores.
    """
    if value is None or isinstance(value, bool):
        return "—" if value is None else str(value)
    if isinstance(value, float) and value != value:
        return "—"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) > 1):
        return f"{int(value):,}" if abs(value) >= 10_000 else str(int(value))
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 1_000 else f"{value:.4f}"
    return str(value)


def markdown_html(text: str) -> Markup:
    """Unit notes (markdown) as HTML, headings from ``<h3>`` down: the page's sections are ``<h2>``."""
    tokens = _MARKDOWN.parse(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(max(int(token.tag[1]) + 1, 3), 6)}"
    return Markup(_MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {}))


def document_html(text: str, figures: list[FigureView]) -> Markup:
    """A run's report document (``reports/<name>.md``) as HTML: like the notes, with its images,
    which are the run's own figures (``../figures/<file>.png`` as logged), shown from the page's
    copies; an image pointing anywhere else is left out (its alt text stays)."""
    sources = {f"../figures/{figure.name}.png": figure.src for figure in figures}
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):  # its "# title" under the page's <h2>
            token.tag = f"h{min(int(token.tag[1]) + 2, 6)}"
        for child in token.children or ():
            if child.type == "image":
                src = sources.get(str(child.attrGet("src")))
                if src is None:
                    child.type, child.tag, child.content, child.children = "text", "", child.content, None
                else:
                    child.attrSet("src", src)
    return Markup(md.renderer.render(tokens, md.options, {}))


@dataclass(frozen=True)
class FrameTable:
    """A DataFrame as the site's tables show it: Python values, its index as a first column of row
    headers unless that index is a plain 0..n-1."""

    columns: list[str]
    rows: list[tuple[Any, list[Any]]]  # (index label, cell values)
    labelled: bool

    @classmethod
    def of(cls, frame) -> FrameTable:
        import pandas as pd

        plain_index = frame.index.name is None and frame.index.equals(pd.RangeIndex(len(frame)))
        columns = ([] if plain_index else [frame.index.name or ""]) + [str(c) for c in frame.columns]
        rows = [(label, [v.item() if hasattr(v, "item") else v for v in values])
                for label, values in zip(frame.index, frame.itertuples(index=False))]
        return cls(columns, rows, not plain_index)


def _unit_html(page: UnitPage, figures: list[FigureView], sources: list[SourceLink]) -> str:
    audits = {name[len(_AUDIT_PREFIX):].strip(): FrameTable.of(frame)
              for name, frame in page.tables.items() if name.startswith(_AUDIT_PREFIX)}
    tables = {name: FrameTable.of(frame)
              for name, frame in page.tables.items() if not name.startswith(_AUDIT_PREFIX)}
    return _templates().get_template("unit.html").render(
        page=page, unit=page.unit, figures=figures, audits=audits, tables=tables, sources=sources,
        documents={name: document_html(text, figures) for name, text in page.documents.items()},
        command=reproduce_command(page.unit.id, page.profile, page.params),
        references=page.unit.references, lesson=lesson_notes(page.unit), profile_note=profile_note(page))


def _index_html(pages: dict[str, UnitPage]) -> str:
    return _templates().get_template("index.html").render(
        units=all_units(), pages=pages, tracking_uri=settings.tracking_uri(),
        built=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
