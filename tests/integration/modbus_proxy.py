"""A Modbus TCP gateway in front of the simulator that misbehaves on demand, per unit id.

Real gateways and devices send exceptions, short frames and garbage, or fall silent; the
simulator only does the well-behaved part. This proxy forwards every request to the simulator
unchanged (one upstream connection per client connection) unless a fault is set for the request's
unit id, in which case it answers that fault itself. With no upstream it is a gateway with
nothing behind it (every unit id answers exception 0x0A).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import Counter
from typing import Literal

from custom_components.datacenter_power.device.registers import IDENTIFICATION

type Fault = Literal[
    "exception",
    "short",
    "garbage",
    "stray",
    "silent",
    "absent",
    "reset",
    "wrong_unit",
    "slow",
    "busy",
    "gateway_path",
    "gateway_target",
    "illegal_function",
    "illegal_address",
    "illegal_value",
    "device_failure",
    "replaced",
]

EXCEPTION_CODES: dict[str, int] = {
    "illegal_function": 0x01,
    "illegal_address": 0x02,
    "illegal_value": 0x03,
    "device_failure": 0x04,
    "exception": 0x04,
    "busy": 0x06,
    "gateway_path": 0x0A,
    "gateway_target": 0x0B,
}
"""Modbus exception codes answered for the faults of that name."""
REPLACED_MODEL = "SPARE-9"
"""The model a ``replaced`` unit reports: the unit at that address was swapped for another
(every other request is forwarded unchanged)."""
WRITE_FUNCTIONS = frozenset({0x05, 0x06, 0x0F, 0x10})
"""Modbus function codes that write (a command, not a read)."""
SLOW_S = 5.0
"""How late a ``slow`` answer comes (longer than any request timeout)."""


class _Reset(Exception):
    """Drop the client's connection in the middle of a request."""


_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id


class ModbusProxy:
    """Listen on 127.0.0.1; ``faults[unit_id]`` decides how that unit answers."""

    def __init__(self, upstream_port: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.faults: dict[int, Fault] = {}
        self.once: dict[int, Fault] = {}
        """A fault for the next request of that unit id only (then ``faults`` apply again)."""
        self.asked: Counter[int] = Counter()
        """Requests received, per unit id."""
        self.written: Counter[int] = Counter()
        """Write requests (coils or registers: a command) received, per unit id."""
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.requests = 0

    async def start(self) -> int:
        """Start listening on a free port; returns it."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Close the listener and every connection."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    def drop_connections(self) -> None:
        """Close every open connection at once (a gateway restart); the listener stays."""
        for writer in list(self._writers):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            if self.upstream_port is not None:
                up = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                self._writers.add(up[1])
            while True:
                header = await reader.readexactly(_MBAP.size)
                tid, _proto, length, unit = _MBAP.unpack(header)
                pdu = await reader.readexactly(length - 1)
                answer = await self._answer(header, tid, unit, pdu, up)
                if answer is not None:
                    writer.write(answer)
                    await writer.drain()
        except asyncio.IncompleteReadError, ConnectionError, _Reset:
            pass
        finally:
            for w in (writer, up[1] if up else None):
                if w is not None:
                    self._writers.discard(w)
                    w.close()
                    with contextlib.suppress(ConnectionError):
                        await w.wait_closed()

    async def _answer(
        self,
        header: bytes,
        tid: int,
        unit: int,
        pdu: bytes,
        up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
    ) -> bytes | None:
        fault = self.once.pop(unit, None) or self.faults.get(unit, "absent" if up is None else None)
        function = pdu[0]
        self.requests += 1
        self.asked[unit] += 1
        if function in WRITE_FUNCTIONS:
            self.written[unit] += 1
        if fault in EXCEPTION_CODES:
            return _frame(tid, unit, bytes([function | 0x80, EXCEPTION_CODES[fault]]))
        match fault:
            case None:
                assert up is not None
                return await _forward(header, pdu, up)
            case "replaced":
                assert up is not None
                answer = await _forward(header, pdu, up)
                start = struct.unpack(">H", pdu[1:3])[0] if len(pdu) >= 3 else -1
                if function == 0x03 and start == IDENTIFICATION.start:
                    return _with_model(answer, REPLACED_MODEL)
                return answer
            case "silent":
                return None
            case "absent":
                return _frame(tid, unit, bytes([function | 0x80, 0x0A]))
            case "exception":
                return _frame(tid, unit, bytes([function | 0x80, 0x04]))
            case "short":
                # A well-formed frame holding two registers where many were asked for.
                return _frame(tid, unit, bytes([function, 4, 0, 1, 0, 2]))
            case "garbage":
                # Claims 255 bytes of registers and carries one: undecodable.
                return _frame(tid, unit, bytes([function, 0xFF, 0x13]))
            case "reset":
                raise _Reset
            case "wrong_unit":
                # A well-formed answer from another unit id (a mis-wired gateway).
                return _frame(tid, (unit % 247) + 1, bytes([function, 2, 0, 1]))
            case "slow":
                await asyncio.sleep(SLOW_S)
                return None
            case "stray":
                # A well-formed answer to some other request (another transaction id).
                return _frame((tid + 1) & 0xFFFF, unit, bytes([function, 2, 0, 1]))
        return None  # pragma: no cover


async def _forward(
    header: bytes, pdu: bytes, up: tuple[asyncio.StreamReader, asyncio.StreamWriter]
) -> bytes:
    up[1].write(header + pdu)
    await up[1].drain()
    head = await up[0].readexactly(_MBAP.size)
    return head + await up[0].readexactly(_MBAP.unpack(head)[2] - 1)


def _with_model(answer: bytes, model: str) -> bytes:
    """An identification reply (function 3 from register 0) with another model name."""
    if len(answer) < _MBAP.size + 2 or answer[_MBAP.size] != 0x03:
        return answer  # an exception reply: nothing to rewrite
    field = IDENTIFICATION.field("model")
    words = field.encode({"model": model})
    offset = _MBAP.size + 2 + 2 * (field.address - IDENTIFICATION.start)
    if offset + 2 * len(words) > len(answer):
        return answer
    data = struct.pack(f">{len(words)}H", *words)
    return answer[:offset] + data + answer[offset + len(data) :]


def _frame(tid: int, unit: int, pdu: bytes) -> bytes:
    return _MBAP.pack(tid, 0, len(pdu) + 1, unit) + pdu
