"""Issue 23, item 7: the logbook and device Activity say what happened, by whom, in order.

Through the real simulator and Home Assistant: a ``restore`` is logged as a restore (it read
"drain"); a unit's failure is one sentence saying where its circuits went ("a01-a04 transferred by
their bypass to mpdu2; a05 left without power"); who dismissed a proposal is written (here an
automation); the prediction is logged before the proposal it causes; the migration sensor's path
changes count hand moves and bypass transfers too; a circuit moved on purpose is not a *Problem*.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from homeassistant.components import automation
from homeassistant.core import Context, HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    async_capture_events,
)

from custom_components.datacenter_power.const import CONF_STEP_INTERVAL, DOMAIN
from custom_components.datacenter_power.events import EVENT_ACTIVITY
from custom_components.datacenter_power.executor import MigrationState
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer

from .entity_helpers import refresh, state
from .test_faults import SUDDEN_PLANT
from .wear import setup_worn, wear_plant

pytestmark = pytest.mark.usefixtures("fast_verification")

MIGRATION = "sensor.plant_ats1_ats2_load_migration"


def _one_path_a05() -> dict[str, Any]:
    """The sudden MPDU-1 failure, with a05 wired to MPDU-1 only (left without power)."""
    doc = copy.deepcopy(SUDDEN_PLANT)
    a05 = next(c for c in doc["circuits"] if c["id"] == "a05")
    a05["paths"] = ["mpdu1"]
    a05["critical"] = False
    return doc


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """Migration steps back to back."""
    return {CONF_STEP_INTERVAL: 0}


@pytest.fixture
def plant(request: pytest.FixtureRequest, scenario_doc: dict[str, Any]) -> Plant:
    """The scenario document (default), or the worn plant ("worn")."""
    if getattr(request, "param", "doc") == "worn":
        return Plant(parse_scenario(wear_plant()), start_s=None)
    return Plant(parse_scenario(scenario_doc), start_s=0.0)


def _on(entry: MockConfigEntry, events: list[Any], plant_id: str) -> list[dict[str, Any]]:
    device_id = entry.runtime_data.telemetry.device_id(plant_id)
    return [e.data for e in events if e.data["device_id"] == device_id]


async def test_a_restore_is_logged_as_a_restore(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """mpdu1 drained, then restored: the restore's migration reads "(restore mpdu1)"; its
    circuits moved back are not a *Problem* (the off-normal-path sensor has no problem class)."""
    events = async_capture_events(hass, EVENT_ACTIVITY)
    manager = init_integration.runtime_data.migrations
    drained = await hass.services.async_call(
        DOMAIN, "migrate_load", {"component": "mpdu1"}, blocking=True, return_response=True
    )
    assert isinstance(drained, dict)
    assert (await manager.async_wait(drained["migration_id"])).state is MigrationState.COMPLETED
    off_normal = state(hass, "binary_sensor.circuit_c01_off_normal_path")
    assert off_normal.state == "on"
    assert off_normal.attributes.get("device_class") is None  # a planned move: no "Problem"
    restored = await hass.services.async_call(
        DOMAIN, "restore", {"component": "mpdu1"}, blocking=True, return_response=True
    )
    assert isinstance(restored, dict)
    mid = restored["migration_id"]
    assert (await manager.async_wait(mid)).state is MigrationState.COMPLETED
    await hass.async_block_till_done()
    messages = [d["message"] for d in _on(init_integration, events, "mpdu1")]
    started = [m for m in messages if m.startswith(f"migration {mid} ")]
    assert started, messages
    assert started[0].startswith(f"migration {mid} (restore mpdu1) requested through")
    assert not [m for m in messages if f"migration {mid} (drain" in m]
    assert state(hass, "binary_sensor.circuit_c01_off_normal_path").state == "off"


async def test_path_changes_count_hand_moves(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """c01 moved by hand (its Active path select): the migration sensor counts it."""
    await hass.services.async_call(
        "select",
        "select_option",
        {"entity_id": "select.circuit_c01_active_path", "option": "mpdu2"},
        blocking=True,
    )
    await refresh(hass, init_integration)
    assert state(hass, MIGRATION).attributes["path_changes_last_hour"] == {"c01": 1}


@pytest.mark.parametrize("scenario_doc", [_one_path_a05()])
async def test_a_failure_is_a_sentence_and_its_transfers_are_counted(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """MPDU-1 dies: its Activity says it failed, that a01-a04 were transferred by their bypass
    to mpdu2 and that a05 was left without power; the four transfers are path changes."""
    events = async_capture_events(hass, EVENT_ACTIVITY)
    sim_server[0].advance(600)
    await refresh(hass, init_integration)
    failed = [d for d in _on(init_integration, events, "mpdu1") if d["type"] == "failover"]
    assert len(failed) == 1, failed
    message = failed[0]["message"]
    assert message.startswith("mpdu1 failed (its output is dead although it is switched on")
    assert "; a01-a04 transferred by their bypass to mpdu2; a05 left without power. " in message
    assert state(hass, MIGRATION).attributes["path_changes_last_hour"] == {
        "a01": 1,
        "a02": 1,
        "a03": 1,
        "a04": 1,
    }


@pytest.mark.parametrize("plant", ["worn"], indirect=True)
async def test_who_dismissed_a_proposal_and_the_prediction_comes_first(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """Approval mode; an automation dismisses every proposal. ATS-1's Activity: the failure
    prediction, then the proposal it causes, then "dismissed by automation <its name>"."""
    events = async_capture_events(hass, EVENT_ACTIVITY)
    assert await async_setup_component(
        hass,
        automation.DOMAIN,
        {
            automation.DOMAIN: [
                {
                    "alias": "Dismiss every proposal",
                    "triggers": [{"trigger": "event", "event_type": f"{DOMAIN}_proposal"}],
                    "actions": [
                        {
                            "action": f"{DOMAIN}.dismiss_proposal",
                            "data": {"proposal_id": "{{ trigger.event.data.proposal_id }}"},
                        }
                    ],
                }
            ]
        },
    )
    server, port = sim_server
    entry = await setup_worn(hass, hass_storage, server, port, "approval")
    await hass.async_block_till_done()
    on_ats1 = _on(entry, events, "ats1")
    kinds = [d["type"] for d in on_ats1]
    assert "failure_predicted" in kinds, kinds
    assert "proposal" in kinds, kinds
    assert kinds.index("failure_predicted") < kinds.index("proposal"), kinds
    proposal = next(d for d in on_ats1 if d["type"] == "proposal")
    dismissed = [d for d in on_ats1 if d["type"] == "proposal_dismissed"]
    assert len(dismissed) == 1, [(d["type"], d["message"]) for d in on_ats1]
    assert dismissed[0]["message"] == (
        f"proposal {proposal['proposal_id']} dismissed by automation Dismiss every proposal"
    )
    assert dismissed[0]["who"] == "automation Dismiss every proposal"


@pytest.mark.parametrize("plant", ["worn"], indirect=True)
async def test_a_dismissal_from_the_phone_names_the_user(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    hass_admin_user: MockUser,
) -> None:
    """The phone's *Dismiss* (the mobile app's notification-action event, with the user of the
    phone) triggers an automation that dismisses: the entry names the automation and the user."""
    events = async_capture_events(hass, EVENT_ACTIVITY)
    assert await async_setup_component(
        hass,
        automation.DOMAIN,
        {
            automation.DOMAIN: [
                {
                    "alias": "Dismiss on the phone",
                    "triggers": [
                        {"trigger": "event", "event_type": "mobile_app_notification_action"}
                    ],
                    "actions": [
                        {
                            "action": f"{DOMAIN}.dismiss_proposal",
                            "data": {"proposal_id": "{{ trigger.event.data.proposal_id }}"},
                        }
                    ],
                }
            ]
        },
    )
    server, port = sim_server
    entry = await setup_worn(hass, hass_storage, server, port, "approval")
    proposal = next(d for d in _on(entry, events, "ats1") if d["type"] == "proposal")
    hass.bus.async_fire(
        "mobile_app_notification_action",
        {"action": "DISMISS", "proposal_id": proposal["proposal_id"]},
        context=Context(user_id=hass_admin_user.id),
    )
    await hass.async_block_till_done()
    dismissed = [d for d in _on(entry, events, "ats1") if d["type"] == "proposal_dismissed"]
    assert [d["who"] for d in dismissed] == [
        f"automation Dismiss on the phone (from the phone of {hass_admin_user.name})"
    ]
