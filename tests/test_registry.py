"""MLflow registration and the champion/challenger rule."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from pipeline.registry import CHALLENGER, CHAMPION, beats, client, latest_results, log_unit_run
from pipeline.report import UnitReport
from pipeline.scratch import DecisionTreeClassifier

X = np.array([[0.0], [1.0], [2.0], [3.0]])
Y = np.array([0, 0, 1, 1])


def _report(value: float, *, greater_is_better: bool = True, model=None) -> UnitReport:
    return UnitReport(unit="unit99", primary_metric="score", greater_is_better=greater_is_better,
                      params={"profile": "quick", "grid": [1, 2]}, metrics={"score": value},
                      model=model if model is not None else LogisticRegression().fit(X, Y),
                      model_example=X[:2])


def _champion_version() -> str:
    return str(client().get_model_version_by_alias("mlpath-unit99", CHAMPION).version)


def test_worse_model_never_takes_champion(fresh_home):
    first = log_unit_run(_report(0.8))
    assert (first.version, first.alias, first.champion_before) == ("1", CHAMPION, None)

    worse = log_unit_run(_report(0.7))
    assert (worse.version, worse.alias, worse.champion_before) == ("2", CHALLENGER, 0.8)
    assert _champion_version() == "1"

    tie = log_unit_run(_report(0.8))
    assert tie.alias == CHALLENGER and _champion_version() == "1"

    better = log_unit_run(_report(0.9))
    assert better.alias == CHAMPION and _champion_version() == "4"
    aliases = client().get_model_version("mlpath-unit99", "2").aliases
    assert CHAMPION not in aliases


def test_lower_is_better_metric(fresh_home):
    log_unit_run(_report(0.5, greater_is_better=False))
    assert log_unit_run(_report(0.6, greater_is_better=False)).alias == CHALLENGER
    assert log_unit_run(_report(0.4, greater_is_better=False)).alias == CHAMPION
    assert _champion_version() == "3"


def test_run_records_params_metrics_artifacts_and_loads_back(fresh_home):
    import mlflow.sklearn

    tree = DecisionTreeClassifier(max_depth=2).fit(X, Y)
    registration = log_unit_run(_report(1.0, model=tree))
    run = client().get_run(registration.run_id)
    assert run.data.metrics["score"] == 1.0
    assert run.data.params["grid"] == "[1, 2]"
    assert run.data.tags["mlpath.profile"] == "quick"
    assert "summary.md" in {a.path for a in client().list_artifacts(registration.run_id)}
    assert str(fresh_home) in run.info.artifact_uri

    loaded = mlflow.sklearn.load_model("models:/mlpath-unit99@champion")
    np.testing.assert_array_equal(loaded.predict(X), tree.predict(X))

    results = latest_results(["unit99", "unit98"])
    assert list(results) == ["unit99"]
    assert results["unit99"]["metrics"] == {"score": 1.0}
    assert results["unit99"]["champion_version"] == "1"
    assert results["unit99"]["aliases"] == ["champion"]


def test_missing_primary_metric_logs_nothing(fresh_home):
    report = _report(0.5)
    report.primary_metric = "accuracy"
    with pytest.raises(KeyError, match="primary metric 'accuracy' was not computed"):
        log_unit_run(report)
    assert client().search_runs([client().get_experiment_by_name("mlpath-unit99").experiment_id]) == []


@pytest.mark.parametrize("new, new_profile, old, old_profile, expected", [
    (0.9, "full", 0.8, "full", True),
    (0.8, "full", 0.8, "full", False),  # a tie keeps the champion
    (0.99, "quick", 0.5, "full", False),  # quick numbers are not comparable with full ones
    (0.5, "full", 0.99, "quick", True),
    (None, "full", 0.5, "full", False),
    (0.5, "full", None, "full", True),
])
def test_champion_rule(new, new_profile, old, old_profile, expected):
    assert beats(new, new_profile, old, old_profile) is expected


def test_quick_run_never_displaces_a_full_champion(fresh_home):
    full = _report(0.7)
    full.params["profile"] = "full"
    assert log_unit_run(full).alias == CHAMPION
    assert log_unit_run(_report(0.99)).alias == CHALLENGER  # quick profile
    assert _champion_version() == "1"


def _champion_predicts_in_a_fresh_process(home, flavor: str, rows: str, dtype: str) -> str:
    """Load the champion with ``mlflow.<flavor>`` in a new interpreter and predict ``rows``."""
    import subprocess
    import sys

    from pipeline.settings import tracking_uri

    code = (f"import mlflow, numpy as np; mlflow.set_tracking_uri({tracking_uri()!r}); "
            f"m = mlflow.{flavor}.load_model('models:/mlpath-unit99@champion'); "
            f"print(m.predict(np.array({rows}, dtype=np.{dtype})).tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=home)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_model_loads_with_its_code_in_a_fresh_process(fresh_home):
    tree = DecisionTreeClassifier(max_depth=2).fit(X, Y)
    log_unit_run(_report(1.0, model=tree))
    # pyfunc enforces the logged signature: float64 columns, like the example rows
    assert _champion_predicts_in_a_fresh_process(fresh_home, "pyfunc", "[[0.0], [3.0]]", "float64") == "[0, 1]"


def test_torch_model_is_pickled_and_loads_in_a_fresh_process(fresh_home):
    from functools import partial

    import torch

    from pipeline.registry import holds_torch
    from pipeline.training import TorchClassifier, TrainConfig

    # the factory must be importable where the model loads: a library class, not a test function
    model = TorchClassifier(partial(torch.nn.Linear, 1, 2), TrainConfig(epochs=200, batch_size=4, lr=0.1)).fit(
        X.astype(np.float32), Y)
    assert holds_torch(model)
    expected = model.predict(X.astype(np.float32)).tolist()
    log_unit_run(_report(1.0, model=model))
    rows = "[[0.0], [1.0], [2.0], [3.0]]"
    assert _champion_predicts_in_a_fresh_process(fresh_home, "sklearn", rows, "float32") == str(expected)
