"""The simulated plant served over Modbus TCP, one unit id per device, as a gateway would.

Every device (ATS, MPDU, SBM, environment sensor) is a pymodbus ``SimDevice`` laid out by the
device layer's register map (``custom_components/datacenter_power/device/registers.py``, the
single source of truth, documented in docs/register-map.md). Registers are filled lazily: each
plant step (or command) starts a new generation, and a device's table is re-encoded from
``Plant.telemetry()`` the first time it is accessed in that generation. Writes to command
coils/registers call ``Plant.command_*``; an illegal command returns a Modbus exception, never a
silent no-op. A device under ``comms_loss`` does not answer at all; a unit id with no device gets
exception 0x0A (gateway path unavailable).

Unit ids (stable for a scenario; see :func:`assign_unit_ids`): 1 = environment sensor, 2-9 = ATSs,
10-39 = MPDUs, 40-247 = SBMs, each group in scenario order (sequential from 1 in the same order
when a group overflows its range). A plant of more than 247 devices, or a scenario with a
``gateways`` section, is served by several gateways, one TCP port each, each with its own unit
ids (see :func:`assign_gateways`); one clock and one plant behind all of them.
Unit ids and identification blocks come from ``units.py`` (the same identities the evaluation
harness builds its topology from).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import fields
from functools import partial
from typing import Any, Final

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simcore import SimCore

from custom_components.datacenter_power.device.models import DeviceType
from custom_components.datacenter_power.device.registers import Table

from .plant import CommandRejected, Plant
from .telemetry import (
    AtsTelemetry,
    CircuitTelemetry,
    EnvTelemetry,
    MpduTelemetry,
    PlantTelemetry,
)
from .units import (
    FIRMWARE,
    UNIT_RANGES,
    Unit,
    assign_gateways,
    assign_unit_ids,
    device_identities,
)

__all__ = [
    "FIRMWARE",
    "UNIT_RANGES",
    "PlantServer",
    "Unit",
    "assign_gateways",
    "assign_unit_ids",
]

_LOGGER = logging.getLogger(__name__)

_TABLE_OF_FC: Final[dict[int, Table]] = {
    1: Table.COIL,
    5: Table.COIL,
    15: Table.COIL,
    2: Table.DISCRETE,
    3: Table.HOLDING,
    6: Table.HOLDING,
    16: Table.HOLDING,
    22: Table.HOLDING,
    23: Table.HOLDING,
    4: Table.INPUT,
}

type _Telemetry = AtsTelemetry | MpduTelemetry | CircuitTelemetry | EnvTelemetry


class PlantServer:
    """Modbus TCP gateways in front of a running :class:`Plant` (one, or as many as
    :func:`assign_gateways` needs, each on its own TCP port).

    ``speed`` is simulated seconds per wall-clock second (0: the plant only moves when
    :meth:`advance` is called, as tests do).
    """

    def __init__(self, plant: Plant, *, speed: float = 1.0, firmware: str = FIRMWARE) -> None:
        if speed < 0:
            raise ValueError(f"speed must be >= 0, got {speed}")
        self.plant = plant
        self.speed = speed
        self.firmware = firmware
        self.gateways: list[dict[int, Unit]] = [
            {u.unit_id: u for u in units} for units in assign_gateways(plant)
        ]
        """Per gateway (in port order): its devices by unit id."""
        self.units: dict[int, Unit] = self.gateways[0]
        """The first gateway's devices by unit id (the whole plant when it has one gateway)."""
        self.unit_ids: dict[str, int] = {
            u.plant_id: u.unit_id for units in self.gateways for u in units.values()
        }
        self.gateway_of: dict[str, int] = {
            u.plant_id: i for i, units in enumerate(self.gateways) for u in units.values()
        }
        """Plant id -> index of the gateway (and port in :attr:`ports`) serving it."""
        self.identities = {i.plant_id: i for i in device_identities(plant, firmware)}
        """Plant id -> what the device reports in its identification block."""
        self._generation = 0
        self._telemetry: PlantTelemetry | None = None
        self._telemetry_generation = -1
        self._fresh: dict[tuple[str, Table], int] = {}
        self._servers: list[ModbusTcpServer] = []
        self._clock: asyncio.Task[None] | None = None
        self.ports: list[int] = []
        """The TCP port of each gateway, once started."""
        self.port = 0
        """The first gateway's port."""
        self.requests = 0
        """Register-table accesses by clients (a write that echoes its value counts twice)."""
        self.on_step: Callable[[PlantServer], None] | None = None
        """Called after the clock steps the plant (e.g. for logging)."""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0 = free ports), further gateways on the following ports,
        and start the clock; returns the first gateway's port."""
        try:
            for i, units in enumerate(self.gateways):
                self.ports.append(await self._listen(units, host, port + i if port else 0))
        except OSError:
            await self.stop()
            raise
        self.port = self.ports[0]
        if self.speed > 0:
            self._clock = asyncio.create_task(self._run_clock(), name="dcp_sim clock")
        return self.port

    async def _listen(self, units: Mapping[int, Unit], host: str, port: int) -> int:
        devices = [self._sim_device(u) for u in units.values()]
        server = ModbusTcpServer(devices, address=(host, port), ignore_missing_devices=True)
        # pymodbus builds a SimCore from the devices; ours answers unknown unit ids like a gateway.
        server.context = _GatewayCore(devices)
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus's way of saying the bind failed
            raise OSError(f"cannot listen on {host}:{port}: {exc}") from exc
        self._servers.append(server)
        sockets = getattr(server.transport, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def stop(self) -> None:
        """Stop the clock and close the listeners and every connection."""
        if self._clock is not None:
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock
            self._clock = None
        for server in self._servers:
            await server.shutdown()  # type: ignore[no-untyped-call]
        self._servers.clear()

    async def __aenter__(self) -> PlantServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- time --------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Step the plant ``seconds`` forward (whole physics steps) and refresh the registers."""
        self.plant.advance_to(self.plant.t_s + seconds)
        self.invalidate()

    def invalidate(self) -> None:
        """Re-encode every register from telemetry at its next access (after changing the plant
        directly)."""
        self._generation += 1

    async def _run_clock(self) -> None:
        loop = asyncio.get_running_loop()
        wall0, sim0 = loop.time(), self.plant.t_s
        step = self.plant.step_s
        while True:
            target = sim0 + (loop.time() - wall0) * self.speed
            budget = loop.time() + 0.05  # keep serving requests while catching up
            stepped = False
            while self.plant.t_s + step <= target + 1e-9 and loop.time() < budget:
                self.plant.step()
                stepped = True
            if stepped:
                self.invalidate()
                if self.on_step is not None:
                    self.on_step(self)
            due = (self.plant.t_s + step - sim0) / self.speed - (loop.time() - wall0)
            await asyncio.sleep(min(max(due, 0.0), 1.0))

    # -- registers ---------------------------------------------------------------------------

    def _snapshot(self) -> PlantTelemetry:
        if self._telemetry is None or self._telemetry_generation != self._generation:
            self._telemetry = self.plant.telemetry()
            self._telemetry_generation = self._generation
        return self._telemetry

    def telemetry_of(self, unit: Unit) -> _Telemetry:
        """The device's current telemetry."""
        tel = self._snapshot()
        match unit.device_type:
            case DeviceType.ATS:
                return tel.ats[unit.plant_id]
            case DeviceType.MPDU:
                return tel.mpdus[unit.plant_id]
            case DeviceType.SBM:
                return tel.circuits[unit.plant_id]
            case _:
                return tel.env

    def _identification(self, unit: Unit) -> list[int]:
        identity = self.identities[unit.plant_id]
        values: dict[str, object] = {
            "device_type": int(identity.device_type),
            "map_version": identity.map_version,
            "plant_id": identity.plant_id,
            "model": identity.model,
            "firmware": identity.firmware,
            "rating_a": identity.rating_a,
            "critical": identity.critical,
            "upstream_count": len(identity.upstream),
            "upstream": identity.upstream,
            "transfer_time_ms": identity.transfer_time_ms,
            "rated_operations": identity.rated_operations,
        }
        return unit.map.identification.encode(values)

    def _state(self, unit: Unit) -> dict[str, Any]:
        tel = self.telemetry_of(unit)
        values: dict[str, Any] = {f.name: getattr(tel, f.name) for f in fields(tel)}
        if isinstance(tel, AtsTelemetry):
            values["transfer_to_source"] = tel.active_source
            values["self_test"] = values["reset_alarms"] = False
        return values

    def _sim_device(self, unit: Unit) -> SimDevice:
        dmap = unit.map
        holding = [
            SimData(0, values=self._identification(unit), datatype=DataType.UINT16, readonly=True)
        ]
        if dmap.commands is not None:
            holding.append(
                SimData(
                    dmap.commands.start,
                    values=[0] * dmap.commands.count,
                    datatype=DataType.UINT16,
                )
            )
        simdata = (
            [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
            holding,
            [
                SimData(
                    0,
                    values=[0] * dmap.measurements.count,
                    datatype=DataType.UINT16,
                    readonly=True,
                )
            ],
        )
        return SimDevice(id=unit.unit_id, simdata=simdata, action=partial(self._action, unit))

    def _refresh(self, unit: Unit, table: Table, start: int, registers: list[int]) -> None:
        """Re-encode one table of one device in place if it is older than the plant state."""
        key = (unit.plant_id, table)
        if self._fresh.get(key) == self._generation:
            return
        self._fresh[key] = self._generation
        dmap = unit.map
        values = self._state(unit)
        if table is Table.INPUT:
            words = dmap.measurements.encode(values)
            registers[: len(words)] = words
        elif table is Table.HOLDING and dmap.commands is not None:
            words = dmap.commands.encode(values)
            offset = dmap.commands.start - start
            registers[offset : offset + len(words)] = words
        elif table is Table.COIL and dmap.coils:
            registers[0] = sum(1 << c.address for c in dmap.coils if values[c.name])

    async def _action(
        self,
        unit: Unit,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus hook, called before every access to one of the device's tables."""
        self.requests += 1
        if not self.telemetry_of(unit).reachable:
            # comms_loss: the device is silent; pymodbus then sends nothing.
            raise NoSuchIdException(  # type: ignore[no-untyped-call]
                f"unit {unit.unit_id} ({unit.plant_id}) is not answering"
            )
        table = _TABLE_OF_FC.get(function_code)
        if table is None or table is Table.DISCRETE:
            return ExcCodes.ILLEGAL_ADDRESS
        self._refresh(unit, table, start_address, registers)
        if set_values is None:
            return None
        if table is Table.COIL:
            code = self._write_coils(unit, address, [bool(v) for v in set_values])
        else:
            code = self._write_registers(unit, address, [int(v) for v in set_values])
        self.invalidate()
        return code

    # -- commands ----------------------------------------------------------------------------

    def _write_coils(self, unit: Unit, address: int, values: list[bool]) -> ExcCodes | None:
        coils = {c.address: c for c in unit.map.coils}
        if any(address + i not in coils for i in range(len(values))):
            return ExcCodes.ILLEGAL_ADDRESS
        for i, value in enumerate(values):
            coil = coils[address + i]
            if coil.trigger and not value:
                return ExcCodes.ILLEGAL_VALUE
            code = self._command(unit, coil.name, value)
            if code is not None:
                return code
        return None

    def _write_registers(self, unit: Unit, address: int, values: list[int]) -> ExcCodes | None:
        block = unit.map.commands
        if block is None or not (
            block.start <= address and address + len(values) <= block.start + block.count
        ):
            return ExcCodes.ILLEGAL_ADDRESS
        for i, value in enumerate(values):
            name = block.fields[address + i - block.start].name
            if not 0 <= value < len(unit.upstream):
                return ExcCodes.ILLEGAL_VALUE
            code = self._command(unit, name, value)
            if code is not None:
                return code
        return None

    def _command(self, unit: Unit, name: str, value: bool | int) -> ExcCodes | None:
        plant, pid = self.plant, unit.plant_id
        commands: Mapping[tuple[DeviceType, str], Callable[[], None]] = {
            (DeviceType.ATS, "inhibit"): lambda: plant.command_ats_inhibit(pid, bool(value)),
            (DeviceType.ATS, "self_test"): lambda: plant.command_ats_self_test(pid),
            (DeviceType.ATS, "reset_alarms"): lambda: plant.command_ats_reset_alarms(pid),
            (DeviceType.ATS, "preferred_source"): lambda: plant.command_ats_preferred_source(
                pid, int(value)
            ),
            (DeviceType.ATS, "transfer_to_source"): lambda: plant.command_ats_transfer(
                pid, int(value)
            ),
            (DeviceType.MPDU, "output_on"): lambda: plant.command_mpdu_output(pid, bool(value)),
            (DeviceType.SBM, "output_on"): lambda: plant.command_sbm_output(pid, bool(value)),
            (DeviceType.SBM, "active_path"): lambda: plant.command_sbm_path(pid, int(value)),
        }
        try:
            commands[unit.device_type, name]()
        except CommandRejected as exc:
            _LOGGER.info("unit %s (%s): %s=%s rejected: %s", unit.unit_id, pid, name, value, exc)
            return ExcCodes.DEVICE_FAILURE
        _LOGGER.info("unit %s (%s): %s=%s", unit.unit_id, pid, name, value)
        return None


class _GatewayCore(SimCore):
    """pymodbus's device store, answering 0x0A (gateway path unavailable) for a unit id with no
    device instead of falling back to a device 0."""

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        if device_id not in self.devices:
            return ExcCodes.GATEWAY_PATH_UNAVIABLE
        return await super().async_getValues(device_id, func_code, address, count)

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        if device_id not in self.devices:
            return ExcCodes.GATEWAY_PATH_UNAVIABLE
        return await super().async_setValues(device_id, func_code, address, values)
