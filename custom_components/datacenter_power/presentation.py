"""What people read: plans, utilisation, time to failure and recommendations, in words.

Repairs, logbook entries, proposals (mobile notifications) and action responses all describe the
same engine objects; this module words them once, so that a plan reads the same in a repair, a
notification and the ``plan_migration`` response. Utilisation is always a percentage of the
continuous limit (80 % of rating), as on the entities: 100 % = at the limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from .engine.degradation import HealthAssessment
from .engine.plan import Infeasible, Plan
from .engine.topology import CONTINUOUS_FRACTION, Topology

CRITICAL_TTF_S: Final = 24 * 3600.0
"""A predicted failure closer than this is a critical repair."""


def limit_pct(fraction_of_rating: float) -> float:
    """A fraction of rating as a percentage of the continuous limit (one decimal)."""
    return round(100.0 * fraction_of_rating / CONTINUOUS_FRACTION, 1)


def receivers(plan: Plan, topology: Topology) -> list[str]:
    """Elements that take load in the plan: the MPDUs moved to and their ATSs, in plant order."""
    out: list[str] = []
    for move in plan.moves:
        for element in topology.upstream(move.to_mpdu):
            if element not in out and element in plan.peak_utilization:
                out.append(element)
    return out


def receiver_utilisation(plan: Plan, topology: Topology) -> dict[str, float]:
    """Receiver -> forecast peak after the plan, in % of its continuous limit."""
    return {e: limit_pct(plan.peak_utilization[e]) for e in receivers(plan, topology)}


def plan_text(plan: Plan, topology: Topology) -> str:
    """Markdown: the stages (circuit, amps, from -> to) and each receiver at the forecast peak."""
    if not plan.moves:
        return "Nothing needs to move."
    lines: list[str] = []
    for index, step in enumerate(plan.steps, start=1):
        moves = ", ".join(
            f"{m.circuit} ({m.amps:.1f} A) {m.from_mpdu} → {m.to_mpdu}" for m in step.moves
        )
        lines.append(f"- Stage {index} ({step.amps:.1f} A): {moves}")
    util = receiver_utilisation(plan, topology)
    if util:
        at_peak = ", ".join(f"{e} {pct:.0f} %" for e, pct in util.items())
        lines.append(f"- At the forecast peak afterwards: {at_peak} of the continuous limit")
    return "\n".join(lines)


def plan_summary(plan: Plan, topology: Topology) -> str:
    """One line for a phone: how many circuits and amps, how many stages, the fullest receiver."""
    moves = plan.moves
    amps = sum(m.amps for m in moves)
    text = (
        f"{len(plan.circuits)} circuit{'s' if len(plan.circuits) != 1 else ''} "
        f"({amps:.0f} A) in {len(plan.steps)} stage{'s' if len(plan.steps) != 1 else ''}"
    )
    util = receiver_utilisation(plan, topology)
    if util:
        element, pct = max(util.items(), key=lambda kv: kv[1])
        text += f"; fullest receiver {element} at {pct:.0f} % of its limit at the peak"
    return text


def infeasible_text(result: Infeasible) -> str:
    """Why no safe plan exists, in one sentence: an excess over a limit only when that is the
    reason (not when circuits have no other path, nor when nothing was over)."""
    if result.element and result.excess_a > 0 and not result.no_path:
        return (
            f"No safe plan: {result.element} would be {result.excess_a:.1f} A above its "
            f"continuous limit. {result.reason}"
        ).strip()
    return f"No safe plan: {result.reason}"


def plan_response(result: Plan | Infeasible, topology: Topology) -> dict[str, Any]:
    """The ``plan_migration`` / ``migrate_load`` response: one consistent shape.

    Counts agree (``circuit_count`` = circuits moved = ``len(circuits)``; ``move_count`` = moves;
    ``stage_count`` = ``len(steps)``), utilisation is in % of the continuous limit (``*_pct``,
    100 = at the limit, as on the entities), amps are rounded to 0.1 A, and the solver's own
    notes (its internal problem size, not what moves) are kept apart under ``solver_notes``.
    """
    if isinstance(result, Infeasible):
        return {
            "feasible": False,
            "goal": result.goal,
            "element": None if result.no_path else result.element or None,
            "excess_a": 0.0 if result.no_path else round(result.excess_a, 1),
            "at": result.at_s,
            "reason": result.reason,
            "no_path": list(result.no_path),
            "summary": infeasible_text(result),
        }
    return {
        "feasible": True,
        "goal": result.goal,
        "summary": plan_summary(result, topology) if result.moves else "Nothing needs to move.",
        "circuit_count": len(result.circuits),
        "move_count": len(result.moves),
        "stage_count": len(result.steps),
        "circuits": sorted(result.circuits),
        "amps_moved": round(sum(m.amps for m in result.moves), 1),
        "steps": [
            {
                "amps": round(step.amps, 1),
                "moves": [
                    {
                        "circuit": m.circuit,
                        "from_mpdu": m.from_mpdu,
                        "to_mpdu": m.to_mpdu,
                        "amps": round(m.amps, 1),
                    }
                    for m in step.moves
                ],
                "peak_utilization_pct": _pct_map(step.peak_utilization),
            }
            for step in result.steps
        ],
        "final_assignment": dict(result.final_assignment),
        "peak_utilization_pct": _pct_map(result.peak_utilization),
        "receivers_peak_pct": receiver_utilisation(result, topology),
        "solver": result.solver,
        "solver_notes": list(result.notes),
    }


def _pct_map(values: Mapping[str, float]) -> dict[str, float]:
    return {k: limit_pct(v) for k, v in values.items()}


def conservative_ttf_s(assessment: HealthAssessment) -> float:
    """The time to failure people and plans should act on: its 10th percentile (the median
    when the detector gives no band). Requires an estimate."""
    ttf = assessment.time_to_failure_s
    assert ttf is not None
    low = assessment.time_to_failure_low_s
    return ttf if low is None else min(ttf, low)


def _duration(seconds: float) -> str:
    if seconds < 3600.0:
        return f"{seconds / 60.0:.0f} minutes"
    if seconds < 72 * 3600.0:
        return f"{seconds / 3600.0:.0f} hours"
    return f"{seconds / 86400.0:.1f} days"


def duration_text(seconds: float) -> str:
    """A time span as the time-to-failure texts word it ("32 minutes", "3 hours")."""
    return _duration(seconds)


def ttf_text(assessment: HealthAssessment | None, *, failed: bool = False) -> str:
    """Time to failure in words: the conservative figure and the likely one (a healthy unit:
    none expected; a failed one: failed, not a forecast)."""
    if failed:
        return "failed"
    if assessment is None:
        return "not assessed yet"
    ttf = assessment.time_to_failure_s
    if not assessment.alert:
        return "no failure expected"  # a departure below the alert predicts no failure
    if ttf is None:
        return "unknown (trend too short)"
    low = conservative_ttf_s(assessment)
    if _duration(low) == _duration(ttf):
        return f"about {_duration(ttf)}"
    return f"possibly within {_duration(low)}, most likely about {_duration(ttf)}"


def signals_text(assessment: HealthAssessment) -> str:
    """The contributing signals as a markdown list (or a sentence when there are none)."""
    if not assessment.signals:
        return "- no single signal stands out; the combined score is above normal"
    return "\n".join(f"- {s}" for s in assessment.signals)


def recommendation(kind: str, assessment: HealthAssessment) -> str:
    """What a facility engineer should do, from the signals that contribute."""
    texts = " ".join(assessment.signals).lower()
    steps: list[str] = []
    if kind == "ats":
        if "temperature" in texts:
            steps.append(
                "inspect the transfer switch's main contacts (thermal image, contact resistance); "
                "clean and re-torque, replace pitted contacts"
            )
        if "self-test" in texts:
            steps.append("service the transfer mechanism (lubrication, springs, solenoid)")
        if "rated operations" in texts:
            steps.append("plan replacement of the transfer mechanism (near its rated life)")
    else:
        if "trip" in texts:
            steps.append("replace the MPDU's input breaker (nuisance trips are breaker wear)")
        if "temperature" in texts:
            steps.append("check and re-torque the MPDU's terminals; look for discolouration")
    if "ripple" in texts:
        steps.append("check the output filter capacitors (ripple grows as they age)")
    if not steps:
        steps.append("inspect the unit; compare its readings with its twin")
    steps.append("do the work in a maintenance window once its load is migrated off it")
    return "; ".join(steps).capitalize() + "."


def severity_is_critical(assessment: HealthAssessment) -> bool:
    """Whether a predicted failure may come soon enough to be critical (its 10th percentile)."""
    if assessment.time_to_failure_s is None:
        return False
    return conservative_ttf_s(assessment) < CRITICAL_TTF_S
