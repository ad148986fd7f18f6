"""Where state lives and how the embedded services are configured.

Everything a run writes goes under one folder, ``MLPATH_HOME`` (default ``./.mlpath``):

- ``prefect/``       Prefect's home when no ``PREFECT_API_URL`` is set (ephemeral local API)
- ``mlflow.db``      MLflow's tracking and model registry (SQLite), with ``mlartifacts/`` beside it
                     (``tracking_uri()``)
- ``data/``          the download cache of the dataset catalog
- ``quarantine/``    batches that failed validation, with the failed expectations
- ``runs/``          per-run scratch output

``configure_environment()`` must run before Prefect or MLflow are imported: both read their
settings from the environment at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

PROFILES = ("quick", "full")


def mlpath_home() -> Path:
    """The project's state folder, ``$MLPATH_HOME`` or ``./.mlpath``, as an absolute path."""
    return Path(os.environ.get("MLPATH_HOME", ".mlpath")).expanduser().resolve()


def data_mirror() -> Path | None:
    """The local dataset mirror, ``$MLPATH_DATA_MIRROR``, or None when unset."""
    value = os.environ.get("MLPATH_DATA_MIRROR")
    return Path(value).expanduser().resolve() if value else None


def tracking_uri() -> str:
    """MLflow's tracking URI: the user's ``MLFLOW_TRACKING_URI`` or SQLite under MLPATH_HOME."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{mlpath_home() / 'mlflow.db'}"


def artifact_root() -> Path:
    return mlpath_home() / "mlartifacts"


def configure_environment() -> Path:
    """Point Prefect and MLflow at MLPATH_HOME unless the user configured them, telemetry off.

    Returns the state folder. Idempotent; values the user set are never overwritten.
    """
    home = mlpath_home()
    home.mkdir(parents=True, exist_ok=True)
    defaults = {
        "PREFECT_HOME": str(home / "prefect"),
        # No network here: analytics and telemetry would only log connection errors.
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        # The ephemeral API server starts with the first flow run; give a cold start room.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    return home
