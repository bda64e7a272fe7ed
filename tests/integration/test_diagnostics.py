"""Diagnostics downloads of the plant and of one device (snapshots), host redacted."""

from __future__ import annotations

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
    get_diagnostics_for_device,
)
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props

from dcp_sim.server import PlantServer

# The port is the test's free port and request counts depend on timing: not part of snapshots.
VOLATILE = props("port", "request_count", "readings_age_s")


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Syrupy with Home Assistant's serializer, stored in ``snapshots/``."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


async def test_entry_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    snapshot: SnapshotAssertion,
) -> None:
    """The whole plant, with the gateway's host redacted; mpdu2 silent shows as an error."""
    sim_server[0].advance(31 * 60)
    await init_integration.runtime_data.telemetry.async_refresh()
    result = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    assert result["entry"]["data"]["host"] == "**REDACTED**"
    assert result["gateways"][0]["host"] == "**REDACTED**"
    assert result["gateways"][0]["request_count"] > 0
    assert "127.0.0.1" not in str(result)
    assert "mpdu2" in result["errors"]
    assert result == snapshot(exclude=VOLATILE)


async def test_device_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """One device: identity and reading; a device that is not the plant's says so."""
    coordinator = init_integration.runtime_data.telemetry
    registry = dr.async_get(hass)
    device = registry.async_get(coordinator.device_id("ats1") or "")
    assert device is not None
    result = await get_diagnostics_for_device(hass, hass_client, init_integration, device)
    assert result["available"] is True
    assert result["identity"]["device_type"] == "ATS"
    assert result == snapshot
    other = registry.async_get_or_create(
        config_entry_id=init_integration.entry_id, identifiers={("other", "thing")}
    )
    result = await get_diagnostics_for_device(hass, hass_client, init_integration, other)
    assert result == {"plant_id": None, "known": False}
