"""Issue 23, item 6: the plant view says at a glance what is wrong.

Through the real simulator and Home Assistant: the plant status sensor is red (critical) while a
unit predicted to fail still carries load, with what to do; the migration and proposal sensors
never suggest that all is done while it does (*Completed* / *None*); a failed MPDU is red on
every entity, also once it is switched off; and after a hand move a lineup's forecast follows the
new lineup within a poll instead of reading 0 A beside the measured load.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from homeassistant.const import ATTR_ENTITY_ID, SERVICE_TURN_OFF
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.const import DOMAIN
from custom_components.datacenter_power.executor import MigrationState
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer

from .conftest import plant_entry, set_up
from .entity_helpers import refresh, state
from .modbus_proxy import ModbusProxy
from .test_faults import SUDDEN_PLANT
from .wear import setup_worn, wear_plant

pytestmark = pytest.mark.usefixtures("fast_verification")

STATUS = "sensor.plant_ats1_ats2_status"
MIGRATION = "sensor.plant_ats1_ats2_load_migration"
PROPOSAL = "sensor.plant_ats1_ats2_proposed_migration"


def _no_wear() -> dict[str, Any]:
    """The worn plant's two days of history without the wear: nothing is at risk."""
    doc = copy.deepcopy(wear_plant())
    doc["events"] = []
    return doc


@pytest.fixture
def plant(request: pytest.FixtureRequest, scenario_doc: dict[str, Any]) -> Plant:
    """The worn plant (ATS-1 predicted to fail), the same plant without the wear ("healthy"),
    or the scenario document (the sudden MPDU failure)."""
    kind = getattr(request, "param", "worn")
    if kind == "doc":
        return Plant(parse_scenario(scenario_doc), start_s=0.0)
    doc = _no_wear() if kind == "healthy" else wear_plant()
    return Plant(parse_scenario(doc), start_s=None)


async def _call(hass: HomeAssistant, service: str, data: dict[str, Any]) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN, service, data, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    return response


async def test_load_on_a_unit_at_risk_is_red_and_never_looks_done(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """Monitor mode, ATS-1 predicted to fail and carrying a01-a03: the status is red and says
    what to do; the proposal sensor does not read a plain *None* nor the migration sensor
    *Idle*. After a drain ATS-1 is still red (at risk) but carries nothing; after a01 is moved
    back by hand the migration sensor does not read *Completed*."""
    server, port = sim_server
    entry = await setup_worn(hass, hass_storage, server, port, "monitor")
    status = state(hass, STATUS)
    assert status.state == "at_risk"
    assert status.attributes["severity"] == "critical"
    summary = status.attributes["summary"]
    assert summary.startswith("ats1 may fail (")
    assert "still carries a01-a03" in summary
    assert "monitor mode moves nothing; a safe plan exists" in summary
    assert status.attributes["load_at_risk"] == {"ats1": ["a01", "a02", "a03"]}
    proposal = state(hass, PROPOSAL)
    assert proposal.state == "none_at_risk"
    assert "ats1 still carries a01-a03" in proposal.attributes["why_none"]
    migration = state(hass, MIGRATION)
    assert migration.state == "load_at_risk"
    assert migration.attributes["last_state"] == "idle"

    started = await _call(hass, "migrate_load", {"component": "ats1"})
    record = await entry.runtime_data.migrations.async_wait(started["migration_id"])
    assert record.state is MigrationState.COMPLETED
    await refresh(hass, entry)
    assert state(hass, MIGRATION).state == "completed"
    assert state(hass, PROPOSAL).state == "none"
    status = state(hass, STATUS)
    assert status.state == "at_risk"  # still predicted to fail: red, but nothing on it
    assert "it carries no load" in status.attributes["summary"]
    assert status.attributes["load_at_risk"] == {}

    await _call(hass, "set_path", {"circuit": "a01", "path": "mpdu1", "force": True})
    await refresh(hass, entry)
    migration = state(hass, MIGRATION)
    assert migration.state == "load_at_risk"
    assert migration.attributes["last_state"] == "completed"
    assert migration.attributes["load_at_risk"] == {"ats1": ["a01"]}
    assert "ats1 still carries a01" in migration.attributes["why_still_there"]
    assert state(hass, PROPOSAL).state == "none_at_risk"
    assert "still carries a01" in state(hass, STATUS).attributes["summary"]


async def test_approval_mode_says_approve_the_proposal(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """Approval mode: what to do is to approve the proposal, named by its id."""
    server, port = sim_server
    entry = await setup_worn(hass, hass_storage, server, port, "approval")
    book_first = state(hass, PROPOSAL).attributes["proposal_id"]
    status = state(hass, STATUS)
    assert status.state == "at_risk"
    assert f"approve proposal {book_first}" in status.attributes["summary"]
    assert entry.runtime_data.migrations.latest is None


@pytest.mark.parametrize("plant", ["healthy"], indirect=True)
async def test_green_only_when_nothing_is_wrong(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """Nothing failed, nothing predicted, nothing over its limit: green (ok), nothing to do;
    the proposal sensor reads none and the migration sensor idle."""
    server, port = sim_server
    await setup_worn(hass, hass_storage, server, port, "approval")
    status = state(hass, STATUS)
    assert status.state == "ok"
    assert status.attributes["severity"] == "ok"
    assert status.attributes["problems"] == []
    assert state(hass, PROPOSAL).state == "none"
    assert state(hass, MIGRATION).state == "idle"


@pytest.mark.parametrize("plant", ["doc"], indirect=True)
@pytest.mark.parametrize("scenario_doc", [SUDDEN_PLANT])
async def test_a_dead_mpdu_is_red_everywhere_also_once_switched_off(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """MPDU-1 dies: the status is red (failed) with what to do; MPDU-1's failure risk is on and
    its health 0 %. Switched off afterwards (it is still broken), it stays red: it was green."""
    server = sim_server[0]
    entry = init_integration
    assert state(hass, STATUS).state == "ok"
    server.advance(600)
    await refresh(hass, entry)
    status = state(hass, STATUS)
    assert status.state == "failed"
    assert status.attributes["severity"] == "critical"
    assert status.attributes["summary"].startswith("mpdu1 has failed (")
    assert any(p.startswith("mpdu2 carries ") for p in status.attributes["problems"])
    assert state(hass, "binary_sensor.mpdu_mpdu1_failure_risk").state == "on"
    assert state(hass, "sensor.mpdu_mpdu1_health").state == "0.0"
    await hass.services.async_call(
        "switch", SERVICE_TURN_OFF, {ATTR_ENTITY_ID: "switch.mpdu_mpdu1_output"}, blocking=True
    )
    await refresh(hass, entry)
    assert not server.plant.telemetry().mpdus["mpdu1"].output_on
    assert state(hass, "binary_sensor.mpdu_mpdu1_failure_risk").state == "on"
    assert state(hass, "sensor.mpdu_mpdu1_health").state == "0.0"
    assert state(hass, STATUS).state == "failed"


@pytest.mark.parametrize("plant", ["healthy"], indirect=True)
async def test_after_a_hand_move_the_forecast_follows_the_lineup(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """MPDU-1 is drained (its forecast is 0 A: nothing on it), then a01 is moved back by hand:
    MPDU-1 measures about 5 A and its forecast must follow within a poll or two, never staying
    at 0 A beside the measured load (it waited up to 5 minutes for the next decision tick)."""
    server, port = sim_server
    entry = await setup_worn(hass, hass_storage, server, port, "monitor")
    started = await _call(hass, "migrate_load", {"component": "mpdu1"})
    record = await entry.runtime_data.migrations.async_wait(started["migration_id"])
    assert record.state is MigrationState.COMPLETED
    # the poll after the migration asks for a decision (the new lineup's forecasts)
    await refresh(hass, entry)
    await hass.async_block_till_done()
    assert not entry.runtime_data.decisions._decide_after_poll
    assert float(state(hass, "sensor.mpdu_mpdu1_load_forecast_p50").state) == 0.0
    await hass.services.async_call(
        "select",
        "select_option",
        {"entity_id": "select.circuit_a01_active_path", "option": "mpdu1"},
        blocking=True,
    )
    await hass.async_block_till_done()
    measured = float(state(hass, "sensor.mpdu_mpdu1_current").state)
    assert measured > 3.0
    keys = ("load_forecast_p10", "load_forecast_p50", "load_forecast_p90", "forecast_peak_load")
    async with asyncio.timeout(30):
        while True:
            values = [state(hass, f"sensor.mpdu_mpdu1_{k}").state for k in keys]
            assert "0.0" not in values, values  # never 0 A beside the measured load
            if "unknown" not in values:
                break
            await asyncio.sleep(0.2)
    p50 = float(state(hass, "sensor.mpdu_mpdu1_load_forecast_p50").state)
    assert 0.5 * measured < p50 < 2.0 * measured
    assert float(state(hass, "sensor.mpdu_mpdu1_forecast_peak_load").state) > 3.0


@pytest.mark.parametrize("plant", ["doc"], indirect=True)
async def test_a_plant_that_does_not_answer_is_red_not_hidden(
    hass: HomeAssistant, proxy: ModbusProxy, sim_server: tuple[PlantServer, int]
) -> None:
    """Every device behind the gateway stops answering: the status stays available and reads
    ``no_telemetry`` (critical) with what to do; green again once the plant answers."""
    entry = plant_entry(proxy.port, title="Plant ats1+ats2")
    assert await set_up(hass, entry)
    assert state(hass, STATUS).state == "ok"
    for unit in sim_server[0].unit_ids.values():
        proxy.faults[unit] = "absent"
    await refresh(hass, entry)
    status = state(hass, STATUS)
    assert status.state == "no_telemetry"
    assert status.attributes["severity"] == "critical"
    assert "every command is refused until a poll succeeds" in status.attributes["summary"]
    proxy.faults.clear()
    await refresh(hass, entry)
    assert state(hass, STATUS).state == "ok"
    assert await hass.config_entries.async_unload(entry.entry_id)
