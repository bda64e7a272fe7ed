"""Fixtures for the device-layer tests: a small plant served over real Modbus TCP on 127.0.0.1,
with the device layer's client connected to it."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from custom_components.datacenter_power.device.client import PlantClient
from custom_components.datacenter_power.device.models import DeviceIdentity
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer
from tests.plants import circuit, two_ats_plant

SMALL: dict[str, Any] = two_ats_plant(
    "device-layer",
    seed=11,
    ats_rating_a=(100, 120),
    mpdu_rating_a=(50, 60),
    transfer_time=("100ms", "12ms"),
    rated_operations=(6000, 10000),
    ambient_c=24,
    circuits=[
        circuit("c01", ["mpdu1", "mpdu2"], 5, daily=0.2, noise=0.05),
        circuit("c02", ["mpdu2", "mpdu1"], 4, rating_a=20),
        circuit("c03", ["mpdu1"], 3, critical=False),
    ],
    events=[
        {"kind": "comms_loss", "target": "mpdu2", "at": "30m", "duration": "10m"},
        {"kind": "sudden_failure", "target": "ats2", "at": "2h", "repair_after": "10m"},
    ],
)


@pytest.fixture
def scenario_doc() -> dict[str, Any]:
    """A fresh copy of the small scenario: 2 ATSs, 2 MPDUs, 3 SBMs, env; mpdu2 silent at
    30-40 min, ats2 failed at 2h-2h10."""
    return copy.deepcopy(SMALL)


@pytest.fixture
def plant(scenario_doc: dict[str, Any]) -> Plant:
    """The plant at t=0 (no history)."""
    return Plant(parse_scenario(scenario_doc), start_s=0.0)


@pytest.fixture
async def server(plant: Plant, socket_enabled: None) -> AsyncIterator[PlantServer]:
    """The plant served on a free port of 127.0.0.1 (the only host the test plugin lets sockets
    reach); time moves only through ``server.advance``."""
    srv = PlantServer(plant, speed=0)
    await srv.start("127.0.0.1", 0)
    yield srv
    await srv.stop()


@pytest.fixture
async def client(server: PlantServer) -> AsyncIterator[PlantClient]:
    """A connected client (short timeout so that silent devices cost little)."""
    cli = PlantClient("127.0.0.1", server.port, timeout=0.2)
    await cli.connect()
    yield cli
    await cli.close()


@pytest.fixture
async def devices(server: PlantServer, client: PlantClient) -> dict[str, DeviceIdentity]:
    """Identities of every device, by plant id (read directly, without a scan)."""
    out = {}
    for unit_id in server.units:
        identity = await client.read_identity(unit_id)
        out[identity.plant_id] = identity
    return out
