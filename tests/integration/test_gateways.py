"""A plant whose scenario splits it over two gateways (one simulator, two TCP ports), set up
in Home Assistant as the entry's gateway plus one gateway subentry: every device is live."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from dcp_sim.server import PlantServer

from .conftest import PLANT_IDS, plant_entry, set_up


async def test_plant_over_two_gateways_all_live(
    hass: HomeAssistant, split_server: PlantServer
) -> None:
    ports = split_server.ports
    assert len(ports) == 2
    entry = plant_entry(ports[0], more_gateways=[ports[1]])
    assert await set_up(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    coordinator = entry.runtime_data.telemetry
    assert set(coordinator.data.readings) == set(PLANT_IDS)
    # The topology is whole across gateways: c03 (behind gateway 2) can move to mpdu1 (gateway 1).
    assert coordinator.data.topology.circuits["c03"].paths == ("mpdu2", "mpdu1")
    (subentry_id,) = entry.subentries
    devices = dr.async_get(hass)
    for pid in PLANT_IDS:
        on_second = split_server.gateway_of[pid] == 1
        assert coordinator.client_for(pid).port == ports[int(on_second)]
        device_id = coordinator.device_id(pid)
        assert device_id is not None, pid
        device = devices.async_get(device_id)
        assert device is not None, pid
        assert device.config_entry_id == entry.entry_id
        assert device.config_subentry_id == (subentry_id if on_second else None)
        entities = er.async_entries_for_device(er.async_get(hass), device.id)
        assert entities, pid
        for ent in entities:
            state = hass.states.get(ent.entity_id)
            if ent.disabled_by is None:
                assert state is not None, ent.entity_id
                assert state.state != STATE_UNAVAILABLE, ent.entity_id
    # Each gateway answered one request per device in the last refresh.
    before = split_server.requests
    await coordinator.async_refresh()
    assert split_server.requests - before == len(PLANT_IDS)
