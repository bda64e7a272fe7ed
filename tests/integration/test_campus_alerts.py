"""Issue 25: an alert goes out at once even while a measurement-only change is held back.

The hall publishes a change of measurements alone (loads, headroom) at most every 30 s per
device, and an alert (a migration starting, a proposal appearing, a failure risk, the hall's
status) within a second. Each alert here is provoked right after a poll whose measurements the
publisher is holding back (the campus has not received them 1 s later), and must reach the
broker within ``MAX_ALERT_S`` of the hall's own state change, not with the held measurements
30 s later. Real Home Assistant and ``mqtt`` integration, real Mosquitto, real simulator
(the worn plant in approval mode; MPDU-1 fails suddenly later).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.campus import is_urgent
from custom_components.datacenter_power.campus_topics import HallTopics
from custom_components.datacenter_power.const import CONF_CAMPUS_HALL, DOMAIN
from dcp_campus.broker import Broker
from dcp_campus.client import Client
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer

from .campus_hall import async_setup_mqtt
from .conftest import json_doc
from .test_prediction import NOW_T_S
from .wear import setup_worn, wear_plant

pytestmark = pytest.mark.usefixtures("fast_verification", "mock_hass_config")

LOGGER = logging.getLogger(__name__)
HALL = "hall1"
TOPICS = HallTopics(HALL)
MAX_ALERT_S = 2.0
HELD_S = 1.0
"""A measurement the campus has not received this long after the poll is held back."""
POLL_S = 120.0
"""Plant seconds between two polls here (the headroom moves)."""
FAILS_AFTER_S = 1800.0
"""MPDU-1 fails suddenly this long after the plant's start here."""


@pytest.fixture
def plant() -> Plant:
    """The worn plant (a proposal drains ATS-1) whose MPDU-1 also fails suddenly later."""
    spec = wear_plant()
    spec["events"] = [
        *copy.deepcopy(spec["events"]),
        {"kind": "sudden_failure", "target": "mpdu1", "at": f"{NOW_T_S + FAILS_AFTER_S:.0f}s"},
    ]
    return Plant(parse_scenario(spec), start_s=None)


@dataclass
class Seen:
    """When the hall's entities took each value (``time.time()``, as the state says)."""

    changes: list[tuple[str, str, float]]

    def first(self, entity_id: str, value: Callable[[str], bool], after: float) -> float | None:
        """When ``entity_id`` first took a value that ``value`` accepts, from ``after``."""
        return next(
            (at for e, v, at in self.changes if e == entity_id and at >= after and value(v)),
            None,
        )

    def value(self, entity_id: str, at: float) -> str:
        """The value ``entity_id`` took at ``at``."""
        return next(v for e, v, t in self.changes if e == entity_id and t == at)


async def _hall_change(
    seen: Seen, entity_id: str, value: Callable[[str], bool], after: float
) -> float:
    """When the hall's ``entity_id`` took such a value after ``after`` (waited for, bounded)."""
    for _ in range(200):
        if (at := seen.first(entity_id, value, after)) is not None:
            return at
        await asyncio.sleep(0.1)
    raise AssertionError(f"{entity_id} did not change as expected: {seen.changes[-5:]}")


def _entity(hass: HomeAssistant, entry: MockConfigEntry, domain: str, key: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(domain, DOMAIN, f"{entry.unique_id}:{key}")
    assert entity_id is not None, key
    return entity_id


HALL_ALERTS = ("status", "status_detail", "at_risk", "at_risk_detail", "migration",
               "migration_detail", "proposal", "proposal_text", "run", "approval_mode")  # fmt: skip
ELEMENT_ALERTS = ("available", "failure_risk", "failed")
MEASUREMENTS = {
    "hall": ("headroom_a", "tightest"),
    "mpdu1": ("load_a", "limit_a", "utilization_pct", "forecast_peak_a", "headroom_a",
              "health_pct", "time_to_failure_h", "ttf_estimate", "failure_probability"),
}  # fmt: skip


def _every_alert_field_is_urgent(hall: dict[str, Any], element: dict[str, Any]) -> None:
    """On the documents as published: a change of any alert field alone is urgent (the
    migration, the open proposal, the status, failure risk, availability...), of a measurement
    alone is not (health is one: its alert is the failure risk and the hall's status)."""
    assert set(hall) == {*HALL_ALERTS, *MEASUREMENTS["hall"], "elements"}
    assert set(element) == {*ELEMENT_ALERTS, *MEASUREMENTS["mpdu1"]}
    for slug, doc, alerts in (("hall", hall, HALL_ALERTS), ("mpdu1", element, ELEMENT_ALERTS)):
        for key in alerts:
            assert is_urgent(slug, doc, {**doc, key: "changed"}), key
        for key in MEASUREMENTS[slug]:
            assert not is_urgent(slug, doc, {**doc, key: "changed"}), key


async def _hold_a_measurement(
    hass: HomeAssistant, entry: MockConfigEntry, server: PlantServer, campus: Client
) -> None:
    """Poll until the publisher holds back the hall's new headroom (measurement only): the
    campus's hall document still shows the old one ``HELD_S`` after the poll."""
    headroom = _entity(hass, entry, "sensor", "plant:plant_headroom")
    for _ in range(10):
        server.advance(POLL_S)
        await entry.runtime_data.telemetry.async_refresh()
        await asyncio.sleep(HELD_S)
        state = hass.states.get(headroom)
        last = campus.received(TOPICS.state("hall"))[-1]
        if state is not None and json_doc(last)["headroom_a"] != round(float(state.state), 1):
            return
    raise AssertionError("no poll changed the hall's headroom without an urgent document")


async def _latency(
    campus: Client, topic: str, shows: Callable[[dict[str, Any]], bool], since: float
) -> float:
    """Seconds from ``since`` (the hall's change, wall clock) to the first document on
    ``topic`` that ``shows`` it."""
    after = time.monotonic() - (time.time() - since)
    msg = await campus.wait_for(topic, lambda m: shows(json_doc(m)), within=40, after=after)
    return msg.wall - since


async def test_each_alert_reaches_the_campus_at_once_while_measurements_are_held(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    broker: Broker,
) -> None:
    """A new proposal appearing (a person moved one of the open proposal's circuits), a
    migration starting (that proposal approved from the campus), then MPDU-1 failing (its
    failure risk, the hall's status): each right after a held-back measurement, each on the
    broker within ``MAX_ALERT_S`` of the hall's state change."""
    server, modbus_port = sim_server
    campus = Client(broker, "campus")
    try:
        campus.subscribe("dcp/#")
        await async_setup_mqtt(hass, broker, HALL)
        entry = await setup_worn(
            hass,
            hass_storage,
            server,
            modbus_port,
            "approval",
            options={CONF_CAMPUS_HALL: HALL},
        )
        pid, run = await campus.wait_for_proposal(HALL, within=60)
        _every_alert_field_is_urgent(
            json_doc(campus.received(TOPICS.state("hall"))[-1]),
            json_doc(await campus.wait_for(TOPICS.state("mpdu1"))),
        )
        migration = _entity(hass, entry, "sensor", "migration")
        proposal = _entity(hass, entry, "sensor", "plant:proposal")
        status = _entity(hass, entry, "sensor", "plant:plant_status")
        risk = _entity(hass, entry, "binary_sensor", "mpdu1:failure_risk")
        seen = Seen([])

        @callback
        def record(event: Event[EventStateChangedData]) -> None:
            new = event.data["new_state"]
            if new is None:
                return
            value = new.state
            if event.data["entity_id"] == proposal:
                value = str(new.attributes.get("proposal_id") or "none")
            seen.changes.append((event.data["entity_id"], value, new.last_updated_timestamp))

        unsubscribe = hass.bus.async_listen(EVENT_STATE_CHANGED, record)
        latencies: dict[str, float] = {}

        # A new proposal appears: a person moves one of its circuits, the rest is proposed.
        await _hold_a_measurement(hass, entry, server, campus)
        t0 = time.time()
        await hass.services.async_call(
            DOMAIN, "set_path", {"circuit": "a01", "path": "mpdu2"}, blocking=True
        )
        await entry.runtime_data.telemetry.async_refresh()
        appeared = await _hall_change(seen, proposal, lambda v: v not in ("none", pid), t0)
        new_pid = seen.value(proposal, appeared)
        latencies["proposal appearing"] = await _latency(
            campus,
            TOPICS.state("hall"),
            lambda d: (d["proposal"] or {}).get("id") == new_pid,
            appeared,
        )

        # A migration starts: that proposal approved from the campus.
        await _hold_a_measurement(hass, entry, server, campus)
        t1 = time.time()
        result, _ = await campus.command(HALL, "approve", new_pid, run)
        assert result["ok"] is True, result
        started = await _hall_change(seen, migration, lambda v: v == "running", t1)
        latencies["migration starting"] = await _latency(
            campus,
            TOPICS.state("hall"),
            lambda d: d["migration"] in ("running", "verifying", "completed"),
            started,
        )

        # MPDU-1 fails: its failure risk and the hall's status.
        await _hold_a_measurement(hass, entry, server, campus)
        before = hass.states.get(status)
        assert before is not None
        t2 = time.time()
        server.advance(NOW_T_S + FAILS_AFTER_S + 30.0 - server.plant.t_s)
        await entry.runtime_data.telemetry.async_refresh()
        on = await _hall_change(seen, risk, lambda v: v == "on", t2)
        latencies["failure risk"] = await _latency(
            campus, TOPICS.state("mpdu1"), lambda d: d["failure_risk"] == "ON", on
        )
        changed = await _hall_change(seen, status, lambda v: v != before.state, t2)
        now_status = seen.value(status, changed)
        latencies["hall status"] = await _latency(
            campus, TOPICS.state("hall"), lambda d: d["status"] == now_status, changed
        )
        unsubscribe()
        LOGGER.warning(
            "alert to broker after a held measurement: %s",
            ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in latencies.items()),
        )
        assert all(0 <= s < MAX_ALERT_S for s in latencies.values()), latencies
    finally:
        campus.close()
