"""The staged migration executor driven against the real simulated plant (no Modbus, no HA)."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import replace
from typing import Any

import pytest

from custom_components.datacenter_power.engine.plan import Move as PlannerMove
from custom_components.datacenter_power.executor import (
    MigrationExecutor,
    MigrationRecord,
    MigrationState,
    Move,
    Observation,
    VerificationError,
    check_stage,
    reconcile,
    verify_stage,
)
from dcp_eval.harness import executor_observation
from dcp_sim.plant import CommandRejected, Plant
from dcp_sim.scenario import parse_scenario
from tests.plants import circuit, two_ats_plant

_DOC: dict[str, Any] = two_ats_plant(
    "executor",
    seed=1,
    ats_rating_a=100,
    mpdu_rating_a=50,
    circuits=[
        *(circuit(f"c{i}", ["mpdu1", "mpdu2"], 6) for i in range(1, 5)),
        circuit("d1", ["mpdu2", "mpdu1"], 18, rating_a=32),
    ],
)


class SimPort:
    """A `PlantPort` on the simulated plant: `sleep` advances the plant (whole 60 s steps)."""

    def __init__(self, plant: Plant, *, sabotage: set[str] | None = None) -> None:
        self.plant = plant
        self.sabotage = sabotage or set()
        self.commands: list[tuple[str, str]] = []
        self.slept: list[float] = []

    async def set_path(self, circuit_id: str, mpdu_id: str) -> None:
        self.commands.append((circuit_id, mpdu_id))
        if circuit_id in self.sabotage:
            return  # the command is accepted but the SBM does not move (a stuck relay)
        self.plant.command_sbm_path(circuit_id, mpdu_id)

    async def observe(self) -> Observation:
        return executor_observation(self.plant.telemetry())

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.plant.advance_to(self.plant.t_s + max(seconds, 60.0))


def _plant() -> Plant:
    return Plant(parse_scenario(_DOC), start_s=0.0)


def _record(*stages: list[tuple[str, str, str]]) -> MigrationRecord:
    return MigrationRecord(
        migration_id="m1",
        component="mpdu1",
        stages=[[Move(c, f, t, 6.0) for c, f, t in stage] for stage in stages],
    )


async def _run(port: SimPort, record: MigrationRecord, **kw: Any) -> list[str]:
    seen: list[str] = []

    async def progress(rec: MigrationRecord, note: str) -> None:
        seen.append(f"{rec.state.value}: {note}")

    await MigrationExecutor(
        port, record, step_interval_s=0, on_progress=progress, verify_delay_s=0, **kw
    ).run()
    return seen


async def test_stages_run_in_order_and_verify() -> None:
    port = SimPort(_plant())
    rec = _record([("c1", "mpdu1", "mpdu2")], [("c2", "mpdu1", "mpdu2")])
    seen = await _run(port, rec)
    assert rec.state is MigrationState.COMPLETED
    assert rec.completed_stages == 2
    assert rec.progress == 1.0
    assert port.commands == [("c1", "mpdu2"), ("c2", "mpdu2")]
    paths = {c: t.paths[t.active_path] for c, t in port.plant.telemetry().circuits.items()}
    assert (paths["c1"], paths["c2"], paths["c3"]) == ("mpdu2", "mpdu2", "mpdu1")
    assert seen[0] == "running: stage 1/2"
    assert "verifying: verifying stage 2" in seen
    assert seen[-1] == "completed: all stages verified"
    assert port.plant.metrics.interruptions == 0


async def test_stage_that_does_not_verify_rolls_back() -> None:
    port = SimPort(_plant(), sabotage={"c2"})
    rec = _record([("c1", "mpdu1", "mpdu2")], [("c2", "mpdu1", "mpdu2"), ("c3", "mpdu1", "mpdu2")])
    await _run(port, rec)
    assert rec.state is MigrationState.ROLLED_BACK
    assert rec.completed_stages == 1
    assert rec.reason == "c2 reports path mpdu1, expected mpdu2"
    paths = {c: t.paths[t.active_path] for c, t in port.plant.telemetry().circuits.items()}
    # stage 1 stays (verified, safe); stage 2 is undone: c3 went back, c2 never moved
    assert (paths["c1"], paths["c2"], paths["c3"]) == ("mpdu2", "mpdu1", "mpdu1")
    assert port.commands[-1] == ("c3", "mpdu1")


async def test_a_move_over_the_continuous_limit_is_rolled_back() -> None:
    # mpdu2 (limit 40 A) carries d1 (18 A); three 6 A circuits fit, four do not.
    port = SimPort(_plant())
    rec = _record([(f"c{i}", "mpdu1", "mpdu2") for i in range(1, 5)])
    await _run(port, rec)
    assert rec.state is MigrationState.ROLLED_BACK
    assert rec.reason is not None
    assert "above its continuous limit" in rec.reason
    assert rec.reason.startswith("mpdu2 carries")
    tel = port.plant.telemetry()
    assert all(tel.circuits[f"c{i}"].active_path == 0 for i in range(1, 5))
    assert tel.mpdus["mpdu2"].current_a < 40


async def test_a_move_to_a_path_the_circuit_lacks_is_stopped_before_the_stage() -> None:
    port = SimPort(_plant())
    rec = _record([("c1", "mpdu1", "mpdu2"), ("c3", "mpdu1", "mpdu9")])
    await _run(port, rec)
    assert rec.state is MigrationState.ABORTED
    assert rec.reason == "mpdu9 (target of c3) is not energised"
    assert port.commands == []
    assert port.plant.telemetry().circuits["c1"].active_path == 0


class RefusingPort(SimPort):
    """The device refuses one circuit's command; optionally its source path dies first."""

    def __init__(self, plant: Plant, refuse: str, *, kill_first: str | None = None) -> None:
        super().__init__(plant)
        self.refuse = refuse
        self.kill_first = kill_first

    async def set_path(self, circuit_id: str, mpdu_id: str) -> None:
        if circuit_id == self.refuse:
            if self.kill_first is not None:
                self.plant.command_mpdu_output(self.kill_first, False)
            raise CommandRejected(f"SBM {circuit_id} refused the command")
        await super().set_path(circuit_id, mpdu_id)


async def test_a_refused_command_rolls_back_with_the_devices_reason() -> None:
    port = RefusingPort(_plant(), "c3")
    rec = _record([("c1", "mpdu1", "mpdu2"), ("c3", "mpdu1", "mpdu2")])
    await _run(port, rec)
    assert rec.state is MigrationState.ROLLED_BACK
    assert rec.reason == "SBM c3 refused the command"
    assert port.commands == [("c1", "mpdu2"), ("c1", "mpdu1")]
    assert port.plant.telemetry().circuits["c1"].active_path == 0


async def test_no_rollback_onto_a_dead_path() -> None:
    """mpdu1 dies in the middle of a stage: the circuit already moved stays on its new, live
    path instead of being sent back to the dead one."""
    port = RefusingPort(_plant(), "c3", kill_first="mpdu1")
    rec = _record([("c1", "mpdu1", "mpdu2"), ("c3", "mpdu1", "mpdu2")])
    await _run(port, rec)
    assert rec.state is MigrationState.ROLLED_BACK
    assert rec.history[-1] == (
        "stage 1 failed: SBM c3 refused the command; not moved back: "
        "c1 (mpdu1 is not energised), c3 (mpdu1 is not energised)"
    )  # c3 never moved: its own SBM bypassed it off the dead path
    assert port.commands == [("c1", "mpdu2")]
    tel = port.plant.telemetry()
    for cid in ("c1", "c3"):
        c = tel.circuits[cid]
        assert (c.paths[c.active_path], c.energized) == ("mpdu2", True)


async def test_a_stale_plan_is_not_executed() -> None:
    """The plan says e1 is on mpdu2, but it is on mpdu1: nothing is switched."""
    doc = copy.deepcopy(_DOC)
    doc["mpdus"].append({"id": "mpdu3", "ats": "ats2", "rating_a": 50})
    doc["circuits"].append(
        {"id": "e1", "paths": ["mpdu1", "mpdu2", "mpdu3"], "rating_a": 16, "load": {"mean_a": 2}}
    )
    port = SimPort(Plant(parse_scenario(doc), start_s=0.0))
    rec = _record([("c2", "mpdu1", "mpdu2"), ("e1", "mpdu2", "mpdu3")])
    await _run(port, rec)
    assert rec.state is MigrationState.ABORTED
    assert rec.reason == "e1 is on mpdu1, not mpdu2: the plan is stale"
    assert rec.history[-1] == f"stopped before stage 1: {rec.reason}"
    assert port.commands == []
    assert port.plant.metrics.switch_operations == 0


async def test_no_move_onto_a_dead_target() -> None:
    doc = copy.deepcopy(_DOC)
    doc["events"] = [{"kind": "sudden_failure", "target": "mpdu2", "at": "0s"}]
    plant = Plant(parse_scenario(doc), start_s=0.0)
    plant.advance_to(60.0)
    port = SimPort(plant)
    rec = _record([("c1", "mpdu1", "mpdu2")])
    await _run(port, rec)
    assert rec.state is MigrationState.ABORTED
    assert rec.reason == "mpdu2 (target of c1) is not energised"
    assert port.commands == []
    c1 = plant.telemetry().circuits["c1"]
    assert (c1.active_path, c1.energized) == (0, True)


async def test_a_circuit_that_does_not_answer_stops_the_plan() -> None:
    doc = copy.deepcopy(_DOC)
    doc["events"] = [{"kind": "comms_loss", "target": "c2", "at": "0s", "duration": "1h"}]
    # (an hour: longer than the executor's three observations)
    plant = Plant(parse_scenario(doc), start_s=0.0)
    plant.advance_to(60.0)
    port = SimPort(plant)
    rec = _record([("c1", "mpdu1", "mpdu2")], [("c2", "mpdu1", "mpdu2")])
    await _run(port, rec)
    assert rec.state is MigrationState.ABORTED
    assert rec.completed_stages == 1
    assert rec.reason == "c2 does not answer"
    assert port.commands == [("c1", "mpdu2")]
    assert len(port.slept) == 2  # observed 3 times before giving up


async def test_a_circuit_silent_for_one_poll_is_waited_for() -> None:
    doc = copy.deepcopy(_DOC)
    doc["events"] = [{"kind": "comms_loss", "target": "c1", "at": "0s", "duration": "90s"}]
    plant = Plant(parse_scenario(doc), start_s=0.0)
    plant.advance_to(60.0)
    port = SimPort(plant)
    rec = _record([("c1", "mpdu1", "mpdu2")])
    await _run(port, rec)
    assert rec.state is MigrationState.COMPLETED
    assert port.slept == [0]
    assert port.commands == [("c1", "mpdu2")]


async def test_a_move_already_done_is_not_commanded_again() -> None:
    port = SimPort(_plant())
    port.plant.command_sbm_path("c1", "mpdu2")
    rec = _record([("c1", "mpdu1", "mpdu2"), ("c2", "mpdu1", "mpdu2")])
    switched: list[tuple[int, tuple[str, ...]]] = []

    async def progress(r: MigrationRecord, note: str) -> None:
        del r, note

    await MigrationExecutor(
        port,
        rec,
        step_interval_s=0,
        on_progress=progress,
        on_switch=lambda i, moves: switched.append((i, tuple(m.circuit for m in moves))),
    ).run()
    assert rec.state is MigrationState.COMPLETED
    assert port.commands == [("c2", "mpdu2")]
    assert switched == [(0, ("c2",))]


async def test_cancel_stops_at_the_next_safe_point() -> None:
    port = SimPort(_plant())
    rec = _record([("c1", "mpdu1", "mpdu2")], [("c2", "mpdu1", "mpdu2")])
    executor: MigrationExecutor

    async def progress(r: MigrationRecord, note: str) -> None:
        if note == "stage 1 verified":
            executor.cancel()

    executor = MigrationExecutor(port, rec, step_interval_s=30, on_progress=progress)
    await executor.run()
    assert rec.state is MigrationState.ABORTED
    assert rec.reason == "cancelled"
    assert rec.completed_stages == 1
    assert port.commands == [("c1", "mpdu2")]


class ParkedPort(SimPort):
    """`sleep` never ends by itself: only `cancel()` can end the wait between stages."""

    def __init__(self, plant: Plant) -> None:
        super().__init__(plant)
        self.parked = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.parked.set()
        await asyncio.Event().wait()


async def test_cancel_wakes_the_wait_between_stages() -> None:
    port = ParkedPort(_plant())
    rec = _record([("c1", "mpdu1", "mpdu2")], [("c2", "mpdu1", "mpdu2")])

    async def progress(r: MigrationRecord, note: str) -> None:
        del r, note

    executor = MigrationExecutor(port, rec, step_interval_s=3600, on_progress=progress)
    task = asyncio.create_task(executor.run())
    await port.parked.wait()
    assert executor.between_stages
    executor.cancel("preempted by an urgent action")
    await asyncio.wait_for(task, timeout=5)
    assert rec.state is MigrationState.ABORTED
    assert rec.reason == "preempted by an urgent action"
    assert rec.history[-1] == "preempted by an urgent action at a safe point"
    assert port.slept == [3600]
    assert port.commands == [("c1", "mpdu2")]
    assert not executor.between_stages


async def test_verification_is_retried_a_bounded_number_of_times() -> None:
    """A stage not confirmed yet is observed again (3 attempts in all); a hazard is not."""
    port = SimPort(_plant(), sabotage={"c1"})
    await _run(port, _record([("c1", "mpdu1", "mpdu2")]), verify_attempts=3)
    assert len(port.slept) == 2
    port = SimPort(_plant())
    await _run(port, _record([(f"c{i}", "mpdu1", "mpdu2") for i in range(1, 5)]))
    assert port.slept == []


async def test_reconcile_after_restart_counts_what_the_plant_shows() -> None:
    port = SimPort(_plant())
    rec = _record(
        [("c1", "mpdu1", "mpdu2")], [("c2", "mpdu1", "mpdu2")], [("c3", "mpdu1", "mpdu2")]
    )
    port.plant.command_sbm_path("c1", "mpdu2")  # stage 1 happened before the restart
    restored = MigrationRecord.from_dict(rec.as_dict())
    fixed = reconcile(restored, await port.observe())
    assert fixed.completed_stages == 1
    assert fixed.history[-1] == "reconciled"
    assert port.commands == []  # reconciling commands nothing
    await _run(port, fixed)
    assert fixed.state is MigrationState.COMPLETED
    assert port.commands == [("c2", "mpdu2"), ("c3", "mpdu2")]


def test_records_written_before_the_shared_move_type_still_load() -> None:
    """Stages used to be persisted as [circuit, from, to, amps] lists."""
    old = {
        "migration_id": "m0",
        "component": "ats1",
        "stages": [[["c1", "mpdu1", "mpdu2", 6.5]], [["c2", "mpdu1", "mpdu2", 4]]],
        "state": "running",
        "completed_stages": 1,
        "reason": None,
        "history": ["stage 1 verified"],
    }
    rec = MigrationRecord.from_dict(old)
    assert rec.stages == [[Move("c1", "mpdu1", "mpdu2", 6.5)], [Move("c2", "mpdu1", "mpdu2", 4.0)]]
    assert rec.state is MigrationState.RUNNING
    assert rec.completed_stages == 1
    assert rec.as_dict()["stages"][0] == [
        {"circuit": "c1", "from_mpdu": "mpdu1", "to_mpdu": "mpdu2", "amps": 6.5}
    ]
    assert MigrationRecord.from_dict(rec.as_dict()) == rec


def test_record_round_trip_and_damage() -> None:
    rec = _record([("c1", "mpdu1", "mpdu2")], [("c2", "mpdu1", "mpdu2")])
    rec.completed_stages = 1
    again = MigrationRecord.from_dict(rec.as_dict())
    assert again == rec
    assert again.circuits == frozenset({"c1", "c2"})
    broken = rec.as_dict() | {"state": "exploded"}
    with pytest.raises(ValueError, match="exploded"):
        MigrationRecord.from_dict(broken)
    with pytest.raises(KeyError):
        MigrationRecord.from_dict({"stages": []})


def test_relief_stage_may_leave_an_element_over_if_it_is_not_worse() -> None:
    before = Observation({}, {}, {"mpdu1": 45.0}, {"mpdu1": 50.0})
    better = Observation({}, {}, {"mpdu1": 42.0}, {"mpdu1": 50.0})
    worse = Observation({}, {}, {"mpdu1": 48.0}, {"mpdu1": 50.0})
    verify_stage([], better, before)
    with pytest.raises(VerificationError, match=r"mpdu1 carries 48\.0 A, 8\.0 A above"):
        verify_stage([], worse, before)


def test_the_executor_moves_are_the_planners() -> None:
    assert Move is PlannerMove


def test_check_stage_names_what_is_wrong() -> None:
    obs = Observation(
        active_path={"c1": "mpdu1", "c2": "mpdu2"},
        energized={"c1": True, "c2": True},
        element_current_a={},
        element_rating_a={},
        path_energized={"c1": {"mpdu1": True, "mpdu2": True}, "c2": {"mpdu2": True}},
    )
    todo, problem, unconfirmed = check_stage([Move("c1", "mpdu1", "mpdu2", 1.0)], obs)
    assert (todo, problem, unconfirmed) == ([Move("c1", "mpdu1", "mpdu2", 1.0)], None, False)
    assert check_stage([Move("c2", "mpdu1", "mpdu2", 1.0)], obs) == ([], None, False)
    assert check_stage([Move("c9", "mpdu1", "mpdu2", 1.0)], obs) == (
        [],
        "c9 does not answer",
        True,
    )
    assert check_stage([Move("c2", "mpdu2", "mpdu1", 1.0)], obs) == (
        [],
        "mpdu1 (target of c2) is not energised",
        False,
    )


def test_new_breaker_trip_fails_verification_at_once() -> None:
    before = Observation({"c1": "mpdu2"}, {"c1": True}, {}, {})
    after = Observation({"c1": "mpdu2"}, {"c1": True}, {}, {}, frozenset({"mpdu2:breaker_trip"}))
    with pytest.raises(VerificationError, match="mpdu2:breaker_trip") as err:
        verify_stage([Move("c1", "mpdu1", "mpdu2", 1.0)], after, before)
    assert not err.value.unconfirmed


class RiskPort(SimPort):
    """A `SimPort` whose observations say which MPDUs may take no load (as Home Assistant's
    says from the latest decision), or that the refresh failed (``stale`` observations)."""

    def __init__(self, plant: Plant, at_risk: dict[str, str], stale: int = 0) -> None:
        super().__init__(plant)
        self.at_risk = at_risk
        self.stale = stale

    async def observe(self) -> Observation:
        if self.stale > 0:
            self.stale -= 1
            return Observation.stale("the refresh failed")
        obs = await super().observe()
        return replace(obs, at_risk=self.at_risk)


async def test_no_stage_moves_load_onto_a_unit_at_risk() -> None:
    """Issue 20: mpdu2 came at risk after the plan was made: the stage is not executed, the
    reason says why; a record that accepts mpdu2 (the engine's urgent hand-back) runs."""
    why = "ats2 is predicted to fail (failure-risk alert on)"
    port = RiskPort(_plant(), {"mpdu2": why})
    rec = _record([("c1", "mpdu1", "mpdu2")])
    await _run(port, rec)
    assert rec.state is MigrationState.ABORTED
    assert rec.reason == f"mpdu2 (target of c1) may take no load: {why}"
    assert port.commands == []
    accepted = replace(_record([("c1", "mpdu1", "mpdu2")]), accepts_risk=frozenset({"mpdu2"}))
    await _run(port, accepted)
    assert accepted.state is MigrationState.COMPLETED
    assert MigrationRecord.from_dict(accepted.as_dict()).accepts_risk == {"mpdu2"}


async def test_nothing_is_judged_on_a_failed_refresh() -> None:
    """Issue 20: a failed refresh gives no telemetry: the stage is observed again (bounded) and
    runs once a refresh succeeds; when none does, it stops before the stage, nothing sent."""
    port = RiskPort(_plant(), {}, stale=2)
    rec = _record([("c1", "mpdu1", "mpdu2")])
    await _run(port, rec)
    assert rec.state is MigrationState.COMPLETED
    port = RiskPort(_plant(), {}, stale=3)
    rec = _record([("c1", "mpdu1", "mpdu2")])
    await _run(port, rec)
    assert rec.state is MigrationState.ABORTED
    assert rec.reason == "no fresh telemetry: the refresh failed"
    assert port.commands == []
    with pytest.raises(VerificationError, match="no fresh telemetry") as err:
        verify_stage([], Observation.stale("gone"), Observation({}, {}, {}, {}))
    assert err.value.unconfirmed
