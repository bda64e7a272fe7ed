"""Sudden failures and elements above their continuous limit, read straight from one poll.

The policy learns what has failed at its decision ticks, and acts (the failover rebalance) only
when a rebalance can help. An engineer must hear of a failure, or of an element left above its
limit, within the poll that shows it, whether or not anything can be moved: these functions say
what one poll shows, without any history, so the integration can raise its repair and event at
once and every entity can count a failed unit as at risk.

A failed unit is dead although it should be live: an ATS with no live output while one of its
sources is available; an MPDU whose output is switched on but dead (or its breaker open) while
its ATS is live. An MPDU switched off on purpose (isolated) has not failed, nor has anything
below a failed or unfed ATS (they are "dead", not failed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from custom_components.datacenter_power.device.models import AtsReading, MpduReading, Reading

from .topology import Topology

__all__ = [
    "OverLimit",
    "UnitFailure",
    "is_live",
    "over_limits",
    "unit_failure",
    "unit_failures",
]


@dataclass(frozen=True, slots=True)
class UnitFailure:
    """An ATS or MPDU that has failed, and what shows it."""

    element: str
    kind: str
    """``ats`` or ``mpdu``."""
    why: str
    below: tuple[str, ...] = ()
    """The MPDUs left dead below a failed ATS."""


@dataclass(frozen=True, slots=True)
class OverLimit:
    """An ATS or MPDU measured above its continuous limit."""

    element: str
    load_a: float
    limit_a: float
    rating_a: float

    @property
    def excess_a(self) -> float:
        """Amps above the limit."""
        return self.load_a - self.limit_a

    @property
    def pct(self) -> float:
        """Load in % of the continuous limit (100 = at the limit)."""
        return 100.0 * self.load_a / self.limit_a if self.limit_a > 0 else 0.0


def is_live(reading: Reading | None) -> bool:
    """Whether an ATS's or MPDU's reading shows it live (an ATS's output energised; an MPDU
    energised, switched on, breaker closed). False when it did not answer."""
    if isinstance(reading, AtsReading):
        return reading.output_energized
    if isinstance(reading, MpduReading):
        return reading.energized and reading.output_on and not reading.breaker_open
    return False


def unit_failure(
    topology: Topology, readings: Mapping[str, Reading], element: str
) -> UnitFailure | None:
    """Whether ``element`` (an ATS or MPDU that answered) has failed, by this poll alone."""
    reading = readings.get(element)
    if isinstance(reading, AtsReading) and element in topology.ats:
        if reading.output_energized or not any(reading.source_available):
            return None
        live = [s for s, ok in zip(reading.sources, reading.source_available, strict=False) if ok]
        return UnitFailure(
            element,
            "ats",
            f"its output is dead although {', '.join(live)} "
            f"{'is' if len(live) == 1 else 'are'} available",
            tuple(topology.mpdus_of(element)),
        )
    if isinstance(reading, MpduReading) and element in topology.mpdus:
        if not reading.output_on or (reading.energized and not reading.breaker_open):
            return None
        ats = readings.get(topology.ats_of(element))
        if not isinstance(ats, AtsReading) or not ats.output_energized:
            return None  # not fed: not its own failure (or unknown)
        why = (
            "its breaker is open"
            if reading.breaker_open
            else f"its output is dead although it is switched on and {ats.id} is live"
        )
        return UnitFailure(element, "mpdu", why)
    return None


def unit_failures(topology: Topology, readings: Mapping[str, Reading]) -> dict[str, UnitFailure]:
    """Every ATS and MPDU this poll shows failed, by id."""
    out: dict[str, UnitFailure] = {}
    for element in topology.elements:
        failure = unit_failure(topology, readings, element)
        if failure is not None:
            out[element] = failure
    return out


def over_limits(
    topology: Topology, readings: Mapping[str, Reading], fraction: float = 1.0
) -> dict[str, OverLimit]:
    """Every ATS and MPDU whose measured current is above ``fraction`` of its continuous limit
    (1.0: the limit itself; a smaller fraction keeps one that was over until it is clearly
    back below)."""
    out: dict[str, OverLimit] = {}
    for element in topology.elements:
        reading = readings.get(element)
        if isinstance(reading, AtsReading):
            load = reading.load_current_a
        elif isinstance(reading, MpduReading):
            load = reading.current_a
        else:
            continue
        limit = topology.limit_a(element)
        if limit > 0 and load > fraction * limit:
            out[element] = OverLimit(element, load, limit, topology.rating_a(element))
    return out
