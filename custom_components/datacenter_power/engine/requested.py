"""Plans for the migrations a person (or an automation) requests, on the engine's own basis.

The engine plans its own drains against every circuit's forecast over the time the moved load
will sit on its receivers; a requested drain or restore is planned the same way: on the
:class:`LoadProfiles` the policy published at its last tick (effective P90 per circuit, the
policy's margin), the whole forecast horizon first and then at least ``min_horizon_s`` ahead, by
the engine's own ``plan_with_retries``. Before any forecast exists it plans on present currents
plus :data:`NO_FORECAST_MARGIN`.

Load the planner cannot see (circuits that do not answer, so their path and current are
unknown) is still measured by the elements that carry it. The part of an element's own meter
that the answering circuits do not explain is reserved on that element (its rating lowered by
as much), so a drain never fills a receiver with load it overlooked.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from .element_forecast import LoadProfiles
from .plan import Infeasible, Plan
from .plan_retries import PlanRequest, plan_with_retries
from .planner import restore_plan
from .topology import CONTINUOUS_FRACTION, Topology

__all__ = ["NO_FORECAST_MARGIN", "UNSEEN_MIN_A", "plan_request", "reserve", "unseen_load"]

type FloatArray = npt.NDArray[np.float64]

NO_FORECAST_MARGIN = 0.10
"""Without a forecast, plan against present currents plus this fraction."""
UNSEEN_MIN_A = 0.1
"""An element's meter may differ from the sum of its circuits by this much (noise, timing)."""
_MIN_RATING_A = 1e-3


def unseen_load(
    topology: Topology,
    assignment: Mapping[str, str | None],
    circuit_a: Mapping[str, float],
    element_a: Mapping[str, float],
) -> dict[str, float]:
    """Amps each element's own meter (``element_a``) carries beyond the circuits known on it."""
    known = topology.element_loads(assignment, circuit_a)
    out: dict[str, float] = {}
    for e, measured in element_a.items():
        extra = measured - known.get(e, measured)
        if e in known and np.isfinite(extra) and extra > UNSEEN_MIN_A:
            out[e] = float(extra)
    return out


def reserve(topology: Topology, amps: Mapping[str, float]) -> Topology:
    """The topology with ``amps`` reserved on elements: each one's continuous limit lowered by
    that much (its rating by ``amps / CONTINUOUS_FRACTION``)."""
    if not amps:
        return topology

    def lowered(e: str, rating: float) -> float:
        return max(_MIN_RATING_A, rating - amps.get(e, 0.0) / CONTINUOUS_FRACTION)

    ats = [replace(v, rating_a=lowered(k, v.rating_a)) for k, v in topology.ats.items()]
    mpdus = [replace(v, rating_a=lowered(k, v.rating_a)) for k, v in topology.mpdus.items()]
    return Topology.build(ats, mpdus, topology.circuits.values())


def plan_request(
    topology: Topology,
    assignment: Mapping[str, str | None],
    circuit_a: Mapping[str, float],
    element_a: Mapping[str, float],
    now_s: float,
    *,
    profiles: LoadProfiles | None,
    drain: str | None,
    unavailable: Collection[str] = (),
    max_step_amps: float,
    restore: bool = False,
) -> Plan | Infeasible:
    """Plan a requested drain of ``drain`` (or, with ``restore``, the way back to normal paths).

    ``circuit_a``: answering circuits' currents; ``element_a``: the ATS/MPDU meters that answer.
    """
    usable = profiles is not None and len(profiles.times) > 0 and profiles.times[-1] > now_s
    margin = profiles.margin if profiles is not None and usable else NO_FORECAST_MARGIN
    unseen = unseen_load(topology, assignment, circuit_a, element_a)
    # Nothing forecasts the unseen part's growth: it is held at its reading plus the margin
    # used without a forecast (or the policy's, if larger).
    held = {e: a * (1.0 + max(margin, NO_FORECAST_MARGIN)) for e, a in unseen.items()}
    planned = reserve(topology, held)

    def loads(until: float | None) -> tuple[dict[str, FloatArray], FloatArray]:
        if profiles is not None and usable:
            return profiles.loads(
                topology.circuits, now_s, circuit_a, until_s=until, margin=profiles.margin
            )
        return {c: np.array([a * (1.0 + margin)]) for c, a in circuit_a.items()}, np.array([now_s])

    horizons: tuple[float | None, ...] = (None,)
    if profiles is not None and usable and profiles.min_horizon_s > 0:
        horizons = (None, now_s + profiles.min_horizon_s)
    if restore:
        profile, grid = loads(None)
        result = restore_plan(
            planned,
            assignment,
            profile,
            grid,
            unavailable=sorted(unavailable),
            max_step_amps=max_step_amps,
        )
    else:
        if drain is None:
            raise ValueError("a requested migration drains an ATS or MPDU")
        result = plan_with_retries(
            planned,
            assignment,
            loads,
            PlanRequest(
                now_s,
                drain=drain,
                unavailable=sorted(unavailable),
                goal=f"drain {drain}",
                max_step_amps=max_step_amps,
                horizons=horizons,
            ),
            silent=(),
            time_limit_s=2.0,
            errors=[],
        )
    if isinstance(result, Plan):
        result = _on_true_ratings(result, topology, planned, held)
    return result


def _on_true_ratings(
    plan: Plan, topology: Topology, planned: Topology, held: Mapping[str, float]
) -> Plan:
    """The plan's utilisations against the true ratings (reserved load included), and a note
    saying what was reserved."""
    if not held:
        return plan

    def true(util: Mapping[str, float]) -> dict[str, float]:
        return {
            e: (u * planned.rating_a(e) + held.get(e, 0.0)) / topology.rating_a(e)
            for e, u in util.items()
        }

    steps = tuple(replace(s, peak_utilization=true(s.peak_utilization)) for s in plan.steps)
    note = "load of circuits that do not answer, counted from the elements' own meters: " + (
        ", ".join(f"{e} {a:.1f} A" for e, a in sorted(held.items()))
    )
    return replace(
        plan,
        steps=steps,
        peak_utilization=true(plan.peak_utilization),
        notes=(*plan.notes, note),
    )
