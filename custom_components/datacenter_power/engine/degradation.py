"""Health scores and failure warnings for ATSs and MPDUs from their wear precursors.

A worn ATS contact or MPDU breaker shows itself hours to days ahead: it runs hotter than load and
room explain, its output ripple grows, the ATS self-test transfer gets slower and an MPDU breaker
starts counting nuisance trips. All of these grow with one wear severity s(t), which rises like
(t - onset)^2. The monitor therefore

* turns every poll into per-signal residuals against a physics prior (temperature = ambient +
  30 degC x (I / rating)^2, ripple 0.4 %, self-test at its nominal time) plus a per-component
  baseline offset and noise level learned from the first day of data and then frozen, so a
  developing fault can never teach the baseline that it is normal;
* discards what cannot be trusted: values repeated exactly (a stuck sensor), ripple of a dead
  output, NaNs; gaps (lost communications) are simply absent;
* aggregates half-hourly (noise averages down thirty-fold; short distractions are diluted) and
  turns every bin into a severity estimate per signal and one inverse-variance combined one;
* runs a GLR (matched-filter) test of the quadratic wear shape against "no wear" over the last
  days, for every candidate onset, and demands that at least two independent signals agree
  (a room-temperature excursion, a load surge or one odd sensor moves one signal at most);
* debounces (two consecutive bins) with hysteresis (off only when the signals are back at the
  baseline, e.g. after a repair), and fits the onset and growth rate to estimate the time to
  failure.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, astuple, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

type FloatArray = npt.NDArray[np.float64]
type ComponentKind = Literal["ats", "mpdu"]

# Physics priors (facts of the equipment model; the per-component baseline is learned).
TEMP_RISE_AT_RATING_C: Final = 30.0
TEMP_AT_FULL_WEAR_C: Final = 12.0
RIPPLE_NOMINAL_PCT: Final = 0.4
RIPPLE_AT_FULL_WEAR_PCT: Final = 1.6
TRANSFER_WEAR_FACTOR: Final = 1.5
NUISANCE_PER_H_AT_FULL_WEAR: Final = 0.5
PRIOR_TEMP_SIGMA_C: Final = 0.45
PRIOR_RIPPLE_SIGMA_PCT: Final = 0.06
PRIOR_SELF_TEST_SIGMA: Final = 0.03

AGGREGATE_S: Final = 1800.0
"""Residuals are judged as half-bin means (the noise averages down thirty-fold)."""
MIN_SAMPLES: Final = 6
"""A bin needs this many valid samples of a signal to count."""
BASELINE_S: Final = 86400.0
"""The baseline is learned on the first day of data, then frozen."""
MIN_BASELINE_BINS: Final = 12
WINDOW_S: Final = 72 * 3600.0
"""The wear test looks this far back (wear events develop over 12-48 h)."""
KEEP_BINS: Final = int(WINDOW_S // AGGREGATE_S) + 48
Z_ON: Final = 6.0
"""Combined GLR statistic needed to call a wear trend (generous margin: zero false alarms)."""
Z_SIGNAL: Final = 3.0
"""Each agreeing signal must show at least this much on its own."""
Z_OFF: Final = 3.0
DEBOUNCE_BINS: Final = 2
RECOVERY_BINS: Final = 3
NUISANCE_AGREE: Final = 2
"""Nuisance trips within a day that count as an agreeing signal (healthy breakers show none)."""
FORMAT_VERSION: Final = 1


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


@dataclass(frozen=True, slots=True)
class HealthAssessment:
    """The monitor's judgement of one component at one moment."""

    component: str
    health: float
    failure_probability: float
    time_to_failure_s: float | None
    alert: bool
    signals: tuple[str, ...]
    scores: Mapping[str, float]

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "component": self.component,
            "health": round(self.health, 1),
            "failure_probability": round(self.failure_probability, 3),
            "time_to_failure_s": (
                None if self.time_to_failure_s is None else round(self.time_to_failure_s, 0)
            ),
            "alert": self.alert,
            "signals": list(self.signals),
            "scores": {k: round(float(v), 4) for k, v in self.scores.items() if math.isfinite(v)},
        }


@dataclass(slots=True)
class _Bin:
    """Sums of one bin's residuals (temperature: raw excess over ambient + I^2 heating)."""

    start_s: float
    temp_sum: float = 0.0
    temp_sumsq: float = 0.0
    temp_n: int = 0
    ripple_sum: float = 0.0
    ripple_sumsq: float = 0.0
    ripple_n: int = 0
    test_sum: float = 0.0
    test_n: int = 0
    nuisance: int = 0

    def empty(self) -> bool:
        return self.temp_n == 0 and self.ripple_n == 0 and self.test_n == 0 and self.nuisance == 0


@dataclass(slots=True)
class _Baseline:
    """Per-component normal: offsets and noise levels (priors until learned)."""

    temp_offset: float = 0.0
    temp_sigma: float = PRIOR_TEMP_SIGMA_C
    temp_phi: float = 2.0
    """Over-dispersion of bin means beyond sigma / sqrt(n) (model error), >= 1."""
    temp_se: float = 0.3
    """Standard error of the learned offset itself (it enters every bin of the test alike)."""
    ripple_level: float = RIPPLE_NOMINAL_PCT
    ripple_sigma: float = PRIOR_RIPPLE_SIGMA_PCT
    ripple_phi: float = 2.0
    ripple_se: float = 0.02
    test_ratio: float = 1.0
    test_sigma: float = PRIOR_SELF_TEST_SIGMA
    test_se: float = 0.02
    frozen: bool = False


@dataclass(slots=True)
class _Eval:
    """The wear test at the end of the last complete bin."""

    t_s: float
    z: float = 0.0
    z_signals: dict[str, float] = field(default_factory=dict)
    agree: int = 0
    a_per_h2: float = 0.0
    se_a: float = math.inf
    onset_s: float = math.nan
    p_fit: float = 0.0
    """P(fail within horizon) from the fitted shape, computed at ``t_s``."""
    mixture: list[tuple[float, float, float, float]] = field(default_factory=list)
    """(weight, onset_s, a, se_a) of the plausible onsets, for P(fail) at another time."""
    recovered: bool = False
    detected: bool = False
    recent_s: float = 0.0
    """Combined severity estimate of the last bins, and its standard error."""
    recent_se: float = math.inf
    recent: dict[str, float] = field(default_factory=dict)
    """Latest excess per signal, in severity units (for the operator texts)."""


def _phi(x: float) -> float:
    """Standard normal CDF."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


class DegradationMonitor:
    """Health and failure risk of one ATS or MPDU."""

    def __init__(self, component: str, kind: ComponentKind, *, horizon_s: float = 86400.0) -> None:
        self.component = component
        self.kind: ComponentKind = kind
        self.horizon_s = float(horizon_s)
        self._base = _Baseline()
        self._baseline_bins: list[_Bin] = []
        self._bins: deque[_Bin] = deque(maxlen=KEEP_BINS)
        self._cur: _Bin | None = None
        self._first_s: float | None = None
        self._monitor_start_s = -math.inf
        self._last_temp = math.nan
        self._last_ambient = math.nan
        self._last_ripple = math.nan
        self._last_tests: int | None = None
        self._last_nuisance: int | None = None
        self._last_test_ms = 0.0
        self._nominal_ms = 0.0
        self._ops_fraction = 0.0
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
        stuck_temp = temp == self._last_temp or amb == self._last_ambient
        if math.isfinite(temp):
            self._last_temp = temp
        if math.isfinite(amb):
            self._last_ambient = amb
        if (
            not stuck_temp
            and math.isfinite(temp)
            and math.isfinite(amb)
            and math.isfinite(cur_a)
            and sample.rating_a > 0
        ):
            u = cur_a / sample.rating_a
            excess = temp - amb - TEMP_RISE_AT_RATING_C * u * u
            cur.temp_sum += excess
            cur.temp_sumsq += excess * excess
            cur.temp_n += 1

        ripple = sample.ripple_pct
        if (
            sample.energized
            and math.isfinite(ripple)
            and ripple > 0.0
            and ripple != self._last_ripple
        ):
            cur.ripple_sum += ripple
            cur.ripple_sumsq += ripple * ripple
            cur.ripple_n += 1
        if math.isfinite(ripple) and sample.energized:
            self._last_ripple = ripple

        if (
            self._last_tests is not None
            and sample.self_tests > self._last_tests
            and sample.self_test_ms > 0
            and sample.nominal_transfer_ms > 0
        ):
            cur.test_sum += sample.self_test_ms / sample.nominal_transfer_ms
            cur.test_n += 1
            self._last_test_ms = sample.self_test_ms
            self._nominal_ms = sample.nominal_transfer_ms
        self._last_tests = sample.self_tests
        if self._last_nuisance is not None and sample.nuisance_trips > self._last_nuisance:
            cur.nuisance += sample.nuisance_trips - self._last_nuisance
        self._last_nuisance = sample.nuisance_trips
        if sample.rated_operations > 0:
            self._ops_fraction = sample.operations / sample.rated_operations

    def _close_bin(self) -> None:
        """Judge the bin in progress: baseline learning or the wear test."""
        bin_ = self._cur
        self._cur = None
        if bin_ is None or bin_.empty():
            return
        end = bin_.start_s + AGGREGATE_S
        if not self._base.frozen:
            self._baseline_bins.append(bin_)
            learned = self._first_s is not None and end - self._first_s >= BASELINE_S
            if learned and self._learn_baseline():
                self._monitor_start_s = max(self._monitor_start_s, end)
                self._baseline_bins = []
                return
        self._bins.append(bin_)
        self._evaluate(end)

    def _learn_baseline(self) -> bool:
        """Learn and freeze the baseline; False while there is not enough data yet."""
        bins = self._baseline_bins
        temp = [h for h in bins if h.temp_n >= MIN_SAMPLES]
        ripple = [h for h in bins if h.ripple_n >= MIN_SAMPLES]
        if len(temp) < MIN_BASELINE_BINS:
            return False  # keep learning (and monitoring on the priors) until there is enough
        base = self._base
        base.temp_offset, base.temp_sigma, base.temp_phi, base.temp_se = _learn(
            [(h.temp_sum, h.temp_sumsq, h.temp_n) for h in temp], PRIOR_TEMP_SIGMA_C
        )
        if len(ripple) >= MIN_BASELINE_BINS:
            base.ripple_level, base.ripple_sigma, base.ripple_phi, base.ripple_se = _learn(
                [(h.ripple_sum, h.ripple_sumsq, h.ripple_n) for h in ripple],
                PRIOR_RIPPLE_SIGMA_PCT,
            )
        tests = [h.test_sum / h.test_n for h in bins if h.test_n > 0]
        if tests:
            # Few tests a day: shrink towards the nominal time (two pseudo-tests at ratio 1).
            base.test_ratio = (sum(tests) + 2.0) / (len(tests) + 2)
            # Pooled with the prior's four pseudo-tests: a day holds only four real ones.
            var = (float(np.var(tests)) * len(tests) + 4 * PRIOR_SELF_TEST_SIGMA**2) / (
                len(tests) + 4
            )
            base.test_sigma = math.sqrt(var)
            base.test_se = base.test_sigma / math.sqrt(len(tests) + 2)
        base.frozen = True
        return True

    # --------------------------------------------------------------- the test
    def _bin_estimates(self, bin_: _Bin) -> dict[str, tuple[float, float]]:
        """Per signal: (severity estimate, its standard error) for one bin."""
        base = self._base
        out: dict[str, tuple[float, float]] = {}
        if bin_.temp_n >= MIN_SAMPLES:
            mean = bin_.temp_sum / bin_.temp_n
            se = base.temp_phi * base.temp_sigma / math.sqrt(bin_.temp_n)
            out["temperature"] = (
                (mean - base.temp_offset) / TEMP_AT_FULL_WEAR_C,
                se / TEMP_AT_FULL_WEAR_C,
            )
        if bin_.ripple_n >= MIN_SAMPLES:
            mean = bin_.ripple_sum / bin_.ripple_n
            se = base.ripple_phi * base.ripple_sigma / math.sqrt(bin_.ripple_n)
            out["ripple"] = (
                (mean - base.ripple_level) / RIPPLE_AT_FULL_WEAR_PCT,
                se / RIPPLE_AT_FULL_WEAR_PCT,
            )
        if bin_.test_n > 0 and self.kind == "ats":
            ratio = bin_.test_sum / bin_.test_n / base.test_ratio
            se = base.test_sigma / math.sqrt(bin_.test_n)
            out["self_test"] = ((ratio - 1.0) / TRANSFER_WEAR_FACTOR, se / TRANSFER_WEAR_FACTOR)
        return out

    def _evaluate(self, now_s: float, *, step_alert: bool = True) -> None:
        """GLR test of the quadratic wear shape over the window, then the alert state machine."""
        start = max(self._monitor_start_s, now_s - WINDOW_S)
        bins = [h for h in self._bins if h.start_s >= start]
        names = ("temperature", "ripple", "self_test")
        ev = _Eval(t_s=now_s)
        if bins:
            n = len(bins)
            t_h = np.array([h.start_s + 0.5 * AGGREGATE_S for h in bins])
            s = np.zeros((3, n))
            w = np.zeros((3, n))
            for j, bin_ in enumerate(bins):
                ests = self._bin_estimates(bin_)
                for i, name in enumerate(names):
                    est = ests.get(name)
                    if est is not None:
                        s[i, j], w[i, j] = est[0], 1.0 / (est[1] * est[1])
            wc = w.sum(axis=0)
            sc = np.divide((w * s).sum(axis=0), wc, out=np.zeros(n), where=wc > 0)
            # Candidate onsets: every bin from a day before the window to a bin ago.
            t0 = np.arange(start - 86400.0, now_s - AGGREGATE_S + 1.0, AGGREGATE_S)
            x2 = (np.maximum(t_h[None, :] - t0[:, None], 0.0) / 3600.0) ** 2
            num = x2 @ (wc * sc)
            den = (x2 * x2) @ wc
            # The learned baseline's own error shifts every bin of a signal alike, so it adds
            # (sum_h w x^2)^2 var(baseline) to the variance of the numerator.
            base_var = self._baseline_var()
            c = x2 @ w.T  # (onsets, signals)
            den_eff = den + (c * c) @ base_var
            ok = den > 0
            z = np.where(ok, num / np.sqrt(np.where(ok, den_eff, 1.0)), -np.inf)
            best = int(np.argmax(z))
            if math.isfinite(z[best]) and z[best] > 0:
                a = float(num[best] / den[best])
                ev.z = float(z[best])
                ev.a_per_h2 = a
                ev.se_a = math.sqrt(float(den_eff[best])) / float(den[best])
                ev.onset_s = float(t0[best])
                xb = x2[best]
                for i, name in enumerate(names):
                    d = float((xb * xb) @ w[i]) + float(c[best, i]) ** 2 * float(base_var[i])
                    if d > 0:
                        ev.z_signals[name] = float(xb @ (w[i] * s[i])) / math.sqrt(d)
                # Plausible onsets (profile likelihood), for the time-to-failure spread.
                keep = ok & (num > 0) & (z > ev.z - 3.0)
                weights = np.exp(0.5 * (z[keep] ** 2 - ev.z**2))
                weights /= weights.sum()
                ev.mixture = [
                    (float(wt), float(o), float(nm / dn), float(math.sqrt(de) / dn))
                    for wt, o, nm, dn, de in zip(
                        weights, t0[keep], num[keep], den[keep], den_eff[keep], strict=True
                    )
                ]
                # Back to normal: the last bins sit at the baseline, far below the curve.
                tail = min(RECOVERY_BINS, n)
                if tail == RECOVERY_BINS:
                    se_tail = 1.0 / np.sqrt(np.maximum(wc[-tail:], 1e-12))
                    at_base = np.all(np.abs(sc[-tail:]) < Z_SIGNAL * se_tail)
                    below = np.all(sc[-tail:] < a * xb[-tail:] - 4.0 * se_tail)
                    ev.recovered = bool(at_base and below and np.all(wc[-tail:] > 0))
            tail_w = wc[-RECOVERY_BINS:]
            if float(tail_w.sum()) > 0:
                ev.recent_s = float((tail_w * sc[-RECOVERY_BINS:]).sum() / tail_w.sum())
                ev.recent_se = 1.0 / math.sqrt(float(tail_w.sum()))
            for i, name in enumerate(names):
                recent = [(s[i, j], w[i, j]) for j in range(max(0, n - 3), n) if w[i, j] > 0]
                if recent:
                    ev.recent[name] = sum(v * wt for v, wt in recent) / sum(wt for _, wt in recent)
        nuisance = sum(h.nuisance for h in bins if h.start_s >= now_s - 86400.0)
        ev.z_signals["nuisance_trips"] = float(nuisance)
        ev.agree = sum(
            1 for k in ("temperature", "ripple", "self_test") if ev.z_signals.get(k, 0) >= Z_SIGNAL
        ) + (1 if nuisance >= NUISANCE_AGREE else 0)
        ev.detected = ev.z >= Z_ON and ev.agree >= 2 and not ev.recovered and ev.a_per_h2 > 0
        ev.p_fit = self._p_fit(ev, now_s)
        self._eval = ev
        if step_alert:
            self._step_alert(ev, now_s)

    def _baseline_var(self) -> FloatArray:
        """Variance of each signal's learned baseline, in severity units."""
        b = self._base
        return np.array(
            [
                (b.temp_se / TEMP_AT_FULL_WEAR_C) ** 2,
                (b.ripple_se / RIPPLE_AT_FULL_WEAR_PCT) ** 2,
                (b.test_se / TRANSFER_WEAR_FACTOR) ** 2,
            ]
        )

    def _p_fit(self, ev: _Eval, now_s: float) -> float:
        """P(severity reaches 1 within the horizon) under the fitted (t - onset)^2 shape.

        The simulator's precursor_scale (smaller = subtler) is not observable from the
        precursors alone; the estimate assumes precursor_scale = 1, which makes a subtle wear
        look slower than it is (the debounced wear detection below covers that case).
        """
        if ev.z < Z_OFF or not ev.mixture:
            return 0.0
        end_h = (now_s + self.horizon_s) / 3600.0
        p = 0.0
        for weight, onset, a, se_a in ev.mixture:
            x = end_h - onset / 3600.0
            if x <= 0:
                continue
            need = 1.0 / (x * x)
            p += weight * _phi((a - need) / se_a)
        return min(1.0, max(0.0, p))

    def _step_alert(self, ev: _Eval, now_s: float) -> None:
        """Debounce (consecutive detected bins) with hysteresis (off only when back to normal)."""
        self._streak = self._streak + 1 if ev.detected else 0
        if not self._alert:
            if self._streak >= DEBOUNCE_BINS:
                self._alert = True
                self._alert_since = now_s
            return
        self._quiet = self._quiet + 1 if ev.z < Z_OFF else 0
        if ev.recovered or self._quiet >= RECOVERY_BINS:
            # The episode is over (repaired or replaced): monitor afresh from here.
            self._clear(now_s - RECOVERY_BINS * AGGREGATE_S if ev.recovered else now_s)

    def _clear(self, monitor_from_s: float) -> None:
        self._alert = False
        self._alert_since = None
        self._streak = 0
        self._quiet = 0
        self._monitor_start_s = max(self._monitor_start_s, monitor_from_s)
        self._eval = _Eval(t_s=self._eval.t_s)

    # --------------------------------------------------------------- output
    def assess(self, now_s: float) -> HealthAssessment:
        """Health, failure risk and the debounced alert at ``now_s`` (judged on whole bins)."""
        if self._cur is not None and now_s >= self._cur.start_s + AGGREGATE_S:
            self._close_bin()
        ev = self._eval
        ttf: float | None = None
        severity = 0.0
        if ev.z >= Z_OFF and ev.a_per_h2 > 0 and math.isfinite(ev.onset_s):
            fail_s = ev.onset_s + 3600.0 / math.sqrt(ev.a_per_h2)
            ttf = max(0.0, fail_s - now_s)
        if ttf is not None and ev.agree >= 2:
            x = max(0.0, (now_s - ev.onset_s) / 3600.0)
            severity = ev.a_per_h2 * x * x
        elif math.isfinite(ev.recent_se):
            # No confirmed trend: only what the last bins show beyond doubt.
            severity = max(0.0, ev.recent_s - 2.0 * ev.recent_se)
        # Weak evidence must not read as risk: a noise-level curvature with an onset days ago
        # would extrapolate to a near failure. Ramp the fit in between Z_OFF and Z_ON.
        p_fit = self._p_fit(ev, now_s) * min(1.0, max(0.0, (ev.z - Z_OFF) / (Z_ON - Z_OFF)))
        if ev.agree < 2:
            p_fit *= 0.3  # one signal alone is more likely a sensor or model problem
        probability = p_fit
        if self._alert:
            # A confirmed, progressing wear trend is called "failing within the horizon" even
            # when the fitted time to failure is longer: the shape is (t - onset)^2, so by the
            # time the precursors are measurable most of the remaining life is short, the fit
            # assumes full-scale precursors (real ones may be subtler, so failure earlier), and
            # the operator wants the earliest safe warning.
            probability = max(probability, 0.6 + 0.35 * min(1.0, (ev.z - Z_ON) / (2 * Z_ON)))
        health = 100.0 * (1.0 - min(1.0, max(0.0, severity)))
        if self._ops_fraction > 0.8:
            health -= 50.0 * min(0.2, self._ops_fraction - 0.8)
        health = min(100.0, max(0.0, health))
        scores: dict[str, float] = {
            "z": ev.z,
            "severity": severity,
            "agreeing_signals": float(ev.agree),
            "onset_s": ev.onset_s if ev.z >= Z_OFF else math.nan,
            "baseline_frozen": 1.0 if self._base.frozen else 0.0,
        }
        scores.update({f"z_{k}": v for k, v in ev.z_signals.items()})
        return HealthAssessment(
            component=self.component,
            health=health,
            failure_probability=probability,
            time_to_failure_s=ttf,
            alert=self._alert,
            signals=self._texts(ev, ttf),
            scores=scores,
        )

    def _texts(self, ev: _Eval, ttf: float | None) -> tuple[str, ...]:
        """What an operator reads: the evidence in physical units."""
        out: list[str] = []
        zs = ev.z_signals
        rising = ev.a_per_h2 > 0 and ev.z >= Z_OFF
        trend = "rising" if rising else "steady"
        part = "contact" if self.kind == "ats" else "terminal"
        temp = ev.recent.get("temperature")
        if temp is not None and zs.get("temperature", 0.0) >= Z_SIGNAL:
            out.append(
                f"{part} temperature {temp * TEMP_AT_FULL_WEAR_C:.1f} °C above what load and "
                f"room explain, {trend}"
            )
        ripple = ev.recent.get("ripple")
        if ripple is not None and zs.get("ripple", 0.0) >= Z_SIGNAL:
            level = self._base.ripple_level + ripple * RIPPLE_AT_FULL_WEAR_PCT
            out.append(
                f"output ripple {level:.2f} % (normal {self._base.ripple_level:.2f} %), {trend}"
            )
        test = ev.recent.get("self_test")
        if test is not None and zs.get("self_test", 0.0) >= Z_SIGNAL:
            out.append(
                f"self-test transfer took {self._last_test_ms:.0f} ms, "
                f"{test * TRANSFER_WEAR_FACTOR * 100:.0f} % longer than normal"
            )
        trips = int(zs.get("nuisance_trips", 0.0))
        if trips:
            out.append(f"{trips} nuisance trip{'s' if trips > 1 else ''} in the last 24 h")
        if self._ops_fraction > 0.8:
            out.append(f"mechanism at {self._ops_fraction * 100:.0f} % of its rated operations")
        if self._alert and math.isfinite(ev.onset_s):
            since = datetime.fromtimestamp(ev.onset_s, UTC).strftime("%Y-%m-%d %H:%M UTC")
            when = f"failure expected in about {ttf / 3600:.0f} h" if ttf is not None else ""
            out.append(f"wear trend since about {since}" + (f", {when}" if when else ""))
        return tuple(out)

    def mark_repaired(self, now_s: float) -> None:
        """After a repair: end the episode and monitor afresh; the baseline is kept."""
        if self._cur is not None:
            self._cur = _Bin(self._cur.start_s)  # drop the pre-repair part of this bin
        self._clear(now_s)

    # ----------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """Bounded state: baseline, the last days of bin sums and the alert state."""
        return {
            "version": FORMAT_VERSION,
            "component": self.component,
            "kind": self.kind,
            "horizon_s": self.horizon_s,
            "baseline": asdict(self._base),
            "baseline_bins": [_pack(h) for h in self._baseline_bins],
            "bins": [_pack(h) for h in self._bins],
            "cur": None if self._cur is None else _pack(self._cur),
            "first_s": self._first_s,
            "monitor_start_s": (
                None if math.isinf(self._monitor_start_s) else self._monitor_start_s
            ),
            "last": [
                _nan_none(self._last_temp),
                _nan_none(self._last_ambient),
                _nan_none(self._last_ripple),
            ],
            "last_tests": self._last_tests,
            "last_nuisance": self._last_nuisance,
            "last_test_ms": self._last_test_ms,
            "nominal_ms": self._nominal_ms,
            "ops_fraction": self._ops_fraction,
            "streak": self._streak,
            "quiet": self._quiet,
            "alert": self._alert,
            "alert_since": self._alert_since,
            "eval_t_s": None if math.isinf(self._eval.t_s) else self._eval.t_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DegradationMonitor:
        """Rebuild from :meth:`to_dict` (the wear test is re-run on the restored bins)."""
        kind: ComponentKind = "ats" if data["kind"] == "ats" else "mpdu"
        self = cls(str(data["component"]), kind, horizon_s=float(data["horizon_s"]))
        self._base = _Baseline(**data["baseline"])
        self._baseline_bins = [_unpack(h) for h in data["baseline_bins"]]
        self._bins.extend(_unpack(h) for h in data["bins"])
        self._cur = None if data["cur"] is None else _unpack(data["cur"])
        self._first_s = data["first_s"]
        start = data["monitor_start_s"]
        self._monitor_start_s = -math.inf if start is None else float(start)
        last = [math.nan if v is None else float(v) for v in data["last"]]
        self._last_temp, self._last_ambient, self._last_ripple = last
        self._last_tests = data["last_tests"]
        self._last_nuisance = data["last_nuisance"]
        self._last_test_ms = float(data["last_test_ms"])
        self._nominal_ms = float(data["nominal_ms"])
        self._ops_fraction = float(data["ops_fraction"])
        streak, quiet, alert = int(data["streak"]), int(data["quiet"]), bool(data["alert"])
        if data["eval_t_s"] is not None and self._bins:
            # Re-run the test without stepping the state machine, which is restored as saved.
            self._evaluate(float(data["eval_t_s"]), step_alert=False)
        self._streak, self._quiet, self._alert = streak, quiet, alert
        self._alert_since = data["alert_since"]
        return self


def _pack(b: _Bin) -> list[float]:
    """A bin as a short list (field order of :class:`_Bin`), floats rounded for JSON."""
    return [round(v, 6) if isinstance(v, float) else v for v in astuple(b)]


def _unpack(v: list[float]) -> _Bin:
    return _Bin(
        start_s=float(v[0]),
        temp_sum=float(v[1]),
        temp_sumsq=float(v[2]),
        temp_n=int(v[3]),
        ripple_sum=float(v[4]),
        ripple_sumsq=float(v[5]),
        ripple_n=int(v[6]),
        test_sum=float(v[7]),
        test_n=int(v[8]),
        nuisance=int(v[9]),
    )


def _nan_none(v: float) -> float | None:
    return None if math.isnan(v) else v


def _learn(
    sums: list[tuple[float, float, int]], prior_sigma: float
) -> tuple[float, float, float, float]:
    """(level, per-sample sigma, over-dispersion of bin means, level's standard error)."""
    means = np.array([s / n for s, _, n in sums])
    counts = np.array([n for _, _, n in sums], dtype=np.float64)
    ss = np.array([sq - s * s / n for s, sq, n in sums])
    dof = float(np.sum(counts - 1.0))
    sigma = math.sqrt(max(float(np.sum(ss)) / dof, 0.0)) if dof > 0 else prior_sigma
    sigma = max(sigma, 0.25 * prior_sigma)
    level = float(np.median(means))
    # Robust spread of the bin means against what sample noise alone explains.
    mad = float(np.median(np.abs(means - level))) * 1.4826
    expected = sigma / math.sqrt(float(np.median(counts)))
    phi = min(3.0, max(1.0, mad / expected if expected > 0 else 1.0))
    # The median of N bin means: efficiency pi/2 against the mean.
    se = math.sqrt(math.pi / 2.0) * phi * expected / math.sqrt(len(means))
    return level, sigma, phi, se
