"""Friendly names: a source's entities are named after the source (its readable id, or the name
set in the options), through the entities' translation placeholders; the states keep the ids."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.const import CONF_SOURCE_NAMES, DEFAULT_OPTIONS
from custom_components.datacenter_power.naming import readable, source_name


def test_readable_ids() -> None:
    """Separators become spaces, known abbreviations are spelled out, short parts upper case."""
    assert readable("util_a") == "Utility A"
    assert readable("gen1") == "Generator 1"
    assert readable("GEN-2") == "Generator 2"
    assert readable("feed_north") == "Feed North"
    assert readable("ups") == "UPS"
    assert readable("x") == "X"
    assert readable("__") == "__"  # nothing readable in it: the id itself
    assert source_name({CONF_SOURCE_NAMES: {"util_b": " Generator "}}, "util_b") == "Generator"
    assert source_name({CONF_SOURCE_NAMES: {"util_b": ""}}, "util_b") == "Utility B"
    assert source_name({}, "util_a") == "Utility A"


async def test_source_entities_are_named_after_the_source(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """By default "Utility A voltage", not "Source util_a voltage"; a name set in the options
    renames the entities (their ids stay), and the active source's state stays the id."""
    voltage = hass.states.get("sensor.ats_ats1_utility_b_voltage")
    assert voltage is not None
    assert voltage.name == "ATS ats1 Utility B voltage"
    available = hass.states.get("binary_sensor.ats_ats1_utility_a_available")
    assert available is not None
    assert available.name == "ATS ats1 Utility A available"

    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    names = result["data_schema"].schema[CONF_SOURCE_NAMES]
    assert sorted(str(k) for k in names.schema.schema) == ["util_a", "util_b"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {**DEFAULT_OPTIONS, CONF_SOURCE_NAMES: {"util_a": "Utility A", "util_b": "Generator"}},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()  # the options reload the entry
    assert init_integration.options[CONF_SOURCE_NAMES] == {"util_b": "Generator"}
    voltage = hass.states.get("sensor.ats_ats1_utility_b_voltage")
    assert voltage is not None
    assert voltage.name == "ATS ats1 Generator voltage"
    frequency = hass.states.get("sensor.ats_ats2_utility_b_frequency")
    assert frequency is not None
    assert frequency.name == "ATS ats2 Generator frequency"
    active = hass.states.get("sensor.ats_ats1_active_source")
    assert active is not None
    assert active.state == "util_a"  # automations use the ids
