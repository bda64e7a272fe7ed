"""ATS/MPDU load forecasts as sums of circuit forecasts under an assignment of circuits to paths.

Element loads are forecast as sums of *circuit* forecasts under the current assignment, so they
stay right when circuits move (a per-element series would need relearning after every move).
Per-circuit P90s are not summed directly (that is far too pessimistic for 30 circuits); each
circuit's profile is ``p50 + k * sigma`` with ``k`` chosen so that the circuits together reach
the aggregate P90 under a partial error correlation (``PolicyConfig.error_correlation``).

The spread is then **calibrated from data**: every element forecast made is kept until its time
comes, and compared with what the same circuits (the element's members when it was made, so
later moves do not spoil the comparison) then drew. The standardised errors give one scale for
every sigma such that the P10-P90 band holds ``PolicyConfig.band_target`` (80 %) of outcomes;
:meth:`ElementForecasts.calibration` reports the coverage achieved.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

from .forecast import Z90, Forecast, LoadForecaster, NonWorkingDays
from .observation import ScheduledLoad
from .policy_config import PolicyConfig
from .topology import Topology

__all__ = ["ElementForecasts", "LoadProfiles"]

type FloatArray = npt.NDArray[np.float64]
type KnownLoad = Callable[[FloatArray], FloatArray]

_EPS: Final = 1e-9


def known_load(schedule: Sequence[ScheduledLoad], circuit: str) -> KnownLoad | None:
    """The announced extra load of ``circuit`` as a function of time (None: no work)."""
    works = [w for w in schedule if circuit in w.circuits]
    if not works:
        return None

    def known(t: FloatArray) -> FloatArray:
        out = np.zeros(np.shape(t))
        for w in works:
            out += np.where((t >= w.start_s) & (t < w.end_s), w.extra_a, 0.0)
        return out

    return known


@dataclass(frozen=True, slots=True)
class _Pending:
    """One element forecast point waiting for its outcome."""

    members: tuple[str, ...]
    p50: float
    sigma: float
    """Uncalibrated (scale 1)."""
    scale: float
    """The calibration scale in force when the forecast was published."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """How well the published P10-P90 bands held the outcomes."""

    samples: int
    coverage: float | None
    """Share of outcomes inside the published P10-P90 band (target 0.8)."""
    below_p90: float | None
    scale: float
    """Factor applied to every forecast sigma now."""


@dataclass(frozen=True, slots=True)
class LoadProfiles:
    """What the policy plans against: every circuit's effective P90 profile on the forecast grid.

    :meth:`ElementForecasts.load_profiles` copies them out at a decision tick, so a plan made
    outside the policy (a migration a person requests) stands on the same forecasts, margin and
    horizons as the engine's own plans.
    """

    times: FloatArray
    profiles: Mapping[str, FloatArray]
    margin: float = 0.0
    """Planned loads are inflated by this fraction (``PolicyConfig.plan_margin``)."""
    min_horizon_s: float = 0.0
    """A drain must keep every element within its limit at least this far ahead
    (``PolicyConfig.drain_min_horizon_s``); the whole horizon is tried first."""

    def loads(
        self,
        circuits: Sequence[str] | Mapping[str, object],
        now_s: float,
        circuit_a: Mapping[str, float],
        *,
        until_s: float | None = None,
        from_s: float | None = None,
        margin: float = 0.0,
    ) -> tuple[dict[str, FloatArray], FloatArray]:
        """Per-circuit profiles on [now, forecast grid...], inflated by ``margin``; a circuit
        without a profile draws what it draws now.

        ``from_s`` (later than now): only the grid times from then on, without "now" (a plan
        to be executed at ``from_s``)."""
        keep = np.ones(len(self.times), dtype=bool)
        if until_s is not None:
            keep &= self.times <= until_s
        deferred = from_s is not None and from_s > now_s
        if from_s is not None and deferred:
            keep &= self.times >= from_s
        times = self.times[keep]
        grid = times if deferred else np.concatenate(([now_s], times))
        loads: dict[str, FloatArray] = {}
        for c in circuits:
            prof = self.profiles.get(c)
            now_a = circuit_a.get(c, 0.0)
            if prof is None:
                series = np.full(len(grid), now_a)
            elif deferred:
                series = prof[: len(keep)][keep]
            else:
                series = np.concatenate(([now_a], prof[: len(keep)][keep]))
            loads[c] = series * (1.0 + margin)
        return loads, grid


def sigma_of(fc: Forecast) -> FloatArray:
    """A forecast's standard deviation implied by its P50-P90 spread."""
    return np.maximum(fc.p90 - fc.p50, 0.0) / Z90


class ElementForecasts:
    """One :class:`LoadForecaster` per circuit and the element sums they imply."""

    def __init__(self, topology: Topology, config: PolicyConfig) -> None:
        self.topology = topology
        self.config = cfg = config
        # Each circuit refits at its own phase of the refit interval, so the daily fits are
        # spread over the day instead of all falling on one refresh.
        n = max(1, len(topology.circuits))
        self.forecasters = {
            c: LoadForecaster(
                resample_s=cfg.resample_s,
                horizon_s=cfg.horizon_s,
                refit_interval_s=cfg.refit_interval_s,
                utc_offset_s=cfg.utc_offset_s,
                refit_phase_s=cfg.refit_interval_s * i / n,
            )
            for i, c in enumerate(topology.circuits)
        }
        self.refreshed_s = -float("inf")
        self.circuit_fc: dict[str, Forecast] = {}
        self.times: FloatArray = np.zeros(0)
        self.profiles: dict[str, FloatArray] = {}
        self.element_fc: dict[str, Forecast] = {}
        self.assignment: dict[str, str | None] = {}
        self.scale = 1.0
        self._pending: dict[int, list[_Pending]] = {}
        self._z: deque[float] = deque(maxlen=config.calibration_samples)
        self._hits: deque[tuple[bool, bool]] = deque(maxlen=config.calibration_samples)

    def set_non_working_days(self, days: NonWorkingDays | Collection[dt.date] | None) -> None:
        """Holidays and other non-working days for every circuit's forecaster (the Home
        Assistant layer can feed them from the ``workday`` integration)."""
        for f in self.forecasters.values():
            f.set_non_working_days(days)

    def observe(self, circuit: str, t_s: float, current_a: float) -> None:
        """One circuit reading (NaN: no demand information)."""
        self.forecasters[circuit].observe(t_s, current_a)

    def outcome(self, t_s: float, circuit_a: Mapping[str, float], live: Mapping[str, bool]) -> None:
        """What every circuit draws at ``t_s`` (one poll): settles the forecasts made for now."""
        keys = [k for k in self._pending if k <= t_s]
        if not keys:
            return
        due = [
            p
            for k in keys
            for p in self._pending.pop(k)
            if t_s - k <= 1.5 * self.config.poll_s  # a late reading is another moment's load
        ]
        for p in due:
            if p.sigma <= 0.0 or not all(live.get(c, False) for c in p.members):
                continue
            z = (sum(circuit_a.get(c, 0.0) for c in p.members) - p.p50) / p.sigma
            self._z.append(z)
            self._hits.append((abs(z) <= Z90 * p.scale, z <= Z90 * p.scale))
        if len(self._z) >= self.config.calibration_min_samples:
            q = float(np.quantile(np.abs(np.asarray(self._z)), self.config.band_target))
            lo, hi = self.config.calibration_bounds
            self.scale = min(hi, max(lo, q / Z90))

    def calibration(self) -> Calibration:
        """Coverage of the published bands so far and the scale in force."""
        n = len(self._hits)
        return Calibration(
            samples=n,
            coverage=sum(h for h, _ in self._hits) / n if n else None,
            below_p90=sum(b for _, b in self._hits) / n if n else None,
            scale=self.scale,
        )

    def _remember(self, assignment: Mapping[str, str | None]) -> None:
        """Keep the element forecasts just made until their outcomes come."""
        horizon = self.config.calibration_lead_s
        for e, fc in self.element_fc.items():
            members = tuple(
                c for c in self.topology.circuits_through(e, assignment) if c in self.circuit_fc
            )
            if not members:
                continue
            sig = (fc.p90 - fc.p50) / (Z90 * self.scale)
            for t, p50, sg in zip(fc.times(), fc.p50, sig, strict=True):
                if t - self.refreshed_s > horizon:
                    break
                self._pending.setdefault(round(float(t)), []).append(
                    _Pending(members, float(p50), float(sg), self.scale)
                )
        stale = [k for k in self._pending if k < self.refreshed_s - 2 * horizon]
        for k in stale:
            del self._pending[k]

    def refresh(
        self,
        now: float,
        schedule: Sequence[ScheduledLoad],
        assignment: Mapping[str, str | None],
    ) -> None:
        """New circuit forecasts (announced work as a known regressor) and element sums."""
        cfg = self.config
        self.circuit_fc = {
            c: f.forecast(now, known=known_load(schedule, c), horizon_s=cfg.horizon_s)
            for c, f in self.forecasters.items()
        }
        self.refreshed_s = now
        first = next(iter(self.circuit_fc.values()), None)
        self.times = first.times() if first is not None else np.zeros(0)
        self._build_profiles(assignment)
        self._remember(assignment)

    def _build_profiles(self, assignment: Mapping[str, str | None]) -> None:
        """Per-circuit effective P90 profiles and element forecasts under the assignment."""
        rho = self.config.error_correlation
        fcs = self.circuit_fc
        n = len(self.times)
        if not fcs or n == 0:
            self.profiles = {}
            self.element_fc = {}
            return
        sig = {c: sigma_of(f) * self.scale for c, f in fcs.items()}
        s = np.vstack([sig[c] for c in fcs])
        sum_sig = s.sum(axis=0)
        agg = np.sqrt((1.0 - rho) * (s * s).sum(axis=0) + rho * sum_sig * sum_sig)
        k = np.where(sum_sig > _EPS, Z90 * agg / np.maximum(sum_sig, _EPS), Z90)
        self.profiles = {c: fcs[c].p50 + k * sig[c] for c in fcs}
        self.update_assignment(assignment)

    def update_assignment(self, assignment: Mapping[str, str | None]) -> None:
        """Re-sum the element forecasts for a new assignment (no refit)."""
        self.element_fc = self.element_forecasts(assignment)
        self.assignment = dict(assignment)

    def element_forecasts(self, assignment: Mapping[str, str | None]) -> dict[str, Forecast]:
        """Every element's P10/P50/P90 as the sum of its circuits' forecasts."""
        rho = self.config.error_correlation
        n = len(self.times)
        out: dict[str, Forecast] = {}
        for e in self.topology.elements:
            members = [
                c for c in self.topology.circuits_through(e, assignment) if c in self.circuit_fc
            ]
            p50 = np.zeros(n)
            ssq = np.zeros(n)
            ssum = np.zeros(n)
            for c in members:
                sg = sigma_of(self.circuit_fc[c]) * self.scale
                p50 += self.circuit_fc[c].p50
                ssq += sg * sg
                ssum += sg
            sigma = np.sqrt((1.0 - rho) * ssq + rho * ssum * ssum)
            start = float(self.times[0]) if n else self.refreshed_s
            out[e] = Forecast(
                start,
                self.config.resample_s,
                np.maximum(p50 - Z90 * sigma, 0.0),
                p50,
                p50 + Z90 * sigma,
                "circuit-sum",
            )
        return out

    def expected_over_s(
        self,
        assignment: Mapping[str, str | None],
        until_s: float = math.inf,
        weight: Callable[[FloatArray], FloatArray] | None = None,
    ) -> float:
        """Expected seconds, up to ``until_s``, with some element above its continuous limit
        under ``assignment``: each element's load taken as normal with its forecast P50 and
        its calibrated P50-P90 spread, elements independent, one forecast step per point;
        ``weight`` (of the forecast times) scales each point (the chance that the load is
        still there then)."""
        fcs = self.element_forecasts(assignment)
        n = len(self.times)
        if n == 0:
            return 0.0
        inside = (self.times <= until_s).astype(np.float64)
        if weight is not None:
            inside = inside * weight(self.times)
        none_over = np.ones(n)
        for e, fc in fcs.items():
            limit = self.topology.limit_a(e)
            sigma = np.maximum(fc.p90 - fc.p50, 0.0) / Z90
            z = (limit - fc.p50) / np.maximum(sigma, _EPS)
            p_over = np.where(sigma > _EPS, ndtr(-z), (fc.p50 > limit).astype(np.float64))
            none_over *= 1.0 - p_over
        return float(np.sum((1.0 - none_over) * inside)) * self.config.resample_s

    def load_profiles(self) -> LoadProfiles:
        """The planning profiles now (a refresh builds new arrays, so this stays as it is)."""
        return LoadProfiles(
            self.times,
            dict(self.profiles),
            margin=self.config.plan_margin,
            min_horizon_s=self.config.drain_min_horizon_s,
        )

    def loads(
        self,
        now_s: float,
        circuit_a: Mapping[str, float],
        *,
        until_s: float | None = None,
        from_s: float | None = None,
        margin: float = 0.0,
        spread: float = 1.0,
    ) -> tuple[dict[str, FloatArray], FloatArray]:
        """Per-circuit profiles on [now, forecast grid...], inflated by ``margin`` (see
        :meth:`LoadProfiles.loads`). ``spread``: the share of each circuit's P50-to-effective-
        P90 spread included (1: the effective P90; 0: the expected load, what a plan may count
        on when nothing fits with the P90 margin)."""
        profiles = self.profiles
        if spread != 1.0:
            profiles = {
                c: fc.p50 + spread * (self.profiles.get(c, fc.p50) - fc.p50)
                for c, fc in self.circuit_fc.items()
            }
        return LoadProfiles(self.times, profiles).loads(
            self.topology.circuits, now_s, circuit_a, until_s=until_s, from_s=from_s, margin=margin
        )

    def total_profile(self, circuit_a: Mapping[str, float]) -> FloatArray:
        """The plant's total load (every circuit's profile) on [now, forecast grid...]."""
        total = np.full(len(self.times) + 1, float(sum(circuit_a.values())))
        if self.profiles:
            total[1:] = np.sum(list(self.profiles.values()), axis=0)
        return total
