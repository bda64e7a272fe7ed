"""When no plan is safe: the question put to a person, each answer in numbers.

The drain rule (``rules.py``) asks when no complete drain of a unit predicted to fail keeps
every receiver within its continuous limit through the drain's deadline. Neither silently
leaving the load nor silently overloading a receiver is the engine's to choose; a person gets
the trade-off (:class:`DecisionNeeded`):

* ``drain_now``: the complete drain on the lowest raised limits that have a plan (balanced);
  which element then runs how far above its limit, for how long, at the P90;
* ``keep_load``: the circuits and amps interrupted if the unit fails before the estimate's P10;
* ``partial_drain``: what fits within every limit (the plan the engine itself runs), and what
  stays;
* ``shed:<circuit>``: a non-critical circuit (the plant model's ``critical`` flag) switched off,
  after which the complete drain fits within every limit. Offered only when one such circuit
  makes the drain fit.

The no-answer rule (automatic mode, ``PolicyConfig.decision_timeout_s``) takes the partial
drain when there is one, else keeps the load: never ``drain_now`` or a shed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from .decisions import DecisionChoice, DecisionNeeded, Excursion
from .element_forecast import ElementForecasts
from .plan import Infeasible, Plan
from .plan_retries import RELAX_STEPS, PlanRequest, relaxed
from .policy_config import PolicyConfig
from .topology import Topology

__all__ = ["Question", "ask"]

SHED_TRIED: Final = 3
"""Non-critical circuits (the largest first) tried as the one to shed: a bounded search."""

type Planner = Callable[[Topology, Mapping[str, str | None], PlanRequest], Plan | Infeasible]
"""A planner call on a topology (a relaxed one for drain_now) and an assignment."""


@dataclass(frozen=True, slots=True)
class Question:
    """What the drain rule knows when it asks."""

    element: str
    now_s: float
    deadline_s: float
    end_s: float
    """Until when the receivers must carry the drained load (the drain's window)."""
    reason: str
    failure_s: float | None
    failure_low_s: float | None


def _circuits(n: int) -> str:
    return f"{n} circuit" if n == 1 else f"{n} circuits"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def excursions(
    topology: Topology,
    forecasts: ElementForecasts,
    assignment: Mapping[str, str | None],
    until_s: float,
) -> tuple[Excursion, ...]:
    """Every element whose P90 load under ``assignment`` exceeds its continuous limit before
    ``until_s``: its peak and the time above the limit."""
    times = forecasts.times
    if not len(times):
        return ()
    inside = times <= until_s
    out: list[Excursion] = []
    for e, fc in sorted(forecasts.element_forecasts(assignment).items()):
        limit = topology.limit_a(e)
        p90 = fc.p90[inside[: len(fc.p90)]]
        above = p90 > limit
        if np.any(above):
            step = forecasts.config.resample_s
            out.append(Excursion(e, limit, float(np.max(p90)), float(np.sum(above)) * step))
    return tuple(out)


def ask(
    topology: Topology,
    forecasts: ElementForecasts,
    config: PolicyConfig,
    planner: Planner,
    q: Question,
    *,
    assignment: Mapping[str, str | None],
    circuit_a: Mapping[str, float],
    drain: PlanRequest,
    partial: Plan | None,
    raised_s: Callable[[str], float],
) -> DecisionNeeded:
    """The decision with every choice that exists; ``drain`` is the complete drain's request
    (infeasible within the limits), ``partial`` what fits; ``raised_s(id)`` when a decision
    with that id was first raised."""
    e = q.element
    choices: list[DecisionChoice] = []
    now_left = [c for c in topology.circuits_through(e, assignment) if circuit_a.get(c)]
    now_left_a = sum(circuit_a.get(c, 0.0) for c in now_left)

    forced = _drain_now(topology, forecasts, planner, q, assignment, circuit_a, drain)
    if forced is not None:
        choices.append(forced)
    critical = sum(1 for c in now_left if topology.circuits[c].critical)
    until = (
        "the estimate's early end (P10) passes"
        if q.failure_low_s is None
        else f"{_hours(q.failure_low_s - q.now_s)} from now (the estimate's P10)"
    )
    choices.append(
        DecisionChoice(
            key="keep_load",
            plan=None,
            summary=(
                f"Keep the load: nothing moves; {_circuits(len(now_left))} ({critical} critical), "
                f"{now_left_a:.1f} A, are interrupted if {e} fails before {until}."
            ),
            left=tuple(now_left),
            left_a=now_left_a,
            left_critical=critical,
            at_risk_until_s=q.failure_low_s,
        )
    )
    if partial is not None and partial.moves:
        left = [c for c in topology.circuits_through(e, partial.final_assignment) if c in now_left]
        moved = sorted(partial.circuits)
        moved_a = sum(circuit_a.get(c, 0.0) for c in moved)
        left_a = sum(circuit_a.get(c, 0.0) for c in left)
        choices.append(
            DecisionChoice(
                key="partial_drain",
                plan=partial,
                summary=(
                    f"Partial drain: {_circuits(len(moved))} ({moved_a:.1f} A) move within "
                    f"every limit; {len(left)} ({left_a:.1f} A) left on {e}, interrupted if "
                    "it fails."
                ),
                moved=tuple(moved),
                moved_a=moved_a,
                left=tuple(left),
                left_a=left_a,
                left_critical=sum(1 for c in left if topology.circuits[c].critical),
                at_risk_until_s=q.failure_low_s,
            )
        )
    shed = _shed(topology, planner, q, assignment, circuit_a, drain)
    if shed is not None:
        choices.append(shed)
    fallback = "partial_drain" if any(c.key == "partial_drain" for c in choices) else "keep_load"
    rec = DecisionNeeded(
        element=e,
        raised_s=q.now_s,
        deadline_s=q.deadline_s,
        choices=tuple(choices),
        at_stake=tuple(sorted(now_left)),
        reason=q.reason,
        failure_s=q.failure_s,
        failure_low_s=q.failure_low_s,
        fallback=fallback,
    )
    first = raised_s(rec.id)
    return replace(
        rec,
        raised_s=first,
        answer_by_s=first + config.decision_timeout_s if config.mode == "automatic" else None,
    )


def _drain_now(
    topology: Topology,
    forecasts: ElementForecasts,
    planner: Planner,
    q: Question,
    assignment: Mapping[str, str | None],
    circuit_a: Mapping[str, float],
    drain: PlanRequest,
) -> DecisionChoice | None:
    """The complete drain on the smallest raise of every other element's rating that has a
    plan (balanced: lowest worst utilisation), with its excursions at the P90."""
    e = q.element
    others = [x for x in topology.elements if x != e and x not in topology.mpdus_of(e)]
    # The whole window only (the excursions are reported over it): a bounded number of
    # planner calls, one per raise of the limits.
    req = replace(
        drain, goal=f"drain {e} (over the limits)", balance=True, horizons=drain.horizons[:1]
    )
    for frac in RELAX_STEPS:
        res = planner(relaxed(topology, others, frac), assignment, req)
        if isinstance(res, Plan) and res.moves:
            break
    else:
        return None
    over = excursions(topology, forecasts, res.final_assignment, q.end_s)
    before = {x.element: x for x in excursions(topology, forecasts, assignment, q.end_s)}
    worse = tuple(x for x in over if x.element not in before or x.over_s > before[x.element].over_s)
    # The interlock and the stage verification still refuse a move that puts an element above
    # its limit on the load measured now: the choice accepts the forecast excursion, not that.
    before_now = topology.overloads(assignment, circuit_a)
    now_over = {
        x: a
        for x, a in topology.overloads(res.final_assignment, circuit_a).items()
        if a > before_now.get(x, 0.0)
    }
    refused = "; ".join(
        f"now it would put {x} {a:.1f} A above its limit, which the interlock refuses until "
        "the load allows"
        for x, a in sorted(now_over.items())
    )
    words = "; ".join(
        f"{x.element} up to {x.over_a:.1f} A ({x.over_pct:.0f} %) above its {x.limit_a:.1f} A "
        f"limit for {_hours(x.over_s)}"
        for x in worse
    )
    return DecisionChoice(
        key="drain_now",
        plan=res,
        summary=(
            f"Drain now: all {len(res.circuits)} circuits move off {e}; at the P90 "
            + (words or "no element exceeds its limit, but none keeps the plan margin")
            + (f" ({refused})" if refused else "")
            + "."
        ),
        within_limits=False,
        excursions=worse,
        over_now=tuple(sorted(now_over.items())),
        moved=tuple(sorted(res.circuits)),
        moved_a=sum(circuit_a.get(c, 0.0) for c in res.circuits),
    )


def _shed(
    topology: Topology,
    planner: Planner,
    q: Question,
    assignment: Mapping[str, str | None],
    circuit_a: Mapping[str, float],
    drain: PlanRequest,
) -> DecisionChoice | None:
    """A non-critical circuit whose switching off lets the complete drain fit within every
    limit (the largest of the first few that do), or None."""
    e = q.element
    candidates = sorted(
        (
            c
            for c, node in topology.circuits.items()
            if not node.critical and assignment.get(c) is not None and circuit_a.get(c, 0.0) > 0
        ),
        key=lambda c: -circuit_a.get(c, 0.0),
    )[:SHED_TRIED]
    for c in candidates:
        lineup = {**assignment, c: None}
        res = planner(topology, lineup, replace(drain, goal=f"drain {e} ({c} shed)"))
        if isinstance(res, Plan):
            amps = circuit_a.get(c, 0.0)
            return DecisionChoice(
                key=f"shed:{c}",
                plan=res,
                summary=(
                    f"Shed {c} (non-critical, {amps:.1f} A): it is switched off, then all "
                    f"{len(topology.circuits_through(e, lineup))} circuits on {e} move within "
                    "every limit."
                ),
                moved=tuple(sorted(res.circuits)),
                moved_a=sum(circuit_a.get(m, 0.0) for m in res.circuits),
                shed=c,
                shed_a=amps,
            )
    return None
