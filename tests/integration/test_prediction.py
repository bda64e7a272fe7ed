"""Predictions in Home Assistant: a predicted failure leads to a completed migration before the
failure (automatic mode), from history the integration persisted itself."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_capture_events

from custom_components.datacenter_power.const import (
    CONF_POLICY_MODE,
    CONF_STEP_INTERVAL,
    DOMAIN,
)
from custom_components.datacenter_power.events import (
    EVENT_FAILURE_PREDICTED,
    EVENT_MIGRATION_FINISHED,
)
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer
from tests.plants import two_ats_plant

from .conftest import history_rows, plant_entry, set_up, store_history

WEAR_PLANT: dict[str, Any] = two_ats_plant(
    "wear",
    seed=5,
    ats_rating_a=100,
    mpdu_rating_a=60,
    history="2d",
    circuit_groups=[
        {
            "prefix": prefix,
            "count": 3,
            "paths": paths,
            "rating_a": 16,
            "load": {"mean_a": 5, "daily": 0.2, "noise": 0.03},
        }
        for prefix, paths in (("a", ["mpdu1", "mpdu2"]), ("b", ["mpdu2", "mpdu1"]))
    ],
    events=[{"kind": "ats_contact_wear", "target": "ats1", "onset": "1h", "failure": "16h"}],
)
"""ATS-1 wears from 1 h and fails at 16 h; mpdu2 has room for everything."""
NOW_T_S = 12 * 3600.0
"""Where the served plant stands when Home Assistant starts: 11 h into the wear."""


@pytest.fixture
def worn_plant(scenario_doc: dict[str, Any]) -> Plant:
    """WEAR_PLANT stepped from the start of its history to NOW_T_S."""
    scenario_doc.clear()
    scenario_doc.update(copy.deepcopy(WEAR_PLANT))
    return Plant(parse_scenario(scenario_doc), start_s=None)


@pytest.fixture
def plant(worn_plant: Plant) -> Plant:
    """Serve the worn plant (the history rows are written by the test)."""
    return worn_plant


async def test_predicted_failure_is_drained_before_it_happens(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
) -> None:
    """With 2 days of persisted history ending 11 h into ATS-1's contact wear, automatic mode
    alerts (failure_predicted), drains ATS-1 in verified stages, and when ATS-1 fails nothing
    is left on it: no interruption."""
    server, port = sim_server
    plant = server.plant
    rows = history_rows(server, NOW_T_S)
    entry = plant_entry(port, options={CONF_STEP_INTERVAL: 0, CONF_POLICY_MODE: "automatic"})
    store_history(hass_storage, entry, rows)
    predicted = async_capture_events(hass, EVENT_FAILURE_PREDICTED)
    finished = async_capture_events(hass, EVENT_MIGRATION_FINISHED)
    # The forecasts as the first decision published them: the drain starts at once (automatic
    # mode, no pause between stages), and a forecast reads unknown from a move until the next
    # decision, so the states read after the set-up may already be those of a moved lineup.
    first: dict[str, State] = {}

    @callback
    def _first_numeric(event: Event[EventStateChangedData]) -> None:
        state = event.data["new_state"]
        if state is not None and state.entity_id not in first:
            with contextlib.suppress(ValueError):
                float(state.state)
                first[state.entity_id] = state

    hass.bus.async_listen(EVENT_STATE_CHANGED, _first_numeric)
    assert await set_up(hass, entry)
    assert [e.data["component"] for e in predicted] == ["ats1"]
    assert predicted[0].data["signals"]
    risk = hass.states.get("binary_sensor.ats_ats1_failure_risk")
    assert risk is not None
    assert risk.state == "on"
    peak = first.get("sensor.mpdu_mpdu2_forecast_peak_load")
    assert peak is not None
    assert 10.0 < float(peak.state) < 60.0  # two days of history: a shaped forecast
    assert len(peak.attributes["forecast"]["p90"]) <= 24
    assert peak.attributes["peak_time"] > dt_util.utcnow().isoformat()
    band = [first.get(f"sensor.mpdu_mpdu2_load_forecast_{q}") for q in ("p10", "p50", "p90")]
    assert None not in band
    low, mid, high = (float(s.state) for s in band if s is not None)
    assert 0.0 <= low < mid < high <= float(peak.state)  # the band at this moment, under the peak
    health = hass.states.get("sensor.ats_ats1_health")
    assert health is not None
    assert float(health.state) < 90.0
    manager = entry.runtime_data.migrations
    while not finished:
        await manager.async_wait_progress()
    assert finished[0].data["state"] == "completed"
    assert finished[0].data["component"] == "ats1"
    tel = plant.telemetry()
    assert tel.ats["ats1"].load_current_a == 0.0
    assert tel.ats["ats2"].load_current_a <= 80.0
    with pytest.raises(ServiceValidationError) as err:  # still worn: no way back onto it
        await hass.services.async_call(
            DOMAIN, "restore", {"component": "ats1"}, blocking=True, return_response=True
        )
    assert err.value.translation_key == "component_at_risk"
    plant.advance_to(17 * 3600.0)  # past the failure
    tel = plant.telemetry()
    assert not tel.ats["ats1"].output_energized
    assert all(c.energized for c in tel.circuits.values())
    assert plant.metrics.interruptions == 0
