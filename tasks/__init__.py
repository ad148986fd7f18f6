"""Prefect tasks: thin wrappers that call ``pipeline`` and add retries, logging and artifacts.

Tasks use ``NO_CACHE``: their inputs are DataFrames, arrays and fitted models, which Prefect would
hash on every call, and caching them would mean persisting copies of the data. The expensive,
deterministic step, getting a dataset, is cached by the catalog itself (``MLPATH_HOME/data``).
"""

from __future__ import annotations

import logging

from pipeline.report import display_frame
from pipeline.settings import configure_environment

# Prefect reads PREFECT_HOME and its settings when first imported: point it at MLPATH_HOME first.
configure_environment()


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a run; a plain logger when a task is called as ``task.fn``."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("mlpath.tasks")


def table_rows(table) -> list[dict]:
    """Rows for a Prefect table artifact from a DataFrame or a list of dicts.

    No pandas index column: a plain 0..n-1 index is dropped, a meaningful one (model or class
    names) becomes the first column, named after the index (else "name"). Counts read as counts:
    a DataFrame column whose numbers are all whole is shown as integers (150, not 150.0); in a
    list of dicts each whole float is. Other floats are rounded to 6 digits; NaN is left empty.
    """
    if hasattr(table, "to_dict"):
        frame = display_frame(table)
        frame = frame.astype(object).where(frame.notna(), None)  # pd.NA and NaN: empty
        return [{str(k): _cell(v, as_int=False) for k, v in row.items()} for row in frame.to_dict("records")]
    return [{str(k): _cell(v, as_int=True) for k, v in row.items()} for row in table]


def _cell(value, as_int: bool):
    """A JSON-friendly cell: whole numbers as int when ``as_int``, NaN/inf as None, floats rounded."""
    import math
    import numbers

    if hasattr(value, "item") and not isinstance(value, str):  # a numpy scalar
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            return None
        return int(value) if as_int and value.is_integer() else round(value, 6)
    return str(value)
