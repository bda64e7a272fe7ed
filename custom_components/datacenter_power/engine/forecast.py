"""Load forecasts (P10/P50/P90) for every ATS, MPDU and circuit current.

The planner and the policy act on the *future* load, not today's: a circuit is moved before its
MPDU crosses the continuous limit, and announced maintenance is planned around. The design notes
measured the classic seasonal models (Holt-Winters, STL+ARIMA, ETS) at 0.7-80 s per fit, far too
slow for ~40 series refitted in accelerated time, so the model here is a linear regression
(ordinary least squares by QR, as statsmodels' ``OLS.fit(method="qr")`` computes it) on
resampled data:

* daily Fourier terms (up to K=4), a weekday/weekend dummy and a global level/trend, refitted
  on a slow cadence (``refit_interval_s``);
* announced work (``known``) subtracted from history and added back to the forecast with
  coefficient 1, because it is given in physical amps;
* at every forecast, a cheap update: the residuals of the newest bins under the stored
  coefficients give a recent local level/trend (shrunk towards zero unless it is significant,
  so a growing load is extrapolated but noise is not) and an AR(2) short-term correction;
* Gaussian intervals from the AR error growth, the parameter uncertainties and the sample noise,
  widened when the history is short (a day of data cannot show the weekly shape).

Memory is bounded by a ring buffer of resampled bins (sum, sum of squares, count), 14 days by
default: the integration's history store keeps 14 days, so that is what a restart can replay,
and at 1,000 circuits the ring is most of the engine's memory (docs/scaling.md, "Memory").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

type FloatArray = npt.NDArray[np.float64]
type Quantile = Literal["p10", "p50", "p90"]
type KnownLoad = Callable[[FloatArray], FloatArray]
"""Announced extra amps at the given epoch times (past and future)."""

DAY_S: Final = 86400.0
H_S: Final = 3600.0
WEEK_S: Final = 7 * DAY_S
Z90: Final = 1.2815515655446004
"""Standard normal 90 % quantile: P10/P90 = P50 -/+ Z90 sigma."""
DAILY_HARMONICS: Final = 4
LOCAL_WINDOW_S: Final = 6 * 3600.0
"""Window of the recent local level/trend estimate."""
SHRINK_T: Final = 2.5
"""A local level or slope is used in full only well beyond this t statistic."""
FORMAT_VERSION: Final = 1


def _shrink(estimate: float, se: float) -> float:
    """James-Stein-like shrinkage: keep a significant estimate, drop an insignificant one."""
    if se <= 0.0 or not math.isfinite(estimate):
        return estimate if math.isfinite(estimate) else 0.0
    t = abs(estimate) / se
    if t <= SHRINK_T:
        return 0.0
    return estimate * (1.0 - (SHRINK_T / t) ** 2)


def _local_line(
    r: FloatArray, tau: FloatArray, sigma_e: float
) -> tuple[float, float, float, float]:
    """Recent level and slope of the residuals: (level at tau=0, slope per bin, their variances).

    Hand-written two-parameter least squares (an OLS object per forecast would cost more than
    the whole cheap update). Slopes are tried on several trailing windows and the most
    significant one wins, so a ramp that started an hour ago is not diluted by a flat 6 h window;
    each is shrunk towards zero unless clearly significant. After a level shift only the bins
    since the shift count.
    """
    n = len(r)
    floor2 = (0.5 * max(sigma_e, 1e-9)) ** 2
    if n < 6:
        m = float(np.mean(r[-2:]))
        return _shrink(m, math.sqrt(max(floor2 * 4, 1e-18))), 0.0, floor2 * 4, 0.0
    # Level shift (a tripped breaker, circuits moved, a weekday after a weekend-only history):
    # the best single change point, if a step explains the window far better than a line. Only
    # the bins after it describe the present.
    k = _change_point(r, floor2)
    if k is not None:
        r, tau, n = r[-k:], tau[-k:], k
        if n < 6:
            s2 = max(float(np.var(r)) * n / max(n - 1, 1), floor2)
            return float(np.mean(r)), 0.0, s2 / n, 0.0
    best: tuple[float, float, float, float] | None = None
    best_t = -1.0
    for w in (8, 12, n):
        if w > n or (best is not None and w == n and n <= 12):
            continue
        # Short windows are tried too, so ask a little more of them (multiple looks).
        cand = _fit_line(r[-w:], tau[-w:], floor2, 1.0 if w == n else 1.25)
        t_stat = abs(cand[1]) / math.sqrt(cand[3]) if cand[3] > 0 else -1.0
        if best is None or t_stat > best_t:
            best, best_t = cand, t_stat
    assert best is not None
    return best


def _change_point(r: FloatArray, floor2: float) -> int | None:
    """Bins since the most convincing step in ``r`` (None when a line or noise explains it)."""
    n = len(r)
    if n < 6:
        return None
    tc = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    m = float(np.mean(r))
    slope = float(np.sum(tc * (r - m)) / np.sum(tc * tc))
    ss_line = float(np.sum((r - m - slope * tc) ** 2))
    # Two-means model for every split, from cumulative sums (k = bins after the split).
    c1 = np.cumsum(r)
    c2 = np.cumsum(r * r)
    ks = np.arange(2, n - 2)
    pre_n = (n - ks).astype(np.float64)
    pre_s, pre_q = c1[n - ks - 1], c2[n - ks - 1]
    post_s, post_q = c1[-1] - pre_s, c2[-1] - pre_q
    ss = (pre_q - pre_s**2 / pre_n) + (post_q - post_s**2 / ks)
    i = int(np.argmin(ss))
    k = int(ks[i])
    ss_step = float(ss[i])
    sigma2 = max(ss_step / (n - 2), floor2)
    delta = float(post_s[i] / k - pre_s[i] / pre_n[i])
    se = math.sqrt(sigma2 * (1.0 / k + 1.0 / pre_n[i]))
    if abs(delta) > 5.0 * se and ss_step < 0.5 * ss_line:
        return k
    return None


def _fit_line(
    r: FloatArray, tau: FloatArray, floor2: float, strict: float
) -> tuple[float, float, float, float]:
    """(level at tau=0, shrunk slope, level variance, slope variance or 0 when shrunk away)."""
    w = len(r)
    m = float(np.mean(r))
    tc = tau - float(np.mean(tau))
    sxx = float(np.sum(tc * tc))
    s_raw = float(np.sum(tc * (r - m)) / sxx) if sxx > 0 else 0.0
    res = r - m - s_raw * tc
    s2 = max(float(np.sum(res * res)) / max(w - 2, 1), floor2)
    se_s = math.sqrt(s2 / sxx) if sxx > 0 else math.inf
    slope = _shrink(s_raw, se_s * strict) if sxx > 0 else 0.0
    m_used = _shrink(m, math.sqrt(s2 / w))
    level = m_used - slope * float(np.mean(tau))
    return level, slope, s2 / w, (s2 / sxx if slope != 0.0 else 0.0)


def _ar_recursion(
    phi: FloatArray, prev1: float, prev2: float, path: FloatArray, psi: FloatArray
) -> None:
    """Fill ``path[1:]`` (the AR mean from the state ``prev1, prev2``) and ``psi[1:]`` (its
    impulse response, ``psi[0] = 1``) for AR coefficients ``phi`` (0-2 of them).

    Plain float arithmetic in a fixed order, ``(0.0 + phi1 * x1) + phi2 * x2``: the same
    numbers as summing the terms, without an iterator per step (this runs for every circuit
    on every forecast refresh)."""
    coeffs = [float(p) for p in phi.tolist()][:2]
    psi1, psi2 = 1.0, 0.0
    n = len(path)
    if len(coeffs) == 2:
        a, b = coeffs
        for h in range(1, n):
            nxt = 0.0 + a * prev1 + b * prev2
            npsi = 0.0 + a * psi1 + b * psi2
            path[h] = nxt
            psi[h] = npsi
            prev1, prev2 = nxt, prev1
            psi1, psi2 = npsi, psi1
    elif len(coeffs) == 1:
        (a,) = coeffs
        for h in range(1, n):
            prev1 = 0.0 + a * prev1
            psi1 = 0.0 + a * psi1
            path[h] = prev1
            psi[h] = psi1
    else:
        path[1:] = 0.0
        psi[1:] = 0.0


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


@dataclass(slots=True)
class _Fit:
    """Coefficients of the slow seasonal regression, reused between refits."""

    fit_s: float
    """Forecast time at which it was fitted."""
    t_ref: float
    """Epoch origin of the trend regressor (days are counted from here)."""
    harmonics: int
    weekend: bool
    trend: bool
    beta: FloatArray
    cov: FloatArray
    ar: FloatArray
    """AR coefficients of the residuals (0-2 of them)."""
    sigma_e: float
    """AR innovation std of the bin residuals."""
    sigma_r: float
    """Std of the bin residuals."""
    level: float
    """Mean load over the fitted history, for the structural uncertainty."""
    history_s: float
    n_bins: int
    model: str


def _ols_qr(y: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Least squares of ``y`` on ``x`` by QR: (coefficients, their covariance matrix).

    The same operations in the same order as statsmodels' ``OLS(y, x).fit(method="qr")`` with
    its ``cov_params()`` (identical numbers), without importing statsmodels: with the pandas,
    patsy and formulaic it pulls in, that import alone added ~64 MB to Home Assistant's memory
    (docs/scaling.md, "Memory"). The covariance needs more rows than columns (else zeros).
    """
    q, r = np.linalg.qr(x)
    beta: FloatArray = np.linalg.solve(r, np.dot(q.T, y))
    n, k = x.shape
    if n <= k:
        return beta, np.zeros((k, k))
    resid = y - np.dot(x, beta)
    df_resid = n - int(np.linalg.matrix_rank(r))
    scale = float(np.dot(resid, resid)) / df_resid if df_resid > 0 else math.inf
    cov: FloatArray = np.linalg.inv(np.dot(r.T, r)) * scale
    return beta, cov


class LoadForecaster:
    """Forecaster for one load series (an ATS, MPDU or circuit current)."""

    def __init__(
        self,
        *,
        resample_s: float = 900.0,
        horizon_s: float = 86400.0,
        refit_interval_s: float = 21600.0,
        max_history_s: float = 14 * 86400.0,
        utc_offset_s: float = 0.0,
    ) -> None:
        if resample_s <= 0 or horizon_s <= 0 or max_history_s < resample_s:
            raise ValueError("resample_s, horizon_s and max_history_s must be positive")
        self.resample_s = float(resample_s)
        self.horizon_s = float(horizon_s)
        self.refit_interval_s = float(refit_interval_s)
        self.max_history_s = float(max_history_s)
        self.utc_offset_s = float(utc_offset_s)
        """Local wall clock offset, for the weekday/weekend regressor."""
        self._cap = max(4, math.ceil(max_history_s / resample_s))
        self._bin = np.full(self._cap, -1, dtype=np.int64)
        self._sum = np.zeros(self._cap)
        self._sumsq = np.zeros(self._cap)
        # A bin's sample count fits 32 bits (a 15-minute bin holds 180 polls at 5 s).
        self._count = np.zeros(self._cap, dtype=np.int32)
        self._last_bin = -1
        self._fit: _Fit | None = None
        # The bin being filled, in Python numbers (observe runs once per circuit and poll: numpy
        # scalar indexing there cost more than the rest of a poll); see _flush.
        self._open_bin = -1
        self._open_slot = 0
        self._open_sum = 0.0
        self._open_sumsq = 0.0
        self._open_count = 0

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
            slot = b % self._cap
            if self._bin[slot] != b:
                self._bin[slot] = b
                self._sum[slot] = 0.0
                self._sumsq[slot] = 0.0
                self._count[slot] = 0
            self._open_bin = b
            self._open_slot = slot
            self._open_sum = float(self._sum[slot])
            self._open_sumsq = float(self._sumsq[slot])
            self._open_count = int(self._count[slot])
        # The same additions in the same order as on the arrays: the sums are identical.
        self._open_sum += value
        self._open_sumsq += value * value
        self._open_count += 1
        self._last_bin = max(self._last_bin, b)

    def _flush(self) -> None:
        """Write the open bin's sums into the ring buffer (before anything reads it)."""
        if self._open_bin < 0:
            return
        slot = self._open_slot
        self._sum[slot] = self._open_sum
        self._sumsq[slot] = self._open_sumsq
        self._count[slot] = self._open_count
        self._open_bin = -1

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
        last = max(self._last_bin, int(b.max()))
        keep = b > last - self._cap  # what the ring can still hold
        b, vals = b[keep], vals[keep]
        # Vectorised form of observe(): per distinct bin, reset a reused slot, then add.
        ub, inverse = np.unique(b, return_inverse=True)
        slots = ub % self._cap
        stale = self._bin[slots] != ub
        self._sum[slots[stale]] = 0.0
        self._sumsq[slots[stale]] = 0.0
        self._count[slots[stale]] = 0
        self._bin[slots] = ub
        self._sum[slots] += np.bincount(inverse, weights=vals, minlength=len(ub))
        self._sumsq[slots] += np.bincount(inverse, weights=vals * vals, minlength=len(ub))
        self._count[slots] += np.bincount(inverse, minlength=len(ub))
        self._last_bin = last

    def _series(self, until_bin: int) -> tuple[npt.NDArray[np.int64], FloatArray, FloatArray]:
        """(bin index, bin mean, bin count) of valid bins before ``until_bin``, sorted."""
        self._flush()
        ok = (self._bin >= 0) & (self._count > 0) & (self._bin < until_bin)
        ok &= self._bin > until_bin - 1 - self._cap
        bins = self._bin[ok]
        order = np.argsort(bins)
        bins = bins[order]
        count = self._count[ok][order].astype(np.float64)
        mean = self._sum[ok][order] / count
        return bins, mean, count

    def _within_var(self) -> float:
        """Pooled variance of single samples around their bin mean (sample noise)."""
        self._flush()
        ok = (self._bin >= 0) & (self._count > 1)
        if not np.any(ok):
            return 0.0
        n = self._count[ok].astype(np.float64)
        ss = self._sumsq[ok] - self._sum[ok] ** 2 / n
        dof = float(np.sum(n - 1.0))
        return max(0.0, float(np.sum(ss)) / dof) if dof > 0 else 0.0

    @property
    def history_s(self) -> float:
        """Span of the data held, in seconds."""
        self._flush()
        ok = (self._bin >= 0) & (self._count > 0)
        if not np.any(ok):
            return 0.0
        bins = self._bin[ok]
        return float(bins.max() - bins.min() + 1) * self.resample_s

    # ----------------------------------------------------------------- model
    def _design(
        self, t: FloatArray, t_ref: float, harmonics: int, weekend: bool, trend: bool
    ) -> FloatArray:
        cols: list[FloatArray] = [np.ones_like(t)]
        if trend:
            cols.append((t - t_ref) / DAY_S)
        if harmonics:
            phase = 2.0 * np.pi * ((t + self.utc_offset_s) % DAY_S) / DAY_S
            for k in range(1, harmonics + 1):
                cols.extend((np.cos(k * phase), np.sin(k * phase)))
        if weekend:
            cols.append(self._is_weekend(t).astype(np.float64))
        return np.column_stack(cols)

    def _is_weekend(self, t: FloatArray) -> npt.NDArray[np.bool_]:
        day = np.floor((t + self.utc_offset_s) / DAY_S)
        return ((day + 3) % 7) >= 5  # 1970-01-01 was a Thursday

    def _centers(self, bins: npt.NDArray[np.int64]) -> FloatArray:
        return (bins.astype(np.float64) + 0.5) * self.resample_s

    def _known_bins(self, known: KnownLoad | None, bins: npt.NDArray[np.int64]) -> FloatArray:
        """Mean announced load over each bin (5 sub-samples, so edges are weighted right)."""
        if known is None or len(bins) == 0:
            return np.zeros(len(bins))
        offsets = (np.arange(5) + 0.5) / 5.0 * self.resample_s
        t = (bins.astype(np.float64) * self.resample_s)[:, None] + offsets[None, :]
        flat = t.ravel()
        values = np.broadcast_to(np.asarray(known(flat), dtype=np.float64), flat.shape)
        values = values.reshape(t.shape)
        mean: FloatArray = np.nan_to_num(values).mean(axis=1)
        return mean

    def _refit(self, now_s: float, known: KnownLoad | None) -> _Fit | None:
        now_bin = math.floor(now_s / self.resample_s)
        bins, mean, _count = self._series(now_bin)
        n = len(bins)
        if n == 0:
            return None
        t = self._centers(bins)
        y = mean - self._known_bins(known, bins)
        span_s = float(bins[-1] - bins[0] + 1) * self.resample_s
        days = span_s / DAY_S
        # Model tier by the history available: each term needs enough data to be identified.
        if days >= 2.0 and n >= 96:
            harmonics = DAILY_HARMONICS
        elif days >= 0.75 and n >= 24:
            harmonics = 2
        else:
            harmonics = 0
        weekend_mask = self._is_weekend(t)
        bins_per_day = DAY_S / self.resample_s
        weekend = bool(
            weekend_mask.sum() >= bins_per_day / 2 and (~weekend_mask).sum() >= bins_per_day / 2
        )
        trend = days >= 3.0
        t_ref = float(t[-1])
        x = self._design(t, t_ref, harmonics, weekend, trend)
        if n <= x.shape[1] + 2:
            harmonics, weekend, trend = 0, False, False
            x = self._design(t, t_ref, 0, False, False)
        beta, cov = _ols_qr(y, x)
        resid = y - x @ beta
        sigma_r = float(np.std(resid)) if n > 1 else 0.0
        ar, sigma_e = self._fit_ar(bins, resid, sigma_r)
        if harmonics == 0:
            model = "fallback-mean"
        elif harmonics < DAILY_HARMONICS or not weekend:
            model = "fourier-ar-short"
        else:
            model = "fourier-ar"
        return _Fit(
            fit_s=now_s,
            t_ref=t_ref,
            harmonics=harmonics,
            weekend=weekend,
            trend=trend,
            beta=beta,
            cov=cov,
            ar=ar,
            sigma_e=sigma_e,
            sigma_r=sigma_r,
            level=float(np.mean(mean)),
            history_s=span_s,
            n_bins=n,
            model=model,
        )

    @staticmethod
    def _fit_ar(
        bins: npt.NDArray[np.int64], resid: FloatArray, sigma_r: float
    ) -> tuple[FloatArray, float]:
        """AR(2) (or AR(1)) of the residuals on rows whose lags are present (gaps allowed)."""
        if len(bins) == 0:
            return np.zeros(0), sigma_r
        dense = np.full(int(bins[-1] - bins[0]) + 1, np.nan)
        dense[bins - bins[0]] = resid
        for order in (2, 1):
            target = dense[order:]
            lags = np.column_stack([dense[order - k : len(dense) - k] for k in range(1, order + 1)])
            ok = np.isfinite(target) & np.all(np.isfinite(lags), axis=1)
            if int(ok.sum()) < 20 * order + 10:
                continue
            phi, _ = _ols_qr(target[ok], lags[ok])
            roots = np.roots(np.r_[1.0, -phi])
            if np.all(np.abs(roots) < 0.98):
                sigma_e = float(np.std(target[ok] - lags[ok] @ phi))
                return phi, sigma_e
        return np.zeros(0), sigma_r

    def _needs_refit(self, now_s: float) -> bool:
        fit = self._fit
        if fit is None:
            return True
        if now_s - fit.fit_s >= self.refit_interval_s or now_s < fit.fit_s:
            return True
        # Young series: refit sooner while the history is still growing fast.
        return fit.history_s < 4 * DAY_S and self.history_s >= 1.25 * fit.history_s + 3600.0

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
        p50, sigma = self._predict(fit, now_s, times, known)
        p50 = np.maximum(p50 + extra, 0.0)
        lo = np.maximum(p50 - Z90 * sigma, 0.0)
        hi = p50 + Z90 * sigma
        return Forecast(now_s + step, step, lo, p50, hi, fit.model)

    def _predict(
        self, fit: _Fit, now_s: float, times: FloatArray, known: KnownLoad | None
    ) -> tuple[FloatArray, FloatArray]:
        """Seasonal part + local level/trend + AR correction, and the predictive std."""
        step = self.resample_s
        x_future = self._design(times, fit.t_ref, fit.harmonics, fit.weekend, fit.trend)
        seasonal = x_future @ fit.beta
        param_var = np.einsum("ij,jk,ik->i", x_future, fit.cov, x_future)

        # Cheap update: residuals of the newest bins under the stored coefficients.
        now_bin = math.floor(now_s / step)
        window = max(4, math.ceil(LOCAL_WINDOW_S / step))
        bins, mean, _ = self._series(now_bin)
        bins, mean = bins[bins >= now_bin - window], mean[bins >= now_bin - window]
        local = 0.0
        slope = 0.0  # per bin
        local_var = 0.0
        slope_var = 0.0
        ar_state = np.zeros(2)
        last_center = now_s - 0.5 * step
        if len(bins) > 0:
            centers = self._centers(bins)
            x_recent = self._design(centers, fit.t_ref, fit.harmonics, fit.weekend, fit.trend)
            r = mean - self._known_bins(known, bins) - x_recent @ fit.beta
            last_center = float(centers[-1])
            tau = (centers - last_center) / step  # <= 0, in bins
            local, slope, local_var, slope_var = _local_line(r, tau, fit.sigma_e)
            dev = r - (local + slope * tau)
            # AR state: deviations of the last two bins (if consecutive).
            ar_state[0] = dev[-1]
            if len(r) >= 2 and bins[-1] - bins[-2] == 1:
                ar_state[1] = dev[-2]
            else:
                ar_state[1] = 0.0

        lead = (times - last_center) / step  # in bins, >= 0.5
        max_lead = math.ceil(float(lead[-1])) + 1
        path = np.zeros(max_lead + 1)
        psi = np.zeros(max_lead + 1)
        path[0] = ar_state[0]
        psi[0] = 1.0
        _ar_recursion(fit.ar, float(ar_state[0]), float(ar_state[1]), path, psi)
        # Forecast error variance of the AR part after h steps: sigma_e^2 * sum_{j<h} psi_j^2.
        cum = np.concatenate(([0.0], np.cumsum(psi[:-1] ** 2)))
        grid = np.arange(max_lead + 1, dtype=np.float64)
        ar_mean = np.interp(lead, grid, path)
        ar_var = fit.sigma_e**2 * np.interp(lead, grid, cum)
        ar_var = np.minimum(ar_var, max(fit.sigma_r, fit.sigma_e) ** 2 * 1.5)
        ar_var = np.maximum(ar_var, 0.25 * fit.sigma_e**2)

        # A recent slope is extrapolated over at most half the history held: six hours of data
        # cannot tell a trend from the daily cycle beyond a few hours.
        slope_lead = np.minimum(lead, max(2 * H_S, 0.5 * fit.history_s) / step)
        p50 = seasonal + local + slope * slope_lead + ar_mean
        # Structure the short history cannot show (weekly shape, full daily shape): a share of
        # the level that grows with lead time.
        missing = 0.0
        if not fit.weekend:
            missing += 0.06
        if fit.harmonics < DAILY_HARMONICS:
            missing += 0.04 if fit.harmonics else 0.25
        frac = np.minimum(1.0, lead * step / DAY_S + 0.1)
        struct_var = (missing * abs(fit.level) * frac) ** 2
        var = ar_var + param_var + local_var + slope_var * lead**2 + self._within_var() + struct_var
        inflate = 1.0 + min(2.0, 0.25 * DAY_S / max(fit.history_s, 3600.0))
        return p50, np.sqrt(var) * inflate

    # ----------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """Compact, bounded state: the configuration and the bin means (not the fit).

        Bins are stored densely from the oldest held: mean in milliamps (``null`` = no data),
        the sample counts only where they differ from the usual one, and one pooled within-bin
        variance; about 6 bytes per bin.
        """
        self._flush()
        ok = (self._bin >= 0) & (self._count > 0)
        data: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "resample_s": self.resample_s,
            "horizon_s": self.horizon_s,
            "refit_interval_s": self.refit_interval_s,
            "max_history_s": self.max_history_s,
            "utc_offset_s": self.utc_offset_s,
            "first_bin": None,
            "mean_ma": [],
            "count": 0,
            "count_except": {},
            "within_var": round(self._within_var(), 6),
        }
        if not np.any(ok):
            return data
        bins = self._bin[ok]
        first = int(bins.min())
        n = int(bins.max()) - first + 1
        counts = self._count[ok]
        usual = int(np.bincount(counts).argmax())
        mean: list[int | None] = [None] * n
        except_: dict[str, int] = {}
        for b, sm_, c in zip(bins.tolist(), self._sum[ok].tolist(), counts.tolist(), strict=True):
            mean[b - first] = round(1000.0 * sm_ / c)
            if c != usual:
                except_[str(b - first)] = c
        data.update(first_bin=first, mean_ma=mean, count=usual, count_except=except_)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadForecaster:
        """Rebuild from :meth:`to_dict`; the model is refitted at the next forecast."""
        self = cls(
            resample_s=float(data["resample_s"]),
            horizon_s=float(data["horizon_s"]),
            refit_interval_s=float(data["refit_interval_s"]),
            max_history_s=float(data["max_history_s"]),
            utc_offset_s=float(data.get("utc_offset_s", 0.0)),
        )
        if data.get("first_bin") is None:
            return self
        first = int(data["first_bin"])
        within = float(data.get("within_var", 0.0))
        usual = int(data["count"])
        except_ = {int(k): int(v) for k, v in data.get("count_except", {}).items()}
        pairs = [
            (first + i, m / 1000.0, except_.get(i, usual))
            for i, m in enumerate(data["mean_ma"])
            if m is not None and except_.get(i, usual) > 0
        ]
        if not pairs:
            return self
        last = max(b for b, _, _ in pairs)
        for b, m, c in pairs:
            if b <= last - self._cap:
                continue
            slot = b % self._cap
            self._bin[slot] = b
            self._sum[slot] = m * c
            # Rebuilt so that the pooled within-bin variance comes back unchanged.
            self._sumsq[slot] = c * m * m + (c - 1) * within
            self._count[slot] = c
        self._last_bin = last
        return self
