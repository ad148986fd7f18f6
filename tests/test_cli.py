"""The mlpath command: exit codes, messages, start-up cost."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from pipeline.app.cli import main, run_table
from pipeline.app.progress import outline
from pipeline.units import all_units

from conftest import MIRROR, planned_ids

PLANNED, UNBUILT = planned_ids()


@pytest.fixture(autouse=True, scope="module")
def _planned(planned_units):
    """The planned units these tests show, stand-ins where the path has too few."""


HEAVY = ("torch", "great_expectations", "mlflow", "prefect", "sklearn", "pandas")


@pytest.mark.parametrize("argv", [["--help"], ["list"]])
def test_help_and_list_import_nothing_heavy(argv):
    code = (f"import sys\nfrom pipeline.app.cli import main\ntry:\n    main({argv!r})\n"
            "except SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_list_shows_every_unit(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for unit in all_units():
        assert unit.id in out
    assert "yes" in out and "no" in out


@pytest.mark.parametrize("argv, message", [
    (["run", "unit99"], "valid units: unit01, unit02"),
    (["run", PLANNED], f"not implemented yet: {PLANNED}; built units: unit01, unit02"),
    (["run", "unit01", "--set", "bogus=1"], "unknown parameter(s) bogus for unit01; valid:"),
    (["run", "unit04", "--set", "max_depth=0"], "unit04: max_depth: Input should be greater than or equal to 1"),
    (["run", "unit01", "--set", "novalue"], "--set expects key=value"),
    (["run", "unit06", "--set", "max_depth_range=[]"], "unit06: max_depth_range: List should have at least 2"),
    (["run", "unit04", "--set", "max_depth=3", "--set", "max_depth.x=1"], "max_depth was already set to 3"),
    (["run", "unit04", "--set", "max_depth=true"], "max_depth: Input should be a valid integer, got true (bool)"),
    (["run", "unit04", "--set", "max_depth=2.0"], "max_depth: Input should be a valid integer, got 2.0 (float)"),
    (["run", "unit04", "--set", "cv_folds=1"], "unit04: cv_folds: Value error, cv_folds=1 is no cross-validation"),
    (["run", "unit06", "--set", "cv_folds=1"], "unit06: cv_folds: Value error, cv_folds=1 is no cross-validation"),
    (["run", "unit04", "--set", "data_files.titanc/train.csv=/tmp/x.csv"],
     "unknown catalog file(s) titanc/train.csv; valid: titanic/train.csv"),
])
def test_bad_run_arguments_exit_2_naming_valid_choices(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_profile_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "unit01", "--profile", "huge"])
    assert exc.value.code == 2
    assert "choose from 'quick', 'full'" in capsys.readouterr().err


def test_runner_is_a_setting_checked_before_anything_starts(monkeypatch, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "unit01", "--runner", "ray"])
    assert exc.value.code == 2 and "choose from 'threads', 'dask', 'sequential'" in capsys.readouterr().err
    monkeypatch.setenv("MLPATH_TASK_RUNNER", "ray")
    assert main(["run", "unit01"]) == 2
    assert "MLPATH_TASK_RUNNER='ray': choose one of threads, dask, sequential" in capsys.readouterr().err
    monkeypatch.setenv("MLPATH_PATH_CONCURRENCY", "none")
    assert main(["run", "unit01", "--runner", "dask"]) == 2  # the flag replaced the variable for the run
    assert "MLPATH_PATH_CONCURRENCY='none': expected a whole number >= 1" in capsys.readouterr().err
    assert os.environ["MLPATH_TASK_RUNNER"] == "ray"  # and only for the run


def test_an_interrupted_summary_lists_every_unit_that_was_running(capsys):
    from flows.learning_path import Progress
    from pipeline.app.cli import _print_interrupted

    progress = Progress()
    progress.start("run-id", ["unit01", "unit02", "unit04", "unit05"], [
        {"unit": "unit01", "status": "succeeded", "primary_metric": "test_accuracy", "value": 1.0}])
    progress.running = ["unit02", "unit04"]
    _print_interrupted("quick", progress.units, progress, "interrupted by SIGINT (Ctrl-C)")
    out, err = capsys.readouterr()
    assert out.count("interrupted by SIGINT") == 2 and "unit02" in out and "unit04" in out
    assert progress.current == "unit02"
    assert err.strip() == "mlpath run interrupted by SIGINT (Ctrl-C); not run: unit05"


def test_run_table_says_why_a_version_is_challenger_and_shows_errors_only_on_failure():
    won = {"unit": "unit01", "status": "succeeded", "primary_metric": "test_accuracy", "value": 1.0,
           "version": "2", "alias": "challenger", "reason": "tied champion v1 at 1.0000 (quick)",
           "run_name": "unit01-quick-amber-moose"}
    columns, rows = run_table([won])
    assert "error" not in columns
    assert dict(zip(columns, rows[0])) == {
        "unit": "unit01", "status": "succeeded", "metric": "test_accuracy", "value": "1.0000",
        "model": "v2 @challenger", "why": "tied champion v1 at 1.0000 (quick)",
        "MLflow run": "unit01-quick-amber-moose"}
    failed = {"unit": "unit04", "status": "failed", "primary_metric": "test_accuracy",
              "error": "DataValidationError: 2 expectations failed\ndetails"}
    columns, rows = run_table([won, failed])
    assert columns[-1] == "error" and rows[0][-1] == ""
    assert dict(zip(columns, rows[1]))["error"] == "DataValidationError: 2 expectations failed"


def test_progress_compact_prints_one_line_per_item(fresh_home, capsys):
    assert main(["progress", "--compact"]) == 0
    lines = capsys.readouterr().out.splitlines()
    items = outline()
    assert len(lines) == len(items) + 1 and lines[0].startswith("mlpath progress: ")
    for line, item in zip(lines[1:], items):
        assert line.split()[0] == item.id and item.title in line


def mlpath(*args: str) -> subprocess.CompletedProcess:
    """The installed command in a fresh process, as a user runs it (its own ephemeral Prefect API)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_HOME", "MLFLOW_TRACKING_URI", "PREFECT_API_URL")}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                          timeout=600, env={**env, "COLUMNS": "200"})


@pytest.mark.slow
def test_run_then_results_json(fresh_home):
    run = mlpath("run", "unit01", "--profile", "quick")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "unit01" in run.stdout and "succeeded" in run.stdout and "@champion" in run.stdout
    assert (fresh_home / "prefect").is_dir() and (fresh_home / "mlflow.db").is_file()

    results_run = mlpath("results", "--json")
    assert results_run.returncode == 0, results_run.stderr[-3000:]
    results = json.loads(results_run.stdout)
    assert list(results) == ["unit01"]
    assert results["unit01"]["champion_version"] == "1"
    assert results["unit01"]["profile"] == "quick"
    assert 0.8 <= results["unit01"]["metrics"]["test_accuracy"] <= 1.0


@pytest.mark.slow
def test_corrupted_titanic_stops_unit04_before_training(fresh_home, tmp_path):
    train = pd.read_csv(MIRROR / "titanic" / "train.csv")
    train.loc[:9, "Survived"] = None
    train.loc[:4, "Age"] = -5.0
    corrupted = tmp_path / "train.csv"
    train.to_csv(corrupted, index=False)

    captured = mlpath("run", "unit04", "--profile", "quick",
                      "--set", f"data_files.titanic/train.csv={corrupted}")

    assert captured.returncode == 1
    assert "unit04" in captured.stdout and "failed" in captured.stdout
    assert "DataValidationError" in captured.stderr
    assert "expect_column_values_to_not_be_null" in captured.stderr and "Survived" in captured.stderr
    assert "expect_column_values_to_be_between" in captured.stderr and "Age" in captured.stderr
    assert list((fresh_home / "quarantine").glob("titanic-*"))

    from pipeline.registry import client
    mlflow_client = client()
    assert mlflow_client.search_registered_models() == []
    experiment = mlflow_client.get_experiment_by_name("mlpath-unit04")
    assert experiment is None or mlflow_client.search_runs([experiment.experiment_id]) == []
