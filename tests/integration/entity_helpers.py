"""Shared steps of the entity-platform tests: set up one platform, refresh, read states."""

from __future__ import annotations

from collections.abc import Iterator
from unittest.mock import PropertyMock, patch

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, State
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion


async def setup_platform(hass: HomeAssistant, entry: MockConfigEntry, platform: Platform) -> None:
    """Set the entry up with only ``platform`` forwarded (snapshots take one platform)."""
    entry.add_to_hass(hass)
    with patch("custom_components.datacenter_power.PLATFORMS", [platform]):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


async def refresh(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Poll the plant now (what the update interval would do) and let the states settle."""
    await entry.runtime_data.telemetry.async_refresh()
    await hass.async_block_till_done()


def state(hass: HomeAssistant, entity_id: str) -> State:
    """The entity's state; fails the test if the entity does not exist."""
    found = hass.states.get(entity_id)
    assert found is not None, f"{entity_id} does not exist"
    return found


@pytest.fixture
def entity_registry_enabled_by_default() -> Iterator[None]:
    """Every entity enabled, the ones disabled by default included (as in Home Assistant's own
    test suite, whose fixture this is)."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        return_value=True,
        new_callable=PropertyMock,
    ):
        yield


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Syrupy with Home Assistant's serializer (registry entries, states; stored in
    ``snapshots/``), as in Home Assistant's own test suite."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)
