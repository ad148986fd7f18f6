"""The path's units, found from their specs: one module per unit in this package, each with ``SPEC``.

Adding a unit is adding a module here (see ``docs/adding-a-unit.md``); nothing else lists units.
``all_units()`` imports every module of the package that is not private, in order of
``UnitSpec.number``. ``register_unit`` adds a spec from elsewhere (a plugin, a test's throwaway
unit) for this process. Cheap to import: spec modules hold data and a pydantic model only.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from pipeline.units.spec import PHASES, DriftMonitor, Experiment, Reference, Schedule, UnitSpec

__all__ = ["PHASES", "DriftMonitor", "Experiment", "Reference", "Schedule", "UnitSpec", "UnknownUnitError",
           "all_units", "get_unit", "implemented_units", "register_unit", "resolve_selection"]

_NOT_UNITS = {"spec"}
_registered: dict[str, UnitSpec] = {}


class UnknownUnitError(LookupError):
    """A unit id that is not part of the path."""


@cache
def _discovered() -> tuple[UnitSpec, ...]:
    specs = []
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_") or module.name in _NOT_UNITS:
            continue
        spec = getattr(importlib.import_module(f"{__name__}.{module.name}"), "SPEC", None)
        if not isinstance(spec, UnitSpec):
            raise TypeError(f"{__name__}.{module.name} must define SPEC = UnitSpec(...)")
        specs.append(spec)
    return tuple(specs)


def all_units() -> tuple[UnitSpec, ...]:
    """Every unit, built or planned, in path order. Raises ValueError on duplicate ids or numbers."""
    specs = sorted([*_discovered(), *_registered.values()], key=lambda s: s.number)
    for attribute in ("id", "number"):
        values = [getattr(s, attribute) for s in specs]
        duplicates = sorted({v for v in values if values.count(v) > 1}, key=str)
        if duplicates:
            raise ValueError(f"two unit specs share the {attribute} {', '.join(map(str, duplicates))}")
    return tuple(specs)


def get_unit(unit_id: str) -> UnitSpec:
    for spec in all_units():
        if spec.id == unit_id:
            return spec
    valid = ", ".join(s.id for s in all_units())
    raise UnknownUnitError(f"unknown unit {unit_id!r}; valid units: {valid}, or 'all'")


def implemented_units() -> list[UnitSpec]:
    return [spec for spec in all_units() if spec.implemented]


def resolve_selection(names: list[str]) -> list[UnitSpec]:
    """Turn CLI names (unit ids or ``all``) into units, in path order, without duplicates.

    Raises UnknownUnitError for an unknown id and ValueError for a unit that is not built yet.
    """
    if "all" in names:
        return implemented_units()
    chosen = {get_unit(name).id for name in names}
    missing = sorted(uid for uid in chosen if not get_unit(uid).implemented)
    if missing:
        built = ", ".join(spec.id for spec in implemented_units())
        raise ValueError(f"not implemented yet: {', '.join(missing)}; built units: {built}")
    return [spec for spec in all_units() if spec.id in chosen]


@contextmanager
def register_unit(spec: UnitSpec) -> Iterator[UnitSpec]:
    """Add ``spec`` to the path for the duration of the ``with`` block (plugins, tests)."""
    if spec.id in _registered or any(s.id == spec.id for s in _discovered()):
        raise ValueError(f"a unit {spec.id!r} already exists")
    _registered[spec.id] = spec
    try:
        all_units()  # fail now on a clashing number
        yield spec
    finally:
        _registered.pop(spec.id, None)
