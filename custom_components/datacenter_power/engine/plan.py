"""The plan vocabulary: what a planner call returns (a staged ``Plan`` of ``Move``s, or why
there is none: ``Infeasible``).

The policy, the executor, the Home Assistant layer and ``dcp_eval`` read these types; keeping
them apart from the solver lets them do so without numpy or scipy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Move:
    """One circuit switched from one MPDU to another; ``amps`` is its forecast peak."""

    circuit: str
    from_mpdu: str
    to_mpdu: str
    amps: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "circuit": self.circuit,
            "from_mpdu": self.from_mpdu,
            "to_mpdu": self.to_mpdu,
            "amps": round(float(self.amps), 4),
        }


@dataclass(frozen=True, slots=True)
class PlanStep:
    """Moves executed together; any subset of them leaves the plant within its caps."""

    moves: tuple[Move, ...]
    amps: float
    peak_utilization: Mapping[str, float]

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "moves": [m.as_dict() for m in self.moves],
            "amps": round(float(self.amps), 4),
            "peak_utilization": _round_map(self.peak_utilization),
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """A staged migration whose every intermediate state is safe at every forecast time."""

    goal: str
    steps: tuple[PlanStep, ...]
    final_assignment: Mapping[str, str | None]
    peak_utilization: Mapping[str, float]
    solver: str
    notes: tuple[str, ...]

    @property
    def moves(self) -> tuple[Move, ...]:
        """All moves in execution order."""
        return tuple(m for step in self.steps for m in step.moves)

    @property
    def circuits(self) -> frozenset[str]:
        """The circuits the plan moves."""
        return frozenset(m.circuit for m in self.moves)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form (for service responses, events and diagnostics)."""
        return {
            "feasible": True,
            "goal": self.goal,
            "solver": self.solver,
            "notes": list(self.notes),
            "steps": [s.as_dict() for s in self.steps],
            "moves": len(self.moves),
            "circuits": sorted(self.circuits),
            "amps_moved": round(sum(float(m.amps) for m in self.moves), 4),
            "final_assignment": dict(self.final_assignment),
            "peak_utilization": _round_map(self.peak_utilization),
        }


@dataclass(frozen=True, slots=True)
class Infeasible:
    """No safe plan exists: ``element`` would be ``excess_a`` over its limit at ``at_s``; or,
    when ``no_path`` names circuits, those critical circuits have no available path off the
    part being drained (``excess_a`` is then their load, not an excess over a limit)."""

    goal: str
    element: str
    excess_a: float
    at_s: float | None
    reason: str
    no_path: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "feasible": False,
            "goal": self.goal,
            "element": self.element,
            "excess_a": round(float(self.excess_a), 4),
            "at_s": None if self.at_s is None else float(self.at_s),
            "reason": self.reason,
            **({"no_path": list(self.no_path)} if self.no_path else {}),
        }


def _round_map(values: Mapping[str, float]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in values.items()}
