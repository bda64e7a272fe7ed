"""What the simulated devices report: frozen snapshots of one moment of the plant.

Each device's telemetry IS the device layer's reading of it
(``custom_components/datacenter_power/device/models.py``: ``AtsReading``, ``MpduReading``,
``SbmReading``, ``EnvReading``), plus the one thing a reading cannot say about itself: whether the
device answers at all (``reachable``; False under ``comms_loss``). The Modbus server encodes these
values into registers, the integration's client decodes the same types back, and the evaluation
harness hands them to the engine without translating anything.
Units: A, V, Hz, kW, kWh, degC, %, ms, s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from custom_components.datacenter_power.device.models import (
    AtsReading,
    EnvReading,
    MpduReading,
    Reading,
    SbmReading,
)

__all__ = [
    "AtsTelemetry",
    "CircuitTelemetry",
    "EnvTelemetry",
    "MpduTelemetry",
    "PlantTelemetry",
]


@dataclass(frozen=True, slots=True)
class AtsTelemetry(AtsReading):
    """One automatic transfer switch's reading, and whether it answers."""

    reachable: bool = True


@dataclass(frozen=True, slots=True)
class MpduTelemetry(MpduReading):
    """One modular PDU's reading, and whether it answers."""

    reachable: bool = True


@dataclass(frozen=True, slots=True)
class CircuitTelemetry(SbmReading):
    """One critical circuit's smart bypass module (SBM) reading, and whether it answers."""

    reachable: bool = True


@dataclass(frozen=True, slots=True)
class EnvTelemetry(EnvReading):
    """The room's environment sensor (id ``env1``), and whether it answers."""

    reachable: bool = True


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

    def readings(self) -> dict[str, Reading]:
        """What a poll would return: the readings of the devices that answer, by plant id (a
        device under ``comms_loss`` is absent, as it is from the integration's snapshot)."""
        out: dict[str, Reading] = {a.id: a for a in self.ats.values() if a.reachable}
        out.update({m.id: m for m in self.mpdus.values() if m.reachable})
        out.update({c.id: c for c in self.circuits.values() if c.reachable})
        if self.env.reachable:
            out[self.env.id] = self.env
        return out
