"""What the decision policy sees of the plant at one poll, independent of where it came from.

The Home Assistant layer builds these from ``device.models`` readings, the evaluation harness from
the simulator's telemetry; the policy never sees either source. A device that did not answer is
``reachable=False`` and its measurements are NaN (the integration's "unavailable" entity): the
policy must not mistake that for a dead component.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["CircuitObs", "ElementObs", "PlantObservation", "ScheduledLoad"]

NAN = math.nan


@dataclass(frozen=True, slots=True)
class CircuitObs:
    """One circuit's SBM reading."""

    id: str
    reachable: bool
    active_path: str | None
    """The MPDU it draws from (None when unknown)."""
    energized: bool
    current_a: float
    output_on: bool = True
    path_energized: Mapping[str, bool] = field(default_factory=dict)
    """Per MPDU path: whether the SBM sees it live."""


@dataclass(frozen=True, slots=True)
class ElementObs:
    """One ATS or MPDU reading (health precursors included)."""

    id: str
    kind: Literal["ats", "mpdu"]
    reachable: bool
    energized: bool
    """ATS: output energised; MPDU: energised and its breaker closed."""
    current_a: float
    temperature_c: float = NAN
    """ATS contact / MPDU terminal temperature."""
    ripple_pct: float = NAN
    self_tests: int = 0
    self_test_ms: float = 0.0
    nominal_transfer_ms: float = 0.0
    operations: int = 0
    rated_operations: int = 0
    nuisance_trips: int = 0
    sources_available: bool = True
    """ATS: whether at least one of its sources is live (a dead ATS with no source is not failed)."""
    on_alternate: bool = False
    """ATS: running on another source because its preferred one is lost; it retransfers (an
    open transition: every circuit on it is interrupted again) as soon as that source returns."""
    alarms: frozenset[str] = frozenset()
    """Active alarm names, e.g. ``breaker_trip``, ``over_temperature``."""


@dataclass(frozen=True, slots=True)
class PlantObservation:
    """Everything read at one poll. ``t_s`` is Unix epoch seconds."""

    t_s: float
    circuits: Mapping[str, CircuitObs]
    elements: Mapping[str, ElementObs]
    ambient_c: float = NAN
    """Room temperature (NaN when the environment sensor did not answer)."""


@dataclass(frozen=True, slots=True)
class ScheduledLoad:
    """Announced work: ``extra_a`` more on each listed circuit from ``start_s`` to ``end_s``."""

    start_s: float
    end_s: float
    circuits: tuple[str, ...]
    extra_a: float
