"""Planning with retries: the planner asked over shorter horizons, then with relaxed limits.

A far forecast may be infeasible where the next hours are not, so the policy asks the planner
for the whole horizon first and then for shorter ones. An urgent relief that finds no plan within
the plan margin shares that margin evenly: every element's rating is raised by the same fraction
of the margin, the smallest that has a plan (min-max utilisation relative to each limit), so no
element ends above its true limit on the measured load and none keeps the whole excess. Only
when even that fails does it accept an excess on the elements already over their limit: first
a quarter, a half, three quarters of their present excess (the rest must move), then wider
relaxations (every other element keeps its true limit on the measured load). Moves off elements
that merely stopped answering are dropped (they are not failing). A planner fault is reported, never raised.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from .plan import Infeasible, Plan
from .planner import plan_migration
from .topology import Topology

__all__ = ["PlanRequest", "drop_moves_off", "plan_with_retries", "relaxed", "relaxed_each"]

type FloatArray = npt.NDArray[np.float64]
type LoadsFn = Callable[[float | None], tuple[dict[str, FloatArray], FloatArray]]
"""Per-circuit load profiles and their time grid, up to a horizon (None: all of it)."""

EXCESS_KEPT = (0.25, 0.5, 0.75)
"""Shares of its present excess an element already over its limit may keep, in turn, when no
plan brings it under its limit (the rest must move: a relaxation wider than the excess would
accept doing nothing)."""
RELAX_STEPS = (0.05, 0.1, 0.2, 0.4, 1.0)
"""Fractions by which the ratings of already-overloaded elements are raised, in turn."""
PART_RELIEVED = "best effort: part of the excess relieved"
"""Note of a best-effort plan that keeps only a share of the excess (see ``EXCESS_KEPT``)."""
SHARE_STEPS = (0.25, 0.5, 0.75, 1.0)
"""Shares of the plan margin by which every element's rating is raised, in turn, when a
best-effort relief finds no plan within the whole margin (the smallest share that has a plan
balances what is left of the margin over all elements)."""
MARGIN_SHARED = "margin shared"
"""Note prefix of a plan that fits only with part of the plan margin (every element within its
true limit on the measured load)."""


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """One planning question."""

    now_s: float
    drain: str | None
    unavailable: Collection[str]
    goal: str
    max_step_amps: float
    horizons: Sequence[float | None]
    best_effort: bool = False
    over_now: Sequence[str] = ()
    """Elements above their limit now (best effort relaxes only these)."""
    no_receive: Collection[str] = ()
    """Elements that take no new load (hysteresis) though their circuits may stay."""
    balance: bool = False
    """The plan with the lowest worst utilisation, not the fewest moves (see the planner)."""
    may_return: Collection[str] = ()
    """Unavailable elements that may take back circuits whose normal path they are on."""
    leave: Collection[str] = ()
    """Circuits that should leave where they are (strongly preferred, not required)."""
    margin: float = 0.0
    """The plan margin already in the loads (a fraction): a best-effort relief may share it
    out before it lets an overloaded element keep an excess."""


def plan_with_retries(
    topology: Topology,
    assignment: Mapping[str, str | None],
    loads: LoadsFn,
    req: PlanRequest,
    *,
    silent: Collection[str],
    time_limit_s: float,
    errors: list[str],
) -> Plan | Infeasible:
    """Try the full horizon first, then shorter ones; relax overloaded ratings if best effort.

    ``best_effort`` (urgent relief): when even "now" has no plan that brings every element
    under its limit with the whole plan margin, first share the margin (every element's rating
    raised by the same, smallest workable share of ``req.margin``: the worst utilisation
    relative to its limit is minimised, and every element stays within its true limit on the
    measured load); failing that, accept the smallest share of their present excess
    (``EXCESS_KEPT``), then the smallest relaxation (``RELAX_STEPS``), that is achievable on
    the elements that are over their limit already, and keep every other element within its
    true limit on the measured load (the margin is not asked of them there: an element between
    its limit less the margin and its limit must not block the relief of one over its limit);
    relieving most of an overload beats leaving all of it.
    """
    result: Plan | Infeasible | None = None
    attempts: list[tuple[float | None, Topology, str]] = [(u, topology, "") for u in req.horizons]
    if req.best_effort and req.over_now:
        if req.margin > 0:
            elements = topology.elements
            attempts += [
                (
                    req.now_s,
                    relaxed(topology, elements, (1 + req.margin) ** share - 1),
                    f"{MARGIN_SHARED}: no plan keeps the whole {req.margin:.0%} plan margin; "
                    f"{share:.0%} of it shared by every element, each within its limit on "
                    "the measured load",
                )
                for share in SHARE_STEPS
            ]
        # The loads carry the plan margin: every element's rating is raised by it too, so an
        # element that is within its true limit on the measured load (but not within the
        # margin) does not make a partial relief of the overloaded ones infeasible.
        base = relaxed(topology, topology.elements, req.margin) if req.margin > 0 else topology
        # First the smallest share of each overloaded element's present excess (on the planned
        # loads now) it may keep: the fixed steps below may exceed the whole excess, and then
        # "no move needed" passes for a best effort while the element stays over its limit.
        profile_now, _ = loads(req.now_s)
        now_a = {c: float(v[0]) for c, v in profile_now.items() if len(v)}
        over_a = base.element_loads(assignment, now_a)
        excess = {e: over_a.get(e, 0.0) - base.limit_a(e) for e in req.over_now}
        if any(x > 0 for x in excess.values()):
            attempts += [
                (
                    req.now_s,
                    relaxed_each(
                        base, {e: kept * max(x, 0.0) / base.limit_a(e) for e, x in excess.items()}
                    ),
                    PART_RELIEVED,
                )
                for kept in EXCESS_KEPT
            ]
        attempts += [
            (req.now_s, relaxed(base, req.over_now, f), "best effort: limit not reachable")
            for f in RELAX_STEPS
        ]
    for until, plan_topo, note in attempts:
        # A relaxed rating lets an element over its limit stay there, never take more load.
        no_receive = {*req.no_receive, *(req.over_now if plan_topo is not topology else ())}
        profile, grid = loads(until)
        if note:
            # The relaxed attempts judge the load now (the grid's first point) only: the
            # forecasts are refreshed less often than plans are made, and a grid point at or
            # before now is a stale P90 that could block the relief of a measured overload.
            profile, grid = {c: v[:1] for c, v in profile.items()}, grid[:1]
        try:
            result = plan_migration(
                plan_topo,
                assignment,
                profile,
                grid,
                drain=req.drain,
                unavailable=sorted(req.unavailable),
                max_step_amps=req.max_step_amps,
                goal=req.goal,
                time_limit_s=time_limit_s,
                no_receive=sorted(no_receive),
                balance=req.balance,
                may_return=sorted(req.may_return),
                leave=sorted(req.leave),
            )
        except (ValueError, ArithmeticError, RuntimeError) as err:
            # A planner fault must not take the monitoring down with it: report, move nothing.
            errors.append(f"planner failed ({req.goal}): {type(err).__name__}: {err}")
            return Infeasible(req.goal, req.drain or "", 0.0, None, f"planner error: {err}")
        if isinstance(result, Plan):
            plan = drop_moves_off(result, set(silent), req.drain)
            if note:
                plan = replace(plan, notes=(*plan.notes, note))
            return plan
    assert result is not None
    return result


def relaxed(topology: Topology, elements: Collection[str], frac: float) -> Topology:
    """The topology with the ratings of ``elements`` (already over their limit) raised by
    ``frac``: every other element keeps its true limit."""
    return relaxed_each(topology, dict.fromkeys(elements, frac))


def relaxed_each(topology: Topology, fracs: Mapping[str, float]) -> Topology:
    """The topology with the rating of each element of ``fracs`` raised by its fraction."""
    ats = {
        k: replace(v, rating_a=v.rating_a * (1 + fracs[k])) if k in fracs else v
        for k, v in topology.ats.items()
    }
    mpdus = {
        k: replace(v, rating_a=v.rating_a * (1 + fracs[k])) if k in fracs else v
        for k, v in topology.mpdus.items()
    }
    return Topology.build(ats.values(), mpdus.values(), topology.circuits.values())


def drop_moves_off(plan: Plan, sources: set[str], drain: str | None) -> Plan:
    """Remove moves away from ``sources``: the planner moves circuits off every unavailable
    element, but one that merely stopped answering is not failing. Dropping a move off an
    element leaves it and everything else at or below the load the plan assumed."""
    sources = {m for m in sources if m != drain}
    if not sources or not any(mv.from_mpdu in sources for mv in plan.moves):
        return plan
    steps = []
    for step in plan.steps:
        moves = tuple(mv for mv in step.moves if mv.from_mpdu not in sources)
        if moves:
            steps.append(replace(step, moves=moves, amps=float(sum(m.amps for m in moves))))
    final = dict(plan.final_assignment)
    for mv in plan.moves:
        if mv.from_mpdu in sources:
            final[mv.circuit] = mv.from_mpdu
    return replace(
        plan,
        steps=tuple(steps),
        final_assignment=final,
        notes=(*plan.notes, "moves off unreachable (not failed) elements dropped"),
    )
