"""The plant dashboard (Home Assistant's own cards, added to the sidebar through Lovelace) and
the per-lineup device areas."""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.datacenter_power.const import DOMAIN


def _entities(node: Any) -> list[str]:
    """Every entity id a Lovelace config refers to."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "entity" and isinstance(value, str):
                found.append(value)
            elif key == "entities" and isinstance(value, list):
                found += [v for v in value if isinstance(v, str)]
                found += [x for v in value if isinstance(v, dict) for x in _entities(v)]
            else:
                found += _entities(value)
    elif isinstance(node, list):
        for value in node:
            found += _entities(value)
    return found


async def test_create_dashboard_adds_the_plant_to_the_sidebar(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, init_integration: MockConfigEntry
) -> None:
    """The action adds a dashboard with a plant view and one view per ATS lineup; every card
    shows an entity that exists; calling it again updates the same dashboard."""
    assert await async_setup_component(hass, "lovelace", {})
    response = await hass.services.async_call(
        DOMAIN, "create_dashboard", {}, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    url_path = response["url_path"]
    assert url_path is not None
    config = response["dashboard"]
    assert [v["title"] for v in config["views"]] == ["Plant", "Lineup ats1", "Lineup ats2"]
    entities = _entities(config)
    assert "sensor.plant_ats1_ats2_total_load" in entities
    assert "sensor.mpdu_mpdu1_load_vs_continuous_limit" in entities
    assert "binary_sensor.ats_ats1_failure_risk" in entities
    assert "select.circuit_c01_active_path" in entities
    missing = [e for e in entities if hass.states.get(e) is None]
    assert not missing
    client = await hass_ws_client()
    await client.send_json_auto_id({"type": "lovelace/config", "url_path": url_path})
    stored = await client.receive_json()
    assert stored["success"], stored
    assert stored["result"] == config
    again = await hass.services.async_call(
        DOMAIN, "create_dashboard", {}, blocking=True, return_response=True
    )
    assert isinstance(again, dict)
    assert again["url_path"] == url_path
    await client.send_json_auto_id({"type": "lovelace/dashboards/list"})
    listed = await client.receive_json()
    assert [d["url_path"] for d in listed["result"]].count(url_path) == 1


async def test_devices_are_placed_in_their_lineup_area_once(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """ATS, its MPDUs and the circuits normally under it share "Lineup <ats>"; an area a person
    sets afterwards survives a reload."""
    telemetry = init_integration.runtime_data.telemetry
    devices, areas = dr.async_get(hass), ar.async_get(hass)

    def area_of(pid: str) -> str | None:
        device = devices.async_get(telemetry.device_id(pid) or "")
        assert device is not None
        area = areas.async_get_area(device.area_id or "")
        return None if area is None else area.name

    assert {p: area_of(p) for p in ("ats1", "mpdu1", "c01", "ats2", "mpdu2", "c03")} == {
        "ats1": "Lineup ats1",
        "mpdu1": "Lineup ats1",
        "c01": "Lineup ats1",
        "ats2": "Lineup ats2",
        "mpdu2": "Lineup ats2",
        "c03": "Lineup ats2",
    }
    assert area_of("env1") is None
    room = areas.async_get_or_create("Room 1")
    devices.async_update_device(telemetry.device_id("c01") or "", area_id=room.id)
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert area_of("c01") == "Room 1"
