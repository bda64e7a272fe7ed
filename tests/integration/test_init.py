"""Setting up, unloading and reloading a plant's config entry against the simulator."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.datacenter_power import async_remove_config_entry_device
from custom_components.datacenter_power.const import (
    DOMAIN,
)
from dcp_sim.plant import Plant
from dcp_sim.server import PlantServer

from .conftest import PLANT_IDS, PLANT_UNIQUE_ID, plant_entry, renamed, serve, set_up
from .modbus_proxy import ModbusProxy

C04_UNIT = 43


async def test_setup_registers_every_device(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Every device of the plant is discovered, polled and registered with its parent."""
    coordinator = init_integration.runtime_data.telemetry
    snapshot = coordinator.data
    assert set(snapshot.identities) == set(PLANT_IDS)
    assert set(snapshot.readings) == set(PLANT_IDS)
    assert not snapshot.errors
    registry = dr.async_get(hass)
    devices = {
        d.serial_number: d
        for d in dr.async_entries_for_config_entry(registry, init_integration.entry_id)
    }
    # every plant device, plus the plant itself (the hub that holds the migration sensor)
    assert set(devices) == {*PLANT_IDS, None}
    assert devices[None].identifiers == {(DOMAIN, PLANT_UNIQUE_ID)}
    assert devices["mpdu1"].via_device_id == devices["ats1"].id
    assert devices["c03"].via_device_id == devices["mpdu2"].id
    assert devices["env1"].via_device_id is None
    assert devices["ats1"].name == "ATS ats1"
    assert devices["c01"].name == "Circuit c01"
    assert devices["ats1"].identifiers == {(DOMAIN, f"{PLANT_UNIQUE_ID}:ats1")}
    assert coordinator.device_id("ats1") == devices["ats1"].id
    assert coordinator.identity("ats1").sources == ("util_a", "util_b")
    assert snapshot.assignment == {"c01": "mpdu1", "c02": "mpdu1", "c03": "mpdu2", "c04": "mpdu2"}
    assert snapshot.energized_mpdus == {"mpdu1", "mpdu2"}
    assert set(snapshot.topology.circuits) == {"c01", "c02", "c03", "c04"}


async def test_unload(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Unloading closes every client."""
    coordinator = init_integration.runtime_data.telemetry
    client = coordinator.client_for("ats1")
    assert client.connected
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.NOT_LOADED
    assert not client.connected


async def test_reload_keeps_devices_and_closes_old_clients(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A reload builds a new coordinator on the same registry devices; the old clients close."""
    old = init_integration.runtime_data.telemetry
    old_client = old.client_for("ats1")
    device_ids = {pid: old.device_id(pid) for pid in PLANT_IDS}
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.LOADED
    new = init_integration.runtime_data.telemetry
    assert new is not old
    assert not old_client.connected
    assert {pid: new.device_id(pid) for pid in PLANT_IDS} == device_ids
    assert set(new.data.readings) == set(PLANT_IDS)


async def test_setup_retries_until_gateway_reachable(
    hass: HomeAssistant, free_port: int, plant: Plant
) -> None:
    """Nothing listens yet: ConfigEntryNotReady; once the gateway is up, Home Assistant's own
    retry sets the entry up."""
    entry = plant_entry(free_port)
    await set_up(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert str(free_port) in (entry.reason or "")
    server = PlantServer(plant, speed=0)
    await server.start("127.0.0.1", free_port)
    try:
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=2))
        await hass.async_block_till_done(wait_background_tasks=True)
        assert entry.state is ConfigEntryState.LOADED
        assert set(entry.runtime_data.telemetry.data.readings) == set(PLANT_IDS)
        await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


async def test_setup_not_ready_when_no_device_answers(
    hass: HomeAssistant, empty_gateway: int
) -> None:
    """A reachable gateway with nothing behind it is not a plant (yet)."""
    entry = plant_entry(empty_gateway)
    await set_up(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "No device" in (entry.reason or "")


async def test_remove_only_devices_the_plant_no_longer_reports(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, proxy: ModbusProxy
) -> None:
    """A device that still answers cannot be removed; once the rescan no longer finds it and
    it does not answer, it can, and polling stops; if it returns, it is added again."""
    assert await async_setup_component(hass, "config", {})
    entry = plant_entry(proxy.port)
    await set_up(hass, entry)
    coordinator = entry.runtime_data.telemetry
    registry = dr.async_get(hass)
    c04 = coordinator.device_id("c04")
    assert c04 is not None
    client = await hass_ws_client(hass)

    response = await client.remove_device(c04)
    assert not response["success"]
    assert registry.async_get(c04) is not None

    proxy.faults[C04_UNIT] = "absent"
    await coordinator.async_rescan()
    await coordinator.async_refresh()
    assert not coordinator.data.available("c04")
    response = await client.remove_device(c04)
    assert response["success"]
    assert registry.async_get(c04) is None
    await coordinator.async_refresh()
    assert "c04" not in coordinator.data.identities
    assert "c04" not in coordinator.data.errors

    del proxy.faults[C04_UNIT]
    await coordinator.async_rescan()
    assert coordinator.data.available("c04")
    assert registry.async_get(coordinator.device_id("c04") or "") is not None


async def test_remove_foreign_or_unknown_device(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A device with none of this plant's identifiers is not ours to remove; one the plant
    never reported (in this run) may go."""
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=init_integration.entry_id, identifiers={("other", "thing")}
    )
    assert not await async_remove_config_entry_device(hass, init_integration, device)
    ghost = dr.async_get(hass).async_get_or_create(
        config_entry_id=init_integration.entry_id,
        identifiers={(DOMAIN, f"{PLANT_UNIQUE_ID}:ghost")},
    )
    assert await async_remove_config_entry_device(hass, init_integration, ghost)


async def test_remove_device_while_not_loaded(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """With the entry unloaded there is nothing to ask: a stale device may go."""
    device_id = init_integration.runtime_data.telemetry.device_id("ats1")
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    device = dr.async_get(hass).async_get(device_id or "")
    assert device is not None
    assert await async_remove_config_entry_device(hass, init_integration, device)


async def test_devices_behind_a_gateway_subentry_stay_in_it(
    hass: HomeAssistant, sim_server: tuple[PlantServer, int], scenario_doc: dict[str, Any]
) -> None:
    """With the entity platforms loaded, the devices of a second gateway still belong to its
    subentry (so that deleting the gateway deletes them), and the main gateway's to none."""
    doc = renamed(scenario_doc, {p: f"x{p}" for p in PLANT_IDS if p != "env1"})
    other = await serve(doc)
    try:
        entry = plant_entry(sim_server[1], more_gateways=[other.port])
        await set_up(hass, entry)
        assert entry.state is ConfigEntryState.LOADED
        (subentry_id,) = entry.subentries
        coordinator = entry.runtime_data.telemetry
        registry = dr.async_get(hass)
        for pid in ("xats1", "xmpdu1", "xc01"):
            device = registry.async_get(coordinator.device_id(pid) or "")
            assert device is not None
            assert device.config_subentry_id == subentry_id, pid
        device = registry.async_get(coordinator.device_id("ats1") or "")
        assert device is not None
        assert device.config_subentry_id is None
        await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await other.stop()
