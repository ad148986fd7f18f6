"""Data validation with Great Expectations Core 1.x.

One suite per dataset lives in ``expectations/<dataset>.json`` (GX's own suite serialisation,
so GX tooling can load it too). ``validation_frame`` turns a dataset's splits into the one table
GX checks: tabular data as is, images and text as per-record summaries (shape, label, pixel
statistics, lengths), because the properties that matter are those, not the raw arrays.
``validate_frame`` runs the suite; a failing batch is quarantined under
``MLPATH_HOME/quarantine/`` and ``DataValidationError`` lists every failed expectation.

Great Expectations takes seconds to import, so it is imported on first validation and its
ephemeral context is built once per process.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

EXPECTATIONS_DIR_ENV = "MLPATH_EXPECTATIONS_DIR"
N_EXAMPLES = 5  # unexpected values kept per failed expectation

# A GX context is not safe to share between threads (Prefect may run tasks in a thread pool).
_gx_lock = threading.Lock()


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of running one suite against one batch.

    ``failures`` holds one dict per failed expectation: ``expectation`` (its type), ``column``
    (None for table-level checks), ``unexpected_count``, ``unexpected_percent``, ``examples``
    (a few unexpected values), ``observed_value``, ``details``, ``kwargs`` and ``exception``.
    """

    suite: str
    success: bool
    n_expectations: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    statistics: dict[str, Any] = field(default_factory=dict)
    batch_label: str = ""
    quarantine_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["quarantine_path"] = str(self.quarantine_path) if self.quarantine_path else None
        return data

    def summary(self) -> str:
        """A human-readable account: one line per failed expectation, then the quarantine path."""
        batch = f" (batch '{self.batch_label}')" if self.batch_label else ""
        if self.success:
            return f"Suite '{self.suite}' passed{batch}: {self.n_expectations} expectations met."
        lines = [
            f"Suite '{self.suite}' failed{batch}: {len(self.failures)} of "
            f"{self.n_expectations} expectations not met:"
        ]
        lines += [f"  - {_describe_failure(failure)}" for failure in self.failures]
        if self.quarantine_path is not None:
            lines.append(f"Quarantined batch: {self.quarantine_path}")
        return "\n".join(lines)


class DataValidationError(Exception):
    """A batch broke its suite. ``report`` holds every failed expectation."""

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__(report.summary())

    def __reduce__(self):  # picklable with its report (Prefect may persist a failed task's error)
        return type(self), (self.report,)


# --- suites -------------------------------------------------------------------------------


def expectations_dir() -> Path:
    """``$MLPATH_EXPECTATIONS_DIR``, or ``expectations/`` at the repository root."""
    override = os.environ.get(EXPECTATIONS_DIR_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "expectations"


def suite_path(suite_name: str) -> Path:
    return expectations_dir() / f"{suite_name}.json"


def load_suite(suite_name: str, extra_rows: int = 0):
    """Read ``expectations/<suite_name>.json`` into a ``great_expectations.ExpectationSuite``.

    ``extra_rows`` (rows appended to the catalog's, see ``UnitParams.append_files``) moves the
    bounds of ``expect_table_row_count_to_be_between`` up by as many: the catalog's rows must
    still be there, and the appended ones are allowed on top.

    Raises FileNotFoundError naming the expected path, and ValueError for an expectation GX
    cannot build (GX itself would only log it and drop it from the suite).
    """
    path = suite_path(suite_name)
    if not path.is_file():
        raise FileNotFoundError(
            f"No expectation suite '{suite_name}': expected {path} "
            f"(set ${EXPECTATIONS_DIR_ENV} to use another folder)"
        )
    data = json.loads(path.read_text())

    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    expectations = []
    for i, entry in enumerate(data.get("expectations", [])):
        if extra_rows and entry.get("type") == "expect_table_row_count_to_be_between":
            entry = {**entry, "kwargs": {key: value + extra_rows if key in ("min_value", "max_value")
                                         and value is not None else value
                                         for key, value in entry.get("kwargs", {}).items()}}
        try:
            config = ExpectationConfiguration(
                type=entry["type"], kwargs=entry.get("kwargs", {}), meta=entry.get("meta")
            )
            expectations.append(config.to_domain_obj())
        except Exception as exc:  # GX raises several unrelated types for a bad config
            raise ValueError(
                f"{path}: expectation #{i} ({entry.get('type')!r}) is invalid: {exc}"
            ) from exc
    return gx.ExpectationSuite(
        name=data.get("name") or suite_name,
        expectations=expectations,
        meta=data.get("meta"),
        notes=data.get("notes"),
    )


@functools.cache
def _batch_definition():
    """The one pandas whole-dataframe batch definition of this process's ephemeral context."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,  # no network here; it would only log connection errors
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(project_config=config, mode="ephemeral")
    asset = context.data_sources.add_pandas("mlpath").add_dataframe_asset("frame")
    return asset.add_batch_definition_whole_dataframe("whole")


# --- validation ---------------------------------------------------------------------------


def validate_frame(
    frame: pd.DataFrame,
    suite_name: str,
    *,
    quarantine_dir: Path | None = None,
    batch_label: str = "",
    extra_rows: int = 0,
) -> ValidationReport:
    """Run suite ``suite_name`` against ``frame``.

    ``extra_rows``: rows appended to the catalog's, allowed on top of its row count (``load_suite``).

    Returns the report when every expectation holds. Otherwise writes the batch and its failures
    to ``quarantine_dir`` (default ``MLPATH_HOME/quarantine``) and raises DataValidationError.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"validate_frame needs a pandas DataFrame, got {type(frame).__name__}; "
            "build one with validation_frame(dataset_name, splits)"
        )
    suite = load_suite(suite_name, extra_rows)
    with _gx_lock:
        batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(
            suite,
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": N_EXAMPLES},
        )
    failures = [_failure(r, frame.columns) for r in result.results if not r.success]
    report = ValidationReport(
        suite=suite_name,
        success=bool(result.success),
        n_expectations=len(result.results),
        failures=failures,
        statistics=_jsonable(dict(result.statistics)),
        batch_label=batch_label,
    )
    if report.success:
        return report
    if quarantine_dir is None:
        from pipeline.settings import mlpath_home

        quarantine_dir = mlpath_home() / "quarantine"
    path = _quarantine(frame, report, Path(quarantine_dir))
    raise DataValidationError(replace(report, quarantine_path=path))


def _failure(result, frame_columns: pd.Index) -> dict[str, Any]:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    outcome = result.result or {}
    details = outcome.get("details")
    columns = _columns_of(config.type, kwargs)
    absent = [c for c in columns if c not in frame_columns]
    # GX only reports a low-level error (e.g. "list index out of range") for an absent column
    exception = (
        f"missing from the batch: {', '.join(map(repr, absent))}"
        if absent
        else _exception_message(result)
    )
    return _jsonable(
        {
            "expectation": config.type,
            "column": ", ".join(columns) if columns else None,
            "unexpected_count": outcome.get("unexpected_count"),
            "unexpected_percent": outcome.get("unexpected_percent"),
            "examples": list(outcome.get("partial_unexpected_list") or [])[:N_EXAMPLES],
            "observed_value": outcome.get("observed_value"),
            "details": details.get("mismatched") if isinstance(details, dict) else details,
            "kwargs": kwargs,
            "exception": exception,
        }
    )


def _columns_of(expectation_type: str, kwargs: dict[str, Any]) -> list[str]:
    """The columns an expectation reads; none for table-level ones (their column_list is data)."""
    if expectation_type.startswith("expect_table_"):
        return []
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_A" in kwargs:
        return [kwargs["column_A"], kwargs["column_B"]]
    return list(kwargs.get("column_list", []))


def _exception_message(result) -> str | None:
    """The first error GX caught; ``exception_info`` is flat or keyed by metric."""
    info = result.exception_info or {}
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            return str(entry.get("exception_message"))
    return None


def _describe_failure(failure: dict[str, Any]) -> str:
    column = f" on column '{failure['column']}'" if failure["column"] else " (table)"
    text = f"{failure['expectation']}{column}"
    if failure["exception"]:
        return f"{text}: {failure['exception'].strip().splitlines()[0]}"
    if failure["unexpected_count"] is not None:
        percent = failure["unexpected_percent"]
        share = f" ({percent:.3g}%)" if percent is not None else ""
        text += f": {failure['unexpected_count']} unexpected{share}, e.g. {failure['examples']}"
    elif failure["observed_value"] is not None:
        text += f": observed {_shorten(failure['observed_value'])}"
    if failure["details"]:
        text += f"; mismatch {_shorten(failure['details'])}"
    expected = {k: v for k, v in failure["kwargs"].items() if k != "column"}
    return f"{text}; expected {_shorten(expected)}" if expected else text


def _shorten(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars unwrapped, NaN/NaT to None, anything else as text."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def _quarantine(frame: pd.DataFrame, report: ValidationReport, folder: Path) -> Path:
    """Write the failed batch (parquet, or CSV when parquet cannot hold it) and its failures."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", report.batch_label)
    stem = "-".join(part for part in (report.suite, stamp, label) if part)
    path = folder / f"{stem}.parquet"
    try:
        frame.to_parquet(path, index=False)
    except (ImportError, ValueError, TypeError, NotImplementedError):
        # e.g. a column mixing ints and strings, which is often why the batch failed
        path.unlink(missing_ok=True)
        path = folder / f"{stem}.csv"
        frame.to_csv(path, index=False)
    failures = {**report.to_dict(), "quarantine_path": str(path)}
    (folder / f"{stem}.failures.json").write_text(json.dumps(failures, indent=2))
    return path


# --- the frame GX sees per dataset --------------------------------------------------------


def validation_frame(dataset_name: str, splits: dict) -> pd.DataFrame:
    """The table the dataset's suite checks, built from ``load_dataset(name).splits``.

    Tabular datasets give their table (adult: train and test stacked with a ``split`` column).
    Images give one row per image: split, label, height, width, channels, dtype, pixel
    min/max/mean. SST-2 gives one row per sentence: split, label, n_chars, n_tokens,
    is_lowercase. Tiny Shakespeare gives one row per line: line, n_chars, n_distinct, is_ascii.
    """
    try:
        build = _FRAME_BUILDERS[dataset_name]
    except KeyError:
        known = ", ".join(sorted(_FRAME_BUILDERS))
        raise ValueError(f"No validation frame for dataset {dataset_name!r}; known: {known}") from None
    return build(dataset_name, splits)


def _split(dataset: str, splits: dict, name: str):
    if name not in splits:
        raise ValueError(f"{dataset}: split {name!r} missing; got {sorted(splits)}")
    return splits[name]


def _table(split_name: str) -> Callable[[str, dict], pd.DataFrame]:
    return lambda dataset, splits: _split(dataset, splits, split_name)


def _stacked_tables(dataset: str, splits: dict) -> pd.DataFrame:
    frames = [frame.assign(split=name) for name, frame in splits.items()]
    return pd.concat(frames, ignore_index=True)


def _digit_summary(dataset: str, splits: dict) -> pd.DataFrame:
    frame = _stacked_tables(dataset, splits)
    return frame.assign(is_reversal=[s[::-1] == t for s, t in zip(frame["source"], frame["target"], strict=True)])


def _image_summary(dataset: str, splits: dict) -> pd.DataFrame:
    parts = []
    for name, (images, labels) in splits.items():
        images, labels = np.asarray(images), np.asarray(labels)
        n = len(images)
        if len(labels) != n:
            raise ValueError(f"{dataset} split {name!r}: {n} images but {len(labels)} labels")
        shape = images.shape + (1,) * max(0, 4 - images.ndim)  # (N, H, W, C), C=1 for grey
        flat = images.reshape(n, -1)  # (N, H*W*C)
        parts.append(
            pd.DataFrame(
                {
                    "split": name,
                    "label": labels,
                    "height": shape[1],
                    "width": shape[2],
                    "channels": shape[3],
                    "dtype": str(images.dtype),
                    "pixel_min": flat.min(axis=1),
                    "pixel_max": flat.max(axis=1),
                    "pixel_mean": flat.mean(axis=1),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _sentence_summary(dataset: str, splits: dict) -> pd.DataFrame:
    parts = []
    for name, frame in splits.items():
        if "sentence" not in frame.columns:
            raise ValueError(f"{dataset} split {name!r} has no 'sentence' column")
        text = frame["sentence"].str.strip()
        parts.append(
            pd.DataFrame(
                {
                    "split": name,
                    "label": frame["label"] if "label" in frame.columns else None,
                    "n_chars": text.str.len(),
                    "n_tokens": text.str.split().str.len(),
                    "is_lowercase": (text == text.str.lower()).fillna(False),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _line_summary(dataset: str, splits: dict) -> pd.DataFrame:
    text = _split(dataset, splits, "text")
    # split("\n"), not splitlines(): a stray "\r" must stay in the line for the suite to see it
    lines = pd.Series(text.removesuffix("\n").split("\n"), dtype="str")
    return pd.DataFrame(
        {
            "line": lines,
            "n_chars": lines.str.len(),
            "n_distinct": lines.map(lambda line: len(set(line))),
            "is_ascii": lines.str.isascii(),
        }
    )


_FRAME_BUILDERS: dict[str, Callable[[str, dict], pd.DataFrame]] = {
    "iris": _table("data"),
    "line": _table("data"),
    "digit_strings": _digit_summary,
    "titanic": _table("train"),
    "mall_customers": _table("data"),
    "stocks": _table("prices"),
    "adult": _stacked_tables,
    "mnist": _image_summary,
    "cifar10": _image_summary,
    "sst2": _sentence_summary,
    "tinyshakespeare": _line_summary,
}
