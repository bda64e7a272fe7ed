"""Load forecasts (P10/P50/P90) for every ATS, MPDU and circuit current.

The planner and the policy act on the *future* load, not today's: a circuit is moved before its
MPDU crosses the continuous limit, and announced maintenance is planned around. Chosen by
measurement on real half-hourly demand (docs/forecasting.md has the table and the reasons), the
model is a double-seasonal profile with a direct, per-horizon correction:

* **Seasonal profile** (the expensive fit, at most daily per series, staggered): a recency-
  weighted mean per slot of the week (each weekday its own shape) once two weeks are held; with
  less, one daily shape for working days and one for non-working days. Holidays and other
  non-working days (``non_working_days``, fed from Home Assistant's ``workday``) take Sunday's
  shape. The profile's residuals on the history are computed leave-one-out, so everything fitted
  on them is fitted on honest, out-of-sample errors.
* **Direct correction** per lead time ``h`` (statsmodels ``WLS``, recent data weighted more):
  the residual ``h`` steps ahead regressed on the newest residual, the last hour's and the last
  day's mean residual and the residual at the same time of the previous day (these two only
  once a day type holds three days: two days' leave-one-out residuals mirror each other). Levels
  only, no slope: the weights come from the data and fade with lead time where the data say so.
  On a day type the profile has never seen, the present level is followed instead.
* **Trend and level shift** (cheap update, every forecast): a slope that is unusual against the
  slopes the history shows is carried at most as far ahead as the window it was measured on; a
  step far beyond the residual noise (circuits moved) is followed as a new level.
* **P10/P90 per lead time** from the empirical quantiles of the correction's out-of-sample errors
  on the history (not from Gaussian theory), widened for day types the history has not shown.
* Announced work (``known``) is subtracted from history and added back to the forecast.

Memory is bounded by a ring buffer of resampled bins (sum, count), 42 days by default (the weekly
shape needs several weeks). statsmodels is imported lazily, at the first fit; fitting is blocking
numerical work that the Home Assistant layer runs in the executor.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

from .load_profile import SeasonalProfile

type FloatArray = npt.NDArray[np.float64]
type IntArray = npt.NDArray[np.int64]
type Quantile = Literal["p10", "p50", "p90"]
type KnownLoad = Callable[[FloatArray], FloatArray]
"""Announced extra amps at the given epoch times (past and future)."""
type NonWorkingDays = Callable[[dt.date], bool]
"""Whether a local calendar date is a holiday or another non-working day (besides weekends)."""

DAY_S: Final = 86400.0
H_S: Final = 3600.0
WEEK_S: Final = 7 * DAY_S
Z90: Final = 1.2815515655446004
"""Standard normal 90 % quantile: P10/P90 = P50 -/+ Z90 sigma."""
WEEKLY_MIN_S: Final = 21 * DAY_S
"""Each weekday its own shape once every weekday has been seen three times (with two, the
leave-one-out residuals of a weekday rest on a single other day)."""
PROFILE_TAU_S: Final = 21 * DAY_S
"""Recency weighting of the profile and the correction: weight exp(-age / tau)."""
MAX_GAP_S: Final = 3 * H_S
"""Gaps up to this long are interpolated; longer ones stay missing."""
QUANTILES: Final = (0.08, 0.92)
"""Levels of the history's errors that become P10 and P90."""
LEVEL_SPREAD: Final = {"level": 0.35, "short": 0.2, "daily": 0.15, "weekly": 0.15}
"""P10/P90 half-width (share of the level) when the history is too short to test any lead."""
MODEL_NAMES: Final = {
    "weekly": "weekly-profile",
    "daily": "daily-profile",
    "short": "short",
    "level": "fallback-mean",
}
"""``Forecast.model`` per tier; ``fallback-mean`` (no daily shape yet) is the name the Home
Assistant layer knows (prediction.py)."""
SHORT_HISTORY_DAYS: Final = 2.0
"""Band widening 1 + this / days of history (x1.7 at 3 days, x1.05 at 42)."""
CLIP_K: Final = 5.0
"""Residuals beyond this many robust standard deviations are clipped for the correction."""
Z_Q: Final = 1.4050715603096329
"""Standard normal quantile at QUANTILES[1] (for the single-sample noise)."""
MIN_ROWS: Final = 48
"""Fewest out-of-sample errors a lead time's correction and quantiles are fitted on."""
SLOPE_WINDOWS_S: Final = (3 * H_S, 6 * H_S)
"""Windows a recent slope is measured on; it is carried at most as far as its window."""
SLOPE_K: Final = 3.0
"""A recent slope counts only beyond this many standard deviations of the history's slopes."""
SHIFT_K: Final = 4.0
"""A level shift counts only beyond this many residual standard deviations."""
UNSEEN_DAY_FRACTION: Final = 0.08
"""Extra half-width (share of the level) for a day type the history has not shown."""


@dataclass(frozen=True, slots=True)
class Forecast:
    """A load forecast on a regular grid starting one step after the time it was made."""

    start_s: float
    step_s: float
    p10: FloatArray
    p50: FloatArray
    p90: FloatArray
    model: str

    def times(self) -> FloatArray:
        """Epoch seconds of every point."""
        return self.start_s + self.step_s * np.arange(len(self.p50), dtype=np.float64)

    def _series(self, quantile: Quantile) -> FloatArray:
        if quantile == "p10":
            return self.p10
        if quantile == "p90":
            return self.p90
        return self.p50

    def value_at(self, t_s: float, quantile: Quantile = "p50") -> float:
        """Linear interpolation at ``t_s``, clamped to the first/last point."""
        series = self._series(quantile)
        if len(series) == 0:
            return math.nan
        return float(np.interp(t_s, self.times(), series))

    def peak(self, quantile: Quantile = "p90", until_s: float | None = None) -> tuple[float, float]:
        """(time, value) of the highest point, optionally only up to ``until_s``."""
        series = self._series(quantile)
        times = self.times()
        if until_s is not None:
            keep = times <= until_s
            if not np.any(keep):
                keep[0] = True
            series, times = series[keep], times[keep]
        i = int(np.argmax(series))
        return float(times[i]), float(series[i])

    def first_crossing(self, limit: float, quantile: Quantile = "p90") -> float | None:
        """When the forecast first reaches ``limit`` (interpolated), or None."""
        series = self._series(quantile)
        above = np.flatnonzero(series >= limit)
        if len(above) == 0:
            return None
        i = int(above[0])
        times = self.times()
        if i == 0:
            return float(times[0])
        lo, hi = float(series[i - 1]), float(series[i])
        frac = (limit - lo) / (hi - lo) if hi > lo else 1.0
        return float(times[i - 1] + frac * self.step_s)

    def as_dict(self, max_points: int | None = None) -> dict[str, Any]:
        """JSON-safe form; ``max_points`` thins the grid (every k-th point)."""
        stride = 1
        n = len(self.p50)
        if max_points is not None and max_points > 0 and n > max_points:
            stride = math.ceil(n / max_points)

        def values(a: FloatArray) -> list[float | None]:
            return [round(float(v), 3) if math.isfinite(v) else None for v in a[::stride]]

        return {
            "start_s": self.start_s,
            "step_s": self.step_s * stride,
            "model": self.model,
            "p10": values(self.p10),
            "p50": values(self.p50),
            "p90": values(self.p90),
        }


def _fill_gaps(y: FloatArray, max_gap: int) -> FloatArray:
    """``y`` with interior runs of NaN up to ``max_gap`` long linearly interpolated."""
    ok = np.isfinite(y)
    if bool(ok.all()) or int(ok.sum()) < 2:
        return y
    idx = np.arange(len(y))
    filled = np.interp(idx, idx[ok], y[ok])
    # Length of the NaN run each position belongs to (0 for finite values).
    nan = (~ok).astype(np.int64)
    run_id = np.cumsum(ok)  # constant along a run of NaN
    run_len = np.bincount(run_id, weights=nan)[run_id]
    first, last = int(np.argmax(ok)), len(y) - 1 - int(np.argmax(ok[::-1]))
    inner = (idx > first) & (idx < last)
    use = (~ok) & inner & (run_len <= max_gap)
    out = y.copy()
    out[use] = filled[use]
    return out


def _trailing_mean(r: FloatArray, n: int, min_count: int) -> FloatArray:
    """Mean of the finite values of ``r[t-n+1 .. t]`` for every ``t`` (NaN: too few)."""
    ok = np.isfinite(r)
    cs = np.concatenate(([0.0], np.cumsum(np.where(ok, r, 0.0))))
    cn = np.concatenate(([0], np.cumsum(ok)))
    hi = np.arange(1, len(r) + 1)
    lo = np.maximum(hi - n, 0)
    count = cn[hi] - cn[lo]
    mean: FloatArray = np.where(
        count >= min_count, (cs[hi] - cs[lo]) / np.maximum(count, 1), np.nan
    )
    return mean


def _trailing_slope(r: FloatArray, n: int) -> FloatArray:
    """Least-squares slope (per bin) of ``r`` over the ``n`` bins ending at every ``t`` (NaN
    where any of them is missing)."""
    out = np.full(len(r), np.nan)
    if len(r) < n or n < 3:
        return out
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    kernel = x[::-1] / float(np.sum(x * x))
    ok = np.isfinite(r)
    conv = np.convolve(np.where(ok, r, 0.0), kernel, mode="valid")
    full = np.convolve(ok.astype(np.float64), np.ones(n), mode="valid") >= n - 0.5
    out[n - 1 :] = np.where(full, conv, np.nan)
    return out


def _robust_sd(x: FloatArray) -> float:
    """Standard deviation from the median absolute deviation (outliers do not inflate it)."""
    v = x[np.isfinite(x)]
    if len(v) == 0:
        return 0.0
    return 1.4826 * float(np.median(np.abs(v - np.median(v))))


def _weighted_quantiles(
    x: FloatArray, w: FloatArray, q: tuple[float, float]
) -> tuple[float, float]:
    """Quantiles of ``x`` with weights ``w`` (recent errors count more)."""
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    cw /= cw[-1]
    xs = x[order]
    return float(np.interp(q[0], cw, xs)), float(np.interp(q[1], cw, xs))


def _anchors(horizon: int) -> IntArray:
    """Lead times (in bins) whose corrections are fitted; the others are interpolated."""
    base = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 80, 96, 128, 160, 192, 256, 384, 512]
    out = sorted({h for h in base if h < horizon} | {horizon})
    return np.asarray(out, dtype=np.int64)


@dataclass(slots=True)
class _Fit:
    """The slow part: seasonal profile, per-horizon corrections and error quantiles."""

    fit_s: float
    last_bin: int
    """Newest bin in the fitted history (the profile holds every bin up to it)."""
    mode: Literal["weekly", "daily", "short", "level"]
    history_s: float
    level: float
    """Mean load of the history (for the structural widening)."""
    profile: SeasonalProfile
    coef: FloatArray
    """(horizon bins, 4) correction weights for lead times 1..horizon."""
    q10: FloatArray
    q90: FloatArray
    """Error quantiles per lead time (added to the P50)."""
    slope_sd: tuple[float, ...]
    """Standard deviation of the history's 3-hour residual slopes (per bin)."""
    sigma_r: float
    clip: float
    """Residuals are clipped to +/- this before the correction (0: not clipped)."""
    """Standard deviation of the profile residuals."""
    scale: FloatArray
    """Error scale per time of day (median 1): the quantiles are in these units."""
    tested: bool
    """Whether the quantiles come from out-of-sample errors (else: preset spreads)."""
    model: str


class LoadForecaster:
    """Forecaster for one load series (an ATS, MPDU or circuit current)."""

    def __init__(
        self,
        *,
        resample_s: float = 900.0,
        horizon_s: float = 86400.0,
        refit_interval_s: float = 86400.0,
        max_history_s: float = 42 * 86400.0,
        utc_offset_s: float = 0.0,
        refit_phase_s: float = 0.0,
        non_working_days: NonWorkingDays | Collection[dt.date] | None = None,
    ) -> None:
        if resample_s <= 0 or horizon_s <= 0 or max_history_s < resample_s:
            raise ValueError("resample_s, horizon_s and max_history_s must be positive")
        self.resample_s = float(resample_s)
        self.horizon_s = float(horizon_s)
        self.refit_interval_s = float(refit_interval_s)
        self.max_history_s = float(max_history_s)
        self.utc_offset_s = float(utc_offset_s)
        """Local wall clock offset, for the day of the week and the time of day."""
        self.refit_phase_s = float(refit_phase_s)
        """Refits happen when ``now - refit_phase_s`` crosses a multiple of the interval: give
        every series its own phase and the fits spread over the day."""
        self._non_working: NonWorkingDays | None = None
        self.set_non_working_days(non_working_days)
        self._bpd = max(1, round(DAY_S / self.resample_s))
        self._cap = max(4, math.ceil(max_history_s / resample_s))
        # The ring is most of a forecaster's memory (1,000 circuits in a hall). Slot
        # ``b % cap`` holds bin ``b`` of the window (the ``cap`` bins up to the newest one seen)
        # or nothing (count 0): slots are emptied as the newest bin moves past them, so the bin
        # a slot stands for follows from the newest bin and needs no array of its own
        # (``_slot_bins``). A bin's sum of readings keeps float32's 7 digits (the means it gives
        # differ from float64's by ~1e-7 relative). A bin's sample count fits 16 bits at any
        # usual cadence (a 15-minute bin holds 180 polls at 5 s); a bin that would hold more
        # widens the counts to 32 bits first (``_fit_count``). 24 kB at 42 days of 15-minute bins.
        self._sum = np.zeros(self._cap, dtype=np.float32)
        self._count: npt.NDArray[np.integer[Any]] = np.zeros(self._cap, dtype=np.uint16)
        self._count_max = int(np.iinfo(np.uint16).max)
        self._last_bin = -1
        self._fit: _Fit | None = None
        # Where in its bin a sample falls, on average: a bin's mean stands for that instant
        # (the middle for 5 s polls, the start for half-hourly meter readings).
        self._off_sum = 0.0
        self._off_n = 0
        # The bin being filled, in Python numbers (observe runs once per circuit and poll: numpy
        # scalar indexing there cost more than the rest of a poll); see _flush.
        self._open_bin = -1
        self._open_slot = 0
        self._open_sum = 0.0
        self._open_count = 0
        # Spread of single samples around their bin mean (a forecast is met by single
        # readings): pooled over the bins, from the samples of each bin seen together.
        self._new_n = 0
        self._new_sum = 0.0
        self._new_sumsq = 0.0
        self._within_ss = 0.0
        self._within_dof = 0.0

    def set_non_working_days(self, days: NonWorkingDays | Collection[dt.date] | None) -> None:
        """Holidays and other non-working days: a callable on local dates, or a set of them.

        A non-working weekday takes Sunday's shape; the calendar is read at every fit and
        forecast, so a callable may learn new dates at any time."""
        if days is None:
            self._non_working = None
        elif callable(days):
            self._non_working = days
        else:
            frozen = frozenset(days)
            self._non_working = frozen.__contains__

    # ------------------------------------------------------------------ data
    def observe(self, t_s: float, value: float) -> None:
        """Add one sample (any cadence); NaN or infinite values count as missing."""
        if not (math.isfinite(t_s) and math.isfinite(value)):
            return
        b = math.floor(t_s / self.resample_s)
        if self._last_bin >= 0 and b <= self._last_bin - self._cap:
            return  # older than the ring buffer holds
        if b != self._open_bin:
            self._flush()
            if b > self._last_bin:
                self._advance(b)
            slot = b % self._cap
            self._open_bin = b
            self._open_slot = slot
            # (A bin before 1970 is never stored: _flush leaves it out.)
            self._open_sum = float(self._sum[slot]) if b >= 0 else 0.0
            self._open_count = int(self._count[slot]) if b >= 0 else 0
            self._new_n, self._new_sum, self._new_sumsq = 0, 0.0, 0.0
        # The same additions in the same order as on the arrays: the sums are identical.
        self._open_sum += value
        self._open_count += 1
        self._new_n += 1
        self._new_sum += value
        self._new_sumsq += value * value
        self._off_sum += t_s - b * self.resample_s
        self._off_n += 1
        self._last_bin = max(self._last_bin, b)

    def _advance(self, b: int) -> None:
        """Empty the slots of the bins after the newest one up to ``b``, which is about to be
        the newest: what they held falls out of the window."""
        last = self._last_bin
        if last < 0:
            return  # nothing stored yet (the zeros are untouched pages: leave them so)
        if b - last >= self._cap:
            self._sum[:] = 0.0
            self._count[:] = 0
        elif b - last == 1:
            slot = b % self._cap
            self._sum[slot] = 0.0
            self._count[slot] = 0
        else:
            slots = np.arange(last + 1, b + 1) % self._cap
            self._sum[slots] = 0.0
            self._count[slots] = 0

    def _fit_count(self, most: int) -> None:
        """Widen the sample counts to 32 bits before one of them would exceed 16 bits."""
        if most > self._count_max:
            self._count = self._count.astype(np.int32)
            self._count_max = int(np.iinfo(np.int32).max)

    def _slot_bins(self) -> IntArray:
        """The bin every slot of the ring stands for (valid where its count is not 0)."""
        last = self._last_bin
        bins: IntArray = last - (last - np.arange(self._cap, dtype=np.int64)) % self._cap
        return bins

    def _flush(self) -> None:
        """Write the open bin's sums into the ring buffer (before anything reads it)."""
        if self._open_bin < 0:
            return
        slot = self._open_slot
        self._sum[slot] = self._open_sum
        self._fit_count(self._open_count)
        self._count[slot] = self._open_count
        self._open_bin = -1
        if self._new_n > 1:
            ss = self._new_sumsq - self._new_sum * self._new_sum / self._new_n
            self._within_ss += max(ss, 0.0)
            self._within_dof += self._new_n - 1
        self._new_n = 0

    def observe_many(self, t_s: ArrayLike, values: ArrayLike) -> None:
        """Add many samples at once."""
        self._flush()
        times = np.asarray(t_s, dtype=np.float64).ravel()
        vals = np.asarray(values, dtype=np.float64).ravel()
        if times.shape != vals.shape:
            raise ValueError("t_s and values must have the same length")
        ok = np.isfinite(times) & np.isfinite(vals)
        if not np.any(ok):
            return
        b = np.floor(times[ok] / self.resample_s).astype(np.int64)
        vals = vals[ok]
        times = times[ok]
        last = max(self._last_bin, int(b.max()))
        keep = b > last - self._cap  # what the ring can still hold
        b, vals, times = b[keep], vals[keep], times[keep]
        self._off_sum += float(np.sum(times - b * self.resample_s))
        self._off_n += len(b)
        # Vectorised form of observe(): empty the slots the newest bin moves past, then add
        # per distinct bin (bins before 1970 count for the noise, never in the ring).
        if last > self._last_bin:
            self._advance(last)
        ub, inverse = np.unique(b, return_inverse=True)
        stored = ub >= 0
        slots = ub[stored] % self._cap
        batch_sum = np.bincount(inverse, weights=vals, minlength=len(ub))
        batch_sq = np.bincount(inverse, weights=vals * vals, minlength=len(ub))
        batch_n = np.bincount(inverse, minlength=len(ub)).astype(np.float64)
        many = batch_n > 1
        ss = batch_sq[many] - batch_sum[many] ** 2 / batch_n[many]
        self._within_ss += float(np.sum(np.maximum(ss, 0.0)))
        self._within_dof += float(np.sum(batch_n[many] - 1.0))
        self._sum[slots] += batch_sum[stored]
        added = np.bincount(inverse, minlength=len(ub))[stored]
        if len(slots):
            self._fit_count(int((self._count[slots] + added).max()))
        self._count[slots] += added.astype(self._count.dtype)
        self._last_bin = last

    def _dense(
        self, first_bin: int, end_bin: int, known: KnownLoad | None
    ) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """Bin means over ``[first_bin, end_bin)`` (NaN: no data), announced work subtracted,
        short gaps interpolated; and which bins were observed (not interpolated)."""
        self._flush()
        n = end_bin - first_bin
        y = np.full(max(n, 0), np.nan)
        if n <= 0:
            return y, np.zeros(0, dtype=bool)
        bins = self._slot_bins()
        ok = (bins >= first_bin) & (bins < end_bin) & (self._count > 0)
        idx = bins[ok] - first_bin
        y[idx] = np.divide(self._sum[ok], self._count[ok], dtype=np.float64)
        if known is not None and len(idx):
            y[idx] -= self._known_bins(known, bins[ok])
        observed = np.isfinite(y)
        return _fill_gaps(y, max(1, round(MAX_GAP_S / self.resample_s))), observed

    def _first_bin(self) -> int | None:
        self._flush()
        bins = self._slot_bins()
        ok = (bins >= 0) & (self._count > 0)
        return int(bins[ok].min()) if np.any(ok) else None

    @property
    def history_s(self) -> float:
        """Span of the data held, in seconds."""
        first = self._first_bin()
        if first is None:
            return 0.0
        return float(self._last_bin - first + 1) * self.resample_s

    @property
    def within_var(self) -> float:
        """Variance of single samples around their bin mean (0: one sample per bin)."""
        self._flush()
        return self._within_ss / self._within_dof if self._within_dof > 0 else 0.0

    @property
    def fitted_s(self) -> float | None:
        """When the model in use was fitted (None: not yet)."""
        return None if self._fit is None else self._fit.fit_s

    @property
    def bin_offset_s(self) -> float:
        """The instant a bin's mean stands for, after the bin's start (mean sample offset)."""
        if self._off_n == 0:
            return 0.5 * self.resample_s
        return min(max(self._off_sum / self._off_n, 0.0), self.resample_s)

    def _known_bins(self, known: KnownLoad, bins: IntArray) -> FloatArray:
        """Mean announced load over each bin (5 sub-samples, so edges are weighted right)."""
        offsets = (np.arange(5) + 0.5) / 5.0 * self.resample_s
        t = (bins.astype(np.float64) * self.resample_s)[:, None] + offsets[None, :]
        flat = t.ravel()
        values = np.broadcast_to(np.asarray(known(flat), dtype=np.float64), flat.shape)
        mean: FloatArray = np.nan_to_num(values.reshape(t.shape)).mean(axis=1)
        return mean

    # ----------------------------------------------------------------- calendar
    def _keys(self, bins: IntArray, mode: str) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        """(profile key, non-working day?) of every bin under ``mode``."""
        local = bins.astype(np.float64) * self.resample_s + self.utc_offset_s
        day = np.floor(local / DAY_S).astype(np.int64)
        slot = np.minimum(((local - day * DAY_S) / self.resample_s).astype(np.int64), self._bpd - 1)
        dow = (day + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
        holiday = np.zeros(len(bins), dtype=bool)
        if self._non_working is not None and len(bins):
            epoch = dt.date(1970, 1, 1)
            for d in np.unique(day[dow < 5]).tolist():
                if self._non_working(epoch + dt.timedelta(days=int(d))):
                    holiday |= day == d
        off = (dow >= 5) | holiday
        if mode == "weekly":
            key = np.where(holiday, 6, dow) * self._bpd + slot
        elif mode in ("daily", "short"):
            key = (off if mode == "daily" else np.zeros(len(bins), dtype=bool)) * self._bpd + slot
        else:
            key = np.zeros(len(bins), dtype=np.int64)
        return key.astype(np.int64), off

    def _slots(self, bins: IntArray) -> IntArray:
        """Time-of-day slot of every bin."""
        local = bins.astype(np.float64) * self.resample_s + self.utc_offset_s
        slot = np.floor((local % DAY_S) / self.resample_s).astype(np.int64)
        out: IntArray = np.minimum(slot, self._bpd - 1)
        return out

    def _slot_scale(self, r: FloatArray, slots: IntArray) -> FloatArray:
        """How large the residuals are at each time of day (ramps are harder than nights),
        smoothed over the neighbouring hour and normalised to a median of 1."""
        bpd = self._bpd
        ok = np.isfinite(r)
        if int(ok.sum()) < 4 * bpd:
            return np.ones(bpd)
        ss = np.bincount(slots[ok], weights=r[ok] ** 2, minlength=bpd).astype(np.float64)
        cnt = np.bincount(slots[ok], minlength=bpd).astype(np.float64)
        half = max(1, round(0.5 * H_S / self.resample_s))
        kernel = np.ones(2 * half + 1)
        ss_s = np.convolve(np.concatenate((ss[-half:], ss, ss[:half])), kernel, mode="valid")
        cnt_s = np.convolve(np.concatenate((cnt[-half:], cnt, cnt[:half])), kernel, mode="valid")
        rms = np.sqrt(ss_s / np.maximum(cnt_s, 1.0))
        med = float(np.median(rms[cnt_s > 0])) if np.any(cnt_s > 0) else 0.0
        if med <= 0:
            return np.ones(bpd)
        out: FloatArray = np.clip(rms / med, 0.5, 3.0)
        return out

    @staticmethod
    def _n_keys(mode: str, bpd: int) -> int:
        return {"weekly": 7 * bpd, "daily": 2 * bpd, "short": bpd}.get(mode, 1)

    # ----------------------------------------------------------------- model
    def _weights(self, age_bins: FloatArray) -> FloatArray:
        w: FloatArray = np.exp(-age_bins * self.resample_s / PROFILE_TAU_S)
        return w

    def _features(self, r: FloatArray) -> FloatArray:
        """(n, 3) origin features: newest residual, last hour's and last day's mean."""
        n1 = max(1, round(H_S / self.resample_s))
        f1 = _trailing_mean(r, n1, max(1, n1 // 2))
        fd = _trailing_mean(r, self._bpd, max(1, self._bpd // 2))
        return np.column_stack([r, f1, fd])

    def _same_time(self, h: int) -> int:
        """How far back from the origin the target's time of day was last seen before the
        origin (bins; a day back when the origin itself is at that time)."""
        back = self._bpd * math.ceil(h / self._bpd) - h
        return back if back > 0 else self._bpd

    def _refit(self, now_s: float, known: KnownLoad | None) -> _Fit | None:
        step = self.resample_s
        now_bin = math.floor(now_s / step)
        first = self._first_bin()
        if first is None or first >= now_bin:
            return None  # no complete bin yet: no forecast (not one from a few seconds)
        y, observed = self._dense(first, now_bin, known)
        valid = np.isfinite(y)
        if not np.any(valid):
            return None
        n = len(y)
        bins = first + np.arange(n, dtype=np.int64)
        last_valid = int(np.flatnonzero(valid)[-1])
        span_s = float(last_valid - int(np.argmax(valid)) + 1) * step
        mode: Literal["weekly", "daily", "short", "level"]
        if span_s >= WEEKLY_MIN_S:
            mode = "weekly"
        elif span_s >= 2 * DAY_S:
            mode = "daily"
        elif span_s >= 0.75 * DAY_S:
            mode = "short"
        else:
            mode = "level"
        keys, _off = self._keys(bins, mode)
        slots = self._slots(bins)
        w = self._weights((bins[last_valid] - bins).astype(np.float64))
        level = float(np.mean(y[valid]))
        # Readings coarser than a bin (interpolated bins in between) are smooth already, and a
        # kernel over interpolated neighbours would leak a bin's own value into its profile.
        fine = float(observed.sum()) >= 0.9 * float(valid.sum())
        profile, r = SeasonalProfile.fit(
            y,
            keys,
            slots,
            w,
            self._n_keys(mode, self._bpd),
            self._bpd,
            smooth=fine and mode != "level",
            pooled=mode in ("weekly", "daily"),
        )
        # The spreads that tell an unusual deviation or slope from the usual ones leave the
        # last day out: a trend under way at the refit must not raise its own bar.
        settled = len(r) - self._bpd if len(r) >= 3 * self._bpd else len(r)
        sigma_r = float(np.nanstd(r[:settled])) if np.any(np.isfinite(r[:settled])) else 0.0
        horizon = max(1, math.ceil(self.horizon_s / step) + 1)
        scale = self._slot_scale(r, slots)
        # The correction is fitted on residuals clipped to the usual range: one surge in the
        # history must not teach it that a high day predicts a low one. Forecasts clip alike.
        clip = CLIP_K * _robust_sd(r)
        r_fit = np.clip(r, -clip, clip) if clip > 0 else r
        # With two days of a day type, leave-one-out residuals mirror each other (each day
        # against the other): yesterday's residual and the last day's mean would be fitted as
        # the negative of today's. The day-lag features need three days of one day type.
        n_rows = max(1, self._n_keys(mode, self._bpd) // self._bpd)
        days_per_row = np.bincount(keys[valid] // self._bpd, minlength=n_rows) / self._bpd
        day_lags = float(days_per_row.max()) >= 3.0
        coef, q10, q90, tested = self._fit_corrections(
            r_fit, observed, scale[slots], horizon, level, mode, day_lags=day_lags
        )
        sds = []
        for window_s in SLOPE_WINDOWS_S:
            slopes = _trailing_slope(r, max(3, round(window_s / step)))[:settled]
            ok = np.sum(np.isfinite(slopes)) > 10
            sds.append(float(np.nanstd(slopes)) if ok else math.inf)
        return _Fit(
            fit_s=now_s,
            last_bin=int(bins[last_valid]),
            mode=mode,
            history_s=span_s,
            level=level,
            profile=profile,
            coef=coef,
            q10=q10,
            q90=q90,
            slope_sd=tuple(sds),
            sigma_r=sigma_r,
            clip=clip,
            scale=scale if tested else np.ones(self._bpd),
            tested=tested,
            model=MODEL_NAMES[mode],
        )

    def _fit_corrections(
        self,
        r: FloatArray,
        observed: npt.NDArray[np.bool_],
        scale: FloatArray,
        horizon: int,
        level: float,
        mode: str,
        *,
        day_lags: bool = True,
    ) -> tuple[FloatArray, FloatArray, FloatArray, bool]:
        """Per lead time: correction weights and the P10/P90 error quantiles, fitted (WLS, recent
        origins weighted more) on the leave-one-out residuals at anchor lead times and
        interpolated in between. Origins and targets are observed bins only: an interpolated
        bin would leak the next reading into the origin (a forecast never has that)."""
        from statsmodels.regression.linear_model import WLS  # lazy: ~60 MB

        n = len(r)
        feats = self._features(r)
        if not day_lags:
            feats[:, 2] = 0.0  # the last day's mean (see _refit): not fitted
        w_all = self._weights(np.arange(n - 1, -1, -1, dtype=np.float64))
        anchors = _anchors(horizon)
        got: list[tuple[int, FloatArray, float, float]] = []
        for h in anchors.tolist():
            if n <= h + MIN_ROWS:
                break
            back = self._same_time(h)
            same = np.full(n, np.nan)
            if not day_lags:
                same[:] = 0.0
            elif back < n:
                same[back:] = r[: n - back] if back > 0 else r
            x = np.column_stack([feats, same])[: n - h]
            target = r[h:]
            ok = np.isfinite(target) & np.all(np.isfinite(x), axis=1)
            ok &= observed[h:] & observed[: n - h]
            if int(ok.sum()) < MIN_ROWS:
                continue  # e.g. odd lead times on readings every other bin
            # (hasconst=False: no constant column, and statsmodels need not look for one)
            # (Collinear features, e.g. a flat short history: the pseudo-inverse copes, so
            # statsmodels' warning would only be noise in Home Assistant's log.)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = WLS(target[ok], x[ok], weights=w_all[: n - h][ok], hasconst=False).fit()
            beta = np.asarray(res.params, dtype=np.float64)
            err = (target[ok] - x[ok] @ beta) / scale[h:][ok]
            lo, hi = _weighted_quantiles(err, w_all[: n - h][ok], QUANTILES)
            got.append((h, beta, float(lo), float(hi)))
        coef = np.zeros((horizon, 4))
        q10 = np.zeros(horizon)
        q90 = np.zeros(horizon)
        leads = np.arange(1, horizon + 1, dtype=np.float64)
        if not got:
            # Too short for any out-of-sample error: the profile alone, wide bands.
            # Less than a day cannot show the daily swing (commonly +/- a third of the level).
            diffs = np.diff(r)
            noise = float(np.nanstd(diffs)) if np.sum(np.isfinite(diffs)) > 2 else 0.0
            # The unknown swing shows over hours, not at once: the band opens with lead time.
            frac = np.minimum(1.0, 0.25 + leads * self.resample_s / (12 * H_S))
            spread = np.maximum(
                Z90 * noise * np.sqrt(frac), (LEVEL_SPREAD[mode] * abs(level)) * frac
            )
            q10[:] = -spread
            q90[:] = spread
            # Nothing tested either how a deviation fades: the newest one holds for the next
            # hours and fades towards the history's mean over the day.
            coef[:, 0] = np.exp(-leads * self.resample_s / (6 * H_S))
            return coef, q10, q90, False  # absolute: the slot scale is 1 then
        hs = np.asarray([g[0] for g in got], dtype=np.float64)
        for j in range(4):
            coef[:, j] = np.interp(leads, hs, [g[1][j] for g in got])
        # Uncertainty does not shrink with lead time: a lead time whose errors happened to be
        # small on this history borrows the spread of the shorter ones.
        q10[:] = np.interp(leads, hs, np.minimum.accumulate([g[2] for g in got]))
        q90[:] = np.interp(leads, hs, np.maximum.accumulate([g[3] for g in got]))
        # Lead times beyond what the history could test: the last tested errors, growing.
        h_last = hs[-1]
        grow = np.minimum(np.sqrt(np.maximum(leads / h_last, 1.0)), 3.0)
        q10 *= grow
        q90 *= grow
        return coef, q10, q90, True

    def _needs_refit(self, now_s: float) -> bool:
        fit = self._fit
        if fit is None or now_s < fit.fit_s:
            return True
        # Young series: refit sooner while the history is still growing fast.
        if fit.history_s < 4 * DAY_S and self.history_s >= 1.25 * fit.history_s + H_S:
            return True
        period = self.refit_interval_s
        if period <= 0:
            return True
        phase = self.refit_phase_s
        return math.floor((now_s - phase) / period) > math.floor((fit.fit_s - phase) / period)

    # -------------------------------------------------------------- forecast
    def forecast(
        self, now_s: float, *, known: KnownLoad | None = None, horizon_s: float | None = None
    ) -> Forecast:
        """P10/P50/P90 on a grid ``now + k * resample_s``; refits when the interval has passed."""
        step = self.resample_s
        horizon = self.horizon_s if horizon_s is None else float(horizon_s)
        n_points = max(1, math.ceil(horizon / step))
        times = now_s + step * np.arange(1, n_points + 1, dtype=np.float64)
        extra = np.zeros(n_points)
        if known is not None:
            extra = np.nan_to_num(
                np.broadcast_to(np.asarray(known(times), dtype=np.float64), times.shape)
            )
        if self._needs_refit(now_s):
            fit = self._refit(now_s, known)
            if fit is not None:
                self._fit = fit
        fit = self._fit
        if fit is None:
            return Forecast(now_s + step, step, extra.copy(), extra.copy(), extra.copy(), "no-data")
        lo, p50, hi = self._predict(fit, now_s, times, known)
        p50 = np.maximum(p50 + extra, 0.0)
        lo = np.clip(lo + extra, 0.0, p50)
        hi = np.maximum(hi + extra, p50)
        return Forecast(now_s + step, step, lo, p50, hi, fit.model)

    def _predict(
        self, fit: _Fit, now_s: float, times: FloatArray, known: KnownLoad | None
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The cheap update: recent residuals under the stored profile, corrected per lead."""
        step = self.resample_s
        bpd = self._bpd
        now_bin = math.floor(now_s / step)
        windows = [max(3, round(w / step)) for w in SLOPE_WINDOWS_S]
        start = now_bin - bpd - max(windows) - 4
        y, _observed = self._dense(start, now_bin + 1, known)
        bins = start + np.arange(len(y), dtype=np.int64)
        keys, _ = self._keys(bins, fit.mode)
        slots = self._slots(bins)
        prof = fit.profile.values(keys, slots)
        # Bins inside the fitted history are in the profile: take them out again (as in the
        # fit's leave-one-out residuals).
        inside = (bins <= fit.last_bin) & np.isfinite(y)
        if np.any(inside):
            wb = self._weights((fit.last_bin - bins[inside]).astype(np.float64))
            loo = fit.profile.loo_values(keys[inside], slots[inside], y[inside], wb)
            prof[inside] = np.where(np.isfinite(loo), loo, prof[inside])
        r = y - prof
        finite = np.flatnonzero(np.isfinite(r))
        origin = int(finite[-1]) if len(finite) else len(r) - 1
        shift = 0.0
        slope = 0.0
        n_slope = windows[0]
        if len(finite):
            step_a, since = self._level_shift(r[: origin + 1], fit.sigma_r)
            if step_a != 0.0:
                # The present level is where the residuals sit since the step (back to 0
                # after a surge ended, the new offset after circuits moved).
                # (The bin the step fell in holds a mix of both levels: left out when
                # there are others.)
                settled_since = since - 1 if since >= 3 else since
                shift = float(np.mean(r[origin + 1 - settled_since : origin + 1]))
                r = r.copy()
                r[origin + 1 - since : origin + 1] -= shift
            # The shortest window with an unusual slope gives the slope (a longer one dilutes
            # a young trend); it is carried as far as the longest window that also finds one
            # (a trend seen for 6 h is carried 6 h).
            for n_w, sd_w in zip(windows, fit.slope_sd, strict=True):
                s_w, _z = self._recent_slope(r[: origin + 1], n_w, sd_w)
                if s_w != 0.0 and (slope == 0.0 or s_w * slope > 0):
                    slope = slope if slope != 0.0 else s_w
                    n_slope = n_w
            if shift == 0.0:
                # A deviation far beyond any the history shows (a trend well under way, load
                # added without a step) is not what the correction was fitted on: it is
                # followed as the present level (at the origin), not faded.
                n1 = max(1, round(H_S / step))
                last = r[max(0, origin + 1 - n1) : origin + 1]
                if np.any(np.isfinite(last)):
                    m = float(np.nanmean(last))
                    if abs(m) > SHIFT_K * fit.sigma_r and fit.sigma_r > 0:
                        shift = m + slope * (len(last) - 1) / 2.0
                        r = r - shift
        # A day type the profile has never seen (a first working day after a weekend-only
        # history): its residuals are not the kind the correction was fitted on, and they say
        # how this day differs from the profile's guess. The present level (the last hour's
        # mean residual) is followed on the days of that type, at every size of deviation.
        unseen_level = 0.0
        if (
            len(finite)
            and shift == 0.0
            and not bool(fit.profile.seen(keys[origin : origin + 1])[0])
        ):
            n1 = max(1, round(H_S / step))
            last = r[max(0, origin + 1 - n1) : origin + 1]
            if np.any(np.isfinite(last)):
                unseen_level = float(np.nanmean(last)) + slope * (len(last) - 1) / 2.0
        if fit.clip > 0:
            r = np.clip(r, -fit.clip, fit.clip)
        feats = np.nan_to_num(self._features(r[: origin + 1])[-1]) if len(finite) else np.zeros(3)
        origin_bin = int(bins[origin])
        # Target bins from the one after the origin to past the last grid time.
        off = self.bin_offset_s
        last_needed = math.ceil((float(times[-1]) - off) / step) + 1
        targets = np.arange(origin_bin + 1, max(last_needed, origin_bin + 1) + 1, dtype=np.int64)
        lead = (targets - origin_bin).astype(np.int64)
        h_idx = np.minimum(lead, len(fit.coef)) - 1
        back = self._bpd * -(-lead // self._bpd) - lead  # vectorised _same_time
        back = np.where(back > 0, back, self._bpd)
        same_idx = origin - back
        same = np.where((same_idx >= 0), r[np.clip(same_idx, 0, len(r) - 1)], np.nan)
        same = np.nan_to_num(same)
        c = fit.coef[h_idx]
        corr = c[:, :3] @ feats + c[:, 3] * same
        trend = slope * np.minimum(lead, n_slope).astype(np.float64)
        t_keys, _ = self._keys(targets, fit.mode)
        seasonal = fit.profile.values(t_keys, self._slots(targets))
        seasonal = np.where(np.isfinite(seasonal), seasonal, fit.level)
        t_seen = fit.profile.seen(t_keys)
        if unseen_level != 0.0:
            corr = np.where(t_seen, corr, unseen_level)
        base = seasonal + corr + shift + trend
        widen = np.where(t_seen, 0.0, UNSEEN_DAY_FRACTION * abs(fit.level))
        sc = fit.scale[self._slots(targets)]
        # A forecast is met by single readings: add their spread around the bin mean.
        noise = Z_Q**2 * self.within_var
        # Quantiles from a few days of errors are themselves uncertain (and those days are
        # all the history knows): wider the shorter the history, ~5 % at six weeks.
        # (Untested bands, from a history shorter than any lead, are wide by design already.)
        short = 1.0 + SHORT_HISTORY_DAYS * DAY_S / max(fit.history_s, DAY_S) if fit.tested else 1.0
        lo_b = base - np.sqrt((fit.q10[h_idx] * sc * short) ** 2 + noise) - widen
        hi_b = base + np.sqrt((fit.q90[h_idx] * sc * short) ** 2 + noise) + widen
        return self._on_grid(times, targets, off, (lo_b, base, hi_b))

    def _on_grid(
        self,
        times: FloatArray,
        targets: IntArray,
        off: float,
        series: tuple[FloatArray, FloatArray, FloatArray],
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Bin values at ``times``: linear between the instants the bins stand for, except
        across midnight (a weekday's last bin and a Saturday's first are different days),
        where the bin holding the time counts."""
        step = self.resample_s
        t_bins = targets.astype(np.float64) * step + off
        idx = np.clip(np.searchsorted(t_bins, times), 1, len(t_bins) - 1)
        day = np.floor((targets.astype(np.float64) * step + self.utc_offset_s) / DAY_S)
        split = day[idx - 1] != day[idx]
        own = np.clip(np.floor(times / step).astype(np.int64) - targets[0], 0, len(t_bins) - 1)
        out = []
        for values in series:
            v: FloatArray = np.interp(times, t_bins, values)
            out.append(np.where(split, values[own], v) if np.any(split) else v)
        return out[0], out[1], out[2]

    @staticmethod
    def _level_shift(r: FloatArray, sigma_r: float) -> tuple[float, int]:
        """A step in the newest residuals far beyond their noise (circuits moved) and the bins
        since it, else (0, 0)."""
        window = r[-24:] if len(r) >= 24 else r
        if len(window) < 6 or not np.all(np.isfinite(window)) or sigma_r <= 0:
            return 0.0, 0
        k, delta, explained = _best_split(window)
        if abs(delta) > SHIFT_K * sigma_r and explained:
            return delta, k
        return 0.0, 0

    @staticmethod
    def _recent_slope(r: FloatArray, n: int, slope_sd: float) -> tuple[float, float]:
        """The newest ``n``-bin slope, if unusual against the history's (shrunk), else 0; and
        how unusual (in standard deviations)."""
        if len(r) < n or not math.isfinite(slope_sd) or slope_sd <= 0:
            return 0.0, 0.0
        s = float(_trailing_slope(r[-n:], n)[-1])
        if not math.isfinite(s):
            return 0.0, 0.0
        z = abs(s) / slope_sd
        if z <= SLOPE_K:
            return 0.0, z
        return s * (1.0 - (SLOPE_K / z) ** 2), z


def _best_split(r: FloatArray) -> tuple[int, float, bool]:
    """(bins after the best single step in ``r``, its size, whether a step explains ``r`` far
    better than a line)."""
    n = len(r)
    if n < 6:
        return 0, 0.0, False
    tc = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    m = float(np.mean(r))
    slope = float(np.sum(tc * (r - m)) / np.sum(tc * tc))
    ss_line = float(np.sum((r - m - slope * tc) ** 2))
    c1 = np.cumsum(r)
    c2 = np.cumsum(r * r)
    ks = np.arange(2, n - 2)
    pre_n = (n - ks).astype(np.float64)
    pre_s, pre_q = c1[n - ks - 1], c2[n - ks - 1]
    post_s, post_q = c1[-1] - pre_s, c2[-1] - pre_q
    ss = (pre_q - pre_s**2 / pre_n) + (post_q - post_s**2 / ks)
    i = int(np.argmin(ss))
    k = int(ks[i])
    delta = float(post_s[i] / k - pre_s[i] / pre_n[i])
    return k, delta, float(ss[i]) < 0.5 * ss_line
