"""What the flows accept, against real servers and the real simulator: a TCP service that is not
Modbus is named within seconds; the options refuse a calendar, workday sensor or area that does
not exist (translated form errors), take source names capped and cleaned, and a form opened
while the entry reloads still knows the plant's ATSs and sources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers import translation
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.const import (
    CONF_CALENDAR_ENTITY,
    CONF_HOST,
    CONF_LINEUP_AREAS,
    CONF_PORT,
    CONF_SOURCE_NAMES,
    CONF_SUGGEST_AREAS,
    CONF_WORKDAY_ENTITY,
    DEFAULT_OPTIONS,
    DOMAIN,
    SUBENTRY_GATEWAY,
)

from . import modbus_proxy
from .conftest import plant_entry, set_up
from .modbus_proxy import ModbusProxy

LOCAL = "127.0.0.1"


@contextlib.asynccontextmanager
async def _web_server() -> AsyncIterator[int]:
    """A real HTTP server (aiohttp, as Home Assistant's own) on loopback; yields its port."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, LOCAL, 0).start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def _echo_server() -> AsyncIterator[int]:
    """A TCP service that sends back whatever it receives; yields its port."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, LOCAL, 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


SERVERS: dict[str, Callable[[], contextlib.AbstractAsyncContextManager[int]]] = {
    "http": _web_server,
    "echo": _echo_server,
}


async def _add_plant(hass: HomeAssistant, port: int) -> Any:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: LOCAL, CONF_PORT: port}
    )
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    await hass.async_block_till_done()
    return await hass.config_entries.flow.async_configure(result["flow_id"])


@pytest.mark.usefixtures("no_platforms", "socket_enabled")
@pytest.mark.parametrize(
    ("server", "says"),
    [("http", "400 Bad Request"), ("echo", "echo service")],
)
async def test_a_service_that_is_not_modbus_is_named_at_once(
    hass: HomeAssistant, server: str, says: str
) -> None:
    """An HTTP server or an echo service on the port: "not a Modbus TCP server at host:port"
    within seconds (it was a 94 s scan ending in "no devices"), with what it answered."""
    async with SERVERS[server]() as port:
        started = time.monotonic()
        result = await _add_plant(hass, port)
        elapsed = time.monotonic() - started
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "not_modbus"}
    assert says in result["description_placeholders"]["detail"]
    assert result["description_placeholders"]["port"] == str(port)
    assert elapsed < 5, f"{elapsed:.1f} s"
    strings = await translation.async_get_translations(hass, "en", "config", [DOMAIN])
    text = strings[f"component.{DOMAIN}.config.error.not_modbus"]
    assert "{host}:{port} is not a Modbus TCP server" in text
    sub = await translation.async_get_translations(hass, "en", "config_subentries", [DOMAIN])
    assert f"component.{DOMAIN}.config_subentries.{SUBENTRY_GATEWAY}.error.not_modbus" in sub
    assert not hass.config_entries.async_entries(DOMAIN)


async def _options(hass: HomeAssistant, entry: MockConfigEntry, data: dict[str, Any]) -> Any:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    return await hass.config_entries.options.async_configure(result["flow_id"], data)


@pytest.mark.usefixtures("no_platforms")
async def test_options_refuse_what_does_not_exist(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A calendar, workday sensor or area that does not exist is refused with a translated
    form error (the options stay as they were); existing ones are taken."""
    before = dict(init_integration.options)
    result = await _options(
        hass, init_integration, {**DEFAULT_OPTIONS, CONF_CALENDAR_ENTITY: "calendar.nowhere"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_CALENDAR_ENTITY: "unknown_calendar"}
    result = await _options(
        hass, init_integration, {**DEFAULT_OPTIONS, CONF_WORKDAY_ENTITY: "binary_sensor.nowhere"}
    )
    assert result["errors"] == {CONF_WORKDAY_ENTITY: "unknown_workday"}
    result = await _options(
        hass,
        init_integration,
        {**DEFAULT_OPTIONS, CONF_LINEUP_AREAS: {CONF_SUGGEST_AREAS: True, "ats2": "no_such_area"}},
    )
    assert result["errors"] == {"base": "unknown_area"}
    assert result["description_placeholders"]["lineup"] == "ats2"
    assert init_integration.options == before

    strings = await translation.async_get_translations(hass, "en", "options", [DOMAIN])
    for key in ("unknown_calendar", "unknown_workday", "unknown_area"):
        assert strings.get(f"component.{DOMAIN}.options.error.{key}"), key

    hass.states.async_set("calendar.maintenance", "off")
    hall = ar.async_get(hass).async_get_or_create("Hall B")
    result = await _options(
        hass,
        init_integration,
        {
            **DEFAULT_OPTIONS,
            CONF_CALENDAR_ENTITY: "calendar.maintenance",
            CONF_LINEUP_AREAS: {CONF_SUGGEST_AREAS: True, "ats2": hall.id},
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert init_integration.options[CONF_CALENDAR_ENTITY] == "calendar.maintenance"
    assert init_integration.options[CONF_LINEUP_AREAS] == {"ats2": hall.id}


@pytest.mark.usefixtures("no_platforms")
async def test_options_opened_during_a_reload_take_every_key(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """The form opened while the entry reloads (no runtime data then) still has a field per
    ATS and per source, so what the user enters there is not refused once the reload is done."""
    hall = ar.async_get(hass).async_get_or_create("Hall A")
    leaving = asyncio.Event()
    init_integration.async_on_state_change(leaving.set)
    reload = hass.async_create_task(hass.config_entries.async_reload(init_integration.entry_id))
    async with asyncio.timeout(5):
        await leaving.wait()
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    assert init_integration.state is not ConfigEntryState.LOADED  # opened during the reload
    assert result["type"] is FlowResultType.FORM
    assert await reload
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            **DEFAULT_OPTIONS,
            CONF_LINEUP_AREAS: {CONF_SUGGEST_AREAS: True, "ats1": hall.id},
            CONF_SOURCE_NAMES: {"util_a": "Grid north"},
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert init_integration.options[CONF_LINEUP_AREAS] == {"ats1": hall.id}
    assert init_integration.options[CONF_SOURCE_NAMES] == {"util_a": "Grid north"}


async def test_source_names_are_capped_and_cleaned(
    hass: HomeAssistant, init_integration: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """A 20,000-character name and one with NUL, newline and a right-to-left override: stored
    printable and at most 64 characters, so every entity name stays far below the 255 that
    the recorder and statistics take; the log says once what was changed."""
    caplog.set_level(logging.WARNING)
    huge = "Utility feed " * 1600  # 20,800 characters
    tricky = "Gen\x00erator\n2\u202e\u2066 (north)\r\t"
    result = await _options(
        hass,
        init_integration,
        {**DEFAULT_OPTIONS, CONF_SOURCE_NAMES: {"util_a": huge, "util_b": tricky}},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    names = init_integration.options[CONF_SOURCE_NAMES]
    assert len(names["util_a"]) <= 64
    assert names["util_a"].startswith("Utility feed Utility feed")
    assert names["util_b"] == "Generator 2 (north)"
    for state in hass.states.async_all():
        if state.entity_id.startswith(("sensor.ats_", "binary_sensor.ats_")):
            assert len(state.name) <= 128, state.entity_id
            assert state.name.isprintable(), state.entity_id
    voltage = [
        s
        for s in hass.states.async_all("sensor")
        if s.name == "ATS ats1 Generator 2 (north) voltage"
    ]
    assert voltage
    changed = [r.getMessage() for r in caplog.records if "name of source" in r.getMessage()]
    assert len(changed) == 2, changed  # one line per name changed, not one per entity
    assert all(len(m) < 300 for m in changed), changed

    # A name stored by an older version is cleaned where it is used, and said once.
    caplog.clear()
    stored = "Generator set\n" * 2000
    hass.config_entries.async_update_entry(
        init_integration,
        options={**init_integration.options, CONF_SOURCE_NAMES: {"util_a": stored}},
    )
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    for state in hass.states.async_all():
        assert len(state.name) <= 128, state.entity_id
    changed = [r.getMessage() for r in caplog.records if "name of source" in r.getMessage()]
    assert len(changed) == 1, changed


@pytest.mark.usefixtures("no_platforms")
async def test_names_a_device_reports_are_cleaned(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    proxy: ModbusProxy,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A unit whose identification holds control characters (a line break, an escape
    sequence, a bell) is registered with a printable model; the log says so once."""
    monkeypatch.setattr(modbus_proxy, "REPLACED_MODEL", "PDU\n\x1b[31mX\x07")
    proxy.faults[3] = "replaced"  # unit 3 (an ATS) reports that model from the start
    caplog.set_level(logging.WARNING)
    entry = plant_entry(proxy.port, base=mock_config_entry)
    assert await set_up(hass, entry)
    telemetry = entry.runtime_data.telemetry
    (pid,) = [p for p, i in telemetry.identities.items() if i.unit_id == 3]
    device_id = telemetry.device_id(pid)
    assert device_id is not None
    device = dr.async_get(hass).async_get(device_id)
    assert device is not None
    assert device.model == "PDU [31mX"
    said = [r.getMessage() for r in caplog.records if "The model unit 3 reports" in r.getMessage()]
    assert len(said) == 1, said
    assert await hass.config_entries.async_reload(entry.entry_id)  # read again: said once
    await hass.async_block_till_done()
    said = [r.getMessage() for r in caplog.records if "The model unit 3 reports" in r.getMessage()]
    assert len(said) == 1, said

    # The unit swapped for one with a proper model: the repair names the change, printable.
    del proxy.faults[3]
    await entry.runtime_data.telemetry.async_rescan()
    issues = [i for i in ir.async_get(hass).issues.values() if i.domain == DOMAIN]
    changes = [str((i.translation_placeholders or {}).get("change")) for i in issues]
    assert any("PDU [31mX ->" in c for c in changes), changes
    assert all(c.isprintable() for c in changes), changes
