"""A plant whose scenario splits it over two gateways (one simulator, two TCP ports), set up
in Home Assistant as the entry's gateway plus one gateway subentry: every device is live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState, ConfigSubentryData
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.const import (
    CONF_HOST,
    CONF_PORT,
    DEFAULT_OPTIONS,
    DOMAIN,
    SUBENTRY_GATEWAY,
)
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer

from .conftest import PLANT_IDS, PLANT_UNIQUE_ID


@pytest.fixture
async def split_server(
    scenario_doc: dict[str, Any], socket_enabled: None
) -> AsyncIterator[PlantServer]:
    """The test plant with each ATS lineup behind its own gateway."""
    scenario_doc["gateways"] = [{"ats": ["ats1"]}, {"ats": ["ats2"]}]
    scenario_doc["events"] = []
    server = PlantServer(Plant(parse_scenario(scenario_doc), start_s=0.0), speed=0)
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop()


async def test_plant_over_two_gateways_all_live(
    hass: HomeAssistant, split_server: PlantServer
) -> None:
    ports = split_server.ports
    assert len(ports) == 2
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=PLANT_UNIQUE_ID,
        data={CONF_HOST: "127.0.0.1", CONF_PORT: ports[0]},
        options=dict(DEFAULT_OPTIONS),
        subentries_data=[
            ConfigSubentryData(
                data={CONF_HOST: "127.0.0.1", CONF_PORT: ports[1]},
                subentry_type=SUBENTRY_GATEWAY,
                title=f"127.0.0.1:{ports[1]}",
                unique_id=f"127.0.0.1:{ports[1]}",
            )
        ],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
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
