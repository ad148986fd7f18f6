"""Execute each unit's notebook from its jupytext source and rewrite the paired ``.ipynb``.

The percent-format ``notebooks/unitNN_<name>.py`` is what a reviewer reads and edits; the
``.ipynb`` beside it (the spec's ``notebook``) is the same cells with their outputs. This script
(``make notebooks``) runs each ``.py`` top to bottom in a fresh headless kernel on this
interpreter (nbclient), in the ``notebooks/`` folder, writes the ``.ipynb`` with the outputs,
then writes the ``.py`` back through jupytext so the pair stays in sync: jupytext refuses to
open a pair whose ``.py`` is older than its ``.ipynb``. ``tests/test_notebooks.py`` executes
the notebooks with ``execute`` too.

    python notebooks/build.py                 # every built unit
    python notebooks/build.py unit01 unit07   # some of them
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_TIMEOUT = 120  # seconds for a whole notebook's cells (the kernel's start is not counted)


class ThisPythonKernelManager(AsyncKernelManager):
    """A kernel on this interpreter (``sys.executable``), whatever kernelspecs the machine has.

    The notebooks' metadata names the usual ``python3`` kernel; a ``python3`` kernelspec installed
    for the user or the system could point at another Python without this project's packages.
    """

    @property
    def kernel_spec(self) -> KernelSpec:
        from ipykernel.kernelspec import RESOURCES, get_kernel_dict

        return KernelSpec(resource_dir=RESOURCES, **get_kernel_dict())


def source_path(unit) -> Path:
    """The jupytext source of a unit's notebook: its spec's ``notebook`` with ``.py``."""
    if not unit.notebook:
        raise ValueError(f"{unit.id} declares no notebook")
    return ROOT / Path(unit.notebook).with_suffix(".py")


def execute(nb: nbformat.NotebookNode, cwd: Path, timeout: float = NOTEBOOK_TIMEOUT) -> float:
    """Run every cell of ``nb`` in place in a fresh kernel started in ``cwd``; returns the seconds.

    The seconds include the kernel's start. ``timeout`` bounds the whole notebook: each cell may
    take what is left of it. The kernel inherits this process's environment (``MLPATH_HOME``,
    ``MLPATH_DATA_MIRROR``). Raises nbclient's ``CellExecutionError`` (the failing cell's source
    and its traceback) or ``CellTimeoutError``.
    """
    deadline: list[float] = []  # set when the first code cell starts

    def time_left(cell) -> int:
        if not deadline:
            deadline.append(time.monotonic() + timeout)
        return max(1, round(deadline[0] - time.monotonic()))

    client = NotebookClient(
        nb,
        timeout_func=time_left,
        kernel_manager_class=ThisPythonKernelManager,
        record_timing=False,  # no per-cell timestamps in the committed .ipynb
        resources={"metadata": {"path": str(cwd)}},
        extra_arguments=["--InteractiveShell.colors=nocolor"],  # a failing cell's traceback as plain text
    )
    start = time.monotonic()
    client.execute()
    return time.monotonic() - start


def build(unit) -> float:
    """Execute ``unit``'s notebook source and write the pair; returns the execution seconds."""
    source = source_path(unit)
    nb = jupytext.read(source)
    seconds = execute(nb, source.parent)
    jupytext.write(nb, ROOT / unit.notebook)
    jupytext.write(nb, source, fmt="py:percent")  # same text, newer than the .ipynb
    return seconds


def main(argv: list[str] | None = None) -> int:
    from pipeline.units import get_unit, implemented_units

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("units", nargs="*", help="unit ids (default: every built unit)")
    args = parser.parse_args(argv)
    units = [get_unit(uid) for uid in args.units] if args.units else implemented_units()
    for unit in units:
        seconds = build(unit)
        size = (ROOT / unit.notebook).stat().st_size
        print(f"{unit.id}: {unit.notebook} executed in {seconds:.1f} s ({size / 1024:.0f} KB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
