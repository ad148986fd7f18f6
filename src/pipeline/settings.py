"""Where state lives and how the embedded services are configured.

Everything a run writes goes under one folder, ``MLPATH_HOME`` (default ``./.mlpath``):

- ``prefect/``       Prefect's home when no ``PREFECT_API_URL`` is set (ephemeral local API)
- ``mlflow.db``      MLflow's tracking and model registry (SQLite), with ``mlartifacts/`` beside it
                     (``tracking_uri()``)
- ``data/``          the download cache of the dataset catalog
- ``quarantine/``    batches that failed validation, with the failed expectations
- ``runs/``          per-run scratch output

``configure_environment()`` must run before Prefect or MLflow are imported: both read their
settings from the environment at import time. ``prepare_home()`` (the CLI calls it first) checks
that the folder is writable and, when the folder was moved, re-roots MLflow's recorded artifact
locations so that nothing is written to, or read from, the old path.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote

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


TASK_RUNNERS = ("threads", "dask", "sequential")


class SettingError(ValueError):
    """An ``MLPATH_*`` variable holds a value mlpath cannot use; the message names it and the choices."""


def task_runner_name() -> str:
    """Where a run's submitted tasks go, ``$MLPATH_TASK_RUNNER``: "threads" (default: one process,
    a thread per task), "dask" (prefect-dask's DaskTaskRunner: the scheduler at
    ``$MLPATH_DASK_ADDRESS``, else a local cluster of worker processes) or "sequential" (one task
    at a time, the baseline the fan-out benchmark compares against)."""
    name = os.environ.get("MLPATH_TASK_RUNNER", "threads").strip().lower() or "threads"
    if name not in TASK_RUNNERS:
        raise SettingError(f"MLPATH_TASK_RUNNER={name!r}: choose one of {', '.join(TASK_RUNNERS)}")
    return name


def dask_address() -> str | None:
    """An existing Dask scheduler, ``$MLPATH_DASK_ADDRESS`` (e.g. ``tcp://scheduler:8786``), or None
    to start a local cluster for the run."""
    return os.environ.get("MLPATH_DASK_ADDRESS") or None


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw.strip() else default
    except ValueError:
        raise SettingError(f"{name}={raw!r}: expected a whole number >= 1") from None
    if value < 1:
        raise SettingError(f"{name}={raw!r}: expected a whole number >= 1")
    return value


def dask_workers() -> int:
    """Worker processes of the local Dask cluster, ``$MLPATH_DASK_WORKERS`` (default 2: the cores here)."""
    return _positive_int("MLPATH_DASK_WORKERS", 2)


def path_concurrency() -> int:
    """How many units of the whole path may run at once, ``$MLPATH_PATH_CONCURRENCY`` (default 2).
    1 runs them one after another; units that need another unit's model always wait for it."""
    return _positive_int("MLPATH_PATH_CONCURRENCY", 2)


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


class HomeError(RuntimeError):
    """MLPATH_HOME cannot be used: not writable, or moved without its artifacts."""


def check_home_writable(home: Path | None = None) -> Path:
    """``home`` (default MLPATH_HOME) exists, or is created, and a file can be written in it.

    Raises HomeError with one line naming the path; touches nothing else (no Prefect, no MLflow).
    """
    home = mlpath_home() if home is None else home
    try:
        home.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=home)
        os.close(fd)
        os.unlink(probe)
        for name in ("mlflow.db", "prefect", "mlartifacts"):  # what is already there must stay writable
            path = home / name
            if path.exists() and not os.access(path, os.W_OK):
                raise PermissionError(13, "Permission denied", str(path))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(home) else ""
        raise HomeError(f"MLPATH_HOME {home} is not writable: {reason}{where}; "
                        "set MLPATH_HOME to a folder you can write") from exc
    return home


def _recorded_artifact_roots(db: sqlite3.Connection) -> set[str]:
    """The ``file://…/mlartifacts`` roots our experiments were created under (``ensure_experiment``)."""
    roots = set()
    for (location,) in db.execute("SELECT artifact_location FROM experiments"):
        if location and location.startswith("file://"):
            parent = location.rstrip("/").rsplit("/", 1)[0]
            if parent.endswith("/mlartifacts"):
                roots.add(parent)
    return roots


def _text_columns(db: sqlite3.Connection) -> list[tuple[str, str]]:
    columns = []
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        for _, column, kind, *_ in db.execute(f'PRAGMA table_info("{table}")'):
            if not kind or any(t in kind.upper() for t in ("CHAR", "TEXT", "CLOB")):
                columns.append((table, column))
    return columns


def rehome_mlflow(home: Path | None = None) -> list[str]:
    """Re-root the artifact locations in MLPATH_HOME's MLflow database after the folder moved.

    MLflow's SQLite store keeps absolute ``file://`` URIs (experiments' ``artifact_location``,
    runs' ``artifact_uri``, model versions' and logged models' storage locations, some tags).
    When they point under another folder's ``mlartifacts`` (``mv A B``), every such prefix is
    rewritten to this home's in one transaction: runs then log to, and models load from, the new
    folder, never the old path. Returns one line per re-rooted prefix ("A → B"); nothing when the
    database is not ours (``MLFLOW_TRACKING_URI`` set elsewhere), absent, or already in place.
    Raises HomeError when the artifacts were left behind: the old folder still has them and this
    one has none (only ``mlflow.db`` was moved or copied).
    """
    home = mlpath_home() if home is None else home
    db_path = home / "mlflow.db"
    if tracking_uri() != f"sqlite:///{db_path}" or not db_path.is_file():
        return []
    new_root = (home / "mlartifacts").as_uri()
    db = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'experiments'").fetchone():
            return []
        old_roots = sorted(_recorded_artifact_roots(db) - {new_root})
        if not old_roots:
            return []
        for old_root in old_roots:
            old_dir = _uri_path(old_root)
            if old_dir.is_dir() and not (home / "mlartifacts").is_dir():
                raise HomeError(f"{db_path} records its artifacts under {old_dir}, but {home / 'mlartifacts'} "
                                f"does not exist: move the whole MLPATH_HOME folder, not only mlflow.db")
        columns = _text_columns(db)
        db.execute("BEGIN IMMEDIATE")
        try:
            for old_root in old_roots:
                old, new = old_root + "/", new_root + "/"
                for table, column in columns:
                    db.execute(f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                               f'WHERE instr("{column}", ?) > 0', (old, new, old))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        db.close()
    return [f"{_uri_path(root)} → {home / 'mlartifacts'}" for root in old_roots]


def _uri_path(uri: str) -> Path:
    return Path(unquote(uri.removeprefix("file://")))


def prepare_home() -> Path:
    """Before a command touches state: MLPATH_HOME writable (`check_home_writable`), the environment
    configured, and MLflow's artifact locations re-rooted if the folder moved (`rehome_mlflow`).

    Raises HomeError with a one-line message. Prints one line per re-rooted location (on stderr:
    ``mlpath results --json`` keeps stdout for its JSON).
    """
    home = check_home_writable()
    configure_environment()
    for line in rehome_mlflow(home):
        print(f"MLPATH_HOME moved: MLflow artifact locations re-rooted {line}", file=sys.stderr, flush=True)
    return home
