"""Circuit load model: what each circuit would draw at a moment, vectorised over circuits.

demand = level x ((1 + daily_d x cos(2 pi (hour - peak_hour) / 24) + weekly x (+1 working day,
         -1 non-working)) x weekday_profile[day] x ramp + batch) x (1 + trend_per_day x days)
         x (1 + noise x burst x e) + scheduled / surge / trend extras,

where level is ``mean_a`` plus the ``steps`` passed, ``daily_d`` is ``weekend_daily`` on
non-working days (Saturday, Sunday, a holiday; a holiday is drawn like a Sunday), ramp is the
``monday_ramp`` build-up on the first working day after a non-working day, batch is the nightly
``batch`` extra (relative to the level), and e is AR(1) noise with unit variance and the
``noise_correlation`` time (white noise when 0), ``burst`` times larger inside a noise burst.
The defaults reproduce the original model bit for bit (every optional term is skipped).

The clock is the scenario's local wall clock (the UTC offset of ``start``). Noise comes from a
generator that draws exactly one normal per circuit per step, so the same seed gives the same
loads however the plant is driven; burst times and batch jitter come from their own generators
seeded by the scenario seed, so they are fixed by the file.
"""

from __future__ import annotations

import bisect
import math
from typing import Final

import numpy as np
import numpy.typing as npt

from .scenario import LoadSpec, LoadSurgeEvent, LoadTrendEvent, Scenario

type FloatArray = npt.NDArray[np.float64]
type BoolArray = npt.NDArray[np.bool_]

PEAK_HOUR: Final = 15.0
DAY_S: Final = 86400.0
_BURST_SEED: Final = 0xB0257
_JITTER_SEED: Final = 0xBA7C


def daily_shape(local_hour: float) -> float:
    """Smooth daily cycle in [-1, 1], peaking at 15:00 local time."""
    return math.cos(2.0 * math.pi * (local_hour - PEAK_HOUR) / 24.0)


def local_day(local_epoch_s: float) -> int:
    """Days since 1970-01-01 on the local clock."""
    return math.floor(local_epoch_s / DAY_S)


def weekday_of(day: int) -> int:
    """0 Monday .. 6 Sunday for a local day number."""
    return (day + 3) % 7  # 1970-01-01 was a Thursday


def weekly_shape(local_epoch_s: float) -> float:
    """+1 on weekdays (Monday-Friday), -1 on weekends."""
    return 1.0 if weekday_of(local_day(local_epoch_s)) < 5 else -1.0


class LoadModel:
    """Demand current of every circuit, in scenario circuit order."""

    def __init__(self, scenario: Scenario, rng: np.random.Generator) -> None:
        index = {c.id: i for i, c in enumerate(scenario.circuits)}
        n = len(scenario.circuits)
        specs = [c.load for c in scenario.circuits]
        self._rng = rng
        self._n = n
        self._seed = scenario.seed
        self._mean = np.array([s.mean_a for s in specs])
        self._daily = np.array([s.daily for s in specs])
        self._weekly = np.array([s.weekly for s in specs])
        self._noise = np.array([s.noise for s in specs])
        self._trend = np.array([s.trend_per_day for s in specs])
        self._has_trend = bool(np.any(self._trend != 0.0))
        offset = scenario.start.utcoffset()
        self.local_epoch0 = scenario.start.timestamp() + (offset.total_seconds() if offset else 0.0)
        epoch = 719163  # date(1970, 1, 1).toordinal()
        self._holidays = frozenset(d.toordinal() - epoch for d in scenario.holidays)
        self._init_shape(specs)
        self._init_noise(specs, scenario)
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

    # -- construction ----------------------------------------------------------------------

    def _init_shape(self, specs: list[LoadSpec]) -> None:
        n = self._n
        peak = np.array([s.peak_hour for s in specs])
        self._peak = None if bool(np.all(peak == PEAK_HOUR)) else peak
        profile = np.array([s.weekday_profile for s in specs]).reshape(n, 7)
        self._profile = None if bool(np.all(profile == 1.0)) else profile
        weekend = [s.weekend_daily for s in specs]
        self._weekend_daily = (
            None
            if all(w is None for w in weekend)
            else np.array(
                [s.daily if w is None else w for s, w in zip(specs, weekend, strict=True)]
            )
        )
        ramps = [s.monday_ramp for s in specs]
        self._ramp: tuple[FloatArray, FloatArray, FloatArray] | None = None
        if any(r is not None and r.depth > 0 for r in ramps):
            self._ramp = (
                np.array([0.0 if r is None else r.depth for r in ramps]),
                np.array([0.0 if r is None else r.start_h * 3600.0 for r in ramps]),
                np.array([1.0 if r is None else r.duration_s for r in ramps]),
            )
        # Level steps: sorted times and the cumulative per-circuit change from each on.
        times = sorted({st.at_s for s in specs for st in s.steps})
        self._step_times = times
        self._step_levels: list[FloatArray] = []
        level = np.zeros(n)
        for t in times:
            for i, s in enumerate(specs):
                level[i] += sum(st.delta_a for st in s.steps if st.at_s == t)
            self._step_levels.append(level.copy())
        batches = [s.batch for s in specs]
        self._batch: tuple[FloatArray, FloatArray, FloatArray, FloatArray] | None = None
        if any(b is not None and b.extra > 0 for b in batches):
            self._batch = (
                np.array([0.0 if b is None else b.start_h * 3600.0 for b in batches]),
                np.array([0.0 if b is None else b.duration_s for b in batches]),
                np.array([0.0 if b is None else b.extra for b in batches]),
                np.array([0.0 if b is None else b.jitter_s for b in batches]),
            )
        self._jitter_cache: dict[int, FloatArray] = {}

    def _init_noise(self, specs: list[LoadSpec], scenario: Scenario) -> None:
        tau = np.array([s.noise_correlation_s for s in specs])
        self._tau = tau if bool(np.any(tau > 0)) else None
        self._e: FloatArray | None = None
        self._t_prev: float | None = None
        # Noise bursts: (time, circuit, +1 start / -1 end), swept as time advances.
        t_lo = -scenario.history_s
        t_hi = scenario.duration_s
        marks: list[tuple[float, int, int]] = []
        factor = np.ones(self._n)
        for i, s in enumerate(specs):
            b = s.noise_bursts
            if b is None or b.per_day <= 0 or b.factor == 1.0:
                continue
            factor[i] = b.factor
            rng = np.random.default_rng([scenario.seed, _BURST_SEED, i])
            span = t_hi - t_lo + b.duration_s
            count = int(rng.poisson(b.per_day * span / DAY_S))
            for start in np.sort(rng.uniform(t_lo - b.duration_s, t_hi, size=count)):
                marks.append((float(start), i, 1))
                marks.append((float(start) + b.duration_s, i, -1))
        marks.sort()
        self._burst_marks = marks
        self._burst_factor = factor
        self._reset_bursts()

    def _reset_bursts(self) -> None:
        self._burst_k = 0
        self._burst_active = np.zeros(self._n, dtype=np.int64)
        self._burst_t = -math.inf

    # -- time ------------------------------------------------------------------------------

    def local_time(self, t_s: float) -> tuple[float, float]:
        """(local epoch seconds, local hour of day) at scenario time ``t_s``."""
        local = self.local_epoch0 + t_s
        return local, (local % DAY_S) / 3600.0

    def is_holiday(self, day: int) -> bool:
        """Whether a local day number is one of the scenario's holidays."""
        return day in self._holidays

    def working(self, day: int) -> bool:
        """Monday-Friday and not a holiday."""
        return weekday_of(day) < 5 and day not in self._holidays

    # -- deterministic parts -----------------------------------------------------------------

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

    def level(self, t_s: float) -> FloatArray:
        """``mean_a`` plus the load steps passed by ``t_s``."""
        k = bisect.bisect_right(self._step_times, t_s)
        return self._mean if k == 0 else self._mean + self._step_levels[k - 1]

    def shape(self, t_s: float) -> FloatArray:
        """Relative load at ``t_s`` before trend and noise (1 = the mean)."""
        local, hour = self.local_time(t_s)
        day = local_day(local)
        working = self.working(day)
        if self._peak is None:
            cycle: float | FloatArray = daily_shape(hour)
        else:
            cycle = np.cos(2.0 * np.pi * (hour - self._peak) / 24.0)
        daily = self._daily
        if self._weekend_daily is not None and not working:
            daily = self._weekend_daily
        week = weekly_shape(local) if not self._holidays else (1.0 if working else -1.0)
        shape: FloatArray = 1.0 + daily * cycle + self._weekly * week
        if self._profile is not None:
            shape = shape * self._profile[:, 6 if day in self._holidays else weekday_of(day)]
        if self._ramp is not None and working and not self.working(day - 1):
            depth, start, duration = self._ramp
            into = np.clip((local - day * DAY_S - start) / duration, 0.0, 1.0)
            shape = shape * (1.0 - depth * (1.0 - into))
        if self._batch is not None:
            shape = shape + self._batch_extra(local)
        return shape

    def _batch_extra(self, local: float) -> FloatArray:
        assert self._batch is not None
        start, duration, extra, jitter = self._batch
        # Night k of a circuit runs from its start time on local day k; its window begins up to
        # ``jitter`` later and ends before the next night's start (duration + jitter <= 24 h).
        night = np.floor((local - start) / DAY_S)
        out = np.zeros(self._n)
        for k in np.unique(night):
            rows = night == k
            begin = k * DAY_S + start[rows] + jitter[rows] * self._night_jitter(int(k))[rows]
            inside = (local >= begin) & (local < begin + duration[rows])
            out[rows] = np.where(inside, extra[rows], 0.0)
        return out

    def _night_jitter(self, night: int) -> FloatArray:
        """Per-circuit delays in [0, 1) of the batch start on a night (fixed by the seed)."""
        cached = self._jitter_cache.get(night)
        if cached is None:
            rng = np.random.default_rng([self._seed, _JITTER_SEED, night + 1_000_000])
            cached = rng.uniform(0.0, 1.0, size=self._n)
            if len(self._jitter_cache) > 8:
                self._jitter_cache.clear()
            self._jitter_cache[night] = cached
        return cached

    def expected(self, t_s: float) -> FloatArray:
        """Noise-free demand at ``t_s`` (draws nothing; for sizing plants and for tests)."""
        base = self.level(t_s) * self.shape(t_s)
        if self._has_trend:
            base = base * (1.0 + self._trend * (t_s / DAY_S))
        if self._steps or self._ramps:
            base = base + self.extra(t_s)
        return np.maximum(base, 0.0)

    # -- noise -----------------------------------------------------------------------------

    def _noise_term(self, t_s: float, z: FloatArray) -> FloatArray:
        """``noise`` x burst factor x e(t), e the unit-variance AR(1) innovation-driven noise."""
        e = z
        if self._tau is not None:
            if self._e is None or self._t_prev is None or t_s <= self._t_prev:
                self._e = z.copy()
            else:
                with np.errstate(divide="ignore"):
                    phi = np.where(self._tau > 0, np.exp(-(t_s - self._t_prev) / self._tau), 0.0)
                self._e = phi * self._e + np.sqrt(1.0 - phi * phi) * z
            e = self._e
        self._t_prev = t_s
        if self._burst_marks:
            return self._noise * self._bursts(t_s) * e
        return self._noise * e

    def _bursts(self, t_s: float) -> FloatArray:
        if t_s < self._burst_t:
            self._reset_bursts()
        self._burst_t = t_s
        marks = self._burst_marks
        while self._burst_k < len(marks) and marks[self._burst_k][0] <= t_s:
            _, i, delta = marks[self._burst_k]
            self._burst_active[i] += delta
            self._burst_k += 1
        return np.where(self._burst_active > 0, self._burst_factor, 1.0)

    def demand(self, t_s: float) -> FloatArray:
        """Draw this step's demand; call exactly once per physics step."""
        z = self._rng.standard_normal(self._n)
        base = self.level(t_s) * self.shape(t_s) * (1.0 + self._noise_term(t_s, z))
        if self._has_trend:
            base *= 1.0 + self._trend * (t_s / DAY_S)
        if self._steps or self._ramps:
            base += self.extra(t_s)
        return np.maximum(base, 0.0)
