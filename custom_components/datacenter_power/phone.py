"""What a phone is told: a proposal, its outcome, and how urgent it is, in a few words.

The blueprints (``blueprints/automation/datacenter_power/``) only pass these event fields on,
so every automation tells a person the same thing the repair and the sensors say: the unit, the
circuits and where they go ("ats1 may fail within 32 minutes — move a01-a04 to mpdu2?", with an en dash), the
time to failure's 10th percentile (the "possibly within" of the time-to-failure sensor and the
repair, not the median), and, when that is under an hour or the action is urgent, a
notification that breaks through (``priority: high``, ``ttl: 0``; iOS ``time-sensitive``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from .engine.degradation import HealthAssessment
from .engine.plan import Plan
from .engine.policy import Action
from .engine.topology import Topology
from .executor import MigrationRecord, MigrationState
from .presentation import conservative_ttf_s, duration_text, receiver_utilisation, ttf_text

URGENT_TTF_S: Final = 3600.0
"""A failure possibly within this long makes the notification break through."""
EN_DASH: Final = "\u2013"
_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def circuits_text(circuits: Iterable[str]) -> str:
    """Circuit ids with consecutive runs joined: ``a01\u2013a04, b07`` (an en dash)."""
    parts: list[str] = []
    run: list[tuple[str, int, str]] = []

    def flush() -> None:
        if not run:
            return
        parts.append(run[0][2] if len(run) < 3 else f"{run[0][2]}{EN_DASH}{run[-1][2]}")
        if len(run) == 2:
            parts.append(run[1][2])
        run.clear()

    def key(c: str) -> tuple[str, int, str]:
        m = _NUMBERED.match(c)
        return (m.group(1), int(m.group(2)), c) if m else (c, -1, c)

    for prefix, number, cid in sorted(key(c) for c in circuits):
        if run and not (number >= 0 and prefix == run[-1][0] and number == run[-1][1] + 1):
            flush()
        run.append((prefix, number, cid))
    flush()
    return ", ".join(parts)


def notification_data(high: bool) -> dict[str, Any]:
    """The Companion app's delivery fields: at once and through Focus when ``high``."""
    if high:
        return {"priority": "high", "ttl": 0, "push": {"interruption-level": "time-sensitive"}}
    return {"priority": "normal", "push": {"interruption-level": "active"}}


def _moves(plan: Plan) -> tuple[list[str], list[str]]:
    froms = sorted({m.from_mpdu for m in plan.moves})
    tos = sorted({m.to_mpdu for m in plan.moves})
    return froms, tos


def proposal_fields(
    pid: str, action: Action, topology: Topology, assessment: HealthAssessment | None
) -> dict[str, Any]:
    """The phone's fields of a proposal event: ``title``, ``message``, ``tag``, ``priority``,
    ``notification_data``, the time to failure's P10 and the moves in words."""
    plan = action.plan
    froms, tos = _moves(plan)
    circuits = circuits_text(plan.circuits)
    unit = action.target or "the plant"
    low = None
    if assessment is not None and assessment.alert and assessment.time_to_failure_s is not None:
        low = conservative_ttf_s(assessment)
    if low is not None:
        head = f"{unit} may fail within {duration_text(low)}"
    elif action.kind == "relieve":
        head = f"{unit} forecast to reach its limit"
    elif action.kind == "restore":
        head = f"{unit} is healthy again"
    else:
        head = f"{unit}: {action.kind} proposed"
    title = f"{head} — move {circuits} to {', '.join(tos)}?"
    amps = sum(m.amps for m in plan.moves)
    stages = len(plan.steps)
    message = (
        f"Move {circuits} ({amps:.0f} A) from {', '.join(froms)} to {', '.join(tos)} in "
        f"{stages} verified stage{'s' if stages != 1 else ''}"
    )
    util = receiver_utilisation(plan, topology)
    if util:
        element, pct = max(util.items(), key=lambda kv: kv[1])
        message += f"; {element} then at {pct:.0f} % of its limit at the forecast peak"
    message += "."
    if low is not None and assessment is not None:
        message += (
            f" {unit}: health {assessment.health:.0f} %, time to failure {ttf_text(assessment)}"
        )
        message += f"; {assessment.signals[0]}." if assessment.signals else "."
    else:
        message += f" Why: {action.reason}."
    high = action.urgent or (low is not None and low < URGENT_TTF_S)
    return {
        "title": title,
        "message": message,
        "tag": proposal_tag(pid),
        "priority": "high" if high else "normal",
        "notification_data": notification_data(high),
        "time_to_failure_p10_s": None if low is None else round(low),
        "possibly_within": None if low is None else duration_text(low),
        "from_mpdus": froms,
        "to_mpdus": tos,
        "to_ats": sorted({topology.ats_of(t) for t in tos}),
        "circuits_text": circuits,
    }


def proposal_tag(pid: str) -> str:
    """The notification tag of a proposal: its outcome replaces it on the phone."""
    return f"datacenter_power_{pid}"


_OUTCOME_WORDS: Final = {
    MigrationState.COMPLETED: "completed",
    MigrationState.ROLLED_BACK: "rolled back",
    MigrationState.ABORTED: "aborted",
}


def outcome_fields(rec: MigrationRecord) -> dict[str, Any]:
    """``title`` and ``message`` of a migration's end, for a phone."""
    what = circuits_text(rec.circuits)
    subject = "rebalance" if rec.component == "plant" else f"drain of {rec.component}"
    state = _OUTCOME_WORDS.get(rec.state, rec.state.value.replace("_", " "))
    title = f"Migration {state}: {subject} ({what})"
    stages = len(rec.stages)
    if rec.state is MigrationState.COMPLETED:
        tos = sorted({m.to_mpdu for s in rec.stages for m in s})
        message = f"{what} moved to {', '.join(tos)}; " + (
            f"all {stages} stages verified." if stages != 1 else "its stage verified."
        )
    else:
        message = (
            f"{state.capitalize()} after {rec.completed_stages} of {stages} "
            f"stage{'s' if stages != 1 else ''}: {rec.reason}."
        )
    return {"title": title, "message": message, "outcome": rec.state.value}
