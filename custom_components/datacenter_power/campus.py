"""A hall on the campus: this plant published over MQTT, and approvals from the campus.

Enabled by the ``campus_hall`` option (the hall's id) when Home Assistant's own ``mqtt``
integration is set up. The hall publishes, through that integration's client, retained MQTT
discovery configs (``campus_discovery.py``) and one retained JSON state document per ATS, MPDU
and the hall (``campus_state.py``, read from this integration's entities), one of its open
decisions (read from the plant's question book: a person asked to choose), and its availability
(``online`` now, ``offline`` when unloaded; the MQTT client's last will says ``offline`` when the
hall dies: configure the mqtt entry's will on the same topic, docs/scaling.md). It reads only its
command topic (``campus_commands.py``). Each start of the publisher (a reload, a restart) is a new
``run``, published with the open proposal and decision: a command must name it.

Publishing follows state changes, not polls: a poll's burst of changes is coalesced, a document
is sent only when it changed, a change of availability, failure risk, proposal or migration at
once (at most once a second per device), and a change of measurements only (loads, headroom,
forecasts, health) at most once per ``MEASUREMENT_INTERVAL`` per device. The decision document
follows the decision coordinator (each plan) and the answers: a decision raised, answered or
closed, or a change of the choices offered, is an alert; a change of its numbers only (reason,
deadline, the choices' summaries) a measurement. After the broker comes back, everything is
published again.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from homeassistant.core import CALLBACK_TYPE, Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_call_later, async_track_state_change_event
from homeassistant.loader import async_get_integration

from .campus_commands import async_handle_command
from .campus_discovery import HALL_SLUG, element_config, hall_config
from .campus_state import (
    HallEntities,
    decision_document,
    element_document,
    hall_document,
    hall_entities,
)
from .campus_topics import DECISION_SLUG, OFFLINE, ONLINE, HallTopics, device_slug, valid_hall
from .const import CONF_CAMPUS_HALL, DOMAIN, LOGGER
from .events import DECISION_ANSWERED, DECISION_NEEDED, EVENT_ACTIVITY
from .runtime import DataCenterPowerConfigEntry

if TYPE_CHECKING:
    from homeassistant.components.mqtt import ReceiveMessage

MEASUREMENT_INTERVAL: Final = 30.0
"""Seconds between two documents of one device that differ only in measurements."""
URGENT_INTERVAL: Final = 1.0
"""Seconds between two documents of one device when what changed is urgent."""
COALESCE_S: Final = 0.25
"""Changes within this time (one poll's state writes) go out as one document per device."""
SUBSCRIBE_TIMEOUT_S: Final = 10.0
"""How long the first publication waits for the broker to confirm the command subscription."""
REBUILD_DELAY_S: Final = 2.0
"""Entity registry changes (devices found by a rescan) are followed after this pause."""
ELEMENT_MEASUREMENTS: Final = frozenset(
    {"load_a", "utilization_pct", "forecast_peak_a", "headroom_a", "health_pct",
     "time_to_failure_h", "ttf_estimate", "failure_probability", "limit_a"}
)  # fmt: skip
HALL_MEASUREMENTS: Final = frozenset({"headroom_a", "tightest"})
DECISION_MEASUREMENTS: Final = frozenset({"detail"})
"""The decision's numbers (refreshed at every plan); which decision and its choices are alerts."""
_DECISION_ACTIVITY: Final = frozenset({DECISION_NEEDED, DECISION_ANSWERED})


def is_urgent(slug: str, sent: dict[str, Any], doc: dict[str, Any]) -> bool:
    """Whether ``doc`` differs from the document ``sent`` last for device ``slug`` in more than
    measurements: any field not named a measurement is an alert (migration, proposal, status,
    components at risk, failure risk, failed, availability) and goes out within a second."""
    measured = (
        HALL_MEASUREMENTS
        if slug == HALL_SLUG
        else DECISION_MEASUREMENTS
        if slug == DECISION_SLUG
        else ELEMENT_MEASUREMENTS
    )
    return any(doc.get(k) != sent.get(k) for k in (doc.keys() | sent.keys()) - measured)


@dataclass(slots=True)
class _Sent:
    at: float
    doc: dict[str, Any]


class HallPublisher:
    """Publishes one plant as a campus hall and takes the campus's approvals."""

    def __init__(
        self, hass: HomeAssistant, entry: DataCenterPowerConfigEntry, hall: str, version: str
    ) -> None:
        """Nothing is published before ``async_start``; ``version`` is the integration's."""
        self.hass = hass
        self.version = version
        self.entry = entry
        self.topics = HallTopics(hall)
        self.run = secrets.token_hex(4)
        """This start of the hall (a reload or restart makes a new one): published with the open
        proposal, and a command must name it (the same plan raised again has the same id)."""
        self.entities = HallEntities()
        self.published = 0
        """Messages published (for measurements)."""
        self._sent: dict[str, _Sent] = {}
        self._dirty: set[str] = set()
        self._flush_handle: CALLBACK_TYPE | None = None
        self._flush_at = 0.0
        """When the scheduled flush runs (``time.monotonic()``)."""
        self._rebuild_handle: CALLBACK_TYPE | None = None
        self._unsubs: list[Callable[[], None]] = []
        self._track: CALLBACK_TYPE | None = None
        self._by_entity: dict[str, str] = {}
        self._discovered: dict[str, str] = {}
        """Discovery topic -> the config last published there (JSON)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False

    @property
    def hall(self) -> str:
        """The hall's id."""
        return self.topics.hall

    async def async_start(self) -> None:
        """Subscribe to the command topic, follow the entities, publish everything."""
        from homeassistant.components import mqtt

        subscribed = asyncio.Event()
        watch = mqtt.async_on_subscribe_done(self.hass, self.topics.command, 1, subscribed.set)
        self._keep(
            await mqtt.async_subscribe(self.hass, self.topics.command, self._on_command, qos=1)
        )
        self._keep(mqtt.async_subscribe_connection_status(self.hass, self._on_connection))
        self._keep(
            self.hass.bus.async_listen(
                er.EVENT_ENTITY_REGISTRY_UPDATED, self._on_registry, self._ours
            )
        )
        # Decisions have no entity: each plan (the questions are updated first, by the
        # question book's own listener) and each answer (no plan follows it).
        self._keep(self.entry.runtime_data.decisions.async_add_listener(self._on_decisions))
        self._keep(
            self.hass.bus.async_listen(EVENT_ACTIVITY, self._on_activity, self._about_decisions)
        )
        if self._stopped:
            watch()
            return
        self._follow()
        LOGGER.info(
            "Hall %s (run %s) publishes %d ATS/MPDU devices under %s",
            self.hall,
            self.run,
            len(self.entities.elements),
            self.topics.base,
        )
        if mqtt.is_connected(self.hass):
            # Nothing is shown to the campus before its commands can arrive.
            try:
                async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                    await subscribed.wait()
            except TimeoutError:
                LOGGER.warning("Hall %s: the broker has not confirmed the command topic", self.hall)
            finally:
                watch()
            if not self._stopped:
                await self._publish_all()
        else:
            watch()

    def _keep(self, unsubscribe: Callable[[], None]) -> None:
        """Keep ``unsubscribe`` for ``async_stop``; call it at once if stopped already."""
        if self._stopped:
            unsubscribe()
        else:
            self._unsubs.append(unsubscribe)

    async def async_stop(self) -> None:
        """Say ``offline`` and stop following anything."""
        self._stopped = True
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        for handle in (self._track, self._flush_handle, self._rebuild_handle):
            if handle is not None:
                handle()
        self._track = self._flush_handle = self._rebuild_handle = None
        for task in list(self._tasks):
            task.cancel()
        await self._publish(self.topics.availability, OFFLINE)

    # -- following the entities ------------------------------------------------------------------

    def _follow(self) -> None:
        """(Re)read which entities to follow and track their state changes."""
        self.entities = hall_entities(self.hass, self.entry)
        self._by_entity = self.entities.all_ids()
        if self._track is not None:
            self._track()
        self._track = async_track_state_change_event(
            self.hass, list(self._by_entity), self._on_state
        )
        topics = {
            self.topics.state(slug)
            for slug in (HALL_SLUG, DECISION_SLUG, *map(device_slug, self.entities.elements))
        }
        self._sent = {t: s for t, s in self._sent.items() if t in topics}

    @callback
    def _ours(self, data: er.EventEntityRegistryUpdatedData) -> bool:
        """Entity registry changes that may add or remove a device of this plant."""
        return data["action"] in ("create", "remove")

    @callback
    def _on_registry(self, event: Event[er.EventEntityRegistryUpdatedData]) -> None:
        if self._rebuild_handle is None and not self._stopped:
            self._rebuild_handle = async_call_later(self.hass, REBUILD_DELAY_S, self._rebuild)

    @callback
    def _rebuild(self, _now: Any) -> None:
        self._rebuild_handle = None
        before = set(self.entities.elements)
        self._follow()
        if set(self.entities.elements) != before:
            self._spawn(self._publish_all())

    @callback
    def _about_decisions(self, data: Mapping[str, Any]) -> bool:
        """Activity of a decision raised or answered (closed)."""
        return data.get("type") in _DECISION_ACTIVITY

    @callback
    def _on_activity(self, _event: Event[Mapping[str, Any]]) -> None:
        self._on_decisions()

    @callback
    def _on_decisions(self) -> None:
        self._dirty.add(DECISION_SLUG)
        self._schedule(COALESCE_S)

    @callback
    def _on_state(self, event: Event[EventStateChangedData]) -> None:
        pid = self._by_entity.get(event.data["entity_id"])
        if pid is None:
            return
        if pid == "":  # a plant-wide entity: the hall; headroom feeds every element's too
            self._dirty.add(HALL_SLUG)
            if event.data["entity_id"] == self.entities.plant.get("headroom"):
                self._dirty.update(self.entities.elements)
        else:
            self._dirty.add(pid)
        self._schedule(COALESCE_S)

    def _schedule(self, delay: float) -> None:
        """Flush in ``delay`` seconds, or earlier if a flush is already due sooner (a change
        of failure risk never waits behind a measurement's 30 s)."""
        if self._stopped:
            return
        at = time.monotonic() + delay
        if self._flush_handle is not None:
            if self._flush_at <= at:
                return
            self._flush_handle()
        self._flush_at = at
        self._flush_handle = async_call_later(self.hass, delay, self._flush)

    # -- documents ---------------------------------------------------------------------------------

    def _limit(self, pid: str) -> float | None:
        """The element's continuous limit (A), from the plant's topology."""
        runtime = getattr(self.entry, "runtime_data", None)
        data = None if runtime is None else runtime.telemetry.data
        try:
            return None if data is None else float(data.topology.limit_a(pid))
        except KeyError:
            return None

    def _documents(self, which: set[str]) -> dict[str, dict[str, Any]]:
        """Slug -> document for the devices in ``which`` (plant ids, ``hall``)."""
        out: dict[str, dict[str, Any]] = {}
        headroom_id = self.entities.plant.get("headroom")
        state = self.hass.states.get(headroom_id) if headroom_id else None
        elements = state.attributes.get("elements", {}) if state is not None else {}
        for pid in which:
            if pid == DECISION_SLUG:
                out[DECISION_SLUG] = decision_document(self.entry, self.run)
            elif pid == HALL_SLUG:
                out[HALL_SLUG] = hall_document(
                    self.hass, self.entities.plant, len(self.entities.elements), self.run
                )
            elif (ids := self.entities.elements.get(pid)) is not None:
                out[device_slug(pid)] = element_document(
                    self.hass, ids, self._limit(pid), elements, pid
                )
        return out

    @callback
    def _flush(self, _now: Any) -> None:
        """Send the documents that changed, as far as their interval allows; the rest later."""
        self._flush_handle = None
        if due := self._due():
            self._spawn(self._send(due))

    def _due(self) -> dict[str, dict[str, Any]]:
        """The documents to send now (slug -> document); the others are sent when allowed."""
        dirty, self._dirty = self._dirty, set()
        now = time.monotonic()
        due: dict[str, dict[str, Any]] = {}
        wait: float | None = None
        for slug, doc in self._documents(dirty).items():
            topic = self.topics.state(slug)
            last = self._sent.get(topic)
            if last is not None and last.doc == doc:
                continue
            urgent = last is None or is_urgent(slug, last.doc, doc)
            ready = (last.at if last else 0.0) + (
                URGENT_INTERVAL if urgent else MEASUREMENT_INTERVAL
            )
            if now >= ready:
                due[slug] = doc
                self._sent[topic] = _Sent(now, doc)
            else:
                self._dirty.add(HALL_SLUG if slug == HALL_SLUG else self._pid(slug))
                wait = min(wait if wait is not None else ready - now, ready - now)
        if wait is not None:
            self._schedule(max(wait, COALESCE_S))
        return due

    def _pid(self, slug: str) -> str:
        return next((p for p in self.entities.elements if device_slug(p) == slug), slug)

    async def _send(self, docs: dict[str, dict[str, Any]]) -> None:
        if HALL_SLUG in docs or DECISION_SLUG in docs:
            await self._publish_discovery_hall()
        await asyncio.gather(
            *(self._publish(self.topics.state(s), _json(d)) for s, d in docs.items())
        )

    # -- publishing ------------------------------------------------------------------------------

    async def _publish(self, topic: str, payload: str) -> None:
        from homeassistant.components import mqtt

        try:
            await mqtt.async_publish(self.hass, topic, payload, qos=1, retain=True)
        except HomeAssistantError as err:
            LOGGER.debug("Hall %s could not publish %s: %s", self.hall, topic, err)
            return
        self.published += 1

    async def _publish_discovery(self, topic: str, config: dict[str, Any]) -> None:
        payload = _json(config)
        if self._discovered.get(topic) == payload:
            return
        self._discovered[topic] = payload
        await self._publish(topic, payload)

    async def _publish_discovery_hall(self) -> None:
        """The hall's config: its buttons carry the open proposal's id, the open decision's id
        and choices, and this run (as in the documents being sent)."""
        hall = self._sent.get(self.topics.state(HALL_SLUG))
        decision = self._sent.get(self.topics.decision)
        proposal = (hall.doc.get("proposal") if hall else None) or {}
        asked = (decision.doc.get("decision") if decision else None) or {}
        config = hall_config(
            self.topics,
            self.entry.title,
            self.version,
            proposal.get("id"),
            self.run,
            decision_id=asked.get("id"),
            choices=asked.get("choice_keys") or (),
        )
        await self._publish_discovery(self.topics.discovery(HALL_SLUG), config)

    async def _publish_all(self) -> None:
        """Discovery configs, availability and every document (at start, after a reconnect)."""
        self._sent.clear()
        self._discovered.clear()
        version = self.version
        configs = {
            self.topics.discovery(device_slug(pid)): element_config(
                self.topics, device_slug(pid), self.entities.names[pid], kind, version
            )
            for pid, kind in self.entities.kinds.items()
        }
        await asyncio.gather(*(self._publish_discovery(t, c) for t, c in configs.items()))
        self._dirty.update({HALL_SLUG, DECISION_SLUG, *self.entities.elements})
        if self._flush_handle is not None:
            self._flush_handle()
            self._flush_handle = None
        await self._send(self._due())
        await self._publish(self.topics.availability, ONLINE)

    @callback
    def _on_connection(self, connected: bool) -> None:
        if connected and not self._stopped:
            LOGGER.info("Hall %s connected to the broker: publishing its state", self.hall)
            self._spawn(self._publish_all())

    async def _on_command(self, msg: ReceiveMessage) -> None:
        result = await async_handle_command(self.hass, self.entry, self.hall, self.run, msg.payload)
        await self._publish(self.topics.result, _json(result))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = self.entry.async_create_background_task(
            self.hass, coro, f"campus hall {self.hall}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), default=str, sort_keys=True)


async def async_setup_campus(hass: HomeAssistant, entry: DataCenterPowerConfigEntry) -> None:
    """Publish the plant as a campus hall when the ``campus_hall`` option names one and the
    ``mqtt`` integration is set up (waited for in the background: setup is not held up)."""
    hall = str(entry.options.get(CONF_CAMPUS_HALL) or "")
    if not hall:
        return
    if not valid_hall(hall):
        LOGGER.warning("Campus hall id %r is not valid: the plant is not published", hall)
        return

    async def start() -> None:
        from homeassistant.components import mqtt

        if not await mqtt.async_wait_for_mqtt_client(hass):
            LOGGER.warning(
                "Campus hall %s: the MQTT integration is not set up; the plant is not published",
                hall,
            )
            return
        integration = await async_get_integration(hass, DOMAIN)
        publisher = HallPublisher(hass, entry, hall, str(integration.version or "0"))
        # Before anything is awaited: an unload while the start still waits for the broker
        # (this task is then cancelled) must stop the publisher, not leave its command
        # subscription behind to act on commands beside the next run's.
        entry.async_on_unload(publisher.async_stop)
        await publisher.async_start()

    if "mqtt" not in hass.config.components and not hass.config_entries.async_entries("mqtt"):
        LOGGER.warning(
            "Campus hall %s: the MQTT integration is not configured; the plant is not published",
            hall,
        )
        return
    entry.async_create_background_task(hass, start(), f"campus hall {hall} start")
