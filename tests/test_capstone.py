"""Capstone: the sentiment system end to end once on the quick profile (Unit 11 fine-tunes a small
sample and registers, the champion is served on a loopback port, a smoke batch goes through the API),
and the pieces it is made of."""

from __future__ import annotations

import pytest

from pipeline.lessons import capstone as system
from pipeline.units.capstone import CapstoneParams


def test_unit11_params_carry_the_capstones_overrides():
    params = system.unit11_params(CapstoneParams(profile="quick", seed=3, train_size=64))
    assert (params.profile, params.seed, params.train_size, params.epochs) == ("quick", 3, 64, None)
    with pytest.raises(ValueError):
        CapstoneParams(smoke_texts=65)  # one request: at most the API's 64 texts


def test_no_champion_is_reported_not_raised(fresh_home):
    assert system.champion_version() == {"version": None, "run_id": None}


@pytest.mark.slow
def test_capstone_runs_the_system_end_to_end(prefect_harness, fresh_home):
    from flows.capstone import capstone
    from pipeline.registry import client

    outcome = capstone(CapstoneParams(profile="quick", train_size=32, epochs=1, smoke_texts=16))
    assert outcome["status"] == "succeeded" and outcome["unit"] == "capstone"
    assert outcome["primary_metric"] == "test_accuracy" and 0 <= outcome["value"] <= 1
    assert outcome["version"] is None  # the capstone registers a run; the model is Unit 11's
    metrics = client().get_run(outcome["run_id"]).data.metrics
    assert metrics["champion_version"] == 1.0 and metrics["smoke_texts"] == 16
    assert "drift_length_psi" in metrics and "unit11_dev_accuracy" in metrics
    versions = client().search_model_versions("name='mlpath-sentiment'")
    assert [str(v.version) for v in versions] == ["1"]
