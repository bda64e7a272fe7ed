"""Connection errors that say what is wrong: a refused port and a TCP service that is not a
Modbus gateway are real sockets on loopback; a name that does not resolve needs a resolver,
which Home Assistant's test harness disables, so that one case replaces the loop's resolver
with one that fails as the system's does (socket.gaierror)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from custom_components.datacenter_power.netcheck import (
    CANNOT_CONNECT,
    CANNOT_RESOLVE,
    CONNECTION_REFUSED,
    NOT_MODBUS,
    diagnose,
    probe,
)


async def test_refused_port(free_port: int) -> None:
    """Nothing listens: connection refused."""
    assert await diagnose("127.0.0.1", free_port) == (CONNECTION_REFUSED, "connection refused")


async def test_a_service_that_is_not_modbus(socket_enabled: None) -> None:
    """Something accepts the connection: it is named as not being a Modbus gateway."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        key, detail = await diagnose("127.0.0.1", port)
    finally:
        server.close()
        await server.wait_closed()
    assert key == CANNOT_CONNECT
    assert "not as a Modbus TCP gateway" in detail


async def test_a_name_that_does_not_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    """The resolver fails (faked: the harness has no DNS): cannot_resolve, not a timeout."""
    loop = asyncio.get_running_loop()

    async def no_such_name(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(loop, "getaddrinfo", no_such_name)
    assert await diagnose("no-such-gateway.invalid", 502) == (
        CANNOT_RESOLVE,
        "Name or service not known",
    )


async def test_probe_judges_framing_not_silence(
    socket_enabled: None, sim_server: tuple[Any, int]
) -> None:
    """The probe before a scan: the simulator (a real Modbus TCP gateway) passes; a service
    that accepts and stays silent is not judged (a gateway may be silent for an absent unit);
    one that closes the connection without answering is not Modbus."""
    assert await probe("127.0.0.1", sim_server[1]) is None

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async def closes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    for handler, expected in ((silent, None), (closes, NOT_MODBUS)):
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            verdict = await probe("127.0.0.1", port, timeout_s=0.5)
        finally:
            server.close()
            await server.wait_closed()
        assert (verdict[0] if verdict else None) == expected, verdict
