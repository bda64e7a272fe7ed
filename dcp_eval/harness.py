"""Run a scenario with the decision engine in the loop, in accelerated simulated time.

The plant (``dcp_sim.plant.Plant``) is stepped directly, without Modbus: every ``poll_s`` the
harness reads its telemetry as the integration would (a device under ``comms_loss`` is
unreachable and its values are missing, a stuck sensor repeats itself), hands it to the engine
as a :class:`PlantObservation`, and during the evaluated period asks the engine to decide.

Actions are chosen by the engine's ``dispatch`` rule and executed by the integration's own
``executor.MigrationExecutor``, the one Home Assistant runs: the harness gives it a
:class:`SimulatedPlantPort` whose commands go to the plant, whose observations are the plant's
telemetry, and whose ``sleep`` is virtual: the executor is parked until the loop has advanced the
plant to its wake time (the first poll at or after it). The loop runs under asyncio, but nothing
waits on wall-clock time and the order of events is deterministic: after every poll the harness
wakes the sleepers that are due and awaits until the executor is parked again or done.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from custom_components.datacenter_power.engine.dispatch import dispatch
from custom_components.datacenter_power.engine.element_forecast import Calibration
from custom_components.datacenter_power.engine.observation import (
    PlantObservation,
    ScheduledLoad,
)
from custom_components.datacenter_power.engine.plan import Move
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
from custom_components.datacenter_power.engine.risk import (
    accepted_risk,
    refused_receivers,
    risk_of,
)
from custom_components.datacenter_power.engine.topology import Topology
from custom_components.datacenter_power.executor import (
    MigrationExecutor,
    MigrationRecord,
    MigrationState,
    Observation,
)
from dcp_sim.plant import Plant, PlantMetrics
from dcp_sim.scenario import Scenario
from dcp_sim.telemetry import PlantTelemetry
from dcp_sim.units import device_identities

__all__ = [
    "ActionRecord",
    "ActionRunner",
    "Evaluation",
    "ForecastPair",
    "PolicyName",
    "SimulatedPlantPort",
    "executor_observation",
    "observation_from_telemetry",
    "run_evaluation",
    "schedule_from_scenario",
    "topology_from_scenario",
]

type PolicyName = Literal["proactive", "reactive"]
type FloatArray = npt.NDArray[np.float64]

FORECAST_LEAD_S = 3600.0
STALL_TIMEOUT_S = 60.0
"""Wall-clock guard: an executor neither parked nor done after this long is a harness bug."""


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
# The shipping executor against the plant, in virtual time
# ------------------------------------------------------------------------------------------


def executor_observation(tel: PlantTelemetry) -> Observation:
    """What the executor checks and verifies against, from the plant's telemetry (built as Home
    Assistant builds it from a snapshot)."""
    return Observation.from_readings(tel.readings())


class SimulatedPlantPort:
    """The executor's ``PlantPort`` on the simulated plant, with a virtual clock.

    ``set_path`` commands the plant (``CommandRejected`` is the device's refusal), ``observe``
    returns its telemetry now, and ``sleep`` parks the caller until :meth:`wake` is called at a
    plant time at or after its wake time. :meth:`settle` returns once the executor task is parked
    in ``sleep`` again or done, so the loop and the executor take turns deterministically.
    """

    def __init__(self, plant: Plant) -> None:
        """Drive ``plant``."""
        self._plant = plant
        self.at_risk: dict[str, str] = {}
        """MPDU -> why it may take no load, from the latest decision (as Home Assistant's port
        says): the executor's stage check refuses moves onto it."""
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._parked: asyncio.Future[None] | None = None

    async def set_path(self, circuit_id: str, mpdu_id: str) -> None:
        """Command the circuit's SBM (make-before-break)."""
        self._plant.command_sbm_path(circuit_id, mpdu_id)

    async def observe(self) -> Observation:
        """The plant's telemetry at the present (virtual) time, with the units at risk."""
        return replace(executor_observation(self._plant.telemetry()), at_risk=self.at_risk)

    async def sleep(self, seconds: float) -> None:
        """Park until the loop has advanced the plant by ``seconds``."""
        if seconds <= 0:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._plant.t_s + seconds, future))
        if self._parked is not None and not self._parked.done():
            self._parked.set_result(None)
        await future

    def prepare(self) -> None:
        """Start watching for the next park (call before letting the executor run)."""
        self._parked = asyncio.get_running_loop().create_future()

    def wake(self) -> bool:
        """Resolve the sleepers due at the plant's present time; whether any was woken."""
        now = self._plant.t_s + 1e-6
        due = [f for w, f in self._sleepers if w <= now and not f.done()]
        self._sleepers = [(w, f) for w, f in self._sleepers if w > now and not f.done()]
        for future in due:
            future.set_result(None)
        return bool(due)

    async def settle(self, task: asyncio.Task[MigrationRecord]) -> None:
        """Return once ``task`` is parked in ``sleep`` again or done (after :meth:`prepare`)."""
        parked = self._parked
        assert parked is not None
        done, _ = await asyncio.wait(
            (parked, task), timeout=STALL_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        self._parked = None
        if not done:
            raise RuntimeError("the executor neither slept nor finished (harness stall)")


@dataclass(slots=True)
class _Running:
    """One action being executed by the shipping executor."""

    action: Action
    executor: MigrationExecutor
    task: asyncio.Task[MigrationRecord]
    started_s: float
    log: list[tuple[float, int, int, float]]
    """(t_s, stage index, moves, amps) of every stage switched."""


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
    calibration: Calibration | None = None
    """How often the engine's element P10-P90 bands held the outcomes (proactive only)."""
    drain_deadlines: dict[str, list[tuple[float, float | None]]] = field(default_factory=dict)
    """Per unit: (t_s, the engine's drain deadline in scenario seconds, None once dropped) at
    every decision tick where it changed (proactive only; ``dcp_eval.study`` runs ``drain_by``
    at it)."""
    decisions_needed: list[dict[str, Any]] = field(default_factory=list)
    """Every decision-needed record the engine raised, as its ``Decisions.as_dict()`` gives it
    (element, raised_s, deadline_s, choices), with ``seen_s``: the tick it first appeared."""


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
    Actions run in the shipping executor under a private asyncio loop with a virtual clock.
    """
    return asyncio.run(
        _evaluate(
            scenario,
            policy,
            config=config,
            poll_s=poll_s,
            history_poll_s=history_poll_s,
            progress=progress,
        )
    )


class ActionRunner:
    """The actions the engine runs against the plant, one at a time, by the ``dispatch`` rule.

    Call :meth:`advance` at every poll (before the engine observes it), :meth:`apply` with every
    decision, and :meth:`close` at the end; :attr:`records` lists the finished actions.
    """

    def __init__(self, engine: DecisionPolicy, plant: Plant) -> None:
        """Run the engine's actions against ``plant``."""
        self.engine = engine
        self.plant = plant
        self.port = SimulatedPlantPort(plant)
        self.running: _Running | None = None
        self.queued: Action | None = None
        """An urgent action waiting for the preempted one to reach its safe point."""
        self.records: list[ActionRecord] = []
        self._alerts: frozenset[str] = frozenset()
        """The latest decision's alerting units (an urgent hand-back onto them is accepted)."""
        self._count = 0

    async def start(self, action: Action) -> None:
        """Hand ``action`` to a new executor and let it run until it first sleeps or ends."""
        t = self.plant.t_s
        self._count += 1
        log: list[tuple[float, int, int, float]] = []

        def switched(index: int, moves: Sequence[Move]) -> None:
            log.append((self.plant.t_s, index, len(moves), float(sum(m.amps for m in moves))))

        async def progress(record: MigrationRecord, note: str) -> None:
            del record, note

        record = MigrationRecord(
            migration_id=f"eval-{self._count}",
            component=action.target or "plant",
            stages=[list(step.moves) for step in action.plan.steps],
            accepts_risk=accepted_risk(action, self._alerts, self.engine.topology),
        )
        executor = MigrationExecutor(
            self.port,
            record,
            step_interval_s=action.step_interval_s,
            on_progress=progress,
            on_switch=switched,
        )
        self.engine.action_started(action)
        self.port.prepare()
        task = asyncio.get_running_loop().create_task(executor.run())
        self.running = _Running(action, executor, task, t, log)
        await self.port.settle(task)
        self._collect()

    async def advance(self) -> None:
        """At a poll: wake the executor if its sleep is over, then start a queued action."""
        if self.running is not None:
            self.port.prepare()
            if self.port.wake():
                await self.port.settle(self.running.task)
            self._collect()
        if self.running is None and self.queued is not None:
            action, self.queued = self.queued, None
            await self.start(action)

    async def apply(self, decisions: Decisions) -> None:
        """Start, preempt or queue what the engine's ``dispatch`` rule says (the units at risk
        by this decision are what the executor's next stage check refuses)."""
        alerts, failed = risk_of(decisions)
        silent = [e for e, st in decisions.status.items() if not st.reachable]
        self.port.at_risk = refused_receivers(
            self.engine.topology, alerts=alerts, failed=failed, silent=silent
        )
        self._alerts = alerts
        now = dispatch(decisions, self.running.action if self.running is not None else None)
        if now.start is None:
            return
        if self.running is None:
            await self.start(now.start)
            return
        running = self.running
        at_safe_point = running.executor.between_stages
        self.port.prepare()
        running.executor.cancel("preempted by an urgent action")
        if at_safe_point:
            await self.port.settle(running.task)
            self._collect()
        if running.task.done():
            await self.start(now.start)
        else:  # verifying a stage: it stops once that is settled, then the urgent one starts
            self.queued = now.start

    def _collect(self) -> None:
        """Record the running action if its executor has finished."""
        run = self.running
        if run is None or not run.task.done():
            return
        self.running = None
        record = run.task.result()
        ok = record.state is MigrationState.COMPLETED
        note = record.history[-1] if record.history else ""
        self.engine.action_finished(run.action, ok=ok, note=note)
        self.records.append(_action_record(run, self.plant.t_s, ok, note))

    async def close(self) -> None:
        """At the end of the scenario: record an action still running, and stop its task."""
        run = self.running
        if run is None:
            return
        self.records.append(
            _action_record(run, None, None, "still running at the end of the scenario")
        )
        run.task.cancel()
        await asyncio.gather(run.task, return_exceptions=True)
        self.running = None


def _action_record(
    run: _Running, finished_s: float | None, ok: bool | None, note: str
) -> ActionRecord:
    action = run.action
    return ActionRecord(
        kind=action.kind,
        target=action.target,
        reason=action.reason,
        started_s=run.started_s,
        finished_s=finished_s,
        ok=ok,
        note=note,
        stages=tuple(run.log),
        moves=sum(s[2] for s in run.log),
    )


async def _evaluate(
    scenario: Scenario,
    policy: PolicyName,
    *,
    config: PolicyConfig | None,
    poll_s: float,
    history_poll_s: float,
    progress: Callable[[float], None] | None,
) -> Evaluation:
    started = time.perf_counter()
    sc = scenario
    t0 = epoch0(sc)
    plant = Plant(sc)
    poll = max(sc.step_s, round(poll_s / sc.step_s) * sc.step_s)
    history_poll = max(sc.step_s, round(history_poll_s / sc.step_s) * sc.step_s)
    topo = topology_from_scenario(sc)
    cfg = config or PolicyConfig(poll_s=poll, utc_offset_s=utc_offset_s(sc))
    engine = (
        # The scenario's holidays are what a site's workday sensor would say.
        DecisionPolicy(topo, cfg, schedule=schedule_from_scenario(sc), non_working_days=sc.holidays)
        if policy == "proactive"
        else None
    )
    execution = ActionRunner(engine, plant) if engine is not None else None
    elements = (*topo.ats, *topo.mpdus)
    limits = np.array([topo.limit_a(e) for e in elements])
    rows: list[list[float]] = []
    times: list[float] = []
    alerts: dict[str, list[tuple[float, bool]]] = {}
    last_alert: dict[str, bool] = {}
    pending: list[_PendingForecast] = []
    pairs: list[ForecastPair] = []
    infeasible: list[tuple[float, str]] = []
    versions = dict.fromkeys(elements, 0)
    members_prev: dict[str, frozenset[str]] = {}
    deadlines: dict[str, list[tuple[float, float | None]]] = {}
    needed: list[dict[str, Any]] = []

    end = sc.duration_s
    next_progress = 0.0
    while True:
        t = plant.t_s
        if t >= 0 and execution is not None:
            # The executor's turn first (a stage due now is switched and verified), so the
            # engine then observes and decides on the plant as it is after it, as in Home
            # Assistant, where every refresh the executor makes also feeds the policy.
            await execution.advance()
        tel = plant.telemetry()
        if engine is not None:
            engine.observe(observation_from_telemetry(tel, t0, topo))
        if t >= 0:
            row = _element_loads(tel, elements)
            times.append(t)
            rows.append(row)
            _track_versions(tel, elements, members_prev, versions)
            if pending:
                pending = _match_forecasts(pending, pairs, t, row, elements, versions, t0)
            if engine is not None and execution is not None:
                dec = engine.decide(t0 + t)
                _record_alerts(dec, t, alerts, last_alert)
                for inf in dec.infeasible:
                    infeasible.append((t, f"{inf.goal}: {inf.reason}"))
                for e, fc in dec.forecasts.items():
                    target = fc.value_at(t0 + t + FORECAST_LEAD_S, "p50")
                    pending.append(_PendingForecast(e, t, t + FORECAST_LEAD_S, target, versions[e]))
                _record_deadlines(engine, t, t0, deadlines)
                _record_decisions_needed(dec, t, needed)
                await execution.apply(dec)
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
    actions: list[ActionRecord] = []
    if execution is not None:
        await execution.close()
        actions = execution.records
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
        calibration=engine.calibration() if engine is not None else None,
        drain_deadlines=deadlines,
        decisions_needed=needed,
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


def _record_deadlines(
    engine: DecisionPolicy,
    t: float,
    t0: float,
    changes: dict[str, list[tuple[float, float | None]]],
) -> None:
    """Note every change of the engine's drain deadlines (scenario seconds; None: dropped).

    The engine keeps them on its decision rules (``engine/rules.py``,
    ``DecisionRules.drain_deadline``: per alerting unit, the failure's early estimate less a
    margin, never receding while the alert lasts); read here, never written."""
    held = engine._rules.drain_deadline
    for e in held.keys() | changes.keys():
        value = held.get(e)
        now = None if value is None else value - t0
        if (changes[e][-1][1] if e in changes else None) != now:
            changes.setdefault(e, []).append((t, now))


def _record_decisions_needed(dec: Decisions, t: float, seen: list[dict[str, Any]]) -> None:
    """Keep each decision-needed record at its first sighting (read through ``as_dict`` so
    the harness works with and without the engine's ``decisions_needed``; without the
    forecasts, which made ``as_dict`` a fifth of a run's time)."""
    raised = replace(dec, forecasts={}).as_dict().get("decisions_needed", [])
    known = {(d.get("element"), d.get("raised_s")) for d in seen}
    for d in raised:
        if (d.get("element"), d.get("raised_s")) not in known:
            seen.append({**d, "seen_s": t})


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
