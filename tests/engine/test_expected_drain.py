"""The expected-load drain and the best-effort re-split of a drained unit's receivers (hard-tight-8).

Three ATSs: ats1 (mpdu1) alerts; ats2 feeds mpdu2 and mpdu3, ats3 feeds mpdu4 (every MPDU has a
40 A continuous limit). The rules are called directly on a policy that has learnt a history of
the loads given (alerts and failure estimates given), the forecasts its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace

from custom_components.datacenter_power.engine.decisions import Action, OverloadPrediction
from custom_components.datacenter_power.engine.degradation import HealthAssessment
from custom_components.datacenter_power.engine.observation import (
    CircuitObs,
    ElementObs,
    PlantObservation,
)
from custom_components.datacenter_power.engine.policy import DecisionPolicy, PolicyConfig
from custom_components.datacenter_power.engine.topology import (
    AtsNode,
    CircuitNode,
    MpduNode,
    Topology,
)

T0 = 1_772_409_600.0  # 2026-03-02 00:00 UTC, a Monday
POLL = 60.0
H = 3600.0

TOPO = Topology.build(
    [
        AtsNode("ats1", ("u1", "u2"), 200.0),
        AtsNode("ats2", ("u2", "u1"), 200.0),
        AtsNode("ats3", ("u1", "u2"), 200.0),
    ],
    [
        MpduNode("mpdu1", "ats1", 50.0),
        MpduNode("mpdu2", "ats2", 50.0),
        MpduNode("mpdu3", "ats2", 50.0),
        MpduNode("mpdu4", "ats3", 50.0),
    ],
    [
        CircuitNode("x", ("mpdu1", "mpdu2", "mpdu3"), 16.0),  # both ways out behind ats2
        CircuitNode("y", ("mpdu1", "mpdu2", "mpdu4"), 16.0),  # ways out behind ats2 and ats3
        CircuitNode("z", ("mpdu1", "mpdu2"), 16.0),  # a single way out
        CircuitNode("f2", ("mpdu2",), 63.0),
        CircuitNode("f3", ("mpdu3",), 63.0),
        CircuitNode("f4", ("mpdu4",), 63.0),
    ],
)


def _obs(
    t: float, assignment: Mapping[str, str | None], amps: Mapping[str, float]
) -> PlantObservation:
    loads = dict.fromkeys(TOPO.elements, 0.0)
    circuits = {}
    for cid, path in assignment.items():
        a = amps[cid] if path is not None else 0.0
        if path is not None:
            loads[path] += a
            loads[TOPO.ats_of(path)] += a
        circuits[cid] = CircuitObs(
            id=cid,
            reachable=True,
            active_path=path,
            energized=path is not None,
            current_a=a,
            path_energized=dict.fromkeys(TOPO.circuits[cid].paths, True),
        )
    elements = {
        e: ElementObs(
            id=e,
            kind="ats" if e in TOPO.ats else "mpdu",
            reachable=True,
            energized=True,
            current_a=loads[e],
            temperature_c=30.0,
            ripple_pct=0.4,
            nominal_transfer_ms=100.0,
        )
        for e in TOPO.elements
    }
    return PlantObservation(t_s=t, circuits=circuits, elements=elements, ambient_c=24.0)


def _learnt(
    assignment: Mapping[str, str | None],
    amps: Callable[[float], Mapping[str, float]],
    hours: float = 50.0,
    **cfg: object,
) -> tuple[DecisionPolicy, float]:
    """A policy fed ``hours`` of polls (``amps`` of the hour of day), forecasts refreshed."""
    policy = DecisionPolicy(TOPO, PolicyConfig(**cfg))  # type: ignore[arg-type]
    for k in range(int(hours * H / POLL)):
        t = T0 + k * POLL
        policy.observe(_obs(t, assignment, amps((t - T0) / H % 24.0)))
    t = T0 + hours * H
    policy.decide(t)
    return policy, t


def _wearing(low_h: float, median_h: float, high_h: float) -> HealthAssessment:
    return HealthAssessment(
        component="ats1",
        health=40.0,
        failure_probability=0.5,
        time_to_failure_s=median_h * H,
        alert=True,
        signals=("contact_temperature",),
        scores={},
        time_to_failure_low_s=low_h * H,
        time_to_failure_high_s=high_h * H,
    )


def _expected_drain(
    policy: DecisionPolicy,
    t: float,
    assignment: Mapping[str, str | None],
    amps: Mapping[str, float],
    a: HealthAssessment,
    window_h: float,
) -> tuple[Action | None, list[str]]:
    notes: list[str] = []
    act = policy._rules._expected_drain(
        "ats1",
        a,
        t,
        t + 0.5 * H,
        assignment,
        amps,
        {"ats1", "mpdu1"},
        (t + window_h * H,),
        notes,
    )
    return act, notes


TIGHT = {"x": 3.8, "y": 3.8, "z": 3.8, "f2": 36.0, "f3": 36.0, "f4": 36.0}
"""Each receiver 4 A below its limit: the circuit fits on its expected load, not with the
plan margin."""


def test_a_circuit_whose_ways_out_lie_behind_one_ats_moves_on_its_expected_load() -> None:
    """``x`` can go to mpdu2 or mpdu3, both behind ats2: ats1's failure would put it behind
    ats2 anyway, so at the deadline it moves there on its expected load (before: only a
    circuit with a single way out did, and on hard-tight-8 c15 stayed on the failing ats1,
    10.7 A interrupted)."""
    lineup = {**TOPO.normal_assignment(), "y": None, "z": None}
    policy, t = _learnt(lineup, lambda _h: TIGHT)
    act, _ = _expected_drain(policy, t, lineup, TIGHT, _wearing(1.0, 3.0, 8.0), 4.0)
    assert act is not None
    assert act.kind == "migrate"
    assert "expected (P50) load" in act.reason
    assert {m.circuit for m in act.plan.moves} == {"x"}
    assert {m.to_mpdu for m in act.plan.moves} <= {"mpdu2", "mpdu3"}


def test_a_circuit_with_ways_through_two_atss_keeps_them() -> None:
    """``y`` can go behind ats2 or ats3: after the failure the rebalance chooses on the loads
    then measured, so it does not move on its expected load (three_way-7's rule)."""
    lineup = {**TOPO.normal_assignment(), "x": None, "z": None}
    policy, t = _learnt(lineup, lambda _h: TIGHT)
    act, _ = _expected_drain(policy, t, lineup, TIGHT, _wearing(1.0, 3.0, 8.0), 4.0)
    assert act is None


def _afternoon(h: float) -> dict[str, float]:
    """mpdu2 at 38 A from 14:00 to 17:00 (2 A below its limit), 30 A otherwise; ``z`` 9 A
    (39 A on mpdu2 with it in the morning: it fits on its expected load, not with the plan
    margin)."""
    return {**TIGHT, "z": 9.0, "f2": 38.0 if 14.0 <= h < 17.0 else 30.0}


def test_the_guard_counts_a_receiver_peak_after_the_median_failure() -> None:
    """``z`` (single way out, mpdu2) fits on its expected load over the drain's window (the
    next 4 h), but the afternoon peak 12-15 h ahead would put mpdu2 above its limit with it.
    The failure is most likely in 6 h, at the latest (P90) in 20 h: the unit still works at
    the peak about a quarter of the time, so the receivers are expected above a limit for
    half an hour or more while the moved load would not otherwise be there. Before: the
    guard integrated only up to the median failure (6 h), saw nothing and drained."""
    lineup = {**TOPO.normal_assignment(), "x": None, "y": None}
    policy, t = _learnt(lineup, _afternoon)  # t = 02:00
    assert (t - T0) / H % 24.0 == 2.0
    amps = _afternoon(2.0)
    act, notes = _expected_drain(policy, t, lineup, amps, _wearing(2.0, 6.0, 20.0), 4.0)
    assert act is None
    assert any("while ats1 still works" in n for n in notes)
    # The same peak after the latest failure estimate costs nothing: the bypass would put
    # the load there anyway.
    act, _ = _expected_drain(policy, t, lineup, amps, _wearing(1.0, 2.0, 4.0), 4.0)
    assert act is not None
    assert {m.circuit for m in act.plan.moves} == {"z"}


DRAINED = {**TOPO.normal_assignment(), "x": "mpdu2", "y": None, "z": None}
"""``x`` drained off ats1 onto mpdu2, which is then the fuller of ats2's MPDUs."""
SPLIT = {"x": 3.8, "y": 0.0, "z": 0.0, "f2": 36.0, "f3": 30.0, "f4": 20.0}


def _resplit(policy: DecisionPolicy, t: float, alerts: frozenset[str]) -> Action | None:
    rules = policy._rules
    soon = [OverloadPrediction("mpdu2", 40.0, t + 3 * H, t + 3 * H, 40.2, 39.8, urgent=False)]
    unavailable = policy._state.unavailable(alerts)
    return rules._resplit(t + 1.0, DRAINED, SPLIT, unavailable, alerts, soon)


def test_a_drained_units_receivers_are_re_split_when_it_lowers_the_worst_utilisation() -> None:
    """mpdu2 runs at 99.5 % of its limit with ``x`` drained onto it, mpdu3 at 75 %: the
    balanced split moves ``x`` to mpdu3 (no ATS's load changes), the worst forecast
    utilisation falls by far more than the threshold, and the stage is within every limit
    on the measured load. Before: no rule re-split the receivers."""
    policy, t = _learnt(DRAINED, lambda _h: SPLIT)
    act = _resplit(policy, t, frozenset({"ats1"}))
    assert act is not None
    assert act.kind == "relieve"
    assert {(m.circuit, m.from_mpdu, m.to_mpdu) for m in act.plan.moves} == {
        ("x", "mpdu2", "mpdu3")
    }
    assert "re-split" in act.reason
    # At most once per forecast refresh.
    assert _resplit(policy, t + 60.0, frozenset({"ats1"})) is None


def test_no_re_split_below_the_threshold() -> None:
    """The same lineup with a threshold above the gain (10 % of the limit): nothing moves."""
    policy, t = _learnt(DRAINED, lambda _h: SPLIT, resplit_min_gain=0.12)
    assert _resplit(policy, t, frozenset({"ats1"})) is None


def test_no_re_split_onto_an_alerting_element() -> None:
    """mpdu3, the only other MPDU behind ats2, alerts too: nothing moves onto it."""
    policy, t = _learnt(DRAINED, lambda _h: SPLIT)
    assert _resplit(policy, t, frozenset({"ats1", "mpdu3"})) is None


def test_no_re_split_onto_a_failed_element() -> None:
    """mpdu3 is dead (not energised): nothing moves onto it."""
    policy, t = _learnt(DRAINED, lambda _h: SPLIT)
    obs = _obs(t, DRAINED, SPLIT)
    elements = dict(obs.elements)
    elements["mpdu3"] = replace(elements["mpdu3"], energized=False, current_a=0.0)
    policy.observe(replace(obs, elements=elements))
    alerts = frozenset({"ats1"})
    unavailable = policy._state.unavailable(alerts)
    assert "mpdu3" in unavailable
    soon = [OverloadPrediction("mpdu2", 40.0, t + 3 * H, t + 3 * H, 40.2, 39.8, urgent=False)]
    assert policy._rules._resplit(t + 1.0, DRAINED, SPLIT, unavailable, alerts, soon) is None
    assert math.isfinite(policy._rules.resplit_refresh)
