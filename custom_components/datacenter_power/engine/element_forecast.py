"""ATS/MPDU load forecasts as sums of circuit forecasts under an assignment of circuits to paths.

Element loads are forecast as sums of *circuit* forecasts under the current assignment, so they
stay right when circuits move (a per-element series would need relearning after every move).
Per-circuit P90s are not summed directly (that is far too pessimistic for 30 circuits); each
circuit's profile is ``p50 + k * sigma`` with ``k`` chosen so that the circuits together reach
the aggregate P90 under a partial error correlation (``PolicyConfig.error_correlation``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from .forecast import Z90, Forecast, LoadForecaster
from .observation import ScheduledLoad
from .policy_config import PolicyConfig
from .topology import Topology

__all__ = ["ElementForecasts"]

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


def sigma_of(fc: Forecast) -> FloatArray:
    """A forecast's standard deviation implied by its P50-P90 spread."""
    return np.maximum(fc.p90 - fc.p50, 0.0) / Z90


class ElementForecasts:
    """One :class:`LoadForecaster` per circuit and the element sums they imply."""

    def __init__(self, topology: Topology, config: PolicyConfig) -> None:
        self.topology = topology
        self.config = cfg = config
        self.forecasters = {
            c: LoadForecaster(
                resample_s=cfg.resample_s,
                horizon_s=cfg.horizon_s,
                refit_interval_s=cfg.refit_interval_s,
                utc_offset_s=cfg.utc_offset_s,
            )
            for c in topology.circuits
        }
        self.refreshed_s = -float("inf")
        self.circuit_fc: dict[str, Forecast] = {}
        self.times: FloatArray = np.zeros(0)
        self.profiles: dict[str, FloatArray] = {}
        self.element_fc: dict[str, Forecast] = {}
        self.assignment: dict[str, str | None] = {}

    def observe(self, circuit: str, t_s: float, current_a: float) -> None:
        """One circuit reading (NaN: no demand information)."""
        self.forecasters[circuit].observe(t_s, current_a)

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

    def _build_profiles(self, assignment: Mapping[str, str | None]) -> None:
        """Per-circuit effective P90 profiles and element forecasts under the assignment."""
        rho = self.config.error_correlation
        fcs = self.circuit_fc
        n = len(self.times)
        if not fcs or n == 0:
            self.profiles = {}
            self.element_fc = {}
            return
        sig = {c: sigma_of(f) for c, f in fcs.items()}
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
                sg = sigma_of(self.circuit_fc[c])
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

    def loads(
        self,
        now_s: float,
        circuit_a: Mapping[str, float],
        *,
        until_s: float | None = None,
        margin: float = 0.0,
    ) -> tuple[dict[str, FloatArray], FloatArray]:
        """Per-circuit profiles on [now, forecast grid...], inflated by ``margin``."""
        times = self.times
        if until_s is not None:
            times = times[times <= until_s]
        n = len(times)
        grid = np.concatenate(([now_s], times))
        loads: dict[str, FloatArray] = {}
        for c in self.topology.circuits:
            prof = self.profiles.get(c)
            now_a = circuit_a.get(c, 0.0)
            series = np.full(n + 1, now_a) if prof is None else np.concatenate(([now_a], prof[:n]))
            loads[c] = series * (1.0 + margin)
        return loads, grid
