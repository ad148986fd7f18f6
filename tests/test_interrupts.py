"""Stopping and moving: Ctrl-C, SIGTERM and a lost Prefect API stop `mlpath run` within seconds with
a summary and every run recorded as stopped; an unwritable MLPATH_HOME fails before anything
starts; a moved MLPATH_HOME keeps its models loadable and is never written back to the old path.

The interrupt tests run real processes: `mlpath run` with a throwaway unit (`SLOW_UNIT`) whose
flow opens an MLflow run, prints a line when its training starts and then trains for minutes.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from pipeline.settings import HomeError, check_home_writable, rehome_mlflow

from conftest import MIRROR, REPO

STARTED = "SLOW TRAINING STARTED"
SLOW_UNIT = textwrap.dedent(f'''
    """A throwaway unit: an MLflow run, then training that takes minutes, announced by a line."""
    import sys
    import time

    from pipeline.settings import configure_environment

    # As `mlpath` does: Prefect reads its settings when imported (the API server's 90 s start-up
    # allowance among them; Prefect's own 20 s is too short for a cold start on a busy 2-core box).
    configure_environment()

    from prefect import flow, task

    from pipeline.params import UnitParams
    from pipeline.units import UnitSpec, register_unit

    SPEC = UnitSpec(id="unit97", number=97, title="slow throwaway", phase=1, topics=("tests",),
                    challenge="be interrupted", flow="slow_unit:slow_unit", datasets=("iris",),
                    primary_metric="test_accuracy")


    @task(name="train-slowly")
    def train_slowly(seconds: float) -> float:
        print("{STARTED}", flush=True)
        total, end = 0.0, time.monotonic() + seconds
        while time.monotonic() < end:  # CPU-bound, like a training loop
            total += sum(i * i for i in range(10_000))
        return total


    @flow(name="unit97-slow", log_prints=True)
    def slow_unit(params: UnitParams = UnitParams()) -> dict:
        import mlflow

        from pipeline import registry

        with mlflow.start_run(experiment_id=registry.ensure_experiment(SPEC.experiment)):
            train_slowly(300.0)
            version = registry.client().create_model_version(SPEC.model_name, "file:///nowhere")
            registry.client().set_registered_model_alias(SPEC.model_name, "champion", version.version)
        return {{"unit": "unit97", "status": "succeeded", "primary_metric": "test_accuracy", "value": 1.0}}


    if __name__ == "__main__":
        from pipeline.app.cli import main

        with register_unit(SPEC):
            sys.exit(main(sys.argv[1:]))
''')


def _env(home: Path, extra_path: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "PREFECT_HOME") and not k.startswith("PREFECT_")}
    env.update(MLPATH_HOME=str(home), MLPATH_DATA_MIRROR=str(MIRROR), PYTHONUNBUFFERED="1")
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    return env


class Run:
    """`mlpath run` of the slow unit in its own process group (as a terminal runs it)."""

    def __init__(self, tmp_path: Path):
        (tmp_path / "slow_unit.py").write_text(SLOW_UNIT)
        self.home = tmp_path / "home"
        self.process = subprocess.Popen(
            [sys.executable, str(tmp_path / "slow_unit.py"), "run", "unit97", "--profile", "quick"],
            cwd=tmp_path, env=_env(self.home, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True)
        self.lines: list[str] = []
        self.started = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            if STARTED in line:
                self.started.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_training(self) -> None:
        if not self.started.wait(90):
            self.process.kill()
            pytest.fail(f"training never started:\n{self.output[-4000:]}")
        time.sleep(1.0)  # well inside the training loop

    def stopped_within(self, seconds: float) -> tuple[int, float]:
        """Wait for the exit; returns (exit code, seconds it took), failing after ``seconds`` * 2."""
        start = time.monotonic()
        try:
            code = self.process.wait(seconds * 2)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            pytest.fail(f"still running {seconds * 2:.0f} s after the interrupt:\n{self.output[-4000:]}")
        time.sleep(0.2)  # the reader's last lines
        return code, time.monotonic() - start

    def api_server(self) -> psutil.Process:
        children = psutil.Process(self.process.pid).children(recursive=True)
        servers = [c for c in children if "uvicorn" in " ".join(c.cmdline())]
        assert len(servers) == 1, [c.cmdline() for c in children]
        return servers[0]

    def cleanup(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        for child in psutil.process_iter(["environ"]):  # an orphaned API server of this home
            try:
                if (child.info["environ"] or {}).get("MLPATH_HOME") == str(self.home):
                    child.kill()
            except (psutil.Error, OSError):
                pass


@pytest.fixture
def slow_run(tmp_path):
    run = Run(tmp_path)
    yield run
    run.cleanup()


def _rows(db: Path, query: str) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as connection:
        return connection.execute(query).fetchall()


def _assert_recorded_as_stopped(home: Path, prefect_state: str | None) -> None:
    """The unit's MLflow run KILLED, no model or alias registered; and (with ``prefect_state``)
    every Prefect flow and task run of the run in that state (without an API none can be marked)."""
    mlflow_db = home / "mlflow.db"
    assert _rows(mlflow_db, "SELECT status FROM runs") == [("KILLED",)]
    assert _rows(mlflow_db, "SELECT name FROM registered_models") == []
    assert _rows(mlflow_db, "SELECT alias FROM registered_model_aliases") == []
    if prefect_state is not None:
        prefect_db = home / "prefect" / "prefect.db"
        flow_states = {state for (state,) in _rows(prefect_db, "SELECT state_type FROM flow_run")}
        task_states = {state for (state,) in _rows(prefect_db, "SELECT state_type FROM task_run")}
        assert flow_states == task_states == {prefect_state}


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_within_seconds_with_a_summary_and_runs_marked(slow_run, signum, code):
    slow_run.wait_for_training()
    if signum == signal.SIGINT:
        os.killpg(slow_run.process.pid, signum)  # Ctrl-C: the terminal signals the whole group
    else:
        slow_run.process.send_signal(signum)
    exit_code, seconds = slow_run.stopped_within(10)

    out = slow_run.output
    assert exit_code == code, out[-4000:]
    assert seconds < 10, out[-4000:]
    name = "SIGINT (Ctrl-C)" if signum == signal.SIGINT else "SIGTERM"
    assert "mlpath run (quick): interrupted" in out and f"interrupted by {name}" in out
    assert "│ unit97 │ interrupted" in out
    assert "Traceback" not in out
    _assert_recorded_as_stopped(slow_run.home, "CANCELLED")


@pytest.mark.slow
def test_a_lost_prefect_api_fails_the_run_within_seconds_saying_so(slow_run):
    slow_run.wait_for_training()
    server = slow_run.api_server()
    server.kill()
    exit_code, seconds = slow_run.stopped_within(10)

    out = slow_run.output
    assert exit_code == 1, out[-4000:]
    assert seconds < 10, out[-4000:]
    assert "lost the Prefect API: its ephemeral server http://127.0.0.1:" in out
    assert "│ unit97 │ interrupted" in out
    last = [line for line in out.splitlines() if line.strip()][-1]
    assert last.startswith("mlpath run lost the Prefect API"), last
    _assert_recorded_as_stopped(slow_run.home, None)  # no API: Prefect's runs cannot be marked


@pytest.mark.parametrize("path", ["cleanup", "deadline"])
def test_every_unit_running_when_stopped_has_its_mlflow_runs_ended(monkeypatch, path):
    """Two units overlap on the whole path: the CLI's cleanup and the exit deadline both end both
    units' MLflow runs, not only the first's."""
    from pipeline.app import interrupts

    killed, exits = [], []
    monkeypatch.setattr(interrupts, "kill_mlflow_runs", lambda unit, since: killed.append(unit))
    monkeypatch.setattr(interrupts, "cancel_flow_runs", lambda flow_run_id, reason: None)
    monkeypatch.setattr(interrupts, "stop_ephemeral_server", lambda: None)
    monkeypatch.setattr(interrupts.os, "_exit", exits.append)
    guard = interrupts.RunGuard(summarize=lambda reason: None, started=lambda: True,
                                units_of_run=lambda: ["unit02", "unit04"])
    guard.reason, guard.exit_code = "interrupted by SIGINT (Ctrl-C)", 130
    guard.cleanup("flow-run-id") if path == "cleanup" else guard.hard_exit()
    assert killed == ["unit02", "unit04"]
    assert exits == ([] if path == "cleanup" else [130])


def test_an_unwritable_home_fails_at_once_naming_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    home = blocker / "home"
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pipeline", "run", "unit01", "--profile", "quick"],
                          cwd=REPO, env=_env(home), capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - start

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"mlpath run: MLPATH_HOME {home} is not writable: Not a directory; set MLPATH_HOME to a folder you can write"]
    assert "Starting temporary server" not in done.stdout + done.stderr
    assert seconds < 5  # python and the CLI's imports only; nothing of Prefect


def test_check_home_writable_names_a_read_only_database(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "mlflow.db").write_text("")
    assert check_home_writable(home) == home
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path).name != "mlflow.db" and real_access(path, mode))
    with pytest.raises(HomeError, match=f"MLPATH_HOME {home} is not writable: Permission denied "
                                        rf"\({home / 'mlflow.db'}\)"):
        check_home_writable(home)


def _mlflow_like_db(home: Path, root: Path) -> None:
    """The columns MLflow's SQLite store keeps absolute artifact locations in, under ``root``."""
    uri = (root / "mlartifacts").as_uri()
    with sqlite3.connect(home / "mlflow.db") as db:
        db.executescript("""
            CREATE TABLE experiments (experiment_id INTEGER, name VARCHAR(256), artifact_location VARCHAR(256));
            CREATE TABLE runs (run_uuid VARCHAR(32), artifact_uri VARCHAR(200), start_time BIGINT);
            CREATE TABLE model_versions (name VARCHAR(256), version INTEGER, source VARCHAR(500),
                                         storage_location VARCHAR(500));
            CREATE TABLE tags (key VARCHAR(250), value VARCHAR(8000), run_uuid VARCHAR(32));
        """)
        db.execute("INSERT INTO experiments VALUES (0, 'Default', '/elsewhere/mlruns/0')")
        db.execute("INSERT INTO experiments VALUES (1, 'mlpath-unit01', ?)", (f"{uri}/mlpath-unit01",))
        db.execute("INSERT INTO runs VALUES ('r1', ?, 1)", (f"{uri}/mlpath-unit01/r1/artifacts",))
        db.execute("INSERT INTO model_versions VALUES ('mlpath-unit01', 1, 'models:/m-1', ?)",
                   (f"{uri}/mlpath-unit01/models/m-1/artifacts",))
        db.execute("INSERT INTO tags VALUES ('note', ?, 'r1')", (f'[{{"path": "{uri}/mlpath-unit01/r1"}}]',))
        db.execute("INSERT INTO tags VALUES ('other', ?, 'r1')", (f"{root}-not-ours/mlartifacts/x",))


def test_rehome_mlflow_reroots_every_artifact_location_of_a_moved_home(tmp_path, monkeypatch):
    old, new = tmp_path / "old home", tmp_path / "new home"  # a space: URIs are percent-encoded
    old.mkdir()
    (old / "mlartifacts").mkdir()
    _mlflow_like_db(old, old)
    old.rename(new)
    monkeypatch.setenv("MLPATH_HOME", str(new))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    assert rehome_mlflow(new) == [f"{old / 'mlartifacts'} → {new / 'mlartifacts'}"]
    uri = (new / "mlartifacts").as_uri()
    db = new / "mlflow.db"
    assert _rows(db, "SELECT artifact_location FROM experiments") == [
        ("/elsewhere/mlruns/0",), (f"{uri}/mlpath-unit01",)]
    assert _rows(db, "SELECT artifact_uri FROM runs") == [(f"{uri}/mlpath-unit01/r1/artifacts",)]
    assert _rows(db, "SELECT source, storage_location FROM model_versions") == [
        ("models:/m-1", f"{uri}/mlpath-unit01/models/m-1/artifacts")]
    assert _rows(db, "SELECT value FROM tags") == [
        (f'[{{"path": "{uri}/mlpath-unit01/r1"}}]',), (f"{old}-not-ours/mlartifacts/x",)]
    assert rehome_mlflow(new) == []  # in place now: nothing to do


def test_rehome_mlflow_refuses_when_the_artifacts_were_left_behind(tmp_path, monkeypatch):
    old, new = tmp_path / "old", tmp_path / "new"
    (old / "mlartifacts").mkdir(parents=True)
    new.mkdir()
    _mlflow_like_db(new, old)  # only mlflow.db came along
    monkeypatch.setenv("MLPATH_HOME", str(new))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(HomeError, match="move the whole MLPATH_HOME folder, not only mlflow.db"):
        rehome_mlflow(new)
    assert _rows(new / "mlflow.db", "SELECT artifact_location FROM experiments")[1][0].startswith(
        (old / "mlartifacts").as_uri())


def test_rehome_mlflow_leaves_a_tracking_server_alone(tmp_path, monkeypatch):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    _mlflow_like_db(old, old)
    old.rename(new)
    monkeypatch.setenv("MLPATH_HOME", str(new))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert rehome_mlflow(new) == []


# After the move: what `mlpath` does first (prepare_home), then a new MLflow run writes an
# artifact and the champion loads. Prints the new run's artifact URI.
AFTER_THE_MOVE = textwrap.dedent("""
    import mlflow
    from pipeline import registry
    from pipeline.settings import prepare_home

    prepare_home()
    with mlflow.start_run(experiment_id=registry.ensure_experiment("mlpath-unit01")) as run:
        mlflow.log_text("after the move", "probe.txt")
    champion = mlflow.pyfunc.load_model("models:/mlpath-unit01@champion")
    print("ARTIFACTS", run.info.artifact_uri)
""")


@pytest.mark.slow
def test_a_moved_home_keeps_the_champion_loadable_and_never_writes_the_old_path(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    first = subprocess.run([sys.executable, "-m", "pipeline", "run", "unit01", "--profile", "quick"],
                           cwd=REPO, env=_env(old), capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-4000:]
    old.rename(new)

    after = subprocess.run([sys.executable, "-c", AFTER_THE_MOVE], cwd=tmp_path, env=_env(new),
                           capture_output=True, text=True, timeout=300)
    assert after.returncode == 0, after.stderr[-4000:]
    assert (f"MLPATH_HOME moved: MLflow artifact locations re-rooted {old / 'mlartifacts'} → "
            f"{new / 'mlartifacts'}") in after.stderr
    artifacts = after.stdout.split("ARTIFACTS ")[1].strip()
    assert artifacts.startswith((new / "mlartifacts").as_uri())
    assert not old.exists()  # nothing recreated the old folder
    assert list((new / "mlartifacts").rglob("probe.txt"))
