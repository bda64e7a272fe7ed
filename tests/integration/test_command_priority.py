"""A command issued in the middle of a slow refresh is sent at once (its own connection), and
what it did shows at once and stays shown when the older poll lands."""

from __future__ import annotations

import asyncio
import time

from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.const import ATTR_ENTITY_ID, SERVICE_TURN_ON, STATE_ON, Platform
from homeassistant.core import HomeAssistant

from dcp_sim.server import PlantServer

from .conftest import plant_entry
from .entity_helpers import setup_platform, state
from .modbus_proxy import ModbusProxy

INHIBIT = "switch.ats_ats1_auto_transfer_inhibit"


async def test_command_does_not_wait_behind_a_refresh(
    hass: HomeAssistant, sim_server: tuple[PlantServer, int], proxy: ModbusProxy
) -> None:
    server, _ = sim_server
    entry = plant_entry(proxy.port, title="Plant")
    await setup_platform(hass, entry, Platform.SWITCH)
    coordinator = entry.runtime_data.telemetry
    assert state(hass, INHIBIT).state != STATE_ON
    # Seven silent devices: a refresh now takes two request timeouts (0.2 s each) on every
    # polling connection, while ats1 and mpdu1 (what the command touches) still answer.
    for pid in ("env1", "ats2", "mpdu2", "c01", "c02", "c03", "c04"):
        proxy.faults[server.unit_ids[pid]] = "silent"

    started = time.monotonic()
    refresh = hass.async_create_task(coordinator.async_refresh())
    await asyncio.sleep(0.05)  # the refresh is under way
    assert not refresh.done()
    sent = time.monotonic()
    await hass.services.async_call(
        SWITCH_DOMAIN, SERVICE_TURN_ON, {ATTR_ENTITY_ID: INHIBIT}, blocking=True
    )
    command_s = time.monotonic() - sent
    assert not refresh.done(), "the command waited for the refresh"
    assert server.plant.telemetry().ats["ats1"].inhibit
    assert state(hass, INHIBIT).state == STATE_ON  # shown at once
    await refresh
    refresh_s = time.monotonic() - started
    assert command_s < refresh_s / 2
    # The refresh read ats1 before the command; the newer reading stays.
    assert state(hass, INHIBIT).state == STATE_ON
    assert coordinator.data.readings["ats1"].inhibit  # type: ignore[union-attr]
