"""Sensors against the simulated plant: what they are, that they follow the plant, and that a
silent device (or one found later) is handled without a restart."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest
from homeassistant.components.sensor import ATTR_STATE_CLASS, SensorStateClass
from homeassistant.config_entries import ConfigSubentry
from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_UNAVAILABLE,
    EntityCategory,
    Platform,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from custom_components.datacenter_power.const import (
    CONF_HOST,
    CONF_PORT,
    SUBENTRY_GATEWAY,
)
from custom_components.datacenter_power.sensor import _limit_pct
from dcp_sim.server import PlantServer

from .conftest import PLANT_IDS, plant_entry, renamed, serve
from .entity_helpers import (
    entity_registry_enabled_by_default,
    refresh,
    setup_platform,
    snapshot,
    state,
)
from .modbus_proxy import ModbusProxy

__all__ = ["entity_registry_enabled_by_default", "snapshot"]  # fixtures


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_snapshot(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    """Every sensor of the plant: names, classes, units, categories and first values."""
    await setup_platform(hass, mock_config_entry, Platform.SENSOR)
    await snapshot_platform(hass, entity_registry, snapshot, mock_config_entry.entry_id)


async def test_rare_diagnostics_are_disabled_by_default(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, entity_registry: er.EntityRegistry
) -> None:
    """Ripple, phase angle, time on source and mechanism counters start disabled; the rest,
    the diagnostics that matter for wear included, start enabled."""
    await setup_platform(hass, mock_config_entry, Platform.SENSOR)
    entries = er.async_entries_for_config_entry(entity_registry, mock_config_entry.entry_id)
    disabled = {
        e.entity_id for e in entries if e.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    }
    assert {
        e
        for e in disabled
        if e.startswith(("sensor.ats_ats1_", "sensor.mpdu_mpdu1_", "sensor.circuit_c01_"))
    } == {
        "sensor.ats_ats1_output_ripple",
        "sensor.ats_ats1_phase_angle_between_sources",
        "sensor.ats_ats1_mechanism_operations",
        "sensor.ats_ats1_self_tests",
        "sensor.ats_ats1_time_on_utility_a",
        "sensor.ats_ats1_time_on_utility_b",
        "sensor.mpdu_mpdu1_output_ripple",
        "sensor.circuit_c01_active_path_reported",
        "sensor.mpdu_mpdu1_nuisance_trips",
        "sensor.circuit_c01_path_changes",
        # Off by default so that a 1,000-circuit hall stays under 10,000 enabled entities.
        "sensor.circuit_c01_voltage",
        "sensor.circuit_c01_bypass_transfers",
    }
    diagnostic = entity_registry.async_get("sensor.ats_ats1_self_test_transfer_time")
    assert diagnostic is not None
    assert diagnostic.entity_category is EntityCategory.DIAGNOSTIC
    assert diagnostic.disabled_by is None


async def test_sensors_follow_the_plant(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
) -> None:
    """An hour later the readings are the plant's, and the energy counters have counted it."""
    server, _ = sim_server
    await setup_platform(hass, mock_config_entry, Platform.SENSOR)
    power_kw = float(state(hass, "sensor.ats_ats1_load_power").state)
    energy = state(hass, "sensor.ats_ats1_energy")
    assert energy.attributes[ATTR_STATE_CLASS] == SensorStateClass.TOTAL_INCREASING
    assert energy.attributes[ATTR_UNIT_OF_MEASUREMENT] == "kWh"
    assert energy.attributes[ATTR_DEVICE_CLASS] == "energy"
    assert float(energy.state) == 0.0

    server.advance(3600)
    await refresh(hass, mock_config_entry)

    truth = server.plant.telemetry()
    assert float(state(hass, "sensor.circuit_c01_current").state) == pytest.approx(
        truth.circuits["c01"].current_a, abs=0.005
    )
    assert float(state(hass, "sensor.mpdu_mpdu2_current").state) == pytest.approx(
        truth.mpdus["mpdu2"].current_a, abs=0.005
    )
    # About one hour at the load seen an hour ago (the load moves a little with the daily cycle).
    assert float(state(hass, "sensor.ats_ats1_energy").state) == pytest.approx(power_kw, rel=0.1)
    load = float(state(hass, "sensor.ats_ats1_load_current").state)
    assert float(state(hass, "sensor.ats_ats1_load_vs_continuous_limit").state) == pytest.approx(
        100 * load / 64, abs=0.05
    )  # 80 A rating -> 64 A continuous limit
    assert state(hass, "sensor.ats_ats1_active_source").state == "util_a"
    assert float(state(hass, "sensor.environment_env1_ambient_temperature").state) == (
        pytest.approx(truth.env.ambient_c, abs=0.05)  # the register holds 0.1 degC
    )


async def test_silent_device_goes_unavailable_alone(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
) -> None:
    """mpdu2 stops answering (30-40 min): its sensors go unavailable, the rest carry on."""
    server, _ = sim_server
    await setup_platform(hass, mock_config_entry, Platform.SENSOR)
    server.advance(31 * 60)
    await refresh(hass, mock_config_entry)
    assert state(hass, "sensor.mpdu_mpdu2_current").state == STATE_UNAVAILABLE
    assert state(hass, "sensor.mpdu_mpdu2_energy").state == STATE_UNAVAILABLE
    assert state(hass, "sensor.mpdu_mpdu1_current").state != STATE_UNAVAILABLE
    assert state(hass, "sensor.circuit_c03_current").state != STATE_UNAVAILABLE

    server.advance(10 * 60)
    await refresh(hass, mock_config_entry)
    assert float(state(hass, "sensor.mpdu_mpdu2_current").state) == pytest.approx(
        server.plant.telemetry().mpdus["mpdu2"].current_a, abs=0.005
    )


async def test_device_found_later_gets_entities(
    hass: HomeAssistant, sim_server: tuple[PlantServer, int], proxy: ModbusProxy
) -> None:
    """A circuit that was not there at setup gets its sensors when a rescan finds it."""
    server, _ = sim_server
    c04 = server.unit_ids["c04"]
    proxy.faults[c04] = "absent"
    entry = plant_entry(proxy.port, title="Plant")
    await setup_platform(hass, entry, Platform.SENSOR)
    assert hass.states.get("sensor.circuit_c04_current") is None
    assert state(hass, "sensor.circuit_c03_current").state == "6.0"

    del proxy.faults[c04]
    await entry.runtime_data.telemetry.async_rescan()
    await hass.async_block_till_done()
    assert float(state(hass, "sensor.circuit_c04_current").state) == pytest.approx(
        server.plant.telemetry().circuits["c04"].current_a, abs=0.005
    )
    assert state(hass, "sensor.circuit_c04_power").state != STATE_UNAVAILABLE


async def test_state_written_only_when_it_changes(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
) -> None:
    """A refresh that changes nothing at a sensor's display resolution writes no state; one
    that does writes it."""
    server, _ = sim_server
    await setup_platform(hass, mock_config_entry, Platform.SENSOR)
    before = state(hass, "sensor.circuit_c01_current")
    energy = state(hass, "sensor.ats_ats1_energy")
    await refresh(hass, mock_config_entry)  # the plant did not move: nothing to write
    assert state(hass, "sensor.circuit_c01_current").last_reported == before.last_reported
    assert state(hass, "sensor.ats_ats1_energy").last_reported == energy.last_reported

    server.advance(3600)  # c01 has daily variation and noise: its current moves
    await refresh(hass, mock_config_entry)
    after = state(hass, "sensor.circuit_c01_current")
    assert after.last_reported > before.last_reported
    assert float(after.state) == pytest.approx(
        server.plant.telemetry().circuits["c01"].current_a, abs=0.005
    )


def test_limit_utilization_without_rating() -> None:
    """A device that reports no rating has no utilisation (rather than a division by zero)."""
    assert _limit_pct(10.0, 0.0) is None
    assert _limit_pct(32.0, 40.0) == 100.0


async def test_gateway_subentry_entities_come_and_go_with_it(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    scenario_doc: dict[str, Any],
) -> None:
    """Devices behind a second gateway get their entities under that gateway's subentry, so
    that removing the gateway removes them; adding it again brings them back."""
    doc = renamed(scenario_doc, {p: f"x{p}" for p in PLANT_IDS if p != "env1"})
    other = await serve(doc)
    gateway = ModbusProxy(other.port)
    gateway.faults[1] = "absent"  # the simulator always serves an "env1"; hide this one
    port = await gateway.start()
    coordinator = init_integration.runtime_data.telemetry

    async def add_gateway() -> str:
        subentry = ConfigSubentry(
            data=MappingProxyType({CONF_HOST: "127.0.0.1", CONF_PORT: port}),
            subentry_type=SUBENTRY_GATEWAY,
            title=f"127.0.0.1:{port}",
            unique_id=f"127.0.0.1:{port}",
        )
        assert hass.config_entries.async_add_subentry(init_integration, subentry)
        await hass.async_block_till_done()
        await coordinator.async_refresh()
        await hass.async_block_till_done()
        return subentry.subentry_id

    try:
        subentry_id = await add_gateway()
        entry = entity_registry.async_get("sensor.circuit_xc01_current")
        assert entry is not None
        assert entry.config_subentry_id == subentry_id
        own = entity_registry.async_get("sensor.circuit_c01_current")
        assert own is not None
        assert own.config_subentry_id is None

        assert hass.config_entries.async_remove_subentry(init_integration, subentry_id)
        await hass.async_block_till_done()
        await coordinator.async_refresh()
        await hass.async_block_till_done()
        assert entity_registry.async_get("sensor.circuit_xc01_current") is None
        assert hass.states.get("sensor.circuit_xc01_current") is None

        await add_gateway()
        assert float(state(hass, "sensor.circuit_xc01_current").state) == pytest.approx(
            other.plant.telemetry().circuits["xc01"].current_a, abs=0.005
        )
    finally:
        await gateway.stop()
        await other.stop()
