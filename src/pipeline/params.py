"""Typed flow parameters (pydantic, so the Prefect UI renders a form for them).

``UnitParams`` holds what every unit takes; a unit's own model subclasses it in the unit's spec
module (``pipeline.units.<unit>``). ``build_params`` turns the CLI's ``--set key=value`` pairs into
validated parameter objects and reports unknown keys with the valid choices.

Parameters are strict (pydantic ``strict=True``, inherited by every unit's model): a number field
takes a number of its own type only, never ``true`` (a bool is not a depth) nor ``2.0`` for an
int nor the text ``"5"``; a float field takes an int. ``--set`` values are read as JSON and
Prefect passes a flow's parameters as JSON, so ``--set cv_folds=5`` and the UI's form give
numbers and pass. Combinations no unit can run are refused by the base for every unit alike:
``cv_folds`` is 0 (no cross-validation) or at least 2.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


def _catalog_files() -> list[str]:
    """Every catalog file as "dataset/file"."""
    from pipeline.data import DATASETS

    return [f"{name}/{f.name}" for name, spec in DATASETS.items() for f in spec.files]


class UnitParams(BaseModel):
    """Parameters every unit takes (strict: no bool-to-int, float-to-int or text-to-number)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    profile: Literal["quick", "full"] = Field(
        "full", description="quick: small data for CI and demos; full: the real run")
    seed: int = Field(0, ge=0, description="seed for splits, subsampling and model initialisation")
    data_files: dict[str, str] = Field(
        default_factory=dict,
        description="replace catalog files with local ones, e.g. {'titanic/train.csv': '/data/new.csv'};"
                    " the replacement is validated like any batch")
    append_files: dict[str, list[str]] = Field(
        default_factory=dict,
        description="extra rows appended to catalog files, e.g. {'titanic/train.csv': ['/data/batch.csv']}"
                    " (a drift monitor adds its new labelled batch here); each file has the catalog"
                    " file's columns, and the data with the rows appended is validated like any batch")
    test_size: float = Field(0.25, gt=0, lt=1, description="held-out fraction for test metrics")
    cv_folds: int = Field(5, ge=0, le=20, description="cross-validation folds (0 disables CV, else at least 2)")

    @field_validator("cv_folds", mode="before")
    @classmethod
    def _no_single_fold(cls, folds: Any) -> Any:
        """One fold has nothing to validate on: 0 turns CV off, else 2 or more. Checked before a
        unit's own bounds, so every unit refuses 1 with this same message."""
        if type(folds) is int and folds == 1:
            raise ValueError("cv_folds=1 is no cross-validation: use 0 to turn it off, or 2 or more")
        return folds

    @field_validator("data_files")
    @classmethod
    def _known_catalog_files(cls, files: dict[str, str]) -> dict[str, str]:
        """Keys must name a catalog file ("dataset/file"): a typo must not silently use the mirror."""
        valid = _catalog_files()
        unknown = sorted(set(files) - set(valid))
        if unknown:
            raise ValueError(f"unknown catalog file(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
        return files

    @field_validator("append_files", mode="before")
    @classmethod
    def _one_path_is_a_list(cls, files: Any) -> Any:
        """``--set append_files.titanic/train.csv=/x.csv`` gives one path: a list of one."""
        if isinstance(files, dict):
            return {key: [paths] if isinstance(paths, str) else paths for key, paths in files.items()}
        return files

    @field_validator("append_files")
    @classmethod
    def _appendable_catalog_files(cls, files: dict[str, list[str]]) -> dict[str, list[str]]:
        """Keys must name a catalog file that takes extra rows (a table, not images or text)."""
        from pipeline.data import DATASETS

        valid = [f"{name}/{file}" for name, spec in DATASETS.items() for file in spec.appendable]
        unknown = sorted(set(files) - set(valid))
        if unknown:
            raise ValueError(f"no catalog file {', '.join(unknown)} to append rows to; "
                             f"valid: {', '.join(valid)}")
        return {key: paths for key, paths in files.items() if paths}


class ParameterError(ValueError):
    """A --set key or value that no selected unit accepts."""


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``["a=1", "data_files.titanic/train.csv=/x.csv"]`` -> ``{"a": 1, "data_files": {...}}``.

    Values are read as JSON when they parse (numbers, lists, null), else as strings. A dotted key
    sets one entry of a dict parameter.
    """
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ParameterError(f"--set expects key=value, got {pair!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        name, dot, entry = key.partition(".")
        if dot:
            target = values.setdefault(name, {})
            if not isinstance(target, dict):
                raise ParameterError(f"--set {name}.{entry}: {name} was already set to {target!r}")
            target[entry] = value
        else:
            values[name] = value
    return values


def _problem(error: Any) -> str:
    """``max_depth: Input should be a valid integer, got true (bool)``: a type error names the input."""
    text = f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
    if error["type"] in {"int_type", "float_type", "string_type", "bool_type"} and "input" in error:
        text += f", got {json.dumps(error['input'], default=str)} ({type(error['input']).__name__})"
    return text


def build_params(unit_ids: list[str], profile: str, overrides: dict[str, Any]) -> dict[str, UnitParams]:
    """Validated parameters per unit: each override goes to the units whose parameters have it."""
    from pipeline.units import get_unit

    models = {uid: get_unit(uid).params for uid in unit_ids}
    fields = {uid: set(model.model_fields) for uid, model in models.items()}
    known = set().union(*fields.values()) if fields else set()
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(unknown)} for {', '.join(unit_ids)}; "
            f"valid: {', '.join(sorted(known))}")
    built = {}
    for uid in unit_ids:
        mine = {k: v for k, v in overrides.items() if k in fields[uid]}
        try:
            built[uid] = models[uid](**{**mine, "profile": profile})
        except ValidationError as exc:
            problems = "; ".join(_problem(e) for e in exc.errors())
            raise ParameterError(f"{uid}: {problems}") from None
    return built


def in_path_params(unit_ids: list[str], params: dict[str, UnitParams],
                   overrides: dict[str, Any]) -> dict[str, UnitParams]:
    """``params`` with each unit's ``in_path`` overrides applied where every unit it names runs
    before it in ``unit_ids`` (the user's own ``overrides`` win)."""
    from pipeline.units import get_unit

    updated = dict(params)
    for index, uid in enumerate(unit_ids):
        in_path = get_unit(uid).in_path
        if in_path is None or not set(in_path.after) <= set(unit_ids[:index]):
            continue
        changes = {k: v for k, v in in_path.overrides if k not in overrides}
        updated[uid] = type(params[uid]).model_validate({**params[uid].model_dump(), **changes})
    return updated
