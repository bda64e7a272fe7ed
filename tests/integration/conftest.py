"""Fixtures for the Home Assistant layer: a real Home Assistant (pytest-homeassistant-custom-
component) and a small plant served by the real simulator over Modbus TCP on 127.0.0.1.

Time in the plant moves only through ``server.advance`` (speed 0), so every test is
deterministic. Modbus timeouts are shortened so that silent devices cost little.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

# The forecaster imports statsmodels (and with it pandas) lazily, at its first fit, in an
# executor job. Under a frozen clock (the ``freezer`` fixture) pandas' import never finishes;
# in Home Assistant nothing freezes the clock. Imported here, before any test freezes it.
import statsmodels.regression.linear_model  # noqa: F401
from homeassistant.components import mqtt
from homeassistant.config_entries import ConfigEntryState, ConfigSubentryData
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

import custom_components.datacenter_power as integration
from custom_components.datacenter_power import const, migration
from custom_components.datacenter_power.const import (
    CONF_HOST,
    CONF_PORT,
    DEFAULT_OPTIONS,
    DOMAIN,
    SUBENTRY_GATEWAY,
)
from custom_components.datacenter_power.decisions import STORAGE_VERSION, pack_observation
from dcp_campus.broker import Broker
from dcp_campus.client import Client, Message
from dcp_eval.harness import observation_from_telemetry, topology_from_scenario
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer
from tests.plants import circuit, two_ats_plant

from .campus_hall import async_connect_mqtt
from .modbus_proxy import ModbusProxy

PLANT_UNIQUE_ID = "ats1+ats2"
"""The plant identity the config flow derives for PLANT (its sorted ATS ids)."""

PLANT: dict[str, Any] = two_ats_plant(
    "ha-integration",
    seed=7,
    ats_rating_a=80,
    mpdu_rating_a=40,
    transfer_time=("100ms", "12ms"),
    rated_operations=(6000, 10000),
    ambient_c=24,
    circuits=[
        circuit("c01", ["mpdu1", "mpdu2"], 5, daily=0.2, noise=0.05),
        circuit("c02", ["mpdu1", "mpdu2"], 4),
        circuit("c03", ["mpdu2", "mpdu1"], 6, rating_a=20),
        circuit("c04", ["mpdu2"], 3, critical=False),
    ],
    events=[{"kind": "comms_loss", "target": "mpdu2", "at": "30m", "duration": "10m"}],
)
"""2 ATSs, 2 MPDUs, 4 circuits (SBMs) and the environment sensor; mpdu2 stops answering at
30 min for 10 min."""

PLANT_IDS = ("env1", "ats1", "ats2", "mpdu1", "mpdu2", "c01", "c02", "c03", "c04")


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load ``custom_components.datacenter_power``."""


@pytest.fixture(autouse=True)
def short_modbus_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A silent device costs 0.2 s instead of 1 s; pymodbus's per-timeout ERROR logs are
    silenced (the integration logs what matters)."""
    monkeypatch.setattr(const, "REQUEST_TIMEOUT", 0.2)
    monkeypatch.setattr(const, "SCAN_UNIT_TIMEOUT", 0.2)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


@pytest.fixture
def no_platforms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set the entry up without its entity platforms (which have their own tests), for tests
    of the config flow and the coordinator that need no entities: ~100 fewer entities to build
    per setup."""
    monkeypatch.setattr(integration, "PLATFORMS", [])


@pytest.fixture
def scenario_doc() -> dict[str, Any]:
    """A fresh copy of the plant's scenario, to change before the plant is built."""
    return copy.deepcopy(PLANT)


@pytest.fixture
def plant(scenario_doc: dict[str, Any]) -> Plant:
    """The plant at t=0 (no history)."""
    return Plant(parse_scenario(scenario_doc), start_s=0.0)


@pytest.fixture
async def sim_server(plant: Plant, socket_enabled: None) -> AsyncIterator[tuple[PlantServer, int]]:
    """The plant served on a free port of 127.0.0.1; yields ``(server, port)``."""
    server = PlantServer(plant, speed=0)
    port = await server.start("127.0.0.1", 0)
    yield server, port
    await server.stop()


@pytest.fixture
async def split_server(
    scenario_doc: dict[str, Any], socket_enabled: None
) -> AsyncIterator[PlantServer]:
    """The test plant with each ATS lineup behind its own gateway."""
    scenario_doc["gateways"] = [{"ats": ["ats1"]}, {"ats": ["ats2"]}]
    scenario_doc["events"] = []
    server = PlantServer(Plant(parse_scenario(scenario_doc), start_s=0.0), speed=0)
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop()


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """Options to set on the plant's entry beyond the defaults (a module overrides this, e.g.
    with ``{CONF_STEP_INTERVAL: 0}`` for migration steps back to back)."""
    return {}


def plant_entry(
    port: int | None = None,
    *,
    base: MockConfigEntry | None = None,
    options: Mapping[str, Any] | None = None,
    more_gateways: Sequence[int] = (),
    **fields: Any,
) -> MockConfigEntry:
    """A config entry of the test plant (not added to Home Assistant yet): on the gateway at
    127.0.0.1:``port``, or ``base``'s gateway; ``base``'s options, or the defaults, updated by
    ``options``; a gateway subentry per port of ``more_gateways``. ``fields``: other entry
    fields as given (title, entry_id)."""
    if more_gateways:
        fields["subentries_data"] = [
            ConfigSubentryData(
                data={CONF_HOST: "127.0.0.1", CONF_PORT: p},
                subentry_type=SUBENTRY_GATEWAY,
                title=f"127.0.0.1:{p}",
                unique_id=f"127.0.0.1:{p}",
            )
            for p in more_gateways
        ]
    if base is None:
        unique_id, data, defaults = PLANT_UNIQUE_ID, {}, DEFAULT_OPTIONS
    else:
        unique_id, data, defaults = base.unique_id, dict(base.data), base.options
    if port is not None:
        data = {CONF_HOST: "127.0.0.1", CONF_PORT: port}
    return MockConfigEntry(
        domain=DOMAIN,
        unique_id=unique_id,
        data=data,
        options={**defaults, **(options or {})},
        **fields,
    )


async def set_up(hass: HomeAssistant, entry: MockConfigEntry) -> bool:
    """Add ``entry`` to Home Assistant, set it up and wait until Home Assistant is idle; whether
    the set-up succeeded (a gateway that is not there yet leaves the entry to retry)."""
    entry.add_to_hass(hass)
    ok = await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return ok


def history_rows(server: PlantServer, until_s: float, *, t0: float | None = None) -> list[Any]:
    """Step the served plant to ``until_s`` (its own time) in 5-minute polls, returning the
    history rows the integration would have kept of them. Plant time ``t`` is stored as
    ``t0 + t``; by default the rows end now (the forecaster has history to learn from)."""
    plant = server.plant
    start = time.time() - until_s if t0 is None else t0
    topology = topology_from_scenario(plant.scenario)
    rows = []
    while plant.t_s < until_s:
        plant.advance_to(plant.t_s + 300)
        rows.append(
            pack_observation(observation_from_telemetry(plant.telemetry(), start, topology))
        )
    server.invalidate()
    return rows


def store_history(
    hass_storage: dict[str, Any],
    entry: MockConfigEntry,
    rows: list[Any],
    version: int = STORAGE_VERSION,
) -> None:
    """Hand ``rows`` to ``entry`` as its stored history (read at its next set-up)."""
    key = f"{DOMAIN}.{entry.entry_id}.history"
    hass_storage[key] = {
        "version": version,
        "minor_version": 1,
        "key": key,
        "data": {"history": rows},
    }


@pytest.fixture
def mock_config_entry(
    sim_server: tuple[PlantServer, int], entry_options: dict[str, Any]
) -> MockConfigEntry:
    """The config entry the config flow creates for the served plant."""
    return plant_entry(sim_server[1], options=entry_options, title=f"Plant {PLANT_UNIQUE_ID}")


@pytest.fixture
def fast_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stages verify on refreshes 50 ms apart (not 1 s), so a stage that does not verify is
    rolled back after 3 quick refreshes."""
    monkeypatch.setattr(migration, "VERIFY_DELAY_S", 0.05)


@pytest.fixture
async def init_integration(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> AsyncIterator[MockConfigEntry]:
    """The entry set up and loaded against the simulator; unloaded (clients closed) after."""
    assert await set_up(hass, mock_config_entry)
    assert mock_config_entry.state is ConfigEntryState.LOADED
    yield mock_config_entry
    if mock_config_entry.state is ConfigEntryState.LOADED:
        assert await hass.config_entries.async_unload(mock_config_entry.entry_id)
        await hass.async_block_till_done()


@pytest.fixture
async def proxy(sim_server: tuple[PlantServer, int]) -> AsyncIterator[ModbusProxy]:
    """A gateway in front of the simulator that injects faults per unit id on demand."""
    gateway = ModbusProxy(sim_server[1])
    await gateway.start()
    yield gateway
    await gateway.stop()


@pytest.fixture
async def empty_gateway(socket_enabled: None) -> AsyncIterator[int]:
    """A gateway with no device behind it (every unit id answers 0x0A); yields its port."""
    gateway = ModbusProxy(None)
    port = await gateway.start()
    yield port
    await gateway.stop()


@pytest.fixture(autouse=True)
async def unload_entries(hass: HomeAssistant) -> AsyncIterator[None]:
    """Unload every entry a test left loaded, so no client outlives its test."""
    yield
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


@pytest.fixture
def campus_halls() -> list[str]:
    """The halls the test broker has users for (a campus test module overrides it)."""
    return ["hall1"]


@pytest.fixture
async def broker(
    hass: HomeAssistant, tmp_path: Path, socket_enabled: None, campus_halls: list[str]
) -> AsyncIterator[Broker]:
    """A real Mosquitto with the campus user and ``campus_halls``. Every entry (the plant's,
    mqtt's) is unloaded while it still runs: a client left connected when the broker stops
    would lose it mid-publish."""
    with Broker(tmp_path / "broker", halls=campus_halls) as running:
        yield running
        for entry in hass.config_entries.async_entries():
            if entry.state is ConfigEntryState.LOADED:
                await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()


@pytest.fixture
def campus_client(broker: Broker) -> Iterator[Client]:
    """The campus: reads everything of every hall."""
    client = Client(broker, "campus")
    client.subscribe("homeassistant/device/#")
    client.subscribe("dcp/#")
    yield client
    client.close()


@pytest.fixture
async def campus(hass: HomeAssistant, broker: Broker) -> AsyncIterator[MockConfigEntry]:
    """Home Assistant as the campus: its mqtt integration with discovery, as the campus user
    (no birth or will: the campus user writes only command topics)."""
    entry = await async_connect_mqtt(
        hass,
        broker,
        "campus",
        options={
            mqtt.CONF_DISCOVERY: True,
            mqtt.CONF_BIRTH_MESSAGE: {},
            mqtt.CONF_WILL_MESSAGE: {},
        },
    )
    yield entry
    if entry.state is ConfigEntryState.LOADED:
        await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()


def json_doc(msg: Message) -> dict[str, Any]:
    """A campus message's payload, a JSON object."""
    doc = json.loads(msg.payload)
    assert isinstance(doc, dict)
    return doc


async def serve(doc: dict[str, Any]) -> PlantServer:
    """Serve another plant (a second gateway) on a free port; stop it in the test."""
    server = PlantServer(Plant(parse_scenario(doc), start_s=0.0), speed=0)
    await server.start("127.0.0.1", 0)
    return server


def renamed(doc: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """The scenario with plant ids renamed (a different plant, same shape)."""
    text = json.dumps(doc)
    for old, new in mapping.items():
        text = text.replace(f'"{old}"', f'"{new}"')
    out: dict[str, Any] = json.loads(text)
    return out


@pytest.fixture
def free_port(socket_enabled: None) -> int:
    """A TCP port on 127.0.0.1 nothing listens on (connections are refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
