"""Test session set-up: state in a temporary MLPATH_HOME, datasets from the shared mirror.

The environment is set at import, before any test module imports Prefect or MLflow (both read
their settings when imported). A user's own servers are never touched by the tests.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
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
from pipeline.units import UnitSpec, all_units, register_unit  # noqa: E402

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


# Tests of how planned (not yet built) units show need two of them; once the path has fewer,
# throwaway planned specs stand in, registered for the tests that use them (`planned_units`).
_STAND_INS = tuple(
    UnitSpec(
        id=f"planned_{letter}", number=number, title=f"A planned unit ({letter})", phase=4,
        topics=("planning",), challenge="Not built yet: a stand-in for the tests.")
    for letter, number in (("a", 95), ("b", 96)))


def planned_ids() -> list[str]:
    """Two planned unit ids: the path's own first, then stand-ins."""
    own = [unit.id for unit in all_units() if not unit.implemented][:2]
    return own + [spec.id for spec in _STAND_INS][: 2 - len(own)]


@pytest.fixture(scope="module")
def planned_units():
    """Registers the stand-ins `planned_ids` names, for one test module."""
    wanted = planned_ids()
    with ExitStack() as stack:
        for spec in _STAND_INS:
            if spec.id in wanted:
                stack.enter_context(register_unit(spec))
        yield wanted
