"""Requested migrations are planned on the engine's basis (engine/requested.py): the policy's
load profiles over the time the moved load sits on its receivers, and load the circuits do not
report (silent circuits) reserved from the elements' own meters."""

from __future__ import annotations

import numpy as np
import pytest

from custom_components.datacenter_power.engine.element_forecast import LoadProfiles
from custom_components.datacenter_power.engine.plan import Infeasible, Plan
from custom_components.datacenter_power.engine.requested import (
    NO_FORECAST_MARGIN,
    plan_request,
    reserve,
    unseen_load,
)
from custom_components.datacenter_power.engine.topology import (
    AtsNode,
    CircuitNode,
    MpduNode,
    Topology,
)

T0 = 1_800_000_000.0


def _plant() -> Topology:
    """m1 (ats1) and m2 (ats2), 40 A each (limit 32 A); a, b on m1 can move to m2; c, d on m2."""
    return Topology.build(
        [AtsNode("ats1", ("u1", "u2"), 100.0), AtsNode("ats2", ("u2", "u1"), 100.0)],
        [MpduNode("m1", "ats1", 40.0), MpduNode("m2", "ats2", 40.0)],
        [
            CircuitNode("a", ("m1", "m2"), 16.0, True),
            CircuitNode("b", ("m1", "m2"), 16.0, True),
            CircuitNode("c", ("m2", "m1"), 16.0, True),
            CircuitNode("d", ("m2",), 16.0, False),
        ],
    )


ASSIGN: dict[str, str | None] = {"a": "m1", "b": "m1", "c": "m2", "d": "m2"}
NOW_A = {"a": 6.0, "b": 6.0, "c": 8.0, "d": 6.0}
METERS = {"m1": 12.0, "m2": 14.0, "ats1": 12.0, "ats2": 14.0}


def _drain(
    *,
    assignment: dict[str, str | None] | None = None,
    circuit_a: dict[str, float] | None = None,
    profiles: LoadProfiles | None = None,
) -> Plan | Infeasible:
    return plan_request(
        _plant(),
        assignment if assignment is not None else ASSIGN,
        circuit_a if circuit_a is not None else NOW_A,
        METERS,
        T0,
        profiles=profiles,
        drain="m1",
        max_step_amps=40.0,
    )


def test_without_a_forecast_present_currents_and_a_margin() -> None:
    """(6+6+8+6) x 1.1 = 28.6 A on m2: fits its 32 A limit."""
    plan = _drain()
    assert isinstance(plan, Plan)
    assert plan.final_assignment["a"] == plan.final_assignment["b"] == "m2"
    assert plan.peak_utilization["m2"] == pytest.approx(26 * (1 + NO_FORECAST_MARGIN) / 40)


def test_the_receiver_is_checked_against_its_forecast_peak() -> None:
    """Present currents fit m2 (28.6 A), but the circuits' P90 profiles reach 36 A on m2 in six
    hours, while the moved load would still sit there: refused, naming m2 and the time."""
    times = T0 + 900.0 * np.arange(1, 49)
    ramp = np.where(times >= T0 + 6 * 3600, 1.4, 1.0)
    profiles = LoadProfiles(
        times,
        {c: a * ramp for c, a in NOW_A.items()},
        margin=0.03,
        min_horizon_s=12 * 3600.0,
    )
    result = _drain(profiles=profiles)
    assert isinstance(result, Infeasible)
    assert result.element == "m2"
    assert result.at_s is not None
    assert result.at_s >= T0 + 6 * 3600
    # The same forecast with the rise beyond the horizon that must hold: feasible.
    late = np.where(times >= T0 + 13 * 3600, 1.4, 1.0)
    profiles = LoadProfiles(times, {c: a * late for c, a in NOW_A.items()}, 0.03, 12 * 3600.0)
    assert isinstance(_drain(profiles=profiles), Plan)


def test_a_forecast_that_has_expired_falls_back_to_present_currents() -> None:
    times = T0 - 900.0 * np.arange(4, 0, -1)
    profiles = LoadProfiles(times, {c: np.full(4, 99.0) for c in NOW_A}, 0.03, 3600.0)
    assert isinstance(_drain(profiles=profiles), Plan)


def test_load_of_silent_circuits_is_reserved_from_the_meters() -> None:
    """c (8 A on m2) does not answer: its path and current are unknown, but m2's meter reads
    14 A. Without the reservation m2 looks like 6 A and the drain fits; with it, 12 A moved onto
    m2 would leave it at 6 + 12 + 8 (+ margins) > 32 A: refused."""
    assignment = dict(ASSIGN, c=None)
    circuit_a = {c: a for c, a in NOW_A.items() if c != "c"}
    assert unseen_load(_plant(), assignment, circuit_a, METERS) == pytest.approx(
        {"m2": 8.0, "ats2": 8.0}
    )
    # Raise a and b so that the drain fits only when c is forgotten.
    circuit_a |= {"a": 9.0, "b": 9.0}
    meters = dict(METERS, m1=18.0, ats1=18.0)
    result = plan_request(
        _plant(),
        assignment,
        circuit_a,
        meters,
        T0,
        profiles=None,
        drain="m1",
        max_step_amps=40.0,
    )
    assert isinstance(result, Infeasible)
    assert result.element == "m2"
    # The excess is stated against the true limit: (6 + 18 + 8) x 1.1 - 32 A.
    assert result.excess_a == pytest.approx(32 * 1.1 - 32, abs=0.05)
    forgotten = plan_request(
        _plant(),
        assignment,
        circuit_a,
        {},
        T0,
        profiles=None,
        drain="m1",
        max_step_amps=40.0,
    )
    assert isinstance(forgotten, Plan)  # what the planner concluded when it could not see c


def test_reported_utilisation_counts_the_reserved_load() -> None:
    assignment = dict(ASSIGN, c=None)
    circuit_a = {c: a for c, a in NOW_A.items() if c != "c"}
    plan = plan_request(
        _plant(), assignment, circuit_a, METERS, T0, profiles=None, drain="m1", max_step_amps=40
    )
    assert isinstance(plan, Plan)
    # m2 ends with a, b, d (18 A) and c (8 A): 26 A x 1.1 of 40 A.
    assert plan.peak_utilization["m2"] == pytest.approx(26 * 1.1 / 40, abs=1e-3)
    assert any("do not answer" in note for note in plan.notes)


def test_reserve_lowers_limits_by_the_amps() -> None:
    topo = reserve(_plant(), {"m2": 8.0})
    assert topo.limit_a("m2") == pytest.approx(24.0)
    assert topo.limit_a("m1") == pytest.approx(32.0)
    assert reserve(_plant(), {"m2": 100.0}).limit_a("m2") > 0
