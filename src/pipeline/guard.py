"""A registered model guards its inputs with its dataset's expectation suite.

``input_rules`` reads ``expectations/<dataset>.json`` (the suite the data was validated with) into
per-column rules: the range of ``expect_column_values_to_be_between`` (with its strict ends), the
allowed values of ``expect_column_values_to_be_in_set``, and whether missing values may pass (a
not-null expectation without ``mostly`` forbids them). ``GuardedModel`` checks every row against
the rules of the columns it is given before its model predicts, and raises
``InputOutOfRangeError`` naming the column, the value and what is allowed: a Titanic model asked
about ``Pclass`` 7 or ``Age`` -50 refuses instead of answering silently.

``GuardedModel`` is stored with skops like the model it wraps (its rules are plain values).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.metaestimators import available_if


class InputOutOfRangeError(ValueError):
    """A row outside the ranges or allowed values of the model's dataset suite."""


def input_rules(suite_path: str | Path, columns: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per column (only ``columns`` when given): {"min", "max", "strict_min", "strict_max",
    "values", "nullable"}, from an expectation suite file; columns without a range, set or
    not-null expectation are left out."""
    suite = json.loads(Path(suite_path).read_text())
    rules: dict[str, dict[str, Any]] = {}
    for entry in suite.get("expectations", []):
        kwargs = entry.get("kwargs", {})
        column = kwargs.get("column")
        if column is None or (columns is not None and column not in columns):
            continue
        rule = rules.setdefault(column, {"nullable": True})
        kind = entry.get("type")
        if kind == "expect_column_values_to_be_between":
            rule.update(min=kwargs.get("min_value"), max=kwargs.get("max_value"),
                        strict_min=bool(kwargs.get("strict_min", False)),
                        strict_max=bool(kwargs.get("strict_max", False)))
        elif kind == "expect_column_values_to_be_in_set":
            rule["values"] = list(kwargs["value_set"])
        elif kind == "expect_column_values_to_not_be_null" and kwargs.get("mostly", 1) >= 1:
            rule["nullable"] = False
    return {column: rule for column, rule in rules.items() if len(rule) > 1 or not rule["nullable"]}


def _allowed(rule: dict[str, Any]) -> str:
    if "values" in rule:
        return f"allowed values {rule['values']}"
    low = "(" if rule.get("strict_min") else "["
    high = ")" if rule.get("strict_max") else "]"
    lo = "-inf" if rule.get("min") is None else rule["min"]
    hi = "inf" if rule.get("max") is None else rule["max"]
    return f"allowed range {low}{lo}, {hi}{high}"


def check_inputs(X: Any, rules: dict[str, dict[str, Any]], source: str = "the dataset's suite") -> None:
    """Raise InputOutOfRangeError at the first column with a value its rule does not allow."""
    if not isinstance(X, pd.DataFrame):
        X = pd.DataFrame(X)
    missing = [column for column in rules if column not in X.columns]
    if missing:
        raise InputOutOfRangeError(f"input lacks column(s) {', '.join(map(str, missing))}")
    for column, rule in rules.items():
        values = X[column]
        null = values.isna()
        if null.any() and not rule.get("nullable", True):
            raise InputOutOfRangeError(f"column {column}: missing value in row {int(np.argmax(null))}, "
                                       f"not allowed by {source}")
        present = values[~null]
        bad = pd.Series(False, index=present.index)
        if "values" in rule:
            bad |= ~present.isin(rule["values"])
        if rule.get("min") is not None or rule.get("max") is not None:
            numbers = pd.to_numeric(present, errors="coerce")
            bad |= numbers.isna()
            if rule.get("min") is not None:
                bad |= numbers <= rule["min"] if rule.get("strict_min") else numbers < rule["min"]
            if rule.get("max") is not None:
                bad |= numbers >= rule["max"] if rule.get("strict_max") else numbers > rule["max"]
        if bad.any():
            value = present[bad].iloc[0]
            value = value.item() if hasattr(value, "item") else value
            raise InputOutOfRangeError(f"column {column}: value {value!r} is outside the {_allowed(rule)} "
                                       f"of {source}")


class GuardedModel(BaseEstimator):
    """``model`` that predicts only on rows its ``rules`` allow (see ``check_inputs``); a fitted
    model's stand-in for prediction and scoring (``fit`` fits the wrapped model)."""

    def __init__(self, model: Any = None, rules: dict[str, dict[str, Any]] | None = None, source: str = ""):
        self.model = model
        self.rules = rules
        self.source = source

    def _check(self, X: Any) -> None:
        check_inputs(X, self.rules or {}, self.source or "the dataset's suite")

    def fit(self, X, y=None, **kwargs) -> GuardedModel:
        self._check(X)
        self.model.fit(X, y, **kwargs)
        return self

    def predict(self, X):
        self._check(X)
        return self.model.predict(X)

    @available_if(lambda self: hasattr(self.model, "predict_proba"))
    def predict_proba(self, X):
        self._check(X)
        return self.model.predict_proba(X)

    @available_if(lambda self: hasattr(self.model, "decision_function"))
    def decision_function(self, X):
        self._check(X)
        return self.model.decision_function(X)

    @property
    def classes_(self):
        return self.model.classes_

    def __sklearn_is_fitted__(self) -> bool:
        return True
