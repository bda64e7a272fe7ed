"""Binary sensors against the simulated plant: live/available (``power``) and alarms
(``problem``) follow the plant."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from dcp_sim.server import PlantServer

from .entity_helpers import (
    entity_registry_enabled_by_default,
    refresh,
    setup_platform,
    snapshot,
    state,
)

__all__ = ["entity_registry_enabled_by_default", "snapshot"]  # fixtures


@pytest.fixture
def scenario_doc(scenario_doc: dict[str, Any]) -> dict[str, Any]:
    """The shared plant, plus 25 A more on c03 from 2 h: mpdu2 (32 A limit) goes over it."""
    scenario_doc["events"].append(
        {"kind": "load_surge", "targets": ["c03"], "at": "2h", "duration": "1h", "extra_a": 25}
    )
    scenario_doc["circuits"][2]["rating_a"] = 32
    return scenario_doc


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_snapshot(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    """Every binary sensor of the plant."""
    await setup_platform(hass, mock_config_entry, Platform.BINARY_SENSOR)
    await snapshot_platform(hass, entity_registry, snapshot, mock_config_entry.entry_id)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")  # the per-path sensors
async def test_power_follows_the_plant(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
) -> None:
    """mpdu2 switched off at the device: it and its paths go dead, c03 bypasses to mpdu1 (off
    its normal path), c04 (no other path) loses power."""
    server, _ = sim_server
    await setup_platform(hass, mock_config_entry, Platform.BINARY_SENSOR)
    assert state(hass, "binary_sensor.mpdu_mpdu2_output").state == STATE_ON
    assert state(hass, "binary_sensor.circuit_c03_off_normal_path").state == STATE_OFF

    server.plant.command_mpdu_output("mpdu2", False)
    server.invalidate()
    await refresh(hass, mock_config_entry)
    assert state(hass, "binary_sensor.mpdu_mpdu2_output").state == STATE_OFF
    assert state(hass, "binary_sensor.circuit_c01_path_mpdu2").state == STATE_OFF
    assert state(hass, "binary_sensor.circuit_c01_path_mpdu1").state == STATE_ON
    assert state(hass, "binary_sensor.circuit_c03_off_normal_path").state == STATE_ON
    assert state(hass, "binary_sensor.circuit_c03_energized").state == STATE_ON
    assert state(hass, "binary_sensor.circuit_c04_energized").state == STATE_OFF
    assert state(hass, "binary_sensor.ats_ats2_output").state == STATE_ON
    assert state(hass, "binary_sensor.ats_ats2_utility_b_available").state == STATE_ON


async def test_alarms_follow_the_plant(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
) -> None:
    """The surge puts mpdu2 over its continuous limit: its alarm is on, ats2's (64 A) is not;
    a silent device's alarms are unavailable, not "off"."""
    server, _ = sim_server
    await setup_platform(hass, mock_config_entry, Platform.BINARY_SENSOR)
    server.advance(31 * 60)  # mpdu2 silent from 30 to 40 min
    await refresh(hass, mock_config_entry)
    assert state(hass, "binary_sensor.mpdu_mpdu2_over_continuous_limit").state == STATE_UNAVAILABLE
    assert state(hass, "binary_sensor.mpdu_mpdu1_over_continuous_limit").state == STATE_OFF

    server.advance(2 * 3600 + 60 - 31 * 60)
    await refresh(hass, mock_config_entry)
    truth = server.plant.telemetry()
    assert truth.mpdus["mpdu2"].current_a > 32
    assert state(hass, "binary_sensor.mpdu_mpdu2_over_continuous_limit").state == STATE_ON
    assert state(hass, "binary_sensor.ats_ats2_over_continuous_limit").state == STATE_OFF
    assert state(hass, "binary_sensor.circuit_c03_breaker_tripped").state == STATE_OFF
