"""Choosing a plan's final assignment: the HiGHS MILP (``scipy.optimize.milp``), its greedy
stand-in, and the explanation of an infeasible problem (the least excess any plan reaches).

See ``planner.py`` for the objective and the decisions behind it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from .plan import Infeasible
from .plan_problem import TOLERANCE_A, FloatArray, IntArray, Problem, fmt_time

MAX_MILP_NONZEROS = 3_000_000
"""Above this many constraint coefficients the MILP is not attempted (greedy instead)."""
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


def _cost_of(prob: Problem, assignment: Mapping[str, str | None]) -> tuple[float, float]:
    """(primary objective, tie-break) of an assignment."""
    pairs = [(c, p) for c, p in assignment.items() if p is not None]
    return (
        sum(prob.cost.get(cp, 0.0) for cp in pairs),
        sum(prob.tie.get(cp, 0.0) for cp in pairs),
    )


def solve_assignment(
    prob: Problem, time_limit_s: float, forbidden: Sequence[Mapping[str, str]] = ()
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
        and not prob.balance  # a balanced plan may move more for a lower worst utilisation
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
    greedy = greedy_assignment(prob)
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
            f"its {prob.limit[prob.index[element]]:.1f} A limit at {fmt_time(at)} "
            "(a heuristic estimate; an exact solver might do better)"
        ),
    )


def _infeasible(
    prob: Problem, keep_t: IntArray, time_limit_s: float, *, proven: bool
) -> Infeasible:
    """Explain an infeasible problem with the smallest excess any plan could reach.

    ``proven``: HiGHS proved that no plan is within limits; otherwise it only found none in time.
    """
    out = _milp_lazy(prob, keep_t, mode="relaxed", time_limit_s=time_limit_s)
    best = out.assignment if out.assignment is not None else greedy_assignment(prob)
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
        f"{prob.limit[prob.index[element]]:.1f} A limit at {fmt_time(at)}{exact}"
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
    prob: Problem,
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
    prob: Problem, columns: Sequence[tuple[str, str]], keep_t: IntArray, blocks: Sequence[int]
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
    prob: Problem, columns: Sequence[tuple[str, str]]
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
    prob: Problem,
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


def greedy_assignment(prob: Problem) -> dict[str, str | None]:
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
