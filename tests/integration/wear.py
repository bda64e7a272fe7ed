"""A plant whose ATS-1 wears out, with its history persisted as the integration would have: for
tests of what people see during a predicted failure (repairs, proposals, blueprints)."""

from __future__ import annotations

import copy
import time
from typing import Any

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.const import (
    CONF_POLICY_MODE,
    CONF_STEP_INTERVAL,
    DEFAULT_OPTIONS,
    DOMAIN,
)
from custom_components.datacenter_power.decisions import STORAGE_VERSION, pack_observation
from dcp_eval.harness import observation_from_telemetry, topology_from_scenario
from dcp_sim.server import PlantServer

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
    plant = server.plant
    t0 = time.time() - NOW_T_S
    topology = topology_from_scenario(plant.scenario)
    rows = []
    while plant.t_s < NOW_T_S:
        plant.advance_to(plant.t_s + 300)
        rows.append(pack_observation(observation_from_telemetry(plant.telemetry(), t0, topology)))
    server.invalidate()
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Plant ats1+ats2",
        unique_id="ats1+ats2",
        data={"host": "127.0.0.1", "port": port},
        options={
            **DEFAULT_OPTIONS,
            CONF_STEP_INTERVAL: step_interval,
            CONF_POLICY_MODE: mode,
            **(options or {}),
        },
    )
    key = f"{DOMAIN}.{entry.entry_id}.history"
    hass_storage[key] = {
        "version": STORAGE_VERSION,
        "minor_version": 1,
        "key": key,
        "data": {"history": rows},
    }
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    if settle:  # not while an automation waits for a phone (that would wait for its timeout)
        await hass.async_block_till_done()
    return entry
