"""From the device layer's types to the engine's inputs: the plant graph and one poll's observation.

The one place where readings become what the engine sees. Home Assistant builds its topology from
the identities it discovered and an observation from every telemetry snapshot; the evaluation
harness does the same from the simulator's identities and telemetry (which are these reading
types). Both call these functions, so the engine the harness scores sees exactly what it sees in
Home Assistant.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from custom_components.datacenter_power.device.models import (
    AtsReading,
    DeviceIdentity,
    DeviceType,
    EnvReading,
    MpduReading,
    Reading,
    SbmReading,
)

from .observation import CircuitObs, ElementObs, PlantObservation
from .topology import AtsNode, CircuitNode, MpduNode, Topology

__all__ = ["observation_from_readings", "topology_from_identities"]

NAN = math.nan


def topology_from_identities(identities: Iterable[DeviceIdentity]) -> Topology:
    """The plant graph of the devices found, leaving out what refers to a device not found.

    A device that was silent during discovery would otherwise make ``Topology.build`` refuse the
    whole plant; an MPDU whose ATS is missing, or a circuit with a path to a missing MPDU, is
    left out of the graph (its device and entities still exist) until a rescan finds the rest.
    """
    by_type: dict[DeviceType, list[DeviceIdentity]] = {t: [] for t in DeviceType}
    for identity in identities:
        by_type[identity.device_type].append(identity)
    ats = [
        AtsNode(i.plant_id, i.sources, i.rating_a, i.transfer_time_ms, i.rated_operations)
        for i in by_type[DeviceType.ATS]
    ]
    ats_ids = {a.id for a in ats}
    mpdus = [
        MpduNode(i.plant_id, i.ats, i.rating_a)
        for i in by_type[DeviceType.MPDU]
        if i.ats is not None and i.ats in ats_ids
    ]
    mpdu_ids = {m.id for m in mpdus}
    circuits = [
        CircuitNode(i.plant_id, i.paths, i.rating_a, i.critical)
        for i in by_type[DeviceType.SBM]
        if i.paths and all(p in mpdu_ids for p in i.paths) and len(set(i.paths)) == len(i.paths)
    ]
    return Topology.build(ats, mpdus, circuits)


def observation_from_readings(
    t_s: float, topology: Topology, readings: Mapping[str, Reading]
) -> PlantObservation:
    """What the policy sees of one poll at ``t_s`` (Unix epoch seconds).

    ``readings`` holds the devices that answered, by plant id. Every circuit, ATS and MPDU of
    ``topology`` without a reading did not answer: it is ``reachable=False`` with NaN
    measurements, which the policy must not mistake for a dead component.
    """
    circuits: dict[str, CircuitObs] = {}
    elements: dict[str, ElementObs] = {}
    ambient = NAN
    for pid, reading in readings.items():
        if isinstance(reading, SbmReading):
            circuits[pid] = _circuit(pid, reading)
        elif isinstance(reading, AtsReading):
            elements[pid] = _ats(pid, reading)
        elif isinstance(reading, MpduReading):
            elements[pid] = _mpdu(pid, reading)
        elif isinstance(reading, EnvReading):
            ambient = reading.ambient_c
    for cid in topology.circuits:
        if cid not in readings:
            circuits[cid] = CircuitObs(cid, False, None, False, NAN)
    for aid in topology.ats:
        if aid not in readings:
            elements[aid] = ElementObs(aid, "ats", False, False, NAN)
    for mid in topology.mpdus:
        if mid not in readings:
            elements[mid] = ElementObs(mid, "mpdu", False, False, NAN)
    return PlantObservation(t_s=t_s, circuits=circuits, elements=elements, ambient_c=ambient)


def _circuit(pid: str, r: SbmReading) -> CircuitObs:
    return CircuitObs(
        id=pid,
        reachable=True,
        active_path=r.paths[r.active_path] if 0 <= r.active_path < len(r.paths) else None,
        energized=r.energized,
        current_a=r.current_a,
        output_on=r.output_on,
        path_energized=dict(zip(r.paths, r.path_energized, strict=False)),
    )


def _alarms(*flags: tuple[str, bool]) -> frozenset[str]:
    return frozenset(name for name, on in flags if on)


def _ats(pid: str, r: AtsReading) -> ElementObs:
    return ElementObs(
        id=pid,
        kind="ats",
        reachable=True,
        energized=r.output_energized,
        current_a=r.load_current_a,
        temperature_c=r.contact_temperature_c,
        ripple_pct=r.ripple_pct,
        self_tests=r.self_tests,
        self_test_ms=r.last_self_test_ms,
        nominal_transfer_ms=r.transfer_time_ms,
        operations=r.operations,
        rated_operations=r.rated_operations,
        sources_available=any(r.source_available),
        on_alternate=_on_alternate(r),
        alarms=_alarms(
            ("over_temperature", r.alarm_over_temperature),
            ("output_lost", r.alarm_output_lost),
            ("over_limit", r.alarm_over_limit),
        ),
    )


def _on_alternate(r: AtsReading) -> bool:
    """Live on a source other than its preferred one, which is lost (it will retransfer)."""
    pref = r.preferred_source
    return (
        r.output_energized
        and 0 <= pref < len(r.source_available)
        and not r.source_available[pref]
        and r.active_source != pref
    )


def _mpdu(pid: str, r: MpduReading) -> ElementObs:
    return ElementObs(
        id=pid,
        kind="mpdu",
        reachable=True,
        energized=r.energized and r.output_on and not r.breaker_open,
        current_a=r.current_a,
        temperature_c=r.terminal_temperature_c,
        ripple_pct=r.ripple_pct,
        nuisance_trips=r.nuisance_trips,
        alarms=_alarms(
            ("breaker_trip", r.alarm_breaker_trip),
            ("over_temperature", r.alarm_over_temperature),
            ("over_limit", r.alarm_over_limit),
        ),
    )
