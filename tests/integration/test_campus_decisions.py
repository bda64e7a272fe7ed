"""A hall's open decision (a person asked to choose: no plan is safe) on the campus, answered
from there as an approval is: the decision document reaches the campus within 2 s of the
question being raised, an answer names the decision, its choice and the hall's run and runs
through ``datacenter_power.answer_decision`` (the question closes), and an answer with a stale
run, a choice not offered or to a question already answered is refused with the reason on the
result topic. Real Home Assistant and ``mqtt`` integration, real Mosquitto, real simulator
(the tight wear plant in approval mode: ATS-1 wears and mpdu2 cannot take all of its load).
The campus side: a plain campus Home Assistant shows the decision and its answer buttons send
exactly the answer the hall expects."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers.template import Template
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.datacenter_power.campus import is_urgent
from custom_components.datacenter_power.campus_discovery import hall_config
from custom_components.datacenter_power.campus_topics import HallTopics
from custom_components.datacenter_power.const import CONF_CAMPUS_HALL
from custom_components.datacenter_power.events import EVENT_DECISION_NEEDED
from custom_components.datacenter_power.executor import MigrationState
from dcp_campus.broker import Broker
from dcp_campus.client import Client, Message
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer
from tests.plants import tight_wear_plant

from .campus_hall import async_setup_mqtt
from .conftest import json_doc
from .wear import setup_worn

pytestmark = pytest.mark.usefixtures("fast_verification", "mock_hass_config")

LOGGER = logging.getLogger(__name__)
HALL = "hall1"
TOPICS = HallTopics(HALL)
DECISION = TOPICS.state("hall/decision")
"""The hall's decision document (spelled out: the test names the topic contract)."""
SETUP_TIMEOUT_S = 60.0
MAX_ALERT_S = 2.0
DASHBOARD = Path(__file__).parents[2] / "docs" / "campus-dashboard.yaml"


@pytest.fixture
def plant() -> Plant:
    """The tight wear plant (the question comes up at 12 h)."""
    return Plant(parse_scenario(tight_wear_plant()), start_s=None)


def _shows(msg: Message, did: str | None) -> bool:
    """Whether the decision document ``msg`` shows decision ``did`` (None: none open)."""
    return (json_doc(msg).get("decision") or {}).get("id") == did


async def _press(client: Client, config: dict[str, Any], button: str) -> dict[str, Any]:
    """Send what the campus button ``button`` of the hall's ``config`` sends when pressed; the
    hall's result for it."""
    component = config["components"][button]
    t0 = time.monotonic()
    client.publish(component["command_topic"], component["payload_press"])
    sent = json.loads(component["payload_press"])
    msg = await client.wait_for(
        TOPICS.result,
        lambda m: (
            json_doc(m).get("decision_id") == sent["decision_id"]
            and json_doc(m).get("choice") == sent["choice"]
        ),
        after=t0,
    )
    return json_doc(msg)


async def test_a_decision_reaches_the_campus_and_is_answered_from_there(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    broker: Broker,
    campus_client: Client,
) -> None:
    """The open decision with its choices and their summaries, and an answer button per choice
    naming it; a stale run and a choice not offered are refused with the reason, nothing moves;
    "Answer: partial drain" runs ``answer_decision`` (a verified migration) and the question
    closes, on the campus too; answering it again is refused as stale; the question the engine
    then asks about the rest reaches the campus within 2 s."""
    server, modbus_port = sim_server
    needed = async_capture_events(hass, EVENT_DECISION_NEEDED)
    async with asyncio.timeout(SETUP_TIMEOUT_S):
        await async_setup_mqtt(hass, broker, HALL)
        entry = await setup_worn(
            hass, hass_storage, server, modbus_port, "approval", options={CONF_CAMPUS_HALL: HALL}
        )
    book = entry.runtime_data.questions
    ((did, q),) = book.current.items()
    shown = json_doc(await campus_client.wait_for(DECISION, lambda m: _shows(m, did), within=30))
    run = shown["run"]
    hall = json_doc(await campus_client.wait_for(TOPICS.state("hall")))
    assert hall["run"] == run
    keys = ["drain_now", "keep_load", "partial_drain", "shed:b03"]
    assert shown["decision"]["element"] == "ats1"
    assert shown["decision"]["title"] == "Decision needed at ats1"
    assert shown["decision"]["choice_keys"] == keys
    assert shown["decision"]["fallback"] == "partial_drain"
    assert shown["mode"] == "approval"
    assert shown["open"] == [{"id": did, "element": "ats1"}]
    # Which decision, its choices, the run and the mode are alerts; its numbers (the reason,
    # the deadline, the summaries: refreshed at every plan) are held like measurements.
    assert set(shown) == {"run", "mode", "decision", "detail", "open"}
    for key in ("run", "mode", "decision", "open"):
        assert is_urgent("hall/decision", shown, {**shown, key: "changed"}), key
    assert not is_urgent("hall/decision", shown, {**shown, "detail": {"reason": "changed"}})
    detail = shown["detail"]
    assert detail["reason"] == q.reason
    assert detail["deadline"].endswith("+00:00")
    assert [c["key"] for c in detail["choices"]] == keys
    assert detail["choices"][0]["summary"].startswith("Drain now: all 3 circuits move off ats1")
    assert detail["choices"][3]["title"] == "Shed b03"

    config = json_doc(
        await campus_client.wait_for(TOPICS.discovery("hall"), lambda m: did in m.text, within=5)
    )
    buttons = config["components"]
    assert json.loads(buttons["answer_shed"]["payload_press"]) == {
        "hall": HALL, "action": "answer", "decision_id": did, "choice": "shed:b03", "run": run,
    }  # fmt: skip
    assert buttons["answer_keep_load"]["default_entity_id"] == "button.dcp_hall1_answer_keep_load"

    stale, _ = await campus_client.answer(HALL, did, "keep_load", "00000000")
    assert stale["ok"] is False, stale
    assert f"the hall restarted since decision {did} was shown" in stale["reason"]
    unknown, _ = await campus_client.answer(HALL, did, "shed:a01", run)
    assert unknown["ok"] is False, unknown
    assert f'Decision {did} does not offer "shed:a01"' in unknown["reason"]
    assert "it offers: drain_now, keep_load, partial_drain, shed:b03" in unknown["reason"]
    assert did in book.current
    manager = entry.runtime_data.migrations
    assert not manager.records

    t0 = time.monotonic()
    result = await _press(campus_client, config, "answer_partial_drain")
    assert result["ok"] is True, result
    assert (result["action"], result["run"]) == ("answer", run)
    record = await manager.async_wait(result["migration_id"])
    assert record.state is MigrationState.COMPLETED, record.reason
    assert did not in book.current
    assert book.closed[did].startswith("answered by a person: partial_drain")
    partial = q.choice("partial_drain")
    assignment = entry.runtime_data.telemetry.data.assignment
    assert all(assignment[c] == "mpdu2" for c in partial.moved)
    closed = await campus_client.wait_for(
        DECISION, lambda m: not _shows(m, did), after=t0, within=MAX_ALERT_S
    )
    assert json_doc(closed)["run"] == run
    again, _ = await campus_client.answer(HALL, did, "partial_drain", run)
    assert again["ok"] is False, again
    assert f"Decision {did} can no longer be answered: answered by a person" in again["reason"]

    # What is left on ats1 is asked next (another id): on the campus within 2 s.
    before = len(needed)
    await entry.runtime_data.telemetry.async_refresh()
    await entry.runtime_data.decisions.async_refresh()
    await hass.async_block_till_done()
    assert len(needed) == before + 1, [e.data["decision_id"] for e in needed]
    raised = needed[-1]
    rest = raised.data["decision_id"]
    assert rest != did
    after = time.monotonic() - (time.time() - raised.time_fired_timestamp)
    msg = await campus_client.wait_for(DECISION, lambda m: _shows(m, rest), after=after, within=10)
    latency_s = msg.wall - raised.time_fired_timestamp
    LOGGER.warning("decision raised to campus: %.0f ms", latency_s * 1000)
    assert 0 <= latency_s < MAX_ALERT_S
    assert json_doc(msg)["decision"]["choice_keys"] == raised.data["choice_keys"]


# -- the campus side: a plain campus Home Assistant ------------------------------------------------

DID = "9c0ffee123"
RUN = "5b1e09c4"
KEYS = ["drain_now", "keep_load", "partial_drain", "shed:b03"]
CHOICES = [
    {"key": "drain_now", "title": "Drain now", "summary": "Drain now: all 3 circuits move off ats1; at the P90 mpdu2 up to 2.1 A (6 %) above its 33.6 A limit for 3.0 h."},
    {"key": "keep_load", "title": "Keep the load", "summary": "Keep the load: nothing moves; 3 circuits (2 critical), 15.2 A, are interrupted if ats1 fails before 2.5 h from now."},
    {"key": "partial_drain", "title": "Partial drain", "summary": "Partial drain: 2 circuits (10.1 A) move within every limit; 1 (5.1 A) left on ats1."},
    {"key": "shed:b03", "title": "Shed b03", "summary": "Shed b03 (non-critical, 5.0 A): it is switched off, then all 3 circuits on ats1 move within every limit."},
]  # fmt: skip
DECISION_DOC: dict[str, Any] = {
    "run": RUN,
    "mode": "approval",
    "decision": {
        "id": DID, "element": "ats1", "title": "Decision needed at ats1",
        "fallback": "partial_drain", "answer_by": None, "choice_keys": KEYS,
        "choices": [{"key": c["key"], "title": c["title"]} for c in CHOICES],
    },
    "detail": {
        "decision_id": DID, "element": "ats1", "reason": "ats1 wears: drain before 21:40",
        "deadline": "2026-12-06T21:40:00+00:00", "answer_by": None, "fallback": "partial_drain",
        "rule": "Nothing moves beyond what fits within the limits until someone answers.",
        "choices": CHOICES,
    },
    "open": [{"id": DID, "element": "ats1"}],
}  # fmt: skip


async def _state(hass: HomeAssistant, entity_id: str, want: str) -> None:
    for _ in range(200):
        state = hass.states.get(entity_id)
        if state is not None and state.state == want:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{entity_id} is {hass.states.get(entity_id)}, not {want}")


async def _available(hass: HomeAssistant, entity_id: str, available: bool) -> None:
    for _ in range(200):
        state = hass.states.get(entity_id)
        if state is not None and (state.state != STATE_UNAVAILABLE) == available:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{entity_id} is {hass.states.get(entity_id)}")


async def test_a_plain_campus_shows_the_decision_and_its_buttons_send_the_answer(
    hass: HomeAssistant, broker: Broker, campus: MockConfigEntry
) -> None:
    """The decision sensor (state: what is asked; attributes: the choices with their summaries),
    its id, an answer button per choice offered (unavailable for one not offered, after a
    restart of the hall, in monitor mode and once no decision is open), a press that sends the
    answer the hall expects, a refusal shown as the last command, and the dashboard's table of
    open decisions."""
    hall = Client(broker, HALL)
    try:
        hall.subscribe(TOPICS.command)
        offered = [k for k in KEYS if k != "drain_now"]
        config = hall_config(TOPICS, "Plant", "0.1.0", None, RUN, decision_id=DID, choices=offered)
        hall.publish(TOPICS.discovery("hall"), json.dumps(config), retain=True)
        choices = [c for c in CHOICES if c["key"] in offered]
        doc = {
            **DECISION_DOC,
            "decision": {**DECISION_DOC["decision"], "choice_keys": offered},
            "detail": {**DECISION_DOC["detail"], "choices": choices},
        }
        hall.publish(DECISION, json.dumps(doc), retain=True)
        hall.publish(TOPICS.availability, "online", retain=True)
        await _state(hass, "sensor.dcp_hall1_decision", "Decision needed at ats1")
        await _state(hass, "sensor.dcp_hall1_decision_id", DID)
        sensor = hass.states.get("sensor.dcp_hall1_decision")
        assert sensor is not None
        assert sensor.attributes["choices"] == choices  # with their summaries
        assert sensor.attributes["reason"] == "ats1 wears: drain before 21:40"
        assert sensor.attributes["open"] == [{"id": DID, "element": "ats1"}]
        shed = "button.dcp_hall1_answer_shed"
        await _available(hass, shed, True)
        await _available(hass, "button.dcp_hall1_answer_keep_load", True)
        await _available(hass, "button.dcp_hall1_answer_drain_now", False)  # not offered

        tables = _dashboard_tables(hass)
        assert (
            "| hall1 | Decision needed at ats1 | Keep the load, Partial drain, Shed b03 |"
            in tables[3]
        )

        await hass.services.async_call("button", "press", {"entity_id": shed}, blocking=True)
        command = await hall.wait_for(TOPICS.command)
        assert json.loads(command.payload) == {
            "hall": HALL, "action": "answer", "decision_id": DID, "choice": "shed:b03", "run": RUN,
        }  # fmt: skip

        refused = {"hall": HALL, "ok": False, "action": "answer", "decision_id": DID,
                   "choice": "shed:b03", "run": RUN,
                   "reason": f"Decision {DID} can no longer be answered: no longer asked"}  # fmt: skip
        hall.publish(TOPICS.result, json.dumps(refused), retain=True)
        await _state(hass, "sensor.dcp_hall1_last_command", "refused")
        last = hass.states.get("sensor.dcp_hall1_last_command")
        assert last is not None
        assert last.attributes["reason"] == refused["reason"]

        hall.publish(DECISION, json.dumps({**doc, "run": "0badc0de"}))
        await _available(hass, shed, False)  # the hall restarted: the buttons are stale
        hall.publish(DECISION, json.dumps(doc))
        await _available(hass, shed, True)
        hall.publish(DECISION, json.dumps({**doc, "mode": "monitor"}))
        await _available(hass, shed, False)  # monitor mode refuses answers
        hall.publish(DECISION, json.dumps({**doc, "decision": None, "detail": {}, "open": []}))
        await _available(hass, shed, False)  # no open decision: nothing to answer
        await _state(hass, "sensor.dcp_hall1_decision", "none")
        await _state(hass, "sensor.dcp_hall1_decision_id", "none")
    finally:
        hall.close()


def _dashboard_tables(hass: HomeAssistant) -> list[str]:
    """The campus dashboard's (docs/campus-dashboard.yaml) markdown cards, rendered."""
    doc = yaml.safe_load(DASHBOARD.read_text())
    cards = [c for c in doc["views"][0]["cards"] if c["type"] == "markdown"]
    return [str(Template(c["content"], hass).async_render(parse_result=False)) for c in cards]
