"""The plant dashboard (Home Assistant's own cards, added to the sidebar through Lovelace) and
the per-lineup device areas."""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.datacenter_power.const import (
    CONF_LINEUP_AREAS,
    CONF_SUGGEST_AREAS,
    DEFAULT_OPTIONS,
    DOMAIN,
)


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
    # the forecast band: measured load beside P10, P50 and P90, per ATS and MPDU
    bands = {
        card["title"]: [row["entity"] for row in card["entities"]]
        for view in config["views"]
        for card in view["cards"]
        if card["type"] == "history-graph"
    }
    assert bands["mpdu1: load and forecast band (P10-P90)"] == [
        "sensor.mpdu_mpdu1_current",
        "sensor.mpdu_mpdu1_load_forecast_p10",
        "sensor.mpdu_mpdu1_load_forecast_p50",
        "sensor.mpdu_mpdu1_load_forecast_p90",
    ]
    assert "ats2: load and forecast band (P10-P90)" in bands
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


async def test_options_choose_an_area_per_lineup(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """The options form has one area field per ATS lineup (in a section): choosing one moves
    the lineup's devices there, the other lineup keeps its suggestion, and a device a person
    moves afterwards stays where they put it across reloads."""
    telemetry = init_integration.runtime_data.telemetry
    devices, areas = dr.async_get(hass), ar.async_get(hass)
    hall = areas.async_get_or_create("Hall A")

    def area_of(pid: str) -> str | None:
        device = devices.async_get(telemetry.device_id(pid) or "")
        assert device is not None
        area = areas.async_get_area(device.area_id or "")
        return None if area is None else area.name

    assert area_of("mpdu1") == "Lineup ats1"
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    section = result["data_schema"].schema[CONF_LINEUP_AREAS]
    assert sorted(str(k) for k in section.schema.schema) == ["ats1", "ats2", CONF_SUGGEST_AREAS]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {**DEFAULT_OPTIONS, CONF_LINEUP_AREAS: {CONF_SUGGEST_AREAS: True, "ats1": hall.id}},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()  # the options reload the entry
    assert init_integration.options[CONF_LINEUP_AREAS] == {"ats1": hall.id}
    telemetry = init_integration.runtime_data.telemetry
    assert {p: area_of(p) for p in ("ats1", "mpdu1", "c01", "ats2", "mpdu2", "c03")} == {
        "ats1": "Hall A",
        "mpdu1": "Hall A",
        "c01": "Hall A",
        "ats2": "Lineup ats2",
        "mpdu2": "Lineup ats2",
        "c03": "Lineup ats2",
    }
    room = areas.async_get_or_create("Room 1")
    devices.async_update_device(telemetry.device_id("c01") or "", area_id=room.id)
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    telemetry = init_integration.runtime_data.telemetry
    assert area_of("c01") == "Room 1"
    assert area_of("mpdu1") == "Hall A"
    # A form posted without the section (an API client) keeps the area options.
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], dict(DEFAULT_OPTIONS)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert init_integration.options[CONF_LINEUP_AREAS] == {"ats1": hall.id}


async def test_area_suggestions_can_be_turned_off(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """With suggestions off, no "Lineup" area is made and devices stay without one."""
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry, options={**DEFAULT_OPTIONS, CONF_SUGGEST_AREAS: False}
    )
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    telemetry = mock_config_entry.runtime_data.telemetry
    devices, areas = dr.async_get(hass), ar.async_get(hass)
    ats1 = devices.async_get(telemetry.device_id("ats1") or "")
    assert ats1 is not None
    assert ats1.area_id is None
    assert not [a for a in areas.async_list_areas() if a.name.startswith("Lineup")]
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)


def _cards(node: Any) -> list[dict[str, Any]]:
    """Every card of a view, nested ones (conditional, grid) included, in order."""
    found: list[dict[str, Any]] = []
    for card in node:
        found.append(card)
        if "card" in card:
            found += _cards([card["card"]])
        found += _cards(card.get("cards", []))
    return found


async def test_the_plant_view_says_what_is_wrong_at_a_glance(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Issue 23, item 6. The plant view opens with the plant status: a red tile for every
    critical state (failed, at risk, over the limit, no telemetry), amber for warnings, green
    only for ok, then what to do while anything is wrong; the approve button only while there
    is a proposal (a conditional card, not a large grey tile); and each element once per grid,
    under a title saying what the grid shows."""
    response = await hass.services.async_call(
        DOMAIN, "create_dashboard", {}, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    plant = response["dashboard"]["views"][0]
    top = plant["cards"]
    status = "sensor.plant_ats1_ats2_status"
    assert hass.states.get(status) is not None
    colours = {
        card["card"]["color"]: set(card["conditions"][0]["state"])
        for card in top[:3]
        if card["type"] == "conditional" and card["card"]["type"] == "tile"
    }
    assert colours == {
        "red": {"no_telemetry", "failed", "over_limit", "at_risk"},
        "amber": {"overload_forecast", "degraded", "not_answering", "migrating"},
        "green": {"ok"},
    }
    assert all(card["card"]["entity"] == status for card in top[:3])
    advice = top[3]
    assert advice["conditions"] == [{"condition": "state", "entity": status, "state_not": "ok"}]
    assert "'problems'" in advice["card"]["content"]
    buttons = [c for c in top if c["type"] == "button"]
    assert not buttons  # never a bare button: only inside a conditional
    approve = next(c for c in top if c["type"] == "conditional" and c["card"]["type"] == "button")
    assert approve["conditions"] == [
        {
            "condition": "state",
            "entity": "button.plant_ats1_ats2_approve_proposed_migration",
            "state_not": "unavailable",
        }
    ]
    grids = {c.get("title"): c for c in _cards(top) if c["type"] in ("grid", "glance")}
    risk = grids["Failure risk (red: predicted to fail or failed)"]
    assert [t["name"] for t in risk["cards"]] == ["ats1", "ats2", "mpdu1", "mpdu2"]
    assert {t["entity"].split(".")[0] for t in risk["cards"]} == {"binary_sensor"}
    health = grids["Health (%)"]
    assert [r["name"] for r in health["entities"]] == ["ats1", "ats2", "mpdu1", "mpdu2"]
    assert all(r["entity"].endswith("_health") for r in health["entities"])
