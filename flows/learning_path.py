"""The whole path: every selected unit's flow as a subflow, one failure not stopping the rest.

``PROGRESS`` tells the caller how far a run got while it runs: an interrupted run (Ctrl-C,
SIGTERM, a lost Prefect API) raises instead of returning, and the CLI prints its summary from it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Literal

from prefect import flow, get_run_logger

from pipeline.params import build_params, in_path_params
from pipeline.units import get_unit, resolve_selection


@dataclass
class Progress:
    """The run in this process: its flow run id, the units selected, the outcomes so far, and the
    unit running now (None between units)."""

    flow_run_id: str | None = None
    units: list[str] = field(default_factory=list)
    outcomes: list[dict] = field(default_factory=list)
    current: str | None = None

    def start(self, flow_run_id: str | None, units: list[str], outcomes: list[dict]) -> None:
        self.flow_run_id, self.units, self.outcomes, self.current = flow_run_id, units, outcomes, None


PROGRESS = Progress()


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
    params = in_path_params(unit_ids, build_params(unit_ids, profile, overrides or {}), overrides or {})
    logger = get_run_logger()
    outcomes = []
    PROGRESS.start(_flow_run_id(), unit_ids, outcomes)
    for unit_id in unit_ids:
        PROGRESS.current = unit_id
        state = _unit_flow(unit_id)(params[unit_id], return_state=True)
        PROGRESS.current = None
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


def _flow_run_id() -> str | None:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else None
