"""Circuit load model: what each circuit would draw at a moment, vectorised over circuits.

demand = mean * (1 + daily * cos(2 pi (hour - 15) / 24) + weekly * (+1 weekday, -1 weekend))
         * (1 + trend_per_day * days) * (1 + noise * N(0, 1)) + scheduled / surge / trend extras.

The clock is the scenario's local wall clock (the UTC offset of ``start``). Noise comes from a
generator that draws exactly one normal per circuit per step, so the same seed gives the same
loads however the plant is driven.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from .scenario import LoadSurgeEvent, LoadTrendEvent, Scenario

type FloatArray = npt.NDArray[np.float64]

PEAK_HOUR: Final = 15.0
DAY_S: Final = 86400.0


def daily_shape(local_hour: float) -> float:
    """Smooth daily cycle in [-1, 1], peaking at 15:00 local time."""
    return math.cos(2.0 * math.pi * (local_hour - PEAK_HOUR) / 24.0)


def weekly_shape(local_epoch_s: float) -> float:
    """+1 on weekdays (Monday-Friday), -1 on weekends."""
    weekday = (math.floor(local_epoch_s / DAY_S) + 3) % 7  # 1970-01-01 was a Thursday
    return 1.0 if weekday < 5 else -1.0


class LoadModel:
    """Demand current of every circuit, in scenario circuit order."""

    def __init__(self, scenario: Scenario, rng: np.random.Generator) -> None:
        index = {c.id: i for i, c in enumerate(scenario.circuits)}
        n = len(scenario.circuits)
        self._rng = rng
        self._n = n
        self._mean = np.array([c.load.mean_a for c in scenario.circuits])
        self._daily = np.array([c.load.daily for c in scenario.circuits])
        self._weekly = np.array([c.load.weekly for c in scenario.circuits])
        self._noise = np.array([c.load.noise for c in scenario.circuits])
        self._trend = np.array([c.load.trend_per_day for c in scenario.circuits])
        self._has_trend = bool(np.any(self._trend != 0.0))
        offset = scenario.start.utcoffset()
        self.local_epoch0 = scenario.start.timestamp() + (offset.total_seconds() if offset else 0.0)
        # Piecewise-constant extras: (start, end, per-circuit amps).
        self._steps: list[tuple[float, float, FloatArray]] = []
        # Ramps: (onset, end, per-circuit amps per second).
        self._ramps: list[tuple[float, float, FloatArray]] = []
        for work in scenario.schedule:
            vec = np.zeros(n)
            vec[[index[c] for c in work.circuits]] = work.extra_a
            self._steps.append((work.start_s, work.start_s + work.duration_s, vec))
        for event in scenario.events:
            if isinstance(event, LoadSurgeEvent):
                vec = np.zeros(n)
                vec[[index[c] for c in event.targets]] = event.extra_a
                self._steps.append((event.at_s, event.at_s + event.duration_s, vec))
            elif isinstance(event, LoadTrendEvent):
                vec = np.zeros(n)
                vec[[index[c] for c in event.targets]] = event.growth_a_per_h / 3600.0
                end = math.inf if event.end_s is None else event.end_s
                self._ramps.append((event.onset_s, end, vec))

    def local_time(self, t_s: float) -> tuple[float, float]:
        """(local epoch seconds, local hour of day) at scenario time ``t_s``."""
        local = self.local_epoch0 + t_s
        return local, (local % DAY_S) / 3600.0

    def extra(self, t_s: float) -> FloatArray:
        """Scheduled work, surges and load trends at ``t_s`` (no randomness)."""
        extra = np.zeros(self._n)
        for start, end, vec in self._steps:
            if start <= t_s < end:
                extra += vec
        for onset, end, rate in self._ramps:
            if t_s > onset:
                extra += rate * (min(t_s, end) - onset)
        return extra

    def demand(self, t_s: float) -> FloatArray:
        """Draw this step's demand; call exactly once per physics step."""
        z = self._rng.standard_normal(self._n)
        local, hour = self.local_time(t_s)
        shape = 1.0 + self._daily * daily_shape(hour) + self._weekly * weekly_shape(local)
        base = self._mean * shape * (1.0 + self._noise * z)
        if self._has_trend:
            base *= 1.0 + self._trend * (t_s / DAY_S)
        if self._steps or self._ramps:
            base += self.extra(t_s)
        return np.maximum(base, 0.0)
