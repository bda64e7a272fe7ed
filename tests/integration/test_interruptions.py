"""Circuit interruptions shorter than a poll: counted by the bypass modules (simulator, over
Modbus), shown as entities, and written to the circuit's Activity and the log, one entry per poll
that saw new ones."""

from __future__ import annotations

import logging

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.datacenter_power.events import EVENT_ACTIVITY
from dcp_sim.server import PlantServer

from .entity_helpers import refresh, state


def _entity(hass: HomeAssistant, entry: MockConfigEntry, plant_id: str, key: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(
        "sensor", "datacenter_power", f"{entry.unique_id}:{plant_id}:{key}"
    )
    assert entity_id is not None, (plant_id, key)
    return entity_id


async def test_interruption_shorter_than_a_poll_is_counted_shown_and_logged(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ats1 transfers with a 100 ms open transition between two polls: c01 and c02 (on mpdu1,
    under ats1) read energised at both polls, yet each shows 1 interruption with its time, a
    logbook entry and a log line; c03 (on mpdu2, ats2) none. Nothing is logged again at the
    next poll."""
    server = sim_server[0]
    activity = async_capture_events(hass, EVENT_ACTIVITY)
    entry = init_integration
    for cid in ("c01", "c02", "c03"):
        assert state(hass, _entity(hass, entry, cid, "interruptions")).state == "0"
        assert state(hass, _entity(hass, entry, cid, "last_interruption")).state == "unknown"
    server.plant.command_ats_transfer("ats1", "util_b")
    server.invalidate()
    caplog.set_level(logging.WARNING, logger="custom_components.datacenter_power")
    await refresh(hass, entry)
    tel = server.plant.telemetry()
    assert all(c.energized for c in tel.circuits.values())  # the poll itself sees nothing
    for cid, expected in (("c01", "1"), ("c02", "1"), ("c03", "0")):
        assert state(hass, _entity(hass, entry, cid, "interruptions")).state == expected, cid
    last = state(hass, _entity(hass, entry, "c01", "last_interruption")).state
    assert last.startswith(server.plant.timestamp.date().isoformat())
    logged = [e.data for e in activity if e.data["type"] == "interruption"]
    assert sorted(e["component"] for e in logged) == ["c01", "c02"]
    assert all(e["new_interruptions"] == 1 and e["interruptions"] == 1 for e in logged)
    assert "interrupted 1 time since the previous poll" in logged[0]["message"]
    lines = [r.getMessage() for r in caplog.records if "interrupted" in r.getMessage()]
    assert len(lines) == 2
    assert any(line.startswith("c01: critical circuit interrupted") for line in lines)
    await refresh(hass, entry)
    assert len([e for e in activity if e.data["type"] == "interruption"]) == 2
