"""A campus-side MQTT client for tests and scripts: real paho over loopback to the real broker.

It records every message it receives (in paho's network thread) and lets a caller wait, bounded,
for one that matches (asyncio), e.g. to measure how long a hall's alert takes to reach the campus.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from .acl import TOPIC_ROOT
from .broker import Broker


@dataclass(frozen=True)
class Message:
    """One message as received."""

    topic: str
    payload: bytes
    retain: bool
    at: float
    """``time.monotonic()`` when received."""
    wall: float
    """``time.time()`` when received (to compare with another process's timestamps)."""

    @property
    def text(self) -> str:
        """The payload as text."""
        return self.payload.decode()


class Client:
    """A paho client of one broker user, connected and running its network thread."""

    def __init__(
        self, broker: Broker, user: str, client_id: str | None = None, connect_s: float = 5.0
    ) -> None:
        """Connect as ``user`` (its password from ``broker``) and wait for the CONNACK."""
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{user}-{time.monotonic_ns()}",
            protocol=mqtt.MQTTv5,
        )
        self.client.username_pw_set(*broker.credentials(user))
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        if not self._connected.wait(connect_s):
            self.close()
            raise TimeoutError(f"{user} could not connect")

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if not rc.is_failure:
            self._connected.set()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(
                Message(msg.topic, msg.payload, bool(msg.retain), time.monotonic(), time.time())
            )

    def subscribe(self, topic: str) -> None:
        """Subscribe (QoS 1) and wait until the broker has granted it."""
        done = threading.Event()
        self.client.on_subscribe = lambda *args: done.set()
        self.client.subscribe(topic, qos=1)
        if not done.wait(5):
            raise TimeoutError(f"no SUBACK for {topic}")

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        """Publish with QoS 1 and wait until the broker has acknowledged it."""
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def received(self, topic: str) -> list[Message]:
        """The messages received on ``topic`` so far."""
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    async def wait_for(
        self,
        topic: str,
        match: Callable[[Message], bool] = lambda m: True,
        within: float = 10.0,
        after: float = 0.0,
    ) -> Message:
        """The first message on ``topic`` received at or after ``after`` that ``match``es."""
        deadline = time.monotonic() + within
        while True:
            for msg in self.received(topic):
                if msg.at >= after and match(msg):
                    return msg
            if time.monotonic() > deadline:
                seen = [m.text[:200] for m in self.received(topic)]
                raise TimeoutError(f"nothing matching on {topic} within {within} s: {seen}")
            await asyncio.sleep(0.05)

    def shown_proposal(self, hall: str) -> tuple[str, str] | None:
        """The open proposal as the hall last showed it (the caller subscribed to its state
        documents): its id and the hall's run, as a command must name them; ``None`` if none."""
        for msg in reversed(self.received(f"{TOPIC_ROOT}/{hall}/state/hall")):
            doc = json.loads(msg.payload)
            proposal = doc.get("proposal")
            return (str(proposal["id"]), str(doc["run"])) if proposal else None
        return None

    async def wait_for_proposal(self, hall: str, within: float = 10.0) -> tuple[str, str]:
        """``shown_proposal`` once the hall shows one (bounded by ``within`` seconds)."""
        deadline = time.monotonic() + within
        while (shown := self.shown_proposal(hall)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"hall {hall} showed no open proposal within {within} s")
            await asyncio.sleep(0.05)
        return shown

    def shown_decision(self, hall: str) -> tuple[dict[str, Any], str] | None:
        """The open decision as the hall last showed it (the caller subscribed to its decision
        document, ``dcp/<hall>/state/hall/decision``): the decision (``id``, ``element``,
        ``choice_keys``...) and the hall's run, as an answer must name them; ``None`` if none."""
        for msg in reversed(self.received(f"{TOPIC_ROOT}/{hall}/state/hall/decision")):
            doc = json.loads(msg.payload)
            decision = doc.get("decision")
            return (dict(decision), str(doc["run"])) if decision else None
        return None

    async def command(
        self, hall: str, action: str, proposal_id: str, run: str, within: float = 10.0
    ) -> tuple[dict[str, Any], float]:
        """Send a hall ``action`` (approve/dismiss) of ``proposal_id`` as shown in the hall's
        ``run`` (``shown_proposal``, read before: the round trip is the command's alone) and
        wait for its result (the caller subscribed to ``dcp/<hall>/result``); returns the result
        and the round trip in seconds."""
        payload = {"hall": hall, "action": action, "proposal_id": proposal_id, "run": run}
        return await self._command(hall, payload, within)

    async def answer(
        self, hall: str, decision_id: str, choice: str, run: str, within: float = 10.0
    ) -> tuple[dict[str, Any], float]:
        """Answer ``decision_id`` with ``choice`` (one of its ``choice_keys``) as shown in the
        hall's ``run`` (``shown_decision``), as ``command`` does."""
        payload = {
            "hall": hall,
            "action": "answer",
            "decision_id": decision_id,
            "choice": choice,
            "run": run,
        }
        return await self._command(hall, payload, within)

    async def _command(
        self, hall: str, payload: dict[str, str], within: float
    ) -> tuple[dict[str, Any], float]:
        request_id = f"r{time.monotonic_ns()}"
        start = time.monotonic()
        self.publish(
            f"{TOPIC_ROOT}/{hall}/command", json.dumps({**payload, "request_id": request_id})
        )
        msg = await self.wait_for(
            f"{TOPIC_ROOT}/{hall}/result",
            lambda m: json.loads(m.payload).get("request_id") == request_id,
            within=within,
            after=start,
        )
        result: dict[str, Any] = json.loads(msg.payload)
        return result, msg.at - start

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()
