"""Prefect tasks: thin wrappers that call ``pipeline`` and add retries, logging and artifacts.

Tasks use ``NO_CACHE``: their inputs are DataFrames, arrays and fitted models, which Prefect would
hash on every call, and caching them would mean persisting copies of the data. The expensive,
deterministic step, getting a dataset, is cached by the catalog itself (``MLPATH_HOME/data``).
"""

from __future__ import annotations

import logging

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
