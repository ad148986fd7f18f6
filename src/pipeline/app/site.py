"""The portfolio: a static HTML site of every unit's latest registered run, built from MLflow.

``build_site(out_dir)`` writes ``index.html`` (the whole results table) and one page per unit with
a run, ``units/<unit>/index.html``, with the run's figures copied beside it and its tables inlined.
The site reads from disk with no server, loads nothing from the network and uses no JavaScript.

Reference numbers (``REFERENCE_NUMBERS``) are published results from elsewhere, shown next to
ours for scale; this project did not measure them, and their data or split may differ from ours.
"""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import settings
from pipeline.units import UNITS, Unit, get_unit

SITE_DIR_NAME = "site"
_AUDIT_PREFIX = "audit:"


@dataclass(frozen=True)
class Reference:
    """A published number to set beside ours: what it measures, the value as published, where."""

    quantity: str
    value: str
    source: str
    metric: str | None = None  # our MLflow metric it compares with, if any


_TITANIC = (
    Reference("Kaggle Titanic accuracy of the gender-only baseline (gender_submission.csv)", "0.7655",
              "Kaggle, “Titanic – Machine Learning from Disaster”, public leaderboard score of the "
              "sample submission; measured on Kaggle's hidden test set, not our hold-out",
              "test_accuracy"),
    Reference("Kaggle Titanic accuracy of typical tuned tree or linear models", "≈ 0.78–0.80",
              "Kaggle Titanic public leaderboard and tutorials, a community range, approximate",
              "test_accuracy"),
)
REFERENCE_NUMBERS: dict[str, tuple[Reference, ...]] = {
    "unit01": (
        Reference("PC1 explained-variance ratio on Iris", "0.9246",
                  "scikit-learn documentation, example “Comparison of LDA and PCA 2D projection of "
                  "Iris dataset”: explained variance ratio [0.92461872, 0.05306648]",
                  "explained_variance_ratio_pc1"),
        Reference("PC2 explained-variance ratio on Iris", "0.0531", "same example",
                  "explained_variance_ratio_pc2"),
    ),
    "unit04": _TITANIC,
    "unit06": _TITANIC,
    "unit07": (
        Reference("MNIST test accuracy of an MLP (784-512-512-10, dropout, RMSprop, 20 epochs)", "0.9840",
                  "Keras examples, mnist_mlp.py: “Gets to 98.40% test accuracy after 20 epochs”",
                  "test_accuracy"),
    ),
    "unit08": (
        Reference("CIFAR-10 test accuracy of the tutorial CNN (our Model A)", "≈ 0.54",
                  "PyTorch tutorial “Training a Classifier” (2 epochs; the printed value varies by run)",
                  "model_a_test_accuracy"),
        Reference("CIFAR-10 test accuracy of ResNet-9 (our Model B is of this kind)", "0.94",
                  "D. Page (Myrtle.ai), “How to train your ResNet”, DAWNBench CIFAR-10 entry; "
                  "official images, while ours are the mirror's JPEG re-encoding",
                  "test_accuracy"),
    ),
    "unit11": (
        Reference("SST-2 dev accuracy of DistilBERT fine-tuned", "0.913",
                  "Sanh et al. 2019, “DistilBERT, a distilled version of BERT”, Table 1 (GLUE dev)",
                  "test_accuracy"),
        Reference("SST-2 dev accuracy of BERT-base fine-tuned", "0.927", "same table", "test_accuracy"),
    ),
    "unit14": (
        Reference("Adult test accuracy of C4.5 (error 15.54 %)", "0.8446",
                  "UCI Adult data set, adult.names (MLC++ runs on the original train/test split)",
                  "test_accuracy"),
        Reference("Adult test accuracy of NBTree (error 14.10 %)", "0.8590", "same file", "test_accuracy"),
        Reference("Adult test accuracy of Naive Bayes (error 16.12 %)", "0.8388", "same file",
                  "test_accuracy"),
    ),
}


def default_site_dir() -> Path:
    """Where ``mlpath report`` writes the site unless told: ``MLPATH_HOME/site``."""
    return settings.mlpath_home() / SITE_DIR_NAME


def latest_unit_runs(unit_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per unit with a successful registered run: ``registry.latest_results``' entry.

    Units that register no model (they measure rather than fit) get their experiment's newest
    finished run instead, with ``model``, ``version`` and ``champion_version`` None.
    """
    from pipeline.registry import client, latest_results

    results = latest_results(unit_ids)
    mlflow_client = client()
    for unit_id in unit_ids:
        if unit_id in results:
            continue
        experiment = mlflow_client.get_experiment_by_name(f"mlpath-{unit_id}")
        if experiment is None:
            continue
        runs = mlflow_client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'",
                                         order_by=["attributes.start_time DESC"], max_results=1)
        if runs:
            run = runs[0]
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

    unit: Unit
    result: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    started: datetime | None = None
    figures: dict[str, Path] = field(default_factory=dict)  # caption -> downloaded PNG
    tables: dict[str, Any] = field(default_factory=dict)  # name -> DataFrame
    texts: dict[str, str] = field(default_factory=dict)
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


def build_site(out_dir: Path) -> Path:
    """Write the portfolio under ``out_dir`` from the configured MLflow; return index.html's path.

    Each unit's folder (``units/<unit>/``) is rewritten whole, so no stale figure survives; nothing
    else under ``out_dir`` is removed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = latest_unit_runs([unit.id for unit in UNITS])
    pages: dict[str, UnitPage] = {}
    with tempfile.TemporaryDirectory(prefix="mlpath-site-") as tmp, _no_download_progress_bars():
        for unit_id, result in results.items():
            page = _read_run(get_unit(unit_id), result, Path(tmp) / unit_id)
            folder = out_dir / "units" / unit_id
            if folder.exists():
                shutil.rmtree(folder)
            (folder / "figures").mkdir(parents=True)
            _write(folder / "index.html", _unit_html(page, _copy_figures(page, folder / "figures")))
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


def _read_run(unit: Unit, result: dict[str, Any], download_dir: Path) -> UnitPage:
    """The run's params, tags and artifacts (figures, tables, texts, data refs, notes)."""
    import pandas as pd

    from pipeline.registry import client

    mlflow_client = client()
    run = mlflow_client.get_run(result["run_id"])
    download_dir.mkdir(parents=True)
    root = Path(mlflow_client.download_artifacts(result["run_id"], "", str(download_dir)))
    page = UnitPage(unit, result, params=dict(run.data.params), tags=dict(run.data.tags),
                    started=datetime.fromtimestamp(run.info.start_time / 1000, UTC))
    page.figures = {png.stem: png for png in sorted((root / "figures").glob("*.png"))}
    page.tables = {csv.stem: pd.read_csv(csv, index_col=0) for csv in sorted((root / "tables").glob("*.csv"))}
    page.texts = {txt.stem: txt.read_text(encoding="utf-8") for txt in sorted(root.glob("*.txt"))}
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


def _copy_figures(page: UnitPage, folder: Path) -> dict[str, str]:
    """Copy the PNGs under file names safe in any URL; caption -> path relative to the page."""
    copied: dict[str, str] = {}
    for caption, png in page.figures.items():
        name, n = _slug(caption), 1
        while (folder / f"{name}.png").exists():
            n += 1
            name = f"{_slug(caption)}-{n}"
        shutil.copyfile(png, folder / f"{name}.png")
        copied[caption] = f"figures/{name}.png"
    return copied


def reproduce_command(unit_id: str, profile: str, params: dict[str, str]) -> str:
    """The ``mlpath run`` line that repeats a run: its profile plus ``--set`` for every parameter the
    run changed from the profile's defaults (read from MLflow's string-valued params)."""
    from pipeline.params import PARAMS

    parts = ["mlpath", "run", unit_id, "--profile", profile or "full"]
    model = PARAMS.get(unit_id)
    if model is not None and params:
        defaults = model(profile=profile or "full").model_dump()
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

_CSS = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 0 1.5rem 3rem;
       color: #1d2330; }
header { border-bottom: 2px solid #2b5ea7; margin-bottom: 1rem; }
h1 { font-size: 1.6rem; margin: 1.2rem 0 .3rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
h3 { font-size: 1rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #cfd6e0; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #eef2f8; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.primary td { font-weight: 600; background: #fff8e1; }
.pass { color: #1b7a36; font-weight: 600; } .fail { color: #b3261e; font-weight: 600; }
.muted { color: #6b7380; }
.external { border-left: 4px solid #c77d00; background: #fffaf0; padding: .2rem 1rem; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; max-width: 520px; } figure img { max-width: 100%; border: 1px solid #cfd6e0; }
figcaption { font-size: .85rem; color: #4a5260; }
pre { background: #f4f6f9; padding: .6rem .8rem; overflow-x: auto; font-size: .85rem; }
code { font-family: ui-monospace, monospace; }
nav a { margin-right: 1rem; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


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


def _document(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _table(columns: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    """An HTML table; ``rows`` hold cells that are already HTML (escape before passing)."""
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(row) + "</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return f'<td class="{"pass" if value else "fail"}">{"✓ pass" if value else "✗ fail"}</td>'
    if isinstance(value, (int, float)):
        return f'<td class="num">{_e(format_value(value))}</td>'
    return f"<td>{_e(value)}</td>"


def frame_html(frame) -> str:
    """A DataFrame as an escaped HTML table; a plain 0..n-1 index is left out."""
    import pandas as pd

    plain_index = frame.index.name is None and frame.index.equals(pd.RangeIndex(len(frame)))
    columns = ([] if plain_index else [frame.index.name or ""]) + [str(c) for c in frame.columns]
    rows = []
    for index, values in zip(frame.index, frame.itertuples(index=False)):
        cells = [] if plain_index else [f"<th>{_e(index)}</th>"]
        cells += [_cell(v.item() if hasattr(v, "item") else v) for v in values]
        rows.append(cells)
    return _table(columns, rows)


def _inline_markdown(text: str) -> str:
    """Escape, then render the two inline forms unit notes use: **bold** and `code`."""
    escaped = _e(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def _notes_html(notes: str) -> str:
    """Unit notes (markdown) as HTML: headings, paragraphs, bullet lists; tables stay preformatted."""
    blocks = []
    for block in re.split(r"\n\s*\n", notes.strip()):
        lines = block.splitlines()
        while lines and lines[0].startswith("#"):
            blocks.append(f"<h3>{_inline_markdown(lines.pop(0).lstrip('#').strip())}</h3>")
        if not lines:
            continue
        if all(line.lstrip().startswith("|") for line in lines):
            blocks.append(f"<pre>{_e(chr(10).join(lines))}</pre>")
        elif all(line.lstrip().startswith(("- ", "* ")) for line in lines):
            items = "".join(f"<li>{_inline_markdown(line.lstrip()[2:])}</li>" for line in lines)
            blocks.append(f"<ul>{items}</ul>")
        else:
            blocks.append(f"<p>{_inline_markdown(' '.join(lines))}</p>")
    return "\n".join(blocks)


def _metrics_html(page: UnitPage) -> str:
    metrics = page.result["metrics"]
    primary = page.primary_metric
    names = ([primary] if primary in metrics else []) + [m for m in metrics if m != primary]
    rows = [[f"<td><code>{_e(m)}</code>{' (primary)' if m == primary else ''}</td>", _cell(metrics[m])]
            for m in names]
    return _table(["metric", "value"], rows, ["primary" if m == primary else "" for m in names])


def _references_html(page: UnitPage) -> str:
    references = REFERENCE_NUMBERS.get(page.unit.id, ())
    if not references:
        return ""
    rows = []
    for ref in references:
        ours = page.result["metrics"].get(ref.metric) if ref.metric else None
        ours_cell = (f'<td class="num">{_e(format_value(ours))} <span class="muted">'
                     f"(<code>{_e(ref.metric)}</code>)</span></td>") if ours is not None else "<td>—</td>"
        rows.append([f"<td>{_e(ref.quantity)}</td>", f'<td class="num">{_e(ref.value)}</td>',
                     ours_cell, f"<td>{_e(ref.source)}</td>"])
    return ('<section class="external">\n<h2>Published reference numbers (external)</h2>\n'
            "<p>These numbers come from the sources named, not from this project's runs; their data, "
            "splits and training budgets differ from ours. They are here for scale only.</p>\n"
            + _table(["quantity", "published", "ours (this run)", "source"], rows) + "\n</section>")


def _data_html(page: UnitPage) -> str:
    if not page.data_refs:
        return "<p class=\"muted\">This run recorded no data references.</p>"
    rows = [[f"<td>{_e(ref.get('name', ''))}</td>", f"<td><code>{_e(str(ref.get('version', ''))[:16])}</code></td>",
             _cell(ref.get("rows", "")), f"<td>{_e(ref.get('source', ''))}</td>",
             f"<td>{_e(ref.get('profile', ''))}</td>"] for ref in page.data_refs]
    return _table(["dataset", "version (hash)", "rows", "source", "profile"], rows)


def _unit_html(page: UnitPage, figures: dict[str, str]) -> str:
    unit, result = page.unit, page.result
    value = page.primary_value
    version = (f"model <code>{_e(result['model'])}</code> v{_e(result['version'])}"
               + (f" (@{_e(', @'.join(result['aliases']))})" if result.get("aliases") else "")
               + (f"; champion v{_e(result['champion_version'])}" if result.get("champion_version") else "")
               if result.get("version") else "no model registered (this unit measures rather than fits)")
    facts = [
        f"<li><strong>{_e(page.primary_metric)}</strong> = {_e(format_value(value))} "
        f"({_e(page.profile)} profile)</li>",
        f"<li>{version}</li>",
        f"<li>MLflow run <code>{_e(result['run_id'])}</code>"
        + (f", started {_e(page.started.strftime('%Y-%m-%d %H:%M UTC'))}" if page.started else "")
        + (f", git commit <code>{_e(page.tags['mlflow.source.git.commit'][:12])}</code>"
           if page.tags.get("mlflow.source.git.commit") else "") + "</li>",
    ]
    parts = [
        '<header><nav><a href="../../index.html">← all units</a></nav>',
        f"<h1>{_e(unit.id)} — {_e(unit.title)}</h1></header>",
        "<ul>" + "".join(facts) + "</ul>",
        "<h2>Reproduce</h2>",
        f"<pre><code>{_e(reproduce_command(unit.id, page.profile, page.params))}</code></pre>",
    ]
    if page.profile == "quick":
        parts.append('<p class="muted">Quick profile: a smoke run on a subset, not the unit\'s result; '
                     "the full profile gives the numbers to quote.</p>")
    if page.notes:
        parts += ["<h2>Notes</h2>", _notes_html(page.notes)]
    parts += ["<h2>Metrics</h2>", _metrics_html(page)]
    audits = {name: t for name, t in page.tables.items() if name.startswith(_AUDIT_PREFIX)}
    if audits:
        parts.append("<h2>Comparison with the library twin</h2>")
        for name, frame in audits.items():
            parts += [f"<h3>{_e(name[len(_AUDIT_PREFIX):].strip())}</h3>", frame_html(frame)]
    parts.append(_references_html(page))
    parts += ["<h2>Data</h2>", _data_html(page)]
    if figures:
        parts.append('<h2>Figures</h2>\n<div class="figures">')
        parts += [f'<figure><img src="{_e(src)}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption>'
                  "</figure>" for caption, src in figures.items()]
        parts.append("</div>")
    others = {name: t for name, t in page.tables.items() if name not in audits}
    if others:
        parts.append("<h2>Tables</h2>")
        for name, frame in others.items():
            parts += [f"<h3>{_e(name)}</h3>", frame_html(frame)]
    for name, text in page.texts.items():
        parts += [f"<h2>{_e(name)}</h2>", f"<pre>{_e(text)}</pre>"]
    return _document(f"mlpath {unit.id}: {unit.title}", "\n".join(p for p in parts if p))


def _index_html(pages: dict[str, UnitPage]) -> str:
    rows, classes = [], []
    for unit in UNITS:
        page = pages.get(unit.id)
        if page is None:
            status = "no registered run yet" if unit.implemented else "not built yet"
            rows.append([f"<td>{_e(unit.id)}</td>", f"<td>{_e(unit.title)}</td>",
                         f"<td><code>{_e(unit.primary_metric or '—')}</code></td>", "<td>—</td>",
                         "<td>—</td>", "<td>—</td>", f'<td class="muted">{_e(status)}</td>'])
            classes.append("muted")
            continue
        result = page.result
        champion = f"v{result['champion_version']}" if result.get("champion_version") else "—"
        newest = f" (newest v{result['version']})" if result.get("version") else ""
        rows.append([f"<td>{_e(unit.id)}</td>", f"<td>{_e(unit.title)}</td>",
                     f"<td><code>{_e(page.primary_metric or '—')}</code></td>", _cell(page.primary_value),
                     f"<td>{_e(page.profile)}</td>", f"<td>{_e(champion + newest)}</td>",
                     f'<td><a href="units/{_e(unit.id)}/index.html">{_e(unit.id)} page</a></td>'])
        classes.append("")
    built = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join([
        "<header><h1>mlpath — results portfolio</h1>",
        f"<p class=\"muted\">Built {_e(built)} from MLflow at <code>{_e(settings.tracking_uri())}</code>. "
        "Each unit's page shows its newest registered run: metrics, the check against its library twin, "
        "published reference numbers for scale, the data it used, and the command that reproduces it."
        "</p></header>",
        "<h2>Results</h2>",
        _table(["unit", "title", "primary metric", "value", "profile", "champion", "page"], rows, classes),
        "<p class=\"muted\">Quick-profile values are smoke runs on subsets; full-profile values are the "
        "results. A new model version becomes champion only if it beats the champion on the primary "
        "metric within the same profile.</p>",
    ])
    return _document("mlpath — results portfolio", body)
