"""The decision policy: from polled observations to alerts, overload predictions and staged plans.

One :class:`DecisionPolicy` per plant runs the same way in Home Assistant and in ``dcp_eval``. It
owns one :class:`LoadForecaster` per circuit and one :class:`DegradationMonitor` per ATS/MPDU,
takes one :class:`PlantObservation` per poll and, on every :meth:`DecisionPolicy.decide`, says
which components are at risk and what to do about it:

* **migrate**: drain an ATS/MPDU whose monitor alerts (predicted failure) onto healthy paths;
* **relieve**: move circuits off an element whose forecast P90 load crosses its continuous limit
  soon (or that is above it now: then the plan is urgent);
* **rebalance**: a component died without warning and the SBMs' local bypass dumped its load on
  one path; move circuits until nothing stays above its limit, in short urgent stages;
* **restore**: circuits away from their normal path go back once that path has been healthy and
  stable for a while and the forecast says it is safe with margin.

Element loads are forecast as sums of *circuit* forecasts under the current assignment, so they
stay right when circuits move (a per-element series would need relearning after every move).
Per-circuit P90s are not summed directly (that is far too pessimistic for 30 circuits); each
circuit's profile is ``p50 + k * sigma`` with ``k`` chosen so that the circuits together reach
the aggregate P90 under a partial error correlation (``PolicyConfig.error_correlation``).

Rules enforced here (the executor verifies them again): never move load onto a dead, alerting,
unreachable or draining element; never plan an element above its continuous limit; bounded amps
per stage; nothing happens when nothing is predicted; a short surge inside the limits is not
chased (only a forecast crossing or a measured excess triggers relief). Pure and deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from .degradation import DegradationMonitor, HealthAssessment, HealthSample
from .forecast import Z90, Forecast, LoadForecaster
from .modes import Mode, split_by_mode
from .observation import ElementObs, PlantObservation, ScheduledLoad
from .planner import Infeasible, Plan, plan_migration, restore_plan
from .topology import Topology

__all__ = [
    "Action",
    "ActionKind",
    "DecisionPolicy",
    "Decisions",
    "ElementStatus",
    "Mode",
    "OverloadPrediction",
    "PolicyConfig",
]

type FloatArray = npt.NDArray[np.float64]
type ActionKind = Literal["migrate", "relieve", "rebalance", "restore"]

_EPS: Final = 1e-9


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Tunables of the policy (the integration exposes most of them as options)."""

    mode: Mode = "automatic"
    horizon_s: float = 86400.0
    """How far forecasts and failure predictions look ahead."""
    poll_s: float = 60.0
    resample_s: float = 900.0
    """Forecast grid step."""
    forecast_interval_s: float = 3600.0
    """How often the circuit forecasts are refreshed (cheap updates in between refits)."""
    refit_interval_s: float = 86400.0
    """How often each circuit's forecast model is refitted (the cheap update follows level and
    trend in between; a daily refit keeps 80 circuits affordable on a small machine)."""
    max_step_amps: float = 40.0
    """Amps moved per stage of a planned migration."""
    step_interval_s: float = 120.0
    """Pause between stages of a planned migration (verification happens in between)."""
    urgent_max_step_amps: float = 120.0
    """Amps moved per stage when an element is above its limit now."""
    urgent_retry_s: float = 300.0
    """An urgent relief that found (or executed) nothing useful is retried after this long,
    or at once when the set of overloaded or dead elements changes."""
    relieve_lead_s: float = 4 * 3600.0
    """Relieve a predicted overload when its P90 crossing is at most this far ahead."""
    relieve_confirmations: int = 2
    """...and it was predicted so at this many consecutive forecast refreshes (a forecast that
    briefly extrapolates a short surge is not acted on; a real trend persists)."""
    drain_min_horizon_s: float = 12 * 3600.0
    """A drain must keep every element within its limit at least this far ahead (the whole
    horizon when it can); when no complete drain does, only what fits moves."""
    plan_margin: float = 0.05
    """Planned loads are inflated by this fraction (measurement noise, model error)."""
    restore_margin: float = 0.12
    """A restore must leave this fraction of every limit free over the whole horizon."""
    restore_stable_s: float = 2 * 3600.0
    """A repaired or revived element must stay healthy and energised this long before restore."""
    relief_hold_s: float = 6 * 3600.0
    """No restore onto an element relieved less than this long ago (no ping-pong)."""
    error_correlation: float = 0.3
    """Assumed correlation of circuit forecast errors when summing them to element P90s."""
    min_history_s: float = 86400.0
    """Forecast-driven relief needs at least this much circuit history."""
    plan_time_limit_s: float = 2.0
    replan_interval_s: float = 900.0
    """Non-urgent planning runs at most this often, unless alerts or failures changed."""
    max_moves_per_tick: int = 200
    """Hard cap on the SBM moves of one plan (a runaway guard, well above real plans)."""
    utc_offset_s: float = 0.0
    """Local wall clock offset (weekday/weekend of the load forecasts)."""


@dataclass(frozen=True, slots=True)
class OverloadPrediction:
    """An element whose forecast (or measured) load reaches its continuous limit."""

    element: str
    limit_a: float
    crossing_s: float | None
    """When the P90 forecast first reaches the limit (None: it does not within the horizon)."""
    peak_s: float
    peak_a: float
    measured_a: float
    urgent: bool
    """Above the limit now."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "element": self.element,
            "limit_a": round(self.limit_a, 2),
            "crossing_s": self.crossing_s,
            "peak_s": self.peak_s,
            "peak_a": round(self.peak_a, 2),
            "measured_a": round(self.measured_a, 2) if math.isfinite(self.measured_a) else None,
            "urgent": self.urgent,
        }


@dataclass(frozen=True, slots=True)
class Action:
    """A plan the policy wants executed (or proposes, in approval mode)."""

    kind: ActionKind
    target: str | None
    plan: Plan
    reason: str
    urgent: bool
    step_interval_s: float
    created_s: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "kind": self.kind,
            "target": self.target,
            "reason": self.reason,
            "urgent": self.urgent,
            "step_interval_s": self.step_interval_s,
            "created_s": self.created_s,
            "plan": self.plan.as_dict(),
        }


@dataclass(frozen=True, slots=True)
class ElementStatus:
    """What the policy believes about one ATS/MPDU right now."""

    reachable: bool
    energized: bool
    failed: bool
    """Dead although it should be live (its own failure, not a lost source or upstream)."""
    alert: bool
    load_a: float


@dataclass(frozen=True, slots=True)
class Decisions:
    """The outcome of one decision tick."""

    t_s: float
    assessments: Mapping[str, HealthAssessment]
    status: Mapping[str, ElementStatus]
    overloads: tuple[OverloadPrediction, ...] = ()
    actions: tuple[Action, ...] = ()
    """To execute now (automatic mode)."""
    proposals: tuple[Action, ...] = ()
    """Waiting for approval (approval mode)."""
    infeasible: tuple[Infeasible, ...] = ()
    forecasts: Mapping[str, Forecast] = field(default_factory=dict)
    """ATS/MPDU load forecasts (circuit sums), when refreshed at this tick."""
    notes: tuple[str, ...] = ()

    @property
    def alerts(self) -> frozenset[str]:
        """Components whose failure-risk alert is on."""
        return frozenset(c for c, a in self.assessments.items() if a.alert)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe summary (forecasts thinned)."""
        return {
            "t_s": self.t_s,
            "alerts": sorted(self.alerts),
            "assessments": {k: v.as_dict() for k, v in self.assessments.items()},
            "overloads": [o.as_dict() for o in self.overloads],
            "actions": [a.as_dict() for a in self.actions],
            "proposals": [a.as_dict() for a in self.proposals],
            "infeasible": [i.as_dict() for i in self.infeasible],
            "forecasts": {k: f.as_dict(max_points=24) for k, f in self.forecasts.items()},
            "notes": list(self.notes),
        }


@dataclass(slots=True)
class _ElementState:
    reachable: bool = True
    energized: bool = True
    failed: bool = False
    load_a: float = 0.0
    alive_since_s: float = -math.inf
    repaired_s: float | None = None
    relieved_s: float = -math.inf
    alert: bool = False
    alert_cleared_s: float = -math.inf


class DecisionPolicy:
    """Plant-level decision object: observe every poll, decide on every tick."""

    def __init__(
        self,
        topology: Topology,
        config: PolicyConfig | None = None,
        *,
        schedule: Sequence[ScheduledLoad] = (),
    ) -> None:
        self.topology = topology
        self.config = cfg = config or PolicyConfig()
        self.schedule: tuple[ScheduledLoad, ...] = tuple(schedule)
        self._forecasters = {
            c: LoadForecaster(
                resample_s=cfg.resample_s,
                horizon_s=cfg.horizon_s,
                refit_interval_s=cfg.refit_interval_s,
                utc_offset_s=cfg.utc_offset_s,
            )
            for c in topology.circuits
        }
        self._monitors: dict[str, DegradationMonitor] = {
            **{a: DegradationMonitor(a, "ats", horizon_s=cfg.horizon_s) for a in topology.ats},
            **{m: DegradationMonitor(m, "mpdu", horizon_s=cfg.horizon_s) for m in topology.mpdus},
        }
        self._elements = {e: _ElementState() for e in topology.elements}
        self._assignment: dict[str, str | None] = topology.normal_assignment()
        self._circuit_a: dict[str, float] = dict.fromkeys(topology.circuits, 0.0)
        self._circuit_reachable: dict[str, bool] = dict.fromkeys(topology.circuits, True)
        self._ambient_c = math.nan
        self._ats_fed: dict[str, bool] = {}
        self._last_t = -math.inf
        self._first_t = math.nan
        self._fc_t = -math.inf
        self._fc: dict[str, Forecast] = {}
        self._fc_times: FloatArray = np.zeros(0)
        self._profiles: dict[str, FloatArray] = {}
        self._element_fc: dict[str, Forecast] = {}
        self._assessments: dict[str, HealthAssessment] = {}
        self._active: Action | None = None
        self._approved: set[tuple[ActionKind, str | None]] = set()
        self._failed_plans: dict[tuple[ActionKind, str | None], float] = {}
        self.errors: list[str] = []
        """Internal faults (e.g. of the planner) met while deciding; never raised to the caller."""
        self._streak: dict[str, int] = dict.fromkeys(topology.elements, 0)
        self._plan_t = -math.inf
        self._plan_sig: tuple[object, ...] = ()
        self._urgent_t = -math.inf
        self._urgent_sig: tuple[object, ...] = ()
        self._fc_assignment: dict[str, str | None] = {}

    # ---------------------------------------------------------------------------- observing
    def observe(self, obs: PlantObservation) -> None:
        """Take one poll's readings (call it for every poll, history included)."""
        t = obs.t_s
        if math.isnan(self._first_t):
            self._first_t = t
        self._last_t = t
        if math.isfinite(obs.ambient_c):
            self._ambient_c = obs.ambient_c
        for cid, c in obs.circuits.items():
            if cid not in self._forecasters:
                continue
            self._circuit_reachable[cid] = c.reachable
            if not c.reachable:
                continue
            self._assignment[cid] = c.active_path if c.energized else None
            if math.isfinite(c.current_a):
                self._circuit_a[cid] = c.current_a
                # A de-energised circuit draws nothing, but its demand did not vanish: keep
                # that gap out of its load history.
                self._forecasters[cid].observe(t, c.current_a if c.energized else math.nan)
        for eid, e in obs.elements.items():
            if eid in self._elements:
                self._observe_element(t, e)
        self._update_failures(t)

    def _observe_element(self, t: float, e: ElementObs) -> None:
        st = self._elements[e.id]
        st.reachable = e.reachable
        if not e.reachable:
            return
        if e.energized and not st.energized:
            st.alive_since_s = t
        st.energized = e.energized
        if math.isfinite(e.current_a):
            st.load_a = e.current_a
        if e.kind == "ats":
            self._ats_fed[e.id] = e.sources_available
        ambient = self._ambient_c
        if not math.isfinite(ambient):
            return
        self._monitors[e.id].observe(
            HealthSample(
                t_s=t,
                current_a=e.current_a,
                rating_a=self.topology.rating_a(e.id),
                ambient_c=ambient,
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
        )

    def _update_failures(self, t: float) -> None:
        """Mark elements failed when dead although fed; notice repairs (failed -> live)."""
        topo = self.topology
        for eid, st in self._elements.items():
            if not st.reachable:
                continue
            if eid in topo.ats:
                fed = self._ats_fed.get(eid, True)
            else:
                ats = self._elements[topo.ats_of(eid)]
                fed = ats.energized and ats.reachable
            was = st.failed
            st.failed = (not st.energized) and fed
            if was and not st.failed and st.energized:
                self._repaired(eid, t)

    def _repaired(self, element: str, t: float) -> None:
        st = self._elements[element]
        st.repaired_s = t
        self._monitors[element].mark_repaired(t)

    # ------------------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """What a restart must not lose (JSON-safe, bounded): load histories and health
        baselines. Element states and in-flight actions are re-read from the plant instead."""
        return {
            "version": 1,
            "first_t": None if math.isnan(self._first_t) else self._first_t,
            "forecasters": {c: f.to_dict() for c, f in self._forecasters.items()},
            "monitors": {e: m.to_dict() for e, m in self._monitors.items()},
        }

    @classmethod
    def from_dict(
        cls,
        topology: Topology,
        data: Mapping[str, Any],
        config: PolicyConfig | None = None,
        *,
        schedule: Sequence[ScheduledLoad] = (),
    ) -> DecisionPolicy:
        """Rebuild from :meth:`to_dict`; ids no longer in the plant are dropped, new ones start
        fresh. Raises KeyError/ValueError/TypeError on a damaged record."""
        policy = cls(topology, config, schedule=schedule)
        if int(data["version"]) != 1:
            raise ValueError(f"unknown policy state version {data['version']!r}")
        for cid, fd in dict(data.get("forecasters", {})).items():
            if cid in policy._forecasters:
                policy._forecasters[cid] = LoadForecaster.from_dict(dict(fd))
        for eid, md in dict(data.get("monitors", {})).items():
            if eid in policy._monitors:
                policy._monitors[eid] = DegradationMonitor.from_dict(md)
        first = data.get("first_t")
        if first is not None:
            policy._first_t = float(first)
        return policy

    # ------------------------------------------------------------------------- forecasting
    def _known(self, circuit: str) -> Any:
        works = [w for w in self.schedule if circuit in w.circuits]
        if not works:
            return None

        def known(t: FloatArray) -> FloatArray:
            out = np.zeros(np.shape(t))
            for w in works:
                out += np.where((t >= w.start_s) & (t < w.end_s), w.extra_a, 0.0)
            return out

        return known

    def _refresh_forecasts(self, now: float) -> None:
        cfg = self.config
        self._fc = {
            c: f.forecast(now, known=self._known(c), horizon_s=cfg.horizon_s)
            for c, f in self._forecasters.items()
        }
        self._fc_t = now
        first = next(iter(self._fc.values()), None)
        self._fc_times = first.times() if first is not None else np.zeros(0)
        self._build_profiles()

    def _sigma(self, fc: Forecast) -> FloatArray:
        return np.maximum(fc.p90 - fc.p50, 0.0) / Z90

    def _build_profiles(self) -> None:
        """Per-circuit effective P90 profiles and element forecasts under the assignment."""
        rho = self.config.error_correlation
        p50 = {c: f.p50 for c, f in self._fc.items()}
        sig = {c: self._sigma(f) for c, f in self._fc.items()}
        n = len(self._fc_times)
        if not p50 or n == 0:
            self._profiles = {}
            self._element_fc = {}
            return
        s = np.vstack([sig[c] for c in self._fc])
        sum_sig = s.sum(axis=0)
        agg = np.sqrt((1.0 - rho) * (s * s).sum(axis=0) + rho * sum_sig * sum_sig)
        k = np.where(sum_sig > _EPS, Z90 * agg / np.maximum(sum_sig, _EPS), Z90)
        self._profiles = {c: p50[c] + k * sig[c] for c in self._fc}
        self._element_fc = self._element_forecasts(self._assignment)
        self._fc_assignment = dict(self._assignment)

    def _element_forecasts(self, assignment: Mapping[str, str | None]) -> dict[str, Forecast]:
        rho = self.config.error_correlation
        n = len(self._fc_times)
        out: dict[str, Forecast] = {}
        for e in self.topology.elements:
            members = [c for c in self.topology.circuits_through(e, assignment) if c in self._fc]
            p50 = np.zeros(n)
            ssq = np.zeros(n)
            ssum = np.zeros(n)
            for c in members:
                sg = self._sigma(self._fc[c])
                p50 += self._fc[c].p50
                ssq += sg * sg
                ssum += sg
            sigma = np.sqrt((1.0 - rho) * ssq + rho * ssum * ssum)
            start = float(self._fc_times[0]) if n else self._fc_t
            step = self.config.resample_s
            out[e] = Forecast(
                start,
                step,
                np.maximum(p50 - Z90 * sigma, 0.0),
                p50,
                p50 + Z90 * sigma,
                "circuit-sum",
            )
        return out

    def element_forecast(self, element: str) -> Forecast | None:
        """The latest load forecast of an ATS/MPDU under the present assignment."""
        return self._element_fc.get(element)

    def circuit_forecast(self, circuit: str) -> Forecast | None:
        """The latest load forecast of one circuit."""
        return self._fc.get(circuit)

    # ---------------------------------------------------------------------------- deciding
    @property
    def assignment(self) -> Mapping[str, str | None]:
        """Where every circuit draws from, as last observed."""
        return dict(self._assignment)

    @property
    def busy(self) -> bool:
        """Whether an action is being executed."""
        return self._active is not None

    def action_started(self, action: Action) -> None:
        """The caller began executing ``action``."""
        self._active = action
        key = (action.kind, action.target)
        self._approved.discard(key)

    def action_finished(self, action: Action, *, ok: bool, note: str = "") -> None:
        """The caller finished (or abandoned) ``action``; a failed one is not retried at once."""
        if self._active is action:
            self._active = None
        self._plan_t = -math.inf
        if not ok:
            self._failed_plans[(action.kind, action.target)] = self._last_t
        if action.kind in ("relieve", "rebalance"):
            for mv in action.plan.moves:
                self._elements[mv.from_mpdu].relieved_s = self._last_t
                self._elements[self.topology.ats_of(mv.from_mpdu)].relieved_s = self._last_t

    def approve(self, kind: ActionKind, target: str | None) -> None:
        """Approval mode: let the next tick execute the proposal ``(kind, target)``."""
        self._approved.add((kind, target))

    def status(self) -> dict[str, ElementStatus]:
        """What the policy believes about every ATS/MPDU."""
        return {
            e: ElementStatus(
                reachable=st.reachable,
                energized=st.energized,
                failed=st.failed,
                alert=bool(self._assessments.get(e) and self._assessments[e].alert),
                load_a=st.load_a,
            )
            for e, st in self._elements.items()
        }

    def _unavailable(self, alerts: frozenset[str]) -> set[str]:
        """Elements that must not receive load: dead, alerting, unreachable (and below them)."""
        topo = self.topology
        bad: set[str] = set()
        for e, st in self._elements.items():
            if not st.reachable or not st.energized or st.failed or e in alerts:
                bad.add(e)
        for a in topo.ats:
            if a in bad:
                bad.update(topo.mpdus_of(a))
        return bad

    def decide(self, now_s: float) -> Decisions:
        """Assess, predict and (depending on the mode) propose or order actions."""
        cfg = self.config
        self._assessments = {e: m.assess(now_s) for e, m in self._monitors.items()}
        alerts = frozenset(e for e, a in self._assessments.items() if a.alert)
        for e, st in self._elements.items():
            if st.alert and e not in alerts:
                st.alert_cleared_s = now_s
            st.alert = e in alerts
        refreshed = False
        if now_s - self._fc_t >= cfg.forecast_interval_s - _EPS:
            self._refresh_forecasts(now_s)
            refreshed = True
        elif self._assignment != self._fc_assignment:
            self._element_fc = self._element_forecasts(self._assignment)
            self._fc_assignment = dict(self._assignment)
        overloads = self._overloads(now_s)
        if refreshed:
            near = {
                o.element
                for o in overloads
                if o.crossing_s is not None and o.crossing_s - now_s <= cfg.relieve_lead_s
            }
            for e in self._streak:
                self._streak[e] = self._streak[e] + 1 if e in near else 0
        notes: list[str] = []
        infeasible: list[Infeasible] = []
        # Every mode plans (monitor too: the failover rebalance runs in every mode); what is
        # executed, proposed or only alerted is the engine's mode table (engine/modes.py).
        unavailable = self._unavailable(alerts)
        candidates = self._candidates(now_s, alerts, unavailable, overloads, infeasible, notes)
        actions, proposals = split_by_mode(cfg.mode, candidates, self._approved)
        return Decisions(
            t_s=now_s,
            assessments=dict(self._assessments),
            status=self.status(),
            overloads=tuple(overloads),
            actions=tuple(actions[:1]),
            proposals=tuple(proposals),
            infeasible=tuple(infeasible),
            forecasts=dict(self._element_fc) if refreshed else {},
            notes=tuple(notes),
        )

    def _overloads(self, now_s: float) -> list[OverloadPrediction]:
        out: list[OverloadPrediction] = []
        for e in self.topology.elements:
            limit = self.topology.limit_a(e)
            st = self._elements[e]
            measured = st.load_a if st.reachable else math.nan
            fc = self._element_fc.get(e)
            crossing = None
            peak_s, peak_a = now_s, measured if math.isfinite(measured) else 0.0
            if fc is not None and len(fc.p90):
                crossing = fc.first_crossing(limit)
                peak_s, peak_a = fc.peak("p90")
            urgent = math.isfinite(measured) and measured > limit
            if urgent or crossing is not None:
                out.append(
                    OverloadPrediction(
                        element=e,
                        limit_a=limit,
                        crossing_s=now_s if urgent else crossing,
                        peak_s=peak_s,
                        peak_a=max(peak_a, measured if urgent else 0.0),
                        measured_a=measured,
                        urgent=urgent,
                    )
                )
        return out

    # ------------------------------------------------------------------------ planning
    def _loads(
        self, now_s: float, *, until_s: float | None = None, margin: float = 0.0
    ) -> tuple[dict[str, FloatArray], FloatArray]:
        """Per-circuit profiles on [now, forecast grid...], inflated by ``margin``."""
        times = self._fc_times
        if until_s is not None:
            times = times[times <= until_s]
        n = len(times)
        grid = np.concatenate(([now_s], times))
        loads: dict[str, FloatArray] = {}
        for c in self.topology.circuits:
            prof = self._profiles.get(c)
            now_a = self._circuit_a.get(c, 0.0)
            series = np.full(n + 1, now_a) if prof is None else np.concatenate(([now_a], prof[:n]))
            loads[c] = series * (1.0 + margin)
        return loads, grid

    def _plan(
        self,
        now_s: float,
        *,
        drain: str | None,
        unavailable: set[str],
        goal: str,
        max_step_amps: float,
        horizons: Sequence[float | None],
        best_effort: bool = False,
    ) -> Plan | Infeasible:
        """Try the full horizon first, then shorter ones (a far forecast may be infeasible).

        ``best_effort`` (urgent relief): when even "now" has no plan that brings every element
        under its limit, accept the smallest excess the planner says is achievable on the
        elements that are over their limit already, and keep every other element within its
        true limit; relieving most of an overload beats leaving all of it.
        """
        result: Plan | Infeasible | None = None
        topo = self.topology
        attempts: list[tuple[float | None, Topology]] = [(u, topo) for u in horizons]
        if best_effort:
            over = [e for e in topo.elements if self._elements[e].load_a > topo.limit_a(e)]
            if over:
                attempts += [(now_s, self._relaxed(over, f)) for f in (0.05, 0.1, 0.2, 0.4, 1.0)]
        for until, plan_topo in attempts:
            loads, grid = self._loads(now_s, until_s=until, margin=self.config.plan_margin)
            try:
                result = plan_migration(
                    plan_topo,
                    self._assignment,
                    loads,
                    grid,
                    drain=drain,
                    unavailable=sorted(unavailable),
                    max_step_amps=max_step_amps,
                    goal=goal,
                    time_limit_s=self.config.plan_time_limit_s,
                )
            except (ValueError, ArithmeticError, RuntimeError) as err:
                # A planner fault must not take the monitoring down with it: report, move nothing.
                self.errors.append(f"planner failed ({goal}): {type(err).__name__}: {err}")
                return Infeasible(goal, drain or "", 0.0, None, f"planner error: {err}")
            if isinstance(result, Plan):
                plan = self._drop_moves_off(result, self._silent(), drain)
                if plan_topo is not topo:
                    plan = replace(plan, notes=(*plan.notes, "best effort: limit not reachable"))
                return plan
        assert result is not None
        return result

    def _relaxed(self, elements: Collection[str], frac: float) -> Topology:
        """The topology with the ratings of ``elements`` (already over their limit) raised by
        ``frac``: every other element keeps its true limit."""
        topo = self.topology
        ats = {
            k: replace(v, rating_a=v.rating_a * (1 + frac)) if k in elements else v
            for k, v in topo.ats.items()
        }
        mpdus = {
            k: replace(v, rating_a=v.rating_a * (1 + frac)) if k in elements else v
            for k, v in topo.mpdus.items()
        }
        return Topology.build(ats.values(), mpdus.values(), topo.circuits.values())

    def _silent(self) -> set[str]:
        """MPDUs that are only unreachable (comms), not failed: nobody needs to leave them."""
        topo = self.topology
        silent = {e for e, st in self._elements.items() if not st.reachable and not st.failed}
        return {
            m
            for m in topo.mpdus
            if (m in silent or topo.ats_of(m) in silent) and not self._elements[m].failed
        }

    @staticmethod
    def _drop_moves_off(plan: Plan, sources: set[str], drain: str | None) -> Plan:
        """Remove moves away from ``sources``: the planner moves circuits off every unavailable
        element, but one that merely stopped answering is not failing. Dropping a move off an
        element leaves it and everything else at or below the load the plan assumed."""
        sources = {m for m in sources if m != drain}
        if not sources or not any(mv.from_mpdu in sources for mv in plan.moves):
            return plan
        steps = []
        for step in plan.steps:
            moves = tuple(mv for mv in step.moves if mv.from_mpdu not in sources)
            if moves:
                steps.append(replace(step, moves=moves, amps=float(sum(m.amps for m in moves))))
        final = dict(plan.final_assignment)
        for mv in plan.moves:
            if mv.from_mpdu in sources:
                final[mv.circuit] = mv.from_mpdu
        return replace(
            plan,
            steps=tuple(steps),
            final_assignment=final,
            notes=(*plan.notes, "moves off unreachable (not failed) elements dropped"),
        )

    def _candidates(
        self,
        now_s: float,
        alerts: frozenset[str],
        unavailable: set[str],
        overloads: list[OverloadPrediction],
        infeasible: list[Infeasible],
        notes: list[str],
    ) -> list[Action]:
        cfg = self.config
        topo = self.topology
        out: list[Action] = []
        active = self._active

        def blocked(kind: ActionKind, target: str | None) -> bool:
            return now_s - self._failed_plans.get((kind, target), -math.inf) < 1800.0

        # 1. Urgent: something is above its continuous limit now.
        urgent = [o for o in overloads if o.urgent]
        dead = [e for e, st in self._elements.items() if st.failed or not st.energized]
        kind: ActionKind = "rebalance" if dead else "relieve"
        urgent_sig = (frozenset(o.element for o in urgent), frozenset(dead))
        retry = (
            urgent_sig != self._urgent_sig
            or now_s - self._urgent_t >= cfg.urgent_retry_s - _EPS
            or (kind, None) in self._approved
        )
        if (
            urgent
            and retry
            and (active is None or not active.urgent)
            and now_s - self._failed_plans.get((kind, None), -math.inf) >= cfg.urgent_retry_s
        ):
            goal = "rebalance after failure" if dead else "relieve overload"
            self._urgent_t = now_s
            self._urgent_sig = urgent_sig
            res = self._plan(
                now_s,
                drain=None,
                unavailable=unavailable,
                goal=goal,
                max_step_amps=cfg.urgent_max_step_amps,
                horizons=(now_s + 3600.0, now_s),
                best_effort=True,
            )
            if isinstance(res, Plan) and res.moves:
                out.append(self._action(kind, None, res, urgent=True, now_s=now_s, why=goal))
                return out
            if isinstance(res, Infeasible):
                infeasible.append(res)
        if active is not None:
            return out
        sig = (
            alerts,
            frozenset(e for e, st in self._elements.items() if st.failed or not st.energized),
            frozenset(self._failed_plans.items()),
        )
        if (
            now_s - self._plan_t < cfg.replan_interval_s - _EPS
            and sig == self._plan_sig
            and not self._approved
        ):
            return out
        self._plan_t = now_s
        self._plan_sig = sig
        # 2. Drain components predicted to fail.
        for e in sorted(alerts):
            if not topo.circuits_through(e, self._assignment) or blocked("migrate", e):
                continue
            st = self._elements[e]
            if st.failed or not st.energized:
                continue
            a = self._assessments[e]
            res = self._plan(
                now_s,
                drain=e,
                unavailable=unavailable,
                goal=f"drain {e}",
                max_step_amps=cfg.max_step_amps,
                horizons=(None, now_s + cfg.drain_min_horizon_s),
            )
            why = f"{e} is predicted to fail" + (
                f" within {a.time_to_failure_s / 3600:.1f} h"
                if a.time_to_failure_s is not None
                else ""
            )
            if isinstance(res, Infeasible):
                # No complete drain keeps every element within its limit over the whole
                # horizon: move what fits (never pushing anything over its limit at the forecast
                # peak), report the rest, and leave the trade-off to a person.
                infeasible.append(res)
                res = self._plan(
                    now_s,
                    drain=None,
                    unavailable=unavailable | {e, *topo.mpdus_of(e)},
                    goal=f"partial drain {e}",
                    max_step_amps=cfg.max_step_amps,
                    horizons=(None,),
                )
                why += " (partial: the rest has no room within the limits)"
            if isinstance(res, Plan) and res.moves:
                out.append(self._action("migrate", e, res, urgent=False, now_s=now_s, why=why))
                return out
        # 3. Relieve predicted overloads (enough history only: a young forecast is not trusted).
        history = self._last_t - self._first_t if math.isfinite(self._first_t) else 0.0
        soon = [
            o
            for o in overloads
            if not o.urgent
            and o.crossing_s is not None
            and o.crossing_s - now_s <= cfg.relieve_lead_s
            and self._streak[o.element] >= cfg.relieve_confirmations
        ]
        if soon and history >= cfg.min_history_s and not blocked("relieve", None):
            res = self._plan(
                now_s,
                drain=None,
                unavailable=unavailable,
                goal="relieve overload",
                max_step_amps=cfg.max_step_amps,
                horizons=(None, now_s + 2 * cfg.relieve_lead_s, now_s + cfg.relieve_lead_s),
            )
            names = ", ".join(o.element for o in soon)
            if isinstance(res, Plan) and res.moves:
                out.append(
                    self._action(
                        "relieve",
                        None,
                        res,
                        urgent=False,
                        now_s=now_s,
                        why=f"forecast P90 load of {names} reaches the continuous limit",
                    )
                )
                return out
            if isinstance(res, Infeasible):
                infeasible.append(res)
        # 4. Restore circuits to their normal paths when that is healthy, stable and safe.
        if self._restorable(now_s, alerts, unavailable) and not blocked("restore", None):
            loads, grid = self._loads(now_s, margin=cfg.restore_margin / (1 - cfg.restore_margin))
            hold = {
                e
                for e, st in self._elements.items()
                if now_s - st.relieved_s < cfg.relief_hold_s
                or now_s - st.alive_since_s < cfg.restore_stable_s
                or (st.repaired_s is not None and now_s - st.repaired_s < cfg.restore_stable_s)
                or now_s - st.alert_cleared_s < cfg.restore_stable_s
            }
            try:
                res2 = restore_plan(
                    topo,
                    self._assignment,
                    loads,
                    grid,
                    unavailable=sorted(unavailable | hold),
                    max_step_amps=cfg.max_step_amps,
                    time_limit_s=cfg.plan_time_limit_s,
                )
            except (ValueError, ArithmeticError, RuntimeError) as err:
                self.errors.append(f"planner failed (restore): {type(err).__name__}: {err}")
                return out
            if isinstance(res2, Plan):
                res2 = self._drop_moves_off(res2, self._silent(), None)
            if isinstance(res2, Plan) and res2.moves:
                out.append(
                    self._action(
                        "restore",
                        None,
                        res2,
                        urgent=False,
                        now_s=now_s,
                        why="normal paths are healthy and stable again",
                    )
                )
            elif isinstance(res2, Infeasible):
                notes.append(f"restore not possible yet: {res2.reason}")
        return out

    def _restorable(self, now_s: float, alerts: frozenset[str], unavailable: set[str]) -> bool:
        """Some circuit is off its normal path and that path could take it back."""
        del now_s
        for cid, node in self.topology.circuits.items():
            path = self._assignment.get(cid)
            if path is None or path == node.normal_path or not self._circuit_reachable[cid]:
                continue
            normal = node.normal_path
            if normal in unavailable or self.topology.ats_of(normal) in unavailable:
                continue
            if normal in alerts or self.topology.ats_of(normal) in alerts:
                continue
            return True
        return False

    def _action(
        self,
        kind: ActionKind,
        target: str | None,
        plan: Plan,
        *,
        urgent: bool,
        now_s: float,
        why: str,
    ) -> Action:
        cfg = self.config
        if len(plan.moves) > cfg.max_moves_per_tick:
            steps = []
            count = 0
            for step in plan.steps:
                if count + len(step.moves) > cfg.max_moves_per_tick:
                    break
                steps.append(step)
                count += len(step.moves)
            plan = replace(plan, steps=tuple(steps), notes=(*plan.notes, "truncated"))
        return Action(
            kind=kind,
            target=target,
            plan=plan,
            reason=why,
            urgent=urgent,
            step_interval_s=cfg.poll_s if urgent else cfg.step_interval_s,
            created_s=now_s,
        )
