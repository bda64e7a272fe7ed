"""What one refresh of the plant learned, as data: :class:`PlantSnapshot`, and the gateways.

The telemetry coordinator (``coordinator.py``) polls and publishes one snapshot per refresh;
everything else (entities, the command path, the engine's observations, the fault watch) reads
it. Kept apart from the coordinator so that readers of a snapshot need not import the poller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from .device.models import DeviceIdentity, DeviceType, MpduReading, Reading, SbmReading
from .engine.topology import Topology

__all__ = ["MAIN_GATEWAY", "Gateway", "PlantSnapshot", "build_snapshot"]

MAIN_GATEWAY: Final = "main"
"""Key of the config entry's own gateway (subentry gateways are keyed by subentry id)."""


@dataclass(frozen=True, slots=True)
class Gateway:
    """One Modbus TCP gateway of the plant."""

    key: str
    """``main`` for the config entry's own gateway, else the subentry id."""
    host: str
    port: int

    @property
    def subentry_id(self) -> str | None:
        """The gateway's config subentry (None for the entry's own gateway)."""
        return None if self.key == MAIN_GATEWAY else self.key


@dataclass(frozen=True, slots=True)
class PlantSnapshot:
    """Everything one refresh learned about the plant."""

    identities: Mapping[str, DeviceIdentity]
    """Plant id -> identity, every known device (answering or not)."""
    readings: Mapping[str, Reading]
    """Plant id -> reading of THIS refresh; absent = unavailable now."""
    errors: Mapping[str, str]
    """Plant id -> why it is unavailable."""
    topology: Topology
    """The plant graph built from the identities."""
    assignment: Mapping[str, str | None]
    """Circuit id -> MPDU it draws from (None: off, dead or not answering)."""
    circuit_a: Mapping[str, float]
    """Circuit id -> current (answering circuits only)."""
    energized_mpdus: frozenset[str]
    """MPDUs with live output (energised, output on, breaker closed)."""
    updated_at: datetime
    gateways: Mapping[str, str] = field(default_factory=dict)
    """Plant id -> key of the gateway it sits behind."""

    def available(self, plant_id: str) -> bool:
        """Whether the device answered in this refresh."""
        return plant_id in self.readings


def build_snapshot(
    identities: Mapping[str, DeviceIdentity],
    readings: Mapping[str, Reading],
    errors: Mapping[str, str],
    topology: Topology,
    *,
    updated_at: datetime,
    gateways: Mapping[str, str],
) -> PlantSnapshot:
    """The snapshot of these readings: each circuit's path, current, and the live MPDUs."""
    return PlantSnapshot(
        identities=identities,
        readings=readings,
        errors=errors,
        topology=topology,
        assignment=_assignment(identities, readings),
        circuit_a={pid: r.current_a for pid, r in readings.items() if isinstance(r, SbmReading)},
        energized_mpdus=frozenset(
            pid
            for pid, r in readings.items()
            if isinstance(r, MpduReading) and r.energized and r.output_on and not r.breaker_open
        ),
        updated_at=updated_at,
        gateways=gateways,
    )


def _assignment(
    identities: Mapping[str, DeviceIdentity], readings: Mapping[str, Reading]
) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for pid, identity in identities.items():
        if identity.device_type is not DeviceType.SBM:
            continue
        reading = readings.get(pid)
        if (
            isinstance(reading, SbmReading)
            and reading.output_on
            and reading.energized
            and 0 <= reading.active_path < len(reading.paths)
        ):
            out[pid] = reading.paths[reading.active_path]
        else:
            out[pid] = None
    return out
