"""Why a gateway cannot be reached, in words a person can act on.

pymodbus reports every failed connection the same way. When a scan fails, one plain TCP attempt
tells the cases apart: a name that does not resolve, a port nothing listens on (refused), a host
that never answers (timeout), a network that cannot be reached, or a TCP service that answered
but not as a Modbus gateway.

Before a scan, :func:`probe` sends one Modbus TCP request and judges the answer's framing: a
service that answers something else (a web server's ``HTTP/1.1 400``, an echo, a banner) or
closes the connection without answering is named at once, instead of after a scan of every
unit id that keeps losing its connection (94 s, then "no devices"). Silence proves nothing (a
Modbus gateway may not answer for an absent unit id): the scan then runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Final

from .device.registers import IDENTIFICATION

CANNOT_RESOLVE: Final = "cannot_resolve"
CONNECTION_REFUSED: Final = "connection_refused"
CONNECTION_TIMEOUT: Final = "connection_timeout"
CANNOT_CONNECT: Final = "cannot_connect"
NOT_MODBUS: Final = "not_modbus"
ERRORS: Final = (CANNOT_RESOLVE, CONNECTION_REFUSED, CONNECTION_TIMEOUT, CANNOT_CONNECT, NOT_MODBUS)

PROBE_TIMEOUT_S: Final = 2.0
"""How long :func:`probe` waits for the first answer (silence is not judged)."""
_PROBE_TID: Final = 0x4443
_PROBE_UNIT: Final = 1
_READ_HOLDING: Final = 0x03
_MAX_ADU: Final = 260
"""The longest Modbus TCP frame (7-byte header + 253-byte PDU)."""


async def diagnose(host: str, port: int, timeout_s: float = 3.0) -> tuple[str, str]:
    """``(error key, detail)`` for a gateway the Modbus client could not use."""
    try:
        _reader, writer = await _open(host, port, timeout_s)
    except _Unreachable as err:
        key, detail = err.args
        return str(key), str(detail)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return CANNOT_CONNECT, "a TCP service answers on this port, but not as a Modbus TCP gateway"


class _Unreachable(Exception):
    """A TCP connection could not be opened: ``(error key, detail)``."""


async def _open(
    host: str, port: int, timeout_s: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    try:
        await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise _Unreachable(CANNOT_RESOLVE, str(err.strerror or err)) from err
    try:
        return await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except ConnectionRefusedError as err:
        raise _Unreachable(CONNECTION_REFUSED, "connection refused") from err
    except TimeoutError as err:
        raise _Unreachable(CONNECTION_TIMEOUT, f"no answer within {timeout_s:g} s") from err
    except OSError as err:
        raise _Unreachable(CANNOT_CONNECT, str(err.strerror or err)) from err


def probe_request() -> bytes:
    """The probe: read unit 1's identification block, as the scan's first request does."""
    pdu = struct.pack(">BHH", _READ_HOLDING, IDENTIFICATION.start, IDENTIFICATION.count)
    return struct.pack(">HHHB", _PROBE_TID, 0, len(pdu) + 1, _PROBE_UNIT) + pdu


def modbus_framed(data: bytes, request: bytes, complete: bool) -> bool:
    """Whether ``data`` is (the start of) a Modbus TCP answer to ``request``: the transaction
    id echoed, protocol 0, a length that fits; when ``complete`` (``data`` is the whole frame its
    header announces), a normal answer whose byte count matches what was asked, or an exception
    answer. The unit id is not judged (TCP devices answer as unit 0 or 255)."""
    if len(data) < 6:
        return not complete and struct.pack(">HH", _PROBE_TID, 0).startswith(data[:4])
    tid, protocol, length = (int(v) for v in struct.unpack(">HHH", data[:6]))
    if tid != _PROBE_TID or protocol != 0 or not 2 <= length <= _MAX_ADU - 6:
        return False
    if not complete:
        return True
    if len(data) != 6 + length:
        return False
    function = data[7]
    if function == _READ_HOLDING | 0x80:
        return length == 3
    count = int(struct.unpack(">H", request[10:12])[0])
    return function == _READ_HOLDING and length == 3 + 2 * count and data[8] == 2 * count


def _frame_length(data: bytes) -> int | None:
    """The length of the frame ``data`` starts with, by its header (None: header incomplete)."""
    return 6 + int(struct.unpack(">H", data[4:6])[0]) if len(data) >= 6 else None


def _described(data: bytes, request: bytes) -> str:
    """What a non-Modbus service answered, short and printable."""
    if data.startswith(request):
        return "it sent the request back (an echo service, not a Modbus TCP server)"
    first = data.split(b"\n", 1)[0].rstrip(b"\r")
    text = first[:48].decode("ascii", errors="replace")
    if first and all(32 <= b < 127 for b in first[:48]):
        return f'it answered "{text}"'
    return f"it answered {len(data)} byte(s) that are not a Modbus TCP frame ({data[:12].hex(' ')})"


async def probe(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> tuple[str, str] | None:
    """``(error key, detail)`` when ``host:port`` cannot be reached or is not a Modbus TCP
    server; None when it answered like one, or stayed silent for ``timeout_s`` (a Modbus
    gateway may not answer for an absent unit id: the scan judges that)."""
    try:
        reader, writer = await _open(host, port, timeout_s)
    except _Unreachable as err:
        key, detail = err.args
        return str(key), str(detail)
    request = probe_request()
    data = b""
    closed = False
    try:
        async with asyncio.timeout(timeout_s):
            writer.write(request)
            await writer.drain()
            while (n := _frame_length(data)) is None or len(data) < n:
                chunk = await reader.read(_MAX_ADU)
                if not chunk:
                    closed = True
                    break
                data += chunk
                if not modbus_framed(data, request, complete=False):
                    break  # not Modbus: judged by what came
    except TimeoutError:
        pass
    except OSError:
        closed = True  # reset by the peer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if not data:
        if closed:
            return NOT_MODBUS, "it closed the connection without answering a Modbus request"
        return None  # silent: a gateway may not answer for an absent unit id
    n = _frame_length(data)
    if n is not None and len(data) >= n:
        framed = modbus_framed(data[:n], request, complete=True)
    else:
        framed = not closed and modbus_framed(data, request, complete=False)
    return None if framed else (NOT_MODBUS, _described(data, request))
