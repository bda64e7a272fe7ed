"""Home Assistant's real recorder on a real PostgreSQL server records the plant (issue 25).

The integration needs nothing PostgreSQL-specific: its states land in PostgreSQL through Home
Assistant's own recorder (pytest-homeassistant-custom-component's recorder fixtures, pointed at
a server ``scripts/pg_server.py`` runs for this module), and when PostgreSQL restarts under a
running Home Assistant the recorder reconnects while the plant's entities keep updating and the
integration logs no error.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.recorder import Recorder
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from dcp_sim.server import PlantServer

from .entity_helpers import refresh, state

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from pg_server import PostgresServer

CURRENT = "sensor.circuit_c01_current"


@pytest.fixture
def pg_server(socket_enabled: None) -> Iterator[PostgresServer]:
    """A real PostgreSQL server of its own for each test (initdb and start: about a second)."""
    base = Path(tempfile.mkdtemp(prefix="dcp-pg-recorder-"))
    base.chmod(0o755)  # the postgres user (as which the server runs under root) reaches it
    server = PostgresServer(base / "hall").start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def recorder_db_url(pg_server: PostgresServer) -> str:
    """Replaces the plugin's fixture (its ``--dburl`` option): the recorder's database on the
    test's own server."""
    return pg_server.url


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """The recorder's fixtures are in place before ``hass`` (as Home Assistant's own recorder
    tests arrange it)."""


@pytest.fixture
async def recorded_plant(
    recorder_mock: Recorder, hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> AsyncIterator[MockConfigEntry]:
    """The recorder on PostgreSQL, then the plant set up against the simulator."""
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    yield mock_config_entry
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)
    await hass.async_block_till_done()


def _recorded(url: str, entity_id: str) -> list[str]:
    """The states of ``entity_id`` in PostgreSQL, oldest first, read with psycopg2 directly."""
    import psycopg2

    with contextlib.closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT s.state FROM states s JOIN states_meta m ON s.metadata_id = m.metadata_id "
            "WHERE m.entity_id = %s ORDER BY s.last_updated_ts",
            (entity_id,),
        )
        return [row[0] for row in cur.fetchall()]


async def _step(hass: HomeAssistant, server: PlantServer, entry: MockConfigEntry) -> str:
    """Advance the plant a minute and poll it; returns the circuit current's new state."""
    before = state(hass, CURRENT).state
    for _ in range(10):  # the load is noisy: a minute changes it (almost always at once)
        server.advance(60)
        await refresh(hass, entry)
        if (now := state(hass, CURRENT).state) != before:
            return now
    raise AssertionError(f"{CURRENT} stayed at {before}")


async def test_the_recorder_records_the_plant_into_postgresql(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    recorded_plant: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    recorder_db_url: str,
) -> None:
    assert recorder_mock.engine is not None
    assert recorder_mock.engine.dialect.name == "postgresql"
    first = state(hass, CURRENT).state
    second = await _step(hass, sim_server[0], recorded_plant)
    await async_wait_recording_done(hass)
    recorded = await hass.async_add_executor_job(_recorded, recorder_db_url, CURRENT)
    assert recorded[-2:] == [first, second]


async def test_a_postgresql_restart_under_home_assistant(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    recorded_plant: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    recorder_db_url: str,
    pg_server: PostgresServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL stops and starts again on the same port while Home Assistant runs: the
    plant's entities update all along, the integration logs no error, and the recorder
    reconnects by itself (states after the restart are recorded)."""
    server = sim_server[0]
    await _step(hass, server, recorded_plant)
    await async_wait_recording_done(hass)

    await hass.async_add_executor_job(pg_server.stop)
    await _step(hass, server, recorded_plant)  # the plant goes on regardless
    await hass.async_add_executor_job(pg_server.start)

    after: list[str] = []
    recorded: list[str] = []
    for _ in range(20):  # the recorder finds its connection broken, rolls back, reconnects
        after.append(await _step(hass, server, recorded_plant))
        await async_wait_recording_done(hass)
        recorded = await hass.async_add_executor_job(_recorded, recorder_db_url, CURRENT)
        if recorded and recorded[-1] == after[-1]:
            break
    assert recorded[-1] == after[-1], (after, recorded[-5:])
    ours = [
        r
        for r in caplog.records
        if r.name.startswith("custom_components.datacenter_power") and r.levelno >= logging.ERROR
    ]
    assert ours == []
    # The recorder saw the outage (so the test did restart the server under it).
    assert any(
        r.name.startswith("homeassistant.components.recorder") and r.levelno >= logging.ERROR
        for r in caplog.records
    )
