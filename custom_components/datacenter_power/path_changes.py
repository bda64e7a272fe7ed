"""Every circuit's path changes within the last hour, whatever caused them.

The flapping guard and the migration sensor counted only the path changes a migration sent: a
hand move (the *Active path* select, ``set_path``) and a bypass module's own transfer (a failure
upstream) did not show. Each smart bypass module counts its path changes itself (all causes) and
its own automatic transfers; the difference between two polls says how many changes happened in
between and how many of those were commanded, even a change and its undo within one poll.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .device.models import Reading, SbmReading

WINDOW_S = 3600.0


def _recent(times: Mapping[str, deque[float]], since: float) -> dict[str, int]:
    out: dict[str, int] = {}
    for circuit, kept in times.items():
        while kept and kept[0] < since:
            kept.popleft()
        if kept:
            out[circuit] = len(kept)
    return out


def _load(raw: object, since: float) -> dict[str, deque[float]]:
    """Stored times (circuit -> list of Unix seconds), those within the window."""
    out: dict[str, deque[float]] = {}
    if not isinstance(raw, dict):
        return out
    for circuit, times in raw.items():
        kept = sorted(
            float(t)
            for t in (times if isinstance(times, list) else [])
            if isinstance(t, int | float) and t >= since
        )
        if isinstance(circuit, str) and kept:
            out[circuit] = deque(kept)
    return out


@dataclass
class PathChanges:
    """Path changes per circuit: commanded ones (a person, a migration) and the bypass modules'
    own transfers, as the modules' counters show them from poll to poll."""

    commanded: dict[str, deque[float]] = field(default_factory=dict)
    bypass: dict[str, deque[float]] = field(default_factory=dict)
    _counters: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Circuit -> (path changes, bypass transfers) its module reported last."""

    def observe(self, readings: Mapping[str, Reading], now_s: float) -> bool:
        """Count what changed since the previous poll; True when anything was counted. A
        module seen for the first time, or whose counters went back (replaced, reset), is only
        remembered."""
        counted = False
        for circuit, reading in readings.items():
            if not isinstance(reading, SbmReading):
                continue
            now = (reading.switch_operations, reading.bypass_transfers)
            before = self._counters.get(circuit)
            self._counters[circuit] = now
            if before is None:
                continue
            changes, transfers = now[0] - before[0], now[1] - before[1]
            if changes <= 0 or transfers < 0:
                continue
            transfers = min(transfers, changes)
            self._add(self.commanded, circuit, now_s, changes - transfers)
            self._add(self.bypass, circuit, now_s, transfers)
            counted = True
        return counted

    @staticmethod
    def _add(times: dict[str, deque[float]], circuit: str, now_s: float, n: int) -> None:
        if n > 0:
            times.setdefault(circuit, deque()).extend([now_s] * n)

    def last_hour(self, now_s: float, *, commanded_only: bool = False) -> dict[str, int]:
        """Circuit -> path changes within the last hour (all causes, or only commanded ones)."""
        since = now_s - WINDOW_S
        out = _recent(self.commanded, since)
        if commanded_only:
            return out
        for circuit, n in _recent(self.bypass, since).items():
            out[circuit] = out.get(circuit, 0) + n
        return dict(sorted(out.items()))

    def load(self, commanded: object, bypass: object, now_s: float) -> None:
        """The changes of the last hour as saved before a reload or a restart."""
        since = now_s - WINDOW_S
        self.commanded = _load(commanded, since)
        self.bypass = _load(bypass, since)

    def dump(self) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        """(commanded, bypass) as JSON-safe lists per circuit."""
        return _dump(self.commanded.items()), _dump(self.bypass.items())


def _dump(items: Iterable[tuple[str, deque[float]]]) -> dict[str, list[float]]:
    return {c: list(t) for c, t in items if t}
