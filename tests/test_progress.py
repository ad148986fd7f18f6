"""The curriculum outline and its boxes: code, notes, registered run."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from pipeline.app.progress import PHASE5_ITEMS, compact_progress, outline, progress, render_progress
from pipeline.registry import log_unit_run
from pipeline.report import UnitReport
from pipeline.units import all_units

from conftest import planned_ids

PLANNED, UNBUILT = planned_ids()


@pytest.fixture(autouse=True, scope="module")
def _planned(planned_units):
    """The planned units these tests show, stand-ins where the path has too few."""


def _rows_by_id(rows):
    return {row.item.id: row for row in rows}


def _repo(tmp_path, *files: str):
    """A stand-in repository root holding only ``files``."""
    for name in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("mlpath report\n" if name == "README.md" else "notes\n")
    return tmp_path


def test_outline_has_every_unit_in_order_then_phase5():
    items = outline()
    assert [item.id for item in items] == [u.id for u in all_units()] + [i.id for i in PHASE5_ITEMS]
    for item in items:
        assert item.topics and item.challenge and 1 <= item.phase <= 5


def test_importing_the_outline_is_cheap():
    code = ("import sys, pipeline.app.progress\n"
            "print(sorted(m for m in ('mlflow', 'prefect', 'torch', 'great_expectations') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_boxes_for_a_unit_with_and_without_a_registered_run(fresh_home, tmp_path):
    X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    log_unit_run(UnitReport(unit="unit01", primary_metric="test_accuracy", greater_is_better=True,
                            params={"profile": "quick"}, metrics={"test_accuracy": 0.9},
                            model=LogisticRegression().fit(X, y), model_example=X[:2]))
    root = _repo(tmp_path / "repo", "docs/unit01_pca.md")
    rows = _rows_by_id(progress(root=root))

    unit01, unit04, planned = rows["unit01"], rows["unit04"], rows[PLANNED]
    assert (unit01.code, unit01.notes, unit01.run) == (True, True, True) and unit01.done
    assert unit01.detail == "test_accuracy 0.9000 (quick, v1)"
    assert (unit04.code, unit04.notes, unit04.run) == (True, False, False) and not unit04.done
    assert (planned.code, planned.notes, planned.run) == (False, False, False)


def test_a_unit_without_a_model_counts_its_finished_run(fresh_home, tmp_path):
    log_unit_run(UnitReport(unit=PLANNED, primary_metric="coverage", greater_is_better=True,
                            params={"profile": "full"}, metrics={"coverage": 0.95}))
    row = _rows_by_id(progress(root=tmp_path))[PLANNED]
    assert row.run and row.detail == "coverage 0.9500 (full)"


def test_phase5_boxes_follow_the_files(tmp_path):
    root = _repo(tmp_path, "docs/design/fraud_detection.md", "README.md", "src/pipeline/app/site.py")
    site = tmp_path / "site" / "index.html"
    rows = _rows_by_id(progress(results={}, root=root, site_index=site))
    fraud, feed, portfolio = rows["design-fraud"], rows["design-news-feed"], rows["portfolio"]
    assert (fraud.code, fraud.notes, fraud.run, fraud.done) == (True, True, None, True)
    assert (feed.code, feed.notes, feed.run, feed.done) == (False, False, None, False)
    assert (portfolio.code, portfolio.notes, portfolio.run) == (True, True, False)
    site.parent.mkdir()
    site.write_text("<html></html>")
    assert _rows_by_id(progress(results={}, root=root, site_index=site))["portfolio"].done


def test_render_shows_boxes_and_literal_brackets(tmp_path):
    from rich.console import Console

    results = {"unit01": {"primary_metric": "test_accuracy", "metrics": {"test_accuracy": 1.0},
                          "version": "3", "profile": "full"}}
    console = Console(record=True, width=200)
    console.print(render_progress(progress(results=results, root=tmp_path, site_index=tmp_path / "none")))
    text = console.export_text()
    assert "[x]" in text and "[ ]" in text and "n/a" in text
    assert "test_accuracy 1.0000 (full, v3)" in text
    assert "Phase 5" in text and "System design and portfolio" in text


def test_compact_is_one_line_per_item_with_boxes_title_and_latest_run(tmp_path):
    results = {"unit01": {"primary_metric": "test_accuracy", "metrics": {"test_accuracy": 1.0},
                          "version": "3", "profile": "full"}}
    rows = progress(results=results, root=_repo(tmp_path, "docs/unit01_pca.md"), site_index=tmp_path / "none")
    lines = compact_progress(rows).splitlines()
    assert lines[0] == f"mlpath progress: 1 of {len(rows)} items done (boxes: code, notes, run)"
    by_id = {line.split()[0]: line for line in lines[1:]}
    assert list(by_id) == [item.id for item in outline()]
    title = _rows_by_id(rows)["unit01"].item.title
    assert by_id["unit01"].endswith(f"[x] [x] [x]  {title} | test_accuracy 1.0000 (full, v3)")
    assert "[ ] [ ] [ ]" in by_id[PLANNED] and "|" not in by_id[PLANNED]
    assert "[ ] [ ] n/a" in by_id["design-fraud"]
