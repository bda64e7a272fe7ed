"""The integration uses the device registry's current API: ``async_get_device`` is deprecated
(device identifiers are no longer unique across config entries) and goes in Home Assistant
2027.8; calling it logs a deprecation report, which this test watches for."""

from __future__ import annotations

import logging

import pytest
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.activity import async_fire_activity
from custom_components.datacenter_power.const import DOMAIN
from custom_components.datacenter_power.events import EVENT_ACTIVITY


async def test_plant_activity_finds_the_plant_device_without_deprecated_calls(
    hass: HomeAssistant, init_integration: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """An activity of the whole plant (no component) goes to the plant's own device, found
    through ``async_get_device_by_identifier``; nothing reports a deprecated registry call."""
    caplog.set_level(logging.WARNING)
    seen: list[Event] = []
    hass.bus.async_listen(EVENT_ACTIVITY, seen.append)
    async_fire_activity(hass, init_integration, None, "action", "plant-wide activity")
    await hass.async_block_till_done()
    plant = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, str(init_integration.unique_id)), init_integration.entry_id
    )
    assert plant is not None
    assert [e.data["device_id"] for e in seen] == [plant.id]
    deprecated = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert not deprecated, deprecated
