"""The curriculum outline behind ``mlpath progress``: every unit's topics and challenge, the Phase 5
items, and a box per item ticked from what exists.

The three boxes, each a rule a reader can check by hand:

- **code**: the unit's spec names its flow (``UnitSpec.flow`` is set). For a Phase 5
  item: its module or document file exists.
- **notes**: the notes document its spec names exists (``docs/unit08_cnn.md``). README rows do not
  count: notes are a page of their own. Design write-ups are their own notes; the portfolio's
  notes are its section in README (the text ``mlpath report``).
- **run**: MLflow holds a successful registered run of the unit (``portfolio.latest_unit_runs``: the
  newest registered model version, or for a unit without a model its newest finished run). For the
  portfolio: a built site at ``MLPATH_HOME/site/index.html``. Design write-ups have no run (``n/a``).

``mlpath progress --compact`` prints one line per item instead (``compact_progress``).

Importing this module is cheap (no MLflow, Prefect or torch); ``progress`` reads MLflow only when
it is not handed the results.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.units import PHASES, UnitSpec, all_units

REPO_ROOT = Path(__file__).resolve().parents[3]

@dataclass(frozen=True)
class OutlineItem:
    """One line of the outline: a unit (``unit`` set) or a Phase 5 item (``paths`` set)."""

    id: str
    phase: int
    title: str
    topics: tuple[str, ...]
    challenge: str
    unit: UnitSpec | None = None
    paths: tuple[str, ...] = ()  # Phase 5: the files that are its code/document, from the repo root


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
                paths=("src/pipeline/app/site.py",)),
)


def outline() -> list[OutlineItem]:
    """Every unit (from its spec, in path order) and then the Phase 5 items."""
    units = [OutlineItem(unit.id, unit.phase, unit.title, unit.topics, unit.challenge, unit=unit)
             for unit in all_units()]
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


def has_notes(unit: UnitSpec, root: Path = REPO_ROOT) -> bool:
    """Whether the notes document the unit's spec names exists under ``root``."""
    return unit.notes is not None and (root / unit.notes).is_file()


def progress(results: Mapping[str, Mapping[str, Any]] | None = None, root: Path = REPO_ROOT,
             site_index: Path | None = None) -> list[ProgressRow]:
    """The outline with its boxes ticked (see the module docstring for the three rules).

    ``results`` maps unit id to its latest successful run (``portfolio.latest_unit_runs``); None reads
    them from the configured MLflow. ``site_index`` defaults to ``MLPATH_HOME/site/index.html``.
    """
    from pipeline.app import site as portfolio

    if results is None:
        results = portfolio.latest_unit_runs([unit.id for unit in all_units()])
    if site_index is None:
        site_index = portfolio.default_site_dir() / "index.html"
    rows = []
    for item in outline():
        if item.unit is not None:
            result = results.get(item.id)
            rows.append(ProgressRow(item, item.unit.implemented, has_notes(item.unit, root),
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


def compact_progress(rows: list[ProgressRow]) -> str:
    """``mlpath progress --compact``: a count, then one line per item: id, the code/notes/run
    boxes, title, and its latest run (when it has one)."""
    width = max((len(row.item.id) for row in rows), default=0)
    done = sum(row.done for row in rows)
    lines = [f"mlpath progress: {done} of {len(rows)} items done (boxes: code, notes, run)"]
    for row in rows:
        boxes = " ".join(_box(state) for state in (row.code, row.notes, row.run))
        lines.append(f"{row.item.id:<{width}}  {boxes}  {row.item.title}"
                     + (f" | {row.detail}" if row.detail else ""))
    return "\n".join(lines)


def print_progress(rows: list[ProgressRow]) -> None:
    from rich.console import Console

    Console().print(render_progress(rows))
