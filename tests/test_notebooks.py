"""Every built unit has its notebook: a jupytext ``.py`` paired with an ``.ipynb`` holding the same
cells, and the ``.py`` runs top to bottom in a headless kernel on the quick data.

Execution starts from the ``.py`` (what a reviewer reads), never from the committed outputs, in a
fresh kernel on this interpreter with a temporary ``MLPATH_HOME`` and the data mirror, and within
``NOTEBOOK_TIMEOUT`` seconds for the whole notebook. ``make notebooks`` rewrites the ``.ipynb``
outputs (``notebooks/build.py``, whose ``execute`` this test uses too).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from pipeline.units import implemented_units

ROOT = Path(__file__).resolve().parents[1]
UNITS = implemented_units()
_spec = importlib.util.spec_from_file_location("notebooks_build", ROOT / "notebooks" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in nb.cells]


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.id)
def test_notebook_pair_exists_and_holds_the_same_cells(unit):
    source, notebook = build.source_path(unit), ROOT / unit.notebook
    assert source.is_file(), f"{unit.id}: {source.relative_to(ROOT)} missing"
    assert notebook.is_file(), f"{unit.id}: {unit.notebook} missing (make notebooks writes it)"
    text = jupytext.read(source)
    assert text.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", (
        f"{source.name}: the jupytext header must pair it with its .ipynb (formats: ipynb,py:percent)")
    ipynb = jupytext.read(notebook)
    assert _cells(ipynb) == _cells(text), (
        f"{unit.notebook} is stale against {source.name}: run `make notebooks` to re-execute and rewrite it")
    unexecuted = [i for i, cell in enumerate(ipynb.cells) if cell.cell_type == "code" and cell.execution_count is None]
    assert not unexecuted, f"{unit.notebook}: code cells {unexecuted} were never executed; run `make notebooks`"


@pytest.mark.slow
@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.id)
def test_notebook_executes_headless(unit, tmp_path, monkeypatch):
    # The kernel inherits this environment: its own state folder; the mirror comes from conftest.
    monkeypatch.setenv("MLPATH_HOME", str(tmp_path / "home"))
    # One torch/BLAS thread: `make test` runs two pytest workers on the machine's cores, and a kernel
    # with a thread per core would fight the other worker (Unit 9's LSTM cells ran 3x slower so).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert os.environ.get("MLPATH_DATA_MIRROR"), "the notebooks read the quick data from the mirror"
    source = build.source_path(unit)
    nb = jupytext.read(source)
    # One cell more, to prove the kernel ran on this interpreter (the venv), not another python3.
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable, end='')"))

    build.execute(nb, source.parent, timeout=build.NOTEBOOK_TIMEOUT)  # raises with the failing cell

    probe = nb.cells[-1].outputs
    assert probe and probe[0].get("text") == sys.executable, f"kernel ran on {probe!r}, not {sys.executable}"
