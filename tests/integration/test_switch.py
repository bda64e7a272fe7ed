"""Switches against the simulated plant: SBM output, MPDU output and ATS inhibit, each through the
interlocks (refused with the element and the amps, or allowed and carried out), and the device
layer's errors on command."""

from __future__ import annotations

import pytest
from homeassistant.auth.const import GROUP_ID_USER
from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.const import (
    ATTR_ENTITY_ID,
    SERVICE_TURN_OFF,
    SERVICE_TURN_ON,
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
    Platform,
)
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, Unauthorized
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    async_capture_events,
    snapshot_platform,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.datacenter_power.events import EVENT_ACTIVITY, REFUSED
from dcp_sim.server import PlantServer

from .conftest import plant_entry
from .entity_helpers import (
    entity_registry_enabled_by_default,
    refresh,
    setup_platform,
    snapshot,
    state,
)
from .modbus_proxy import ModbusProxy

__all__ = ["entity_registry_enabled_by_default", "snapshot"]  # fixtures


async def _switch(hass: HomeAssistant, entity_id: str, on: bool) -> None:
    await hass.services.async_call(
        SWITCH_DOMAIN,
        SERVICE_TURN_ON if on else SERVICE_TURN_OFF,
        {ATTR_ENTITY_ID: entity_id},
        blocking=True,
    )


async def _refused(hass: HomeAssistant, entity_id: str, on: bool) -> HomeAssistantError:
    with pytest.raises(HomeAssistantError) as err:
        await _switch(hass, entity_id, on)
    return err.value


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_snapshot(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    """Every switch of the plant."""
    await setup_platform(hass, mock_config_entry, Platform.SWITCH)
    await snapshot_platform(hass, entity_registry, snapshot, mock_config_entry.entry_id)


async def test_sbm_output(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
) -> None:
    """A non-critical circuit switches off and on; a critical one is refused, naming it."""
    server, _ = sim_server
    await _switch(hass, "switch.circuit_c04_output", False)
    assert state(hass, "switch.circuit_c04_output").state == STATE_OFF
    assert not server.plant.telemetry().circuits["c04"].output_on
    assert state(hass, "binary_sensor.circuit_c04_energized").state == STATE_OFF

    await _switch(hass, "switch.circuit_c04_output", True)
    assert state(hass, "switch.circuit_c04_output").state == STATE_ON
    assert server.plant.telemetry().circuits["c04"].output_on

    amps = init_integration.runtime_data.telemetry.data.circuit_a["c01"]
    err = await _refused(hass, "switch.circuit_c01_output", False)
    assert err.translation_key == "interlock_critical_circuit_off"
    assert str(err) == (
        f"Refused: c01 is a critical circuit drawing {amps:.1f} A; switching its output off "
        "would de-energise it"
    )
    assert server.plant.telemetry().circuits["c01"].output_on


async def test_mpdu_output(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
) -> None:
    """An MPDU feeding a critical circuit cannot be switched off; once the critical circuit has
    moved away it can (its non-critical circuit loses power), and on again."""
    server, _ = sim_server
    c03_a = init_integration.runtime_data.telemetry.data.circuit_a["c03"]
    err = await _refused(hass, "switch.mpdu_mpdu2_output", False)
    assert err.translation_key == "interlock_critical_load_on_mpdu"
    assert str(err).startswith(f"Refused: mpdu2 feeds critical circuits c03 ({c03_a:.1f} A).")
    assert server.plant.telemetry().mpdus["mpdu2"].output_on

    await hass.services.async_call(
        "select",
        "select_option",
        {ATTR_ENTITY_ID: "select.circuit_c03_active_path", "option": "mpdu1"},
        blocking=True,
    )
    await _switch(hass, "switch.mpdu_mpdu2_output", False)
    assert state(hass, "switch.mpdu_mpdu2_output").state == STATE_OFF
    assert state(hass, "binary_sensor.mpdu_mpdu2_output").state == STATE_OFF
    assert state(hass, "binary_sensor.circuit_c04_energized").state == STATE_OFF
    assert state(hass, "binary_sensor.circuit_c03_energized").state == STATE_ON
    truth = server.plant.telemetry()
    assert not truth.mpdus["mpdu2"].output_on
    assert truth.circuits["c03"].energized

    # c04 (3 A, remembered from when it drew) fits on mpdu2 again.
    await _switch(hass, "switch.mpdu_mpdu2_output", True)
    assert state(hass, "binary_sensor.circuit_c04_energized").state == STATE_ON
    assert server.plant.telemetry().circuits["c04"].current_a == pytest.approx(3.0)


async def test_ats_inhibit(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
) -> None:
    """Inhibiting is always allowed. Lifting it where the ATS would then retransfer is refused
    for a 100 ms mechanical ATS under critical load, allowed for a 12 ms one."""
    server, _ = sim_server
    for ats in ("ats1", "ats2"):
        await _switch(hass, f"switch.ats_{ats}_auto_transfer_inhibit", True)
        assert state(hass, f"switch.ats_{ats}_auto_transfer_inhibit").state == STATE_ON
        # Preferred source changed on the device itself: no transfer while inhibited.
        server.plant.command_ats_preferred_source(ats, 1)
        server.invalidate()
    await refresh(hass, init_integration)
    assert state(hass, "sensor.ats_ats1_active_source").state == "util_a"

    data = init_integration.runtime_data.telemetry.data
    amps = data.circuit_a["c01"] + data.circuit_a["c02"]
    err = await _refused(hass, "switch.ats_ats1_auto_transfer_inhibit", False)
    assert err.translation_key == "interlock_transfer_interrupts"
    assert str(err) == (
        "Refused: ats1 would transfer, interrupting its output for about 100 ms (longer than "
        f"the 20 ms ride-through) while critical circuits c01, c02 draw {amps:.1f} A through "
        "it. Move them to another path first"
    )
    assert server.plant.telemetry().ats["ats1"].inhibit

    await _switch(hass, "switch.ats_ats2_auto_transfer_inhibit", False)
    assert state(hass, "switch.ats_ats2_auto_transfer_inhibit").state == STATE_OFF
    assert state(hass, "sensor.ats_ats2_active_source").state == "util_a"
    assert server.plant.telemetry().ats["ats2"].transfers_total == 1


@pytest.fixture
async def proxied_entry(hass: HomeAssistant, proxy: ModbusProxy) -> MockConfigEntry:
    """The plant set up through the fault-injecting gateway."""
    entry = plant_entry(proxy.port, title="Plant")
    await setup_platform(hass, entry, Platform.SWITCH)
    return entry


async def test_device_errors_on_command(
    hass: HomeAssistant,
    proxied_entry: MockConfigEntry,
    proxy: ModbusProxy,
    sim_server: tuple[PlantServer, int],
) -> None:
    """A device that answers a command with an exception, or not at all, gives a translated
    error (the device's refusal is written to the activity too); the refresh after it shows the
    silent device unavailable."""
    server, _ = sim_server
    c04 = server.unit_ids["c04"]
    proxy.faults[c04] = "exception"
    activity = async_capture_events(hass, EVENT_ACTIVITY)
    err = await _refused(hass, "switch.circuit_c04_output", False)
    assert err.translation_key == "command_rejected"
    assert str(err) == "c04 refused the command (SERVER_DEVICE_FAILURE); nothing changed"
    assert server.plant.telemetry().circuits["c04"].output_on
    await hass.async_block_till_done()
    assert [
        (e.data["component"], e.data["why"]) for e in activity if e.data["type"] == REFUSED
    ] == [("c04", "the device refused it (SERVER_DEVICE_FAILURE)")]

    del proxy.faults[c04]
    await refresh(hass, proxied_entry)
    proxy.faults[c04] = "silent"
    err = await _refused(hass, "switch.circuit_c04_output", False)
    assert err.translation_key == "command_failed"
    assert str(err).startswith("The command to c04 failed: unit ")
    # The refresh after the command found c04 silent: unavailable, the others carry on.
    assert state(hass, "switch.circuit_c04_output").state == STATE_UNAVAILABLE
    assert state(hass, "switch.circuit_c03_output").state == STATE_ON
    assert server.plant.telemetry().circuits["c04"].output_on

    # Home Assistant sends nothing to an unavailable entity, even when the device answers again.
    del proxy.faults[c04]
    await _switch(hass, "switch.circuit_c04_output", False)
    assert server.plant.telemetry().circuits["c04"].output_on


async def test_only_administrators_switch(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    hass_admin_user: MockUser,
) -> None:
    """A user without administrator rights may not change the power path; an admin may."""
    server, _ = sim_server
    user = await hass.auth.async_create_user("operator", group_ids=[GROUP_ID_USER])
    with pytest.raises(Unauthorized):
        await hass.services.async_call(
            SWITCH_DOMAIN,
            SERVICE_TURN_OFF,
            {ATTR_ENTITY_ID: "switch.circuit_c04_output"},
            blocking=True,
            context=Context(user_id=user.id),
        )
    assert server.plant.telemetry().circuits["c04"].output_on

    await hass.services.async_call(
        SWITCH_DOMAIN,
        SERVICE_TURN_OFF,
        {ATTR_ENTITY_ID: "switch.circuit_c04_output"},
        blocking=True,
        context=Context(user_id=hass_admin_user.id),
    )
    assert not server.plant.telemetry().circuits["c04"].output_on
