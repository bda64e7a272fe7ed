"""The simulated plant: topology state, switching, breakers, precursors, commands and metrics.

One :class:`Plant` steps a scenario in fixed physics steps. The hot path is vectorised with numpy
over circuits (the only large dimension); the few ATSs are handled in a short loop. Randomness
comes from generators seeded by the scenario and consumed identically every step, so a seed
gives the same run however it is chunked (``advance_to`` in one call or many) and however often
``telemetry()`` is read; sensor noise is drawn per step, not per read. Rules beyond
``docs/scenario-format.md``, fixed here:

* an ATS takes its preferred source (initially the first) when available, else the first
  available one; a source change interrupts its output for ``transfer_time * (1 + 1.5 g s)``
  (g: the wear event's ``transfer`` gain).
  ``inhibit`` blocks discretionary transfers (retransfer to the preferred source, commanded
  transfers) but never the transfer away from a lost source. ``command_ats_transfer`` makes the
  target the preferred source, so the ATS stays there;
* an SBM whose active path dies moves to the first other steadily energised path after
  ``bypass_delay`` and stays there (no automatic
  return); commanded path changes are make-before-break;
* a circuit power gap longer than ``ride_through``, or a loss of power, is one interruption (each
  SBM counts its own, with the time of the last, from the plant's start; the metrics from t=0); the
  undelivered demand x nominal voltage x time is unserved energy, whatever the cause (a commanded
  SBM or MPDU output off included);
* ``over_limit_s`` counts time during which at least one ATS or MPDU is above 80 % of rating;
* a repaired component is healthy again (its wear severity drops to 0); while failed it keeps
  the severity it had at failure. Self-tests run only on an ATS with live output;
* commands to a device under ``comms_loss`` are rejected (it answers nothing).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from .breakers import ThermalBreakers
from .events import Action, Transition, build_timeline
from .loads import LoadModel
from .scenario import Scenario
from .telemetry import (
    AtsTelemetry,
    CircuitTelemetry,
    EnvTelemetry,
    MpduTelemetry,
    PlantTelemetry,
)

__all__ = ["CommandRejected", "Plant", "PlantMetrics"]

type FloatArray = npt.NDArray[np.float64]
type IntArray = npt.NDArray[np.int64]
type BoolArray = npt.NDArray[np.bool_]

NOMINAL_HZ: Final = 50.0
CONTINUOUS_LIMIT: Final = 0.8
OVER_TEMPERATURE_C: Final = 60.0
TEMP_RISE_AT_FULL_WEAR_C: Final = 12.0
TEMP_NOISE_C: Final = 0.4
RIPPLE_AT_FULL_WEAR_PCT: Final = 1.6
RIPPLE_NOISE_PCT: Final = 0.05
TRANSFER_WEAR_FACTOR: Final = 1.5
SELF_TEST_NOISE: Final = 0.03
SELF_TEST_PERIOD_S: Final = 6 * 3600.0
SELF_TEST_OFFSET_S: Final = 3 * 3600.0
NUISANCE_TRIPS_PER_S: Final = 0.5 / 3600.0
AMBIENT_NOISE_C: Final = 0.1
HUMIDITY_NOISE_PCT: Final = 0.5
ENV_ID: Final = "env1"
# Rows of the per-signal precursor severity arrays (severity x the event's gain for the signal).
_TEMP, _RIPPLE, _TRANSFER, _NUISANCE = range(4)

# Fields of each device frozen by a ``sensor_stuck`` event (state flags keep updating).
_ATS_MEASUREMENTS: Final = (
    "source_voltage_v",
    "source_frequency_hz",
    "phase_angle_deg",
    "output_voltage_v",
    "load_current_a",
    "load_power_kw",
    "energy_kwh",
    "contact_temperature_c",
    "ripple_pct",
    "time_on_source_s",
)
_MPDU_MEASUREMENTS: Final = (
    "input_voltage_v",
    "current_a",
    "power_kw",
    "energy_kwh",
    "terminal_temperature_c",
    "ripple_pct",
)
_CIRCUIT_MEASUREMENTS: Final = ("current_a", "voltage_v", "power_kw", "energy_kwh")
_ENV_MEASUREMENTS: Final = ("ambient_c", "humidity_pct")


class CommandRejected(Exception):
    """A command the plant refuses; the message says why."""


@dataclass(frozen=True, slots=True)
class PlantMetrics:
    """Outcome counters over t >= 0 (see the metrics table in scenario-format.md)."""

    interruptions: int = 0
    unserved_energy_wh: float = 0.0
    breaker_trips: int = 0
    over_limit_s: float = 0.0
    """Seconds during which at least one ATS or MPDU was above 80 % of its rating."""
    max_utilization: float = 0.0
    switch_operations: int = 0
    """SBM path changes, commanded and local bypass."""
    failed_at_s: dict[str, float] = field(default_factory=dict)
    """Per ``*_wear`` target: when it failed."""
    load_on_target_at_failure_a: dict[str, float] = field(default_factory=dict)
    """Per ``*_wear`` target: the current it carried in the step just before failing."""


class Plant:
    """A running plant. ``t_s`` is seconds since scenario t=0 (negative during history)."""

    def __init__(self, scenario: Scenario, *, start_s: float | None = None) -> None:
        sc = scenario
        self.scenario = sc
        self.step_s = sc.step_s
        self._t0 = -sc.history_s if start_s is None else float(start_s)
        self._k = 0
        self._t = self._t0
        self._start_utc = sc.start.astimezone(UTC)

        seeds = np.random.SeedSequence([sc.seed, 0x91A47]).spawn(3)
        self._rng_sensor = np.random.default_rng(seeds[1])
        self._rng_nuisance = np.random.default_rng(seeds[2])
        self._loads = LoadModel(sc, np.random.default_rng(seeds[0]))

        # ---- static topology ----
        self._src_ids = [s.id for s in sc.sources]
        self._ats_ids = [a.id for a in sc.ats]
        self._mpdu_ids = [m.id for m in sc.mpdus]
        self._circ_ids = [c.id for c in sc.circuits]
        self._src_ix = {s: i for i, s in enumerate(self._src_ids)}
        self._ats_ix = {a: i for i, a in enumerate(self._ats_ids)}
        self._mpdu_ix = {m: i for i, m in enumerate(self._mpdu_ids)}
        self._circ_ix = {c: i for i, c in enumerate(self._circ_ids)}
        n_a, n_m, n_c = len(sc.ats), len(sc.mpdus), len(sc.circuits)
        self._n_a, self._n_m, self._n_c = n_a, n_m, n_c

        self._src_v = np.array([s.nominal_v for s in sc.sources])
        self._src_down = np.zeros(len(sc.sources), dtype=np.int64)

        self._ats_src = [[self._src_ix[s] for s in a.sources] for a in sc.ats]
        self._ats_rating = np.array([a.rating_a for a in sc.ats])
        self._ats_tt = np.array([a.transfer_time_s for a in sc.ats])
        self._ats_active = [-1] * n_a
        self._ats_pref = [0] * n_a
        self._ats_inhibit = [False] * n_a
        self._ats_fail = np.zeros(n_a, dtype=np.int64)
        self._ats_live = np.zeros(n_a, dtype=np.bool_)
        self._ats_volt = np.zeros(n_a)
        self._ats_sev = np.zeros((4, n_a))
        """Per precursor signal (rows ``_TEMP``...): wear severity x the event's gain."""
        self._ats_rise = np.array([a.thermal_rise_c for a in sc.ats])
        self._ats_ripple0 = np.array([a.ripple_pct for a in sc.ats])
        self._ats_transfers = [0] * n_a
        self._ats_transfers_failure = [0] * n_a
        self._ats_self_tests = [0] * n_a
        self._ats_commanded_tests = [0] * n_a
        self._ats_last_transfer_ms = [0.0] * n_a
        self._ats_last_self_test_ms = [0.0] * n_a
        self._ats_time_on = [np.zeros(len(s)) for s in self._ats_src]
        self._ats_energy = np.zeros(n_a)
        self._ats_alarm_lost = [False] * n_a
        self._ats_temp = np.zeros(n_a)
        self._ats_ripple = np.zeros(n_a)

        self._m_ats = np.array([self._ats_ix[m.ats] for m in sc.mpdus], dtype=np.int64)
        self._m_rating = np.array([m.rating_a for m in sc.mpdus])
        self._m_on = np.ones(n_m, dtype=np.bool_)
        self._m_fail = np.zeros(n_m, dtype=np.int64)
        self._m_live = np.zeros(n_m, dtype=np.bool_)
        self._m_sev = np.zeros((4, n_m))
        self._m_rise = np.array([m.thermal_rise_c for m in sc.mpdus])
        self._m_ripple0 = np.array([m.ripple_pct for m in sc.mpdus])
        self._m_nuisance = np.zeros(n_m, dtype=np.int64)
        self._m_energy = np.zeros(n_m)
        self._m_temp = np.zeros(n_m)
        self._m_ripple = np.zeros(n_m)

        k_paths = max(len(c.paths) for c in sc.circuits)
        self._P = np.zeros((n_c, k_paths), dtype=np.int64)
        self._P_valid = np.zeros((n_c, k_paths), dtype=np.bool_)
        for i, c in enumerate(sc.circuits):
            for j, m in enumerate(c.paths):
                self._P[i, j] = self._mpdu_ix[m]
                self._P_valid[i, j] = True
        self._rows = np.arange(n_c)
        self._c_rating = np.array([c.rating_a for c in sc.circuits])
        self._c_vnom = np.array(
            [self._src_v[self._ats_src[self._m_ats[self._P[i, 0]]][0]] for i in range(n_c)]
        )
        self._c_active = np.zeros(n_c, dtype=np.int64)
        self._c_active_mpdu = self._P[:, 0].copy()
        self._c_on = np.ones(n_c, dtype=np.bool_)
        self._c_fail = np.zeros(n_c, dtype=np.int64)
        self._c_energized = np.ones(n_c, dtype=np.bool_)
        self._c_volt = np.zeros(n_c)
        self._c_energy = np.zeros(n_c)
        self._c_bypass = np.zeros(n_c, dtype=np.int64)
        self._c_switch = np.zeros(n_c, dtype=np.int64)
        self._c_interrupts = np.zeros(n_c, dtype=np.int64)
        """Per SBM: interruptions since the plant started (history too; what the device counts)."""
        self._c_last_interrupt = np.full(n_c, math.nan)
        """Per SBM: ``t_s`` of its last interruption (NaN: none yet)."""

        # Breakers: circuits, then MPDUs, then ATSs.
        self._brk = ThermalBreakers(
            np.concatenate([self._c_rating, self._m_rating, self._ats_rating])
        )
        self._sl_c = slice(0, n_c)
        self._sl_m = slice(n_c, n_c + n_m)
        self._sl_a = slice(n_c + n_m, n_c + n_m + n_a)
        self._limit_ratings = np.concatenate([self._ats_rating, self._m_rating])

        self._demand = np.zeros(n_c)
        self._c_current = np.zeros(n_c)
        self._m_current = np.zeros(n_m)
        self._a_current = np.zeros(n_a)

        self._ambient_base = sc.environment.ambient_c
        self._ambient_delta = 0.0
        self._env_ambient = sc.environment.ambient_c
        self._env_humidity = sc.environment.humidity_pct

        self._stuck: dict[str, int] = {}
        self._frozen: dict[str, dict[str, Any]] = {}
        self._pending_freeze: list[str] = []
        self._comms: dict[str, int] = {}

        self._wear = [
            (e, "ats" if e.kind == "ats_contact_wear" else "mpdu", e.target) for e in sc.wear_events
        ]
        self._timeline = build_timeline(sc)
        self._tl = 0

        # ---- metrics (t >= 0) ----
        self._interruptions = 0
        self._unserved_wh = 0.0
        self._breaker_trips = 0
        self._over_limit_s = 0.0
        self._max_util = 0.0
        self._switch_ops = 0
        self._failed_at: dict[str, float] = {}
        self._load_at_failure: dict[str, float] = {}

        # ---- initial state at start_s ----
        while self._tl < len(self._timeline) and self._timeline[self._tl].t_s <= self._t:
            self._apply(self._timeline[self._tl])
            self._tl += 1
        self._update_severity()
        self._demand = self._loads.demand(self._t)
        self._selftest_k = self._selftest_slot(self._t)
        self._resolve(count=False)
        self._sense()
        self._freeze_pending()
        self._dirty = False

    # ------------------------------------------------------------------------------------
    # Time
    # ------------------------------------------------------------------------------------

    @property
    def t_s(self) -> float:
        """Seconds since scenario t=0 (negative during history)."""
        return self._t

    @property
    def timestamp(self) -> datetime:
        """Wall-clock time now (aware, UTC)."""
        return self._start_utc + timedelta(seconds=self._t)

    def advance_to(self, t_s: float) -> None:
        """Step until ``t_s`` (the last step lands on or before it)."""
        eps = 1e-6 * self.step_s
        while self._t + self.step_s <= t_s + eps:
            self.step()

    def step(self) -> None:
        """Advance one physics step."""
        dt = self.step_s
        t_prev = self._t
        # The interval [t_prev, t) ran with the state left by the last resolve.
        self._account_interval(t_prev, dt)
        self._k += 1
        t = self._t0 + self._k * dt
        self._t = t
        timeline = self._timeline
        while self._tl < len(timeline) and timeline[self._tl].t_s <= t:
            self._apply(timeline[self._tl])
            self._tl += 1
            self._dirty = True
        tripped, reclosed = self._brk.update(t)
        if tripped.any() or reclosed.any():
            self._dirty = True
            if t >= 0:
                self._breaker_trips += int(tripped.sum())
        if self._wear:
            self._update_severity()
        self._demand = self._loads.demand(t)
        if self._dirty:
            self._resolve(count=True)
            self._dirty = False
        else:
            self._currents()
        self._sense()
        slot = self._selftest_slot(t)
        if slot > self._selftest_k:
            self._selftest_k = slot
            for a in range(self._n_a):
                if self._ats_live[a]:
                    self._self_test(a, np.random.default_rng([self.scenario.seed, 0x5E1F, a, slot]))
        if self._pending_freeze:
            self._freeze_pending()

    def _account_interval(self, t_prev: float, dt: float) -> None:
        v_c = self._c_volt
        self._c_energy += self._c_current * v_c * (dt / 3.6e6)
        m_v = self._ats_volt[self._m_ats]
        self._m_energy += self._m_current * m_v * (dt / 3.6e6)
        self._ats_energy += self._a_current * self._ats_volt * (dt / 3.6e6)
        for a in range(self._n_a):
            if self._ats_live[a]:
                self._ats_time_on[a][self._ats_active[a]] += dt
        self._brk.heat_up(np.concatenate([self._c_current, self._m_current, self._a_current]), dt)
        if t_prev >= 0:
            dark = ~self._c_energized
            if dark.any():
                self._unserved_wh += float(
                    np.sum(self._demand[dark] * self._c_vnom[dark]) * dt / 3600.0
                )
            util = float(
                np.max(np.concatenate([self._a_current, self._m_current]) / self._limit_ratings)
            )
            self._max_util = max(self._max_util, util)
            if util > CONTINUOUS_LIMIT:
                self._over_limit_s += dt

    def _selftest_slot(self, t_s: float) -> int:
        local, _ = self._loads.local_time(t_s)
        return math.floor((local - SELF_TEST_OFFSET_S) / SELF_TEST_PERIOD_S)

    # ------------------------------------------------------------------------------------
    # Events
    # ------------------------------------------------------------------------------------

    def _apply(self, tr: Transition) -> None:
        delta = 1 if tr.action >= Action.FAIL else -1
        match tr.action:
            case Action.FAIL | Action.REPAIR:
                if tr.wear is not None and tr.target not in self._failed_at:
                    self._failed_at[tr.target] = self._t
                    self._load_at_failure[tr.target] = self._element_current(tr.target)
                self._count_failure(tr.target, delta)
            case Action.AMBIENT_START | Action.AMBIENT_END:
                self._ambient_delta += tr.value
            case Action.STUCK_START | Action.STUCK_END:
                n = self._stuck.get(tr.target, 0) + delta
                if n > 0:
                    self._stuck[tr.target] = n
                    if tr.target not in self._frozen:
                        self._pending_freeze.append(tr.target)
                else:
                    self._stuck.pop(tr.target, None)
                    self._frozen.pop(tr.target, None)
            case Action.COMMS_START | Action.COMMS_END:
                n = self._comms.get(tr.target, 0) + delta
                if n > 0:
                    self._comms[tr.target] = n
                else:
                    self._comms.pop(tr.target, None)

    def _count_failure(self, target: str, delta: int) -> None:
        if target in self._src_ix:
            self._src_down[self._src_ix[target]] += delta
        elif target in self._ats_ix:
            self._ats_fail[self._ats_ix[target]] += delta
        elif target in self._mpdu_ix:
            self._m_fail[self._mpdu_ix[target]] += delta
        else:
            self._c_fail[self._circ_ix[target]] += delta

    def _element_current(self, target: str) -> float:
        if target in self._ats_ix:
            return float(self._a_current[self._ats_ix[target]])
        if target in self._mpdu_ix:
            return float(self._m_current[self._mpdu_ix[target]])
        return float(self._c_current[self._circ_ix[target]])

    def _update_severity(self) -> None:
        t = self._t
        self._ats_sev[:] = 0.0
        self._m_sev[:] = 0.0
        for event, kind, target in self._wear:
            repaired = event.repair_after_s is not None and t >= (
                event.failure_s + event.repair_after_s
            )
            s = 0.0 if repaired else event.severity(t)
            g = event.precursor_gains
            per_signal = np.array([g.temperature, g.ripple, g.transfer, g.nuisance]) * s
            if kind == "ats":
                i = self._ats_ix[target]
                self._ats_sev[:, i] = np.maximum(self._ats_sev[:, i], per_signal)
            else:
                i = self._mpdu_ix[target]
                self._m_sev[:, i] = np.maximum(self._m_sev[:, i], per_signal)

    # ------------------------------------------------------------------------------------
    # Switching
    # ------------------------------------------------------------------------------------

    def _transfer_time_s(self, a: int) -> float:
        return float(self._ats_tt[a] * (1.0 + TRANSFER_WEAR_FACTOR * self._ats_sev[_TRANSFER, a]))

    def _resolve(self, *, count: bool) -> None:
        """Settle ATS positions, SBM paths and energisation after any change of state.

        ``count``: a step or a command (not the initial state): interruptions are counted, by
        each SBM always and in the metrics from t=0."""
        stepping = count
        count = count and self._t >= 0
        src_ok = self._src_down == 0
        brk_open = self._brk.open
        ats_open = brk_open[self._sl_a]
        was_live = self._ats_live.copy()
        ats_gap = np.zeros(self._n_a)
        for a in range(self._n_a):
            avail = [bool(src_ok[s]) for s in self._ats_src[a]]
            ok = self._ats_fail[a] == 0 and not ats_open[a]
            cur = self._ats_active[a]
            if ok:
                pref = self._ats_pref[a]
                best = pref if avail[pref] else next((i for i, v in enumerate(avail) if v), -1)
                if best >= 0 and best != cur:
                    if cur < 0:
                        self._ats_active[a] = best
                    elif not avail[cur] or not self._ats_inhibit[a]:
                        tt = self._transfer_time_s(a)
                        self._ats_transfers[a] += 1
                        self._ats_transfers_failure[a] += int(not avail[cur])
                        self._ats_last_transfer_ms[a] = tt * 1000.0
                        self._ats_active[a] = best
                        if was_live[a]:
                            ats_gap[a] = tt
            cur = self._ats_active[a]
            live = ok and cur >= 0 and avail[cur]
            self._ats_live[a] = live
            self._ats_volt[a] = self._src_v[self._ats_src[a][cur]] if live else 0.0
            if not live:
                self._ats_alarm_lost[a] = True

        m_live = (
            self._ats_live[self._m_ats] & self._m_on & (self._m_fail == 0) & ~brk_open[self._sl_m]
        )
        self._m_live = m_live
        m_gap = np.where(m_live, ats_gap[self._m_ats], 0.0)

        rows, p_idx = self._rows, self._P
        path_live = self._P_valid & m_live[p_idx]
        path_gap = m_gap[p_idx]
        act = self._c_active
        act_live = path_live[rows, act]
        act_gap = np.where(act_live, path_gap[rows, act], 0.0)
        sbm_ok = self._c_fail == 0
        bypass = self.scenario.bypass_delay_s
        # An ATS transfer is a gap, not a dead path: the path comes back by itself after the
        # transfer time and the circuits see that gap as their interruption (scenario-format.md,
        # "Topology and switching"); only a path that stays dead makes the SBM bypass.
        need = sbm_ok & ~act_live
        gap = act_gap
        if need.any():
            candidate = path_live & (path_gap == 0.0)
            candidate[rows, act] = False
            move = need & candidate.any(axis=1)
            if move.any():
                act = np.where(move, candidate.argmax(axis=1), act)
                self._c_active = act
                self._c_bypass += move
                self._c_switch += move
                gap = np.where(move, bypass, act_gap)
                if count:
                    self._switch_ops += int(move.sum())
        energized = self._c_on & sbm_ok & ~brk_open[self._sl_c] & path_live[rows, act]
        if stepping:
            was = self._c_energized
            hit = was & (~energized | (gap > self.scenario.ride_through_s))
            if hit.any():
                self._c_interrupts = self._c_interrupts + hit
                self._c_last_interrupt = np.where(hit, self._t, self._c_last_interrupt)
        if count:
            was = self._c_energized
            blip = was & energized & (gap > self.scenario.ride_through_s)
            lost = was & ~energized
            self._interruptions += int(blip.sum() + lost.sum())
            if blip.any():
                self._unserved_wh += float(
                    np.sum(self._demand[blip] * self._c_vnom[blip] * gap[blip]) / 3600.0
                )
        self._c_energized = energized
        self._c_active_mpdu = p_idx[rows, act]
        self._c_volt = np.where(energized, self._ats_volt[self._m_ats[self._c_active_mpdu]], 0.0)
        self._currents()

    def _currents(self) -> None:
        self._c_current = np.where(self._c_energized, self._demand, 0.0)
        self._m_current = np.bincount(
            self._c_active_mpdu, weights=self._c_current, minlength=self._n_m
        ).astype(np.float64, copy=False)
        self._a_current = np.bincount(
            self._m_ats, weights=self._m_current, minlength=self._n_a
        ).astype(np.float64, copy=False)

    # ------------------------------------------------------------------------------------
    # Precursors and sensors
    # ------------------------------------------------------------------------------------

    def _sense(self) -> None:
        n_a, n_m = self._n_a, self._n_m
        z = self._rng_sensor.standard_normal(2 * n_a + 2 * n_m + 2)
        ambient = self._ambient_base + self._ambient_delta
        ua = self._a_current / self._ats_rating
        um = self._m_current / self._m_rating
        self._ats_temp = (
            ambient
            + self._ats_rise * ua * ua
            + TEMP_RISE_AT_FULL_WEAR_C * self._ats_sev[_TEMP]
            + TEMP_NOISE_C * z[:n_a]
        )
        self._m_temp = (
            ambient
            + self._m_rise * um * um
            + TEMP_RISE_AT_FULL_WEAR_C * self._m_sev[_TEMP]
            + TEMP_NOISE_C * z[n_a : n_a + n_m]
        )
        o = n_a + n_m
        ripple_a = self._ats_ripple0 + RIPPLE_AT_FULL_WEAR_PCT * self._ats_sev[_RIPPLE]
        ripple_m = self._m_ripple0 + RIPPLE_AT_FULL_WEAR_PCT * self._m_sev[_RIPPLE]
        self._ats_ripple = np.where(
            self._ats_live, np.maximum(ripple_a + RIPPLE_NOISE_PCT * z[o : o + n_a], 0.0), 0.0
        )
        o += n_a
        self._m_ripple = np.where(
            self._m_live, np.maximum(ripple_m + RIPPLE_NOISE_PCT * z[o : o + n_m], 0.0), 0.0
        )
        self._env_ambient = ambient + AMBIENT_NOISE_C * float(z[-2])
        self._env_humidity = self.scenario.environment.humidity_pct + HUMIDITY_NOISE_PCT * float(
            z[-1]
        )
        if self._wear and self._m_sev[_NUISANCE].any():
            lam = NUISANCE_TRIPS_PER_S * self.step_s * self._m_sev[_NUISANCE] * (self._m_fail == 0)
            self._m_nuisance += self._rng_nuisance.poisson(lam)

    def _self_test(self, a: int, rng: np.random.Generator) -> None:
        measured = (
            self._ats_tt[a]
            * (1.0 + SELF_TEST_NOISE * rng.standard_normal())
            * (1.0 + TRANSFER_WEAR_FACTOR * self._ats_sev[_TRANSFER, a])
        )
        self._ats_self_tests[a] += 1
        self._ats_last_self_test_ms[a] = float(measured) * 1000.0

    # ------------------------------------------------------------------------------------
    # Telemetry
    # ------------------------------------------------------------------------------------

    def telemetry(self) -> PlantTelemetry:
        """What every device reports now (stuck sensors frozen, lost comms unreachable)."""
        ats = {aid: self._ats_telemetry(a) for a, aid in enumerate(self._ats_ids)}
        mpdus = {mid: self._mpdu_telemetry(m) for m, mid in enumerate(self._mpdu_ids)}
        circuits = self._circuit_telemetry_all()
        env = self._env_telemetry()
        if self._frozen:
            ats = {k: self._apply_frozen(v) for k, v in ats.items()}
            mpdus = {k: self._apply_frozen(v) for k, v in mpdus.items()}
            circuits = {k: self._apply_frozen(v) for k, v in circuits.items()}
            env = self._apply_frozen(env)
        return PlantTelemetry(
            t_s=self._t,
            timestamp=self.timestamp,
            ats=ats,
            mpdus=mpdus,
            circuits=circuits,
            env=env,
        )

    def _apply_frozen[T: (AtsTelemetry, MpduTelemetry, CircuitTelemetry, EnvTelemetry)](
        self, tel: T
    ) -> T:
        frozen = self._frozen.get(tel.id)
        return tel if frozen is None else dataclasses.replace(tel, **frozen)

    def _freeze_pending(self) -> None:
        for target in self._pending_freeze:
            if target in self._frozen or target not in self._stuck:
                continue
            tel: AtsTelemetry | MpduTelemetry | CircuitTelemetry | EnvTelemetry
            names: tuple[str, ...]
            if target in self._ats_ix:
                tel, names = self._ats_telemetry(self._ats_ix[target]), _ATS_MEASUREMENTS
            elif target in self._mpdu_ix:
                tel, names = self._mpdu_telemetry(self._mpdu_ix[target]), _MPDU_MEASUREMENTS
            elif target in self._circ_ix:
                tel, names = self._circuit_telemetry_all()[target], _CIRCUIT_MEASUREMENTS
            else:
                tel, names = self._env_telemetry(), _ENV_MEASUREMENTS
            self._frozen[target] = {name: getattr(tel, name) for name in names}
        self._pending_freeze.clear()

    def _ats_telemetry(self, a: int) -> AtsTelemetry:
        spec = self.scenario.ats[a]
        srcs = self._ats_src[a]
        avail = [bool(self._src_down[s] == 0) for s in srcs]
        current = float(self._a_current[a])
        volt = float(self._ats_volt[a])
        temp = float(self._ats_temp[a])
        return AtsTelemetry(
            id=spec.id,
            reachable=spec.id not in self._comms,
            sources=spec.sources,
            rating_a=spec.rating_a,
            transfer_time_ms=spec.transfer_time_s * 1000.0,
            rated_operations=spec.rated_operations,
            source_voltage_v=tuple(
                float(self._src_v[s]) if ok else 0.0 for s, ok in zip(srcs, avail, strict=True)
            ),
            source_frequency_hz=tuple(NOMINAL_HZ if ok else 0.0 for ok in avail),
            source_available=tuple(avail),
            phase_angle_deg=0.0,
            active_source=self._ats_active[a],
            preferred_source=self._ats_pref[a],
            inhibit=self._ats_inhibit[a],
            output_energized=bool(self._ats_live[a]),
            output_voltage_v=volt,
            load_current_a=current,
            load_power_kw=volt * current / 1000.0,
            energy_kwh=float(self._ats_energy[a]),
            contact_temperature_c=temp,
            ripple_pct=float(self._ats_ripple[a]),
            transfers_total=self._ats_transfers[a],
            transfers_failure=self._ats_transfers_failure[a],
            operations=self._ats_transfers[a] + self._ats_self_tests[a],
            self_tests=self._ats_self_tests[a],
            last_transfer_ms=self._ats_last_transfer_ms[a],
            last_self_test_ms=self._ats_last_self_test_ms[a],
            time_on_source_s=tuple(float(x) for x in self._ats_time_on[a]),
            alarm_over_temperature=temp > OVER_TEMPERATURE_C,
            alarm_output_lost=self._ats_alarm_lost[a],
            alarm_out_of_sync=False,
            alarm_over_limit=current > CONTINUOUS_LIMIT * spec.rating_a,
        )

    def _mpdu_telemetry(self, m: int) -> MpduTelemetry:
        spec = self.scenario.mpdus[m]
        live = bool(self._m_live[m])
        current = float(self._m_current[m])
        v_in = float(self._ats_volt[self._m_ats[m]])
        temp = float(self._m_temp[m])
        breaker_open = bool(self._brk.open[self._sl_m][m])
        return MpduTelemetry(
            id=spec.id,
            reachable=spec.id not in self._comms,
            ats=spec.ats,
            rating_a=spec.rating_a,
            energized=live,
            output_on=bool(self._m_on[m]),
            breaker_open=breaker_open,
            input_voltage_v=v_in,
            current_a=current,
            power_kw=(v_in if live else 0.0) * current / 1000.0,
            energy_kwh=float(self._m_energy[m]),
            terminal_temperature_c=temp,
            ripple_pct=float(self._m_ripple[m]),
            nuisance_trips=int(self._m_nuisance[m]),
            breaker_trips=int(self._brk.trips[self._sl_m][m]),
            alarm_over_limit=current > CONTINUOUS_LIMIT * spec.rating_a,
            alarm_breaker_trip=breaker_open,
            alarm_over_temperature=temp > OVER_TEMPERATURE_C,
        )

    def _circuit_telemetry_all(self) -> dict[str, CircuitTelemetry]:
        path_live = (self._P_valid & self._m_live[self._P]).tolist()
        active = self._c_active.tolist()
        on = self._c_on.tolist()
        energized = self._c_energized.tolist()
        current = self._c_current.tolist()
        volt = self._c_volt.tolist()
        energy = self._c_energy.tolist()
        bypass = self._c_bypass.tolist()
        switch = self._c_switch.tolist()
        brk = self._brk.open[self._sl_c].tolist()
        interrupts = self._c_interrupts.tolist()
        start = self._start_utc.timestamp()
        last = [0 if math.isnan(t) else int(start + t) for t in self._c_last_interrupt.tolist()]
        out: dict[str, CircuitTelemetry] = {}
        for i, spec in enumerate(self.scenario.circuits):
            n = len(spec.paths)
            out[spec.id] = CircuitTelemetry(
                id=spec.id,
                reachable=spec.id not in self._comms,
                paths=spec.paths,
                rating_a=spec.rating_a,
                critical=spec.critical,
                active_path=active[i],
                output_on=on[i],
                energized=energized[i],
                path_energized=tuple(path_live[i][:n]),
                current_a=current[i],
                voltage_v=volt[i],
                power_kw=volt[i] * current[i] / 1000.0,
                energy_kwh=energy[i],
                bypass_transfers=bypass[i],
                switch_operations=switch[i],
                breaker_open=brk[i],
                interruptions=interrupts[i],
                last_interruption_ts=last[i],
            )
        return out

    def _env_telemetry(self) -> EnvTelemetry:
        return EnvTelemetry(
            id=ENV_ID,
            reachable=ENV_ID not in self._comms,
            ambient_c=self._env_ambient,
            humidity_pct=self._env_humidity,
        )

    # ------------------------------------------------------------------------------------
    # Metrics
    # ------------------------------------------------------------------------------------

    @property
    def metrics(self) -> PlantMetrics:
        """A snapshot of the outcome counters (t >= 0 only)."""
        return PlantMetrics(
            interruptions=self._interruptions,
            unserved_energy_wh=self._unserved_wh,
            breaker_trips=self._breaker_trips,
            over_limit_s=self._over_limit_s,
            max_utilization=self._max_util,
            switch_operations=self._switch_ops,
            failed_at_s=dict(self._failed_at),
            load_on_target_at_failure_a=dict(self._load_at_failure),
        )

    # ------------------------------------------------------------------------------------
    # Commands
    # ------------------------------------------------------------------------------------

    def _lookup(self, table: dict[str, int], element_id: str, what: str) -> int:
        if element_id not in table:
            raise CommandRejected(f"unknown {what} {element_id!r}")
        if element_id in self._comms:
            raise CommandRejected(f"{what} {element_id!r} is unreachable (communications lost)")
        return table[element_id]

    @staticmethod
    def _choice(options: tuple[str, ...], choice: str | int, owner: str, what: str) -> int:
        if isinstance(choice, bool):
            raise CommandRejected(f"{what} must be an id or an index, got {choice!r}")
        if isinstance(choice, int):
            if not 0 <= choice < len(options):
                raise CommandRejected(
                    f"{what} index {choice} out of range ({owner} has {len(options)})"
                )
            return choice
        if choice not in options:
            raise CommandRejected(
                f"{choice!r} is not a {what} of {owner} (options: {', '.join(options)})"
            )
        return options.index(choice)

    def _after_command(self) -> None:
        self._resolve(count=True)

    def command_sbm_path(self, circuit_id: str, path: str | int) -> None:
        """Make-before-break change of the circuit's active path to an energised MPDU."""
        c = self._lookup(self._circ_ix, circuit_id, "circuit")
        spec = self.scenario.circuits[c]
        j = self._choice(spec.paths, path, circuit_id, "path")
        if self._c_fail[c]:
            raise CommandRejected(f"the SBM of circuit {circuit_id!r} has failed")
        if not self._m_live[self._P[c, j]]:
            raise CommandRejected(
                f"target path {spec.paths[j]!r} of circuit {circuit_id!r} is not energised"
            )
        if j == self._c_active[c]:
            return
        self._c_active = self._c_active.copy()
        self._c_active[c] = j
        self._c_switch[c] += 1
        if self._t >= 0:
            self._switch_ops += 1
        self._after_command()

    def command_sbm_output(self, circuit_id: str, on: bool) -> None:
        """Switch a circuit's SBM output on or off (critical circuits too: the caller guards)."""
        c = self._lookup(self._circ_ix, circuit_id, "circuit")
        self._c_on[c] = bool(on)
        self._after_command()

    def command_ats_inhibit(self, ats_id: str, inhibit: bool) -> None:
        """Block (or allow again) discretionary transfers of an ATS."""
        a = self._lookup(self._ats_ix, ats_id, "ATS")
        self._ats_inhibit[a] = bool(inhibit)
        self._after_command()

    def command_ats_preferred_source(self, ats_id: str, source: str | int) -> None:
        """Set the source the ATS prefers; it retransfers to it when available and not inhibited."""
        a = self._lookup(self._ats_ix, ats_id, "ATS")
        self._ats_pref[a] = self._choice(self.scenario.ats[a].sources, source, ats_id, "source")
        self._after_command()

    def command_ats_transfer(self, ats_id: str, source: str | int) -> None:
        """Transfer now to ``source`` (open transition) and keep it as the preferred source."""
        a = self._lookup(self._ats_ix, ats_id, "ATS")
        spec = self.scenario.ats[a]
        j = self._choice(spec.sources, source, ats_id, "source")
        if self._ats_fail[a] or self._brk.open[self._sl_a][a]:
            raise CommandRejected(f"ATS {ats_id!r} has failed or tripped; it cannot transfer")
        if self._src_down[self._ats_src[a][j]]:
            raise CommandRejected(f"source {spec.sources[j]!r} is not available")
        if self._ats_inhibit[a] and j != self._ats_active[a]:
            raise CommandRejected(f"transfers of ATS {ats_id!r} are inhibited")
        self._ats_pref[a] = j
        self._after_command()

    def command_ats_self_test(self, ats_id: str) -> None:
        """Run a closed-transition self-test now (does not interrupt output)."""
        a = self._lookup(self._ats_ix, ats_id, "ATS")
        if not self._ats_live[a]:
            raise CommandRejected(f"ATS {ats_id!r} has no live output; it cannot self-test")
        self._ats_commanded_tests[a] += 1
        rng = np.random.default_rng([self.scenario.seed, 0xC0DE, a, self._ats_commanded_tests[a]])
        self._self_test(a, rng)

    def command_ats_reset_alarms(self, ats_id: str) -> None:
        """Clear latched alarms whose condition has gone."""
        a = self._lookup(self._ats_ix, ats_id, "ATS")
        self._ats_alarm_lost[a] = not bool(self._ats_live[a])

    def command_mpdu_output(self, mpdu_id: str, on: bool) -> None:
        """Switch an MPDU's output on or off."""
        m = self._lookup(self._mpdu_ix, mpdu_id, "MPDU")
        self._m_on[m] = bool(on)
        self._after_command()
