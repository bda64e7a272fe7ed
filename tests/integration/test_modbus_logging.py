"""An outage is logged once, in the integration's words: no traceback, and none of pymodbus's
per-request ERROR lines ("No response received after 3 retries"), which stay available at DEBUG
for whoever enables debug logging for pymodbus; other pymodbus users (Home Assistant's own
``modbus`` integration) keep theirs. Real Home Assistant, real simulator behind the
fault-injecting gateway."""

from __future__ import annotations

import asyncio
import logging

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import plant_entry, set_up
from .modbus_proxy import ModbusProxy


@pytest.fixture(autouse=True)
def library_log_at_default() -> None:
    """Undo the suite's silencing of pymodbus: this module tests what it logs by default."""
    for name in ("pymodbus", "pymodbus.logging"):
        logging.getLogger(name).setLevel(logging.NOTSET)


async def _entry(hass: HomeAssistant, base: MockConfigEntry, port: int) -> MockConfigEntry:
    entry = plant_entry(port, base=base)
    assert await set_up(hass, entry)
    return entry


def _library(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("pymodbus") and r.levelno >= level]


async def test_a_silent_device_and_a_lost_gateway_are_logged_once(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    proxy: ModbusProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    entry = await _entry(hass, mock_config_entry, proxy.port)
    telemetry = entry.runtime_data.telemetry
    caplog.clear()

    proxy.faults[telemetry.identities["mpdu2"].unit_id] = "silent"
    for _ in range(3):
        await telemetry.async_refresh()
    assert not telemetry.data.available("mpdu2")
    proxy.faults.clear()
    await telemetry.async_refresh()
    assert telemetry.data.available("mpdu2")

    proxy.faults.update(dict.fromkeys(range(1, 248), "silent"))
    for _ in range(3):
        await telemetry.async_refresh()
    assert not telemetry.last_update_success

    assert not _library(caplog, logging.DEBUG), [r.getMessage() for r in _library(caplog, 0)]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    ours = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("custom_components") and r.levelno >= logging.WARNING
    ]
    assert sum("mpdu2 is unavailable" in m for m in ours) == 1, ours
    # The whole gateway silent: one line for the outage, however many refreshes fail.
    assert sum("None of the plant's" in m for m in ours) == 1, ours


async def test_pymodbus_lines_remain_at_debug_when_asked_for(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    proxy: ModbusProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # the capture keeps DEBUG records; pymodbus at DEBUG
    logging.getLogger("pymodbus").setLevel(logging.DEBUG)
    entry = await _entry(hass, mock_config_entry, proxy.port)
    caplog.clear()
    proxy.faults[entry.runtime_data.telemetry.identities["mpdu2"].unit_id] = "silent"
    await entry.runtime_data.telemetry.async_refresh()
    # pymodbus folds a repeated line into "Repeating....": whichever it logs is at DEBUG.
    lines = _library(caplog, 0)
    assert lines
    assert all(r.levelno == logging.DEBUG for r in lines), [r.levelname for r in lines]


async def test_other_pymodbus_users_still_log_their_warnings(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    proxy: ModbusProxy,
    free_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only this integration's connections are quieted: Home Assistant's own ``modbus``
    integration (its hub on a port nothing listens on) and a plain pymodbus client (asking a
    silent unit) still log their WARNING/ERROR lines, while this integration's silent device
    logs none, in the same process at the same time."""
    caplog.set_level(logging.INFO)
    entry = await _entry(hass, mock_config_entry, proxy.port)
    telemetry = entry.runtime_data.telemetry
    caplog.clear()

    silent = telemetry.identities["mpdu2"].unit_id
    proxy.faults[silent] = "silent"
    await telemetry.async_refresh()  # this integration's request goes unanswered
    assert not telemetry.data.available("mpdu2")
    assert not _library(caplog, logging.DEBUG), [r.getMessage() for r in _library(caplog, 0)]

    assert await async_setup_component(
        hass,
        "modbus",
        {
            "modbus": [
                {
                    "name": "other",
                    "type": "tcp",
                    "host": "127.0.0.1",
                    "port": free_port,
                    "sensors": [{"name": "other register", "address": 0, "device_address": 1}],
                }
            ]
        },
    )
    for _ in range(200):  # the hub connects in a background task: up to 10 s
        if _library(caplog, logging.WARNING):
            break
        await asyncio.sleep(0.05)
    assert any("Failed to connect" in r.getMessage() for r in _library(caplog, logging.WARNING))

    # retries=1: not the very text of this integration's line (pymodbus folds a repeated line
    # into "Repeating...." whoever logs it)
    other = AsyncModbusTcpClient("127.0.0.1", port=proxy.port, timeout=0.2, retries=1)
    assert await other.connect()
    try:
        with pytest.raises(ModbusIOException):
            await other.read_holding_registers(0, count=1, device_id=silent)
    finally:
        other.close()
    errors = [r.getMessage() for r in _library(caplog, logging.ERROR)]
    assert any("No response received" in m for m in errors), errors

    caplog.clear()
    await telemetry.async_refresh()  # and this integration's lines are still quiet
    assert not telemetry.data.available("mpdu2")
    assert not _library(caplog, logging.DEBUG), [r.getMessage() for r in _library(caplog, 0)]
