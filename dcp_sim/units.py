"""The plant's devices as a gateway presents them: unit ids and identification blocks.

One definition of what each simulated device says about itself (its ``DeviceIdentity``, the
device layer's type): the Modbus server encodes it into each device's identification registers,
and the evaluation harness builds the engine's topology from it with the same function Home
Assistant uses on what it discovers (``engine.readings.topology_from_identities``).

Unit ids (stable for a scenario; see :func:`assign_unit_ids`): 1 = environment sensor, 2-9 = ATSs,
10-39 = MPDUs, 40-247 = SBMs, each group in scenario order (sequential from 1 in the same order
when a group overflows its range). A plant of more than 247 devices, or a scenario with a
``gateways`` section, is served by several gateways, one TCP port each, each with its own unit
ids (see :func:`assign_gateways`).
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
from .scenario import ENV_ID, Scenario

__all__ = [
    "FIRMWARE",
    "UNIT_RANGES",
    "Unit",
    "assign_gateways",
    "assign_unit_ids",
    "device_identities",
]

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


type _Group = tuple[DeviceType, list[tuple[str, tuple[str, ...]]]]


def _number(groups: list[_Group]) -> list[Unit]:
    """Unit ids for one gateway's devices: by :data:`UNIT_RANGES` when every type fits its
    range, otherwise sequential from 1 in the same order."""
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


def _lineups(sc: Scenario) -> dict[str, list[_Group]]:
    """Per ATS: the ATS, its MPDUs and the circuits whose normal path is one of them."""
    mpdu_ats = {m.id: m.ats for m in sc.mpdus}
    out: dict[str, list[_Group]] = {}
    for a in sc.ats:
        out[a.id] = [
            (DeviceType.ATS, [(a.id, a.sources)]),
            (DeviceType.MPDU, [(m.id, (m.ats,)) for m in sc.mpdus if m.ats == a.id]),
            (
                DeviceType.SBM,
                [(c.id, c.paths) for c in sc.circuits if mpdu_ats[c.paths[0]] == a.id],
            ),
        ]
    return out


def _merge(parts: list[list[_Group]]) -> list[_Group]:
    """One gateway's groups (env first, then ATSs, MPDUs, SBMs) from several lineups."""
    by_type: dict[DeviceType, list[tuple[str, tuple[str, ...]]]] = {t: [] for t in _ORDER}
    for groups in parts:
        for device_type, members in groups:
            by_type[device_type].extend(members)
    return [(t, by_type[t]) for t in _ORDER if by_type[t]]


_ORDER: Final = (DeviceType.ENV, DeviceType.ATS, DeviceType.MPDU, DeviceType.SBM)


def _size(groups: list[_Group]) -> int:
    return sum(len(m) for _, m in groups)


def assign_gateways(plant: Plant | Scenario) -> list[list[Unit]]:
    """The plant's devices split over Modbus TCP gateways, each with its own unit ids 1-247.

    A scenario with a ``gateways`` section gets exactly those gateways (each serves the lineups
    of the ATSs it lists: the ATS, its MPDUs and the circuits whose normal path is one of them).
    Otherwise a plant of at most 247 devices has one gateway (:func:`assign_unit_ids`), and a
    larger one is split automatically: whole lineups in scenario order, as many as fit in 247
    units, a lineup too large for one gateway continuing on the next. The environment sensor
    is on the first gateway. Raises ``ValueError`` when a listed gateway holds more than 247.
    """
    sc = plant.scenario if isinstance(plant, Plant) else plant
    env: _Group = (DeviceType.ENV, [(ENV_ID, ())])
    lineups = _lineups(sc)
    if sc.gateways:
        out: list[list[Unit]] = []
        for i, ats_ids in enumerate(sc.gateways):
            try:
                out.append(
                    _number(_merge(([[env]] if i == 0 else []) + [lineups[a] for a in ats_ids]))
                )
            except ValueError as exc:
                raise ValueError(f"gateways[{i}] ({', '.join(ats_ids)}): {exc}") from None
        return out
    total = 1 + len(sc.ats) + len(sc.mpdus) + len(sc.circuits)
    if total <= MAX_UNIT_ID:
        return [assign_unit_ids(sc)]
    gateways: list[list[list[_Group]]] = [[[env]]]
    for ats in sc.ats:
        lineup = lineups[ats.id]
        used = sum(_size(g) for g in gateways[-1])
        if used + _size(lineup) > MAX_UNIT_ID and _size(lineup) <= MAX_UNIT_ID:
            gateways.append([])
            used = 0
        # Cut the lineup (flattened in type order) into what fits here and on further gateways.
        flat = [(t, m) for t, members in lineup for m in members]
        while flat:
            room = MAX_UNIT_ID - used
            if room == 0:
                gateways.append([])
                used, room = 0, MAX_UNIT_ID
            chunk, flat = flat[:room], flat[room:]
            gateways[-1].append([(t, [m for tt, m in chunk if tt == t]) for t in _ORDER])
            used += len(chunk)
    return [_number(_merge(parts)) for parts in gateways]


def assign_unit_ids(plant: Plant | Scenario) -> list[Unit]:
    """The plant's devices with their unit ids, all behind one gateway.

    Normally by :data:`UNIT_RANGES` (env 1, ATSs 2-9, MPDUs 10-39, SBMs 40-247, each in scenario
    order). A plant with more devices of one type than its range holds, but at most 247 devices
    in all, gets sequential ids from 1 in the same order (env, ATSs, MPDUs, SBMs). Raises
    ``ValueError`` when the plant does not fit one gateway or the register map (more than 247
    devices, ids longer than 16 characters, more than 4 sources or paths).
    """
    sc = plant.scenario if isinstance(plant, Plant) else plant
    return _number(
        [
            (DeviceType.ENV, [(ENV_ID, ())]),
            (DeviceType.ATS, [(a.id, a.sources) for a in sc.ats]),
            (DeviceType.MPDU, [(m.id, (m.ats,)) for m in sc.mpdus]),
            (DeviceType.SBM, [(c.id, c.paths) for c in sc.circuits]),
        ]
    )


def device_identities(plant: Plant | Scenario, firmware: str = FIRMWARE) -> list[DeviceIdentity]:
    """What every device of the plant reports in its identification block, gateway by gateway
    in unit id order (unit ids repeat across gateways; plant ids do not)."""
    sc = plant.scenario if isinstance(plant, Plant) else plant
    ats = {a.id: a for a in sc.ats}
    mpdus = {m.id: m for m in sc.mpdus}
    circuits = {c.id: c for c in sc.circuits}
    out: list[DeviceIdentity] = []
    for unit in (u for units in assign_gateways(sc) for u in units):
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
