"""The migration planner: which circuits to move to which path, and in which safe stages.

The integration moves load *before* something fails (drain a component predicted to fail, relieve
a forecast overload) and right after something failed (rebalance what the SBMs dumped onto one
path). Every such action must be bounded, verified and reversible, so the planner

* chooses the final assignment with an exact solver (``scipy.optimize.milp``, HiGHS): binary
  x[c, p] = "circuit c draws from path p" over each circuit's own, available paths, every ATS and
  MPDU within its continuous limit (80 % of rating) at *every* time of the forecast grid.
  Lexicographic objective in two solves: the fewest circuits moved (proven optimal), then, with
  that count fixed, the fewest amps moved and the most balanced headroom. Limit rows are added
  lazily (only the grid times that bind), which keeps 250-circuit plants well under a second.
  A greedy heuristic stands in when HiGHS runs out of time or the problem is too large;
* reports infeasibility precisely (which element, how many amps over, at which forecast time),
  using a relaxed MILP with slack to find the smallest excess any plan could achieve;
* cuts the move set into steps of at most ``max_step_amps`` and orders them so that every
  intermediate state is safe. A step is safe in a strong sense: *every subset* of its moves
  leaves each element within its cap at every grid time, so the executor may apply the moves of
  one step in any order. The cap is the continuous limit, or, for an element that is above it
  before the step (relief), its load before the step: an element above its limit takes no new
  load until it is back within it (the executor verifies each stage the same way).
  Every step boundary is re-checked with the topology's own load arithmetic at every grid time. A
  target with no safe order (two full elements swapping circuits) is replaced: the MILP is
  re-solved with those moves excluded as a set, then the greedy target is tried; only then is
  "no safe order" reported. (Parking a circuit on a third path meanwhile is not attempted.)

Decisions worth knowing (the brief left them open):

* A drain must be complete for critical circuits: a critical circuit whose every path goes
  through the drained element (or through unavailable ones) makes the drain infeasible, naming
  the circuit. A *non-critical* circuit in that situation stays where it is (it will lose power
  if the drained element is isolated), and the plan says so in ``notes``. Non-critical circuits
  that do have a way out are moved off the drained element whenever capacity allows.
* A circuit that currently draws from an unavailable element (dead, degraded, isolated) is moved
  off it whenever capacity allows (strongly preferred, not required); if it cannot, it stays and
  the notes say so. Nothing is ever moved *onto* an unavailable path.
* Circuits that are off (assignment None) stay off, and so do circuits absent from
  ``assignment``; circuits missing from ``load_a`` count as 0 A (noted).
* ``restore_plan`` only moves circuits back to their normal path; an element that is already
  over its limit does not block it (it may not get worse; the notes name it).

Limits are checked with a tolerance of 0.1 mA.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from .topology import Topology

type FloatArray = npt.NDArray[np.float64]
type IntArray = npt.NDArray[np.intp]

TOLERANCE_A = 1e-4
"""Amps by which a load may exceed a limit and still count as within it (float noise)."""
MAX_MILP_NONZEROS = 3_000_000
"""Above this many constraint coefficients the MILP is not attempted (greedy instead)."""
_ORDER_NODE_BUDGET = 20_000
"""Search nodes the staging search may expand before it gives up ("no safe order")."""
_AMPS_WEIGHT = 1.0
"""Tie-break MILP: weight of "amps moved" as a fraction of the total load ..."""
_MAX_UTIL_WEIGHT = 0.2
"""... of the highest peak utilisation of any element ..."""
_MEAN_UTIL_WEIGHT = 0.1
"""... and of the mean peak utilisation."""
_SOURCE_WEIGHT = 0.05
"""... and of the share of circuits behind the busiest preferred source (a drain spread over
receivers fed from other sources does not raise the exposure to one outage)."""
_BALANCE_WEIGHT = 20.0
"""Balanced plans (``balance=True``): weight of the highest peak utilisation instead, so the
worst element's utilisation comes first and amps moved only break ties (extra moves allowed)."""
_SLACK_WEIGHT = 1000.0
"""Relaxed MILP: cost of one amp over a limit, against one moved circuit."""
_PRIMARY_SHARE = 0.6
"""Share of the time limit for the fewest-moves MILP; the rest for tie-breaks or diagnosis."""
_TIEBREAK_SHARE = 0.15
"""Most of the time limit the tie-break MILP may use."""

type _Mode = Literal["primary", "tiebreak", "relaxed"]
_REL_GAP: dict[_Mode, float] = {"primary": 1e-4, "tiebreak": 0.01, "relaxed": 0.02}
"""HiGHS relative MIP gap: exact move counts; tie-breaks and least excess within 1-2 %."""
_BALANCE_GAP = 1e-3
"""... and a balanced plan's worst utilisation within 0.1 %."""


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Move:
    """One circuit switched from one MPDU to another; ``amps`` is its forecast peak."""

    circuit: str
    from_mpdu: str
    to_mpdu: str
    amps: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "circuit": self.circuit,
            "from_mpdu": self.from_mpdu,
            "to_mpdu": self.to_mpdu,
            "amps": round(float(self.amps), 4),
        }


@dataclass(frozen=True, slots=True)
class PlanStep:
    """Moves executed together; any subset of them leaves the plant within its caps."""

    moves: tuple[Move, ...]
    amps: float
    peak_utilization: Mapping[str, float]

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "moves": [m.as_dict() for m in self.moves],
            "amps": round(float(self.amps), 4),
            "peak_utilization": _round_map(self.peak_utilization),
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """A staged migration whose every intermediate state is safe at every forecast time."""

    goal: str
    steps: tuple[PlanStep, ...]
    final_assignment: Mapping[str, str | None]
    peak_utilization: Mapping[str, float]
    solver: str
    notes: tuple[str, ...]

    @property
    def moves(self) -> tuple[Move, ...]:
        """All moves in execution order."""
        return tuple(m for step in self.steps for m in step.moves)

    @property
    def circuits(self) -> frozenset[str]:
        """The circuits the plan moves."""
        return frozenset(m.circuit for m in self.moves)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form (for service responses, events and diagnostics)."""
        return {
            "feasible": True,
            "goal": self.goal,
            "solver": self.solver,
            "notes": list(self.notes),
            "steps": [s.as_dict() for s in self.steps],
            "moves": len(self.moves),
            "circuits": sorted(self.circuits),
            "amps_moved": round(sum(float(m.amps) for m in self.moves), 4),
            "final_assignment": dict(self.final_assignment),
            "peak_utilization": _round_map(self.peak_utilization),
        }


@dataclass(frozen=True, slots=True)
class Infeasible:
    """No safe plan exists: ``element`` would be ``excess_a`` over its limit at ``at_s``; or,
    when ``no_path`` names circuits, those critical circuits have no available path off the
    part being drained (``excess_a`` is then their load, not an excess over a limit)."""

    goal: str
    element: str
    excess_a: float
    at_s: float | None
    reason: str
    no_path: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "feasible": False,
            "goal": self.goal,
            "element": self.element,
            "excess_a": round(float(self.excess_a), 4),
            "at_s": None if self.at_s is None else float(self.at_s),
            "reason": self.reason,
            **({"no_path": list(self.no_path)} if self.no_path else {}),
        }


def _round_map(values: Mapping[str, float]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in values.items()}


def _fmt_time(t_s: float) -> str:
    return datetime.fromtimestamp(t_s, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


# -- the problem ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Problem:
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


def _prepare(
    topology: Topology,
    assignment: Mapping[str, str | None],
    load_a: Mapping[str, FloatArray],
    times_s: FloatArray,
    unavailable: Collection[str],
    goal: str,
) -> _Problem:
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
    prob = _Problem(
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


def _available(topology: Topology, path: str, blocked: Collection[str]) -> bool:
    return not any(e in blocked for e in topology.upstream(path))


def _tie_break(prob: _Problem, circuit: str) -> float:
    """The circuit's peak as a fraction of all circuits' peaks (the amps tie-break)."""
    return prob.peak[circuit] / prob.total_peak if prob.total_peak > 0 else 0.0


# -- public API -------------------------------------------------------------------------------


def plan_migration(
    topology: Topology,
    assignment: Mapping[str, str | None],
    load_a: Mapping[str, FloatArray],
    times_s: FloatArray,
    *,
    drain: str | None = None,
    unavailable: Collection[str] = (),
    max_step_amps: float = 40.0,
    goal: str | None = None,
    time_limit_s: float = 2.0,
    no_receive: Collection[str] = (),
    balance: bool = False,
) -> Plan | Infeasible:
    """Plan staged moves that leave every element within its limit at every grid time.

    ``drain`` empties an ATS or MPDU (see the module docstring for non-critical circuits);
    without it the plan only relieves forecast overloads (and moves circuits off unavailable
    elements where it can). ``no_receive``: elements that take no new load (hysteresis after a
    relief) but whose circuits need not leave. ``balance``: among the plans within limits,
    the one with the lowest worst utilisation (extra moves allowed), not the fewest moves.
    ``time_limit_s <= 0`` skips HiGHS and uses the greedy heuristic.
    """
    if drain is not None and topology.kind(drain) not in ("ats", "mpdu"):
        raise ValueError(f"drain names {drain!r}, which is not an ATS or MPDU")
    if goal is None:
        if drain is not None:
            goal = f"drain {drain}"
        elif unavailable:
            goal = "rebalance after failure"
        else:
            goal = "relieve overload"
    prob = _prepare(topology, assignment, load_a, times_s, unavailable, goal)
    prob.balance = balance
    blocked = set(unavailable) | ({drain} if drain is not None else set())
    hold = set(no_receive)
    unavailable_set = set(unavailable)
    stay_penalty = 2.0 * (len(prob.on) + 1)
    stuck_critical: list[str] = []
    for c in prob.on:
        cur = prob.start[c]
        assert cur is not None
        node = topology.circuits[c]
        # A no-receive element takes no *new* load: a move that stays behind it (another
        # MPDU of the same ATS) adds nothing to it.
        held = hold - set(topology.upstream(cur))
        alts = tuple(
            p
            for p in node.paths
            if p != cur and _available(topology, p, blocked) and _available(topology, p, held)
        )
        must_leave = drain is not None and topology.depends_on(cur, drain)
        should_leave = not _available(topology, cur, unavailable_set)
        if must_leave and not alts:
            if node.critical:
                stuck_critical.append(c)
            else:
                prob.notes.append(
                    f"non-critical circuit {c} has no available path avoiding {drain}: it stays "
                    f"on {cur} and loses power if {drain} is isolated"
                )
            prob.options[c] = (cur,)
        elif must_leave and node.critical:
            prob.options[c] = alts
        else:
            prob.options[c] = (cur, *alts)
            if (must_leave or should_leave) and not alts:
                prob.notes.append(f"{c} stays on unavailable {cur}: it has no other available path")
        for p in prob.options[c]:
            prob.cost[c, p] = 0.0 if p == cur else 1.0
            prob.tie[c, p] = 0.0 if p == cur else _tie_break(prob, c)
        if (must_leave or should_leave) and alts and cur in prob.options[c]:
            prob.cost[c, cur] = stay_penalty
    if stuck_critical:
        rows = [prob.row[c] for c in stuck_critical]
        total = prob.profile[rows].sum(axis=0)
        t = int(np.argmax(total))
        assert drain is not None
        return Infeasible(
            goal=goal,
            element=drain,
            excess_a=float(total[t]),
            at_s=float(prob.times[t]),
            reason=(
                f"cannot drain {drain}: critical circuit(s) {', '.join(sorted(stuck_critical))} "
                f"have no available path that avoids {drain}"
            ),
            no_path=tuple(sorted(stuck_critical)),
        )

    def describe(final: Mapping[str, str | None]) -> list[str]:
        return [
            f"{c} stays on {prob.start[c]}: no path has the capacity to take it"
            for c in prob.on
            if prob.cost.get((c, str(final[c])), 0.0) >= stay_penalty
        ]

    return _solve_and_stage(prob, time_limit_s, max_step_amps, describe)


def restore_plan(
    topology: Topology,
    assignment: Mapping[str, str | None],
    load_a: Mapping[str, FloatArray],
    times_s: FloatArray,
    *,
    unavailable: Collection[str] = (),
    max_step_amps: float = 40.0,
    time_limit_s: float = 2.0,
) -> Plan | Infeasible:
    """Move as many circuits as is safe back to their normal path, in safe stages.

    Circuits whose normal path is unavailable, or whose return would break a limit, stay where
    they are (named in ``notes``). An element already over its limit does not block the
    restore: no element may end above its limit or, if it is over already, above its current
    load at any grid time, and an element above its limit takes no load on the way (the staging
    rule of every plan). Restoring never relieves an overload on
    purpose; that is ``plan_migration``'s job (the notes name such elements).
    """
    goal = "restore normal paths"
    prob = _prepare(topology, assignment, load_a, times_s, unavailable, goal)
    prob.cap = np.maximum(prob.cap, prob.loads(prob.start))
    blocked = set(unavailable)
    away: list[str] = []
    for c in prob.on:
        cur = prob.start[c]
        normal = topology.circuits[c].normal_path
        if cur == normal:
            prob.options[c] = (normal,)
            prob.cost[c, normal] = 0.0
            continue
        assert cur is not None
        if _available(topology, normal, blocked):
            prob.options[c] = (cur, normal)
            prob.cost[c, normal] = 0.0
            prob.cost[c, cur] = 1.0
            prob.tie[c, cur] = _tie_break(prob, c)
            away.append(c)
        else:
            prob.options[c] = (cur,)
            prob.cost[c, cur] = 0.0
            prob.notes.append(f"{c} stays on {cur}: its normal path {normal} is unavailable")

    def describe(final: Mapping[str, str | None]) -> list[str]:
        notes = [
            f"{c} stays on {final[c]}: returning it to {topology.circuits[c].normal_path} "
            "would break a limit"
            for c in away
            if final[c] != topology.circuits[c].normal_path
        ]
        over = (prob.loads(final) - prob.limit[:, None]).max(axis=1)
        notes += [
            f"{e} stays {over[i]:.1f} A over its limit: restoring does not relieve it"
            for i, e in enumerate(prob.elements)
            if over[i] > TOLERANCE_A
        ]
        return notes

    return _solve_and_stage(prob, time_limit_s, max_step_amps, describe)


# -- choosing the final assignment ---------------------------------------------------------------


def _cost_of(prob: _Problem, assignment: Mapping[str, str | None]) -> tuple[float, float]:
    """(primary objective, tie-break) of an assignment."""
    pairs = [(c, p) for c, p in assignment.items() if p is not None]
    return (
        sum(prob.cost.get(cp, 0.0) for cp in pairs),
        sum(prob.tie.get(cp, 0.0) for cp in pairs),
    )


_ORDER_RETRIES = 3
"""MILP re-solves (each excluding the previous target) when a target has no safe order."""


def _solve_and_stage(
    prob: _Problem,
    time_limit_s: float,
    max_step_amps: float,
    describe: Callable[[Mapping[str, str | None]], list[str]],
) -> Plan | Infeasible:
    """Choose a target assignment and stage it; retry other targets if it cannot be ordered.

    A target that is within limits may still have no safe order (two full elements swapping
    circuits). The MILP is then re-solved with the deadlocked moves excluded as a set (a cut:
    not all of them together), up to ``_ORDER_RETRIES`` times within the time limit, and the
    greedy target is tried last.
    """
    deadline = time.monotonic() + time_limit_s
    base_notes = list(prob.notes)
    forbidden: list[dict[str, str]] = []
    first_failure: Infeasible | None = None
    tried_greedy = False
    for attempt in range(_ORDER_RETRIES + 2):
        prob.notes = list(base_notes)
        if attempt <= _ORDER_RETRIES and not tried_greedy:
            remaining = time_limit_s if attempt == 0 else deadline - time.monotonic()
            if attempt > 0 and remaining <= 0:
                continue
            result = _solve(prob, remaining, forbidden)
        else:
            greedy = _greedy(prob)
            if not prob.feasible(prob.loads(greedy)) or any(
                all(greedy[c] == p for c, p in cut.items()) for cut in forbidden
            ):
                break
            prob.notes.append("greedy heuristic target used: the MILP targets had no safe order")
            result = (greedy, "greedy")
        if isinstance(result, Infeasible):
            return first_failure or result
        final, solver = result
        tried_greedy = tried_greedy or solver == "greedy"
        prob.notes.extend(describe(final))
        if first_failure is not None:
            prob.notes.append(
                f"{len(forbidden)} earlier target(s) had no safe order: {first_failure.reason}"
            )
        staged = _staged_plan(prob, final, max_step_amps, solver)
        if not isinstance(staged, _Deadlock):
            return staged
        first_failure = first_failure or staged.infeasible
        forbidden.append(staged.blocked)
    assert first_failure is not None
    return first_failure


def _solve(
    prob: _Problem, time_limit_s: float, forbidden: Sequence[Mapping[str, str]] = ()
) -> tuple[dict[str, str | None], str] | Infeasible:
    """The final assignment (and which solver found it), or why there is none.

    Lexicographic, in two MILPs: first the fewest moves (a whole-number objective, which HiGHS
    proves optimal much faster), then, with the move count capped at that optimum, the fewest
    amps moved and the most balanced headroom (best found within its share of the time).
    Each ``forbidden`` set of moves (circuit -> target path) may not be chosen all together
    (the greedy heuristic ignores them).
    """
    deadline = time.monotonic() + time_limit_s
    movable = [c for c in prob.on if len(prob.options[c]) > 1]
    keep_t = _dominant_times(prob.profile)
    nnz = sum(len(prob.options[c]) * 2 * keep_t.size for c in movable)
    incumbent: dict[str, str | None] | None = None
    why: str
    start = {c: prob.start[c] for c in prob.on}
    if (
        time_limit_s > 0
        and not forbidden
        and all(start[c] in prob.options[c] and prob.cost[c, str(start[c])] == 0 for c in prob.on)
        and prob.feasible(prob.loads(start))
    ):
        # every cost is >= 0, so staying put (cost 0, within limits) is optimal: no solve needed
        return dict(prob.start), "milp"
    milp_ran = False
    if time_limit_s <= 0:
        why = "greedy heuristic used: no time for the MILP (time_limit_s <= 0)"
    elif nnz > MAX_MILP_NONZEROS:
        why = f"greedy heuristic used: MILP too large ({nnz} coefficients)"
    else:
        milp_ran = True
        out = _milp_lazy(
            prob,
            keep_t,
            mode="primary",
            time_limit_s=_PRIMARY_SHARE * time_limit_s,
            forbidden=forbidden,
        )
        if out.status == 0 and out.assignment is not None:
            best = out.assignment
            cap = sum(prob.cost[c, str(best[c])] for c in movable)
            if prob.balance:
                # any number of extra moves, never an extra stay on an element to be left
                cap += len(movable)
            refine = _milp_lazy(
                prob,
                keep_t,
                mode="tiebreak",
                time_limit_s=min(
                    deadline - time.monotonic(), max(_TIEBREAK_SHARE * time_limit_s, 0.1)
                ),
                forbidden=forbidden,
                primary_cap=cap,
            )
            quality = "optimal"
            if refine.assignment is not None and prob.feasible(prob.loads(refine.assignment)):
                best = refine.assignment
                if refine.status != 0:
                    quality = "best found in time"
            else:
                quality = "not refined in time"
            if prob.feasible(prob.loads(best)):
                prob.notes.append(
                    f"MILP (HiGHS): fewest moves proven optimal, tie-breaks {quality}; "
                    f"{len(movable)} movable circuits, limits enforced at {out.rows_times} of "
                    f"{prob.times.size} grid times (the others checked after)"
                )
                return best, "milp"
        if out.status == 2 and forbidden:
            return Infeasible(prob.goal, "", 0.0, None, "no target left besides excluded ones")
        if out.status == 2:
            return _infeasible(prob, keep_t, max(deadline - time.monotonic(), 0.2), proven=True)
        if out.assignment is not None and prob.feasible(prob.loads(out.assignment)):
            incumbent = out.assignment
        why = (
            f"greedy heuristic used: HiGHS stopped at the {time_limit_s:g} s limit ({out.message})"
        )
    greedy = _greedy(prob)
    greedy_ok = prob.feasible(prob.loads(greedy))
    if incumbent is not None and (
        not greedy_ok or _cost_of(prob, incumbent) <= _cost_of(prob, greedy)
    ):
        prob.notes.append(
            why.replace("greedy heuristic used", "MILP incumbent used (not proven optimal)")
        )
        return incumbent, "milp"
    if greedy_ok:
        prob.notes.append(why)
        return greedy, "greedy"
    greedy_excess = prob.excess(prob.loads(greedy))
    if milp_ran and deadline - time.monotonic() > 0.05:
        # HiGHS neither found a plan nor proved there is none: bound the excess with the rest
        relaxed = _infeasible(prob, keep_t, deadline - time.monotonic(), proven=False)
        if relaxed.excess_a <= greedy_excess[1]:
            return relaxed
    element, excess, at = greedy_excess
    return Infeasible(
        goal=prob.goal,
        element=element,
        excess_a=excess,
        at_s=at,
        reason=(
            f"{why}; it found no plan: the best it reached leaves {element} {excess:.1f} A over "
            f"its {prob.limit[prob.index[element]]:.1f} A limit at {_fmt_time(at)} "
            "(a heuristic estimate; an exact solver might do better)"
        ),
    )


def _infeasible(
    prob: _Problem, keep_t: IntArray, time_limit_s: float, *, proven: bool
) -> Infeasible:
    """Explain an infeasible problem with the smallest excess any plan could reach.

    ``proven``: HiGHS proved that no plan is within limits; otherwise it only found none in time.
    """
    out = _milp_lazy(prob, keep_t, mode="relaxed", time_limit_s=time_limit_s)
    best = out.assignment if out.assignment is not None else _greedy(prob)
    loads = prob.loads(best)
    element, excess, at = prob.excess(loads)
    over = loads - prob.cap
    worst = over.max(axis=1)
    others = [
        f"{prob.elements[i]} {worst[i]:.1f} A"
        for i in np.argsort(-worst)
        if worst[i] > TOLERANCE_A and prob.elements[i] != element
    ]
    exact = "" if out.status == 0 else " (solver stopped early: an upper bound)"
    head = (
        "no plan keeps every element within its continuous limit"
        if proven
        else "no plan within limits was found in time (none proven impossible either)"
    )
    reason = (
        f"{head}: even the best plan leaves {element} {excess:.1f} A over its "
        f"{prob.limit[prob.index[element]]:.1f} A limit at {_fmt_time(at)}{exact}"
    )
    if others:
        reason += f"; also over: {', '.join(others)}"
    return Infeasible(goal=prob.goal, element=element, excess_a=excess, at_s=at, reason=reason)


def _dominant_times(profile: FloatArray) -> IntArray:
    """Grid times not dominated by another (every circuit at least as loaded there).

    A dominated time can never be the binding one, whatever the assignment, so the MILP needs
    constraints only at the rest. Daily-shaped profiles usually leave a handful of times.
    """
    n_c, n_t = profile.shape
    if n_c == 0 or n_t == 1:
        return np.arange(min(n_t, 1), dtype=np.intp)
    kept: list[int] = []
    for t in np.argsort(-profile.sum(axis=0), kind="stable"):
        col = profile[:, t]
        if kept and (profile[:, kept] >= col[:, None] - 1e-12).all(axis=0).any():
            continue
        kept.append(int(t))
    return np.array(sorted(kept), dtype=np.intp)


@dataclass(frozen=True, slots=True)
class _MilpOutcome:
    status: int
    message: str
    assignment: dict[str, str | None] | None
    slack: FloatArray | None = None
    rows_times: int = 0


def _milp(
    prob: _Problem,
    keep_t: IntArray,
    *,
    mode: _Mode,
    time_limit_s: float,
    forbidden: Sequence[Mapping[str, str]] = (),
    primary_cap: float | None = None,
) -> _MilpOutcome:
    """Solve the assignment MILP over the grid times ``keep_t``.

    ``mode``: "primary" minimises the whole-number cost (moves); "tiebreak" minimises amps moved
    and peak utilisation (variables u_e >= load/rating, U >= u_e) with the primary cost capped at
    ``primary_cap``; "relaxed" adds slack amps per element (always feasible) and minimises them
    first. Every mode keeps each element's load within ``prob.cap`` (plus slack) at each time.
    """
    relaxed = mode == "relaxed"
    balance = mode == "tiebreak"
    n_e = len(prob.elements)
    n_t = keep_t.size
    movable = [c for c in prob.on if len(prob.options[c]) > 1]
    columns = [(c, p) for c in movable for p in prob.options[c]]
    n_x = len(columns)
    u0 = n_x  # u_e, then U, then V (tiebreak only)
    s0 = u0 + (n_e + 2 if balance else 0)  # slack s_e (relaxed only)
    n_var = s0 + (n_e if relaxed else 0)

    fixed = np.zeros((n_e, n_t))
    for c in prob.on:
        if len(prob.options[c]) == 1:
            for e in prob.up(prob.options[c][0]):
                fixed[e] += prob.profile[prob.row[c], keep_t]

    if n_var == 0:  # nothing to decide: every circuit has exactly one option
        fits = bool((fixed <= prob.cap[:, keep_t]).all())
        forced = {**prob.start, **{c: prob.options[c][0] for c in prob.on}}
        return _MilpOutcome(0 if fits else 2, "trivial", forced if fits else None, None, n_t)
    primary = np.array([prob.cost[cp] for cp in columns], dtype=np.float64)
    cost = np.zeros(n_var)
    if balance:
        cost[:n_x] = [_AMPS_WEIGHT * prob.tie.get(cp, 0.0) for cp in columns]
        cost[u0 : u0 + n_e] = _MEAN_UTIL_WEIGHT / max(n_e, 1)
        cost[u0 + n_e] = _BALANCE_WEIGHT if prob.balance else _MAX_UTIL_WEIGHT
        cost[u0 + n_e + 1] = _SOURCE_WEIGHT / max(len(prob.on), 1)
    else:
        cost[:n_x] = primary
    if relaxed:
        cost[s0:] = _SLACK_WEIGHT

    rows: list[IntArray] = [np.zeros(0, dtype=np.intp)]
    cols: list[IntArray] = [np.zeros(0, dtype=np.intp)]
    vals: list[FloatArray] = [np.zeros(0)]
    t_range = np.arange(n_t, dtype=np.intp)
    # one path per movable circuit
    n_assign = len(movable)
    j = 0
    for i, c in enumerate(movable):
        k = len(prob.options[c])
        rows.append(np.full(k, i, dtype=np.intp))
        cols.append(np.arange(j, j + k, dtype=np.intp))
        vals.append(np.ones(k))
        j += k
    # element load at each time: limit rows (sum L x - s_e <= cap - fixed) and, for the
    # tie-break, the same loads again against rating * u_e
    blocks = [n_assign]
    if balance:
        blocks.append(n_assign + n_e * n_t)
    r, k_, v = _load_entries(prob, columns, keep_t, blocks)
    rows.append(r)
    cols.append(k_)
    vals.append(v)
    for e in range(n_e):
        if relaxed:
            rows.append(blocks[0] + e * n_t + t_range)
            cols.append(np.full(n_t, s0 + e, dtype=np.intp))
            vals.append(-np.ones(n_t))
        if balance:
            rows.append(blocks[1] + e * n_t + t_range)
            cols.append(np.full(n_t, u0 + e, dtype=np.intp))
            vals.append(np.full(n_t, -prob.rating[e]))
    n_rows = n_assign + len(blocks) * n_e * n_t
    if balance:  # u_e <= U
        rows.append(n_rows + np.arange(n_e, dtype=np.intp))
        cols.append(u0 + np.arange(n_e, dtype=np.intp))
        vals.append(np.ones(n_e))
        rows.append(n_rows + np.arange(n_e, dtype=np.intp))
        cols.append(np.full(n_e, u0 + n_e, dtype=np.intp))
        vals.append(-np.ones(n_e))
        n_rows += n_e
    source0, n_src, fixed_s = n_rows, 0, np.zeros(0)
    if balance:  # circuits behind each preferred source <= V (exposure to one outage)
        rows_s, fixed_s = _source_rows(prob, columns)
        for k, js in enumerate(rows_s):
            rows.append(np.full(len(js) + 1, n_rows + k, dtype=np.intp))
            cols.append(np.array([*js, u0 + n_e + 1], dtype=np.intp))
            vals.append(np.array([*([1.0] * len(js)), -1.0]))
        n_src = len(rows_s)
        n_rows += n_src
    # cuts: not all the moves of a deadlocked set together
    cut0 = n_rows
    col_of = {cp: j for j, cp in enumerate(columns)}
    cut_ub = np.zeros(len(forbidden))
    for k, cut in enumerate(forbidden):
        hits = [col_of[c, p] for c, p in cut.items() if (c, p) in col_of]
        cut_ub[k] = len(hits) - 1
        rows.append(np.full(len(hits), cut0 + k, dtype=np.intp))
        cols.append(np.array(hits, dtype=np.intp))
        vals.append(np.ones(len(hits)))
    n_rows += len(forbidden)
    if primary_cap is not None:
        nz = np.flatnonzero(primary)
        rows.append(np.full(nz.size, n_rows, dtype=np.intp))
        cols.append(nz.astype(np.intp))
        vals.append(primary[nz])
        n_rows += 1
    a = sparse.csc_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_rows, n_var),
    )
    lb = np.full(n_rows, -np.inf)
    ub = np.zeros(n_rows)
    lb[:n_assign] = 1.0
    ub[:n_assign] = 1.0
    ub[blocks[0] : blocks[0] + n_e * n_t] = (prob.cap[:, keep_t] - fixed).reshape(-1)
    if balance:
        ub[blocks[1] : blocks[1] + n_e * n_t] = (-fixed).reshape(-1)
    ub[cut0 : cut0 + len(forbidden)] = cut_ub
    ub[source0 : source0 + n_src] = -fixed_s
    if primary_cap is not None:
        ub[-1] = primary_cap + 1e-6
    lower = np.zeros(n_var)
    upper = np.full(n_var, np.inf)
    upper[:n_x] = 1.0
    integrality = np.zeros(n_var)
    integrality[:n_x] = 1
    res = milp(
        cost,
        integrality=integrality,
        bounds=Bounds(lower, upper),
        constraints=LinearConstraint(a, lb, ub),
        options={
            "time_limit": float(time_limit_s),
            "disp": False,
            "mip_rel_gap": _BALANCE_GAP if balance and prob.balance else _REL_GAP[mode],
        },
    )
    x = getattr(res, "x", None)
    if x is None:
        return _MilpOutcome(int(res.status), str(res.message), None, rows_times=n_t)
    final: dict[str, str | None] = dict(prob.start)
    for c in prob.on:
        final[c] = prob.options[c][0]
    j = 0
    for c in movable:
        k = len(prob.options[c])
        final[c] = prob.options[c][int(np.argmax(x[j : j + k]))]
        j += k
    slack = np.asarray(x[s0:], dtype=np.float64) if relaxed else None
    return _MilpOutcome(int(res.status), str(res.message), final, slack, n_t)


def _load_entries(
    prob: _Problem, columns: Sequence[tuple[str, str]], keep_t: IntArray, blocks: Sequence[int]
) -> tuple[IntArray, IntArray, FloatArray]:
    """The load coefficients of the limit (and balance) rows: for each column (circuit on a
    path), each element the path loads, each block of rows and each time where the circuit
    draws, in that order (numpy instead of a Python loop per column and element)."""
    n_x, n_t = len(columns), keep_t.size
    if n_x == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp), np.zeros(0)
    prof = prob.profile[np.array([prob.row[c] for c, _ in columns], dtype=np.intp)][:, keep_t]
    ups = np.array([prob.up(p) for _, p in columns], dtype=np.intp)  # (n_x, 2)
    base = np.asarray(blocks, dtype=np.intp)
    shape = (n_x, ups.shape[1], base.size, n_t)
    row = (
        base[None, None, :, None]
        + ups[:, :, None, None] * n_t
        + np.arange(n_t, dtype=np.intp)[None, None, None, :]
    )
    col = np.broadcast_to(np.arange(n_x, dtype=np.intp)[:, None, None, None], shape)
    val = np.broadcast_to(prof[:, None, None, :], shape)
    nz = np.broadcast_to((prof > 0)[:, None, None, :], shape)
    return row[nz], col[nz], val[nz]


def _source_rows(
    prob: _Problem, columns: Sequence[tuple[str, str]]
) -> tuple[list[list[int]], FloatArray]:
    """Per preferred source: the columns that put a circuit behind it, and the circuits that
    stay behind it whatever the solution (one option only)."""
    topo = prob.topology

    def source(path: str) -> str:
        srcs = topo.ats[topo.ats_of(path)].sources
        return srcs[0] if srcs else topo.ats_of(path)

    names = sorted({source(m) for m in topo.mpdus})
    at = {s: i for i, s in enumerate(names)}
    js: list[list[int]] = [[] for _ in names]
    for j, (_, p) in enumerate(columns):
        js[at[source(p)]].append(j)
    fixed = np.zeros(len(names))
    for c in prob.on:
        if len(prob.options[c]) == 1:
            fixed[at[source(prob.options[c][0])]] += 1.0
    return js, fixed


_MAX_ROW_ROUNDS = 8
"""Rounds of adding violated (element, time) rows before the MILP takes every grid time."""


def _milp_lazy(
    prob: _Problem,
    keep_t: IntArray,
    *,
    mode: _Mode,
    time_limit_s: float,
    forbidden: Sequence[Mapping[str, str]] = (),
    primary_cap: float | None = None,
) -> _MilpOutcome:
    """Solve the MILP with limit rows only at the times that turn out to bind (row generation).

    Most of the 96 grid times never bind; the MILP starts with each element's worst times (at
    the start and when every circuit that could draw through it did) and adds, round by round,
    the worst violated time of every element the solution breaks. A solution within limits at
    the times used *and* at every other time is optimal for the full problem; an infeasible
    subset proves the full problem infeasible. Much faster than all rows at once.
    """
    deadline = time.monotonic() + time_limit_s
    sub = prob.profile[:, keep_t]
    could = np.zeros((len(prob.elements), keep_t.size))
    for c in prob.on:
        for e in {e for p in prob.options[c] for e in prob.up(p)}:
            could[e] += sub[prob.row[c]]
    active = {int(np.argmax(prob.loads(prob.start)[:, keep_t].sum(axis=0)))}
    active |= {int(t) for t in np.argmax(prob.loads(prob.start)[:, keep_t], axis=1)}
    active |= {int(t) for t in np.argmax(could - prob.cap[:, keep_t], axis=1)}
    out = _MilpOutcome(4, "not run", None)
    for _ in range(_MAX_ROW_ROUNDS):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _MilpOutcome(1, "time limit reached", None)
        idx = np.array(sorted(active), dtype=np.intp)
        out = _milp(
            prob,
            keep_t[idx],
            mode=mode,
            time_limit_s=remaining,
            forbidden=forbidden,
            primary_cap=primary_cap,
        )
        if out.assignment is None or (out.status != 0 and mode != "tiebreak"):
            return out
        loads = prob.loads(out.assignment)[:, keep_t]
        allowed = prob.cap[:, keep_t] + (out.slack[:, None] if out.slack is not None else 0.0)
        over = loads - allowed
        new = {int(np.argmax(over[e])) for e in range(len(prob.elements)) if over[e].max() > 0}
        new -= active
        if not new:
            return out
        active |= new
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return _MilpOutcome(1, "time limit reached", None)
    return _milp(
        prob,
        keep_t,
        mode=mode,
        time_limit_s=remaining,
        forbidden=forbidden,
        primary_cap=primary_cap,
    )


def _greedy(prob: _Problem) -> dict[str, str | None]:
    """A fast heuristic assignment; may still be over a limit (the caller checks).

    Hand-written because no library solves "fewest moves" assignment heuristically: place the
    circuits that must leave where the most headroom is, then repeatedly relieve the worst
    element with the single move that cuts total excess most (ties: fewest new moves, smallest
    circuit), then undo moves that turned out unnecessary.
    """
    a: dict[str, str | None] = dict(prob.start)
    loads = prob.loads(a)
    limit = prob.cap

    def shift(c: str, p: str) -> None:
        old = a[c]
        prof = prob.profile[prob.row[c]]
        if old is not None:
            for e in prob.up(old):
                loads[e] -= prof
        for e in prob.up(p):
            loads[e] += prof
        a[c] = p

    def margin(c: str, p: str) -> float:
        """Smallest headroom left on the elements ``p`` adds to, were ``c`` moved there."""
        cur = a[c]
        src = set(prob.up(cur)) if cur is not None else set()
        prof = prob.profile[prob.row[c]]
        adds = [e for e in prob.up(p) if e not in src]
        if not adds:
            return math.inf
        return float(min((limit[e] - loads[e] - prof).min() for e in adds))

    def excess_delta(c: str, p: str) -> float:
        cur = a[c]
        assert cur is not None
        prof = prob.profile[prob.row[c]]
        delta = 0.0
        touched = set(prob.up(cur)) | set(prob.up(p))
        for e in touched:
            before = loads[e] - limit[e]
            after = before.copy()
            if e in prob.up(cur):
                after -= prof
            if e in prob.up(p):
                after += prof
            delta += float(np.maximum(after, 0).sum() - np.maximum(before, 0).sum())
        return delta

    forced = sorted(
        (c for c in prob.on if a[c] not in prob.options[c]), key=lambda c: -prob.peak[c]
    )
    for c in forced:
        shift(c, max(prob.options[c], key=lambda p: margin(c, p)))
    # take every cheaper option that fits (circuits off unavailable paths, restores)
    for c in sorted(prob.on, key=lambda c: -prob.peak[c]):
        cur = a[c]
        if cur is None:
            continue
        here = prob.cost.get((c, cur), 0.0)
        cheaper = sorted(
            (p for p in prob.options[c] if prob.cost[c, p] < here),
            key=lambda p: (prob.cost[c, p], -margin(c, p)),
        )
        for p in cheaper:
            if margin(c, p) >= -TOLERANCE_A:
                shift(c, p)
                break
    for _ in range(4 * len(prob.on) + 10):
        over = loads - limit
        if over.max() <= TOLERANCE_A:
            break
        worst = int(np.argmax(over.max(axis=1)))
        best_key: tuple[float, float, float] | None = None
        best_move: tuple[str, str] | None = None
        for c in prob.on:
            cur = a[c]
            if cur is None or worst not in prob.up(cur):
                continue
            for p in prob.options[c]:
                if p == cur or worst in prob.up(p):
                    continue
                new_move = prob.cost[c, p] - prob.cost.get((c, cur), 0.0)
                key = (excess_delta(c, p), new_move, prob.peak[c])
                if best_key is None or key < best_key:
                    best_key, best_move = key, (c, p)
        if best_key is None or best_move is None or best_key[0] >= -TOLERANCE_A:
            break
        shift(*best_move)
    if prob.feasible(loads):
        # undo moves that turned out unnecessary (cheapest first)
        for c in sorted(prob.on, key=lambda c: prob.peak[c]):
            home = prob.start[c]
            if home is None or a[c] == home or home not in prob.options[c]:
                continue
            if (
                prob.cost[c, home] < prob.cost.get((c, str(a[c])), 0.0)
                and margin(c, home) >= -TOLERANCE_A
            ):
                shift(c, home)
    return a


# -- staging -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _StagedMove:
    move: Move
    profile: FloatArray
    adds: tuple[int, ...]
    frees: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Deadlock:
    """No safe order: why (for the caller) and the moves that stayed blocked."""

    infeasible: Infeasible
    blocked: dict[str, str]


def _staged_plan(
    prob: _Problem, final: Mapping[str, str | None], max_step_amps: float, solver: str
) -> Plan | Infeasible | _Deadlock:
    """Order and group the moves from the start to ``final`` into verified safe steps."""
    start_loads = prob.loads(prob.start)
    # An element at or below its limit may be filled up to it; one above it (a relief) takes
    # no new load until it is back within it. Judged against the state before each move and
    # each step, as the executor verifies every stage against the plant just before it.
    limit = np.broadcast_to(prob.limit[:, None] + TOLERANCE_A, start_loads.shape)
    moves: list[_StagedMove] = []
    for c in prob.on:
        src, dst = prob.start[c], final[c]
        if src is None or dst is None or src == dst:
            continue
        up_src, up_dst = prob.up(src), prob.up(dst)
        moves.append(
            _StagedMove(
                Move(c, src, dst, prob.peak[c]),
                prob.profile[prob.row[c]],
                tuple(e for e in up_dst if e not in up_src),
                tuple(e for e in up_src if e not in up_dst),
            )
        )
    order = _order_moves(prob, moves, start_loads, limit)
    if isinstance(order, _Deadlock):
        return order
    steps: list[list[_StagedMove]] = []
    state = start_loads.copy()
    worst = state.copy()
    cap = _caps(limit, state)
    amps = 0.0
    for i in order:
        m = moves[i]
        fits = bool(steps) and amps + m.move.amps <= max_step_amps + TOLERANCE_A
        if fits:
            fits = all(bool((worst[e] + m.profile <= cap[e]).all()) for e in m.adds)
        if not fits:
            worst = state.copy()
            cap = _caps(limit, state)
            steps.append([])
            amps = 0.0
        steps[-1].append(m)
        amps += m.move.amps
        for e in m.adds:
            worst[e] += m.profile
            state[e] += m.profile
        for e in m.frees:
            state[e] -= m.profile
    # independent check of every step boundary with the topology's own arithmetic
    assignment: dict[str, str | None] = dict(prob.start)
    plan_steps: list[PlanStep] = []
    per_time = {c: prob.profile[prob.row[c]] for c in prob.on}
    before = start_loads
    for step in steps:
        for m in step:
            assignment[m.move.circuit] = m.move.to_mpdu
        loads = _topology_loads(prob, assignment, per_time)
        cap = _caps(limit, before)
        before = loads
        bad = loads > cap
        step_amps = sum(m.move.amps for m in step)
        if bad.any() or (len(step) > 1 and step_amps > max_step_amps + TOLERANCE_A):
            e, t = (int(v) for v in np.argwhere(bad)[0]) if bad.any() else (0, 0)
            return Infeasible(
                prob.goal,
                prob.elements[int(e)],
                float(loads[e, t] - cap[e, t]),
                float(prob.times[int(t)]),
                "internal verification of the staged plan failed; no plan is offered",
            )
        plan_steps.append(
            PlanStep(tuple(m.move for m in step), step_amps, prob.peak_utilization(loads))
        )
    final_loads = prob.loads(final)
    notes = list(prob.notes)
    if plan_steps:
        notes.append(
            f"{len(moves)} circuit(s) moved in {len(plan_steps)} step(s) of at most "
            f"{max_step_amps:g} A; every intermediate state verified at all "
            f"{prob.times.size} grid time(s)"
        )
    else:
        notes.append("no move needed")
    return Plan(
        goal=prob.goal,
        steps=tuple(plan_steps),
        final_assignment=dict(final),
        peak_utilization=prob.peak_utilization(final_loads),
        solver=solver,
        notes=tuple(notes),
    )


def _topology_loads(
    prob: _Problem, assignment: Mapping[str, str | None], profiles: Mapping[str, FloatArray]
) -> FloatArray:
    """Element loads at every grid time, computed by the topology's own arithmetic
    (:meth:`Topology.element_load_profiles`: all grid times at once)."""
    loads = prob.topology.element_load_profiles(assignment, profiles, prob.times.size)
    return np.stack([loads[e] for e in prob.elements])


def _caps(limit: FloatArray, loads: FloatArray) -> FloatArray:
    """What each element may carry after the next move or step, given its ``loads`` before
    it: its limit, or, above that, its present load (no new load until back within it)."""
    return np.maximum(limit, loads)


def _order_moves(
    prob: _Problem, moves: list[_StagedMove], start_loads: FloatArray, limit: FloatArray
) -> list[int] | _Deadlock:
    """A sequence of the moves in which no move adds load to an element beyond ``limit``, or
    to one that is above it (the cap of each move is ``max(limit, load before it)``).

    Depth-first search with memo of dead ends (the state depends only on the set of moves done).
    At each state it tries the safe moves, first those that free an element some blocked move
    needs, then those that leave the most headroom. Hand-written: this is a small
    scheduling search with a problem-specific safety test, not a library algorithm.
    """
    n = len(moves)
    if n == 0:
        return []
    n_e = len(prob.elements)
    prof = np.stack([m.profile for m in moves])
    by_elem = [
        np.array([i for i, m in enumerate(moves) if e in m.adds], dtype=np.intp) for e in range(n_e)
    ]
    state = start_loads.copy()
    done: list[int] = []
    remaining = np.ones(n, dtype=bool)
    dead: set[bytes] = set()
    deepest: tuple[list[int], FloatArray] = ([], state.copy())

    def margins() -> FloatArray:
        head = _caps(limit, state) - state
        out = np.full(n, np.inf)
        for e in range(n_e):
            idx = by_elem[e]
            if idx.size:
                out[idx] = np.minimum(out[idx], (head[e][None, :] - prof[idx]).min(axis=1))
        return out

    def candidates() -> list[int]:
        mg = margins()
        rem = np.flatnonzero(remaining)
        safe = [int(i) for i in rem if mg[i] >= 0]
        needed = {e for i in rem if mg[i] < 0 for e in moves[int(i)].adds}
        return sorted(safe, key=lambda i: (not (set(moves[i].frees) & needed), -mg[i], i))

    def apply(i: int, sign: float) -> None:
        for e in moves[i].adds:
            state[e] += sign * moves[i].profile
        for e in moves[i].frees:
            state[e] -= sign * moves[i].profile

    stack: list[list[int]] = [candidates()]
    budget = _ORDER_NODE_BUDGET
    while stack:
        if not remaining.any():
            return done
        top = stack[-1]
        if not top:
            dead.add(remaining.tobytes())
            stack.pop()
            if done:
                i = done.pop()
                apply(i, -1.0)
                remaining[i] = True
            continue
        i = top.pop(0)
        apply(i, 1.0)
        remaining[i] = False
        done.append(i)
        if len(done) > len(deepest[0]):
            deepest = (list(done), state.copy())
        budget -= 1
        if remaining.tobytes() in dead or budget <= 0:
            apply(i, -1.0)
            remaining[i] = True
            done.pop()
            if budget <= 0:
                break
            continue
        stack.append(candidates())
    # no safe order: report the closest call from the deepest state reached
    order, reached = deepest
    best: tuple[float, int, int, int] | None = None
    for i in range(n):
        if i in order:
            continue
        for e in moves[i].adds:
            over = reached[e] + moves[i].profile - (_caps(limit[e], reached[e]) - TOLERANCE_A)
            t = int(np.argmax(over))
            key = (float(over[t]), i, e, t)
            if float(over[t]) > 0 and (best is None or key < best):
                best = key
    blocked = {moves[i].move.circuit: moves[i].move.to_mpdu for i in range(n) if i not in order}
    if best is None:  # pragma: no cover - the search only fails when some move is blocked
        return _Deadlock(
            Infeasible(prob.goal, "", 0.0, None, "no safe order of the moves was found"), blocked
        )
    excess, i, e, t = best
    m = moves[i].move
    return _Deadlock(
        Infeasible(
            goal=prob.goal,
            element=prob.elements[e],
            excess_a=excess,
            at_s=float(prob.times[t]),
            reason=(
                f"no safe order: the target assignment is within limits, but every order of its "
                f"{n} moves passes through an unsafe state (at best, moving {m.circuit} from "
                f"{m.from_mpdu} to {m.to_mpdu} after {len(order)} other move(s) would put "
                f"{prob.elements[e]} {excess:.1f} A over its cap at {_fmt_time(float(prob.times[t]))})"
            ),
        ),
        blocked,
    )
