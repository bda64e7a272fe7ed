"""The harness against the real simulator: telemetry adapter, staged execution, whole runs."""

from __future__ import annotations

import math
from typing import Any

import pytest

from custom_components.datacenter_power.engine.plan import Move, Plan, PlanStep
from custom_components.datacenter_power.engine.policy import (
    Action,
    DecisionPolicy,
    Decisions,
    PolicyConfig,
)
from dcp_eval.generator import generate_hard_scenario
from dcp_eval.harness import (
    ActionRecord,
    ActionRunner,
    observation_from_telemetry,
    run_evaluation,
    topology_from_scenario,
)
from dcp_eval.metrics import compute_metrics
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario

type Doc = dict[str, Any]


def _action(*moves: Move, interval: float = 120.0, urgent: bool = False) -> Action:
    plan = Plan(
        goal="test",
        steps=tuple(PlanStep(moves=(m,), amps=m.amps, peak_utilization={}) for m in moves),
        final_assignment={},
        peak_utilization={},
        solver="hand",
        notes=(),
    )
    return Action("relieve", None, plan, "test", urgent, interval, 0.0)


def _one_stage(*moves: Move) -> Action:
    plan = Plan("test", (PlanStep(moves, sum(m.amps for m in moves), {}),), {}, {}, "hand", ())
    return Action("relieve", None, plan, "test", False, 120.0, 0.0)


def _decisions(*actions: Action) -> Decisions:
    return Decisions(t_s=0.0, assessments={}, status={}, actions=actions)


def _runner(plant: Plant) -> ActionRunner:
    policy = DecisionPolicy(topology_from_scenario(plant.scenario), PolicyConfig())
    return ActionRunner(policy, plant)


async def _poll(runner: ActionRunner, polls: int = 20, *actions: Action) -> list[ActionRecord]:
    """Start ``actions`` (by the dispatch rule) at the first poll, then poll every 60 s until
    nothing runs: the harness loop without the engine's decisions."""
    plant = runner.plant
    for i in range(polls):
        await runner.advance()
        if i == 0 and actions:
            await runner.apply(_decisions(*actions))
        if runner.running is None and runner.queued is None:
            break
        plant.advance_to(plant.t_s + 60.0)
    return runner.records


def test_topology_adapter_mirrors_the_scenario(small: Doc) -> None:
    topo = topology_from_scenario(parse_scenario(small))
    assert set(topo.ats) == {"ats1", "ats2"}
    assert topo.ats_of("mpdu3") == "ats2"
    assert topo.circuits["a01"].paths == ("mpdu1", "mpdu2", "mpdu3")
    assert topo.limit_a("mpdu1") == pytest.approx(40.0)


def test_unreachable_devices_report_nothing_and_stuck_ones_repeat(small: Doc) -> None:
    small["events"] = [
        {"kind": "comms_loss", "target": "mpdu2", "at": "10m", "duration": "10m"},
        {"kind": "sensor_stuck", "target": "ats1", "at": "10m", "duration": "30m"},
    ]
    sc = parse_scenario(small)
    plant = Plant(sc, start_s=0.0)
    plant.advance_to(900.0)
    first = observation_from_telemetry(plant.telemetry(), 1e9, topology_from_scenario(sc))
    plant.advance_to(1020.0)
    obs = observation_from_telemetry(plant.telemetry(), 1e9, topology_from_scenario(sc))
    assert obs.t_s == pytest.approx(1e9 + 1020.0)
    m2 = obs.elements["mpdu2"]
    assert not m2.reachable
    assert math.isnan(m2.current_a)
    assert math.isnan(m2.temperature_c)
    assert obs.elements["mpdu3"].reachable
    assert obs.elements["ats1"].temperature_c == first.elements["ats1"].temperature_c
    assert obs.circuits["b01"].active_path == "mpdu2"  # the SBM still answers


async def test_stage_is_switched_verified_and_completed(small: Doc) -> None:
    plant = Plant(parse_scenario(small), start_s=0.0)
    (rec,) = await _poll(_runner(plant), 20, _action(Move("a01", "mpdu1", "mpdu2", 4.0)))
    assert (rec.ok, rec.note, rec.finished_s) == (True, "all stages verified", 0.0)
    assert rec.stages == ((0.0, 0, 1, 4.0),)
    assert plant.telemetry().circuits["a01"].active_path == 1
    assert plant.metrics.switch_operations == 1
    assert plant.metrics.interruptions == 0


async def test_stages_wait_for_the_step_interval(small: Doc) -> None:
    plant = Plant(parse_scenario(small), start_s=0.0)
    action = _action(Move("a01", "mpdu1", "mpdu2", 4.0), Move("a02", "mpdu1", "mpdu3", 4.0))
    (rec,) = await _poll(_runner(plant), 20, action)
    assert rec.ok
    (t1, i1, _, _), (t2, i2, _, _) = rec.stages
    assert (i1, i2) == (0, 1)
    assert t2 - t1 == pytest.approx(120.0)
    assert rec.finished_s == pytest.approx(120.0)


async def test_stale_plan_is_not_executed(small: Doc) -> None:
    plant = Plant(parse_scenario(small), start_s=0.0)
    (rec,) = await _poll(_runner(plant), 20, _action(Move("a01", "mpdu3", "mpdu2", 4.0)))
    assert rec.ok is False
    assert "stale" in rec.note
    assert plant.metrics.switch_operations == 0


async def test_no_move_onto_a_dead_path(small: Doc) -> None:
    small["events"] = [{"kind": "sudden_failure", "target": "mpdu2", "at": "0s"}]
    plant = Plant(parse_scenario(small), start_s=0.0)
    plant.advance_to(60.0)
    (rec,) = await _poll(_runner(plant), 20, _action(Move("a01", "mpdu1", "mpdu2", 4.0)))
    assert rec.ok is False
    assert "mpdu2 (target of a01) is not energised" in rec.note
    assert plant.telemetry().circuits["a01"].active_path == 0
    assert plant.telemetry().circuits["a01"].energized


async def test_stage_that_overloads_its_target_is_rolled_back(small: Doc) -> None:
    small["mpdus"][1]["rating_a"] = 28  # limit 22.4 A; b-circuits draw ~10 A, a01-a04 ~14 A
    plant = Plant(parse_scenario(small), start_s=0.0)
    moves = [Move(f"a0{i}", "mpdu1", "mpdu2", 4.0) for i in range(1, 5)]
    (rec,) = await _poll(_runner(plant), 20, _one_stage(*moves))
    assert rec.note.startswith("stage 1 failed: mpdu2 carries 23.8 A")
    assert rec.finished_s == 0.0  # a hazard is rolled back at once, not observed again
    assert rec.ok is False
    assert "mpdu2" in rec.note
    tel = plant.telemetry()
    assert all(tel.circuits[f"a0{i}"].active_path == 0 for i in range(1, 5))
    assert all(tel.circuits[f"a0{i}"].energized for i in range(1, 5))
    assert plant.metrics.interruptions == 0


async def test_an_urgent_action_preempts_at_the_wait_between_stages(small: Doc) -> None:
    plant = Plant(parse_scenario(small), start_s=0.0)
    runner = _runner(plant)
    slow = _action(
        Move("a01", "mpdu1", "mpdu2", 4.0), Move("a02", "mpdu1", "mpdu2", 4.0), interval=3600.0
    )
    urgent = _action(Move("b01", "mpdu2", "mpdu1", 4.0), interval=60.0, urgent=True)
    await runner.apply(_decisions(slow))
    assert runner.running is not None
    assert runner.running.executor.between_stages
    plant.advance_to(60.0)
    await runner.advance()
    await runner.apply(_decisions(urgent))  # stops the slow one at once, starts the urgent one
    first, second = runner.records
    assert (first.ok, first.note) == (False, "preempted by an urgent action at a safe point")
    assert (first.finished_s, first.moves) == (60.0, 1)
    assert (second.ok, second.started_s, second.moves) == (True, 60.0, 1)
    paths = {c: t.paths[t.active_path] for c, t in plant.telemetry().circuits.items()}
    assert (paths["a01"], paths["a02"], paths["b01"]) == ("mpdu2", "mpdu1", "mpdu1")
    # nothing preempts an urgent action, and a non-urgent one never preempts
    long_urgent = _action(
        Move("b02", "mpdu2", "mpdu1", 4.0), Move("b03", "mpdu2", "mpdu1", 4.0), urgent=True
    )
    await runner.apply(_decisions(long_urgent))
    for other in (_action(Move("a03", "mpdu1", "mpdu2", 4.0), urgent=True), slow):
        await runner.apply(_decisions(other))
        assert runner.running is not None
        assert runner.running.action is long_urgent
        assert runner.queued is None
    assert len(runner.records) == 2
    await runner.close()
    assert runner.records[-1].note == "still running at the end of the scenario"
    assert runner.running is None


async def test_an_urgent_action_waits_for_a_stage_being_verified(
    small: Doc, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a01's SBM accepts the command but does not move: its stage is being verified (retried at
    the next polls) when the urgent action comes; that starts once the stage is rolled back."""
    plant = Plant(parse_scenario(small), start_s=0.0)
    real = Plant.command_sbm_path

    def stuck(p: Plant, circuit_id: str, path: str | int) -> None:
        if circuit_id != "a01":
            real(p, circuit_id, path)

    monkeypatch.setattr(Plant, "command_sbm_path", stuck)
    runner = _runner(plant)
    await runner.apply(_decisions(_action(Move("a01", "mpdu1", "mpdu2", 4.0))))
    running = runner.running
    assert running is not None
    assert not running.executor.between_stages
    urgent = _action(Move("b01", "mpdu2", "mpdu1", 4.0), interval=60.0, urgent=True)
    await runner.apply(_decisions(urgent))
    assert runner.queued is urgent
    records = await _poll(runner, 10)
    first, second = records
    assert first.ok is False
    assert first.note == "stage 1 failed: a01 reports path mpdu1, expected mpdu2"
    assert first.finished_s == 120.0  # 3 observations, one poll apart
    assert (second.started_s, second.ok) == (120.0, True)


def test_quiet_run_does_nothing_and_forecasts_well(small: Doc) -> None:
    small["events"] = [
        {"kind": "ambient_excursion", "at": "30m", "duration": "1h", "delta_c": 6},
        {"kind": "comms_loss", "target": "mpdu1", "at": "1h", "duration": "15m"},
    ]
    m = compute_metrics(run_evaluation(parse_scenario(small)))
    assert m["switch_operations"] == 0
    assert m["false_alarms"] == 0
    assert m["forecast_pairs"] > 0
    assert m["forecast_mape_1h"] is not None
    assert m["forecast_mape_1h"] < 0.05
    assert m["engine_errors"] == []


def test_history_off_the_poll_grid_still_lands_on_zero(small: Doc) -> None:
    small["history"] = "1327m"
    small["duration"] = "47m"
    ev = run_evaluation(parse_scenario(small), "reactive")
    assert ev.times_s[0] == 0.0
    assert ev.times_s[-1] == pytest.approx(47 * 60.0)


def _sudden(small: Doc) -> Doc:
    # mpdu2 dies: its 3 b-circuits (~10 A at night) bypass to mpdu1 (limit 24 A), which then
    # carries ~27 A: over its continuous limit, under its rating (no trip).
    small["mpdus"][0]["rating_a"] = 30
    small["circuit_groups"][0]["load"]["mean_a"] = 5.5
    small["events"] = [
        {"kind": "sudden_failure", "target": "mpdu2", "at": "1h", "repair_after": "90m"}
    ]
    return small


def test_sudden_failure_is_rebalanced_within_two_polls(small: Doc) -> None:
    sc = parse_scenario(_sudden(small))
    reactive = compute_metrics(run_evaluation(sc, "reactive"))
    proactive = compute_metrics(run_evaluation(sc, "proactive"))
    assert reactive["over_limit_s"] >= 3600.0  # stays overloaded until the repair
    assert proactive["over_limit_s"] <= 120.0
    assert proactive["breaker_trips"] == 0
    assert proactive["interruptions"] == reactive["interruptions"]  # the bypass itself
    kinds = [a["kind"] for a in proactive["actions"]]
    assert kinds[0] == "rebalance"
    assert proactive["false_alarms"] == 0


def test_the_engines_drain_deadline_and_decisions_needed_are_recorded() -> None:
    """``hard-tight-8``: the engine alerts on ats1 and holds a drain deadline before its
    failure (scenario seconds, never receding while held), which ``dcp_eval.study`` runs
    ``drain_by`` at; decision-needed records are kept as a list (empty while the engine
    raises none)."""
    sc = generate_hard_scenario(8, "tight", realistic_loads=False)
    (wear,) = sc.wear_events
    ev = run_evaluation(sc, "proactive")
    held = [
        (t, d) for t, d in ev.drain_deadlines[wear.target] if d is not None and t < wear.failure_s
    ]
    assert held
    assert all(wear.onset_s < t for t, _ in held)
    assert all(0.0 < d < wear.failure_s for _, d in held)
    values = [d for _, d in held]
    assert values == sorted(values, reverse=True)
    assert isinstance(ev.decisions_needed, list)
    assert all("seen_s" in d for d in ev.decisions_needed)
