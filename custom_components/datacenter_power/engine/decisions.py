"""What a decision tick produces: actions, overload predictions, element status, decisions.

These types are the policy's public vocabulary: the Home Assistant layer, the executor and
``dcp_eval`` read them, the decision rules (``rules.py``) build them. Keeping them apart from the
rules lets every reader import them without the forecasting and planning machinery.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .degradation import HealthAssessment
from .forecast import Forecast
from .plan import Infeasible, Plan

if TYPE_CHECKING:
    from .element_forecast import LoadProfiles

__all__ = [
    "Action",
    "ActionKind",
    "DecisionChoice",
    "DecisionKind",
    "DecisionNeeded",
    "Decisions",
    "ElementStatus",
    "Excursion",
    "OverloadPrediction",
]

type ActionKind = Literal["migrate", "relieve", "rebalance", "restore"]


@dataclass(frozen=True, slots=True)
class OverloadPrediction:
    """An element whose forecast (or measured) load reaches its continuous limit."""

    element: str
    limit_a: float
    crossing_s: float | None
    """When the P90 forecast first reaches the limit (None: it does not within the horizon)."""
    peak_s: float
    peak_a: float
    measured_a: float
    urgent: bool
    """Above the limit now."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "element": self.element,
            "limit_a": round(self.limit_a, 2),
            "crossing_s": self.crossing_s,
            "peak_s": self.peak_s,
            "peak_a": round(self.peak_a, 2),
            "measured_a": round(self.measured_a, 2) if math.isfinite(self.measured_a) else None,
            "urgent": self.urgent,
        }


@dataclass(frozen=True, slots=True)
class Action:
    """A plan the policy wants executed (or proposes, in approval mode)."""

    kind: ActionKind
    target: str | None
    plan: Plan
    reason: str
    urgent: bool
    step_interval_s: float
    created_s: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "kind": self.kind,
            "target": self.target,
            "reason": self.reason,
            "urgent": self.urgent,
            "step_interval_s": self.step_interval_s,
            "created_s": self.created_s,
            "plan": self.plan.as_dict(),
        }


@dataclass(frozen=True, slots=True)
class Excursion:
    """How far, and how long, an element's P90 load runs above its continuous limit."""

    element: str
    limit_a: float
    peak_a: float
    """The P90 peak."""
    over_s: float
    """Seconds the P90 stays above the limit (forecast steps above it)."""

    @property
    def over_a(self) -> float:
        """The P90 peak's excess over the limit (A)."""
        return self.peak_a - self.limit_a

    @property
    def over_pct(self) -> float:
        """The excess as a percentage of the limit."""
        return 100.0 * self.over_a / self.limit_a if self.limit_a > 0 else math.inf

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "element": self.element,
            "limit_a": round(self.limit_a, 2),
            "peak_a": round(self.peak_a, 2),
            "over_a": round(self.over_a, 2),
            "over_pct": round(self.over_pct, 1),
            "over_s": round(self.over_s),
        }


type ChoiceKey = str
"""``drain_now``, ``keep_load``, ``partial_drain``, ``partial_relief`` or ``shed:<circuit>``."""

type DecisionKind = Literal["drain", "relief"]
"""What a decision is about: a drain of a unit predicted to fail (``asking.py``) or the relief
of an element forecast over its continuous limit (``relief_asking.py``)."""


@dataclass(frozen=True, slots=True)
class DecisionChoice:
    """One answer a person may give to a :class:`DecisionNeeded`, with its numbers.

    * ``drain_now``: the complete drain, on limits the receivers exceed: ``excursions`` says
      which element runs how far above its continuous limit for how long at the P90. Never run
      without a person's explicit answer.
    * ``keep_load``: nothing moves; ``left``/``left_a`` are the circuits and amps interrupted if
      the unit fails before ``at_risk_until_s`` (the failure estimate's P10).
    * ``partial_drain``: what fits within every limit moves (``moved``/``moved_a``), the rest
      stays (``left``/``left_a``).
    * ``partial_relief`` (a relief question): what moves off the element within every other
      element's limit; ``excursions`` says how far and how long it stays above its own.
    * ``keep_load`` of a relief question: ``excursions`` is the element's own, at the P90.
    * ``shed:<circuit>``: that non-critical circuit is switched off (``shed_a`` amps), then
      the complete drain, which fits within every limit without it, runs (``plan``).
    """

    key: ChoiceKey
    plan: Plan | None
    summary: str
    """The choice in one sentence with its numbers."""
    within_limits: bool = True
    """False only for a plan that takes an element above its continuous limit (drain_now)."""
    excursions: tuple[Excursion, ...] = ()
    over_now: tuple[tuple[str, float], ...] = ()
    """drain_now: elements the plan would put above their limit on the load measured now, with
    the amps: the interlock refuses those moves until the load allows."""
    moved: tuple[str, ...] = ()
    moved_a: float = 0.0
    left: tuple[str, ...] = ()
    left_a: float = 0.0
    left_critical: int = 0
    at_risk_until_s: float | None = None
    shed: str | None = None
    shed_a: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "key": self.key,
            "summary": self.summary,
            "within_limits": self.within_limits,
            "excursions": [x.as_dict() for x in self.excursions],
            "over_now": {e: round(a, 2) for e, a in self.over_now},
            "moved": list(self.moved),
            "moved_a": round(self.moved_a, 2),
            "left": list(self.left),
            "left_a": round(self.left_a, 2),
            "left_critical": self.left_critical,
            "at_risk_until_s": self.at_risk_until_s,
            "shed": self.shed,
            "shed_a": round(self.shed_a, 2),
            "plan": None if self.plan is None else self.plan.as_dict(),
        }


@dataclass(frozen=True, slots=True)
class DecisionNeeded:
    """No plan is safe and a person is asked to choose (``choices``): ``kind="drain"``, no plan
    keeps every receiver within its continuous limit through the drain deadline of ``element``;
    ``kind="relief"``, ``element`` is forecast above its continuous limit at the P90 and no
    relief keeps every element within its limit. Until someone answers, the engine does what it
    did before (the partial drain or relief it runs, in the modes that act); in automatic mode
    ``fallback`` is taken when nobody answered by ``answer_by_s`` (never ``drain_now`` nor a
    shed: no automated action takes an element above its limit or switches a circuit off)."""

    element: str
    raised_s: float
    """When this decision (this id) was first raised."""
    deadline_s: float
    """The drain's deadline (``DecisionRules.drain_deadline``); of a relief question, when the
    element's P90 crosses its limit."""
    choices: tuple[DecisionChoice, ...]
    at_stake: tuple[str, ...] = ()
    """The circuits on ``element`` drawing load: what the question is about."""
    reason: str = ""
    failure_s: float | None = None
    """The predicted failure (P50), when there is an estimate."""
    failure_low_s: float | None = None
    """Its early (P10) estimate."""
    fallback: ChoiceKey = "keep_load"
    """What the no-answer rule takes: ``partial_drain`` when offered (a relief question:
    ``partial_relief`` when the engine runs it and it keeps every other element within its
    limit), else ``keep_load``."""
    answer_by_s: float | None = None
    """Automatic mode: when the fallback is taken without an answer (None: it waits)."""
    kind: DecisionKind = "drain"

    @property
    def id(self) -> str:
        """A short id naming what is asked: the unit and the circuits at stake on it. It stays
        the same while they do (across restarts too) although the choices' plans and numbers
        are refreshed at every plan: a question is announced once, not at every change of a
        forecast; a circuit moved on or off the unit makes it a new question."""
        return decision_id(self.element, self.at_stake, self.kind)

    def choice(self, key: str) -> DecisionChoice | None:
        """The choice ``key``, if offered."""
        return next((c for c in self.choices if c.key == key), None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "id": self.id,
            "kind": self.kind,
            "element": self.element,
            "at_stake": list(self.at_stake),
            "raised_s": self.raised_s,
            "deadline_s": self.deadline_s,
            "failure_s": self.failure_s,
            "failure_low_s": self.failure_low_s,
            "reason": self.reason,
            "fallback": self.fallback,
            "answer_by_s": self.answer_by_s,
            "choices": [c.as_dict() for c in self.choices],
        }


def decision_id(element: str, at_stake: tuple[str, ...], kind: DecisionKind = "drain") -> str:
    """The content hash of a decision (what :attr:`DecisionNeeded.id` gives); a drain's is
    the one it had before relief questions existed (stored answers keep their meaning)."""
    parts: list[object] = [element, sorted(at_stake)]
    key = json.dumps(parts if kind == "drain" else [kind, *parts])
    return hashlib.sha256(key.encode()).hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class ElementStatus:
    """What the policy believes about one ATS/MPDU right now."""

    reachable: bool
    energized: bool
    failed: bool
    """Dead although it should be live (its own failure, not a lost source or upstream)."""
    alert: bool
    load_a: float
    healthy_since_s: float = -math.inf
    """Since when it has been healthy: its last repair (failed -> live) or the end of its last
    failure-risk alert, whichever is later (-inf: never failed nor alerted since the policy
    started, history replayed after a restart included). A restore waits for the soak time
    (``PolicyConfig.restore_stable_s``) after it."""


@dataclass(frozen=True, slots=True)
class Decisions:
    """The outcome of one decision tick."""

    t_s: float
    assessments: Mapping[str, HealthAssessment]
    status: Mapping[str, ElementStatus]
    overloads: tuple[OverloadPrediction, ...] = ()
    actions: tuple[Action, ...] = ()
    """To execute now (automatic mode)."""
    proposals: tuple[Action, ...] = ()
    """Waiting for approval (approval mode)."""
    infeasible: tuple[Infeasible, ...] = ()
    forecasts: Mapping[str, Forecast] = field(default_factory=dict)
    """ATS/MPDU load forecasts (circuit sums), when refreshed at this tick."""
    notes: tuple[str, ...] = ()
    load_profiles: LoadProfiles | None = None
    """What the policy plans against (None: no forecast yet): a migration a person requests is
    planned on the same basis."""
    lineup: Mapping[str, str | None] = field(default_factory=dict)
    """Circuit -> the MPDU it drew from as this tick saw it: the lineup the element forecasts
    are sums under (a circuit moved since makes them another lineup's)."""
    decisions_needed: tuple[DecisionNeeded, ...] = ()
    """Open questions to a person: no plan is safe through a drain's deadline, or no relief
    keeps an element forecast over its limit within it."""

    @property
    def alerts(self) -> frozenset[str]:
        """Components whose failure-risk alert is on."""
        return frozenset(c for c, a in self.assessments.items() if a.alert)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe summary (forecasts thinned)."""
        return {
            "t_s": self.t_s,
            "alerts": sorted(self.alerts),
            "assessments": {k: v.as_dict() for k, v in self.assessments.items()},
            "overloads": [o.as_dict() for o in self.overloads],
            "actions": [a.as_dict() for a in self.actions],
            "proposals": [a.as_dict() for a in self.proposals],
            "infeasible": [i.as_dict() for i in self.infeasible],
            "forecasts": {k: f.as_dict(max_points=24) for k, f in self.forecasts.items()},
            "notes": list(self.notes),
            "decisions_needed": [d.as_dict() for d in self.decisions_needed],
        }
