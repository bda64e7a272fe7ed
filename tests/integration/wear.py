"""A plant whose ATS-1 wears out, with its history persisted as the integration would have: for
tests of what people see during a predicted failure (repairs, proposals, blueprints)."""

from __future__ import annotations

import copy
from typing import Any

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.const import (
    CONF_POLICY_MODE,
    CONF_STEP_INTERVAL,
)
from dcp_sim.server import PlantServer

from .conftest import history_rows, plant_entry, store_history
from .test_prediction import NOW_T_S, WEAR_PLANT


def wear_plant(repair_after: str | None = None) -> dict[str, Any]:
    """WEAR_PLANT, optionally with ATS-1 repaired ``repair_after`` its failure."""
    doc = copy.deepcopy(WEAR_PLANT)
    if repair_after is not None:
        doc["events"][0]["repair_after"] = repair_after
    return doc


async def setup_worn(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    server: PlantServer,
    port: int,
    mode: str,
    step_interval: float = 0,
    *,
    settle: bool = True,
    options: dict[str, Any] | None = None,
) -> MockConfigEntry:
    """Step the served plant to NOW_T_S writing the integration's history rows, then set the
    entry up in ``mode`` (with ``options`` beyond the defaults); returns the loaded entry."""
    rows = history_rows(server, NOW_T_S)
    entry = plant_entry(
        port,
        options={CONF_STEP_INTERVAL: step_interval, CONF_POLICY_MODE: mode, **(options or {})},
        title="Plant ats1+ats2",
    )
    store_history(hass_storage, entry, rows)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    if settle:  # not while an automation waits for a phone (that would wait for its timeout)
        await hass.async_block_till_done()
    return entry
