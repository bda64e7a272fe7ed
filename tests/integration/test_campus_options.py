"""The plant's campus hall id option (issue 25): checked in the options form, stored, cleared;
with no MQTT integration the plant runs as before and says why it is not published."""

from __future__ import annotations

import logging

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.const import CONF_CAMPUS_HALL, DEFAULT_OPTIONS


@pytest.mark.parametrize("bad", ["Hall 1", "campus", "hall/1", "-x", "h" * 33])
async def test_an_invalid_hall_id_is_refused_in_the_form(
    hass: HomeAssistant, init_integration: MockConfigEntry, bad: str
) -> None:
    """Not a topic level and broker user name (or the campus's): a field error."""
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**DEFAULT_OPTIONS, CONF_CAMPUS_HALL: bad}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_CAMPUS_HALL: "invalid_campus_hall"}
    assert CONF_CAMPUS_HALL not in init_integration.options


async def test_the_hall_id_is_stored_and_cleared_and_without_mqtt_nothing_breaks(
    hass: HomeAssistant, init_integration: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """Saved (the entry reloads, no MQTT: a warning), then cleared by an empty field."""
    caplog.set_level(logging.WARNING)
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**DEFAULT_OPTIONS, CONF_CAMPUS_HALL: " hall-a1 "}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert init_integration.options == {**DEFAULT_OPTIONS, CONF_CAMPUS_HALL: "hall-a1"}
    assert init_integration.state is ConfigEntryState.LOADED
    assert "Campus hall hall-a1: the MQTT integration is not configured" in caplog.text
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**DEFAULT_OPTIONS, CONF_CAMPUS_HALL: ""}
    )
    await hass.async_block_till_done()
    assert init_integration.options == DEFAULT_OPTIONS
