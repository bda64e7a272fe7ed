"""What one decision tick changed: computed once, by the decision coordinator, for everyone.

The decision coordinator (``decisions.py``) publishes a :class:`DecisionChanges` with every new
decision: the alerts that turned on and off, the elements newly forecast over their limit, and
the proposals by id (those new since the tick before named). The decision follower announces the
alerts that turned on, the activity writes each change, the proposal book takes the proposals by
id: none of them keeps the previous tick to diff against. The first tick is compared with
nothing (every alert is new), as a plant that has just been set up has announced nothing yet.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from .engine.policy import Action, Decisions, OverloadPrediction

__all__ = ["DecisionChanges", "changes_between", "proposal_id"]


def proposal_id(action: Action) -> str:
    """A short id that names what a proposal does (stable while the plan is the same): the same
    plan keeps its id from one tick to the next, a changed plan gets a new one."""
    key = json.dumps(
        [
            action.kind,
            action.target,
            [[m.circuit, m.from_mpdu, m.to_mpdu] for m in action.plan.moves],
        ]
    )
    return hashlib.sha256(key.encode()).hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class DecisionChanges:
    """One decision tick, and what it changed against the tick before."""

    decisions: Decisions
    alerts_on: frozenset[str]
    """Components whose failure-risk alert turned on."""
    alerts_off: frozenset[str]
    """Components whose alert turned off."""
    new_overloads: tuple[OverloadPrediction, ...]
    """Elements forecast to reach their continuous limit that were not before (by element)."""
    proposals: Mapping[str, Action]
    """Every proposal of this tick by its id (:func:`proposal_id`)."""
    new_proposals: frozenset[str]
    """The ids of this tick's proposals that the tick before did not propose."""


def changes_between(before: DecisionChanges | None, decisions: Decisions) -> DecisionChanges:
    """What ``decisions`` changed against the tick ``before`` (None: the first tick)."""
    alerts = decisions.alerts
    old_alerts = frozenset() if before is None else before.decisions.alerts
    old_overloads = set() if before is None else {o.element for o in before.decisions.overloads}
    overloads = {o.element: o for o in decisions.overloads}
    proposals = {proposal_id(a): a for a in decisions.proposals}
    old_proposals = {} if before is None else before.proposals
    return DecisionChanges(
        decisions=decisions,
        alerts_on=alerts - old_alerts,
        alerts_off=old_alerts - alerts,
        new_overloads=tuple(overloads[e] for e in sorted(set(overloads) - old_overloads)),
        proposals=proposals,
        new_proposals=frozenset(proposals) - frozenset(old_proposals),
    )
