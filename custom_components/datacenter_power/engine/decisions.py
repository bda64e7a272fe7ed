"""What a decision tick produces: actions, overload predictions, element status, decisions.

These types are the policy's public vocabulary: the Home Assistant layer, the executor and
``dcp_eval`` read them, the decision rules (``rules.py``) build them. Keeping them apart from the
rules lets every reader import them without the forecasting and planning machinery.
"""

from __future__ import annotations

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
    "Decisions",
    "ElementStatus",
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
        }
