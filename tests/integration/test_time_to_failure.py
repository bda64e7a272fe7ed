"""The time-to-failure sensor against the real simulator: during ATS-1's wear it shows the
conservative figure (the 10th percentile, what plans use) with the 10th/50th/90th percentiles as
attributes; once ATS-1 has failed it shows 0 with ``failed: true`` and no forecast; a healthy
unit shows ``none`` throughout."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er

from custom_components.datacenter_power.const import DOMAIN
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer

from .entity_helpers import state
from .test_prediction import NOW_T_S
from .wear import setup_worn, wear_plant

FAILURE_T_S = 16 * 3600.0
"""ATS-1 fails 16 h into the served plant (wear_plant)."""


@pytest.fixture
def plant() -> Plant:
    """ATS-1 wearing out (not repaired)."""
    return Plant(parse_scenario(wear_plant()), start_s=None)


def _sensor(hass: HomeAssistant, component: str, key: str, domain: str = "sensor") -> State:
    """The entity by its unique id (names and entity ids are another issue's)."""
    entity_id = er.async_get(hass).async_get_entity_id(
        domain, DOMAIN, f"ats1+ats2:{component}:{key}"
    )
    assert entity_id is not None, f"no {key} entity for {component}"
    return state(hass, entity_id)


async def test_time_to_failure_is_conservative_then_shows_the_failure(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """4 h before ATS-1 fails: a number of hours (its P10), P10 <= P50 <= P90 as attributes,
    the band holding the true 4 h and the median nearer to it than the elapsed 11 h of wear;
    after the failure: 0, ``failed: true``, no percentiles, and the failure-risk sensor's time
    to failure 0. ATS-2 stays ``none``."""
    server, port = sim_server
    entry = await setup_worn(hass, hass_storage, server, port, "monitor")
    truth_h = (FAILURE_T_S - NOW_T_S) / 3600.0
    ttf = _sensor(hass, "ats1", "time_to_failure")
    attrs = ttf.attributes
    assert attrs["failed"] is False
    p10, p50, p90 = attrs["p10_h"], attrs["p50_h"], attrs["p90_h"]
    assert 0.0 < p10 <= p50 <= p90
    assert float(ttf.state) == p10
    assert p10 <= truth_h <= p90
    assert abs(p50 - truth_h) < abs(11.0 - truth_h)
    assert "possibly within" in attrs["estimate"]
    healthy = _sensor(hass, "ats2", "time_to_failure")
    assert healthy.state == "none"
    assert healthy.attributes["failed"] is False

    server.advance(FAILURE_T_S + 1800.0 - server.plant.t_s)
    assert not server.plant.telemetry().ats["ats1"].output_energized
    await entry.runtime_data.telemetry.async_refresh()
    await entry.runtime_data.decisions.async_refresh()
    await hass.async_block_till_done()
    ttf = _sensor(hass, "ats1", "time_to_failure")
    assert ttf.state == "0"
    assert ttf.attributes["failed"] is True
    assert ttf.attributes["estimate"] == "failed"
    assert "p50_h" not in ttf.attributes
    risk = _sensor(hass, "ats1", "failure_risk", "binary_sensor")
    assert risk.attributes["time_to_failure_h"] == 0.0
    healthy = _sensor(hass, "ats2", "time_to_failure")
    assert healthy.state == "none"
    assert healthy.attributes["failed"] is False
