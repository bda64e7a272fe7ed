"""Issue 20, item 1, in small: a migration in flight across a restart whose receiver is at risk
once Home Assistant is back. The remaining stages are not executed onto it (the migration is
aborted with the reason at the engine's first decision), and the automatic policy then drains
the unit at risk. A person's migration that runs when the engine first wants to drain does not
hold the drain back once it ends. Real Home Assistant, real simulator over Modbus TCP."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import Event, HomeAssistant, callback
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.datacenter_power import const, migration
from custom_components.datacenter_power.const import (
    CONF_POLICY_MODE,
    CONF_STEP_INTERVAL,
    DOMAIN,
)
from custom_components.datacenter_power.events import EVENT_MIGRATION_FINISHED
from custom_components.datacenter_power.executor import MigrationState
from custom_components.datacenter_power.migration import MigrationManager
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer

from .conftest import history_rows, plant_entry, store_history
from .test_prediction import NOW_T_S
from .wear import wear_plant

DRAIN_TIMEOUT_S = 60.0
"""How long the drain of the unit at risk may take to start and finish (it takes seconds; the
policy's replan interval, which held it back, is 15 minutes)."""


def _three_ats_plant() -> dict[str, Any]:
    """The wear plant with a third ATS/MPDU whose three small circuits can move to mpdu2."""
    doc = wear_plant()
    doc["ats"].append(copy.deepcopy(doc["ats"][1]) | {"id": "ats3"})
    doc["mpdus"].append({"id": "mpdu3", "ats": "ats3", "rating_a": 60})
    doc["circuit_groups"].append(
        {
            "prefix": "d",
            "count": 3,
            "paths": ["mpdu3", "mpdu2"],
            "rating_a": 16,
            "load": {"mean_a": 2, "daily": 0.1, "noise": 0.03},
        }
    )
    return doc


@pytest.fixture
def plant(request: pytest.FixtureRequest) -> Plant:
    """The worn plant (ATS-1 wears from 1 h, fails at 16 h), or its three-ATS variant."""
    doc = _three_ats_plant() if getattr(request, "param", "") == "three" else wear_plant()
    return Plant(parse_scenario(doc), start_s=None)


@pytest.fixture(autouse=True)
def _timeouts(monkeypatch: pytest.MonkeyPatch, short_modbus_timeouts: None) -> None:
    """Verification 50 ms apart; 1 s per request (a loaded machine must not make a device
    look silent)."""
    monkeypatch.setattr(migration, "VERIFY_DELAY_S", 0.05)
    monkeypatch.setattr(const, "REQUEST_TIMEOUT", 1.0)


def _stop_after(monkeypatch: pytest.MonkeyPatch, note: str) -> asyncio.Event:
    """Block the migration after ``note`` (a process stopping there) until the unload cancels
    it; the event tells the test it got there."""
    reached = asyncio.Event()
    real = MigrationManager._on_progress

    async def on_progress(self: MigrationManager, rec: Any, seen: str) -> None:
        await real(self, rec, seen)
        if seen == note and not reached.is_set():
            reached.set()
            await asyncio.Future()

    monkeypatch.setattr(MigrationManager, "_on_progress", on_progress)
    return reached


def _hold_until_decided(monkeypatch: pytest.MonkeyPatch, note: str) -> None:
    """After ``note``, wait (bounded) until the migration manager has acted on a decision."""
    real = MigrationManager._on_progress

    async def on_progress(self: MigrationManager, rec: Any, seen: str) -> None:
        await real(self, rec, seen)
        if seen == note:
            async with asyncio.timeout(30):
                # No event says so: the manager's own state, polled.
                while self.awaiting_decision:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)

    monkeypatch.setattr(MigrationManager, "_on_progress", on_progress)


async def _in_flight_then_restart(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    server: PlantServer,
    port: int,
    monkeypatch: pytest.MonkeyPatch,
    component: str,
    max_step_amps: float,
    *,
    hold_resumed: bool = False,
) -> tuple[MockConfigEntry, str, list[tuple[str, str]]]:
    """Start ``migrate_load component`` (one circuit a stage) with no history yet (nothing at risk),
    stop after its first stage, "restart" with the wear's history: ATS-1 alerts at the first
    decision. With ``hold_resumed`` the resumed migration's second stage waits, once verified,
    until the engine has acted on its first decision (as a migration with a step interval of a
    minute did in the issue: it was still running then). Returns the entry, the migration id and
    its remaining moves."""
    rows = history_rows(server, NOW_T_S)  # 11 h into ATS-1's wear
    entry = plant_entry(
        port, options={CONF_STEP_INTERVAL: 0, CONF_POLICY_MODE: "automatic"}, title="Plant"
    )
    entry.add_to_hass(hass)
    reached = _stop_after(monkeypatch, "stage 1 verified")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    forecast = entry.runtime_data.decisions
    assert forecast.data is not None
    assert not forecast.data.alerts  # no history yet: nothing is at risk
    started = await hass.services.async_call(
        DOMAIN,
        "migrate_load",
        {"component": component, "max_step_amps": max_step_amps},
        blocking=True,
        return_response=True,
    )
    assert started is not None
    migration_id = str(started["migration_id"])
    record = entry.runtime_data.migrations.records[migration_id]
    assert len(record.stages) >= 2
    rest = [(m.circuit, m.to_mpdu) for s in record.stages[1:] for m in s]
    await asyncio.wait_for(reached.wait(), timeout=30)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    monkeypatch.undo()  # the restarted process runs unhindered (the fixtures' patches too:)
    monkeypatch.setattr(migration, "VERIFY_DELAY_S", 0.05)
    monkeypatch.setattr(const, "REQUEST_TIMEOUT", 1.0)
    monkeypatch.setattr(const, "SCAN_UNIT_TIMEOUT", 0.2)
    if hold_resumed:
        _hold_until_decided(monkeypatch, "stage 2 verified")
    store_history(hass_storage, entry, rows)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    decisions = entry.runtime_data.decisions.data
    assert decisions is not None
    assert "ats1" in decisions.alerts
    return entry, migration_id, rest


async def _drained(hass: HomeAssistant, finished: list[Event], component: str) -> None:
    """Wait until a migration of ``component`` completes (bounded)."""

    fired = asyncio.Event()
    remove = hass.bus.async_listen(EVENT_MIGRATION_FINISHED, callback(lambda _event: fired.set()))
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            while not any(
                e.data["component"] == component and e.data["state"] == "completed"
                for e in finished
            ):
                fired.clear()
                await fired.wait()
    finally:
        remove()


async def test_a_resumed_migration_loads_no_unit_at_risk_and_the_policy_drains_it(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Draining mpdu2 onto mpdu1 (ATS-1), stopped after its first stage; after the restart
    ATS-1 is predicted to fail. The remaining moves onto mpdu1 are not executed (the migration
    is aborted, the reason names mpdu1 and ATS-1's prediction), and the automatic policy drains
    ATS-1, including the circuit the first stage put there."""
    server, port = sim_server
    finished = async_capture_events(hass, EVENT_MIGRATION_FINISHED)
    entry, migration_id, rest = await _in_flight_then_restart(
        hass, hass_storage, server, port, monkeypatch, "mpdu2", 7
    )
    assert rest
    assert all(to == "mpdu1" for _, to in rest)
    record = entry.runtime_data.migrations.records[migration_id]
    assert record.state is MigrationState.ABORTED, record.history
    assert record.reason is not None
    assert "mpdu1" in record.reason
    assert "ats1 is predicted to fail" in record.reason
    await _drained(hass, finished, "ats1")
    tel = server.plant.telemetry()
    assert tel.ats["ats1"].load_current_a == 0.0
    for circuit, _ in rest:  # never moved onto ATS-1: still (or back) on mpdu2
        c = tel.circuits[circuit]
        assert c.paths[c.active_path] == "mpdu2"
    assert all(c.energized for c in tel.circuits.values())
    assert server.plant.metrics.interruptions == 0


@pytest.mark.parametrize("plant", ["three"], indirect=True)
async def test_the_drain_follows_a_person_s_migration_that_held_it_back(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Why no drain ran in the issue: the engine planned the drain of ATS-1 at its first
    decision, while a person's migration ran (one action at a time: not started); when that
    migration ended, the policy did not plan again for its 15-minute replan interval. Here a
    person's drain of mpdu3 (onto mpdu2: no unit at risk) resumes after the restart and holds
    the engine back; once it completes, ATS-1 is drained within a poll or two."""
    server, port = sim_server
    finished = async_capture_events(hass, EVENT_MIGRATION_FINISHED)
    entry, migration_id, rest = await _in_flight_then_restart(
        hass, hass_storage, server, port, monkeypatch, "mpdu3", 2.5, hold_resumed=True
    )
    assert rest
    assert all(to == "mpdu2" for _, to in rest)
    manager = entry.runtime_data.migrations
    record = await manager.async_wait(migration_id)
    assert record.state is MigrationState.COMPLETED, record.history
    await _drained(hass, finished, "ats1")
    tel = server.plant.telemetry()
    assert tel.ats["ats1"].load_current_a == 0.0
    assert all(c.energized for c in tel.circuits.values())
