"""The staged migration executor driven against the real simulated plant (no Modbus, no HA)."""

from __future__ import annotations

from typing import Any

import pytest

from custom_components.datacenter_power.executor import (
    MigrationExecutor,
    MigrationRecord,
    MigrationState,
    Move,
    Observation,
    VerificationError,
    reconcile,
    verify_stage,
)
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario

_DOC: dict[str, Any] = {
    "version": 1,
    "name": "executor",
    "seed": 1,
    "start": "2026-03-02T00:00:00Z",
    "history": "0s",
    "duration": "1d",
    "step": "60s",
    "sources": [{"id": "util_a", "nominal_v": 230}, {"id": "util_b", "nominal_v": 230}],
    "ats": [
        {
            "id": "ats1",
            "sources": ["util_a", "util_b"],
            "rating_a": 100,
            "transfer_time": "100ms",
            "rated_operations": 6000,
        },
        {
            "id": "ats2",
            "sources": ["util_b", "util_a"],
            "rating_a": 100,
            "transfer_time": "100ms",
            "rated_operations": 6000,
        },
    ],
    "mpdus": [
        {"id": "mpdu1", "ats": "ats1", "rating_a": 50},
        {"id": "mpdu2", "ats": "ats2", "rating_a": 50},
    ],
    "circuits": [
        {"id": f"c{i}", "paths": ["mpdu1", "mpdu2"], "rating_a": 16, "load": {"mean_a": 6}}
        for i in range(1, 5)
    ]
    + [{"id": "d1", "paths": ["mpdu2", "mpdu1"], "rating_a": 32, "load": {"mean_a": 18}}],
}


class SimPort:
    """A `PlantPort` on the simulated plant: each observation is one 60 s poll later."""

    def __init__(self, plant: Plant, *, sabotage: set[str] | None = None) -> None:
        self.plant = plant
        self.sabotage = sabotage or set()
        self.commands: list[tuple[str, str]] = []

    async def set_path(self, circuit_id: str, mpdu_id: str) -> None:
        self.commands.append((circuit_id, mpdu_id))
        if circuit_id in self.sabotage:
            return  # the command is accepted but the SBM does not move (a stuck relay)
        self.plant.command_sbm_path(circuit_id, mpdu_id)

    async def observe(self) -> Observation:
        self.plant.advance_to(self.plant.t_s + 60)
        tel = self.plant.telemetry()
        return Observation(
            active_path={c: t.paths[t.active_path] for c, t in tel.circuits.items()},
            energized={c: t.energized for c, t in tel.circuits.items()},
            element_current_a={
                **{a: t.load_current_a for a, t in tel.ats.items()},
                **{m: t.current_a for m, t in tel.mpdus.items()},
            },
            element_rating_a={
                **{a: t.rating_a for a, t in tel.ats.items()},
                **{m: t.rating_a for m, t in tel.mpdus.items()},
            },
            alarms=frozenset(
                f"{m}:breaker_trip" for m, t in tel.mpdus.items() if t.alarm_breaker_trip
            ),
        )


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


async def test_a_rejected_command_rolls_back_with_the_devices_reason() -> None:
    port = SimPort(_plant())
    rec = _record([("c1", "mpdu1", "mpdu2"), ("c3", "mpdu1", "mpdu9")])
    await _run(port, rec)
    assert rec.state is MigrationState.ROLLED_BACK
    assert rec.reason is not None
    assert "mpdu9" in rec.reason
    assert port.plant.telemetry().circuits["c1"].active_path == 0


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
