"""A hall on a real broker for the Home Assistant tests: Home Assistant's own ``mqtt``
integration connected (as the hall's broker user) to a real Mosquitto, optionally through a TCP
relay that a test can cut (the hall's host gone without a word: the broker sends its last will).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant, callback
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.campus_topics import OFFLINE, ONLINE, HallTopics
from dcp_campus.broker import Broker

KEEPALIVE_S = 30
"""A hall that vanishes without closing its connection is offline after 1.5 keepalives."""


async def async_setup_mqtt(
    hass: HomeAssistant, broker: Broker, hall: str, port: int | None = None
) -> MockConfigEntry:
    """The mqtt config entry of a hall: its user, birth and last will on its availability
    topic, no discovery of its own (it reads only its command topic); set up and connected."""
    availability = HallTopics(hall).availability

    def message(payload: str) -> dict[str, Any]:
        return {"topic": availability, "payload": payload, "qos": 1, "retain": True}

    return await async_connect_mqtt(
        hass,
        broker,
        hall,
        data={"port": port or broker.port, "keepalive": KEEPALIVE_S},
        options={
            mqtt.CONF_DISCOVERY: False,
            mqtt.CONF_BIRTH_MESSAGE: message(ONLINE),
            mqtt.CONF_WILL_MESSAGE: message(OFFLINE),
        },
    )


async def async_connect_mqtt(
    hass: HomeAssistant,
    broker: Broker,
    user: str,
    *,
    options: dict[str, Any],
    data: dict[str, Any] | None = None,
) -> MockConfigEntry:
    """Home Assistant's mqtt config entry for a broker ``user`` (MQTT 5), set up and connected
    (``data`` adds to or replaces the connection settings)."""
    name, password = broker.credentials(user)
    entry = MockConfigEntry(
        domain=mqtt.DOMAIN,
        title="MQTT",
        data={
            mqtt.CONF_BROKER: broker.host,
            "port": broker.port,
            "username": name,
            "password": password,
            mqtt.CONF_PROTOCOL: "5",
            **(data or {}),
        },
        options=options,
        version=1,
        minor_version=2,
    )
    entry.add_to_hass(hass)
    connected = asyncio.Event()

    @callback
    def changed(up: bool) -> None:
        if up:
            connected.set()

    unsubscribe = mqtt.async_subscribe_connection_status(hass, changed)
    try:
        assert await hass.config_entries.async_setup(entry.entry_id)
        async with asyncio.timeout(10):
            if not mqtt.is_connected(hass):
                await connected.wait()
    finally:
        unsubscribe()
    return entry


class Relay:
    """A TCP relay on 127.0.0.1 to ``port``; ``cut`` drops every connection and refuses new
    ones (no MQTT DISCONNECT is sent: to the broker the client has died)."""

    def __init__(self, port: int) -> None:
        """Not listening before ``start``."""
        self.target = port
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Listen; returns the relay's port."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers |= {writer, up_writer}
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self.tasks.update(pumps)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for w in (writer, up_writer):
            w.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()

    async def cut(self) -> None:
        """Drop every connection at once and accept no more."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
