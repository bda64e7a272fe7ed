"""The question to a person when no plan is safe (``engine/asking.py``), on the simulator."""

from __future__ import annotations

from typing import Any

from custom_components.datacenter_power.engine.decisions import Decisions
from custom_components.datacenter_power.engine.modes import Mode
from custom_components.datacenter_power.engine.policy import DecisionPolicy, PolicyConfig
from dcp_eval.harness import epoch0, observation_from_telemetry, topology_from_scenario
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from tests.plants import tight_wear_plant

NOW_S = 12 * 3600.0
"""11 h into ATS-1's wear (as the integration tests stand)."""


def _decide(mode: Mode = "automatic", doc: dict[str, Any] | None = None) -> Decisions:
    """Observe the plant's history and first 12 h (history every 5 min, then every minute) and
    decide once."""
    scenario = parse_scenario(doc or tight_wear_plant())
    plant = Plant(scenario, start_s=-scenario.history_s)
    topology = topology_from_scenario(scenario)
    t0 = epoch0(scenario)
    policy = DecisionPolicy(topology, PolicyConfig(mode=mode, decision_timeout_s=900.0))
    last = -float("inf")
    while plant.t_s < NOW_S:
        plant.step()
        if plant.t_s - last >= (300.0 if plant.t_s < 0 else 60.0):
            last = plant.t_s
            policy.observe(observation_from_telemetry(plant.telemetry(), t0, topology))
    return policy.decide(t0 + plant.t_s)


def test_no_safe_drain_asks_a_person_with_every_choice_in_numbers() -> None:
    """No complete drain of ATS-1 fits mpdu2's limit at the P90: the engine still runs the
    partial drain that fits (as before) and asks: drain now (mpdu2 above its limit, by how
    much and how long), keep the load (amps and circuits at risk before the P10), the partial
    drain (what moves, what stays) and shedding the non-critical b03. The rule's fallback is
    the partial drain, never drain_now."""
    decisions = _decide()
    assert decisions.alerts == {"ats1"}
    (asked,) = decisions.decisions_needed
    assert asked.element == "ats1"
    assert asked.deadline_s < asked.failure_s  # type: ignore[operator]
    keys = [c.key for c in asked.choices]
    assert keys == ["drain_now", "keep_load", "partial_drain", "shed:b03"]

    drain_now = asked.choice("drain_now")
    assert drain_now is not None
    assert drain_now.plan is not None
    assert not drain_now.within_limits
    assert drain_now.plan.circuits == {"a01", "a02", "a03"}
    (over,) = drain_now.excursions
    assert over.element == "mpdu2"
    assert over.limit_a == 0.8 * 42
    assert 0 < over.over_a < 10
    assert over.over_pct == 100 * over.over_a / over.limit_a
    assert over.over_s >= 3600  # hours above the limit at the P90
    assert f"{over.over_a:.1f} A" in drain_now.summary

    keep = asked.choice("keep_load")
    assert keep is not None
    assert keep.plan is None
    assert keep.left == ("a01", "a02", "a03")
    assert keep.left_critical == 3
    assert 15 < keep.left_a < 20
    assert keep.at_risk_until_s == asked.failure_low_s

    partial = asked.choice("partial_drain")
    assert partial is not None
    assert partial.plan is not None
    assert partial.within_limits
    assert set(partial.moved) | set(partial.left) == {"a01", "a02", "a03"}
    assert partial.moved
    assert partial.left
    (action,) = decisions.actions  # automatic: what fits runs, as before the question
    assert action.plan is partial.plan

    shed = asked.choice("shed:b03")
    assert shed is not None
    assert shed.shed == "b03"
    assert shed.plan is not None
    assert shed.plan.circuits == {"a01", "a02", "a03"}

    assert asked.fallback == "partial_drain"
    assert asked.answer_by_s == asked.raised_s + 900.0
    data = decisions.as_dict()["decisions_needed"]
    assert data == [asked.as_dict()]
    assert data[0]["id"] == asked.id
    assert len(asked.id) == 10
    assert data[0]["choices"][0]["excursions"][0]["element"] == "mpdu2"


def test_approval_mode_waits_and_without_a_non_critical_circuit_offers_no_shed() -> None:
    """Approval mode: the question has no answer deadline; with every circuit critical there is
    no shed choice."""
    doc = tight_wear_plant()
    doc["circuits"][0]["critical"] = True
    decisions = _decide("approval", doc)
    (asked,) = decisions.decisions_needed
    assert asked.answer_by_s is None
    assert [c.key for c in asked.choices] == ["drain_now", "keep_load", "partial_drain"]
    assert not decisions.actions
    assert len(decisions.proposals) == 1


def test_a_plant_with_room_asks_nothing() -> None:
    """mpdu2 large enough for everything: the drain is complete, nothing is asked."""
    doc = tight_wear_plant()
    doc["mpdus"][1]["rating_a"] = 80
    decisions = _decide(doc=doc)
    assert decisions.decisions_needed == ()
    assert decisions.as_dict()["decisions_needed"] == []


def test_the_browser_checks_scenario_is_this_plant() -> None:
    """``scenarios/decision-needed.yaml`` (scripts/browser-check --decision-only) is the plant
    these tests ask on."""
    from pathlib import Path

    from dcp_sim.scenario import load_scenario

    path = Path(__file__).parents[2] / "scenarios" / "decision-needed.yaml"
    served, built = load_scenario(path), parse_scenario(tight_wear_plant())
    assert served.circuits == built.circuits
    assert (served.ats, served.mpdus, served.events) == (built.ats, built.mpdus, built.events)


def test_drain_now_says_when_the_interlock_would_refuse_it_now() -> None:
    """mpdu2 so small that ATS-1's load would put it above its limit on the load measured now:
    drain now is still offered (its numbers), saying that the interlock refuses it until the
    load allows (no choice bypasses the interlock)."""
    doc = tight_wear_plant()
    doc["mpdus"][1]["rating_a"] = 34
    (asked,) = _decide(doc=doc).decisions_needed
    drain_now = asked.choice("drain_now")
    assert drain_now is not None
    assert "now it would put mpdu2" in drain_now.summary
    assert "which the interlock refuses until the load allows" in drain_now.summary
    assert [e for e, _ in drain_now.over_now] == ["mpdu2"]
