"""``scripts/campus``'s own logic: the halls' scenario, the broker passwords it keeps, and how
``--measure`` pairs a hall's alert with the campus's (the instances it starts are tested where
they live: tests/integration/test_campus_*.py, tests/integration/test_recorder_postgresql.py)."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import campus_measure
import campus_stack
from campus_measure import Change, alert_latencies

from dcp_sim.scenario import WearEvent, load_scenario


def test_each_hall_has_a_wear_failure_to_approve_and_measure(tmp_path: Path) -> None:
    """A valid hall of the asked size whose first ATS wears out and fails at FAILURE_H."""
    path = campus_stack.hall_scenario(tmp_path / "hall.yaml", "hall1", 120, seed=12)
    scenario = load_scenario(path)
    assert len(scenario.circuits) == 120
    (wear,) = [e for e in scenario.events if isinstance(e, WearEvent)]
    assert wear.target == "ats1"
    assert wear.failure_s == campus_stack.FAILURE_H * 3600


def test_broker_passwords_are_made_once_and_kept_private(tmp_path: Path) -> None:
    """A second start finds the same passwords (the halls' mqtt entries keep logging in); a
    new hall gets one without changing the others'."""
    path = tmp_path / "passwords.json"
    first = campus_stack._passwords(path, ["hall1", "hall2"])
    assert set(first) == {"campus", "hall1", "hall2"}
    assert len(set(first.values())) == 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert campus_stack._passwords(path, ["hall1", "hall2"]) == first
    more = campus_stack._passwords(path, ["hall1", "hall2", "hall3"])
    assert {k: more[k] for k in first} == first
    assert more["hall3"] not in first.values()


def test_an_alert_is_paired_with_the_campus_showing_the_same_value() -> None:
    """The first later campus change to the same value counts; a hall flicker the campus never
    showed does not, nor a campus change of another entity."""
    pairs = {"sensor.plant_status": "sensor.dcp_hall1_status"}
    hall = [
        Change("sensor.plant_status", "at_risk", 100.0),
        Change("sensor.plant_status", "failed", 200.0),  # undone 0.1 s later
        Change("sensor.plant_status", "at_risk", 200.1),
    ]
    campus = [
        Change("sensor.dcp_hall2_status", "at_risk", 100.1),  # another hall
        Change("sensor.dcp_hall1_status", "at_risk", 100.25),
        Change("sensor.dcp_hall1_status", "at_risk", 200.4),
        Change("sensor.dcp_hall1_status", "failed", 400.0),  # a later failure, not this one
    ]
    samples = alert_latencies(hall, campus, pairs)
    assert [round(ms) for ms, _e, _v in samples] == [250, 300]
    assert [v for _ms, _e, v in samples] == ["at_risk", "at_risk"]


def test_percentiles_of_nothing_are_none() -> None:
    assert campus_measure._percentiles([]) == {"p50": None, "p99": None}
    assert campus_measure._percentiles([3.0, 1.0, 2.0]) == {"p50": 2.0, "p99": 3.0}
