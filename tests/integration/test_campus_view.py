"""Issue 25, item 2: a plain campus Home Assistant (only its ``mqtt`` integration, no code of
ours) shows a hall from what the hall publishes: devices, sensors, failure risk, the open
proposal, and buttons that send the approval the hall expects. Real Home Assistant with its real
``mqtt`` integration as the campus broker user on a real Mosquitto; the hall is a paho client of
the hall's broker user publishing the integration's own discovery configs and documents."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from homeassistant.components import mqtt
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.template import Template
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.campus_discovery import element_config, hall_config
from custom_components.datacenter_power.campus_topics import HallTopics, command_payload
from dcp_campus.broker import Broker
from dcp_campus.client import Client

pytestmark = pytest.mark.usefixtures("mock_hass_config")

DASHBOARD = Path(__file__).parents[2] / "docs" / "campus-dashboard.yaml"
HALL = "hall1"
TOPICS = HallTopics(HALL)
PID = "3f2a9c1d0e"
RUN = "5b1e09c4"
ELEMENT = {
    "available": True, "load_a": 41.5, "limit_a": 64.0, "utilization_pct": 64.8,
    "forecast_peak_a": 52.3, "headroom_a": 22.5, "health_pct": 38.0, "failure_risk": "ON",
    "failure_probability": 0.91, "failed": False, "time_to_failure_h": 11.5,
    "ttf_estimate": "about 12 h",
}  # fmt: skip
HALL_DOC = {
    "elements": 1, "status": "failure_predicted", "status_detail": {"severity": "critical"},
    "headroom_a": 22.5, "tightest": "ats1", "at_risk": 1,
    "at_risk_detail": {"components": ["ats1"]}, "migration": "idle", "migration_detail": {},
    "proposal_text": "drain ats1: 3 circuits", "approval_mode": True, "run": RUN,
    "proposal": {"id": PID, "kind": "drain", "component": "ats1", "reason": "wearing",
                 "plan": ["stage 1: a01 to mpdu2"]},
}  # fmt: skip


def _dashboard_tables(hass: HomeAssistant) -> list[str]:
    """The campus dashboard's (docs/campus-dashboard.yaml) markdown cards, rendered."""
    doc = yaml.safe_load(DASHBOARD.read_text())
    cards = [c for c in doc["views"][0]["cards"] if c["type"] == "markdown"]
    return [str(Template(c["content"], hass).async_render(parse_result=False)) for c in cards]


async def _state(hass: HomeAssistant, entity_id: str, want: str) -> None:
    for _ in range(200):
        state = hass.states.get(entity_id)
        if state is not None and state.state == want:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{entity_id} is {hass.states.get(entity_id)}, not {want}")


async def test_a_plain_campus_shows_the_hall_and_its_buttons_send_the_approval(
    hass: HomeAssistant, broker: Broker, campus: MockConfigEntry
) -> None:
    """The hall's retained configs and documents become devices and entities on the campus;
    Approve sends the hall its command with the proposal id and the hall's run; ``offline``
    makes them unavailable (and a new run of the hall, until its new config comes)."""
    hall = Client(broker, HALL)
    try:
        hall.subscribe(TOPICS.command)
        hall.publish(TOPICS.discovery("ats1"), json.dumps(element_config(TOPICS, "ats1", "ATS ats1", "ATS", "0.1.0")), retain=True)  # fmt: skip
        hall.publish(TOPICS.discovery("hall"), json.dumps(hall_config(TOPICS, "Plant", "0.1.0", PID, RUN)), retain=True)  # fmt: skip
        hall.publish(TOPICS.state("ats1"), json.dumps(ELEMENT), retain=True)
        hall.publish(TOPICS.state("hall"), json.dumps(HALL_DOC), retain=True)
        hall.publish(TOPICS.availability, "online", retain=True)
        await _state(hass, "sensor.dcp_hall1_ats1_load", "41.5")
        await _state(hass, "binary_sensor.dcp_hall1_ats1_failure_risk", "on")
        await _state(hass, "sensor.dcp_hall1_ats1_forecast_peak", "52.3")
        await _state(hass, "sensor.dcp_hall1_ats1_limit", "64.0")
        await _state(hass, "sensor.dcp_hall1_ats1_headroom", "22.5")
        await _state(hass, "sensor.dcp_hall1_ats1_time_to_failure", "11.5")
        await _state(hass, "sensor.dcp_hall1_proposal_id", PID)
        await _state(hass, "sensor.dcp_hall1_status", "failure_predicted")
        proposal = hass.states.get("sensor.dcp_hall1_proposal")
        assert proposal is not None
        assert proposal.attributes["plan"] == ["stage 1: a01 to mpdu2"]
        risk = hass.states.get("binary_sensor.dcp_hall1_ats1_failure_risk")
        assert risk is not None
        assert risk.attributes["failure_probability"] == 0.91
        devices = dr.async_get(hass)
        ats = devices.async_get_device_by_identifier(
            (mqtt.DOMAIN, "dcp_hall1_ats1"), campus.entry_id
        )
        hall_device = devices.async_get_device_by_identifier(
            (mqtt.DOMAIN, "dcp_hall1_hall"), campus.entry_id
        )
        assert ats is not None
        assert hall_device is not None
        assert ats.via_device_id == hall_device.id
        assert ats.name == "hall1 ATS ats1"

        tables = _dashboard_tables(hass)
        assert (
            "| hall1 | failure_predicted | 22.5 A | 1 | idle | drain ats1: 3 circuits |"
            in tables[0]
        )
        assert "| hall1 ATS ats1 | 38.0 % | about 12 h | 41.5 A | 52.3 A | 64.0 A |" in tables[1]
        assert "| hall1 ATS ats1 | 22.5 A | 41.5 A | 64.0 A |" in tables[2]

        approve = "button.dcp_hall1_approve_proposal"
        button = hass.states.get(approve)
        assert button is not None
        assert button.state != STATE_UNAVAILABLE
        await hass.services.async_call("button", "press", {"entity_id": approve}, blocking=True)
        command = await hall.wait_for(TOPICS.command)
        assert json.loads(command.payload) == json.loads(command_payload(HALL, "approve", PID, RUN))
        pressed = hass.states.get(approve)
        assert pressed is not None

        hall.publish(TOPICS.state("hall"), json.dumps({**HALL_DOC, "run": "0badc0de"}))
        await _state(hass, approve, STATE_UNAVAILABLE)  # restarted: the old buttons are stale
        hall.publish(TOPICS.state("hall"), json.dumps(HALL_DOC))
        await _state(hass, approve, pressed.state)
        hall.publish(TOPICS.state("hall"), json.dumps({**HALL_DOC, "proposal": None}))
        await _state(hass, approve, STATE_UNAVAILABLE)  # no open proposal: nothing to press
        hall.publish(TOPICS.availability, "offline", retain=True)
        await _state(hass, "sensor.dcp_hall1_ats1_load", STATE_UNAVAILABLE)
    finally:
        hall.close()
