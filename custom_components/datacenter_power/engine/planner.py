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

This module states the problem for each goal (``plan_migration``, ``restore_plan``) and retries
another target when one has no safe order; the parts live beside it: ``plan.py`` (the results),
``plan_problem.py`` (the problem indexed for numpy), ``milp.py`` (the final assignment: MILP,
greedy stand-in, infeasibility) and ``staging.py`` (safe steps).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping

import numpy as np

from .milp import greedy_assignment, solve_assignment
from .plan import Infeasible, Plan
from .plan_problem import TOLERANCE_A, FloatArray, Problem, prepare_problem
from .staging import Deadlock, staged_plan
from .topology import Topology


def _available(topology: Topology, path: str, blocked: Collection[str]) -> bool:
    return not any(e in blocked for e in topology.upstream(path))


def _tie_break(prob: Problem, circuit: str) -> float:
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
    may_return: Collection[str] = (),
    leave: Collection[str] = (),
) -> Plan | Infeasible:
    """Plan staged moves that leave every element within its limit at every grid time.

    ``drain`` empties an ATS or MPDU (see the module docstring for non-critical circuits);
    without it the plan only relieves forecast overloads (and moves circuits off unavailable
    elements where it can). ``no_receive``: elements that take no new load (hysteresis after a
    relief) but whose circuits need not leave. ``balance``: among the plans within limits,
    the one with the lowest worst utilisation (extra moves allowed), not the fewest moves.
    ``may_return``: unavailable elements (alerting but still working) that may take back the
    circuits whose *normal* path runs through them, and no other load. ``leave``: circuits
    that should leave where they are (strongly preferred, not required, as off an unavailable
    element).
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
    prob = prepare_problem(topology, assignment, load_a, times_s, unavailable, goal)
    prob.balance = balance
    blocked = set(unavailable) | ({drain} if drain is not None else set())
    hold = set(no_receive)
    unavailable_set = set(unavailable)
    leave_set = set(leave)
    stay_penalty = 2.0 * (len(prob.on) + 1)
    stuck_critical: list[str] = []
    for c in prob.on:
        cur = prob.start[c]
        assert cur is not None
        node = topology.circuits[c]
        # A no-receive element takes no *new* load: a move that stays behind it (another
        # MPDU of the same ATS) adds nothing to it.
        held = hold - set(topology.upstream(cur))
        home = set(topology.upstream(node.normal_path)) & blocked
        alts = tuple(
            p
            for p in node.paths
            if p != cur
            and (
                _available(topology, p, blocked)
                or (p == node.normal_path and home and home <= set(may_return))
            )
            and _available(topology, p, held)
        )
        must_leave = drain is not None and topology.depends_on(cur, drain)
        should_leave = not _available(topology, cur, unavailable_set) or c in leave_set
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
    prob = prepare_problem(topology, assignment, load_a, times_s, unavailable, goal)
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


# -- staging the final assignment, retrying other targets --------------------------------------


_ORDER_RETRIES = 3
"""MILP re-solves (each excluding the previous target) when a target has no safe order."""


def _solve_and_stage(
    prob: Problem,
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
            result = solve_assignment(prob, remaining, forbidden)
        else:
            greedy = greedy_assignment(prob)
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
        staged = staged_plan(prob, final, max_step_amps, solver)
        if not isinstance(staged, Deadlock):
            return staged
        first_failure = first_failure or staged.infeasible
        forbidden.append(staged.blocked)
    assert first_failure is not None
    return first_failure
