"""Why a gateway cannot be reached, in words a person can act on.

pymodbus reports every failed connection the same way. When a scan fails, one plain TCP attempt
tells the cases apart: a name that does not resolve, a port nothing listens on (refused), a host
that never answers (timeout), a network that cannot be reached, or a TCP service that answered
but not as a Modbus gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Final

CANNOT_RESOLVE: Final = "cannot_resolve"
CONNECTION_REFUSED: Final = "connection_refused"
CONNECTION_TIMEOUT: Final = "connection_timeout"
CANNOT_CONNECT: Final = "cannot_connect"
ERRORS: Final = (CANNOT_RESOLVE, CONNECTION_REFUSED, CONNECTION_TIMEOUT, CANNOT_CONNECT)


async def diagnose(host: str, port: int, timeout_s: float = 3.0) -> tuple[str, str]:
    """``(error key, detail)`` for a gateway the Modbus client could not use."""
    loop = asyncio.get_running_loop()
    try:
        await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        return CANNOT_RESOLVE, str(err.strerror or err)
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except ConnectionRefusedError:
        return CONNECTION_REFUSED, "connection refused"
    except TimeoutError:
        return CONNECTION_TIMEOUT, f"no answer within {timeout_s:g} s"
    except OSError as err:
        return CANNOT_CONNECT, str(err.strerror or err)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return CANNOT_CONNECT, "a TCP service answers on this port, but not as a Modbus TCP gateway"
