"""GX suites: each passes on the real data and catches corrupted copies; quarantine and errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data import load_dataset
from pipeline.validation import (
    DataValidationError,
    ValidationReport,
    expectations_dir,
    load_suite,
    validate_frame,
    validation_frame,
)

from conftest import MIRROR

DATASETS = ["iris", "titanic", "mall_customers", "adult", "mnist", "cifar10", "sst2",
            "tinyshakespeare", "stocks", "line", "digit_strings"]
# Rows of the validation frame, from SOURCES.md and the catalog's quick sizes.
FULL_ROWS = {"iris": 150, "titanic": 891, "mall_customers": 200, "adult": 32561 + 16281,
             "mnist": 70000, "cifar10": 60000, "sst2": 67349 + 872 + 1821,
             "tinyshakespeare": 40000, "stocks": 7983, "line": 1000, "digit_strings": 22000}
QUICK_ROWS = {**FULL_ROWS, "adult": 4000 + 2000, "mnist": 6000 + 1000, "cifar10": 5000 + 1000,
              "sst2": 4000 + 872 + 1000, "digit_strings": 3000 + 200 + 200}
# Full CIFAR-10 hashes a 169 MB archive; quick images keep the pass test fast.
PASS_PROFILE = {"mnist": "quick", "cifar10": "quick"}


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory):
    """``splits(name, profile)``: each dataset loaded once for the module. Do not mutate."""
    if not (MIRROR / "manifest.json").is_file():
        pytest.skip(f"no dataset mirror at {MIRROR}")
    loaded: dict[tuple[str, str], dict] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLPATH_DATA_MIRROR", str(MIRROR))
        mp.setenv("MLPATH_HOME", str(tmp_path_factory.mktemp("data-home")))

        def get(name: str, profile: str = "full") -> dict:
            if (name, profile) not in loaded:
                loaded[name, profile] = load_dataset(name, profile=profile).splits
            return loaded[name, profile]

        yield get


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLPATH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def suite_json(name: str) -> dict:
    return json.loads((expectations_dir() / f"{name}.json").read_text())


def quarantined(folder: Path) -> list[Path]:
    return sorted(folder.glob("*")) if folder.exists() else []


def failing_report(frame: pd.DataFrame, suite: str, folder: Path, **kwargs) -> DataValidationError:
    with pytest.raises(DataValidationError) as caught:
        validate_frame(frame, suite, quarantine_dir=folder, **kwargs)
    return caught.value


# --- the suites on the real data -------------------------------------------------------------


@pytest.mark.parametrize("name", DATASETS)
def test_suite_passes_on_real_data(name: str, splits, tmp_path: Path, home: Path) -> None:
    frame = validation_frame(name, splits(name, PASS_PROFILE.get(name, "full")))
    report = validate_frame(frame, name, quarantine_dir=tmp_path / "q", batch_label="real")
    assert isinstance(report, ValidationReport)
    assert report.success and report.failures == []
    assert report.n_expectations == len(suite_json(name)["expectations"])
    assert report.statistics["unsuccessful_expectations"] == 0
    assert quarantined(tmp_path / "q") == [] and quarantined(home / "quarantine") == []


@pytest.mark.parametrize("name", DATASETS)
def test_suite_is_a_gx_serialisation_with_row_bounds_for_both_profiles(name: str) -> None:
    from great_expectations.core.expectation_suite import ExpectationSuiteSchema

    data = suite_json(name)
    assert data["name"] == name
    loaded = ExpectationSuiteSchema().load(data)
    assert len(loaded["expectations"]) == len(data["expectations"]) == len(load_suite(name).expectations)
    types = [e["type"] for e in data["expectations"]]
    assert {"expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list"} & set(types)
    (bounds,) = [e["kwargs"] for e in data["expectations"]
                 if e["type"] == "expect_table_row_count_to_be_between"]
    assert bounds["min_value"] <= QUICK_ROWS[name] <= FULL_ROWS[name] <= bounds["max_value"]


# --- corrupted copies --------------------------------------------------------------------------


def _null_survived(df):
    df["Survived"] = df["Survived"].astype("float64")
    df.loc[[3, 5, 7], "Survived"] = np.nan


def _negative_age(df):
    df.loc[10, "Age"] = -5.0


def _negative_fare(df):
    df.loc[11, "Fare"] = -7.25


def _drop_fare(df):
    del df["Fare"]


def _pclass_as_strings(df):
    df["Pclass"] = df["Pclass"].astype(str)


@pytest.mark.parametrize(
    ("corrupt", "expectation", "column", "detail"),
    [
        (_null_survived, "expect_column_values_to_not_be_null", "Survived", "3 unexpected"),
        (_negative_age, "expect_column_values_to_be_between", "Age", "-5.0"),
        (_negative_fare, "expect_column_values_to_be_between", "Fare", "-7.25"),
        (_drop_fare, "expect_table_columns_to_match_set", None, "'missing': ['Fare']"),
        (_pclass_as_strings, "expect_column_values_to_be_of_type", "Pclass", "observed 'str'"),
    ],
    ids=["null-survived", "negative-age", "negative-fare", "missing-column", "pclass-strings"],
)
def test_corrupted_titanic_fails_and_is_quarantined(
    splits, tmp_path: Path, corrupt, expectation: str, column: str | None, detail: str
) -> None:
    frame = validation_frame("titanic", splits("titanic")).copy()
    corrupt(frame)
    error = failing_report(frame, "titanic", tmp_path / "q", batch_label="train")

    line = next(l for l in str(error).splitlines() if expectation in l and (column or "") in l)
    assert detail in line
    if column:
        assert f"on column '{column}'" in line
    failure = next(f for f in error.report.failures if f["expectation"] == expectation)
    assert failure["column"] == column

    path = error.report.quarantine_path
    assert path is not None and path.parent == tmp_path / "q" and path.is_file()
    assert path.name.startswith("titanic-") and path.stem.endswith("-train")
    assert f"Quarantined batch: {path}" in str(error)
    assert pd.read_parquet(path).shape == frame.shape
    written = json.loads(path.with_suffix(".failures.json").read_text())
    assert written["success"] is False and written["quarantine_path"] == str(path)
    assert [f["expectation"] for f in written["failures"]] == [
        f["expectation"] for f in error.report.failures
    ]


def test_every_failure_is_listed_on_its_own_line(splits, tmp_path: Path) -> None:
    frame = validation_frame("titanic", splits("titanic")).copy()
    for corrupt in (_null_survived, _negative_age, _negative_fare, _drop_fare):
        corrupt(frame)
    error = failing_report(frame, "titanic", tmp_path)
    lines = str(error).splitlines()
    failures = error.report.failures
    assert lines[0] == f"Suite 'titanic' failed: {len(failures)} of {error.report.n_expectations} expectations not met:"
    assert len(lines) == len(failures) + 2 and lines[-1].startswith("Quarantined batch: ")
    assert {f["column"] for f in failures} >= {"Survived", "Age", "Fare", None}
    # the expectations on the dropped column say why instead of GX's internal error
    on_fare = [l for l in lines if "on column 'Fare'" in l]
    assert on_fare and all("missing from the batch: 'Fare'" in l for l in on_fare)


def test_image_out_of_range_pixel_mean(splits, tmp_path: Path) -> None:
    images, labels = splits("mnist", "quick")["test"]
    images = images.copy()
    images[7] = 255  # a saturated frame: mean 255 where digits average 6-101
    error = failing_report(validation_frame("mnist", {"test": (images, labels)}), "mnist", tmp_path)
    (line,) = [l for l in str(error).splitlines() if "on column 'pixel_mean'" in l]
    assert "expect_column_values_to_be_between" in line and "1 unexpected" in line and "255.0" in line


@pytest.mark.parametrize(
    ("name", "corrupt", "expectation", "column"),
    [
        ("stocks", lambda s: s["prices"].assign(Low=s["prices"]["High"] + 1),
         "expect_column_pair_values_a_to_be_greater_than_b", "High, Low"),
        ("stocks", lambda s: s["prices"].iloc[::-1].reset_index(drop=True),
         "expect_column_values_to_be_increasing", "Date"),
        ("tinyshakespeare", lambda s: {"text": s["text"].replace("\n", "\r\n", 3)},
         "expect_column_values_to_match_regex", "line"),
        ("sst2", lambda s: {**s, "dev": s["dev"].assign(sentence=" ")},
         "expect_column_values_to_be_between", "n_chars"),
        ("cifar10", lambda s: {"test": (s["test"][0].astype(np.float32) / 255, s["test"][1])},
         "expect_column_values_to_be_in_set", "dtype"),
    ],
    ids=["high-below-low", "dates-decreasing", "crlf-line-endings", "empty-sentences", "scaled-pixels"],
)
def test_domain_rules_catch_corruption(
    splits, tmp_path: Path, name: str, corrupt, expectation: str, column: str
) -> None:
    frame = corrupt(dict(splits(name, PASS_PROFILE.get(name, "full"))))
    frame = frame if isinstance(frame, pd.DataFrame) else validation_frame(name, frame)
    error = failing_report(frame, name, tmp_path)
    assert any(expectation in l and f"on column '{column}'" in l for l in str(error).splitlines())


# --- quarantine, suite lookup, frames ------------------------------------------------------------


@pytest.fixture
def custom_suites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "suites"
    folder.mkdir()
    suite = {"name": "ids", "meta": {}, "expectations": [
        {"type": "expect_column_values_to_be_in_type_list",
         "kwargs": {"column": "id", "type_list": ["int", "int64"]}, "meta": {}},
    ]}
    (folder / "ids.json").write_text(json.dumps(suite))
    monkeypatch.setenv("MLPATH_EXPECTATIONS_DIR", str(folder))
    return folder


def test_default_quarantine_is_under_mlpath_home_and_csv_when_parquet_cannot_hold_it(
    custom_suites: Path, home: Path
) -> None:
    mixed = pd.DataFrame({"id": pd.Series([1, "two", 3], dtype=object)})
    error = failing_report(mixed, "ids", None, batch_label="mixed ids/v1")
    path = error.report.quarantine_path
    assert path.parent == home / "quarantine" and path.suffix == ".csv"
    assert path.name.startswith("ids-") and path.stem.endswith("-mixed_ids_v1")
    assert pd.read_csv(path)["id"].astype(str).tolist() == ["1", "two", "3"]
    assert "'two'" in str(error)


def test_passing_custom_suite_writes_nothing(custom_suites: Path, home: Path) -> None:
    report = validate_frame(pd.DataFrame({"id": [1, 2, 3]}), "ids")
    assert report.success and report.n_expectations == 1
    assert "passed" in report.summary()
    assert not (home / "quarantine").exists()


def test_missing_suite_names_the_expected_path(custom_suites: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(custom_suites / "nope.json")):
        validate_frame(pd.DataFrame({"id": [1]}), "nope")


def test_invalid_expectation_is_an_error_not_silently_dropped(custom_suites: Path) -> None:
    (custom_suites / "typo.json").write_text(json.dumps(
        {"name": "typo", "expectations": [{"type": "expect_colum_to_exist", "kwargs": {"column": "id"}}]}
    ))
    with pytest.raises(ValueError, match=r"typo\.json: expectation #0 \('expect_colum_to_exist'\)"):
        load_suite("typo")


def test_validate_frame_rejects_raw_splits() -> None:
    with pytest.raises(TypeError, match="validation_frame"):
        validate_frame({"data": pd.DataFrame()}, "iris")


def test_unknown_dataset_frame() -> None:
    with pytest.raises(ValueError, match="known: adult, cifar10"):
        validation_frame("imagenet", {})


def test_image_summary_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1])
    frame = validation_frame("cifar10", {"train": (images[:3], labels[:3]), "test": (images[3:], labels[3:])})
    assert frame["split"].tolist() == ["train"] * 3 + ["test"]
    assert frame[["height", "width", "channels"]].drop_duplicates().values.tolist() == [[32, 32, 3]]
    assert frame["dtype"].unique().tolist() == ["uint8"]
    np.testing.assert_allclose(frame["pixel_mean"], images.reshape(4, -1).mean(axis=1))
    np.testing.assert_array_equal(frame["pixel_max"], images.max(axis=(1, 2, 3)))
    grey = validation_frame("mnist", {"train": (images[..., 0], labels)})
    assert grey[["height", "width", "channels"]].iloc[0].tolist() == [32, 32, 1]


def test_line_summary_keeps_carriage_returns() -> None:
    frame = validation_frame("tinyshakespeare", {"text": "First Citizen:\r\nBefore we\n\nproceed\n"})
    assert frame["line"].tolist() == ["First Citizen:\r", "Before we", "", "proceed"]
    assert frame["n_chars"].tolist() == [15, 9, 0, 7]


def test_module_imports_without_great_expectations() -> None:
    code = "import sys, pipeline.validation; assert 'great_expectations' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the quick profile validates every row, then subsamples ---------------------------------


def _mnist_test_labels_with(tmp_path: Path, label: int, outside_quick: bool) -> tuple[Path, int]:
    """The mirror's t10k labels with one label replaced, at an index outside (or inside) the
    quick subsample of seed 0; the file and the index."""
    import gzip

    rng = np.random.default_rng(0)  # as the catalog draws: the train subsample first, then test
    rng.choice(60000, size=6000, replace=False)
    kept = set(rng.choice(10000, size=1000, replace=False).tolist())
    index = next(i for i in range(10000) if (i in kept) != outside_quick)
    raw = bytearray(gzip.decompress((MIRROR / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[8 + index] = label
    path = tmp_path / "t10k-labels.gz"
    path.write_bytes(gzip.compress(bytes(raw)))
    return path, index


def test_quick_profile_validates_rows_outside_its_subsample(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    import tasks.ingest
    import tasks.validate

    if not (MIRROR / "manifest.json").is_file():
        pytest.skip(f"no dataset mirror at {MIRROR}")
    monkeypatch.setenv("MLPATH_DATA_MIRROR", str(MIRROR))
    monkeypatch.setattr(tasks.ingest, "ingest", tasks.ingest.ingest.fn)  # the tasks without a Prefect run
    monkeypatch.setattr(tasks.validate, "validate", tasks.validate.validate.fn)
    bad, index = _mnist_test_labels_with(tmp_path, 12, outside_quick=True)
    files = {"t10k-labels-idx1-ubyte.gz": bad}

    quick = load_dataset("mnist", "quick", files=files)  # the subsample alone looks fine
    assert 12 not in quick.splits["test"][1]
    validate_frame(validation_frame("mnist", quick.splits), "mnist", quarantine_dir=tmp_path / "q")

    whole = load_dataset("mnist", "quick", files=files, subsample=False)
    assert whole.ref == quick.ref and whole.splits["test"][1][index] == 12 and whole.pending
    params = SimpleNamespace(profile="quick", seed=0, data_files={"mnist/t10k-labels-idx1-ubyte.gz": str(bad)},
                             append_files={})
    with pytest.raises(DataValidationError, match="label") as caught:
        tasks.validate.ingest_validated("mnist", params)
    assert any(12 in (failure["examples"] or []) for failure in caught.value.report.failures)
    assert caught.value.report.quarantine_path.parent == home / "quarantine"

    good = tasks.validate.ingest_validated("mnist", SimpleNamespace(profile="quick", seed=0, data_files={},
                                                                     append_files={}))
    reference = load_dataset("mnist", "quick")
    assert good.ref == reference.ref and not good.pending
    assert [len(y) for _, y in good.splits.values()] == [6000, 1000]
    assert np.array_equal(good.splits["test"][1], reference.splits["test"][1])
