"""MLflow registration and the champion/challenger rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from pipeline.data import DataRef
from pipeline.registry import (
    CHALLENGER,
    CHAMPION,
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING,
    NOTE_TAG,
    PREFECT_FLOW_RUN_ID,
    PREFECT_FLOW_RUN_NAME,
    PREFECT_FLOW_RUN_URL,
    beats,
    client,
    ensure_experiment,
    latest_results,
    load_version,
    log_unit_run,
    promotion_reason,
)
from pipeline.report import ExtraModel, UnitReport
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


def test_a_named_model_and_an_extra_model_register_each_under_its_own_name(fresh_home):
    def report(score: float, fid: float) -> UnitReport:
        base = _report(score)
        base.model_name = "mlpath-named"
        base.metrics["fid"] = fid
        base.extra_models = {"generator": ExtraModel(LogisticRegression().fit(X, 1 - Y), "fid",
                                                     greater_is_better=False, example=X[:2])}
        return base

    first = log_unit_run(report(0.8, fid=30.0))
    assert (first.model_name, first.alias) == ("mlpath-named", CHAMPION)
    [extra] = first.extras
    assert (extra.model_name, extra.version, extra.alias) == ("mlpath-named-generator", "1", CHAMPION)
    assert "mlpath-named-generator v1 @champion" in first.describe()
    # each is promoted on its own metric: a better main model with a worse generator
    second = log_unit_run(report(0.9, fid=40.0))
    assert (second.alias, second.extras[0].alias) == (CHAMPION, CHALLENGER)
    assert second.as_dict()["extras"][0]["champion_before"] == 30.0
    generator = load_version("mlpath-named-generator", "1")
    assert generator.predict(X).tolist() == (1 - Y).tolist()  # the extra model, not the main one
    assert not client().search_registered_models("name = 'mlpath-unit99'")


def test_an_extra_model_without_its_metric_logs_nothing(fresh_home):
    report = _report(0.8)
    report.extra_models = {"generator": ExtraModel(LogisticRegression().fit(X, Y), "fid")}
    with pytest.raises(KeyError, match="'fid'"):
        log_unit_run(report)
    assert not client().search_registered_models()


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


def test_torch_model_is_stored_without_pickle_and_loads_in_a_fresh_process(fresh_home):
    from functools import partial

    import torch

    from pipeline.registry import holds_torch
    from pipeline.training import TorchClassifier, TrainConfig

    # the factory must be importable where the model loads: a library class, not a test function
    model = TorchClassifier(partial(torch.nn.Linear, 1, 2), TrainConfig(epochs=200, batch_size=4, lr=0.1)).fit(
        X.astype(np.float32), Y)
    assert holds_torch(model)
    expected = model.predict(X.astype(np.float32)).tolist()
    registration = log_unit_run(_report(1.0, model=model))
    rows = "[[0.0], [1.0], [2.0], [3.0]]"
    # pyfunc enforces the logged signature (float64 example rows); the model casts to float32
    assert _champion_predicts_in_a_fresh_process(fresh_home, "pyfunc", rows, "float64") == str(expected)
    import mlflow.artifacts

    files = {p.name for p in Path(mlflow.artifacts.download_artifacts(
        f"models:/{registration.model_name}/{registration.version}")).rglob("*") if p.is_file()}
    assert {"weights.safetensors", "config.json"} <= files
    assert not {f for f in files if f.endswith((".pkl", ".pickle", ".skops"))}
    loaded = load_version(registration.model_name, registration.version)  # what promotion re-scores
    assert loaded.predict(X.astype(np.float32)).tolist() == expected


# --- what a person sees in MLflow: names, links to Prefect, descriptions, datasets ---------------

VERSION = "ab12cd34ef" + "0" * 54
PREFECT_TAGS = {PREFECT_FLOW_RUN_ID: "0f1e2d3c", PREFECT_FLOW_RUN_NAME: "amber-moose",
                PREFECT_FLOW_RUN_URL: "http://127.0.0.1:4200/flow-runs/flow-run/0f1e2d3c"}


def _with_data(report: UnitReport) -> UnitReport:
    report.data_refs = [
        DataRef("titanic", VERSION, 891, "mirror:/data/titanic", "quick"),
        DataRef("cifar10", "9" * 64, 60000, "download:https://example.org/cifar-10.tar.gz", "quick"),
        DataRef("iris", "1" * 64, 150, "sklearn", "quick"),
    ]
    return report


def test_run_is_named_after_the_prefect_flow_run_and_links_back(fresh_home):
    report = _with_data(_report(0.8))
    registration = log_unit_run(report, run_name="unit99-quick-amber-moose", tags=PREFECT_TAGS)
    run = client().get_run(registration.run_id)
    assert run.info.run_name == registration.run_name == "unit99-quick-amber-moose"
    assert {k: run.data.tags[k] for k in PREFECT_TAGS} == PREFECT_TAGS
    note = run.data.tags[NOTE_TAG]
    assert note.startswith(report.summary_markdown())
    assert "Prefect flow run: [amber-moose](http://127.0.0.1:4200/flow-runs/flow-run/0f1e2d3c)" in note

    datasets = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(datasets) == {"titanic", "cifar10", "iris"}
    titanic = datasets["titanic"]
    assert titanic.dataset.digest == "ab12cd34ef"
    assert (titanic.dataset.source_type, titanic.dataset.source) == ("local", '{"uri": "file:///data/titanic"}')
    assert {(t.key, t.value) for t in titanic.tags} == {("mlflow.data.context", "training")}
    assert '"rows": 891' in titanic.dataset.profile and VERSION in titanic.dataset.profile
    cifar = datasets["cifar10"].dataset
    assert (cifar.source_type, cifar.source) == ("http", '{"url": "https://example.org/cifar-10.tar.gz"}')
    assert datasets["iris"].dataset.source_type == "code"

    experiment = client().get_experiment_by_name("mlpath-unit99")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING


def test_outside_a_flow_run_the_name_has_a_timestamp_and_the_note_is_the_summary(fresh_home):
    import re

    report = _report(0.8)
    registration = log_unit_run(report)
    run = client().get_run(registration.run_id)
    assert re.fullmatch(r"unit99-quick-\d{8}-\d{6}", run.info.run_name)
    assert run.data.tags[NOTE_TAG] == report.summary_markdown()
    assert PREFECT_FLOW_RUN_ID not in run.data.tags and run.inputs.dataset_inputs == []
    assert registration.run_url is None


def test_a_long_summary_is_cut_to_fit_the_description(fresh_home):
    report = _report(0.8)
    report.notes = "a line of notes\n" * 1000
    run = client().get_run(log_unit_run(report, tags=PREFECT_TAGS).run_id)
    note = run.data.tags[NOTE_TAG]
    assert len(note) <= 8000 and "the whole summary is the run's summary.md artifact" in note
    assert note.rstrip().endswith("(http://127.0.0.1:4200/flow-runs/flow-run/0f1e2d3c)")


def test_the_run_links_to_the_mlflow_ui_when_its_address_is_known(fresh_home, monkeypatch):
    monkeypatch.setenv("MLPATH_MLFLOW_UI_URL", "http://127.0.0.1:5000/")
    registration = log_unit_run(_report(0.8))
    experiment_id = client().get_experiment_by_name("mlpath-unit99").experiment_id
    assert registration.run_url == (f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/"
                                    f"{registration.run_id}?workflowType=machine_learning")


def test_an_experiment_made_before_the_kind_tag_gets_it(fresh_home):
    experiment_id = client().create_experiment("mlpath-unit98")
    assert ensure_experiment("mlpath-unit98") == experiment_id
    assert client().get_experiment(experiment_id).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING


def _description(version: str) -> str:
    return client().get_model_version("mlpath-unit99", version).description


def test_model_versions_say_why_they_are_champion_or_challenger(fresh_home):
    first = log_unit_run(_report(0.8))
    assert first.reason == "first version, score 0.8000 (quick)"
    assert _description("1") == "champion: first version, score 0.8000 (quick)"

    tie = log_unit_run(_report(0.8))
    assert tie.reason == "tied champion v1 at 0.8000 (quick)"
    assert _description("2") == "challenger: tied champion v1 at 0.8000 (quick)"
    assert tie.describe() == "mlpath-unit99 v2 @challenger: tied champion v1 at 0.8000 (quick)"

    better = log_unit_run(_report(0.9))
    assert _description("3") == "champion: score 0.9000 beats v1's 0.8000 (quick)"
    assert better.as_dict()["reason"] == "score 0.9000 beats v1's 0.8000 (quick)"


@pytest.mark.parametrize("args, expected", [
    (("acc", 0.81, "quick", "3", 0.8, "quick"), "acc 0.8100 beats v3's 0.8000 (quick)"),
    (("acc", 0.79, "full", "3", 0.8, "full"), "acc 0.7900 does not beat champion v3's 0.8000 (full)"),
    (("acc", 0.800001, "full", "3", 0.8, "full"), "acc 0.800001 beats v3's 0.800000 (full)"),
    (("acc", 0.99, "quick", "2", 0.7, "full"), "a quick run never displaces full champion v2 (acc 0.9900 vs 0.7000)"),
    (("acc", 0.5, "full", "2", 0.99, "quick"),
     "a full run replaces v2's quick one (acc 0.5000 vs 0.9900; profiles are not compared)"),
    (("acc", None, "full", "2", 0.5, "full"), "logged no acc; champion v2 stays"),
    (("acc", 0.5, "full", "2", None, "full"), "acc 0.5000 (full); champion v2 logged no acc"),
    (("mse", 0.2, "full", "4", 0.3, "full", False), "mse 0.2000 beats v4's 0.3000 (full, lower is better)"),
])
def test_promotion_reason(args, expected):
    assert promotion_reason(*args) == expected


def test_table_artifact_rows_have_no_index_and_counts_as_integers():
    import pandas as pd

    from tasks import table_rows

    plain = pd.DataFrame({"feature": ["Age", "Fare"], "rows": [150.0, 30.0], "psi": [0.1234567, float("nan")]})
    assert table_rows(plain) == [{"feature": "Age", "rows": 150, "psi": 0.123457},
                                 {"feature": "Fare", "rows": 30, "psi": None}]
    named = pd.DataFrame({"accuracy": [1.0, 0.95]}, index=pd.Index(["ours", "sklearn"], name="model"))
    assert table_rows(named) == [{"model": "ours", "accuracy": 1.0}, {"model": "sklearn", "accuracy": 0.95}]
    assert table_rows(pd.DataFrame({"n": [3]}, index=["a"])) == [{"name": "a", "n": 3}]
    assert table_rows([{"metric": "n_train", "value": 150.0}, {"metric": "acc", "value": 0.5}]) == [
        {"metric": "n_train", "value": 150}, {"metric": "acc", "value": 0.5}]


# --- the registry never lies: same holdout, NaN, registry errors, one lock, atomic registration ---

def _holdout(labels: list[int], features: int = 1) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(len(labels) * features, dtype=float).reshape(len(labels), features), np.array(labels)


def _scored(model, holdout, *, metric: str = "test_accuracy", profile: str = "quick") -> UnitReport:
    """A report as a unit flow makes it: the model's metrics by the shared evaluation on ``holdout``."""
    from pipeline.evaluation import evaluate

    X, y = holdout
    metrics = evaluate(model, None, None, X, y, cv=0, fit=False).metrics
    return UnitReport(unit="unit99", primary_metric=metric, greater_is_better=True,
                      params={"profile": profile}, metrics=metrics, model=model, model_example=X[:2],
                      holdout=holdout)


def _always(label: int, features: int = 1):
    """A classifier that predicts ``label`` everywhere: its accuracy is that label's share."""
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy="constant", constant=label).fit(np.zeros((2, features)), [0, 1])


def _version_tags(version: str) -> dict[str, str]:
    return client().get_model_version("mlpath-unit99", version).tags


def test_the_champion_is_rescored_on_the_challengers_holdout(fresh_home):
    from pipeline.registry import BASIS_TAG, CHALLENGER_SCORE_TAG, CHAMPION_SCORE_TAG, INCOMPLETE_TAG

    easy_for_zeros = _holdout([0, 0, 0, 1])
    first = log_unit_run(_scored(_always(0), easy_for_zeros))
    assert (first.alias, first.challenger_score) == (CHAMPION, 0.75)

    # logged 0.6 < the champion's logged 0.75, but on these rows the champion scores 0.4
    mostly_ones = _holdout([1, 1, 1, 0, 0])
    second = log_unit_run(_scored(_always(1), mostly_ones))
    assert second.alias == CHAMPION and _champion_version() == "2"
    assert (second.challenger_score, second.champion_score, second.champion_before) == (0.6, 0.4, 0.4)
    assert second.reason == "test_accuracy 0.6000 beats v1's 0.4000 on the same holdout (quick)"
    assert second.basis == "same holdout" and second.as_dict()["champion_score"] == 0.4
    tags = _version_tags("2")
    assert (tags[CHALLENGER_SCORE_TAG], tags[CHAMPION_SCORE_TAG], tags[BASIS_TAG]) == ("0.6", "0.4", "same holdout")
    assert INCOMPLETE_TAG not in tags and tags["mlpath.holdout_rows"] == "5"
    assert _description("2") == "champion: test_accuracy 0.6000 beats v1's 0.4000 on the same holdout (quick)"
    # promotion changes no metric: the run keeps what the unit measured
    assert client().get_run(second.run_id).data.metrics["test_accuracy"] == 0.6

    tie = log_unit_run(_scored(_always(1), mostly_ones))
    assert tie.alias == CHALLENGER and _champion_version() == "2"
    assert tie.reason == "tied champion v2 at 0.6000 on the same holdout (quick)"


def test_an_unscorable_champion_is_replaced_and_a_nan_challenger_never_wins(fresh_home):
    from sklearn.linear_model import LogisticRegression as Logistic

    # the champion knows one feature; the next holdout has two: it cannot be scored there
    log_unit_run(_scored(Logistic().fit(*_holdout([0, 1, 0, 1])), _holdout([0, 1, 1, 0])))
    full_champion = log_unit_run(_scored(Logistic().fit(*_holdout([0, 1, 0, 1])), _holdout([0, 1, 1, 0]),
                                         profile="full"))
    assert full_champion.alias == CHAMPION
    two_features = _holdout([1, 1, 0], features=2)
    valid = log_unit_run(_scored(_always(1, features=2), two_features))  # quick, yet it replaces it
    assert valid.alias == CHAMPION and valid.champion_score is None
    assert valid.reason.startswith("test_accuracy 0.6667 (quick); champion v2 could not be scored on the "
                                   "same holdout (ValueError: X has 2 features")

    # ROC AUC on rows of one class is NaN: it never wins, and never blocks the next valid model
    one_class = _holdout([1, 1, 1], features=2)
    nan = log_unit_run(_scored(Logistic().fit(*_holdout([0, 1, 0, 1], features=2)), one_class,
                               metric="test_roc_auc"))
    assert nan.alias == CHALLENGER and nan.challenger_score is None and _champion_version() == "3"
    assert nan.reason == "scored no test_roc_auc on its holdout (missing or NaN); champion v3 stays"


@pytest.mark.parametrize("new, new_profile, old, old_profile, expected", [
    (float("nan"), "full", 0.5, "full", False),  # a NaN never wins
    (0.5, "full", float("nan"), "full", True),  # ... and never blocks
    (0.5, "quick", float("nan"), "full", True),  # not even across profiles
    (0.5, "quick", None, "full", True),
])
def test_nan_rule(new, new_profile, old, old_profile, expected):
    assert beats(new, new_profile, old, old_profile) is expected


def test_only_a_missing_model_or_alias_means_no_champion(fresh_home, monkeypatch):
    import mlflow
    from mlflow.exceptions import MlflowException

    from pipeline.registry import INCOMPLETE_TAG, current_champion

    assert current_champion(client(), "mlpath-unit99") is None  # no such registered model
    client().create_registered_model("mlpath-unit99")
    assert current_champion(client(), "mlpath-unit99") is None  # no champion alias
    log_unit_run(_scored(_always(0), _holdout([0, 0, 1])))
    assert current_champion(client(), "mlpath-unit99") == "1"

    def unavailable(self, name):
        raise MlflowException("the registry is busy, try again", error_code="TEMPORARILY_UNAVAILABLE")

    with monkeypatch.context() as patch:
        patch.setattr(mlflow.MlflowClient, "get_registered_model", unavailable)
        with pytest.raises(MlflowException, match="busy"):
            log_unit_run(_scored(_always(1), _holdout([1, 1, 1, 0])))  # would win: it must not be crowned
    assert _champion_version() == "1"
    version = client().get_model_version("mlpath-unit99", "2")
    assert version.aliases == [] and version.tags[INCOMPLETE_TAG] == "true"
    assert latest_results(["unit99"])["unit99"]["version"] == "1"


def test_the_register_task_retries():
    from tasks.register import register

    assert register.retries == 2 and register.retry_delay_seconds


def _unpromoted(report: UnitReport, monkeypatch) -> str:
    """Log ``report`` and stop right after "Created version" (a crash before the alias)."""
    import pipeline.registry as registry

    def crash(*args, **kwargs):
        raise RuntimeError("killed after Created version")

    with monkeypatch.context() as patch:
        patch.setattr(registry, "promote_if_better", crash)
        with pytest.raises(RuntimeError, match="killed after Created version"):
            log_unit_run(report)
    return str(max(int(v.version) for v in client().search_model_versions("name = 'mlpath-unit99'")))


def test_two_promotions_at_once_crown_exactly_one(fresh_home, monkeypatch):
    import threading
    import time

    import pipeline.registry as registry

    log_unit_run(_scored(_always(0), _holdout([0, 0, 0, 1])))
    holdout = _holdout([1, 1, 1, 0, 0])
    racers = {_unpromoted(_scored(_always(1), holdout), monkeypatch): None,
              _unpromoted(_scored(_always(1), holdout), monkeypatch): None}
    assert sorted(racers) == ["2", "3"]

    score = registry._champion_score

    def slow_score(*args):  # both read the champion before either sets the alias, unless locked
        time.sleep(1.0)
        return score(*args)

    monkeypatch.setattr(registry, "_champion_score", slow_score)
    start = threading.Barrier(2)

    def promote(version):
        start.wait()
        racers[version] = registry.promote_if_better("mlpath-unit99", version, "test_accuracy",
                                                     holdout=holdout, model=_always(1))

    threads = [threading.Thread(target=promote, args=(v,)) for v in list(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    winners = [v for v, p in racers.items() if p.alias == CHAMPION]
    assert len(winners) == 1 and _champion_version() == winners[0]
    (loser,) = set(racers) - set(winners)
    assert racers[winners[0]].reason == "test_accuracy 0.6000 beats v1's 0.4000 on the same holdout (quick)"
    assert racers[loser].alias == CHALLENGER and racers[loser].compared_with == winners[0]
    assert racers[loser].reason == f"tied champion v{winners[0]} at 0.6000 on the same holdout (quick)"


def test_a_crash_before_the_alias_leaves_an_incomplete_version_nobody_shows(fresh_home, monkeypatch):
    from pipeline.app.site import latest_unit_runs
    from pipeline.registry import INCOMPLETE_TAG

    first = log_unit_run(_scored(_always(0), _holdout([0, 0, 0, 1])))
    crashed = _unpromoted(_scored(_always(1), _holdout([1, 1, 1, 1, 0])), monkeypatch)
    version = client().get_model_version("mlpath-unit99", crashed)
    assert version.aliases == [] and version.tags[INCOMPLETE_TAG] == "true"
    assert client().get_run(version.run_id).info.status == "FINISHED"  # the run ended before the version
    assert _champion_version() == "1"
    assert latest_results(["unit99"])["unit99"]["version"] == "1"
    assert latest_unit_runs(["unit99"])["unit99"]["run_id"] == first.run_id

    later = log_unit_run(_scored(_always(1), _holdout([1, 1, 0])))
    assert (later.version, later.alias) == ("3", CHAMPION)
    assert later.reason == "test_accuracy 0.6667 beats v1's 0.3333 on the same holdout (quick)"
    assert latest_results(["unit99"])["unit99"]["version"] == "3"


def test_a_killed_runs_version_is_marked_and_skipped(fresh_home, monkeypatch):
    from pipeline.app.site import latest_unit_runs
    from pipeline.registry import INCOMPLETE_TAG, INCOMPLETE_WHY_TAG

    first = log_unit_run(_scored(_always(0), _holdout([0, 0, 0, 1])))
    # what kill -9 left under the old order: a version whose run never left RUNNING, no alias
    experiment_id = client().get_experiment_by_name("mlpath-unit99").experiment_id
    running = client().create_run(experiment_id, tags={"mlpath.profile": "quick"})
    client().create_model_version("mlpath-unit99", f"{running.info.artifact_uri}/model", running.info.run_id)
    assert latest_results(["unit99"])["unit99"]["version"] == "1"
    assert latest_unit_runs(["unit99"])["unit99"]["run_id"] == first.run_id

    later = log_unit_run(_scored(_always(1), _holdout([1, 1, 0])))
    assert (later.version, later.alias, _champion_version()) == ("3", CHAMPION, "3")
    leftover = _version_tags("2")
    assert leftover[INCOMPLETE_TAG] == "true" and leftover[INCOMPLETE_WHY_TAG] == "its run is RUNNING, not FINISHED"
    assert latest_results(["unit99"])["unit99"]["version"] == "3"


def test_a_unit_whose_only_version_is_incomplete_shows_nothing(fresh_home, monkeypatch):
    from pipeline.app.site import latest_unit_runs

    _unpromoted(_scored(_always(0), _holdout([0, 0, 1])), monkeypatch)
    assert latest_results(["unit99"]) == {} and latest_unit_runs(["unit99"]) == {}
