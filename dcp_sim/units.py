"""The plant's devices as a gateway presents them: unit ids and identification blocks.

One definition of what each simulated device says about itself (its ``DeviceIdentity``, the
device layer's type): the Modbus server encodes it into each device's identification registers,
and the evaluation harness builds the engine's topology from it with the same function Home
Assistant uses on what it discovers (``engine.readings.topology_from_identities``).

Unit ids (stable for a scenario; see :func:`assign_unit_ids`): 1 = environment sensor, 2-9 = ATSs,
10-39 = MPDUs, 40-247 = SBMs, each group in scenario order (sequential from 1 in the same order
when a group overflows its range).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from custom_components.datacenter_power.device.models import DeviceIdentity, DeviceType
from custom_components.datacenter_power.device.registers import (
    ID_CHARS,
    MAP_VERSION,
    MAPS,
    MAX_UNIT_ID,
    MAX_UPSTREAM,
    DeviceMap,
)

from .plant import Plant
from .scenario import Scenario

__all__ = ["FIRMWARE", "UNIT_RANGES", "Unit", "assign_unit_ids", "device_identities"]

FIRMWARE: Final = "sim-1.0"
UNIT_RANGES: Final[dict[DeviceType, range]] = {
    DeviceType.ENV: range(1, 2),
    DeviceType.ATS: range(2, 10),
    DeviceType.MPDU: range(10, 40),
    DeviceType.SBM: range(40, MAX_UNIT_ID + 1),
}
"""Unit ids of each device type, assigned in scenario order."""


@dataclass(frozen=True, slots=True)
class Unit:
    """One device behind the gateway."""

    unit_id: int
    device_type: DeviceType
    plant_id: str
    upstream: tuple[str, ...]

    @property
    def map(self) -> DeviceMap:
        """The device's register map."""
        return MAPS[self.device_type]


def assign_unit_ids(plant: Plant | Scenario) -> list[Unit]:
    """The plant's devices with their unit ids.

    Normally by :data:`UNIT_RANGES` (env 1, ATSs 2-9, MPDUs 10-39, SBMs 40-247, each in scenario
    order). A plant with more devices of one type than its range holds, but at most 247 devices
    in all, gets sequential ids from 1 in the same order (env, ATSs, MPDUs, SBMs). Raises
    ``ValueError`` when the plant does not fit one gateway or the register map (more than 247
    devices, ids longer than 16 characters, more than 4 sources or paths).
    """
    sc = plant.scenario if isinstance(plant, Plant) else plant
    groups: list[tuple[DeviceType, list[tuple[str, tuple[str, ...]]]]] = [
        (DeviceType.ENV, [("env1", ())]),
        (DeviceType.ATS, [(a.id, a.sources) for a in sc.ats]),
        (DeviceType.MPDU, [(m.id, (m.ats,)) for m in sc.mpdus]),
        (DeviceType.SBM, [(c.id, c.paths) for c in sc.circuits]),
    ]
    total = sum(len(members) for _, members in groups)
    if total > MAX_UNIT_ID:
        raise ValueError(f"{total} devices do not fit one gateway (unit ids 1-{MAX_UNIT_ID})")
    planned = all(len(members) <= len(UNIT_RANGES[t]) for t, members in groups)
    units: list[Unit] = []
    next_id = 1
    for device_type, members in groups:
        if planned:
            next_id = UNIT_RANGES[device_type].start
        for plant_id, upstream in members:
            too_long = [x for x in (plant_id, *upstream) if len(x) > ID_CHARS]
            if too_long:
                raise ValueError(f"ids longer than {ID_CHARS} characters: {too_long}")
            if len(upstream) > MAX_UPSTREAM:
                raise ValueError(f"{plant_id}: more than {MAX_UPSTREAM} sources/paths")
            units.append(Unit(next_id, device_type, plant_id, upstream))
            next_id += 1
    return units


def device_identities(plant: Plant | Scenario, firmware: str = FIRMWARE) -> list[DeviceIdentity]:
    """What every device of the plant reports in its identification block, in unit id order."""
    sc = plant.scenario if isinstance(plant, Plant) else plant
    ats = {a.id: a for a in sc.ats}
    mpdus = {m.id: m for m in sc.mpdus}
    circuits = {c.id: c for c in sc.circuits}
    out: list[DeviceIdentity] = []
    for unit in assign_unit_ids(sc):
        pid = unit.plant_id
        rating = critical = transfer_ms = operations = None
        if pid in ats:
            rating = ats[pid].rating_a
            transfer_ms = ats[pid].transfer_time_s * 1000.0
            operations = ats[pid].rated_operations
        elif pid in mpdus:
            rating = mpdus[pid].rating_a
        elif pid in circuits:
            rating, critical = circuits[pid].rating_a, circuits[pid].critical
        out.append(
            DeviceIdentity(
                unit_id=unit.unit_id,
                device_type=unit.device_type,
                plant_id=pid,
                model=unit.map.model,
                firmware=firmware,
                map_version=MAP_VERSION,
                upstream=unit.upstream,
                rating_a=rating or 0.0,
                critical=bool(critical),
                transfer_time_ms=transfer_ms or 0.0,
                rated_operations=operations or 0,
            )
        )
    return out
