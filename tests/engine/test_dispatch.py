"""The engine's rule for what runs now, shared by Home Assistant and the evaluation harness."""

from __future__ import annotations

from custom_components.datacenter_power.engine.dispatch import Dispatch, candidates, dispatch
from custom_components.datacenter_power.engine.plan import Move, Plan, PlanStep
from custom_components.datacenter_power.engine.policy import Action, ActionKind, Decisions


def _action(kind: ActionKind = "migrate", *, urgent: bool = False) -> Action:
    move = Move("c1", "mpdu1", "mpdu2", 3.0)
    plan = Plan("test", (PlanStep((move,), 3.0, {}),), {}, {}, "hand", ())
    return Action(kind, None, plan, "test", urgent, 60.0 if urgent else 120.0, 0.0)


def _decisions(actions: tuple[Action, ...] = (), proposals: tuple[Action, ...] = ()) -> Decisions:
    return Decisions(t_s=0.0, assessments={}, status={}, actions=actions, proposals=proposals)


def test_nothing_to_do() -> None:
    assert dispatch(_decisions(), None) == Dispatch()
    assert dispatch(_decisions(), _action()) == Dispatch()


def test_the_first_order_starts_when_nothing_runs() -> None:
    first, second = _action("migrate"), _action("relieve")
    assert dispatch(_decisions((first, second)), None) == Dispatch(start=first)


def test_a_rebalance_proposal_runs_in_every_mode_but_no_other_proposal_does() -> None:
    rebalance = _action("rebalance", urgent=True)
    restore = _action("restore")
    decisions = _decisions(proposals=(restore, rebalance))
    assert candidates(decisions) == (rebalance,)
    assert dispatch(decisions, None) == Dispatch(start=rebalance)
    assert dispatch(_decisions(proposals=(restore,)), None) == Dispatch()


def test_an_urgent_action_preempts_a_running_non_urgent_one() -> None:
    urgent = _action("relieve", urgent=True)
    assert dispatch(_decisions((urgent,)), _action("migrate")) == Dispatch(urgent, preempt=True)


def test_nothing_preempts_an_urgent_action_and_non_urgent_ones_wait() -> None:
    running = _action("rebalance", urgent=True)
    assert dispatch(_decisions((_action("relieve", urgent=True),)), running) == Dispatch()
    assert dispatch(_decisions((_action("restore"),)), _action("migrate")) == Dispatch()


def test_a_persons_migration_is_never_preempted() -> None:
    urgent = _action("relieve", urgent=True)
    assert dispatch(_decisions((urgent,)), None, manual_running=True) == Dispatch()
