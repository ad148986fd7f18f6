"""Test session set-up: state in a temporary MLPATH_HOME, datasets from the shared mirror.

The environment is set at import, before any test module imports Prefect or MLflow (both read
their settings when imported). A user's own servers are never touched by the tests.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("MLPATH_DATA_MIRROR", str(REPO.parent / "shared" / "data"))
MIRROR = Path(os.environ["MLPATH_DATA_MIRROR"])
SESSION_HOME = Path(tempfile.mkdtemp(prefix="mlpath-test-"))
os.environ["MLPATH_HOME"] = str(SESSION_HOME)
for variable in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "PREFECT_HOME"):
    os.environ.pop(variable, None)

from pipeline.settings import configure_environment  # noqa: E402

configure_environment()


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for every test that runs a flow."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A separate MLPATH_HOME (and MLflow database) for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("MLPATH_HOME", str(home))
    # mlflow.set_tracking_uri exports the URI, so a new home needs its URI set explicitly too
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    home.mkdir()
    return home
