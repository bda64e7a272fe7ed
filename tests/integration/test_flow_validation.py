"""Every field of the config, reconfigure, gateway (subentry) and options flows refuses an
out-of-range or malformed value with an error on that field, and nothing is stored (issue 12).
A value outside a number selector's range is refused by the selector itself (``vol.Invalid``
naming the field: the frontend shows it on the field); everything else by the flow's own checks
(a translated error on the field). Real Home Assistant, real simulator."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import probatio as vol
import pytest
from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.const import (
    CONF_FORECAST_HORIZON,
    CONF_HOST,
    CONF_MAX_STEP_AMPS,
    CONF_PORT,
    CONF_SCAN_INTERVAL,
    CONF_STEP_INTERVAL,
    DOMAIN,
    SUBENTRY_GATEWAY,
)

BAD_ADDRESSES: list[tuple[str, Any]] = [
    (CONF_PORT, "nan"),
    (CONF_PORT, math.inf),
    (CONF_PORT, 25020.5),
    (CONF_PORT, 0),
    (CONF_PORT, 70000),
    (CONF_PORT, "five"),
    (CONF_HOST, ""),
    (CONF_HOST, "   "),
    (CONF_HOST, "gate way.local"),
    (CONF_HOST, "g" * 300),
]

BAD_OPTIONS: list[tuple[str, Any]] = [
    (CONF_SCAN_INTERVAL, 0),
    (CONF_SCAN_INTERVAL, 301),
    (CONF_SCAN_INTERVAL, 2.5),
    (CONF_SCAN_INTERVAL, "nan"),
    (CONF_MAX_STEP_AMPS, 0.5),
    (CONF_MAX_STEP_AMPS, 501),
    (CONF_MAX_STEP_AMPS, "inf"),
    (CONF_MAX_STEP_AMPS, "nan"),
    (CONF_STEP_INTERVAL, 9),
    (CONF_STEP_INTERVAL, 3601),
    (CONF_STEP_INTERVAL, 12.5),
    (CONF_STEP_INTERVAL, "inf"),
    (CONF_FORECAST_HORIZON, 0),
    (CONF_FORECAST_HORIZON, 169),
    (CONF_FORECAST_HORIZON, 1.5),
    (CONF_FORECAST_HORIZON, "nan"),
]

GOOD_OPTIONS = {
    CONF_SCAN_INTERVAL: 5,
    "policy_mode": "monitor",
    CONF_MAX_STEP_AMPS: 12,
    CONF_STEP_INTERVAL: 120,
    CONF_FORECAST_HORIZON: 24,
}

type Configure = Callable[[str, dict[str, Any]], Awaitable[Any]]


async def _refused_on(configure: Configure, flow_id: str, data: dict[str, Any], field: str) -> Any:
    """Submit ``data``; the refusal names ``field`` (form error or the selector's own)."""
    result: Any
    try:
        result = await configure(flow_id, data)
    except vol.Invalid as err:
        result = err
    if isinstance(result, vol.Invalid):
        assert result.path == [field], result
        return None
    assert result["type"] is FlowResultType.FORM, result
    assert result["errors"] == {field: f"invalid_{field}"}, result["errors"]
    return result


def _address(field: str, value: Any, port: int) -> dict[str, Any]:
    return {CONF_HOST: "127.0.0.1", CONF_PORT: port} | {field: value}


@pytest.mark.usefixtures("no_platforms")
@pytest.mark.parametrize(("field", "value"), BAD_ADDRESSES)
async def test_user_step_refuses_a_bad_address(
    hass: HomeAssistant, sim_server: tuple[Any, int], field: str, value: Any
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    await _refused_on(
        hass.config_entries.flow.async_configure,
        result["flow_id"],
        _address(field, value, sim_server[1]),
        field,
    )
    assert not hass.config_entries.async_entries(DOMAIN)


@pytest.mark.usefixtures("no_platforms")
@pytest.mark.parametrize(("field", "value"), BAD_ADDRESSES)
async def test_reconfigure_refuses_a_bad_address(
    hass: HomeAssistant, init_integration: MockConfigEntry, field: str, value: Any
) -> None:
    before = dict(init_integration.data)
    result = await init_integration.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    await _refused_on(
        hass.config_entries.flow.async_configure,
        result["flow_id"],
        _address(field, value, before[CONF_PORT]),
        field,
    )
    assert dict(init_integration.data) == before


@pytest.mark.usefixtures("no_platforms")
@pytest.mark.parametrize(("field", "value"), BAD_ADDRESSES)
async def test_gateway_subentry_refuses_a_bad_address(
    hass: HomeAssistant, init_integration: MockConfigEntry, field: str, value: Any
) -> None:
    manager = hass.config_entries.subentries
    result = await manager.async_init(
        (init_integration.entry_id, SUBENTRY_GATEWAY), context={"source": SOURCE_USER}
    )
    await _refused_on(
        manager.async_configure, result["flow_id"], _address(field, value, 15020), field
    )
    assert not init_integration.subentries


@pytest.mark.usefixtures("no_platforms")
@pytest.mark.parametrize(("field", "value"), BAD_OPTIONS)
async def test_options_refuse_out_of_range_values(
    hass: HomeAssistant, init_integration: MockConfigEntry, field: str, value: Any
) -> None:
    before = dict(init_integration.options)
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    refused = await _refused_on(
        hass.config_entries.options.async_configure,
        result["flow_id"],
        {**GOOD_OPTIONS, field: value},
        field,
    )
    assert dict(init_integration.options) == before
    if refused is not None:
        # The same form, fixed: accepted (the error was about that field only).
        result = await hass.config_entries.options.async_configure(refused["flow_id"], GOOD_OPTIONS)
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()
        assert init_integration.options[CONF_MAX_STEP_AMPS] == 12
