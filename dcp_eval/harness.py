"""Run a scenario with the decision engine in the loop, in accelerated simulated time.

The plant (``dcp_sim.plant.Plant``) is stepped directly, without Modbus: every ``poll_s`` the
harness reads its telemetry as the integration would (a device under ``comms_loss`` is
unreachable and its values are missing, a stuck sensor repeats itself), hands it to the engine
as a :class:`PlantObservation`, and during the evaluated period asks the engine to decide.
Plans are executed stage by stage with :class:`StagedExecution`: command the SBMs, wait
``step_interval``, verify from fresh telemetry that the load moved and nothing new alarmed, and
roll the stage back otherwise. The async ``executor.MigrationExecutor`` of the integration
waits on wall-clock timers, so this synchronous stepper drives simulated time instead; its
verification rules are the same.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from custom_components.datacenter_power.engine.observation import (
    PlantObservation,
    ScheduledLoad,
)
from custom_components.datacenter_power.engine.planner import Move
from custom_components.datacenter_power.engine.policy import (
    Action,
    DecisionPolicy,
    Decisions,
    PolicyConfig,
)
from custom_components.datacenter_power.engine.readings import (
    observation_from_readings,
    topology_from_identities,
)
from custom_components.datacenter_power.engine.topology import CONTINUOUS_FRACTION, Topology
from dcp_sim.plant import CommandRejected, Plant, PlantMetrics
from dcp_sim.scenario import Scenario
from dcp_sim.telemetry import PlantTelemetry
from dcp_sim.units import device_identities

__all__ = [
    "ActionRecord",
    "Evaluation",
    "ForecastPair",
    "PolicyName",
    "StagedExecution",
    "observation_from_telemetry",
    "run_evaluation",
    "schedule_from_scenario",
    "topology_from_scenario",
]

type PolicyName = Literal["proactive", "reactive"]
type FloatArray = npt.NDArray[np.float64]

CONTINUOUS_LIMIT = CONTINUOUS_FRACTION
FORECAST_LEAD_S = 3600.0
VERIFY_ATTEMPTS = 3


# ------------------------------------------------------------------------------------------
# Adapters: scenario / telemetry -> engine inputs
# ------------------------------------------------------------------------------------------


def topology_from_scenario(scenario: Scenario) -> Topology:
    """The engine's plant graph, built as the integration builds it: from the identities the
    simulated devices report (``dcp_sim.units``), by the engine's one topology builder."""
    return topology_from_identities(device_identities(scenario))


def epoch0(scenario: Scenario) -> float:
    """Unix epoch seconds of scenario t=0."""
    return scenario.start.timestamp()


def utc_offset_s(scenario: Scenario) -> float:
    """The plant's local wall-clock offset (for weekday/weekend)."""
    offset = scenario.start.utcoffset()
    return offset.total_seconds() if offset else 0.0


def schedule_from_scenario(scenario: Scenario) -> tuple[ScheduledLoad, ...]:
    """Announced work only (unannounced work is a surprise, like a surge)."""
    t0 = epoch0(scenario)
    return tuple(
        ScheduledLoad(t0 + w.start_s, t0 + w.start_s + w.duration_s, w.circuits, w.extra_a)
        for w in scenario.schedule
        if w.announced
    )


def observation_from_telemetry(
    tel: PlantTelemetry, t0: float, topology: Topology
) -> PlantObservation:
    """What the integration would see, built by the engine's one observation builder from the
    devices that answer (a device under ``comms_loss`` reports nothing: NaN, unreachable)."""
    return observation_from_readings(t0 + tel.t_s, topology, tel.readings())


# ------------------------------------------------------------------------------------------
# Staged execution against the plant
# ------------------------------------------------------------------------------------------


def _path_of(tel: PlantTelemetry, circuit: str) -> str | None:
    c = tel.circuits.get(circuit)
    if c is None or not c.reachable:
        return None
    return c.paths[c.active_path]


def _over_limit(tel: PlantTelemetry) -> frozenset[str]:
    over = {a.id for a in tel.ats.values() if a.load_current_a > CONTINUOUS_LIMIT * a.rating_a}
    over |= {m.id for m in tel.mpdus.values() if m.current_a > CONTINUOUS_LIMIT * m.rating_a}
    return frozenset(over)


def _tripped(tel: PlantTelemetry) -> frozenset[str]:
    out = {m.id for m in tel.mpdus.values() if m.breaker_open}
    out |= {c.id for c in tel.circuits.values() if c.breaker_open}
    return frozenset(out)


type ExecState = Literal["running", "completed", "failed"]


@dataclass(slots=True)
class StagedExecution:
    """One action being executed: switch a stage, wait, verify, continue or roll back."""

    action: Action
    next_at_s: float
    stage: int = 0
    pending: tuple[Move, ...] | None = None
    over_before: frozenset[str] = frozenset()
    tripped_before: frozenset[str] = frozenset()
    attempts: int = 0
    note: str = ""
    log: list[tuple[float, int, int, float]] = field(default_factory=list)
    """(t_s, stage index, moves, amps) of every stage switched."""

    def tick(self, plant: Plant, tel: PlantTelemetry) -> ExecState:
        """Advance at one poll: verify the pending stage, then switch the next when due."""
        t = tel.t_s
        steps = self.action.plan.steps
        if self.pending is not None:
            problem = self._verify(tel)
            if problem == "":
                self.pending = None
                self.stage += 1
                self.attempts = 0
                if self.stage >= len(steps):
                    self.note = "all stages verified"
                    return "completed"
            elif problem is None:  # could not read yet (comms): try again next poll
                self.attempts += 1
                if self.attempts >= VERIFY_ATTEMPTS:
                    self._rollback(plant, tel, self.pending)
                    self.note = "stage could not be verified (no telemetry)"
                    return "failed"
                return "running"
            else:
                self._rollback(plant, tel, self.pending)
                self.note = f"stage {self.stage + 1} rolled back: {problem}"
                return "failed"
        if self.stage >= len(steps):
            return "completed"
        if t + 1e-6 < self.next_at_s:
            return "running"
        step = steps[self.stage]
        todo: list[Move] = []
        for mv in step.moves:
            c = tel.circuits.get(mv.circuit)
            if c is None or not c.reachable:
                self.note = f"{mv.circuit} is unreachable; stopped before stage {self.stage + 1}"
                return "failed"
            where = c.paths[c.active_path]
            if where == mv.to_mpdu:
                continue
            if where != mv.from_mpdu:
                self.note = f"{mv.circuit} is on {where}, not {mv.from_mpdu}; plan is stale"
                return "failed"
            if not c.path_energized[c.paths.index(mv.to_mpdu)]:
                self.note = f"{mv.to_mpdu} is not energised; stage {self.stage + 1} not started"
                return "failed"
            todo.append(mv)
        self.over_before = _over_limit(tel)
        self.tripped_before = _tripped(tel)
        done: list[Move] = []
        for mv in todo:
            try:
                plant.command_sbm_path(mv.circuit, mv.to_mpdu)
            except CommandRejected as err:
                self._rollback(plant, plant.telemetry(), tuple(done))
                self.note = f"command refused: {err}"
                return "failed"
            done.append(mv)
        self.log.append((t, self.stage, len(todo), float(sum(m.amps for m in todo))))
        self.pending = tuple(step.moves)
        self.next_at_s = t + self.action.step_interval_s
        return "running"

    def _verify(self, tel: PlantTelemetry) -> str | None:
        """'' when the stage did what it should, None when unknown, else the problem."""
        assert self.pending is not None
        targets: set[str] = set()
        for mv in self.pending:
            c = tel.circuits.get(mv.circuit)
            if c is None or not c.reachable:
                return None
            if c.paths[c.active_path] != mv.to_mpdu:
                return f"{mv.circuit} reports {c.paths[c.active_path]}, expected {mv.to_mpdu}"
            if not c.energized:
                return f"{mv.circuit} is not energised after the move"
            targets.add(mv.to_mpdu)
            targets.add(tel.mpdus[mv.to_mpdu].ats)
        new_over = (_over_limit(tel) - self.over_before) & targets
        if new_over:
            return f"{', '.join(sorted(new_over))} above the continuous limit after the move"
        new_trips = _tripped(tel) - self.tripped_before
        if new_trips:
            return f"breaker trip on {', '.join(sorted(new_trips))}"
        return ""

    @staticmethod
    def _rollback(plant: Plant, tel: PlantTelemetry, moves: tuple[Move, ...]) -> None:
        for mv in moves:
            c = tel.circuits.get(mv.circuit)
            if c is None or not c.reachable:
                continue
            if c.paths[c.active_path] != mv.to_mpdu:
                continue
            if not c.path_energized[c.paths.index(mv.from_mpdu)]:
                continue  # never back onto a dead path: it stays where it is, energised
            try:
                plant.command_sbm_path(mv.circuit, mv.from_mpdu)
            except CommandRejected:
                continue


# ------------------------------------------------------------------------------------------
# The evaluation loop
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ForecastPair:
    """One 1-hour-ahead forecast of an ATS/MPDU load and what was then measured."""

    element: str
    made_s: float
    target_s: float
    forecast_a: float
    actual_a: float


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One executed action (scenario seconds)."""

    kind: str
    target: str | None
    reason: str
    started_s: float
    finished_s: float | None
    ok: bool | None
    note: str
    stages: tuple[tuple[float, int, int, float], ...]
    moves: int


@dataclass(slots=True)
class Evaluation:
    """Everything a run produced; ``dcp_eval.metrics`` turns it into the metrics."""

    scenario: Scenario
    policy: PolicyName
    plant_metrics: PlantMetrics
    times_s: FloatArray
    """Poll times of the evaluated period (scenario seconds)."""
    elements: tuple[str, ...]
    loads_a: FloatArray
    """Measured ATS/MPDU current per poll (NaN when unreachable), shape (polls, elements)."""
    limits_a: FloatArray
    alerts: dict[str, list[tuple[float, bool]]]
    """Per component: (t_s, alert) at every decision tick where it changed (first included)."""
    forecast_pairs: list[ForecastPair]
    actions: list[ActionRecord]
    infeasible: list[tuple[float, str]]
    wall_s: float
    errors: list[str] = field(default_factory=list)
    """Faults the engine met and survived (e.g. a planner exception)."""


@dataclass(slots=True)
class _PendingForecast:
    element: str
    made_s: float
    target_s: float
    forecast_a: float
    version: int


def run_evaluation(
    scenario: Scenario,
    policy: PolicyName = "proactive",
    *,
    config: PolicyConfig | None = None,
    poll_s: float = 60.0,
    history_poll_s: float = 300.0,
    progress: Callable[[float], None] | None = None,
) -> Evaluation:
    """Run history (observe only) and the evaluated period (decide and act).

    The evaluated period is polled every ``poll_s`` (the integration's poll interval). The
    history is the fault-free past the engine learns from before it starts deciding; it is
    sampled every ``history_poll_s`` (5 minutes by default: what Home Assistant's recorder
    statistics would hand a freshly installed integration), which keeps a 14-day history cheap.
    """
    started = time.perf_counter()
    sc = scenario
    t0 = epoch0(sc)
    plant = Plant(sc)
    poll = max(sc.step_s, round(poll_s / sc.step_s) * sc.step_s)
    history_poll = max(sc.step_s, round(history_poll_s / sc.step_s) * sc.step_s)
    topo = topology_from_scenario(sc)
    cfg = config or PolicyConfig(poll_s=poll, utc_offset_s=utc_offset_s(sc))
    engine = (
        DecisionPolicy(topo, cfg, schedule=schedule_from_scenario(sc))
        if policy == "proactive"
        else None
    )
    elements = (*topo.ats, *topo.mpdus)
    limits = np.array([topo.limit_a(e) for e in elements])
    rows: list[list[float]] = []
    times: list[float] = []
    alerts: dict[str, list[tuple[float, bool]]] = {}
    last_alert: dict[str, bool] = {}
    pending: list[_PendingForecast] = []
    pairs: list[ForecastPair] = []
    actions: list[ActionRecord] = []
    infeasible: list[tuple[float, str]] = []
    versions = dict.fromkeys(elements, 0)
    members_prev: dict[str, frozenset[str]] = {}
    execution: StagedExecution | None = None
    exec_started = 0.0

    def finish(ex: StagedExecution, t: float, ok: bool) -> None:
        assert engine is not None
        engine.action_finished(ex.action, ok=ok, note=ex.note)
        actions.append(
            ActionRecord(
                kind=ex.action.kind,
                target=ex.action.target,
                reason=ex.action.reason,
                started_s=exec_started,
                finished_s=t,
                ok=ok,
                note=ex.note,
                stages=tuple(ex.log),
                moves=sum(s[2] for s in ex.log),
            )
        )

    end = sc.duration_s
    next_progress = 0.0
    while True:
        tel = plant.telemetry()
        t = plant.t_s
        if engine is not None:
            engine.observe(observation_from_telemetry(tel, t0, topo))
        if t >= 0:
            row = _element_loads(tel, elements)
            times.append(t)
            rows.append(row)
            _track_versions(tel, elements, members_prev, versions)
            if pending:
                pending = _match_forecasts(pending, pairs, t, row, elements, versions, t0)
            if engine is not None:
                if execution is not None:
                    state = execution.tick(plant, tel)
                    if state != "running":
                        finish(execution, t, state == "completed")
                        execution = None
                        tel = plant.telemetry()
                dec = engine.decide(t0 + t)
                _record_alerts(dec, t, alerts, last_alert)
                for inf in dec.infeasible:
                    infeasible.append((t, f"{inf.goal}: {inf.reason}"))
                for e, fc in dec.forecasts.items():
                    target = fc.value_at(t0 + t + FORECAST_LEAD_S, "p50")
                    pending.append(_PendingForecast(e, t, t + FORECAST_LEAD_S, target, versions[e]))
                if dec.actions:
                    act = dec.actions[0]
                    if execution is not None:
                        execution.note = "preempted by an urgent action"
                        finish(execution, t, False)
                    execution = StagedExecution(act, next_at_s=t)
                    exec_started = t
                    engine.action_started(act)
                    state = execution.tick(plant, tel)
                    if state != "running":
                        finish(execution, t, state == "completed")
                        execution = None
            if progress is not None and t >= next_progress:
                progress(t)
                next_progress += 3600.0
        if t >= end - 1e-6:
            break
        if t < 0:
            # History: coarse sampling, landing on t=0 (the first evaluated poll) when the
            # step grid allows it.
            plant.advance_to(min(t + history_poll, 0.0))
        else:
            plant.advance_to(min(t + poll, end))
        if plant.t_s <= t:  # the step grid does not hit the target exactly
            plant.step()
    if execution is not None:
        execution.note = "still running at the end of the scenario"
        engine_action = execution.action
        actions.append(
            ActionRecord(
                kind=engine_action.kind,
                target=engine_action.target,
                reason=engine_action.reason,
                started_s=exec_started,
                finished_s=None,
                ok=None,
                note=execution.note,
                stages=tuple(execution.log),
                moves=sum(s[2] for s in execution.log),
            )
        )
    return Evaluation(
        scenario=sc,
        policy=policy,
        plant_metrics=plant.metrics,
        times_s=np.asarray(times, dtype=np.float64),
        elements=elements,
        loads_a=np.asarray(rows, dtype=np.float64).reshape(len(rows), len(elements)),
        limits_a=limits,
        alerts=alerts,
        forecast_pairs=pairs,
        actions=actions,
        infeasible=infeasible,
        wall_s=time.perf_counter() - started,
        errors=list(engine.errors) if engine is not None else [],
    )


def _element_loads(tel: PlantTelemetry, elements: tuple[str, ...]) -> list[float]:
    out: list[float] = []
    for e in elements:
        if e in tel.ats:
            a = tel.ats[e]
            out.append(a.load_current_a if a.reachable else math.nan)
        else:
            m = tel.mpdus[e]
            out.append(m.current_a if m.reachable else math.nan)
    return out


def _track_versions(
    tel: PlantTelemetry,
    elements: tuple[str, ...],
    members_prev: dict[str, frozenset[str]],
    versions: dict[str, int],
) -> None:
    """Bump an element's version whenever the set of circuits it carries changes."""
    members: dict[str, set[str]] = {e: set() for e in elements}
    for c in tel.circuits.values():
        if not c.energized:
            continue
        m = c.paths[c.active_path]
        members[m].add(c.id)
        members[tel.mpdus[m].ats].add(c.id)
    for e in elements:
        cur = frozenset(members[e])
        if e in members_prev and members_prev[e] != cur:
            versions[e] += 1
        members_prev[e] = cur


def _match_forecasts(
    pending: list[_PendingForecast],
    pairs: list[ForecastPair],
    t: float,
    row: list[float],
    elements: tuple[str, ...],
    versions: dict[str, int],
    t0: float,
) -> list[_PendingForecast]:
    """Pair forecasts whose target time has come with the load measured now.

    A pair is dropped when the element's set of circuits changed in between (a migration, a
    failure's bypass: the forecast was for a plant that no longer exists) or the load was not
    measurable (unreachable, or dead at ~0 A where a percentage error means nothing).
    """
    del t0
    keep: list[_PendingForecast] = []
    index = {e: i for i, e in enumerate(elements)}
    for p in pending:
        if p.target_s > t + 1e-6:
            keep.append(p)
            continue
        actual = row[index[p.element]]
        if versions[p.element] != p.version or not math.isfinite(actual) or actual < 1.0:
            continue
        pairs.append(ForecastPair(p.element, p.made_s, p.target_s, p.forecast_a, actual))
    return keep


def _record_alerts(
    dec: Decisions,
    t: float,
    alerts: dict[str, list[tuple[float, bool]]],
    last: dict[str, bool],
) -> None:
    for comp, a in dec.assessments.items():
        on = bool(a.alert)
        if last.get(comp) != on:
            alerts.setdefault(comp, []).append((t, on))
            last[comp] = on
