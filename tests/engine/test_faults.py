"""``engine/faults.py`` on readings of the real simulator: what one poll shows as failed (and what
it does not: a unit switched off on purpose, one below a dead ATS, an ATS with no source), and
which elements are above their continuous limit."""

from __future__ import annotations

import copy
from typing import Any

from custom_components.datacenter_power.engine.faults import over_limits, unit_failures
from custom_components.datacenter_power.engine.readings import topology_from_identities
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.units import device_identities
from tests.plants import two_ats_plant

DOC: dict[str, Any] = two_ats_plant(
    "faults",
    seed=3,
    ats_rating_a=100,
    mpdu_rating_a=40,
    mpdu3_on="ats2",
    circuits=[
        *({"id": f"a{i}", "paths": ["mpdu1", "mpdu2"], "load": {"mean_a": 9}} for i in range(3)),
        {"id": "b0", "paths": ["mpdu2", "mpdu1"], "load": {"mean_a": 9}},
        {"id": "c0", "paths": ["mpdu3"], "load": {"mean_a": 2}},
    ],
)


def _plant(events: list[dict[str, Any]]) -> Plant:
    doc = copy.deepcopy(DOC)
    for c in doc["circuits"]:
        c["rating_a"] = 16
    doc["events"] = events
    return Plant(parse_scenario(doc), start_s=0.0)


def _faults(plant: Plant) -> tuple[dict[str, str], dict[str, float]]:
    topology = topology_from_identities(device_identities(plant))
    readings = plant.telemetry().readings()
    failed = {e: f.why for e, f in unit_failures(topology, readings).items()}
    over = {e: round(o.excess_a, 1) for e, o in over_limits(topology, readings).items()}
    return failed, over


def test_nothing_failed_or_over_in_normal_operation() -> None:
    assert _faults(_plant([])) == ({}, {})


def test_failed_mpdu_and_the_element_its_bypass_overloads() -> None:
    plant = _plant([{"kind": "sudden_failure", "target": "mpdu1", "at": "10m"}])
    plant.advance_to(600)
    failed, over = _faults(plant)
    assert list(failed) == ["mpdu1"]
    assert "switched on" in failed["mpdu1"]
    assert over == {"mpdu2": 36.0 - 32.0}


def test_failed_ats_but_not_the_mpdus_below_it() -> None:
    plant = _plant([{"kind": "sudden_failure", "target": "ats1", "at": "10m"}])
    plant.advance_to(600)
    failed, _ = _faults(plant)
    assert list(failed) == ["ats1"]
    assert "util_a, util_b are available" in failed["ats1"]


def test_switched_off_or_unfed_is_not_failed() -> None:
    plant = _plant(
        [
            {"kind": "source_outage", "target": "util_a", "at": "10m", "duration": "1h"},
            {"kind": "source_outage", "target": "util_b", "at": "10m", "duration": "1h"},
        ]
    )
    plant.command_mpdu_output("mpdu3", False)  # isolated on purpose
    assert _faults(plant)[0] == {}
    plant.advance_to(600)  # no source at all: every ATS dead, none of them failed
    assert _faults(plant)[0] == {}


def test_over_limit_hysteresis_fraction() -> None:
    plant = _plant([])
    topology = topology_from_identities(device_identities(plant))
    readings = plant.telemetry().readings()
    assert over_limits(topology, readings) == {}
    near = over_limits(topology, readings, 0.8)  # mpdu1 carries 27 A of its 32 A limit
    assert list(near) == ["mpdu1"]
    assert round(near["mpdu1"].pct) == 84
