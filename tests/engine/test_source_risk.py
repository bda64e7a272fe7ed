"""A receiver's source risk: load on an ATS running on its alternate source (issue 24).

An ATS whose preferred source is lost has transferred (every circuit on it interrupted once) and
retransfers when the source returns (every circuit on it interrupted again). Drained load sits
there twice exposed where, left on the unit predicted to fail, it would be interrupted once, by
the failure. The rules are called directly (alerts and failure estimates given), on a policy
that has learnt a steady day of loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from custom_components.datacenter_power.engine.decisions import Action
from custom_components.datacenter_power.engine.degradation import (
    HealthAssessment,
    failure_within,
)
from custom_components.datacenter_power.engine.observation import (
    PlantObservation,
    ScheduledLoad,
)
from custom_components.datacenter_power.engine.policy import DecisionPolicy
from custom_components.datacenter_power.engine.rules import Candidates

from .test_policy import TOPO, _history, _obs, _policy, _steady

H = 3600.0
DRAINED = {f"a{i}": "mpdu2" if i <= 2 else "mpdu3" for i in range(1, 5)}
"""ats1's circuits (normal path mpdu1) drained onto ats2's MPDUs."""


def _on_alternate(obs: PlantObservation, ats: str) -> PlantObservation:
    elements = dict(obs.elements)
    elements[ats] = replace(elements[ats], on_alternate=True)
    return replace(obs, elements=elements)


def _wearing(low_h: float, median_h: float = 10.0) -> HealthAssessment:
    return HealthAssessment(
        component="ats1",
        health=40.0,
        failure_probability=0.5,
        time_to_failure_s=median_h * H,
        alert=True,
        signals=("contact_temperature",),
        scores={},
        time_to_failure_low_s=low_h * H,
    )


def _candidates(
    policy: DecisionPolicy,
    t: float,
    assignment: Mapping[str, str | None],
    low_h: float,
    median_h: float = 10.0,
    *,
    on_alternate: bool = True,
    decide: bool = True,
) -> Candidates:
    """ats2 on its alternate source; ats1 alerts with failure estimates ``low_h`` (P10) and
    ``median_h``."""
    obs = _obs(t, assignment, _steady())
    policy.observe(_on_alternate(obs, "ats2") if on_alternate else obs)
    if decide:
        policy.decide(t)  # forecasts refreshed (the policy's own rules see no alert)
    rules = policy._rules
    alerts = frozenset({"ats1"})
    assessments = {e: replace(_wearing(low_h, median_h), component=e) for e in TOPO.elements}
    return rules.candidates(
        t + 1.0,
        assignment=assignment,
        circuit_a=_steady(),
        circuit_reachable=dict.fromkeys(TOPO.circuits, True),
        assessments=assessments,
        alerts=alerts,
        unavailable=policy._state.unavailable(alerts),
        overloads=[],
        history_s=26 * H,
    )


def _only(c: Candidates) -> Action:
    (act,) = c.actions
    return act


def test_drained_load_leaves_an_ats_on_its_alternate_source_before_it_retransfers() -> None:
    """ats1's four circuits were drained onto ats2; ats2 loses its preferred source. They go
    back to ats1 (which alerts but still works, its early failure estimate 8 h away) before
    ats2 retransfers, urgently (the source may return any minute). Before: nothing moved (no
    rule looked at the ATS's source) and the retransfer interrupted them a second time."""
    policy = _policy()
    t = _history(policy)
    assignment = {**TOPO.normal_assignment(), **DRAINED}
    act = _only(_candidates(policy, t, assignment, low_h=8.0))
    assert act.kind == "migrate"
    assert act.target == "ats2"
    assert act.urgent
    assert {(m.circuit, m.to_mpdu) for m in act.plan.moves} == {(c, "mpdu1") for c in DRAINED}


def test_load_handed_back_for_a_source_is_drained_again_at_the_urgent_pace() -> None:
    """After the hand-back, once ats2 is back on its preferred source, ats1's drain runs again
    as an urgent action (large stages, a poll apart): the load was drained before and went
    back only to spare it the retransfer; the failure estimate has not moved. Before: the
    ordinary drain pace (40 A stages two minutes apart), which on hard-outage_during_drain-21
    left 34 A on ats1 at its failure three minutes after the source returned."""
    policy = _policy()
    t = _history(policy)
    assignment = {**TOPO.normal_assignment(), **DRAINED}
    act = _only(_candidates(policy, t, assignment, low_h=8.0))
    assert act.target == "ats2"
    policy.action_started(act)
    policy.action_finished(act, ok=True)
    t += 600.0
    normal = TOPO.normal_assignment()
    again = _only(_candidates(policy, t, normal, 8.0, on_alternate=False, decide=False))
    assert again.kind == "migrate"
    assert again.target == "ats1"
    assert again.urgent
    assert again.step_interval_s == policy.config.poll_s


def test_load_handed_back_for_a_source_goes_back_where_it_was_on_the_next_hour() -> None:
    """After the hand-back, announced work will raise ats2's own circuits by 6 A each from
    in 2 h: no drain of ats1 keeps ats2's MPDUs within their limits through the failure's
    window any more, but the lineup held until the outage holds for the next hour. The load
    parked on ats1 goes back there at once, all of it (later crossings are the relief's, as
    they would have been without the outage). Before: only what fits the long window moved
    (hard-outage_during_drain-16: 20.9 A left on ats2 at its failure)."""
    policy = _policy()
    t = _history(policy)
    assignment = {**TOPO.normal_assignment(), **DRAINED}
    act = _only(_candidates(policy, t, assignment, low_h=8.0))
    assert act.target == "ats2"
    policy.action_started(act)
    policy.action_finished(act, ok=True)
    t += 600.0
    own2 = tuple(c for c in TOPO.circuits if not c.startswith("a"))
    policy.schedule = (ScheduledLoad(t + 2 * H, t + 30 * H, own2, 6.0),)
    policy._fcs.refresh(t, policy.schedule, TOPO.normal_assignment())
    normal = TOPO.normal_assignment()
    again = _only(_candidates(policy, t, normal, 8.0, on_alternate=False, decide=False))
    assert again.target == "ats1"
    assert {m.circuit for m in again.plan.moves} == set(DRAINED)


def test_drained_load_stays_on_the_alternate_source_when_the_failure_may_come_first() -> None:
    """The same, but ats1 is as likely as not to fail within the hour (P10 20 min, median
    1 h) the source is assumed to take: the failure is the surer harm, the drained circuits
    stay."""
    policy = _policy()
    t = _history(policy)
    assignment = {**TOPO.normal_assignment(), **DRAINED}
    c = _candidates(policy, t, assignment, low_h=1 / 3, median_h=1.0)
    assert not [m for a in c.actions for m in a.plan.moves if m.to_mpdu == "mpdu1"]


def test_a_drain_waits_for_a_receiver_on_its_alternate_source_until_it_is_due() -> None:
    """ats1 alerts (early estimate 8 h) and its only receivers are behind ats2, which runs on
    its alternate source: the drain waits for the source (a note says why) rather than put
    the circuits where the retransfer interrupts them. Before: drained onto ats2 at once. When
    ats1 is as likely as not to fail within the hour it drains there all the same."""
    policy = _policy()
    t = _history(policy)
    normal = TOPO.normal_assignment()
    c = _candidates(policy, t, normal, low_h=8.0)
    assert not c.actions
    assert any("alternate source" in n for n in c.notes)
    policy = _policy()
    t = _history(policy)
    act = _only(_candidates(policy, t, normal, low_h=1 / 3, median_h=1.0))
    assert act.kind == "migrate"
    assert act.target == "ats1"
    assert {m.from_mpdu for m in act.plan.moves} == {"mpdu1"}


def test_failure_within_reads_the_time_to_failure_quantiles() -> None:
    """0.1 at the P10, 0.5 at the median, 0.9 at the P90, log-linear in between."""
    a = replace(_wearing(1.0, 4.0), time_to_failure_high_s=16 * H)
    assert failure_within(a, 0.5 * H) == pytest.approx(0.05)
    assert failure_within(a, 1.0 * H) == pytest.approx(0.1)
    assert failure_within(a, 2.0 * H) == pytest.approx(0.3)
    assert failure_within(a, 4.0 * H) == pytest.approx(0.5)
    assert failure_within(a, 8.0 * H) == pytest.approx(0.7)
    assert failure_within(a, 16.0 * H) == pytest.approx(0.9)
    assert failure_within(replace(a, time_to_failure_s=None), H) == 1.0


def test_an_ats_on_its_alternate_source_keeps_its_own_circuits() -> None:
    """A source outage on a quiet plant moves nothing: ats2's own circuits could leave for
    mpdu1 and be spared the retransfer, but switching a quiet plant for every source event
    is not the engine's to do (the shared quiet week expects no switch operation). Before
    (the first version of the rule took every circuit that could leave): b1-b3 and d1-d3
    moved to mpdu1."""
    policy = _policy()
    t = _history(policy)
    normal = TOPO.normal_assignment()
    for k in range(5):
        obs = _on_alternate(_obs(t + k * 60.0, normal, _steady()), "ats2")
        policy.observe(obs)
        decided = policy.decide(t + k * 60.0)
        assert not decided.actions
        assert not decided.proposals
