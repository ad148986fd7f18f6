"""What a unit declares about itself, once: ``UnitSpec`` and the small records it holds.

A unit's spec is the only place its facts live. The CLI (``mlpath list``, ``run``, ``--set``),
``mlpath progress``, the results site, the generated deployments and the drift monitor all read
specs; none keeps a list of units of its own. Importing this module is cheap (dataclasses and the
parameter base class, no torch, pandas, MLflow or Prefect), so ``mlpath list`` stays fast.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from pipeline.params import UnitParams

PHASES = {
    1: "Mathematical foundations",
    2: "Classical machine learning",
    3: "Deep learning",
    4: "ML in production",
    5: "System design and portfolio",
}
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_CRON_FIELDS = 5


@dataclass(frozen=True)
class Reference:
    """A published number to set beside ours: what it measures, the value as published, where.

    ``metric`` is our MLflow metric it compares with, if any. We did not measure these; their data
    or split may differ from ours.
    """

    quantity: str
    value: str
    source: str
    metric: str | None = None


@dataclass(frozen=True)
class Experiment:
    """A "try next" experiment: parameter overrides to run with, and what to look for."""

    overrides: tuple[str, ...]  # ("max_depth=12",): each one a --set
    look_for: str

    def command(self, unit_id: str, profile: str = "quick") -> str:
        sets = " ".join(f"--set {shlex.quote(o)}" for o in self.overrides)
        return f"mlpath run {unit_id} --profile {profile} {sets}"


def _check_cron(cron: str) -> None:
    if len(cron.split()) != _CRON_FIELDS:
        raise ValueError(f"cron needs 5 fields (minute hour day month weekday), got {cron!r}")


@dataclass(frozen=True)
class Schedule:
    """When a unit retrains: a cron string in UTC ("0 2 * * 1" is Mondays at 02:00).

    ``active=False`` keeps the schedule but pauses it; ``why`` is said beside it in prefect.yaml.
    """

    cron: str
    active: bool = True
    why: str = ""

    def __post_init__(self):
        _check_cron(self.cron)


@dataclass(frozen=True)
class DriftMonitor:
    """Watch one of the unit's datasets for drift and retrain the unit past ``threshold`` (PSI)."""

    dataset: str
    threshold: float = 0.2
    cron: str = "0 6 * * *"


@dataclass(frozen=True)
class ServiceMonitor:
    """Watch a running service's drift report (``url`` + ``/monitoring/drift``) and, past the thresholds,
    run the retraining deployment of unit ``retrains`` (the unit that trains the served model)."""

    url: str
    retrains: str
    psi_threshold: float = 0.2
    coverage_drop: float = 0.05
    cron: str = "15 * * * *"

    def __post_init__(self):
        _check_cron(self.cron)


@dataclass(frozen=True)
class PathOverrides:
    """Parameters a unit takes when the whole path (``learning_path``) has just run every unit in
    ``after`` before it: e.g. the capstone serves the champion Unit 11 registered a minute ago instead
    of fine-tuning again. A user's own ``--set`` for the same key wins."""

    after: tuple[str, ...]
    overrides: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class UnitSpec:
    """One unit of the path, declared once.

    ``flow`` is ``"module:function"`` of its Prefect flow, or None while the unit is planned.
    ``primary_metric`` (with ``greater_is_better``) is the MLflow metric that decides champion and
    challenger. ``params`` is the flow's typed parameter model (the ``--set`` keys and the Prefect
    form). ``notes`` and ``notebook`` are paths from the repository root. ``number`` orders the
    path (the capstone comes last).

    What the results site teaches from: ``learned`` is a few sentences for "What you learned";
    ``sources`` the from-scratch source files (paths from the repository root) the site copies
    and links; ``quick`` what the quick profile changes besides the data (e.g. fewer epochs),
    None when nothing else changes. ``registered_model`` names the MLflow registered model when it
    is not ``mlpath-<id>`` (a model served by name, e.g. ``mlpath-sentiment``). ``service_monitor``
    is a scheduled check of a serving unit's live drift report that retrains another unit.
    ``in_path`` are the parameters the unit takes inside the whole path, after the units it names.
    """

    id: str
    number: int
    title: str
    phase: int
    topics: tuple[str, ...]
    challenge: str
    params: type[UnitParams] = UnitParams
    flow: str | None = None
    datasets: tuple[str, ...] = ()
    primary_metric: str | None = None
    greater_is_better: bool = True
    schedule: Schedule | None = None
    references: tuple[Reference, ...] = ()
    notes: str | None = None
    notebook: str | None = None
    try_next: tuple[Experiment, ...] = ()
    monitor: DriftMonitor | None = None
    learned: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    quick: str | None = None
    registered_model: str | None = None
    service_monitor: ServiceMonitor | None = None
    in_path: PathOverrides | None = None

    def __post_init__(self):
        problems = []
        if not _ID.match(self.id):
            problems.append(f"id must be lowercase letters, digits and underscores, got {self.id!r}")
        if self.phase not in PHASES:
            problems.append(f"phase must be one of {sorted(PHASES)}, got {self.phase}")
        if self.flow is not None:
            if ":" not in self.flow:
                problems.append(f"flow must be 'module:function', got {self.flow!r}")
            if not self.primary_metric:
                problems.append("a built unit (flow set) needs a primary_metric")
            if not self.datasets:
                problems.append("a built unit (flow set) needs its datasets")
        if self.monitor is not None and self.monitor.dataset not in self.datasets:
            problems.append(f"monitor.dataset {self.monitor.dataset!r} is not one of the unit's datasets")
        for path in (self.notes, self.notebook, *self.sources):
            if path is not None and (path.startswith("/") or ".." in path.split("/")):
                problems.append(f"paths are from the repository root, got {path!r}")
        if not issubclass(self.params, UnitParams):
            problems.append("params must subclass pipeline.params.UnitParams")
        if problems:
            raise ValueError(f"unit spec {self.id!r}: " + "; ".join(problems))

    @property
    def implemented(self) -> bool:
        return self.flow is not None

    @property
    def model_name(self) -> str:
        """The MLflow registered model's name: ``registered_model``, else ``mlpath-<id>``."""
        return self.registered_model or f"mlpath-{self.id}"

    @property
    def experiment(self) -> str:
        """The MLflow experiment of the unit's runs."""
        return f"mlpath-{self.id}"

    @property
    def flow_module(self) -> str:
        return self.flow.partition(":")[0] if self.flow else ""

    def load_flow(self):
        """The Prefect flow object (imports the flow module, hence Prefect)."""
        import importlib

        if self.flow is None:
            raise ValueError(f"{self.id} is not built yet: its spec names no flow")
        module, _, name = self.flow.partition(":")
        return getattr(importlib.import_module(module), name)
