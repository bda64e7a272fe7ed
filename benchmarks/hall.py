"""Data-hall plants of any size for the scaling figures (``scenarios/hall-1000.yaml`` is one).

A hall is rows of lineups: each ATS feeds ``mpdus_per_ats`` MPDUs of 125 A, each MPDU carries
``circuits_per_mpdu`` critical 16 A circuits whose alternate path is an MPDU of the next ATS, so
that any one ATS can be drained onto its neighbour. Loads keep every MPDU near half of its
continuous limit at peak.
"""

from __future__ import annotations

from typing import Any

from dcp_sim.scenario import Scenario, parse_scenario

__all__ = ["hall_scenario", "hall_spec"]


def hall_spec(
    n_circuits: int,
    *,
    circuits_per_mpdu: int = 25,
    mpdus_per_ats: int = 5,
    history: str = "1d",
    duration: str = "1d",
    name: str | None = None,
) -> dict[str, Any]:
    """The scenario mapping of a hall with ``n_circuits`` circuits (``parse_scenario`` input)."""
    n_mpdus = max(2, -(-n_circuits // circuits_per_mpdu))
    n_ats = max(2, -(-n_mpdus // mpdus_per_ats))
    mpdus = [f"mpdu{i + 1:02d}" for i in range(n_mpdus)]
    per_ats = -(-n_mpdus // n_ats)
    feed = {m: f"ats{i // per_ats + 1}" for i, m in enumerate(mpdus)}
    groups = []
    left = n_circuits
    for i, m in enumerate(mpdus):
        count = min(circuits_per_mpdu, left - (n_mpdus - i - 1))
        left -= count
        alt = mpdus[(i + per_ats) % n_mpdus]
        if feed[alt] == feed[m]:
            alt = next(x for x in mpdus if feed[x] != feed[m])
        groups.append(
            {
                "prefix": f"m{i + 1:02d}c",
                "count": count,
                "paths": [m, alt],
                "rating_a": 16,
                "load": {
                    "mean_a": [1.5, 2.5],
                    "daily": [0.1, 0.3],
                    "weekly": 0.1,
                    "noise": 0.03,
                },
            }
        )
    return {
        "version": 1,
        "name": name or f"hall-{n_circuits}",
        "description": (
            f"A data hall: {n_ats} ATS lineups, {n_mpdus} MPDUs, {n_circuits} circuits; quiet."
        ),
        "seed": 11,
        "start": "2026-09-07T00:00:00Z",
        "history": history,
        "duration": duration,
        "step": "60s",
        "environment": {"ambient_c": 23, "humidity_pct": 45},
        "sources": [{"id": "util_a", "nominal_v": 230}, {"id": "util_b", "nominal_v": 230}],
        "ats": [
            {
                "id": f"ats{i + 1}",
                "sources": ["util_a", "util_b"] if i % 2 == 0 else ["util_b", "util_a"],
                "rating_a": 800,
                "transfer_time": "80ms",
                "rated_operations": 6000,
            }
            for i in range(n_ats)
        ],
        "mpdus": [{"id": m, "ats": feed[m], "rating_a": 125} for m in mpdus],
        "circuit_groups": groups,
    }


def hall_scenario(n_circuits: int, **kwargs: Any) -> Scenario:
    """A validated hall scenario (see :func:`hall_spec`)."""
    return parse_scenario(hall_spec(n_circuits, **kwargs), source=f"<hall {n_circuits}>")
