"""Plant-wide entities and what the prediction entities say when they have no number: during
ATS-1's predicted failure in approval mode the plant shows what is at risk and the proposal, and
its approve button runs it; a healthy unit's time to failure is "none"; a forecast peak that is
not known yet says why."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.executor import MigrationState
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer

from .entity_helpers import state
from .wear import setup_worn, wear_plant

pytestmark = pytest.mark.usefixtures("fast_verification")


@pytest.fixture
def plant(request: pytest.FixtureRequest, scenario_doc: dict[str, Any]) -> Plant:
    """The worn plant, or (parametrized "doc") the small plant at t=0."""
    if getattr(request, "param", "worn") == "doc":
        return Plant(parse_scenario(scenario_doc), start_s=0.0)
    return Plant(parse_scenario(wear_plant()), start_s=None)


async def test_plant_shows_risk_and_proposal_and_the_button_approves(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """Approval mode during ATS-1's wear: components at risk = 1 (ats1), the proposed
    migration names it, the approve button is available and pressing it drains ATS-1."""
    server, port = sim_server
    entry = await setup_worn(hass, hass_storage, server, port, "approval")
    at_risk = state(hass, "sensor.plant_ats1_ats2_components_at_risk")
    assert at_risk.state == "1"
    assert at_risk.attributes["components"] == ["ats1"]
    proposal = state(hass, "sensor.plant_ats1_ats2_proposed_migration")
    assert proposal.state.startswith("migrate ats1:")
    assert "Stage 1" in proposal.attributes["plan"]
    load = float(state(hass, "sensor.plant_ats1_ats2_total_load").state)
    assert load == pytest.approx(
        sum(a.load_current_a for a in server.plant.telemetry().ats.values()), abs=0.05
    )
    headroom = state(hass, "sensor.plant_ats1_ats2_headroom")
    assert float(headroom.state) < 48.0  # the MPDUs' 48 A limits carry ~15 A each
    assert headroom.attributes["tightest"] in ("mpdu1", "mpdu2")
    assert (
        state(hass, "sensor.plant_ats1_ats2_load_migration").attributes.get("entity_category")
        is None
    )
    ttf = state(hass, "sensor.ats_ats1_time_to_failure_hours")
    assert 0.0 < float(ttf.state) < 24.0  # within the forecast horizon
    assert state(hass, "sensor.ats_ats2_time_to_failure_hours").state == "none"
    button = state(hass, "button.plant_ats1_ats2_approve_proposed_migration")
    assert button.state != "unavailable"
    await hass.services.async_call(
        "button", "press", {"entity_id": button.entity_id}, blocking=True
    )
    manager = entry.runtime_data.migrations
    assert manager.latest is not None
    record = await manager.async_wait(manager.latest.migration_id)
    assert record.state is MigrationState.COMPLETED
    assert server.plant.telemetry().ats["ats1"].load_current_a == 0.0


@pytest.mark.parametrize("plant", ["doc"], indirect=True)
async def test_no_peak_yet_says_why_and_monitor_mode_offers_no_approval(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """No history yet: the forecast peak is unknown with the reason; in monitor mode the
    approve button is unavailable and the proposal sensor reads none."""
    peak = state(hass, "sensor.mpdu_mpdu1_forecast_peak_load")
    assert peak.state == "unknown"
    assert "learning the daily load shape" in peak.attributes["forecast_status"] or (
        "no forecast yet" in peak.attributes["forecast_status"]
    )
    assert state(hass, "sensor.ats_ats1_time_to_failure_hours").state == "none"
    assert state(hass, "button.plant_ats1_ats2_approve_proposed_migration").state == "unavailable"
    assert state(hass, "sensor.plant_ats1_ats2_proposed_migration").state == "none"
