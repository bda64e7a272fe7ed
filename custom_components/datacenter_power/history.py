"""The history rows the decision coordinator learns from: typed, named, versioned.

One row per ``HISTORY_BUCKET_S`` is what a restart replays into a fresh policy. Rows are
``TypedDict`` s with named fields, so a reader never depends on the position of a value. They are
the logical form of the history and the form in which it is handed over (``scripts/develop``,
tests) and was stored by storage version 2; since version 3 the coordinator keeps and stores the
same values as columns (``history_columns.py``, ``history_store.py``). Fields equal to the
observation's default are left out. Storage version 1 held positional lists; :func:`row_from_v1`
converts them (a row that does not convert is dropped, and the caller logs how many).
"""

from __future__ import annotations

import math
from typing import Any, Literal, NotRequired, TypedDict

from .engine.observation import CircuitObs, ElementObs, PlantObservation

__all__ = [
    "CircuitRow",
    "ElementRow",
    "HistoryRow",
    "pack_observation",
    "row_from_v1",
    "unpack_observation",
]

NAN = math.nan


class CircuitRow(TypedDict):
    """One circuit at one poll."""

    reachable: bool
    active_path: str | None
    energized: bool
    current_a: float | None
    """None: not measured (NaN)."""
    output_on: bool


class ElementRow(TypedDict):
    """One ATS or MPDU at one poll (precursor fields only where they differ from the default)."""

    kind: Literal["ats", "mpdu"]
    reachable: bool
    energized: bool
    current_a: float | None
    temperature_c: NotRequired[float | None]
    ripple_pct: NotRequired[float | None]
    self_tests: NotRequired[int]
    self_test_ms: NotRequired[float]
    nominal_transfer_ms: NotRequired[float]
    operations: NotRequired[int]
    rated_operations: NotRequired[int]
    nuisance_trips: NotRequired[int]
    sources_available: NotRequired[bool]


class HistoryRow(TypedDict):
    """Everything the policy learns from at one poll."""

    t_s: float
    ambient_c: float | None
    circuits: dict[str, CircuitRow]
    elements: dict[str, ElementRow]


def _num(value: float, digits: int = 3) -> float | None:
    return None if math.isnan(value) else round(value, digits)


def _val(value: float | None) -> float:
    return NAN if value is None else float(value)


def pack_observation(obs: PlantObservation) -> HistoryRow:
    """A compact, JSON-safe row of an observation (the fields the policy learns from)."""
    return {
        "t_s": round(obs.t_s, 1),
        "ambient_c": _num(obs.ambient_c, 2),
        "circuits": {
            c.id: {
                "reachable": c.reachable,
                "active_path": c.active_path,
                "energized": c.energized,
                "current_a": _num(c.current_a),
                "output_on": c.output_on,
            }
            for c in obs.circuits.values()
        },
        "elements": {e.id: _element_row(e) for e in obs.elements.values()},
    }


def _element_row(e: ElementObs) -> ElementRow:
    row: ElementRow = {
        "kind": e.kind,
        "reachable": e.reachable,
        "energized": e.energized,
        "current_a": _num(e.current_a),
    }
    if not math.isnan(e.temperature_c):
        row["temperature_c"] = _num(e.temperature_c)
    if not math.isnan(e.ripple_pct):
        row["ripple_pct"] = _num(e.ripple_pct)
    if e.self_tests:
        row["self_tests"] = e.self_tests
    if e.self_test_ms:
        row["self_test_ms"] = e.self_test_ms
    if e.nominal_transfer_ms:
        row["nominal_transfer_ms"] = e.nominal_transfer_ms
    if e.operations:
        row["operations"] = e.operations
    if e.rated_operations:
        row["rated_operations"] = e.rated_operations
    if e.nuisance_trips:
        row["nuisance_trips"] = e.nuisance_trips
    if not e.sources_available:
        row["sources_available"] = False
    return row


def unpack_observation(row: HistoryRow) -> PlantObservation:
    """The observation a row was packed from (raises KeyError/TypeError/ValueError when damaged)."""
    return PlantObservation(
        t_s=float(row["t_s"]),
        ambient_c=_val(row["ambient_c"]),
        circuits={
            cid: CircuitObs(
                id=cid,
                reachable=bool(c["reachable"]),
                active_path=c["active_path"],
                energized=bool(c["energized"]),
                current_a=_val(c["current_a"]),
                output_on=bool(c["output_on"]),
            )
            for cid, c in row["circuits"].items()
        },
        elements={eid: _element(eid, e) for eid, e in row["elements"].items()},
    )


def _kind(eid: str, kind: object) -> Literal["ats", "mpdu"]:
    if kind == "ats":
        return "ats"
    if kind == "mpdu":
        return "mpdu"
    raise ValueError(f"{eid}: unknown element kind {kind!r}")


def _element(eid: str, e: ElementRow) -> ElementObs:
    return ElementObs(
        id=eid,
        kind=_kind(eid, e["kind"]),
        reachable=bool(e["reachable"]),
        energized=bool(e["energized"]),
        current_a=_val(e["current_a"]),
        temperature_c=_val(e.get("temperature_c")),
        ripple_pct=_val(e.get("ripple_pct")),
        self_tests=int(e.get("self_tests", 0)),
        self_test_ms=float(e.get("self_test_ms", 0.0)),
        nominal_transfer_ms=float(e.get("nominal_transfer_ms", 0.0)),
        operations=int(e.get("operations", 0)),
        rated_operations=int(e.get("rated_operations", 0)),
        nuisance_trips=int(e.get("nuisance_trips", 0)),
        sources_available=bool(e.get("sources_available", True)),
    )


def row_from_v1(old: Any) -> HistoryRow:
    """A storage-version-1 row (positional lists) as a typed row; raises ValueError, TypeError,
    KeyError or IndexError when it is not one."""
    if not isinstance(old, list) or len(old) != 4:
        raise ValueError("not a version-1 history row")
    t_s, ambient, circuits, elements = old
    return pack_observation(
        PlantObservation(
            t_s=float(t_s),
            ambient_c=_val(ambient),
            circuits={
                cid: CircuitObs(cid, bool(r), p, bool(en), _val(a), bool(on))
                for cid, (r, p, en, a, on) in circuits.items()
            },
            elements={
                eid: ElementObs(
                    id=eid,
                    kind=_kind(eid, v[0]),
                    reachable=bool(v[1]),
                    energized=bool(v[2]),
                    current_a=_val(v[3]),
                    temperature_c=_val(v[4]),
                    ripple_pct=_val(v[5]),
                    self_tests=int(v[6]),
                    self_test_ms=float(v[7]),
                    nominal_transfer_ms=float(v[8]),
                    operations=int(v[9]),
                    rated_operations=int(v[10]),
                    nuisance_trips=int(v[11]),
                    sources_available=bool(v[12]),
                )
                for eid, v in elements.items()
            },
        )
    )
