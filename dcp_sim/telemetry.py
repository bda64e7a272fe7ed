"""What the simulated devices report: frozen snapshots of one moment of the plant.

These dataclasses mirror ``custom_components/datacenter_power/device/models.py`` field by field,
so the Modbus server and the evaluation harness can translate between them without guessing.
Units: A, V, Hz, kW, kWh, degC, %, ms, s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class AtsTelemetry:
    """One automatic transfer switch."""

    id: str
    reachable: bool
    sources: tuple[str, ...]
    rating_a: float
    transfer_time_ms: float
    """Nominal transfer time from the scenario."""
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
class MpduTelemetry:
    """One modular PDU."""

    id: str
    reachable: bool
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
class CircuitTelemetry:
    """One critical circuit, as reported by its smart bypass module (SBM)."""

    id: str
    reachable: bool
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


@dataclass(frozen=True, slots=True)
class EnvTelemetry:
    """The room's environment sensor (id ``env1``)."""

    id: str
    reachable: bool
    ambient_c: float
    humidity_pct: float


@dataclass(frozen=True, slots=True)
class PlantTelemetry:
    """Everything the plant's devices report at one moment."""

    t_s: float
    """Seconds since scenario t=0 (negative during history)."""
    timestamp: datetime
    """Aware UTC wall-clock time."""
    ats: dict[str, AtsTelemetry]
    mpdus: dict[str, MpduTelemetry]
    circuits: dict[str, CircuitTelemetry]
    env: EnvTelemetry
