"""Announced work from a calendar: which circuits draw how many extra amps, and when.

An event announces work when its title or description names one or more circuits of the plant
(by plant id, e.g. ``a01``) and an amount of current (``+4 A``, ``4A``, ``4.5 amps``), for
example "Burn-in a01, a02, b01 +4 A". Events naming no known circuit or no amount are not
work. The forecaster takes announced work as a known regressor (README, "Announced work").
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from homeassistant.util import dt as dt_util

from .engine.observation import ScheduledLoad

_AMPS: Final = re.compile(r"(?<![\w.])\+?(\d+(?:\.\d+)?)\s*(?:A|amps?|amperes?)\b", re.IGNORECASE)
_WORD: Final = re.compile(r"[A-Za-z0-9_\-]+")


def parse_work(text: str, circuits: Collection[str]) -> tuple[tuple[str, ...], float] | None:
    """The circuits and extra amps an event's text announces, or None if it announces none."""
    amps = _AMPS.search(text)
    if amps is None:
        return None
    named = tuple(dict.fromkeys(w for w in _WORD.findall(text) if w in circuits))
    if not named:
        return None
    return named, float(amps.group(1))


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        parsed = dt_util.parse_datetime(value)
        if parsed is None:
            date = dt_util.parse_date(value)
            return None if date is None else dt_util.start_of_local_day(date)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt_util.get_default_time_zone())
    return None


def scheduled_loads(
    events: Iterable[Mapping[str, Any]], circuits: Collection[str]
) -> tuple[ScheduledLoad, ...]:
    """Announced work from ``calendar.get_events`` results (``start``, ``end``, ``summary``,
    ``description``)."""
    out: list[ScheduledLoad] = []
    for event in events:
        text = f"{event.get('summary') or ''}\n{event.get('description') or ''}"
        work = parse_work(text, circuits)
        start, end = _time(event.get("start")), _time(event.get("end"))
        if work is None or start is None or end is None or end <= start:
            continue
        out.append(ScheduledLoad(start.timestamp(), end.timestamp(), work[0], work[1]))
    return tuple(out)
