"""Health scores and failure warnings for ATSs and MPDUs, learned from each unit's own history.

Wear shows itself before a failure, but not along one known curve: a worn contact may run
hotter than load and room explain, its output ripple may grow, the ATS self-test transfer may
get slower, an MPDU breaker may count nuisance trips; which of these show, how strongly and how
fast differs from one unit and one fault to the next. The monitor therefore assumes no precursor
shape, size or healthy level. It

* learns each unit's normal from its own first day of data and then freezes it, so a developing
  fault can never teach it that the fault is normal: temperature as the excess over the room
  regressed on (I / rating)^2 (the unit's own rise with load), its ripple level, its self-test
  transfer time (relative to the nominal one), its nuisance-trip rate, and the noise of each;
* discards what cannot be trusted: values repeated exactly (a stuck sensor), ripple of a dead
  output, NaNs; gaps (lost communications) are simply absent;
* aggregates half-hourly and turns every bin into a standardised residual per signal against the
  frozen normal (its error including the uncertainty of the learned normal itself), capped so that
  no single odd bin can raise an alarm;
* runs a one-sided CUSUM per signal (a sustained upward departure of any shape accumulates; noise
  and short distractions drain away) and fuses the signals by summing their CUSUMs, so whichever
  signals show, with whatever strength, add up;
* debounces (consecutive bins) with hysteresis (off only when every signal is back at its normal,
  e.g. after a repair);
* fits the departure's trajectory with a family of power-law shapes (t - onset)^p, p 0.5-4, to
  date the onset and learn the shape, and estimates the time to failure from it. Precursors of
  unknown size cannot say by themselves how far along its life a unit is, so two things bound
  it: the moment of looking is as likely early as late in the wear (the elapsed fraction f is
  uniform: remaining life elapsed x (1 - f) / f), and a departure cannot grow beyond a
  physical ceiling without the unit having failed (``FAILURE_CEILING``: contact heating,
  output ripple, transfer slowing; engineering limits, not learned and not the simulator's).
  A departure at y now, growing as (t - onset)^p, reaches the ceiling c after
  elapsed x (c / y)^(1/p): the wear ends no later than that. Early in a wear (y far below
  every ceiling) the estimate is the elapsed-time one; as the departure nears a ceiling the
  band closes in, faster for steep shapes. Mixed over the plausible onsets and shapes, this
  gives the median and the 10th/90th percentiles (plans use the 10th).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from .observation import ElementObs

type FloatArray = npt.NDArray[np.float64]
type ComponentKind = Literal["ats", "mpdu"]

AGGREGATE_S: Final = 1800.0
"""Residuals are judged as half-hour bin means."""
MIN_SAMPLES: Final = 4
"""A bin needs this many valid samples of a continuous signal to count."""
BASELINE_S: Final = 86400.0
"""The normal is learned on the first day of data, then frozen."""
MIN_BASELINE_BINS: Final = 12
MIN_BASELINE_TESTS: Final = 4
WINDOW_S: Final = 72 * 3600.0
"""The trajectory fit looks this far back."""
KEEP_BINS: Final = int(WINDOW_S // AGGREGATE_S) + 48
SIGNALS: Final = ("temperature", "ripple", "self_test", "nuisance_trips")
Z_CAP: Final = 6.0
"""Largest standardised residual one bin may contribute (no single bin can alarm)."""
KAPPA: Final = 1.0
"""CUSUM allowance in standard errors per bin: the healthy statistic drains back to zero."""
H_ON: Final = 14.0
"""Fused CUSUM (sum over signals) that calls a sustained departure."""
DEBOUNCE_BINS: Final = 2
Z_NORMAL: Final = 2.0
"""Every signal within this many standard errors of its normal counts as back to normal."""
RECOVERY_BINS: Final = 3
Z_SIGNIFICANT: Final = 3.0
"""Recent departure (standard errors) that a signal must show to be reported or scored."""
NORMAL_ERROR_SD: Final = 3.0
"""Standard deviations of the learned normal's own error that a residual must exceed to count."""
FLOOR_FRACTION: Final = 0.2
"""Model-error floor on a bin mean's standard error, as a fraction of the per-sample noise."""
SHAPES: Final = (0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
"""Exponents of the trajectory family (t - onset)^p fitted to date the onset."""
TTF_LOW_Q: Final = 0.1
TTF_HIGH_Q: Final = 0.9
FAILURE_CEILING: Final[Mapping[str, float]] = {
    "temperature": 30.0,
    "ripple": 8.0,
    "self_test": 4.0,
}
"""Departures a unit does not survive, per signal (generic engineering limits, not fitted):
temperature: degC above what load and room explain (thermographic practice calls 15 degC
over a similar part a serious fault to repair at once; twice that is taken as the end);
ripple: the output's total ripple in % (8 %: the usual voltage-distortion limit for low
voltage, beyond which IT power supplies are at risk); self-test: the transfer taking this
many times longer than the unit's own normal (4: five times as long)."""
FAILURE_FLOOR: Final = 0.05
"""Fraction of its ceiling that at least one signal reaches by the failure (a wear whose every
sign stays below this is one no monitor could have seen coming)."""
_TTF_GRID_S: Final = np.geomspace(60.0, 400 * 86400.0, 480)
"""Remaining-life grid the time-to-failure quantiles are read from."""


@dataclass(frozen=True, slots=True)
class HealthSample:
    """One poll of an ATS or MPDU, with the room temperature at that time."""

    t_s: float
    current_a: float
    rating_a: float
    ambient_c: float
    temperature_c: float
    """ATS contact / MPDU terminal temperature."""
    ripple_pct: float
    energized: bool
    self_tests: int = 0
    """ATS: self-test counter (a new test result when it increments)."""
    self_test_ms: float = 0.0
    """ATS: transfer time measured by the last self-test (0 = none yet)."""
    nominal_transfer_ms: float = 0.0
    operations: int = 0
    rated_operations: int = 0
    nuisance_trips: int = 0
    """MPDU nuisance-trip counter."""

    @classmethod
    def of(cls, t_s: float, e: ElementObs, rating_a: float, ambient_c: float) -> HealthSample:
        """The sample of one observed element, with its rating and the room temperature."""
        return cls(
            t_s=t_s,
            current_a=e.current_a,
            rating_a=rating_a,
            ambient_c=ambient_c,
            temperature_c=e.temperature_c,
            ripple_pct=e.ripple_pct,
            energized=e.energized,
            self_tests=e.self_tests,
            self_test_ms=e.self_test_ms,
            nominal_transfer_ms=e.nominal_transfer_ms,
            operations=e.operations,
            rated_operations=e.rated_operations,
            nuisance_trips=e.nuisance_trips,
        )


@dataclass(frozen=True, slots=True)
class HealthAssessment:
    """The monitor's judgement of one component at one moment."""

    component: str
    health: float
    failure_probability: float
    time_to_failure_s: float | None
    """Median estimate (None while no departure is seen)."""
    alert: bool
    signals: tuple[str, ...]
    scores: Mapping[str, float]
    time_to_failure_low_s: float | None = None
    """10th percentile of the time to failure (plan against this one)."""
    time_to_failure_high_s: float | None = None
    """90th percentile of the time to failure."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""

        def rounded(v: float | None) -> float | None:
            return None if v is None else round(v, 0)

        return {
            "component": self.component,
            "health": round(self.health, 1),
            "failure_probability": round(self.failure_probability, 3),
            "time_to_failure_s": rounded(self.time_to_failure_s),
            "time_to_failure_low_s": rounded(self.time_to_failure_low_s),
            "time_to_failure_high_s": rounded(self.time_to_failure_high_s),
            "alert": self.alert,
            "signals": list(self.signals),
            "scores": {k: round(float(v), 4) for k, v in self.scores.items() if math.isfinite(v)},
        }


@dataclass(slots=True)
class _Bin:
    """Sufficient statistics of one bin. Temperature: x = (I / rating)^2, y = T - ambient."""

    start_s: float
    temp_n: int = 0
    temp_sx: float = 0.0
    temp_sxx: float = 0.0
    temp_sy: float = 0.0
    temp_sxy: float = 0.0
    temp_syy: float = 0.0
    ripple_n: int = 0
    ripple_sum: float = 0.0
    ripple_sumsq: float = 0.0
    test_n: int = 0
    test_sum: float = 0.0
    nuisance: int = 0

    def empty(self) -> bool:
        return self.temp_n == 0 and self.ripple_n == 0 and self.test_n == 0 and self.nuisance == 0


@dataclass(slots=True)
class _Normal:
    """A unit's learned normal (meaningful once ``frozen``)."""

    temp_ok: bool = False
    temp_a: float = 0.0
    """Excess over the room at no load."""
    temp_c: float = 0.0
    """Rise with (I / rating)^2."""
    temp_cov: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    """Covariance of (a, c): var a, cov, var c."""
    temp_sigma: float = 0.0
    temp_phi: float = 1.0
    temp_mean_excess: float = 0.0
    ripple_ok: bool = False
    ripple_level: float = 0.0
    ripple_sigma: float = 0.0
    ripple_phi: float = 1.0
    ripple_se: float = 0.0
    test_ok: bool = False
    test_ratio: float = 1.0
    test_sigma: float = 0.0
    test_se: float = 0.0
    trips_per_s: float = 0.0
    frozen: bool = False


@dataclass(slots=True)
class _Eval:
    """The judgement at the end of the last complete bin."""

    t_s: float
    cusum: dict[str, float] = field(default_factory=dict)
    fused: float = 0.0
    z_recent: dict[str, float] = field(default_factory=dict)
    """Mean standardised residual of the last bins, per signal."""
    recent: dict[str, float] = field(default_factory=dict)
    """Latest departure per signal, in the signal's own unit (degC, %, ratio, trips)."""
    normal_now: bool = False
    onset_s: float = math.nan
    shape: float = math.nan
    onset_weights: list[tuple[float, float, float]] = field(default_factory=list)
    """(weight, onset_s, shape exponent) of the plausible fits, for the time to failure."""


class DegradationMonitor:
    """Health and failure risk of one ATS or MPDU."""

    def __init__(self, component: str, kind: ComponentKind, *, horizon_s: float = 86400.0) -> None:
        self.component = component
        self.kind: ComponentKind = kind
        self.horizon_s = float(horizon_s)
        self._normal = _Normal()
        self._baseline_bins: list[_Bin] = []
        self._bins: deque[_Bin] = deque(maxlen=KEEP_BINS)
        self._cur: _Bin | None = None
        self._first_s: float | None = None
        self._monitor_start_s = -math.inf
        self._last_temp = math.nan
        self._last_ambient = math.nan
        self._ambient_repeats = 0
        self._last_ripple = math.nan
        self._last_tests: int | None = None
        self._last_nuisance: int | None = None
        self._last_test_ms = 0.0
        self._ops_fraction = 0.0
        self._cusum = dict.fromkeys(SIGNALS, 0.0)
        self._streak = 0
        self._quiet = 0
        self._alert = False
        self._alert_since: float | None = None
        self._eval = _Eval(t_s=-math.inf)

    # ---------------------------------------------------------------- input
    def observe(self, sample: HealthSample) -> None:
        """Take one poll; frozen (stuck) values and dead-output ripple are discarded."""
        t = sample.t_s
        if not math.isfinite(t):
            return
        start = math.floor(t / AGGREGATE_S) * AGGREGATE_S
        if self._cur is None:
            self._cur = _Bin(start)
        elif start > self._cur.start_s:
            self._close_bin()
            self._cur = _Bin(start)
        elif start < self._cur.start_s:
            return  # late sample of a bin already judged
        if self._first_s is None:
            self._first_s = t
        cur = self._cur

        temp, amb, cur_a = sample.temperature_c, sample.ambient_c, sample.current_a
        if math.isfinite(amb):
            self._ambient_repeats = self._ambient_repeats + 1 if amb == self._last_ambient else 0
            self._last_ambient = amb
        stuck_temp = temp == self._last_temp or self._ambient_repeats > 0
        if math.isfinite(temp):
            self._last_temp = temp
        if (
            not stuck_temp
            and math.isfinite(temp)
            and math.isfinite(amb)
            and math.isfinite(cur_a)
            and sample.rating_a > 0
        ):
            u = cur_a / sample.rating_a
            x, y = u * u, temp - amb
            cur.temp_n += 1
            cur.temp_sx += x
            cur.temp_sxx += x * x
            cur.temp_sy += y
            cur.temp_sxy += x * y
            cur.temp_syy += y * y

        ripple = sample.ripple_pct
        if (
            sample.energized
            and math.isfinite(ripple)
            and ripple > 0.0
            and ripple != self._last_ripple
        ):
            cur.ripple_n += 1
            cur.ripple_sum += ripple
            cur.ripple_sumsq += ripple * ripple
        if math.isfinite(ripple) and sample.energized:
            self._last_ripple = ripple

        if (
            self._last_tests is not None
            and sample.self_tests > self._last_tests
            and sample.self_test_ms > 0
            and sample.nominal_transfer_ms > 0
        ):
            cur.test_n += 1
            cur.test_sum += sample.self_test_ms / sample.nominal_transfer_ms
            self._last_test_ms = sample.self_test_ms
        self._last_tests = sample.self_tests
        if self._last_nuisance is not None and sample.nuisance_trips > self._last_nuisance:
            cur.nuisance += sample.nuisance_trips - self._last_nuisance
        self._last_nuisance = sample.nuisance_trips
        if sample.rated_operations > 0:
            self._ops_fraction = sample.operations / sample.rated_operations

    def _close_bin(self) -> None:
        """Judge the bin in progress: learning the normal, or the departure test."""
        bin_ = self._cur
        self._cur = None
        if bin_ is None or bin_.empty():
            return
        end = bin_.start_s + AGGREGATE_S
        if not self._normal.frozen:
            self._baseline_bins.append(bin_)
            # Bounded while a signal is missing: keep the last days only.
            del self._baseline_bins[: max(0, len(self._baseline_bins) - KEEP_BINS)]
            learned = self._first_s is not None and end - self._first_s >= BASELINE_S
            if learned and self._learn_normal():
                self._monitor_start_s = max(self._monitor_start_s, end)
                self._baseline_bins = []
            return
        self._bins.append(bin_)
        self._step_cusum(bin_)
        self._evaluate(end)

    # ------------------------------------------------------------- the normal
    def _learn_normal(self) -> bool:
        """Learn and freeze the normal; False while there is not enough data yet."""
        bins = self._baseline_bins
        temp = [h for h in bins if h.temp_n >= MIN_SAMPLES]
        ripple = [h for h in bins if h.ripple_n >= MIN_SAMPLES]
        if len(temp) < MIN_BASELINE_BINS and len(ripple) < MIN_BASELINE_BINS:
            return False  # keep learning until there is enough
        nm = self._normal
        if len(temp) >= MIN_BASELINE_BINS:
            _learn_temperature(nm, temp)
        if len(ripple) >= MIN_BASELINE_BINS:
            nm.ripple_ok = True
            (nm.ripple_level, nm.ripple_sigma, nm.ripple_phi, nm.ripple_se) = _learn_level(
                [(h.ripple_sum, h.ripple_sumsq, h.ripple_n) for h in ripple]
            )
        tests = [h.test_sum / h.test_n for h in bins if h.test_n > 0]
        if len(tests) >= MIN_BASELINE_TESTS:
            n = len(tests)
            nm.test_ok = True
            nm.test_ratio = float(np.median(tests))
            sd = float(np.std(tests, ddof=1))
            # Few tests a day: an upper confidence bound of their spread (chi-square, 95 %).
            sd *= math.sqrt((n - 1) / _chi2_low(n - 1))
            nm.test_sigma = max(sd, 1e-3 * nm.test_ratio)
            nm.test_se = math.sqrt(math.pi / 2.0) * nm.test_sigma / math.sqrt(n)
        hours = len(bins) * AGGREGATE_S
        trips = sum(h.nuisance for h in bins)
        nm.trips_per_s = (trips + 0.5) / max(hours, AGGREGATE_S)  # Jeffreys: none seen != never
        nm.frozen = True
        return True

    # --------------------------------------------------------------- the test
    def _bin_z(self, bin_: _Bin) -> dict[str, tuple[float, float]]:
        """Per signal: (standardised residual, departure in the signal's unit) for one bin."""
        nm = self._normal
        out: dict[str, tuple[float, float]] = {}
        if nm.temp_ok and bin_.temp_n >= MIN_SAMPLES:
            n = bin_.temp_n
            xbar, ybar = bin_.temp_sx / n, bin_.temp_sy / n
            resid = ybar - nm.temp_a - nm.temp_c * xbar
            va, cac, vc = nm.temp_cov
            own = (nm.temp_phi * nm.temp_sigma) ** 2 / n + (FLOOR_FRACTION * nm.temp_sigma) ** 2
            shared = max(0.0, va + 2 * xbar * cac + xbar * xbar * vc)
            out["temperature"] = (_score(resid, own, shared), resid)
        if nm.ripple_ok and bin_.ripple_n >= MIN_SAMPLES:
            n = bin_.ripple_n
            resid = bin_.ripple_sum / n - nm.ripple_level
            own = (nm.ripple_phi * nm.ripple_sigma) ** 2 / n + (
                FLOOR_FRACTION * nm.ripple_sigma
            ) ** 2
            out["ripple"] = (_score(resid, own, nm.ripple_se**2), resid)
        if nm.test_ok and bin_.test_n > 0 and self.kind == "ats":
            n = bin_.test_n
            resid = bin_.test_sum / n - nm.test_ratio
            own = nm.test_sigma**2 / n
            out["self_test"] = (_score(resid, own, nm.test_se**2), resid / nm.test_ratio)
        if nm.frozen:
            # Poisson count against the learned (near-zero) healthy rate, as a normal score.
            lam = nm.trips_per_s * AGGREGATE_S
            out["nuisance_trips"] = ((bin_.nuisance - lam) / math.sqrt(lam), float(bin_.nuisance))
        return out

    def _step_cusum(self, bin_: _Bin) -> None:
        """One-sided CUSUM per signal on capped standardised residuals."""
        for name, (z_bin, _) in self._bin_z(bin_).items():
            # No trip in a bin is no evidence either way (the healthy rate is near zero).
            z = 0.0 if name == "nuisance_trips" and bin_.nuisance == 0 else z_bin
            step = min(z, Z_CAP) - KAPPA
            self._cusum[name] = max(0.0, self._cusum[name] + step)

    def _evaluate(self, now_s: float) -> None:
        """Fuse the CUSUMs, date a departure's onset, then the alert state machine."""
        ev = _Eval(t_s=now_s, cusum=dict(self._cusum))
        ev.fused = float(sum(self._cusum.values()))
        start = max(self._monitor_start_s, now_s - WINDOW_S)
        bins = [h for h in self._bins if h.start_s >= start]
        per_bin = [self._bin_z(h) for h in bins]
        tail = per_bin[-RECOVERY_BINS:]
        seen = False
        normal = True
        for name in SIGNALS:
            vals = [b[name] for b in tail if name in b]
            if name == "self_test":
                # A few tests a day: the latest one in the window speaks for now.
                latest = [b[name] for b in per_bin if name in b][-1:]
                if latest:
                    ev.z_recent[name], ev.recent[name] = latest[0]
                    if vals and abs(vals[-1][0]) >= Z_NORMAL:
                        normal = False
                continue
            if name == "nuisance_trips":
                trips = sum(h.nuisance for h in bins if h.start_s >= now_s - 86400.0)
                ev.recent[name] = float(trips)
                if any(h.nuisance for h in bins[-RECOVERY_BINS:]):
                    normal = False
                continue
            if not vals:
                continue
            seen = True
            ev.z_recent[name] = sum(v[0] for v in vals) / len(vals)
            ev.recent[name] = sum(v[1] for v in vals) / len(vals)
            if len(vals) < min(RECOVERY_BINS, len(tail)) or any(
                abs(v[0]) >= Z_NORMAL for v in vals
            ):
                normal = False
        ev.normal_now = seen and normal and len(tail) == RECOVERY_BINS
        if ev.fused >= 0.5 * H_ON and bins:
            self._fit_onset(ev, bins, per_bin, now_s)
        self._eval = ev
        self._step_alert(ev, now_s)

    def _fit_onset(
        self,
        ev: _Eval,
        bins: list[_Bin],
        per_bin: list[dict[str, tuple[float, float]]],
        now_s: float,
    ) -> None:
        """GLR over the shape family (t - onset)^p on the fused standardised departure."""
        n = len(bins)
        t_h = np.array([h.start_s + 0.5 * AGGREGATE_S for h in bins]) / 3600.0
        # Fuse the continuous signals that carry evidence, each weighted by its own CUSUM.
        weights = {k: v for k, v in ev.cusum.items() if k != "nuisance_trips" and v > 0}
        total = sum(weights.values())
        if total <= 0:
            return
        y = np.zeros(n)
        w = np.zeros(n)
        for j, b in enumerate(per_bin):
            acc = 0.0
            wt = 0.0
            for name, share in weights.items():
                if name in b:
                    acc += share * b[name][0]
                    wt += share
            if wt > 0:
                y[j], w[j] = acc / wt, 1.0
        if w.sum() < 3:
            return
        onsets = np.arange(bins[0].start_s - 86400.0, now_s - AGGREGATE_S + 1.0, AGGREGATE_S)
        best = -math.inf
        fits: list[tuple[float, float, float]] = []  # (glr, onset_s, p)
        for p in SHAPES:
            x = np.maximum(t_h[None, :] - onsets[:, None] / 3600.0, 0.0) ** p
            num = x @ (w * y)
            den = (x * x) @ w
            ok = (den > 0) & (num > 0)
            glr = np.where(ok, num * num / np.where(den > 0, den, 1.0), -np.inf)
            for o, g in zip(onsets, glr, strict=True):
                if math.isfinite(g):
                    fits.append((float(g), float(o), p))
                    best = max(best, float(g))
        if not fits:
            return
        top = max(fits)
        ev.onset_s, ev.shape = top[1], top[2]
        keep = [(math.exp(0.5 * (g - best)), o, p) for g, o, p in fits if g > best - 6.0]
        tot = sum(k for k, _, _ in keep)
        ev.onset_weights = sorted((share / tot, o, p) for share, o, p in keep)

    def _step_alert(self, ev: _Eval, now_s: float) -> None:
        """Debounce (consecutive bins over the threshold), hysteresis (off only when normal)."""
        self._streak = self._streak + 1 if ev.fused >= H_ON else 0
        if not self._alert:
            if self._streak >= DEBOUNCE_BINS:
                self._alert = True
                self._alert_since = now_s
            return
        if ev.normal_now:
            # Every signal back at its normal (repaired or replaced): monitor afresh from here.
            self._clear(now_s - RECOVERY_BINS * AGGREGATE_S)

    def _clear(self, monitor_from_s: float) -> None:
        self._alert = False
        self._alert_since = None
        self._streak = 0
        self._quiet = 0
        self._cusum = dict.fromkeys(SIGNALS, 0.0)
        self._monitor_start_s = max(self._monitor_start_s, monitor_from_s)
        self._eval = _Eval(t_s=self._eval.t_s)

    # --------------------------------------------------------------- output
    def _progress(self, ev: _Eval) -> float:
        """How far the most advanced signal is towards its ceiling (0: none shows, 1: at it)."""
        nm = self._normal
        level = 0.0
        for name, ceiling in FAILURE_CEILING.items():
            dep = ev.recent.get(name, 0.0)
            if ev.z_recent.get(name, 0.0) < Z_SIGNIFICANT or dep <= 0.0:
                continue
            # The ripple's ceiling is on the total ripple, not on its departure.
            allowed = ceiling - nm.ripple_level if name == "ripple" else ceiling
            level = max(level, min(1.0, dep / max(allowed, 1e-9)))
        return level

    def _ttf(self, ev: _Eval, now_s: float) -> tuple[float, float, float, float] | None:
        """(median, low, high time to failure, P(failure within the horizon)) or None."""
        if not ev.onset_weights:
            return None
        level = self._progress(ev)
        w = np.array([wt for wt, _, _ in ev.onset_weights])
        elapsed = np.maximum(
            np.array([now_s - o for _, o, _ in ev.onset_weights]), 0.5 * AGGREGATE_S
        )
        shape = np.array([p for _, _, p in ev.onset_weights])
        # Per fit: the elapsed fraction f = elapsed / W of the whole wear W is uniform between
        # where the departure would end at its ceiling (f_lo) and where it would end at the
        # smallest failure level (f_hi); the remaining life is R = elapsed (1 - f) / f.
        if level > 0.0:
            f_lo = level ** (1.0 / shape)
            f_hi = np.minimum(1.0, (level / FAILURE_FLOOR) ** (1.0 / shape))
        else:
            f_lo, f_hi = np.zeros_like(w), np.ones_like(w)
        grid = _TTF_GRID_S
        f_at = elapsed[:, None] / (elapsed[:, None] + grid[None, :])  # R <= grid <=> f >= f_at
        cut = np.clip(f_at, f_lo[:, None], f_hi[:, None])
        cdf = w @ ((f_hi[:, None] - cut) / np.maximum(f_hi - f_lo, 1e-9)[:, None])
        cdf = np.maximum.accumulate(cdf)
        out = [float(np.interp(q, cdf, grid)) for q in (0.5, TTF_LOW_Q, TTF_HIGH_Q)]
        horizon = float(np.interp(self.horizon_s, grid, cdf))
        return out[0], out[1], out[2], horizon

    def assess(self, now_s: float) -> HealthAssessment:
        """Health, failure risk and the debounced alert at ``now_s`` (judged on whole bins)."""
        if self._cur is not None and now_s >= self._cur.start_s + AGGREGATE_S:
            self._close_bin()
        ev = self._eval
        ttf = self._ttf(ev, now_s)
        strength = min(1.0, ev.fused / H_ON)
        probability = 0.0
        median = low = high = None
        if ttf is not None:
            median, low, high = ttf[0], ttf[1], ttf[2]
            probability = ttf[3] if self._alert else 0.45 * strength * ttf[3]
        # Health: how far the significant signals sit from the unit's own normal, relative to it.
        rel = 0.0
        nm = self._normal
        for name, z in ev.z_recent.items():
            if z < Z_SIGNIFICANT:
                continue
            dep = ev.recent.get(name, 0.0)
            if name == "temperature":
                scale = max(abs(nm.temp_mean_excess), 3.0 * nm.temp_sigma, 1e-9)
                rel = max(rel, dep / scale)
            elif name == "ripple":
                rel = max(rel, dep / max(nm.ripple_level, 1e-9))
            elif name == "self_test":
                rel = max(rel, dep)
        health = 100.0 * math.exp(-max(0.0, rel))
        if self._ops_fraction > 0.8:
            health -= 50.0 * min(0.2, self._ops_fraction - 0.8)
        health = min(100.0, max(0.0, health))
        scores: dict[str, float] = {
            "fused_cusum": ev.fused,
            "z": ev.fused,
            "relative_departure": rel,
            "onset_s": ev.onset_s,
            "shape_exponent": ev.shape,
            "baseline_frozen": 1.0 if nm.frozen else 0.0,
        }
        scores.update({f"cusum_{k}": v for k, v in ev.cusum.items()})
        scores.update({f"z_{k}": v for k, v in ev.z_recent.items()})
        return HealthAssessment(
            component=self.component,
            health=health,
            failure_probability=min(1.0, max(0.0, probability)),
            time_to_failure_s=median,
            alert=self._alert,
            signals=self._texts(ev, ttf),
            scores=scores,
            time_to_failure_low_s=low,
            time_to_failure_high_s=high,
        )

    def _texts(self, ev: _Eval, ttf: tuple[float, float, float, float] | None) -> tuple[str, ...]:
        """What an operator reads: the evidence in physical units."""
        out: list[str] = []
        nm = self._normal
        zs = ev.z_recent
        part = "contact" if self.kind == "ats" else "terminal"

        def trend(name: str) -> str:
            return "rising" if ev.cusum.get(name, 0.0) >= 0.5 * H_ON else "steady"

        temp = ev.recent.get("temperature")
        if temp is not None and zs.get("temperature", 0.0) >= Z_SIGNIFICANT:
            out.append(
                f"{part} temperature {temp:.1f} °C above what load and room explain, "
                f"{trend('temperature')}"
            )
        ripple = ev.recent.get("ripple")
        if ripple is not None and zs.get("ripple", 0.0) >= Z_SIGNIFICANT:
            out.append(
                f"output ripple {nm.ripple_level + ripple:.2f} % (normal {nm.ripple_level:.2f} %), "
                f"{trend('ripple')}"
            )
        test = ev.recent.get("self_test")
        if test is not None and zs.get("self_test", 0.0) >= Z_SIGNIFICANT:
            out.append(
                f"self-test transfer took {self._last_test_ms:.0f} ms, "
                f"{test * 100:.0f} % longer than normal"
            )
        trips = int(ev.recent.get("nuisance_trips", 0.0))
        if trips:
            out.append(f"{trips} nuisance trip{'s' if trips > 1 else ''} in the last 24 h")
        if self._ops_fraction > 0.8:
            out.append(f"mechanism at {self._ops_fraction * 100:.0f} % of its rated operations")
        if self._alert and math.isfinite(ev.onset_s):
            since = datetime.fromtimestamp(ev.onset_s, UTC).strftime("%Y-%m-%d %H:%M UTC")
            text = f"wear trend since about {since}"
            if ttf is not None:
                text += (
                    f", failure expected in about {ttf[0] / 3600:.0f} h "
                    f"(possibly within {ttf[1] / 3600:.1f} h)"
                )
            out.append(text)
        return tuple(out)

    def mark_repaired(self, now_s: float) -> None:
        """After a repair: end the episode and monitor afresh; the normal is kept."""
        if self._cur is not None:
            self._cur = _Bin(self._cur.start_s)  # drop the pre-repair part of this bin
        self._clear(now_s)


def _score(resid: float, own_var: float, shared_var: float) -> float:
    """A bin's residual in standard errors of its own noise, beyond the learned normal's error.

    The error of the learned normal is the same in every bin (it would add up in the CUSUM like
    a real departure), so it is not averaged down: up to ``NORMAL_ERROR_SD`` of its standard
    deviation counts as no departure at all.
    """
    excess = max(0.0, abs(resid) - NORMAL_ERROR_SD * math.sqrt(shared_var))
    return math.copysign(excess, resid) / math.sqrt(own_var)


def _chi2_low(dof: int) -> float:
    """5th percentile of chi-square with ``dof`` degrees of freedom (Wilson-Hilferty)."""
    z = -1.6449
    k = float(dof)
    return max(1e-3, k * (1.0 - 2.0 / (9.0 * k) + z * math.sqrt(2.0 / (9.0 * k))) ** 3)


def _learn_temperature(nm: _Normal, bins: list[_Bin]) -> None:
    """Least squares of (T - ambient) on (I / rating)^2 over the baseline, with its errors."""
    n = float(sum(h.temp_n for h in bins))
    sx = sum(h.temp_sx for h in bins)
    sxx = sum(h.temp_sxx for h in bins)
    sy = sum(h.temp_sy for h in bins)
    sxy = sum(h.temp_sxy for h in bins)
    syy = sum(h.temp_syy for h in bins)
    xbar, ybar = sx / n, sy / n
    vxx = sxx - n * xbar * xbar
    vxy = sxy - n * xbar * ybar
    vyy = syy - n * ybar * ybar
    # Too little load variation to see the rise with load: a level only (the rise is 0 here
    # and any error of it shows as a larger, learned spread).
    c = vxy / vxx if vxx > 1e-9 * n else 0.0
    a = ybar - c * xbar
    sse = max(vyy - c * vxy, 0.0)
    sigma = math.sqrt(sse / max(n - 2.0, 1.0))
    sigma = max(sigma, 1e-3)
    # Over-dispersion of bin means (model error beyond independent sample noise).
    means = np.array([(h.temp_sy - c * h.temp_sx) / h.temp_n - a for h in bins])
    counts = np.array([h.temp_n for h in bins], dtype=np.float64)
    scaled = means * np.sqrt(counts) / sigma
    mad = float(np.median(np.abs(scaled - np.median(scaled)))) * 1.4826
    phi = min(3.0, max(1.0, mad))
    s2 = (phi * sigma) ** 2
    var_c = s2 / vxx if vxx > 1e-9 * n else 0.0
    nm.temp_ok = True
    nm.temp_a, nm.temp_c = a, c
    # (a, c) covariance for the prediction a + c x: var a, cov(a, c), var c.
    nm.temp_cov = [s2 / n + xbar * xbar * var_c, -xbar * var_c, var_c]
    nm.temp_sigma, nm.temp_phi = sigma, phi
    nm.temp_mean_excess = ybar


def _learn_level(sums: list[tuple[float, float, int]]) -> tuple[float, float, float, float]:
    """(level, per-sample sigma, over-dispersion of bin means, level's standard error)."""
    means = np.array([s / n for s, _, n in sums])
    counts = np.array([n for _, _, n in sums], dtype=np.float64)
    ss = np.array([sq - s * s / n for s, sq, n in sums])
    dof = float(np.sum(counts - 1.0))
    sigma = math.sqrt(max(float(np.sum(ss)) / dof, 0.0)) if dof > 0 else 0.0
    level = float(np.median(means))
    sigma = max(sigma, 1e-3 * max(abs(level), 1e-3))
    scaled = (means - level) * np.sqrt(counts) / sigma
    mad = float(np.median(np.abs(scaled))) * 1.4826
    phi = min(3.0, max(1.0, mad))
    expected = phi * sigma / math.sqrt(float(np.median(counts)))
    # The median of N bin means: efficiency pi/2 against the mean.
    se = math.sqrt(math.pi / 2.0) * expected / math.sqrt(len(means))
    return level, sigma, phi, se


def failure_within(a: HealthAssessment, horizon_s: float) -> float:
    """The chance that the component fails within ``horizon_s``, read off its time-to-failure
    estimate: 0.1 at the P10, 0.5 at the median, 0.9 at the P90, log-linear in between (the
    estimate's spread is multiplicative), proportional below the P10; 1 without an estimate
    while it alerts (nothing says the failure is not near), 0 without one otherwise."""
    med = a.time_to_failure_s
    if med is None:
        return 1.0 if a.alert else 0.0
    low = min(med, a.time_to_failure_low_s if a.time_to_failure_low_s is not None else med)
    high = max(med, a.time_to_failure_high_s if a.time_to_failure_high_s is not None else med)
    if horizon_s <= 0.0:
        return 0.0
    if low <= 0.0:
        return 1.0
    points = ((low, 0.1), (med, 0.5), (high, 0.9))
    if horizon_s <= low:
        return 0.1 * horizon_s / low
    for (t0, p0), (t1, p1) in itertools.pairwise(points):
        if horizon_s <= t1:
            if t1 <= t0:
                return p1
            return p0 + (p1 - p0) * math.log(horizon_s / t0) / math.log(t1 / t0)
    return 0.9 + 0.1 * (1.0 - high / horizon_s)
