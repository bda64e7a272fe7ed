"""Typed models of what a device reports: its identification block and one poll's readings.

These are the device layer's public data types, and the only definition of a reading: the
simulator's telemetry (``dcp_sim/telemetry.py``) is these same types plus ``reachable``, and the
engine builds its observations and its topology from them (``engine/readings.py``). An
unreachable device is an exception from the client (:class:`~.errors.DeviceUnavailable`), never
a reading. Values are the
register values after scaling, so they carry the register map's resolution (docs/register-map.md).
Units: A, V, Hz, kW, kWh, degC, %, ms, s.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "AtsReading",
    "DeviceIdentity",
    "DeviceType",
    "EnvReading",
    "MpduReading",
    "Reading",
    "SbmReading",
]


class DeviceType(IntEnum):
    """Device type code, holding register 0 of every device."""

    ATS = 1
    """Automatic transfer switch."""
    MPDU = 2
    """Modular PDU."""
    SBM = 3
    """Smart bypass module (one per critical circuit)."""
    ENV = 4
    """Room environment sensor (temperature, humidity)."""


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """A device's identification block (holding registers 0..), read once at discovery."""

    unit_id: int
    """Modbus unit id on the gateway."""
    device_type: DeviceType
    plant_id: str
    """The device's id in the plant, e.g. ``ats1``, ``mpdu2``, ``c01`` (an SBM), ``env1``."""
    model: str
    firmware: str
    map_version: int
    upstream: tuple[str, ...]
    """ATS: its sources (in priority order); MPDU: ``(ats_id,)``; SBM: its paths (MPDU ids,
    first = normal); ENV: ``()``."""
    rating_a: float
    """Rated current (0 for the environment sensor)."""
    critical: bool
    """SBM: the circuit is critical; False for other types."""
    transfer_time_ms: float
    """ATS: nominal transfer time; 0 for other types."""
    rated_operations: int
    """ATS: rated mechanical operations; 0 for other types."""

    @property
    def sources(self) -> tuple[str, ...]:
        """ATS source ids (empty for other types)."""
        return self.upstream if self.device_type is DeviceType.ATS else ()

    @property
    def ats(self) -> str | None:
        """The ATS feeding an MPDU (None for other types)."""
        if self.device_type is DeviceType.MPDU and self.upstream:
            return self.upstream[0]
        return None

    @property
    def paths(self) -> tuple[str, ...]:
        """SBM path MPDU ids, first = normal (empty for other types)."""
        return self.upstream if self.device_type is DeviceType.SBM else ()


@dataclass(frozen=True, slots=True)
class AtsReading:
    """One poll of an automatic transfer switch."""

    id: str
    sources: tuple[str, ...]
    rating_a: float
    transfer_time_ms: float
    """Nominal transfer time (identification block)."""
    rated_operations: int
    source_voltage_v: tuple[float, ...]
    source_frequency_hz: tuple[float, ...]
    source_available: tuple[bool, ...]
    phase_angle_deg: float
    active_source: int
    """Index into ``sources``; -1 when no source is connected."""
    preferred_source: int
    inhibit: bool
    output_energized: bool
    output_voltage_v: float
    load_current_a: float
    load_power_kw: float
    energy_kwh: float
    contact_temperature_c: float
    ripple_pct: float
    transfers_total: int
    transfers_failure: int
    operations: int
    """All mechanism operations, self-tests included."""
    self_tests: int
    last_transfer_ms: float
    """Duration of the last real transfer."""
    last_self_test_ms: float
    """Transfer time measured by the last self-test; 0 before the first."""
    time_on_source_s: tuple[float, ...]
    alarm_over_temperature: bool
    alarm_output_lost: bool
    alarm_out_of_sync: bool
    alarm_over_limit: bool


@dataclass(frozen=True, slots=True)
class MpduReading:
    """One poll of a modular PDU."""

    id: str
    ats: str
    rating_a: float
    energized: bool
    output_on: bool
    breaker_open: bool
    input_voltage_v: float
    current_a: float
    power_kw: float
    energy_kwh: float
    terminal_temperature_c: float
    ripple_pct: float
    nuisance_trips: int
    breaker_trips: int
    alarm_over_limit: bool
    alarm_breaker_trip: bool
    alarm_over_temperature: bool


@dataclass(frozen=True, slots=True)
class SbmReading:
    """One poll of a circuit's smart bypass module."""

    id: str
    """The circuit id."""
    paths: tuple[str, ...]
    """MPDU ids; the first is the normal path."""
    rating_a: float
    critical: bool
    active_path: int
    """Index into ``paths``."""
    output_on: bool
    energized: bool
    path_energized: tuple[bool, ...]
    current_a: float
    voltage_v: float
    power_kw: float
    energy_kwh: float
    bypass_transfers: int
    """Local automatic transfers made by the SBM itself."""
    switch_operations: int
    breaker_open: bool
    interruptions: int
    """Output interruptions the SBM counted since power-up, however short (a gap beyond its
    ride-through, or a loss): a poll can miss a short one, the counter cannot."""
    last_interruption_ts: int
    """Unix time (s, UTC) of the last interruption's start; 0 before the first."""


@dataclass(frozen=True, slots=True)
class EnvReading:
    """One poll of the room environment sensor."""

    id: str
    ambient_c: float
    humidity_pct: float


type Reading = AtsReading | MpduReading | SbmReading | EnvReading
