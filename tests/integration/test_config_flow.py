"""Config flow, reconfigure flow, gateway subentry flow and options flow, against real gateways."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import Event, HomeAssistant
from homeassistant.data_entry_flow import (
    EVENT_DATA_ENTRY_FLOW_PROGRESS_UPDATE,
    FlowResultType,
    InvalidData,
)
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import translation
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.datacenter_power.const import (
    CONF_CALENDAR_ENTITY,
    CONF_DECISION_TIMEOUT,
    CONF_FORECAST_HORIZON,
    CONF_HOST,
    CONF_MAX_STEP_AMPS,
    CONF_POLICY_MODE,
    CONF_PORT,
    CONF_SCAN_INTERVAL,
    CONF_STEP_INTERVAL,
    DEFAULT_OPTIONS,
    DOMAIN,
    POLICY_MODES,
    SUBENTRY_GATEWAY,
)
from dcp_sim.server import PlantServer

from .conftest import PLANT_IDS, PLANT_UNIQUE_ID, renamed, serve
from .modbus_proxy import ModbusProxy

pytestmark = pytest.mark.usefixtures("no_platforms")

LOCAL = "127.0.0.1"


async def _run_scan(hass: HomeAssistant, result: Any, configure: Any) -> Any:
    """Follow a scan's progress step to the flow's next result."""
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["step_id"] == "scan"
    assert result["progress_action"] == "scan"
    await hass.async_block_till_done()
    return await configure(result["flow_id"])


async def _user_flow(hass: HomeAssistant, port: int) -> Any:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: LOCAL, CONF_PORT: port}
    )
    return await _run_scan(hass, result, hass.config_entries.flow.async_configure)


async def test_user_flow_scans_and_creates_entry(
    hass: HomeAssistant, sim_server: tuple[PlantServer, int]
) -> None:
    """The scan shows progress up to 100 %, then the plant is created and set up."""
    progress: list[float] = []

    def on_progress(event: Event) -> None:
        progress.append(event.data["progress"])

    hass.bus.async_listen(EVENT_DATA_ENTRY_FLOW_PROGRESS_UPDATE, on_progress)
    result = await _user_flow(hass, sim_server[1])
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"Plant {PLANT_UNIQUE_ID}"
    assert result["data"] == {CONF_HOST: LOCAL, CONF_PORT: sim_server[1]}
    assert result["options"] == DEFAULT_OPTIONS
    entry = result["result"]
    assert entry.unique_id == PLANT_UNIQUE_ID
    assert progress
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert set(entry.runtime_data.telemetry.data.identities) == set(PLANT_IDS)


async def test_user_flow_nothing_found_says_why(hass: HomeAssistant, empty_gateway: int) -> None:
    """A gateway with nothing behind it: back to the form with ``no_devices``, naming the
    scanned range; the user can then enter another gateway."""
    result = await _user_flow(hass, empty_gateway)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {"base": "no_devices"}
    assert result["description_placeholders"]["unit_ids"] == "1-247"
    assert result["description_placeholders"]["port"] == str(empty_gateway)
    assert not hass.config_entries.async_entries(DOMAIN)


async def test_user_flow_unreachable_then_fixed(
    hass: HomeAssistant, free_port: int, sim_server: tuple[PlantServer, int]
) -> None:
    """A closed port: ``connection_refused`` (not a generic failure); entering the right port
    then succeeds."""
    result = await _user_flow(hass, free_port)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "connection_refused"}
    assert result["description_placeholders"]["detail"] == "connection refused"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: LOCAL, CONF_PORT: sim_server[1]}
    )
    result = await _run_scan(hass, result, hass.config_entries.flow.async_configure)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_same_gateway_twice_aborts(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """The gateway of a configured plant is refused before any scan."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: LOCAL, CONF_PORT: init_integration.data[CONF_PORT]}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_same_plant_through_other_address_aborts(
    hass: HomeAssistant, init_integration: MockConfigEntry, scenario_doc: dict[str, Any]
) -> None:
    """The same plant reached at another address is recognised by its identity."""
    other = await serve(scenario_doc)
    try:
        result = await _user_flow(hass, other.port)
    finally:
        await other.stop()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


async def test_reconfigure_to_same_plant(
    hass: HomeAssistant, init_integration: MockConfigEntry, scenario_doc: dict[str, Any]
) -> None:
    """Moving the gateway to an address serving the same plant updates and reloads."""
    other = await serve(scenario_doc)
    try:
        result = await init_integration.start_reconfigure_flow(hass)
        assert result["type"] is FlowResultType.FORM
        assert result["step_id"] == "reconfigure"
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_HOST: LOCAL, CONF_PORT: other.port}
        )
        result = await _run_scan(hass, result, hass.config_entries.flow.async_configure)
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "gateway_moved"
        await hass.async_block_till_done()
        assert init_integration.data[CONF_PORT] == other.port
        assert init_integration.state is ConfigEntryState.LOADED
        client = init_integration.runtime_data.telemetry.client_for("ats1")
        assert client.port == other.port
        assert set(init_integration.runtime_data.telemetry.data.readings) == set(PLANT_IDS)
        await hass.config_entries.async_unload(init_integration.entry_id)
    finally:
        await other.stop()


async def test_reconfigure_to_other_plant_aborts(
    hass: HomeAssistant, init_integration: MockConfigEntry, scenario_doc: dict[str, Any]
) -> None:
    """An address serving a different plant is refused; the entry keeps its address."""
    port = init_integration.data[CONF_PORT]
    other = await serve(renamed(scenario_doc, {"ats1": "ats7"}))
    try:
        result = await init_integration.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_HOST: LOCAL, CONF_PORT: other.port}
        )
        result = await _run_scan(hass, result, hass.config_entries.flow.async_configure)
    finally:
        await other.stop()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_plant"
    assert init_integration.data[CONF_PORT] == port


async def test_reconfigure_unreachable_shows_error(
    hass: HomeAssistant, init_integration: MockConfigEntry, free_port: int
) -> None:
    """An unreachable new address returns to the reconfigure form."""
    result = await init_integration.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: LOCAL, CONF_PORT: free_port}
    )
    result = await _run_scan(hass, result, hass.config_entries.flow.async_configure)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    assert result["errors"] == {"base": "connection_refused"}


async def _subentry_flow(hass: HomeAssistant, entry: MockConfigEntry, port: int) -> Any:
    manager = hass.config_entries.subentries
    result = await manager.async_init(
        (entry.entry_id, SUBENTRY_GATEWAY), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    result = await manager.async_configure(result["flow_id"], {CONF_HOST: LOCAL, CONF_PORT: port})
    if result["type"] is FlowResultType.ABORT:
        return result
    return await _run_scan(hass, result, manager.async_configure)


async def test_subentry_adds_gateway_without_reload(
    hass: HomeAssistant, init_integration: MockConfigEntry, scenario_doc: dict[str, Any]
) -> None:
    """A second gateway's devices join the plant; removing the gateway removes them."""
    doc = renamed(scenario_doc, {p: f"x{p}" for p in PLANT_IDS if p != "env1"})
    other = await serve(doc)
    # The simulator always serves an "env1"; this gateway hides it (unit 1).
    gateway = ModbusProxy(other.port)
    gateway.faults[1] = "absent"
    port = await gateway.start()
    coordinator = init_integration.runtime_data.telemetry
    try:
        result = await _subentry_flow(hass, init_integration, port)
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["title"] == f"{LOCAL}:{port}"
        (subentry,) = init_integration.subentries.values()
        assert subentry.unique_id == f"{LOCAL}:{port}"
        await hass.async_block_till_done()
        assert "xats1" in coordinator.data.readings
        assert "ats1" in coordinator.data.readings
        assert "xc01" in coordinator.data.topology.circuits
        assert coordinator.client_for("xats1").port == port
        registry = dr.async_get(hass)
        device = registry.async_get_device_by_identifier(
            coordinator.identifier("xmpdu1"), init_integration.entry_id
        )
        assert device is not None
        assert device.config_subentry_id == subentry.subentry_id
        assert device.via_device_id == coordinator.device_id("xats1")

        # The same gateway again, as a gateway or as a plant, is refused.
        again = await _subentry_flow(hass, init_integration, port)
        assert again["type"] is FlowResultType.ABORT
        assert again["reason"] == "already_configured"

        assert hass.config_entries.async_remove_subentry(init_integration, subentry.subentry_id)
        await coordinator.async_refresh()
        assert "xats1" not in coordinator.data.identities
        assert (
            registry.async_get_device_by_identifier(
                coordinator.identifier("xmpdu1"), init_integration.entry_id
            )
            is None
        )
        assert set(coordinator.data.readings) == set(PLANT_IDS)
    finally:
        await gateway.stop()
        await other.stop()


async def test_subentry_with_devices_already_in_plant(
    hass: HomeAssistant, init_integration: MockConfigEntry, scenario_doc: dict[str, Any]
) -> None:
    """A gateway in front of devices the plant already has is refused, saying so."""
    other = await serve(scenario_doc)
    try:
        result = await _subentry_flow(hass, init_integration, other.port)
    finally:
        await other.stop()
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "devices_in_plant"}
    assert not init_integration.subentries


async def test_subentry_nothing_found(
    hass: HomeAssistant, init_integration: MockConfigEntry, empty_gateway: int
) -> None:
    """A gateway with nothing behind it is refused with ``no_devices``."""
    result = await _subentry_flow(hass, init_integration, empty_gateway)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "no_devices"}


async def test_options_flow_stores_and_reloads(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Options are stored with their types, and the poll interval takes effect."""
    hass.states.async_set("calendar.maintenance", "off")  # a calendar must exist to be chosen
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_SCAN_INTERVAL: 15,
            CONF_POLICY_MODE: "approval",
            CONF_MAX_STEP_AMPS: 25.5,
            CONF_STEP_INTERVAL: 60,
            CONF_FORECAST_HORIZON: 48,
            CONF_DECISION_TIMEOUT: 45,
            CONF_CALENDAR_ENTITY: "calendar.maintenance",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert init_integration.options == {
        CONF_SCAN_INTERVAL: 15,
        CONF_POLICY_MODE: "approval",
        CONF_MAX_STEP_AMPS: 25.5,
        CONF_STEP_INTERVAL: 60,
        CONF_FORECAST_HORIZON: 48,
        CONF_DECISION_TIMEOUT: 45,
        CONF_CALENDAR_ENTITY: "calendar.maintenance",
    }
    assert init_integration.state is ConfigEntryState.LOADED
    coordinator = init_integration.runtime_data.telemetry
    assert coordinator.update_interval is not None
    assert coordinator.update_interval.total_seconds() == 15

    # Leaving the calendar empty clears it.
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], dict(DEFAULT_OPTIONS)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert init_integration.options == DEFAULT_OPTIONS


async def test_options_flow_rejects_unknown_policy(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """The policy mode is one of monitor/approval/automatic."""
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    with pytest.raises(InvalidData) as err:
        await hass.config_entries.options.async_configure(
            result["flow_id"], {**DEFAULT_OPTIONS, CONF_POLICY_MODE: "yolo"}
        )
    assert CONF_POLICY_MODE in err.value.schema_errors
    assert init_integration.options == DEFAULT_OPTIONS


async def test_flow_over_rest_like_dev_stack(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, sim_server: tuple[PlantServer, int]
) -> None:
    """What ``scripts/develop --smoke`` does: POST the flow, POST host/port, GET while the
    scan is in progress, until the entry is created."""
    assert await async_setup_component(hass, "config", {})
    client = await hass_client()
    resp = await client.post(
        "/api/config/config_entries/flow",
        json={"handler": DOMAIN, "show_advanced_options": False},
    )
    result = await resp.json()
    assert result["type"] == "form"
    assert result["step_id"] == "user"
    flow = f"/api/config/config_entries/flow/{result['flow_id']}"
    resp = await client.post(flow, json={CONF_HOST: LOCAL, CONF_PORT: sim_server[1]})
    result = await resp.json()
    for _ in range(50):
        if result["type"] != "progress":
            break
        await hass.async_block_till_done()
        result = await (await client.get(flow)).json()
    assert result["type"] == "create_entry", result
    await hass.async_block_till_done()
    (entry,) = hass.config_entries.async_entries(DOMAIN)
    assert entry.state is ConfigEntryState.LOADED


async def test_every_flow_string_is_translated(hass: HomeAssistant) -> None:
    """Every error, abort, progress action, option and exception the flows and the coordinator
    use has its English text (custom integrations get no hassfest check of this)."""
    strings = await translation.async_get_translations(hass, "en", "config", [DOMAIN])
    sub = await translation.async_get_translations(hass, "en", "config_subentries", [DOMAIN])
    options = await translation.async_get_translations(hass, "en", "options", [DOMAIN])
    selectors = await translation.async_get_translations(hass, "en", "selector", [DOMAIN])
    exceptions = await translation.async_get_translations(hass, "en", "exceptions", [DOMAIN])
    base = f"component.{DOMAIN}"
    for key in ("cannot_connect", "cannot_resolve", "connection_refused", "connection_timeout"):
        assert f"{base}.config.error.{key}" in strings
        assert f"{base}.config_subentries.{SUBENTRY_GATEWAY}.error.{key}" in sub
    for key in ("no_devices",):
        assert f"{base}.config.error.{key}" in strings
        assert f"{base}.config_subentries.{SUBENTRY_GATEWAY}.error.{key}" in sub
    assert f"{base}.config_subentries.{SUBENTRY_GATEWAY}.error.devices_in_plant" in sub
    for key in ("already_configured", "gateway_moved", "wrong_plant"):
        assert f"{base}.config.abort.{key}" in strings
    assert f"{base}.config.progress.scan" in strings
    assert f"{base}.config_subentries.{SUBENTRY_GATEWAY}.progress.scan" in sub
    for key in DEFAULT_OPTIONS | {CONF_CALENDAR_ENTITY: None}:
        assert f"{base}.options.step.init.data.{key}" in options
    for mode in POLICY_MODES:
        assert f"{base}.selector.{CONF_POLICY_MODE}.options.{mode}" in selectors
    for key in ("gateway_unreachable", "no_devices", "no_response"):
        assert f"{base}.exceptions.{key}.message" in exceptions
