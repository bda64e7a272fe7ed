"""Home Assistant restarts at every stage of a migration (issue 12): the stage is reached, the
entry is unloaded there (what a restart does) and set up again. Whatever the stage, the plant
ends safe (every circuit energised, on one of its plan's two paths, no MPDU above its limit)
and the migration either finishes or is held with a repair saying what happened. A stored record
cut short while the migration ran is a damaged record: nothing is switched and a repair says so.
Real Home Assistant, real simulator over Modbus TCP."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power import const, migration
from custom_components.datacenter_power.const import (
    CONF_POLICY_MODE,
    CONF_STEP_INTERVAL,
    DOMAIN,
)
from custom_components.datacenter_power.executor import FINAL_STATES, MigrationState, Observation
from custom_components.datacenter_power.migration import HaPlantPort, MigrationManager
from dcp_sim.server import PlantServer

from .conftest import plant_entry, set_up

STAGES = {
    "planned": "stage 1/2",
    "mid_verify": "verifying stage 1",
    "between_steps": "stage 1 verified",
    "mid_verify_last": "verifying stage 2",
    "after_last_step": "stage 2 verified",
}
"""Where the restart happens: right after the executor recorded this step of its history."""


@pytest.fixture(autouse=True)
def fast_verification(monkeypatch: pytest.MonkeyPatch, short_modbus_timeouts: None) -> None:
    """Verification 50 ms apart; polls get 1 s per request (as in test_reliability): on a
    loaded machine a slow answer would make an MPDU look silent and the action be refused."""
    monkeypatch.setattr(migration, "VERIFY_DELAY_S", 0.05)
    monkeypatch.setattr(const, "REQUEST_TIMEOUT", 1.0)


class _Stop:
    """Blocks the migration where the restart is to happen (a process stopping there), and
    tells the test it got there."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()

    async def here(self) -> None:
        self.reached.set()
        await asyncio.Future()  # until the unload cancels the migration's task


def _stop_at_note(monkeypatch: pytest.MonkeyPatch, note: str) -> _Stop:
    stop = _Stop()
    real = MigrationManager._on_progress

    async def on_progress(self: MigrationManager, rec: Any, seen: str) -> None:
        await real(self, rec, seen)
        if seen == note and not stop.reached.is_set():
            await stop.here()

    monkeypatch.setattr(MigrationManager, "_on_progress", on_progress)
    return stop


async def _setup(hass: HomeAssistant, base: MockConfigEntry, mode: str) -> MockConfigEntry:
    entry = plant_entry(
        base=base, options={CONF_STEP_INTERVAL: 0, CONF_POLICY_MODE: mode}, entry_id=base.entry_id
    )
    assert await set_up(hass, entry)
    return entry


async def _restart(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


def _assert_safe(server: PlantServer, moves: list[tuple[str, str, str]]) -> None:
    tel = server.plant.telemetry()
    assert all(c.energized for c in tel.circuits.values())
    for circuit, frm, to in moves:
        c = tel.circuits[circuit]
        assert c.paths[c.active_path] in (frm, to)
    for mid, m in tel.mpdus.items():
        assert m.current_a <= 0.8 * m.rating_a, mid


async def _assert_outcome(
    hass: HomeAssistant, entry: MockConfigEntry, migration_id: str, mode: str
) -> None:
    manager = entry.runtime_data.migrations
    record = manager.records[migration_id]
    if record.state not in FINAL_STATES:
        assert mode == "automatic"  # resumed, and it finishes
        record = await manager.async_wait(migration_id)
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"migration_held_{migration_id}")
    if record.state is MigrationState.COMPLETED:
        assert issue is None
    else:
        assert record.reason
        assert issue is not None, (record.state, record.reason, record.history)
        assert issue.translation_placeholders is not None
        assert issue.translation_placeholders["component"] == "mpdu1"


@pytest.mark.parametrize("mode", ["approval", "automatic"])
@pytest.mark.parametrize("stage", list(STAGES))
async def test_restart_at_every_stage_ends_safe_and_says_so(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
    mode: str,
) -> None:
    stop = _stop_at_note(monkeypatch, STAGES[stage])
    entry = await _setup(hass, mock_config_entry, mode)
    started = await hass.services.async_call(
        DOMAIN,
        "migrate_load",
        {"component": "mpdu1", "max_step_amps": 6},
        blocking=True,
        return_response=True,
    )
    assert started is not None
    migration_id = str(started["migration_id"])
    record = entry.runtime_data.migrations.records[migration_id]
    moves = [(m.circuit, m.from_mpdu, m.to_mpdu) for s in record.stages for m in s]
    assert len(record.stages) == 2
    await asyncio.wait_for(stop.reached.wait(), timeout=30)
    await _restart(hass, entry)
    await _assert_outcome(hass, entry, migration_id, mode)
    _assert_safe(sim_server[0], moves)


@pytest.mark.parametrize("mode", ["approval", "automatic"])
async def test_restart_while_rolling_back_ends_safe_and_says_so(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    """The second stage's circuit moves, then its SBM reports a breaker trip: the stage fails
    verification and is rolled back; the restart comes while the command moving it back is on
    its way."""
    entry = await _setup(hass, mock_config_entry, mode)
    plan = await hass.services.async_call(
        DOMAIN,
        "plan_migration",
        {"component": "mpdu1", "max_step_amps": 6},
        blocking=True,
        return_response=True,
    )
    assert plan is not None
    second = plan["steps"][1]["moves"][0]["circuit"]
    stop = _Stop()
    tripped: list[bool] = []
    real_set_path = HaPlantPort.set_path
    real_observe = HaPlantPort.observe

    async def set_path(port: HaPlantPort, circuit_id: str, mpdu_id: str) -> None:
        if circuit_id == second and mpdu_id == "mpdu1":  # moving it back: the rollback
            await stop.here()
        await real_set_path(port, circuit_id, mpdu_id)
        if circuit_id == second:
            tripped.append(True)

    async def observe(port: HaPlantPort) -> Observation:
        obs = await real_observe(port)
        if tripped:
            obs = replace(obs, alarms=obs.alarms | {f"{second}:breaker_trip"})
        return obs

    monkeypatch.setattr(HaPlantPort, "set_path", set_path)
    monkeypatch.setattr(HaPlantPort, "observe", observe)
    started = await hass.services.async_call(
        DOMAIN,
        "migrate_load",
        {"component": "mpdu1", "max_step_amps": 6},
        blocking=True,
        return_response=True,
    )
    assert started is not None
    migration_id = str(started["migration_id"])
    record = entry.runtime_data.migrations.records[migration_id]
    moves = [(m.circuit, m.from_mpdu, m.to_mpdu) for s in record.stages for m in s]
    await asyncio.wait_for(stop.reached.wait(), timeout=30)
    assert record.state is MigrationState.VERIFYING
    monkeypatch.setattr(HaPlantPort, "set_path", real_set_path)
    monkeypatch.setattr(HaPlantPort, "observe", real_observe)
    await _restart(hass, entry)
    await _assert_outcome(hass, entry, migration_id, mode)
    _assert_safe(sim_server[0], moves)


async def test_a_record_cut_short_mid_migration_is_reported_and_nothing_switches(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    monkeypatch: pytest.MonkeyPatch,
    hass_storage: dict[str, Any],
) -> None:
    """Stopped mid-verify; while "down", the stored record loses its second half (a write cut
    short). The entry starts, switches nothing, and a repair says the records were damaged."""
    stop = _stop_at_note(monkeypatch, STAGES["mid_verify"])
    entry = await _setup(hass, mock_config_entry, "automatic")
    started = await hass.services.async_call(
        DOMAIN,
        "migrate_load",
        {"component": "mpdu1", "max_step_amps": 6},
        blocking=True,
        return_response=True,
    )
    assert started is not None
    await asyncio.wait_for(stop.reached.wait(), timeout=30)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    key = f"{DOMAIN}.{entry.entry_id}.migrations"
    stored = hass_storage[key]["data"]["migrations"]
    assert stored
    stored[-1] = dict(list(stored[-1].items())[: len(stored[-1]) // 2])
    before = {c: t.active_path for c, t in sim_server[0].plant.telemetry().circuits.items()}
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    after = {c: t.active_path for c, t in sim_server[0].plant.telemetry().circuits.items()}
    assert after == before
    assert all(c.energized for c in sim_server[0].plant.telemetry().circuits.values())
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, f"storage_damaged_{entry.entry_id}_migrations"
    )
    assert issue is not None
