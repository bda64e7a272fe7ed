"""The one builder of the small plants the tests run on the simulator.

Most tests need the same shape: two utility sources, two ATSs fed from them in opposite
preference, an MPDU behind each (sometimes a third), and a handful of circuits. Each test file
used to write that scenario document out by hand; here it is written once, and a test states
only what its plant has of its own (ratings, circuits, events). The result is a plain scenario
document (docs/scenario-format.md), a fresh one on every call, for ``parse_scenario``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

type Doc = dict[str, Any]

MONDAY = "2026-03-02T00:00:00Z"
"""The usual start: a Monday, so the plant's first day is a working day."""


def _pair[T](value: T | tuple[T, T]) -> tuple[T, T]:
    return value if isinstance(value, tuple) else (value, value)


def circuit(
    cid: str,
    paths: Sequence[str],
    mean_a: float,
    *,
    rating_a: float = 16,
    critical: bool | None = None,
    **load: Any,
) -> Doc:
    """One circuit (SBM) drawing ``mean_a`` on average; ``load`` adds the load model's other
    fields (``daily``, ``weekly``, ``noise``, ...); ``critical`` is written only when given."""
    doc: Doc = {"id": cid, "paths": list(paths), "rating_a": rating_a}
    if critical is not None:
        doc["critical"] = critical
    doc["load"] = {"mean_a": mean_a, **load}
    return doc


def two_ats_plant(
    name: str,
    *,
    seed: int,
    ats_rating_a: float | tuple[float, float],
    mpdu_rating_a: float | tuple[float, float],
    mpdu3_on: str | None = None,
    transfer_time: str | tuple[str, str] = "100ms",
    rated_operations: int | tuple[int, int] = 6000,
    ambient_c: float | None = None,
    start: str = MONDAY,
    history: str = "0s",
    duration: str = "1d",
    step: str = "60s",
    circuits: Sequence[Doc] = (),
    circuit_groups: Sequence[Doc] = (),
    **sections: Any,
) -> Doc:
    """A scenario document: sources ``util_a`` and ``util_b``; ``ats1`` prefers ``util_a``,
    ``ats2`` prefers ``util_b``; ``mpdu1`` behind ``ats1`` and ``mpdu2`` behind ``ats2`` (a pair
    of values: ATS 1's, then ATS 2's); ``mpdu3_on`` adds an ``mpdu3`` of ``mpdu2``'s rating
    behind that ATS. ``ambient_c`` adds the environment sensor. ``sections`` (``events``,
    ``schedule``, ...) are added as given, in their order."""
    ats_a, tt, ops = _pair(ats_rating_a), _pair(transfer_time), _pair(rated_operations)
    mpdu_a = _pair(mpdu_rating_a)
    mpdus = [
        {"id": "mpdu1", "ats": "ats1", "rating_a": mpdu_a[0]},
        {"id": "mpdu2", "ats": "ats2", "rating_a": mpdu_a[1]},
    ]
    if mpdu3_on is not None:
        mpdus.append({"id": "mpdu3", "ats": mpdu3_on, "rating_a": mpdu_a[1]})
    doc: Doc = {
        "version": 1,
        "name": name,
        "seed": seed,
        "start": start,
        "history": history,
        "duration": duration,
        "step": step,
    }
    if ambient_c is not None:
        doc["environment"] = {"ambient_c": ambient_c, "humidity_pct": 40}
    doc["sources"] = [{"id": "util_a", "nominal_v": 230}, {"id": "util_b", "nominal_v": 230}]
    doc["ats"] = [
        {
            "id": aid,
            "sources": sources,
            "rating_a": ats_a[i],
            "transfer_time": tt[i],
            "rated_operations": ops[i],
        }
        for i, (aid, sources) in enumerate(
            (("ats1", ["util_a", "util_b"]), ("ats2", ["util_b", "util_a"]))
        )
    ]
    doc["mpdus"] = mpdus
    if circuits:
        doc["circuits"] = [dict(c) for c in circuits]
    if circuit_groups:
        doc["circuit_groups"] = [dict(g) for g in circuit_groups]
    doc.update(sections)
    return doc


def tight_wear_plant() -> Doc:
    """ATS-1 wears from 1 h and fails at 16 h (as the integration tests' wear plant) but
    ``mpdu2`` (42 A, a 33.6 A continuous limit) cannot take all of ATS-1's load at the
    afternoon's P90: no complete drain is safe, a partial one is, and shedding the non-critical
    ``b03`` makes room for everything. The question to a person (decision needed) comes up."""
    group = {"rating_a": 16, "load": {"mean_a": 5, "daily": 0.2, "noise": 0.03}}
    return two_ats_plant(
        "tight_wear",
        seed=5,
        ats_rating_a=100,
        mpdu_rating_a=(60, 42),
        history="2d",
        circuit_groups=[
            {"prefix": "a", "count": 3, "paths": ["mpdu1", "mpdu2"], **group},
            {"prefix": "b", "count": 2, "paths": ["mpdu2", "mpdu1"], **group},
        ],
        circuits=[{"id": "b03", "paths": ["mpdu2", "mpdu1"], "critical": False, **group}],
        events=[{"kind": "ats_contact_wear", "target": "ats1", "onset": "1h", "failure": "16h"}],
    )


def tight_hall_plant() -> Doc:
    """A tight hall: ``mpdu1``'s circuits (30 A on average, a daily cycle of +-40 % peaking mid
    afternoon) are forecast above its 40 A continuous limit at the afternoon's P90 while its
    measured load at noon is still within it; ``mpdu2`` (b01-b04, a flat 31 A of its 40 A limit)
    has room for the small a01 only. No relief fits, a partial one does, and shedding the
    non-critical a05 keeps mpdu1 within its limit: the relief's question to a person (decision
    needed at mpdu1) comes up. No unit wears."""
    a = {"daily": 0.4, "noise": 0.02}
    b = {"noise": 0.02}
    return two_ats_plant(
        "tight_hall",
        seed=7,
        ats_rating_a=100,
        mpdu_rating_a=50,
        history="2d",
        circuits=[
            circuit("a01", ["mpdu1", "mpdu2"], 1.5, **a),
            *(circuit(f"a0{i}", ["mpdu1", "mpdu2"], 7.125, **a) for i in (2, 3, 4)),
            circuit("a05", ["mpdu1", "mpdu2"], 7.125, critical=False, **a),
            *(circuit(f"b0{i}", ["mpdu2", "mpdu1"], 7.75, **b) for i in (1, 2, 3, 4)),
        ],
    )
