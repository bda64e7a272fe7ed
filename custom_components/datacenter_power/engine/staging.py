"""Staging a plan: the moves from the start to the final assignment, ordered and grouped into
steps whose every subset is safe at every grid time, each step boundary verified again with
the topology's own load arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .plan import Infeasible, Move, Plan, PlanStep
from .plan_problem import TOLERANCE_A, FloatArray, Problem, fmt_time

_ORDER_NODE_BUDGET = 20_000
"""Search nodes the staging search may expand before it gives up ("no safe order")."""


@dataclass(frozen=True, slots=True)
class _StagedMove:
    move: Move
    profile: FloatArray
    adds: tuple[int, ...]
    frees: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Deadlock:
    """No safe order: why (for the caller) and the moves that stayed blocked."""

    infeasible: Infeasible
    blocked: dict[str, str]


def staged_plan(
    prob: Problem, final: Mapping[str, str | None], max_step_amps: float, solver: str
) -> Plan | Infeasible | Deadlock:
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
    if isinstance(order, Deadlock):
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
    prob: Problem, assignment: Mapping[str, str | None], profiles: Mapping[str, FloatArray]
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
    prob: Problem, moves: list[_StagedMove], start_loads: FloatArray, limit: FloatArray
) -> list[int] | Deadlock:
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
        return Deadlock(
            Infeasible(prob.goal, "", 0.0, None, "no safe order of the moves was found"), blocked
        )
    excess, i, e, t = best
    m = moves[i].move
    return Deadlock(
        Infeasible(
            goal=prob.goal,
            element=prob.elements[e],
            excess_a=excess,
            at_s=float(prob.times[t]),
            reason=(
                f"no safe order: the target assignment is within limits, but every order of its "
                f"{n} moves passes through an unsafe state (at best, moving {m.circuit} from "
                f"{m.from_mpdu} to {m.to_mpdu} after {len(order)} other move(s) would put "
                f"{prob.elements[e]} {excess:.1f} A over its cap at {fmt_time(float(prob.times[t]))})"
            ),
        ),
        blocked,
    )
