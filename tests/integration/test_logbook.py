"""Logbook and device Activity, through Home Assistant's own logbook (recorder + websocket, as the
device page asks for it): a refused command says who, what and why; a requested migration says
who asked, each circuit it moved, and how it ended."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.components.recorder import Recorder
from homeassistant.const import ATTR_ENTITY_ID, SERVICE_TURN_OFF
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    async_capture_events,
)
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.datacenter_power.const import CONF_STEP_INTERVAL, DOMAIN
from custom_components.datacenter_power.events import EVENT_ACTIVITY
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer

from .wear import setup_worn, wear_plant

pytestmark = pytest.mark.usefixtures("fast_verification")


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """The recorder's database is prepared before Home Assistant starts (the logbook reads it)."""


@pytest.fixture
def plant(request: pytest.FixtureRequest, scenario_doc: dict[str, Any]) -> Plant:
    """The small plant, or (parametrized "worn") ATS-1 wearing out."""
    if getattr(request, "param", None) == "worn":
        return Plant(parse_scenario(wear_plant()), start_s=None)
    return Plant(parse_scenario(scenario_doc), start_s=0.0)


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """Migration steps back to back."""
    return {CONF_STEP_INTERVAL: 0}


async def _activity(
    hass: HomeAssistant, ws: WebSocketGenerator, entry: MockConfigEntry, plant_id: str
) -> list[dict[str, Any]]:
    """The device page's Activity of a plant device (logbook/get_events by device id)."""
    await async_wait_recording_done(hass)
    device_id = entry.runtime_data.telemetry.device_id(plant_id)
    client = await ws()
    await client.send_json_auto_id(
        {
            "type": "logbook/get_events",
            "start_time": dt_util.utcnow().replace(year=2000).isoformat(),
            "device_ids": [device_id],
        }
    )
    response = await client.receive_json()
    assert response["success"], response
    return [e for e in response["result"] if e.get("domain") == DOMAIN]


async def test_refusals_and_migrations_show_in_device_activity(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_admin_user: MockUser,
    init_integration: MockConfigEntry,
) -> None:
    """Switching off critical circuit c01 is refused: its Activity says by whom and why. A
    migration a person requests: MPDU-1's Activity says who asked and how it ended, and c01's
    that it was moved and verified. A refused action (unknown component) is written too."""
    assert await async_setup_component(hass, "logbook", {})
    context = Context(user_id=hass_admin_user.id)
    with pytest.raises(HomeAssistantError, match="critical circuit"):
        await hass.services.async_call(
            "switch", SERVICE_TURN_OFF, {ATTR_ENTITY_ID: "switch.circuit_c01_output"},
            blocking=True, context=context,
        )  # fmt: skip
    response = await hass.services.async_call(
        DOMAIN, "migrate_load", {"component": "mpdu1"}, blocking=True, return_response=True,
        context=context,
    )  # fmt: skip
    assert isinstance(response, dict)
    await init_integration.runtime_data.migrations.async_wait(response["migration_id"])
    with pytest.raises(ServiceValidationError):
        await hass.services.async_call(
            DOMAIN, "migrate_load", {"component": "mpdu1", "target": "mpdu1"}, blocking=True,
            context=context,
        )  # fmt: skip
    await hass.async_block_till_done()

    c01 = await _activity(hass, hass_ws_client, init_integration, "c01")
    refused = [e for e in c01 if e["message"].startswith("refused output off")]
    assert len(refused) == 1
    assert "critical circuit" in refused[0]["message"]
    assert refused[0]["context_user_id"] == hass_admin_user.id
    assert refused[0]["name"] == "Circuit c01"
    moved = [e for e in c01 if e["message"].startswith("moved from mpdu1 to mpdu2")]
    assert len(moved) == 1
    assert "verified" in moved[0]["message"]
    # each kind of entry has its icon (a refusal and a move are told apart at a glance)
    assert (refused[0]["icon"], moved[0]["icon"]) == ("mdi:cancel", "mdi:source-branch")

    mpdu1 = await _activity(hass, hass_ws_client, init_integration, "mpdu1")
    messages = [e["message"] for e in mpdu1]
    mid = response["migration_id"]
    started = next(e for e in mpdu1 if e["message"].startswith(f"migration {mid} (drain mpdu1)"))
    assert "requested through datacenter_power.migrate_load" in started["message"]
    assert started["context_user_id"] == hass_admin_user.id
    assert any(m.startswith(f"migration {mid} (drain mpdu1) finished") for m in messages)
    assert any(
        m.startswith("refused datacenter_power.migrate_load(") and "must differ" in m
        for m in messages
    ), messages


@pytest.mark.parametrize("plant", ["worn"], indirect=True)
async def test_automatic_actions_say_why(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """Automatic mode during ATS-1's wear: the activity says the failure was predicted (with the
    signals), that the migration started automatically and why, and how it ended."""
    events = async_capture_events(hass, EVENT_ACTIVITY)
    entry = await setup_worn(hass, hass_storage, sim_server[0], sim_server[1], "automatic")
    manager = entry.runtime_data.migrations
    assert manager.latest is not None
    await manager.async_wait(manager.latest.migration_id)
    await hass.async_block_till_done()
    ats1 = entry.runtime_data.telemetry.device_id("ats1")
    on_ats1 = [e.data for e in events if e.data["device_id"] == ats1]
    kinds = [d["type"] for d in on_ats1]
    assert kinds[0] == "failure_predicted"
    assert "contact temperature" in on_ats1[0]["message"]
    started = next(d for d in on_ats1 if d["type"] == "migration_started")
    assert "started automatically (automatic mode): " in started["message"]
    assert "migration_finished" in kinds
    moved = [e.data for e in events if e.data["type"] == "circuit_moved"]
    assert moved
    assert all(d["device_id"] != ats1 for d in moved)  # on each circuit's own device
