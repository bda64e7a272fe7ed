"""Async Modbus TCP client for a plant's gateway: discovery, polling and commands.

A device is identified once (one read of its identification block) and then polled with one
read of its input-register block, which holds every measurement, status and alarm bit and
counter (docs/register-map.md). ``read_all`` spreads the polls of many devices over a few TCP
connections so that one silent device (a timeout) does not hold up the others. Commands have a
connection of their own, so a command issued in the middle of a refresh of hundreds of devices
is sent at once instead of queueing behind the reads. Every request is counted in
``request_count``. Errors are typed (``errors.py``): a device that does not answer is
``DeviceUnavailable``, one that answers with a Modbus exception is ``DeviceError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import fields
from typing import Any, Final, Protocol

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from .errors import (
    GATEWAY_CODES,
    BadResponse,
    DeviceError,
    DeviceLayerError,
    DeviceUnavailable,
    ExceptionCode,
    GatewayUnavailable,
)
from .library_log import OwnClientContext, quiet_library_log
from .models import (
    AtsReading,
    DeviceIdentity,
    DeviceType,
    EnvReading,
    MpduReading,
    Reading,
    SbmReading,
)
from .registers import (
    ATS_MAP,
    IDENTIFICATION,
    MAP_VERSION,
    MAPS,
    MAX_UNIT_ID,
    MPDU_MAP,
    SBM_MAP,
    DeviceMap,
)

__all__ = ["PlantClient", "ReadAllResult"]

_LOGGER = logging.getLogger(__name__)
quiet_library_log()  # pymodbus's per-request errors of this layer's connections (not others')

_SCAN_ATTEMPTS: Final = 3
"""Tries per unit id during a scan when the event loop stalled or the connection dropped."""
_SCAN_STALL_FACTOR: Final = 1.5
"""A timeout that took this many times its length was a stalled event loop, not a silence."""
_SCAN_RECONNECT_DELAY_S: Final = 0.5
"""Pause before reconnecting during a scan (doubled at each further try)."""

type ReadAllResult = dict[str, Reading | DeviceLayerError]
"""Per device (by plant id): its reading, or the error that prevented it."""

_READING_TYPES: Final[dict[DeviceType, type[Reading]]] = {
    DeviceType.ATS: AtsReading,
    DeviceType.MPDU: MpduReading,
    DeviceType.SBM: SbmReading,
    DeviceType.ENV: EnvReading,
}
_FIELD_NAMES: Final[dict[type[Reading], tuple[str, ...]]] = {
    cls: tuple(f.name for f in fields(cls)) for cls in _READING_TYPES.values()
}
# Array fields of a reading that hold one element per upstream (source or path).
_PER_UPSTREAM: Final = frozenset(
    {
        "source_voltage_v",
        "source_frequency_hz",
        "source_available",
        "time_on_source_s",
        "path_energized",
    }
)


class _Response(Protocol):
    """What this module uses of a pymodbus response PDU."""

    registers: list[int]
    bits: list[bool]

    def isError(self) -> bool: ...


def _contain_undecodable(client: AsyncModbusTcpClient) -> None:
    """Drop an undecodable reply inside pymodbus's protocol callback instead of raising there.

    pymodbus raises ``ModbusIOException`` from ``data_received`` when a frame cannot be decoded
    (garbage from a faulty gateway); asyncio then closes the connection and logs the traceback
    at ERROR as a fatal protocol error. Dropping what was received makes the request end as
    "no answer" (the device goes unavailable, logged once by the integration) and keeps the
    connection for the next request.
    """
    ctx = client.ctx
    decode = ctx.callback_data

    def guarded(data: bytes, addr: tuple[str, int] | None = None) -> int:
        try:
            return int(decode(data, addr))
        except (ModbusException, struct.error, ValueError, IndexError, KeyError, TypeError) as exc:
            # pymodbus's decoders raise more than ModbusException on a short write reply
            # (struct.error), found by the soak.
            _LOGGER.debug("dropping an undecodable reply (%d bytes): %s", len(data), exc)
            return len(data)

    ctx.callback_data = guarded  # type: ignore[method-assign]


class _Lane:
    """One TCP connection to the gateway; pymodbus runs its requests one at a time."""

    def __init__(self, owner: PlantClient, timeout: float) -> None:
        self._owner = owner
        self.disconnects = 0
        """Times the connection was lost (pymodbus reconnects by itself, quietly)."""
        self._client = AsyncModbusTcpClient(
            owner.host,
            port=owner.port,
            timeout=timeout,
            retries=0,
            reconnect_delay=0.1,
            reconnect_delay_max=10.0,
            trace_connect=self._on_connect,
        )
        _contain_undecodable(self._client)

    def _on_connect(self, connected: bool) -> None:
        if not connected:
            self.disconnects += 1

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    async def connect(self) -> None:
        if self.connected:
            return
        # The transport's callbacks and pymodbus's reconnect task inherit the context
        # created here: their log lines are this integration's (``library_log.py``).
        with OwnClientContext():
            connected = await self._client.connect()
        if not connected:
            raise GatewayUnavailable(
                f"cannot connect to Modbus gateway {self._owner.host}:{self._owner.port}"
            )

    def close(self) -> None:
        with OwnClientContext():
            self._client.close()

    async def call(
        self,
        unit_id: int,
        what: str,
        request: Callable[[AsyncModbusTcpClient], Awaitable[Any]],
    ) -> _Response:
        """Run one request; map every failure onto the device layer's errors."""
        await self.connect()
        self._owner.request_count += 1
        try:
            with OwnClientContext():
                response: _Response = await request(self._client)
        except ConnectionException as exc:
            raise GatewayUnavailable(f"unit {unit_id}: {what}: {exc}", unit_id) from exc
        except ModbusIOException as exc:
            if isinstance(exc.__cause__, asyncio.CancelledError):
                raise asyncio.CancelledError from exc  # pymodbus wraps our own cancellation
            text = str(exc)
            if "No response" in text:
                raise DeviceUnavailable(f"unit {unit_id}: {what}: no answer", unit_id) from exc
            raise BadResponse(f"unit {unit_id}: {what}: {text}", unit_id) from exc
        except ModbusException as exc:
            raise BadResponse(f"unit {unit_id}: {what}: {exc}", unit_id) from exc
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            name = _code_name(code)
            if code in GATEWAY_CODES:
                raise DeviceUnavailable(
                    f"unit {unit_id}: {what}: gateway reports {name}", unit_id, code
                )
            raise DeviceError(f"unit {unit_id}: {what}: {name}", unit_id, code)
        return response


def _code_name(code: int) -> str:
    try:
        return ExceptionCode(code).name
    except ValueError:
        return f"exception 0x{code:02X}"


class PlantClient:
    """Client of one Modbus TCP gateway serving a plant's devices.

    ``timeout`` bounds each request; ``read_all`` may open up to ``concurrency`` connections.
    """

    def __init__(self, host: str, port: int = 502, *, timeout: float = 1.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.request_count = 0
        """Requests sent since this client was created (successful or not)."""
        self._lanes: list[_Lane] = []
        self._command_lane: _Lane | None = None

    async def __aenter__(self) -> PlantClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """Whether the first connection is open."""
        return bool(self._lanes) and self._lanes[0].connected

    async def connect(self) -> None:
        """Open the first connection; raises ``GatewayUnavailable``."""
        await self._lanes_for(1)[0].connect()

    async def close(self) -> None:
        """Close every connection."""
        for lane in self._lanes:
            lane.close()
        self._lanes.clear()
        if self._command_lane is not None:
            self._command_lane.close()
            self._command_lane = None

    def _commands(self) -> _Lane:
        """The connection commands go over (never shared with polling, so never queued)."""
        if self._command_lane is None:
            self._command_lane = _Lane(self, self.timeout)
        return self._command_lane

    def _lanes_for(self, n: int) -> list[_Lane]:
        while len(self._lanes) < max(1, n):
            self._lanes.append(_Lane(self, self.timeout))
        return self._lanes[: max(1, n)]

    # -- discovery ---------------------------------------------------------------------------

    async def read_identity(self, unit_id: int, *, priority: bool = False) -> DeviceIdentity:
        """Read and decode a device's identification block (``priority``: over the command
        connection, ahead of a poll in progress)."""
        lane = self._commands() if priority else self._lanes_for(1)[0]
        return await self._read_identity(lane, unit_id)

    async def _read_identity(self, lane: _Lane, unit_id: int) -> DeviceIdentity:
        block = IDENTIFICATION
        response = await lane.call(
            unit_id,
            "read identification",
            lambda c: c.read_holding_registers(block.start, count=block.count, device_id=unit_id),
        )
        try:
            v = block.decode(response.registers)
        except ValueError as exc:
            raise BadResponse(f"unit {unit_id}: identification: {exc}", unit_id) from exc
        try:
            device_type = DeviceType(v["device_type"])
        except ValueError as exc:
            raise BadResponse(
                f"unit {unit_id}: unknown device type {v['device_type']!r}", unit_id
            ) from exc
        if v["map_version"] != MAP_VERSION:
            raise BadResponse(
                f"unit {unit_id}: register map version {v['map_version']}, "
                f"this client speaks {MAP_VERSION}",
                unit_id,
            )
        upstream: tuple[str, ...] = v["upstream"]
        n_up: int = v["upstream_count"]
        return DeviceIdentity(
            unit_id=unit_id,
            device_type=device_type,
            plant_id=str(v["plant_id"]),
            model=str(v["model"]),
            firmware=str(v["firmware"]),
            map_version=MAP_VERSION,
            upstream=upstream[: max(0, min(n_up, len(upstream)))],
            rating_a=float(v["rating_a"]),
            critical=bool(v["critical"]),
            transfer_time_ms=float(v["transfer_time_ms"]),
            rated_operations=int(v["rated_operations"]),
        )

    async def scan(
        self,
        unit_ids: Iterable[int] = range(1, MAX_UNIT_ID + 1),
        *,
        per_unit_timeout: float = 0.5,
        concurrency: int = 4,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[DeviceIdentity]:
        """Identify the devices behind the gateway, in unit-id order.

        Unit ids that do not answer, answer with an exception, or answer with something that is
        not this register map are skipped; one whose silence outlasted the timeout by half
        (a stalled event loop) or whose connection dropped is asked up to three times. Takes
        about ``len(unit_ids) / concurrency * per_unit_timeout`` seconds on a free event loop.
        ``progress(done, total)`` is called after each unit id. Raises ``GatewayUnavailable``
        if the gateway is still unreachable after three tries (1.5 s of pauses).
        """
        ids = list(unit_ids)
        found: dict[int, DeviceIdentity] = {}
        lanes = [_Lane(self, per_unit_timeout) for _ in range(max(1, min(concurrency, len(ids))))]
        queue = iter(ids)
        done = 0
        loop = asyncio.get_running_loop()

        async def identify(lane: _Lane, unit_id: int) -> DeviceIdentity | None:
            # A busy event loop (Home Assistant setting up hundreds of entities for another
            # gateway) stretches every wait: the timer of a request fires late, together with
            # the answer that came meanwhile, and wins. A silence that took much longer than
            # the timeout says the loop stalled, not that the unit id is empty: ask again. A
            # lost connection is retried too, after a pause, before the gateway is given up.
            for attempt in range(_SCAN_ATTEMPTS):
                last = attempt == _SCAN_ATTEMPTS - 1
                started = loop.time()
                disconnects = lane.disconnects
                try:
                    return await self._read_identity(lane, unit_id)
                except GatewayUnavailable:
                    if last:
                        raise
                    await asyncio.sleep(_SCAN_RECONNECT_DELAY_S * 2**attempt)
                except DeviceUnavailable as exc:
                    stalled = loop.time() - started > per_unit_timeout * _SCAN_STALL_FACTOR
                    # A connection lost mid-request surfaces as a request with no answer.
                    dropped = lane.disconnects > disconnects
                    if last or not (stalled or dropped):
                        _LOGGER.debug("scan: unit %s skipped: %s", unit_id, exc)
                        return None
                    if dropped:
                        await asyncio.sleep(_SCAN_RECONNECT_DELAY_S * 2**attempt)
                except DeviceLayerError as exc:
                    _LOGGER.debug("scan: unit %s skipped: %s", unit_id, exc)
                    return None
            return None

        async def worker(lane: _Lane) -> None:
            nonlocal done
            for unit_id in queue:
                if (identity := await identify(lane, unit_id)) is not None:
                    found[unit_id] = identity
                done += 1
                if progress is not None:
                    progress(done, len(ids))

        try:
            async with asyncio.TaskGroup() as group:
                for lane in lanes:
                    group.create_task(worker(lane))
        except* GatewayUnavailable as errors:
            raise errors.exceptions[0] from None
        finally:
            for lane in lanes:
                lane.close()
        return [found[u] for u in sorted(found)]

    # -- polling -----------------------------------------------------------------------------

    async def read_device(self, identity: DeviceIdentity, *, priority: bool = False) -> Reading:
        """One poll of a device: one request for its whole input-register block.

        ``priority``: over the command connection, ahead of any ``read_all`` in progress (to
        show what a command did at once).
        """
        lane = self._commands() if priority else self._lanes_for(1)[0]
        return await self._read_device(lane, identity)

    async def _read_device(self, lane: _Lane, identity: DeviceIdentity) -> Reading:
        unit_id = identity.unit_id
        block = MAPS[identity.device_type].measurements
        response = await lane.call(
            unit_id,
            "read measurements",
            lambda c: c.read_input_registers(block.start, count=block.count, device_id=unit_id),
        )
        try:
            values: dict[str, Any] = block.decode(response.registers)
        except ValueError as exc:
            raise BadResponse(f"unit {unit_id}: measurements: {exc}", unit_id) from exc
        n = len(identity.upstream)
        for name in _PER_UPSTREAM.intersection(values):
            values[name] = tuple(values[name][:n])
        values.update(
            id=identity.plant_id,
            sources=identity.upstream,
            paths=identity.upstream,
            ats=identity.upstream[0] if identity.upstream else "",
            rating_a=identity.rating_a,
            critical=identity.critical,
            transfer_time_ms=identity.transfer_time_ms,
            rated_operations=identity.rated_operations,
        )
        cls = _READING_TYPES[identity.device_type]
        return cls(**{name: values[name] for name in _FIELD_NAMES[cls]})

    async def read_all(
        self, identities: Sequence[DeviceIdentity], *, concurrency: int = 4
    ) -> ReadAllResult:
        """Poll every device, over up to ``concurrency`` connections.

        Returns each device's reading or the ``DeviceLayerError`` that prevented it, by plant
        id. Raises ``GatewayUnavailable`` only when no connection can be opened at all.
        """
        lanes = self._lanes_for(min(concurrency, len(identities)))
        await lanes[0].connect()
        if self._command_lane is None:
            # Open the command connection now, so that the first command does not pay for it.
            with contextlib.suppress(GatewayUnavailable):
                await self._commands().connect()
        out: ReadAllResult = {}
        queue = iter(identities)

        async def worker(lane: _Lane) -> None:
            for identity in queue:
                disconnects = lane.disconnects
                try:
                    out[identity.plant_id] = await self._read_device(lane, identity)
                except DeviceLayerError as exc:
                    out[identity.plant_id] = exc
                    if lane.disconnects == disconnects:
                        continue
                    # The connection dropped under this request (a gateway restarting, a
                    # network blip; pymodbus reports it as no answer): ask once more on a
                    # fresh connection rather than mark the device unavailable for a poll.
                    try:
                        out[identity.plant_id] = await self._read_device(lane, identity)
                    except DeviceLayerError as again:
                        out[identity.plant_id] = again

        async with asyncio.TaskGroup() as group:
            for lane in lanes:
                group.create_task(worker(lane))
        return {i.plant_id: out[i.plant_id] for i in identities}

    # -- commands ----------------------------------------------------------------------------

    async def _write_register(
        self, identity: DeviceIdentity, dmap: DeviceMap, name: str, value: int
    ) -> None:
        _check_type(identity, dmap)
        assert dmap.commands is not None
        address = dmap.commands.field(name).address
        unit_id = identity.unit_id
        await self._commands().call(
            unit_id,
            f"write {name}={value}",
            lambda c: c.write_register(address, value & 0xFFFF, device_id=unit_id),
        )

    async def _write_coil(
        self, identity: DeviceIdentity, dmap: DeviceMap, name: str, value: bool
    ) -> None:
        _check_type(identity, dmap)
        address = next(c.address for c in dmap.coils if c.name == name)
        unit_id = identity.unit_id
        await self._commands().call(
            unit_id,
            f"write {name}={int(value)}",
            lambda c: c.write_coil(address, value, device_id=unit_id),
        )

    async def set_sbm_path(self, identity: DeviceIdentity, path: str | int) -> None:
        """Select a circuit's active path (an MPDU id or an index; make-before-break)."""
        index = _index(identity.paths, path, identity, "path")
        await self._write_register(identity, SBM_MAP, "active_path", index)

    async def set_sbm_output(self, identity: DeviceIdentity, on: bool) -> None:
        """Switch a circuit's SBM output on or off."""
        await self._write_coil(identity, SBM_MAP, "output_on", on)

    async def set_ats_inhibit(self, identity: DeviceIdentity, inhibit: bool) -> None:
        """Inhibit (or allow again) an ATS's discretionary transfers."""
        await self._write_coil(identity, ATS_MAP, "inhibit", inhibit)

    async def set_ats_preferred_source(self, identity: DeviceIdentity, source: str | int) -> None:
        """Set the source an ATS prefers (a source id or an index)."""
        index = _index(identity.sources, source, identity, "source")
        await self._write_register(identity, ATS_MAP, "preferred_source", index)

    async def ats_transfer(self, identity: DeviceIdentity, source: str | int) -> None:
        """Transfer an ATS to a source now (a source id or an index)."""
        index = _index(identity.sources, source, identity, "source")
        await self._write_register(identity, ATS_MAP, "transfer_to_source", index)

    async def ats_self_test(self, identity: DeviceIdentity) -> None:
        """Run an ATS self-test (closed transition; measures the transfer time)."""
        await self._write_coil(identity, ATS_MAP, "self_test", True)

    async def ats_reset_alarms(self, identity: DeviceIdentity) -> None:
        """Clear an ATS's latched alarms whose cause has gone."""
        await self._write_coil(identity, ATS_MAP, "reset_alarms", True)

    async def set_mpdu_output(self, identity: DeviceIdentity, on: bool) -> None:
        """Switch an MPDU's output on or off."""
        await self._write_coil(identity, MPDU_MAP, "output_on", on)


def _check_type(identity: DeviceIdentity, dmap: DeviceMap) -> None:
    if identity.device_type is not dmap.device_type:
        raise ValueError(
            f"{identity.plant_id} is an {identity.device_type.name}, not an {dmap.device_type.name}"
        )


def _index(options: tuple[str, ...], choice: str | int, identity: DeviceIdentity, what: str) -> int:
    """An index as given, or the index of an id (``ValueError`` for an unknown id); the device
    itself judges whether an index is legal."""
    if isinstance(choice, bool):
        raise TypeError(f"{what} must be an id or an index, not {choice!r}")
    if isinstance(choice, int):
        return choice
    if choice not in options:
        raise ValueError(f"{choice!r} is not a {what} of {identity.plant_id}: {options}")
    return options.index(choice)
