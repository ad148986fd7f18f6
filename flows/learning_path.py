"""The whole path: every selected unit's flow as a subflow, one failure not stopping the rest."""

from __future__ import annotations

import importlib
from typing import Any, Literal

from prefect import flow, get_run_logger

from pipeline.params import build_params
from pipeline.units import get_unit, resolve_selection


def _unit_flow(unit_id: str):
    module, _, name = get_unit(unit_id).flow.partition(":")
    return getattr(importlib.import_module(module), name)


@flow(name="learning-path", log_prints=True)
def learning_path(units: list[str] | None = None, profile: Literal["quick", "full"] = "full",
                  overrides: dict[str, Any] | None = None) -> list[dict]:
    """Run each unit (default: every built unit) with ``overrides`` applied where they fit.

    Returns one outcome per unit: status, primary metric and model version, or the error.
    """
    unit_ids = [unit.id for unit in resolve_selection(units or ["all"])]
    params = build_params(unit_ids, profile, overrides or {})
    logger = get_run_logger()
    outcomes = []
    for unit_id in unit_ids:
        state = _unit_flow(unit_id)(params[unit_id], return_state=True)
        if state.is_completed():
            outcomes.append(state.result())
        else:
            try:
                state.result()
            except Exception as exc:  # the unit's own error, re-raised by Prefect
                error = f"{type(exc).__name__}: {exc}"
            else:
                error = state.message or state.name
            logger.error("%s failed: %s", unit_id, error)
            outcomes.append({"unit": unit_id, "status": "failed", "error": error,
                             "primary_metric": get_unit(unit_id).primary_metric})
    return outcomes
