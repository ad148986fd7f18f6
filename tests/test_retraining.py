"""Drift-triggered retraining that can change the model: the monitor validates a labelled batch,
measures its drift against the champion's reference and retrains with the batch appended.

The world changes in ``titanic_batch(world="new")``: a few hundred Titanic rows that all boarded at
Queenstown (a covariate shift the monitor sees, PSI on Embarked) and whose survival follows a new
rule, a fare threshold (cheap tickets survive): a concept drift the old champion cannot know. The
retraining run, with the batch appended, wins on its holdout of old and new rows and becomes
champion; a batch from the unchanged world triggers nothing, and an unlabelled one is quarantined.
The flows run in-process on the Prefect test harness; ``run_deployment`` is replaced by a recorder
and the retraining is called with the parameters the monitor passed, as a worker would.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pipeline.data import load_dataset
from pipeline.params import UnitParams
from pipeline.validation import DataValidationError, validate_frame, validation_frame

FIRST_NEW_ID = 892  # Kaggle's train.csv holds PassengerId 1-891


def titanic_batch(folder: Path, world: str = "same", rows: int = 300, seed: int = 1,
                  labelled: bool = True) -> Path:
    """A labelled batch of ``rows`` Titanic passengers drawn from train.csv, with new ids and names.

    ``world="same"``: the rows as they are (same distribution, same labels). ``world="new"``: every
    passenger boarded at Queenstown and survival depends on the fare alone (Fare < 10 survives).
    """
    from conftest import MIRROR

    train = pd.read_csv(MIRROR / "titanic" / "train.csv")
    rng = np.random.default_rng(seed)
    batch = train.iloc[rng.choice(len(train), rows, replace=False)].reset_index(drop=True)
    batch["PassengerId"] = np.arange(FIRST_NEW_ID, FIRST_NEW_ID + rows)
    batch["Name"] = batch["Name"] + [f" (batch {seed}, #{i})" for i in range(rows)]
    if world == "new":
        batch["Embarked"] = "Q"
        batch["Survived"] = (batch["Fare"] < 10).astype("int64")
    if not labelled:
        batch = batch.drop(columns="Survived")
    path = folder / f"titanic-{world}-{seed}{'' if labelled else '-unlabelled'}.csv"
    batch.to_csv(path, index=False)
    return path


# --- appending rows: parameters, catalog, validation ------------------------------------------

def test_append_files_takes_one_path_or_several_and_only_tabular_catalog_files():
    assert UnitParams(append_files={"titanic/train.csv": "/a.csv"}).append_files == {"titanic/train.csv": ["/a.csv"]}
    both = UnitParams(append_files={"titanic/train.csv": ["/a.csv", "/b.csv"]})
    assert both.append_files["titanic/train.csv"] == ["/a.csv", "/b.csv"]
    with pytest.raises(ValueError, match="no catalog file titanic/trian.csv to append rows to; valid: titanic/tr"):
        UnitParams(append_files={"titanic/trian.csv": "/a.csv"})
    with pytest.raises(ValueError, match="no catalog file mnist/train-images-idx3-ubyte.gz"):
        UnitParams(append_files={"mnist/train-images-idx3-ubyte.gz": "/a.csv"})


def test_appended_rows_join_the_split_and_the_data_ref(tmp_path):
    batch = titanic_batch(tmp_path, rows=120)
    plain = load_dataset("titanic")
    grown = load_dataset("titanic", append={"train.csv": [str(batch)]})
    assert len(grown.splits["train"]) == 891 + 120 and grown.appended_rows == 120
    pd.testing.assert_frame_equal(grown.splits["train"].iloc[:891], plain.splits["train"])
    assert grown.ref.rows == plain.ref.rows + 120 and grown.ref.version != plain.ref.version
    assert grown.ref.appended.startswith(f"train.csv+={batch} (120 rows, sha256 ")
    assert grown.ref.source == f"{plain.ref.source};append:{batch}"
    assert grown.ref.as_dict()["appended"] == grown.ref.appended and "appended" not in plain.ref.as_dict()
    with pytest.raises(ValueError, match="no file.*'Survived.csv'.*to append rows to"):
        load_dataset("titanic", append={"Survived.csv": [str(batch)]})


def test_appended_rows_are_validated_with_the_catalog_rows(tmp_path):
    grown = load_dataset("titanic", append={"train.csv": [str(titanic_batch(tmp_path))]})
    frame = validation_frame("titanic", grown.splits)
    assert validate_frame(frame, "titanic", extra_rows=grown.appended_rows).success
    # the row-count bounds move by the appended rows only: without them 1191 rows are too many
    with pytest.raises(DataValidationError, match="row_count"):
        validate_frame(frame, "titanic", quarantine_dir=tmp_path / "q")
    # a batch that repeats passengers breaks uniqueness in the data it joins
    again = load_dataset("titanic", append={"train.csv": [str(titanic_batch(tmp_path)), str(titanic_batch(tmp_path))]})
    with pytest.raises(DataValidationError, match="PassengerId"):
        validate_frame(validation_frame("titanic", again.splits), "titanic", extra_rows=again.appended_rows,
                       quarantine_dir=tmp_path / "q")


def test_champion_params_come_back_from_mlflow_strings():
    from pipeline.registry import _param_value
    from pipeline.units.unit06_evaluation import Unit06Params
    from tasks.monitor import params_from_run, with_batch

    params = Unit06Params(profile="quick", seed=3, test_size=0.3, max_depth_range=[1, 3],
                          data_files={"titanic/train.csv": "/d/train.csv"},
                          append_files={"titanic/train.csv": ["/d/b1.csv"]})
    logged = {key: str(_param_value(value)) for key, value in params.model_dump().items()}
    assert params_from_run("unit06", logged) == params
    assert params_from_run("unit06", {"seed": "7"}) == Unit06Params(seed=7)
    grown = with_batch(params, "titanic/train.csv", "/d/b2.csv")
    assert grown.append_files == {"titanic/train.csv": ["/d/b1.csv", "/d/b2.csv"]}
    assert params.append_files == {"titanic/train.csv": ["/d/b1.csv"]}  # not changed in place
    assert with_batch(grown, "titanic/train.csv", "/d/b2.csv") == grown


# --- the world changes: monitor, retraining, promotion (in-process) ----------------------------

@pytest.fixture
def started(monkeypatch) -> list[dict]:
    """``run_deployment`` replaced by a recorder: the runs the monitor would start."""
    import tasks.monitor

    calls: list[dict] = []

    def record(name, parameters=None, timeout=None, tags=None, **_):
        calls.append({"name": name, "parameters": parameters, "tags": tags})
        return SimpleNamespace(id=uuid.uuid4(), name=f"recorded-{len(calls)}")

    monkeypatch.setattr(tasks.monitor, "run_deployment", record)
    return calls


@pytest.mark.slow
def test_a_changed_world_retrains_on_the_new_batch_and_changes_the_champion(prefect_harness, fresh_home,
                                                                            tmp_path, started):
    from flows.monitoring import drift_monitor
    from flows.unit06_evaluation import unit06_evaluation
    from pipeline.features import split_titanic
    from pipeline.registry import CHAMPION, client
    from pipeline.units.unit06_evaluation import Unit06Params

    first = unit06_evaluation(Unit06Params(profile="quick", cv_folds=3, max_depth_range=[1, 3, 6]))
    assert (first["version"], first["alias"]) == ("1", "champion")

    # the same world: valid, no drift against the champion's reference, nothing starts
    steady = drift_monitor(unit="unit06", recent_path=str(titanic_batch(tmp_path, "same")))
    assert steady["reference"] == "champion v1" and steady["validation"]["passed"]
    assert not steady["triggered"] and steady["max_psi"] < 0.2 and started == []

    # an unlabelled batch cannot be appended: quarantined with its failures, nothing starts
    unlabelled = drift_monitor(unit="unit06", recent_path=str(titanic_batch(tmp_path, "new", labelled=False)))
    assert not unlabelled["triggered"] and not unlabelled["validation"]["passed"] and started == []
    assert "expect_column_values_to_not_be_null on column 'Survived'" in unlabelled["validation"]["summary"]
    assert Path(unlabelled["quarantined"]).is_file() and "drifted" not in unlabelled

    # the new world: drift on Embarked, retraining started on the champion's parameters + the batch
    changed = drift_monitor(unit="unit06", recent_path=str(titanic_batch(tmp_path, "new")))
    assert changed["triggered"] and changed["validation"]["passed"] and "Embarked" in changed["drifted_features"]
    assert [(c["name"], c["tags"]) for c in started] == [("unit06-evaluation/retrain-unit06", ["drift-triggered"])]
    parameters = started[0]["parameters"]
    assert parameters == changed["retraining_parameters"]
    kept = parameters["params"]["append_files"]["titanic/train.csv"]
    assert len(kept) == 1 and kept[0].startswith(str(fresh_home / "batches" / "titanic"))
    assert {k: parameters["params"][k] for k in ("profile", "seed", "cv_folds", "max_depth_range")} == {
        "profile": "quick", "seed": 0, "cv_folds": 3, "max_depth_range": [1, 3, 6]}

    # what the worker would run: the retraining flow with those parameters (JSON, as the API sends them)
    retrained = unit06_evaluation(**json.loads(json.dumps(parameters)))
    assert (retrained["version"], retrained["alias"]) == ("2", "champion"), retrained["reason"]
    assert "on the same holdout" in retrained["reason"]  # the champion was re-scored on the new holdout
    run = client().get_run(retrained["run_id"])
    assert json.loads(run.data.params["append_files"]) == {"titanic/train.csv": kept}
    assert run.data.params["data.titanic.appended"].startswith(f"train.csv+={kept[0]} (300 rows")
    assert run.data.params["data.titanic.rows"] == str(891 + 300 + 418)

    # on the retraining run's holdout (old and new rows), the new model beats the old champion
    import mlflow.sklearn
    from sklearn.metrics import f1_score

    grown = load_dataset("titanic", append={"train.csv": kept})
    holdout = split_titanic(grown.splits["train"], 0.25, 0)
    old, new = (mlflow.sklearn.load_model(f"models:/mlpath-unit06/{v}") for v in ("1", "2"))
    old_f1, new_f1 = (f1_score(holdout.y_test, m.predict(holdout.X_test)) for m in (old, new))
    assert new_f1 > old_f1 + 0.05 and retrained["value"] == pytest.approx(new_f1)
    assert str(client().get_model_version_by_alias("mlpath-unit06", CHAMPION).version) == "2"

    # the next check measures against the new champion's reference: its data with the batch in it
    after = drift_monitor(unit="unit06")
    assert after["reference"] == "champion v2" and after["reference_rows"] == 1191 - 298
