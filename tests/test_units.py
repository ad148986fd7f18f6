"""Unit specs: each unit declares itself once, and everything that lists units reads the specs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import Field

from pipeline.app.cli import main
from pipeline.app.deploy import PREFECT_FILE, deployment_specs, project_dir, render_prefect_yaml
from pipeline.app.progress import outline
from pipeline.params import ParameterError, UnitParams, build_params, parse_assignments
from pipeline.units import (
    DriftMonitor,
    Experiment,
    Schedule,
    UnitSpec,
    UnknownUnitError,
    all_units,
    get_unit,
    implemented_units,
    register_unit,
    resolve_selection,
)

ROOT = Path(__file__).resolve().parents[1]


class ThrowawayParams(UnitParams):
    width: int = Field(3, ge=1, le=9, description="how wide")


def _throwaway(**changes) -> UnitSpec:
    fields = dict(
        id="throwaway", number=90, title="A throwaway unit", phase=2, topics=("nothing",),
        challenge="Exist for one test.", params=ThrowawayParams,
        flow="flows.unit99_throwaway:unit99_throwaway", datasets=("titanic",),
        primary_metric="test_accuracy", schedule=Schedule("17 4 * * 3"),
        monitor=DriftMonitor("titanic", threshold=0.3, cron="5 7 * * *"),
        try_next=(Experiment(("width=5",), "wider"),))
    return UnitSpec(**{**fields, **changes})


def test_a_registered_unit_shows_in_list_set_validation_outline_and_deployments(capsys):
    with register_unit(_throwaway()):
        assert main(["list"]) == 0
        assert "throwaway" in capsys.readouterr().out
        assert build_params(["throwaway"], "quick", {"width": 5})["throwaway"].width == 5
        assert main(["run", "throwaway", "--set", "width=0"]) == 2
        assert "throwaway: width: Input should be greater than or equal to 1" in capsys.readouterr().err
        assert main(["run", "throwaway", "--set", "depth=2"]) == 2
        assert "unknown parameter(s) depth for throwaway; valid:" in capsys.readouterr().err
        assert [u.id for u in resolve_selection(["all"])][-1] == "throwaway"
        assert "throwaway" in [item.id for item in outline()]

        deployments = {d.get("name") + "@" + d["entrypoint"]: d for d in deployment_specs()}
        retrain = deployments["retrain-throwaway@flows.unit99_throwaway:unit99_throwaway"]
        assert retrain["schedules"] == [{"cron": "17 4 * * 3", "timezone": "UTC"}]
        assert retrain["description"].startswith("Unit 90: A throwaway unit. Retrains on the full profile "
                                                 "Wednesdays at 04:17 UTC.")
        assert "retraining" in retrain["tags"] and retrain["parameters"] == {"params": {"profile": "full"}}
        monitor = deployments["titanic-throwaway@flows.monitoring:drift_monitor"]
        assert monitor["parameters"] == {"unit": "throwaway", "dataset": "titanic", "threshold": 0.3}
        assert monitor["schedules"] == [{"cron": "5 7 * * *", "timezone": "UTC"}]
    assert "throwaway" not in [u.id for u in all_units()]
    assert "throwaway" not in render_prefect_yaml()


def test_registering_a_clashing_unit_fails():
    with pytest.raises(ValueError, match="already exists"), register_unit(_throwaway(id="unit01")):
        pass
    with pytest.raises(ValueError, match="share the number 4"), register_unit(_throwaway(number=4)):
        pass
    assert "throwaway" not in [u.id for u in all_units()]


@pytest.mark.parametrize("changes, message", [
    ({"id": "Unit 9"}, "id must be lowercase"),
    ({"phase": 7}, "phase must be one of"),
    ({"flow": "no_colon"}, "flow must be 'module:function'"),
    ({"primary_metric": None}, "needs a primary_metric"),
    ({"datasets": ()}, "needs its datasets"),
    ({"monitor": DriftMonitor("iris")}, "monitor.dataset 'iris' is not one of"),
    ({"params": dict}, "params must subclass"),
])
def test_a_bad_spec_is_refused_with_the_reason(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _throwaway(**changes)


def test_a_cron_needs_five_fields():
    with pytest.raises(ValueError, match="5 fields"):
        Schedule("0 1 * *")


def test_units_are_found_in_path_order_with_unique_ids():
    units = all_units()
    assert [u.number for u in units] == sorted(u.number for u in units)
    assert units[0].id == "unit01" and units[-1].id == "capstone"
    assert len({u.id for u in units}) == len(units) == 17
    with pytest.raises(UnknownUnitError, match="valid units: unit01, unit02"):
        get_unit("unit99")


def test_every_built_unit_declares_what_it_needs():
    for unit in implemented_units():
        assert unit.schedule is not None, unit.id
        assert unit.notes and (ROOT / unit.notes).is_file(), f"{unit.id}: notes {unit.notes} missing"
        assert unit.notebook and unit.notebook.endswith(".ipynb")
        assert 2 <= len(unit.try_next) <= 3, unit.id
        assert unit.load_flow().name.startswith(unit.id)


def test_try_next_experiments_are_valid_set_commands():
    for unit in implemented_units():
        for experiment in unit.try_next:
            overrides = parse_assignments(list(experiment.overrides))
            build_params([unit.id], "quick", overrides)  # raises on a key or value the unit refuses
            assert experiment.look_for
            assert experiment.command(unit.id).startswith(f"mlpath run {unit.id} --profile quick --set ")


def test_an_experiment_with_a_bad_override_is_caught():
    experiment = Experiment(("n_components=9",), "too many")
    with pytest.raises(ParameterError, match="n_components"):
        build_params(["unit01"], "quick", parse_assignments(list(experiment.overrides)))


def test_the_committed_prefect_yaml_is_the_one_generated_from_the_specs():
    committed = (project_dir() / PREFECT_FILE).read_text()
    assert committed == render_prefect_yaml(), "deployments/prefect.yaml is stale: run `make deployments`"
    assert yaml.safe_load(committed)["prefect-version"] == _installed("prefect")


def _installed(name: str) -> str:
    from importlib.metadata import version

    return version(name)


# modules that belong to one unit are named after it (flows/unit04_trees.py,
# src/pipeline/units/unit04_trees.py); lessons name their unit through its spec
_UNIT_ID = re.compile(r"""["'](unit\d\d|capstone)["']""")


def test_no_module_outside_a_units_own_files_lists_unit_ids():
    ids = {u.id for u in all_units()}
    offenders = []
    for folder in ("src/pipeline", "tasks", "flows"):
        for path in (ROOT / folder).rglob("*.py"):
            if any(path.name.startswith(uid) for uid in ids):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if _UNIT_ID.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_importing_the_specs_is_cheap():
    code = ("import sys\nfrom pipeline.units import all_units\nall_units()\n"
            "print(sorted(m for m in ('torch', 'prefect', 'mlflow', 'pandas', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("unit_id, overrides, message", [
    ("unit04", {"max_depth": True}, "unit04: max_depth: Input should be a valid integer, got true (bool)"),
    ("unit04", {"max_depth": 2.0}, "unit04: max_depth: Input should be a valid integer, got 2.0 (float)"),
    ("unit04", {"max_depth": "3"}, 'unit04: max_depth: Input should be a valid integer, got "3" (str)'),
    ("unit04", {"seed": False}, "unit04: seed: Input should be a valid integer, got false (bool)"),
    ("unit04", {"test_size": True}, "unit04: test_size: Input should be a valid number, got true (bool)"),
    ("unit06", {"max_depth_range": [1, True]}, "unit06: max_depth_range.1: Input should be a valid integer"),
])
def test_parameters_are_strict_no_bool_or_float_becomes_an_int(unit_id, overrides, message):
    with pytest.raises(ParameterError) as exc:
        build_params([unit_id], "quick", overrides)
    assert message in str(exc.value)


def test_parameters_from_json_still_pass():
    built = build_params(["unit04"], "quick", parse_assignments(["cv_folds=5", "max_depth=3", "test_size=0.3"]))
    assert (built["unit04"].cv_folds, built["unit04"].max_depth, built["unit04"].test_size) == (5, 3, 0.3)
    assert build_params(["unit04"], "quick", {"max_depth": None})["unit04"].max_depth is None
    assert build_params(["unit04"], "quick", {"test_size": 1e-1})["unit04"].test_size == 0.1
    # a float field takes an int; a Prefect run passes its parameters as a JSON object
    from pipeline.units.unit04_trees import Unit04Params
    assert Unit04Params.model_validate_json('{"cv_folds": 3, "test_size": 0.5, "seed": 2}').cv_folds == 3
    assert Unit04Params.model_validate({"cv_folds": 3, "data_files": {}}).cv_folds == 3


@pytest.mark.parametrize("unit_id", ["unit01", "unit04", "unit06", "unit07", "unit08"])
def test_one_cv_fold_is_refused_alike_by_every_unit(unit_id):
    with pytest.raises(ParameterError, match=f"{unit_id}: cv_folds: .*cv_folds=1 is no cross-validation"):
        build_params([unit_id], "quick", {"cv_folds": 1})


def test_in_path_overrides_apply_only_after_the_units_they_name():
    from pipeline.params import in_path_params

    def capstone_fine_tunes(unit_ids: list[str], overrides: dict) -> bool:
        built = in_path_params(unit_ids, build_params(unit_ids, "quick", overrides), overrides)
        return built["capstone"].fine_tune

    assert capstone_fine_tunes(["capstone"], {})  # alone: it fine-tunes first
    assert capstone_fine_tunes(["capstone", "unit11"], {})  # Unit 11 runs after it: no champion yet
    assert not capstone_fine_tunes(["unit11", "capstone"], {})  # the path: serve what Unit 11 registered
    assert capstone_fine_tunes(["unit11", "capstone"], {"fine_tune": True})  # the user's --set wins
