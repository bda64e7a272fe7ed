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


MIGRATION = "sensor.plant_load_migration"
ON_CAMPUS = "sensor.dcp_hall1_migration"


def _latencies(hall: list[Change], campus: list[Change], end: float = 1e9) -> list[tuple[int, str]]:
    pairs = {MIGRATION: ON_CAMPUS, "sensor.plant_status": "sensor.dcp_hall1_status"}
    return [(round(a.ms), a.state) for a in alert_latencies(hall, campus, pairs, end)]


def test_an_alert_is_paired_with_the_campus_showing_the_same_value() -> None:
    """The first later campus change to the same value counts; a hall flicker the campus never
    showed does not, nor a campus change of another entity."""
    pairs = {"sensor.plant_status": "sensor.dcp_hall1_status"}
    hall = [
        Change("sensor.plant_status", "at_risk", 100.0),
        Change("sensor.plant_status", "failed", 200.0),  # undone 0.1 s later
        Change("sensor.plant_status", "at_risk", 200.1),  # what the campus still shows
        Change("sensor.plant_status", "failed", 300.0),
    ]
    campus = [
        Change("sensor.dcp_hall2_status", "at_risk", 100.1),  # another hall
        Change("sensor.dcp_hall1_status", "at_risk", 100.25),
        Change("sensor.dcp_hall1_status", "failed", 300.5),
    ]
    samples = alert_latencies(hall, campus, pairs, end=400.0)
    assert [(round(a.ms), a.state, a.missed) for a in samples] == [
        (250, "at_risk", False),
        (500, "failed", False),
    ]


def test_a_hall_returning_to_what_the_campus_shows_is_not_paired_with_a_later_change() -> None:
    """Run 2 of 2026-12-06 (hall 1, benchmarks/results-2026-12-06-campus-run2.json): each
    migration stage goes running -> verifying -> running within 0.3 s, under the publisher's
    1 s between two urgent documents, so the campus shows "running" throughout the first stage
    (its documents at 10.68, 11.85 and 12.85 s all say running). The hall's return to "running"
    at 12.18 s is already on the campus: it is not an alert to pair with the campus's next
    *change* to running, after the second stage's verification 33 s later (the ~32.7 s p99)."""
    hall = [
        Change(MIGRATION, "running", 10.37),  # stage 1 of 4 switches
        Change(MIGRATION, "verifying", 12.10),
        Change(MIGRATION, "running", 12.18),  # stage 1 verified; 30 s step interval
        Change(MIGRATION, "verifying", 44.00),  # stage 2
        Change(MIGRATION, "running", 44.50),
        Change(MIGRATION, "verifying", 75.80),  # stage 3
        Change(MIGRATION, "running", 76.30),
    ]
    campus = [  # state changes of the campus's entity, as its recorder kept them
        Change(ON_CAMPUS, "load_at_risk", 2.37),
        Change(ON_CAMPUS, "running", 10.679),
        Change(ON_CAMPUS, "verifying", 44.015),
        Change(ON_CAMPUS, "running", 45.012),
        Change(ON_CAMPUS, "verifying", 75.866),
        Change(ON_CAMPUS, "running", 76.860),
    ]
    assert _latencies(hall, campus, end=100.0) == [
        (309, "running"),
        (15, "verifying"),
        (512, "running"),
        (66, "verifying"),
        (560, "running"),
    ]


def test_a_late_alert_counts_its_delay_and_one_never_shown_counts_as_missed() -> None:
    """What the measurement is for: a migration start held 30 s by the publisher is 30 s late;
    a state the hall held 10 s and the campus never showed is missed, counted at least as long
    as it went unseen (it fails the target), not dropped as a flicker."""
    hall = [
        Change(MIGRATION, "running", 10.0),
        Change(MIGRATION, "verifying", 50.0),  # held 10 s: never on the campus
        Change(MIGRATION, "completed", 60.0),
        Change(MIGRATION, "idle", 61.0),  # held 0.2 s: a flicker, not counted
        Change(MIGRATION, "completed", 61.2),  # back to what the campus shows
    ]
    campus = [
        Change(ON_CAMPUS, "idle", 1.0),
        Change(ON_CAMPUS, "running", 40.0),
        Change(ON_CAMPUS, "completed", 60.3),
    ]
    samples = alert_latencies(hall, campus, {MIGRATION: ON_CAMPUS}, end=100.0)
    assert [(round(a.ms), a.state, a.missed) for a in samples] == [
        (30000, "running", False),
        (15000, "verifying", True),  # unseen for its 10 s and the 5 s grace after
        (300, "completed", False),
    ]


def test_states_when_the_watch_starts_are_not_alerts_nor_answers_to_one() -> None:
    """The watches begin with each entity's state (``initial``): the hall's is no alert, the
    campus's says what it shows, never the campus showing a change made after it."""
    hall = [
        Change(MIGRATION, "running", 5.0, initial=True),
        Change(MIGRATION, "verifying", 6.0),  # a flicker
        Change(MIGRATION, "running", 6.2),  # back to what the campus shows from the start
        Change(MIGRATION, "completed", 7.0),
        Change(MIGRATION, "unavailable", 20.0),  # no value to show
    ]
    campus = [
        Change(ON_CAMPUS, "running", 5.1, initial=True),
        Change(ON_CAMPUS, "completed", 7.4),
    ]
    assert _latencies(hall, campus, end=40.0) == [(400, "completed")]


def test_percentiles_of_nothing_are_none() -> None:
    assert campus_measure._percentiles([]) == {"p50": None, "p99": None}
    assert campus_measure._percentiles([3.0, 1.0, 2.0]) == {"p50": 2.0, "p99": 3.0}
