"""Selects against the simulated plant: a circuit's active path and an ATS's preferred source,
through the interlocks, with the plant's telemetry following an allowed change."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from homeassistant.components.select import DOMAIN as SELECT_DOMAIN
from homeassistant.const import ATTR_ENTITY_ID, ATTR_OPTION, SERVICE_SELECT_OPTION, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
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

SURGE_AT_S = 2 * 3600


@pytest.fixture
def scenario_doc(scenario_doc: dict[str, Any]) -> dict[str, Any]:
    """The shared plant, plus 20 A more on c03 (on mpdu2, 32 A continuous limit) from 2 h."""
    scenario_doc["events"].append(
        {"kind": "load_surge", "targets": ["c03"], "at": "2h", "duration": "1h", "extra_a": 20}
    )
    scenario_doc["circuits"][2]["rating_a"] = 32
    return scenario_doc


async def _select(hass: HomeAssistant, entity_id: str, option: str) -> None:
    await hass.services.async_call(
        SELECT_DOMAIN,
        SERVICE_SELECT_OPTION,
        {ATTR_ENTITY_ID: entity_id, ATTR_OPTION: option},
        blocking=True,
    )


async def _refused(hass: HomeAssistant, entity_id: str, option: str) -> HomeAssistantError:
    with pytest.raises(HomeAssistantError) as err:
        await _select(hass, entity_id, option)
    return err.value


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_snapshot(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    """Every select of the plant, with the device's own ids as options."""
    await setup_platform(hass, mock_config_entry, Platform.SELECT)
    await snapshot_platform(hass, entity_registry, snapshot, mock_config_entry.entry_id)


async def test_path_change_moves_the_load(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
) -> None:
    """c01 moves to mpdu2 (make-before-break): the plant's currents follow, and so do the
    integration's sensors after the refresh."""
    server, _ = sim_server
    before = server.plant.telemetry()
    await _select(hass, "select.circuit_c01_active_path", "mpdu2")

    truth = server.plant.telemetry()
    assert truth.circuits["c01"].active_path == 1
    assert truth.circuits["c01"].energized
    assert truth.mpdus["mpdu2"].current_a == pytest.approx(
        before.mpdus["mpdu2"].current_a + before.circuits["c01"].current_a, abs=0.01
    )
    assert state(hass, "select.circuit_c01_active_path").state == "mpdu2"
    assert state(hass, "binary_sensor.circuit_c01_off_normal_path").state == "on"
    assert float(state(hass, "sensor.mpdu_mpdu2_current").state) == pytest.approx(
        truth.mpdus["mpdu2"].current_a, abs=0.005
    )
    snapshot = init_integration.runtime_data.telemetry.data
    assert snapshot.assignment["c01"] == "mpdu2"

    await _select(hass, "select.circuit_c01_active_path", "mpdu1")
    assert state(hass, "select.circuit_c01_active_path").state == "mpdu1"
    assert server.plant.telemetry().circuits["c01"].switch_operations == 2


async def test_path_over_the_limit_is_refused(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
) -> None:
    """With c03 surging, c01 on top would put mpdu2 above its 32 A limit: refused, by how much."""
    server, _ = sim_server
    server.advance(SURGE_AT_S + 60)
    await refresh(hass, init_integration)
    data = init_integration.runtime_data.telemetry.data
    load = data.circuit_a["c03"] + data.circuit_a["c04"] + data.circuit_a["c01"]
    assert load > 32

    err = await _refused(hass, "select.circuit_c01_active_path", "mpdu2")
    assert err.translation_key == "interlock_over_limit"
    assert err.translation_placeholders["element"] == "mpdu2"
    assert str(err) == (
        f"Refused: mpdu2 would carry {load:.1f} A, {load - 32:.1f} A above its continuous limit "
        "of 32.0 A (80 % of its rating). Nothing was sent to c01"
    )
    assert server.plant.telemetry().circuits["c01"].active_path == 0


async def test_path_to_dead_mpdu_is_refused(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
) -> None:
    """mpdu2 switched off at the device: c01 may not select it."""
    server, _ = sim_server
    server.plant.command_mpdu_output("mpdu2", False)
    server.invalidate()
    await refresh(hass, init_integration)
    amps = init_integration.runtime_data.telemetry.data.circuit_a["c01"]
    err = await _refused(hass, "select.circuit_c01_active_path", "mpdu2")
    assert err.translation_key == "interlock_path_not_energized"
    assert str(err) == (
        f"Refused: mpdu2 is not energised; selecting it as the path of c01 ({amps:.1f} A) "
        "would de-energise the circuit"
    )


async def test_preferred_source(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
) -> None:
    """ats1 (100 ms) may not transfer under critical load; ats2 (12 ms, within the 20 ms
    ride-through) may, and does."""
    server, _ = sim_server
    data = init_integration.runtime_data.telemetry.data
    err = await _refused(hass, "select.ats_ats1_preferred_source", "util_b")
    assert err.translation_key == "interlock_transfer_interrupts"
    assert err.translation_placeholders["circuits"] == "c01, c02"
    assert err.translation_placeholders["amps"] == (
        f"{data.circuit_a['c01'] + data.circuit_a['c02']:.1f}"
    )
    assert "about 100 ms" in str(err)
    assert server.plant.telemetry().ats["ats1"].preferred_source == 0

    await _select(hass, "select.ats_ats2_preferred_source", "util_a")
    assert state(hass, "select.ats_ats2_preferred_source").state == "util_a"
    assert state(hass, "sensor.ats_ats2_active_source").state == "util_a"
    truth = server.plant.telemetry().ats["ats2"]
    assert (truth.active_source, truth.transfers_total) == (1, 1)
    assert float(state(hass, "sensor.ats_ats2_last_transfer_duration").state) == pytest.approx(
        truth.last_transfer_ms
    )


async def test_commands_are_judged_one_after_the_other(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
) -> None:
    """Two commands from two platforms at once, each fitting alone under mpdu2's 32 A limit but
    not together: the second is judged on the plant as the first left it, and refused."""
    server, _ = sim_server
    server.advance(SURGE_AT_S + 60)
    await refresh(hass, init_integration)
    await hass.services.async_call(
        "switch", "turn_off", {ATTR_ENTITY_ID: "switch.circuit_c04_output"}, blocking=True
    )
    data = init_integration.runtime_data.telemetry.data
    c03, c01 = data.circuit_a["c03"], data.circuit_a["c01"]
    assert c03 + 3.0 <= 32  # c04 draws 3 A when on
    assert c03 + c01 <= 32 < c03 + 3.0 + c01

    results = await asyncio.gather(
        hass.services.async_call(
            "switch", "turn_on", {ATTR_ENTITY_ID: "switch.circuit_c04_output"}, blocking=True
        ),
        _select(hass, "select.circuit_c01_active_path", "mpdu2"),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, HomeAssistantError)]
    assert len(refused) == 1
    assert refused[0].translation_key == "interlock_over_limit"
    assert server.plant.telemetry().mpdus["mpdu2"].current_a <= 32
