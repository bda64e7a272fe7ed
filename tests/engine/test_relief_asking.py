"""The question to a person when no relief fits (``engine/relief_asking.py``), on the simulator:
a tight hall (``tests/plants.tight_hall_plant``) whose mpdu1 is forecast above its continuous
limit while mpdu2 has room for a small circuit only."""

from __future__ import annotations

from typing import Any

from custom_components.datacenter_power.engine.decisions import (
    DecisionChoice,
    DecisionNeeded,
    Decisions,
    decision_id,
)
from custom_components.datacenter_power.engine.modes import Mode
from custom_components.datacenter_power.engine.plan import Move, Plan, PlanStep
from custom_components.datacenter_power.engine.policy import DecisionPolicy, PolicyConfig
from custom_components.datacenter_power.engine.relief_asking import ReliefQuestions
from dcp_eval.harness import epoch0, observation_from_telemetry, topology_from_scenario
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from tests.plants import tight_hall_plant

DECIDE_FROM_S = 9 * 3600.0
"""The policy decides every 30 min from here: two forecast refreshes confirm the crossing."""


def _run(
    until_s: float, mode: Mode = "automatic", doc: dict[str, Any] | None = None
) -> list[Decisions]:
    """Observe the plant's history and its first ``until_s`` (history every 5 min, then every
    minute), deciding every 30 min from 9 h; returns every decision."""
    return _policy_run(until_s, mode, doc)[1]


def _policy_run(
    until_s: float, mode: Mode = "automatic", doc: dict[str, Any] | None = None
) -> tuple[DecisionPolicy, list[Decisions]]:
    """:func:`_run`, with the policy."""
    scenario = parse_scenario(doc or tight_hall_plant())
    plant = Plant(scenario, start_s=-scenario.history_s)
    topology = topology_from_scenario(scenario)
    t0 = epoch0(scenario)
    policy = DecisionPolicy(topology, PolicyConfig(mode=mode, decision_timeout_s=900.0))
    last, decided = -float("inf"), -float("inf")
    out: list[Decisions] = []
    while plant.t_s < until_s:
        plant.step()
        if plant.t_s - last >= (300.0 if plant.t_s < 0 else 60.0):
            last = plant.t_s
            policy.observe(observation_from_telemetry(plant.telemetry(), t0, topology))
        if plant.t_s >= DECIDE_FROM_S and plant.t_s - decided >= 1800.0:
            decided = plant.t_s
            out.append(policy.decide(t0 + plant.t_s))
    return policy, out


def test_no_relief_fits_asks_a_person_with_every_choice_in_numbers() -> None:
    """mpdu1's P90 crosses its 40 A limit within the relief's lead and no relief fits (mpdu2
    has room for a01 only): a relief question *at mpdu1*: keep the load (how far above its limit
    and how long at the P90), the partial relief (a01 moves within every other limit; what it
    leaves over) and shedding the non-critical a05 (then mpdu1 stays within its limit). Nothing
    moves without an answer; the fallback keeps the load (the engine does not run the partial
    relief itself), never the shed."""
    decisions = _run(11 * 3600.0)
    last = decisions[-1]
    assert not last.alerts
    (asked,) = last.decisions_needed
    assert asked.kind == "relief"
    assert asked.element == "mpdu1"
    assert asked.failure_s is None
    assert asked.deadline_s >= last.t_s  # when the P90 crosses the limit
    assert [c.key for c in asked.choices] == ["keep_load", "partial_relief", "shed:a05"]

    keep = asked.choice("keep_load")
    assert keep is not None
    assert keep.plan is None
    (over,) = keep.excursions
    assert over.element == "mpdu1"
    assert over.limit_a == 40.0
    assert over.over_a > 0
    assert over.over_s >= 3600
    assert f"{over.over_a:.1f} A ({over.over_pct:.0f} %)" in keep.summary
    assert set(keep.left) == {"a01", "a02", "a03", "a04", "a05"}

    partial = asked.choice("partial_relief")
    assert partial is not None
    assert partial.plan is not None
    assert partial.within_limits
    assert partial.moved == ("a01",)
    assert {m.to_mpdu for m in partial.plan.moves} == {"mpdu2"}
    (still,) = partial.excursions  # what it leaves over: mpdu1 only, less than before
    assert still.element == "mpdu1"
    assert 0 < still.over_a < over.over_a

    shed = asked.choice("shed:a05")
    assert shed is not None
    assert shed.shed == "a05"
    assert shed.plan is not None
    assert "mpdu1 stays within its limit" in shed.summary

    assert asked.fallback == "keep_load"
    assert asked.answer_by_s == asked.raised_s + 900.0
    assert not last.actions  # nothing runs without an answer: no relief fits
    data = last.as_dict()["decisions_needed"]
    assert data == [asked.as_dict()]
    assert data[0]["kind"] == "relief"
    assert data[0]["choices"][0]["excursions"][0]["element"] == "mpdu1"


def test_the_question_keeps_its_id_and_first_time_across_plans() -> None:
    """The same question at every plan while its cause holds (the same id, the first time it
    was raised), whatever the forecast refreshes do to its numbers; the drain's id scheme is
    kept apart (a relief question's id is not the drain question's of the same circuits)."""
    decisions = _run(12.5 * 3600.0)
    asked = [d.decisions_needed for d in decisions if d.decisions_needed]
    assert len(asked) >= 3
    ids = {q.id for qs in asked for q in qs}
    assert len(ids) == 1
    first = {q.raised_s for qs in asked for q in qs}
    assert len(first) == 1
    (q,) = asked[0]
    assert q.id == decision_id(q.element, q.at_stake, "relief")
    assert q.id != decision_id(q.element, q.at_stake)


def test_a_relief_that_fits_asks_nothing() -> None:
    """mpdu2 large enough for a02: the relief fits and runs, nothing is asked."""
    doc = tight_hall_plant()
    doc["mpdus"][1]["rating_a"] = 80
    decisions = _run(11 * 3600.0, doc=doc)
    assert all(not d.decisions_needed for d in decisions)
    assert any(a.kind == "relieve" for d in decisions for a in d.actions)


def test_approval_mode_waits_and_without_a_non_critical_circuit_offers_no_shed() -> None:
    """Approval mode: no answer deadline, nothing proposed for the relief (none fits); every
    circuit critical: no shed choice. The fallback is never a shed in any mode."""
    doc = tight_hall_plant()
    doc["circuits"][4]["critical"] = True
    (asked,) = _run(11 * 3600.0, "approval", doc)[-1].decisions_needed
    assert asked.answer_by_s is None
    assert [c.key for c in asked.choices] == ["keep_load", "partial_relief"]
    assert asked.fallback == "keep_load"


def test_the_fallback_is_the_engines_own_partial_relief_only_within_every_limit() -> None:
    """When the relief rule runs a plan that leaves the element over its limit (a best-effort
    relief), that plan is the partial choice; the no-answer rule takes it only while it keeps
    every other element within its limit. One that pushes mpdu2 above its limit (a02 onto it)
    is offered as what it is (not within the limits, mpdu2's excursion named) and the fallback
    keeps the load. Never a shed."""
    policy, decisions = _policy_run(11 * 3600.0)
    last = decisions[-1]
    (asked,) = last.decisions_needed
    own = asked.choice("partial_relief")
    assert own is not None
    assert own.plan is not None
    rules = policy._rules  # the rules' own state, as the relief step passes it
    circuit_a = policy._circuit_a
    assignment = policy.assignment
    pushed = Plan(
        goal="relieve overload",
        steps=(
            PlanStep(
                moves=(Move("a02", "mpdu1", "mpdu2", circuit_a["a02"]),),
                amps=9.0,
                peak_utilization={},
            ),
        ),
        final_assignment={**assignment, "a02": "mpdu2"},
        peak_utilization={},
        solver="by hand",
        notes=("best effort",),
    )
    fallbacks = {}
    for name, plan in (("own", own.plan), ("pushed", pushed)):
        questions = ReliefQuestions()
        questions.ask(
            rules.topology,
            rules.forecasts,
            rules.config,
            lambda topology, lineup, req: rules._plan(lineup, circuit_a, req, topology=topology),
            now_s=last.t_s,
            soon=[o for o in last.overloads if o.element == "mpdu1"],
            relief=plan,
            assignment=assignment,
            circuit_a=circuit_a,
            unavailable=set(),
        )
        (q,) = questions.open()
        choice = q.choice("partial_relief")
        assert choice is not None
        assert choice.plan is plan
        fallbacks[name] = (q.fallback, choice.within_limits, [x.element for x in choice.excursions])
    assert fallbacks["own"] == ("partial_relief", True, ["mpdu1"])
    assert fallbacks["pushed"][:2] == ("keep_load", False)
    assert "mpdu2" in fallbacks["pushed"][2]


def test_a_question_outlasts_one_refresh_without_its_cause() -> None:
    """The element is not forecast over its limit at one plan: its question stays (no closing
    and announcing again at the next refresh) until that has lasted a forecast interval."""
    keep = DecisionChoice(key="keep_load", plan=None, summary="Keep the load.")
    q = DecisionNeeded(
        element="mpdu1", raised_s=0.0, deadline_s=600.0, choices=(keep,), kind="relief"
    )
    questions = ReliefQuestions(asked={"mpdu1": q})
    questions.keep(["mpdu1"], 0.0, 3600.0)
    questions.keep([], 900.0, 3600.0)  # a forecast that dips under the limit once
    assert questions.open() == (q,)
    questions.keep(["mpdu1"], 1800.0, 3600.0)  # over again: the clock starts afresh
    questions.keep([], 2700.0, 3600.0)
    questions.keep([], 5400.0, 3600.0)
    assert questions.open() == (q,)
    questions.keep([], 6300.0, 3600.0)  # a whole interval without its cause
    assert questions.open() == ()
