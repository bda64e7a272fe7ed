"""The planning problem, indexed for numpy: what the assignment solver and the staging share."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from .topology import Topology

type FloatArray = npt.NDArray[np.float64]
type IntArray = npt.NDArray[np.intp]

TOLERANCE_A = 1e-4
"""Amps by which a load may exceed a limit and still count as within it (float noise)."""


def fmt_time(t_s: float) -> str:
    """A grid time as the reasons of an infeasible plan name it (UTC, to the minute)."""
    return datetime.fromtimestamp(t_s, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(slots=True)
class Problem:
    """Everything the solvers need, indexed for numpy."""

    topology: Topology
    goal: str
    times: FloatArray
    elements: tuple[str, ...]
    index: dict[str, int]
    rating: FloatArray
    limit: FloatArray
    start: dict[str, str | None]
    on: list[str]
    row: dict[str, int]
    profile: FloatArray  # (len(on), T)
    peak: dict[str, float]
    total_peak: float
    cap: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    """(elements x times) what the final state may carry: the limit, unless raised (restore)."""
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)
    cost: dict[tuple[str, str], float] = field(default_factory=dict)
    """Primary objective per (circuit, path): whole numbers (moves, penalties)."""
    tie: dict[tuple[str, str], float] = field(default_factory=dict)
    """Tie-break per (circuit, path): amps moved, as a fraction of the total load."""
    notes: list[str] = field(default_factory=list)
    balance: bool = False
    """Min-max: the lowest worst utilisation first, then fewest moves and amps."""

    def up(self, path: str) -> tuple[int, ...]:
        """Element rows a circuit on ``path`` loads (its MPDU and that MPDU's ATS)."""
        return tuple(self.index[e] for e in self.topology.upstream(path))

    def loads(self, assignment: Mapping[str, str | None]) -> FloatArray:
        """(elements x times) load for an assignment of the circuits that are on."""
        out = np.zeros((len(self.elements), self.times.size))
        for c in self.on:
            path = assignment.get(c)
            if path is None:
                continue
            for e in self.up(path):
                out[e] += self.profile[self.row[c]]
        return out

    def peak_utilization(self, loads: FloatArray) -> dict[str, float]:
        """Per element: the highest load over the grid divided by the rating."""
        peaks = loads.max(axis=1) / self.rating
        return {e: float(peaks[i]) for i, e in enumerate(self.elements)}

    def excess(self, loads: FloatArray) -> tuple[str, float, float]:
        """The worst (element, amps over its cap, time) of a load matrix."""
        over = loads - self.cap
        e, t = np.unravel_index(int(np.argmax(over)), over.shape)
        return self.elements[int(e)], float(over[e, t]), float(self.times[int(t)])

    def feasible(self, loads: FloatArray) -> bool:
        """Whether every element is within its cap at every grid time."""
        return bool((loads <= self.cap + TOLERANCE_A).all())


def prepare_problem(
    topology: Topology,
    assignment: Mapping[str, str | None],
    load_a: Mapping[str, FloatArray],
    times_s: FloatArray,
    unavailable: Collection[str],
    goal: str,
) -> Problem:
    """The problem for ``assignment`` (circuit -> MPDU, None: off) under the load profiles
    ``load_a`` on the grid ``times_s``; raises ValueError on inputs that do not fit the topology."""
    times = np.atleast_1d(np.asarray(times_s, dtype=np.float64))
    if times.ndim != 1 or times.size < 1:
        raise ValueError("times_s must be a 1-D grid with at least one point")
    for u in unavailable:
        if topology.kind(u) not in ("ats", "mpdu"):
            raise ValueError(f"unavailable names {u!r}, which is not an ATS or MPDU")
    start: dict[str, str | None] = {}
    for c, path in assignment.items():
        if c not in topology.circuits:
            raise ValueError(f"assignment names unknown circuit {c!r}")
        if path is not None and path not in topology.mpdus:
            raise ValueError(f"circuit {c!r} is assigned to unknown MPDU {path!r}")
        start[c] = path
    on = [c for c in start if start[c] is not None]
    profile = np.zeros((len(on), times.size))
    missing: list[str] = []
    for i, c in enumerate(on):
        if c not in load_a:
            missing.append(c)
            continue
        arr = np.asarray(load_a[c], dtype=np.float64)
        if arr.ndim == 0 or arr.size == 1:
            arr = np.full(times.size, float(arr.reshape(-1)[0]))
        if arr.shape != times.shape:
            raise ValueError(
                f"load profile of {c!r} has {arr.size} points, the grid has {times.size}"
            )
        profile[i] = np.nan_to_num(np.maximum(arr, 0.0), nan=0.0, posinf=0.0)
    elements = topology.elements
    prob = Problem(
        topology=topology,
        goal=goal,
        times=times,
        elements=elements,
        index={e: i for i, e in enumerate(elements)},
        rating=np.array([max(topology.rating_a(e), 1e-9) for e in elements]),
        limit=np.array([topology.limit_a(e) for e in elements]),
        start=start,
        on=on,
        row={c: i for i, c in enumerate(on)},
        profile=profile,
        peak={c: float(profile[i].max()) for i, c in enumerate(on)},
        total_peak=float(profile.max(axis=1).sum()) if on else 0.0,
    )
    prob.cap = np.repeat(prob.limit[:, None], times.size, axis=1)
    if missing:
        prob.notes.append(f"no load forecast for {', '.join(sorted(missing))}: counted as 0 A")
    return prob
