"""What one decision tick changed (``decision_changes.py``), computed once for every consumer:
alerts on and off, elements newly forecast over their limit, proposals by id and the new ones."""

from __future__ import annotations

from custom_components.datacenter_power.decision_changes import changes_between, proposal_id
from custom_components.datacenter_power.engine.degradation import HealthAssessment
from custom_components.datacenter_power.engine.plan import Move, Plan, PlanStep
from custom_components.datacenter_power.engine.policy import (
    Action,
    Decisions,
    OverloadPrediction,
)


def _assessment(component: str, *, alert: bool) -> HealthAssessment:
    return HealthAssessment(
        component=component,
        health=40.0 if alert else 95.0,
        failure_probability=0.9 if alert else 0.0,
        time_to_failure_s=3600.0 if alert else None,
        alert=alert,
        signals=(),
        scores={},
    )


def _overload(element: str) -> OverloadPrediction:
    return OverloadPrediction(
        element=element,
        limit_a=32.0,
        crossing_s=100.0,
        peak_s=200.0,
        peak_a=35.0,
        measured_a=30.0,
        urgent=False,
    )


def _drain(target: str, circuit: str) -> Action:
    move = Move(circuit=circuit, from_mpdu=target, to_mpdu="mpdu9", amps=5.0)
    plan = Plan(
        goal=f"drain {target}",
        steps=(PlanStep(moves=(move,), amps=5.0, peak_utilization={}),),
        final_assignment={circuit: "mpdu9"},
        peak_utilization={},
        solver="test",
        notes=(),
    )
    return Action(
        kind="migrate",
        target=target,
        plan=plan,
        reason="predicted to fail",
        urgent=False,
        step_interval_s=60.0,
        created_s=0.0,
    )


def _decisions(
    alerting: set[str], overloads: tuple[str, ...] = (), proposals: tuple[Action, ...] = ()
) -> Decisions:
    return Decisions(
        t_s=0.0,
        assessments={c: _assessment(c, alert=c in alerting) for c in ("ats1", "mpdu1", "mpdu2")},
        status={},
        overloads=tuple(_overload(e) for e in overloads),
        proposals=proposals,
    )


def test_the_first_tick_is_compared_with_nothing() -> None:
    """A plant just set up has announced nothing: every alert, overload and proposal is new."""
    drain = _drain("mpdu1", "c01")
    first = changes_between(None, _decisions({"mpdu1"}, ("ats1",), (drain,)))
    assert first.alerts_on == {"mpdu1"}
    assert first.alerts_off == frozenset()
    assert [o.element for o in first.new_overloads] == ["ats1"]
    assert dict(first.proposals) == {proposal_id(drain): drain}
    assert first.new_proposals == {proposal_id(drain)}


def test_a_tick_is_compared_with_the_tick_before() -> None:
    """Alerts that turned on and off, overloads and proposals not there the tick before; the
    same plan keeps its id, another plan gets a new one."""
    drain = _drain("mpdu1", "c01")
    first = changes_between(None, _decisions({"mpdu1"}, ("ats1",), (drain,)))
    again = _drain("mpdu1", "c01")
    other = _drain("mpdu2", "c03")
    second = changes_between(first, _decisions({"mpdu2"}, ("ats1", "mpdu2"), (again, other)))
    assert second.alerts_on == {"mpdu2"}
    assert second.alerts_off == {"mpdu1"}
    assert [o.element for o in second.new_overloads] == ["mpdu2"]
    assert proposal_id(again) == proposal_id(drain)
    assert set(second.proposals) == {proposal_id(drain), proposal_id(other)}
    assert second.new_proposals == {proposal_id(other)}
    third = changes_between(second, second.decisions)
    assert not third.alerts_on
    assert not third.alerts_off
    assert not third.new_overloads
    assert not third.new_proposals
