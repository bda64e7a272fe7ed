"""The decision policy: from polled observations to alerts, overload predictions and staged plans.

One :class:`DecisionPolicy` per plant runs the same way in Home Assistant and in ``dcp_eval``. It
owns one :class:`LoadForecaster` per circuit (through :class:`ElementForecasts`) and one
:class:`DegradationMonitor` per ATS/MPDU, takes one :class:`PlantObservation` per poll and, on
every :meth:`DecisionPolicy.decide`, says which components are at risk and what to do about it.

The ideas live in their own modules; this one only wires them together:

* ``plant_state.py``: what the policy believes about every element (alive, failed, repaired);
* ``element_forecast.py``: element loads as sums of circuit forecasts under an assignment;
* ``rules.py``: the decision rules (migrate, relieve, rebalance, restore) and retry bookkeeping;
* ``plan_retries.py``: planner calls over shorter horizons and relaxed limits;
* ``decisions.py``: the types a tick produces; ``policy_config.py``: every tunable.

Rules enforced (the executor verifies them again): never move load onto a dead, alerting,
unreachable or draining element; never plan an element above its continuous limit; bounded amps
per stage; nothing happens when nothing is predicted; a short surge inside the limits is not
chased (only a forecast crossing or a measured excess triggers relief). Pure and deterministic.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Mapping, Sequence

from .decisions import (
    Action,
    ActionKind,
    Decisions,
    ElementStatus,
    OverloadPrediction,
)
from .degradation import DegradationMonitor, HealthAssessment, HealthSample
from .element_forecast import Calibration, ElementForecasts
from .forecast import Forecast
from .modes import split_by_mode
from .observation import ElementObs, PlantObservation, ScheduledLoad
from .plant_state import PlantState
from .policy_config import PolicyConfig
from .rules import DecisionRules, find_overloads
from .topology import Topology

__all__ = [
    "Action",
    "ActionKind",
    "DecisionPolicy",
    "Decisions",
    "ElementStatus",
    "OverloadPrediction",
    "PolicyConfig",
]

_EPS = 1e-9


class DecisionPolicy:
    """Plant-level decision object: observe every poll, decide on every tick."""

    def __init__(
        self,
        topology: Topology,
        config: PolicyConfig | None = None,
        *,
        schedule: Sequence[ScheduledLoad] = (),
        non_working_days: Collection[dt.date] = (),
    ) -> None:
        self.topology = topology
        self.config = cfg = config or PolicyConfig()
        self.schedule: tuple[ScheduledLoad, ...] = tuple(schedule)
        self._fcs = ElementForecasts(topology, cfg)
        self.non_working_days: frozenset[dt.date] = frozenset()
        if non_working_days:
            self.set_non_working_days(non_working_days)
        self._monitors: dict[str, DegradationMonitor] = {
            **{a: DegradationMonitor(a, "ats", horizon_s=cfg.horizon_s) for a in topology.ats},
            **{m: DegradationMonitor(m, "mpdu", horizon_s=cfg.horizon_s) for m in topology.mpdus},
        }
        self._state = PlantState(topology)
        self._rules = DecisionRules(topology, cfg, self._state, self._fcs)
        self._assignment: dict[str, str | None] = topology.normal_assignment()
        self._circuit_a: dict[str, float] = dict.fromkeys(topology.circuits, 0.0)
        self._circuit_reachable: dict[str, bool] = dict.fromkeys(topology.circuits, True)
        self._ambient_c = math.nan
        self._last_t = -math.inf
        self._first_t = math.nan
        self._assessments: dict[str, HealthAssessment] = {}

    def set_non_working_days(self, days: Collection[dt.date]) -> None:
        """Holidays and other non-working local dates (weekends may be included): the load
        forecasts give them a Sunday's shape, in the history learnt from and ahead."""
        self.non_working_days = frozenset(days)
        self._fcs.set_non_working_days(self.non_working_days)

    @property
    def errors(self) -> list[str]:
        """Internal faults (e.g. of the planner) met while deciding; never raised to the caller."""
        return self._rules.errors

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
            if cid not in self._fcs.forecasters:
                continue
            self._circuit_reachable[cid] = c.reachable
            if not c.reachable:
                continue
            self._assignment[cid] = c.active_path if c.energized else None
            if math.isfinite(c.current_a):
                self._circuit_a[cid] = c.current_a
                # A de-energised circuit draws nothing, but its demand did not vanish: keep
                # that gap out of its load history.
                self._fcs.observe(cid, t, c.current_a if c.energized else math.nan)
        self._fcs.outcome(
            t,
            self._circuit_a,
            {c: o.reachable and o.energized for c, o in obs.circuits.items()},
        )
        for eid, e in obs.elements.items():
            if eid in self._state.elements:
                self._observe_element(t, e)
        for eid in self._state.update_failures():
            self._state.elements[eid].repaired_s = t
            self._monitors[eid].mark_repaired(t)

    def _observe_element(self, t: float, e: ElementObs) -> None:
        if not self._state.observe_element(t, e):
            return
        ambient = self._ambient_c
        if not math.isfinite(ambient):
            return
        self._monitors[e.id].observe(HealthSample.of(t, e, self.topology.rating_a(e.id), ambient))

    # ------------------------------------------------------------------------- forecasting
    def element_forecast(self, element: str) -> Forecast | None:
        """The latest load forecast of an ATS/MPDU under the present assignment."""
        return self._fcs.element_fc.get(element)

    def circuit_forecast(self, circuit: str) -> Forecast | None:
        """The latest load forecast of one circuit."""
        return self._fcs.circuit_fc.get(circuit)

    def calibration(self) -> Calibration:
        """How often the element P10-P90 bands held the outcomes, and the spread's scale."""
        return self._fcs.calibration()

    # ---------------------------------------------------------------------------- deciding
    @property
    def assignment(self) -> Mapping[str, str | None]:
        """Where every circuit draws from, as last observed."""
        return dict(self._assignment)

    @property
    def busy(self) -> bool:
        """Whether an action is being executed."""
        return self._rules.active is not None

    def action_started(self, action: Action) -> None:
        """The caller began executing ``action``."""
        self._rules.active = action
        self._rules.approved.discard((action.kind, action.target))

    def action_finished(self, action: Action, *, ok: bool, note: str = "") -> None:
        """The caller finished (or abandoned) ``action``; a failed one is not retried at once."""
        del note
        self._rules.finished(action, ok=ok, now_s=self._last_t)

    def replan(self) -> None:
        """Plan again at the next tick, not only after ``replan_interval_s``: a migration ended
        (the engine's or a person's) or a proposal's outcome left the plant as it is. The action
        planned while a person's migration ran was never started (one action at a time); without
        this the unit at risk waited for the interval, however near its failure."""
        self._rules.plan_t = -math.inf

    def approve(self, kind: ActionKind, target: str | None) -> None:
        """Approval mode: let the next tick execute the proposal ``(kind, target)``."""
        self._rules.approved.add((kind, target))

    def _alerts(self) -> frozenset[str]:
        return frozenset(e for e, a in self._assessments.items() if a.alert)

    def status(self) -> dict[str, ElementStatus]:
        """What the policy believes about every ATS/MPDU."""
        return self._state.status(self._alerts())

    def decide(self, now_s: float) -> Decisions:
        """Assess, predict and (depending on the mode) propose or order actions."""
        cfg = self.config
        fcs = self._fcs
        self._assessments = {e: m.assess(now_s) for e, m in self._monitors.items()}
        alerts = self._alerts()
        self._state.set_alerts(now_s, alerts)
        refreshed = False
        if now_s - fcs.refreshed_s >= cfg.forecast_interval_s - _EPS:
            fcs.refresh(now_s, self.schedule, self._assignment)
            refreshed = True
        elif self._assignment != fcs.assignment:
            fcs.update_assignment(self._assignment)
        overloads = find_overloads(self.topology, self._state, fcs, now_s)
        if refreshed:
            self._rules.count_confirmations(now_s, overloads)
        # Every mode plans (monitor too: the failover rebalance runs in every mode); what is
        # executed, proposed or only alerted is the engine's mode table (engine/modes.py).
        history = self._last_t - self._first_t if math.isfinite(self._first_t) else 0.0
        candidates = self._rules.candidates(
            now_s,
            assignment=self._assignment,
            circuit_a=self._circuit_a,
            circuit_reachable=self._circuit_reachable,
            assessments=self._assessments,
            alerts=alerts,
            unavailable=self._state.unavailable(alerts),
            overloads=overloads,
            history_s=history,
        )
        actions, proposals = split_by_mode(cfg.mode, candidates.actions, self._rules.approved)
        return Decisions(
            t_s=now_s,
            assessments=dict(self._assessments),
            status=self.status(),
            overloads=tuple(overloads),
            actions=tuple(actions[:1]),
            proposals=tuple(proposals),
            infeasible=candidates.infeasible,
            forecasts=dict(fcs.element_fc) if refreshed else {},
            notes=candidates.notes,
            load_profiles=fcs.load_profiles() if len(fcs.times) else None,
            lineup=dict(fcs.assignment),
            decisions_needed=candidates.decisions_needed,
        )
