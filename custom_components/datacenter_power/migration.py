"""Staged migrations inside Home Assistant: plan, run, persist, reconcile after a restart.

The engine plans (``engine.planner``) and the HA-free ``executor`` switches, verifies and rolls
back; this module gives them the plant (commands through the telemetry coordinator's clients,
observations from a fresh refresh), persists every migration's progress in a
``helpers.storage.Store`` so a restart loses nothing, fires the ``migration_step`` and
``migration_finished`` events, and refuses two migrations touching the same circuits.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import CONF_STEP_INTERVAL, DEFAULT_STEP_INTERVAL, DOMAIN, LOGGER
from .coordinator import PlantSnapshot, TelemetryCoordinator
from .device.errors import DeviceLayerError
from .device.models import AtsReading, MpduReading
from .engine.interlock import check_sbm_path
from .engine.planner import Infeasible, Plan, plan_migration, restore_plan
from .entity import command_lock, plant_interlock_state
from .executor import (
    FINAL_STATES,
    MigrationExecutor,
    MigrationRecord,
    MigrationState,
    Move,
    Observation,
    reconcile,
)

EVENT_MIGRATION_STEP: Final = f"{DOMAIN}_migration_step"
EVENT_MIGRATION_FINISHED: Final = f"{DOMAIN}_migration_finished"
STORAGE_VERSION: Final = 1
KEEP_FINISHED: Final = 20
"""Finished migrations kept in storage (for the migration sensor and diagnostics)."""
PLANNING_MARGIN: Final = 1.10
VERIFY_ATTEMPTS = 3
"""Refreshes a stage gets to show that its moves landed before it is rolled back."""
VERIFY_DELAY_S = 1.0
"""Seconds between those refreshes."""
"""Without a forecast, plan against present currents plus this margin."""
MAX_PATH_CHANGES_PER_HOUR: Final = 4
"""Flapping guard: a migration is not started when it would change a circuit's path more often
than this within an hour (rolling back a stage is always allowed, so at most one more). ATS
sources are never switched by the integration."""
GUARD_WINDOW_S: Final = 3600.0


@dataclass(frozen=True, slots=True)
class MigrationRequest:
    """What a caller asks for (the action's fields, validated)."""

    component: str
    target: str | None = None
    max_step_amps: float = 40.0
    step_interval_s: float = 120.0
    restore: bool = False


class HaPlantPort:
    """The executor's view of the plant: SBM commands and fresh observations."""

    def __init__(
        self,
        coordinator: TelemetryCoordinator,
        on_switch: Callable[[str], None] | None = None,
    ) -> None:
        """Drive the plant through a telemetry coordinator; ``on_switch(circuit)`` is told of
        every path change sent (the flapping guard counts them)."""
        self._coordinator = coordinator
        self._on_switch = on_switch

    async def set_path(self, circuit_id: str, mpdu_id: str) -> None:
        """Command the circuit's SBM (make-before-break in the device), through the same
        interlock and command lock as the entities' commands."""
        coordinator = self._coordinator
        async with command_lock(coordinator):
            verdict = check_sbm_path(plant_interlock_state(coordinator), circuit_id, mpdu_id)
            if not verdict.allowed:
                raise HomeAssistantError(
                    f"interlock refused {circuit_id} -> {mpdu_id}: {verdict.message}"
                )
            identity = coordinator.identity(circuit_id)
            try:
                await coordinator.client_for(circuit_id).set_sbm_path(identity, mpdu_id)
            except DeviceLayerError as err:
                raise HomeAssistantError(f"{circuit_id}: {err}") from err
            if self._on_switch is not None:
                self._on_switch(circuit_id)

    async def observe(self) -> Observation:
        """Refresh telemetry now and describe it for verification."""
        await self._coordinator.async_refresh()
        return observation(self._coordinator.data)


def observation(snapshot: PlantSnapshot) -> Observation:
    """What the executor verifies against, from a telemetry snapshot."""
    currents: dict[str, float] = {}
    ratings: dict[str, float] = {}
    alarms: set[str] = set()
    for pid, reading in snapshot.readings.items():
        if isinstance(reading, AtsReading):
            currents[pid], ratings[pid] = reading.load_current_a, reading.rating_a
            if reading.alarm_output_lost:
                alarms.add(f"{pid}:output_lost")
        elif isinstance(reading, MpduReading):
            currents[pid], ratings[pid] = reading.current_a, reading.rating_a
            if reading.alarm_breaker_trip:
                alarms.add(f"{pid}:breaker_trip")
    return Observation(
        active_path={c: p for c, p in snapshot.assignment.items() if p is not None},
        energized={c: p is not None for c, p in snapshot.assignment.items()},
        element_current_a=currents,
        element_rating_a=ratings,
        alarms=frozenset(alarms),
    )


def plan_for(snapshot: PlantSnapshot, request: MigrationRequest) -> Plan | Infeasible:
    """Plan a drain of ``request.component`` (or its restore) on the present plant."""
    topology = snapshot.topology
    load = {c: np.array([a * PLANNING_MARGIN]) for c, a in snapshot.circuit_a.items()}
    times = np.array([snapshot.updated_at.timestamp()])
    dead = [m for m in topology.mpdus if m not in snapshot.energized_mpdus]
    # A device found while part of its chain was not (a rescan pending) is outside the graph.
    assignment = {c: p for c, p in snapshot.assignment.items() if c in topology.circuits}
    load = {c: a for c, a in load.items() if c in topology.circuits}
    if request.restore:
        return restore_plan(
            topology,
            assignment,
            load,
            times,
            unavailable=dead,
            max_step_amps=request.max_step_amps,
        )
    unavailable = set(dead)
    if request.target is not None:
        # Only the target may take the load: every other element but the target's chain is out.
        keep = set(topology.upstream(request.target)) if request.target in topology.mpdus else set()
        if request.target in topology.ats:
            keep = {request.target, *topology.mpdus_of(request.target)}
        unavailable |= {m for m in topology.mpdus if m not in keep}
    return plan_migration(
        topology,
        assignment,
        load,
        times,
        drain=request.component,
        unavailable=sorted(unavailable - {request.component}),
        max_step_amps=request.max_step_amps,
    )


class MigrationManager:
    """Every migration of one plant: running ones, their persistence and their events."""

    def __init__(self, hass: HomeAssistant, coordinator: TelemetryCoordinator) -> None:
        """Create the manager; call :meth:`async_load` before use."""
        self.hass = hass
        self.coordinator = coordinator
        entry = coordinator.config_entry
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}.migrations"
        )
        self.records: dict[str, MigrationRecord] = {}
        self._executors: dict[str, MigrationExecutor] = {}
        self._tasks: dict[str, asyncio.Task[MigrationRecord]] = {}
        self._listeners: list[Callable[[], None]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._switches: dict[str, deque[float]] = {}
        """Circuit -> times of the path changes this integration sent within the last hour."""
        self._drained: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        """Migration id -> (MPDUs it drains, circuits its plan leaves there), to refuse an
        opposite drain and to tell ``completed`` from "moved, but the part is not empty"."""

    # -- state ---------------------------------------------------------------------------------

    @property
    def active(self) -> MigrationRecord | None:
        """The running migration, if any (the most recent one)."""
        running = [r for r in self.records.values() if r.state not in FINAL_STATES]
        return running[-1] if running else None

    @property
    def latest(self) -> MigrationRecord | None:
        """The most recent migration, running or finished."""
        return next(reversed(self.records.values()), None)

    def busy_circuits(self) -> frozenset[str]:
        """Circuits that a running migration is moving."""
        out: set[str] = set()
        for rec in self.records.values():
            if rec.state not in FINAL_STATES:
                out |= rec.circuits
        return frozenset(out)

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` on every progress change; returns the remover."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- persistence ---------------------------------------------------------------------------

    async def async_load(self, *, resume: bool) -> None:
        """Restore persisted migrations; reconcile any that a restart interrupted.

        A migration that was running is reconciled against the SBM positions the plant
        reports now. With ``resume`` (automatic mode) it continues; otherwise it is held (its
        circuits stay where they are, every one energised) and a repair issue asks a person.
        """
        data = await self._store.async_load() or {}
        raws = data.get("migrations", []) if isinstance(data, dict) else None
        damaged = 0
        for raw in raws if isinstance(raws, list) else []:
            try:
                rec = MigrationRecord.from_dict(raw)
            except KeyError, ValueError, TypeError, IndexError, AttributeError:
                damaged += 1
                continue
            self.records[rec.migration_id] = rec
        if damaged or not isinstance(raws, list):
            LOGGER.warning(
                "The stored migration records were damaged; %s discarded", damaged or "all"
            )
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                f"storage_damaged_{self.coordinator.config_entry.entry_id}_migrations",
                is_fixable=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key="migrations_damaged",
                translation_placeholders={"count": str(damaged) if damaged else "all"},
            )
        for rec in list(self.records.values()):
            if rec.state in FINAL_STATES:
                continue
            fixed = reconcile(rec, observation(self.coordinator.data))
            self.records[rec.migration_id] = fixed
            if resume:
                LOGGER.info("Resuming migration %s after a restart", rec.migration_id)
                self._launch(fixed, step_interval_s=self._step_interval_s)
            else:
                fixed.state = MigrationState.ABORTED
                fixed.reason = "interrupted by a restart; held for a person to decide"
                ir.async_create_issue(
                    self.hass,
                    DOMAIN,
                    f"migration_held_{fixed.migration_id}",
                    is_fixable=False,
                    severity=ir.IssueSeverity.WARNING,
                    translation_key="migration_held",
                    translation_placeholders={
                        "migration_id": fixed.migration_id,
                        "component": fixed.component,
                        "done": str(fixed.completed_stages),
                        "stages": str(len(fixed.stages)),
                    },
                )
        await self._save()

    async def _save(self) -> None:
        finished = [r for r in self.records.values() if r.state in FINAL_STATES]
        for rec in finished[:-KEEP_FINISHED]:
            del self.records[rec.migration_id]
        await self._store.async_save({"migrations": [r.as_dict() for r in self.records.values()]})

    # -- running -------------------------------------------------------------------------------

    def _drain_of(self, request: MigrationRequest) -> frozenset[str]:
        """The MPDUs a request empties (none for a restore or a plant-wide rebalance)."""
        topology = self.coordinator.data.topology
        if request.restore:
            return frozenset()
        if request.component in topology.ats:
            return frozenset(topology.mpdus_of(request.component))
        if request.component in topology.mpdus:
            return frozenset({request.component})
        return frozenset()

    def _running_ends(self) -> tuple[set[str], set[str]]:
        """MPDUs that running migrations empty (drained parts and move sources), and MPDUs
        they fill (move targets)."""
        emptied: set[str] = set()
        filled: set[str] = set()
        for rec in self.records.values():
            if rec.state in FINAL_STATES:
                continue
            emptied |= self._drained.get(rec.migration_id, (frozenset(), frozenset()))[0]
            for stage in rec.stages:
                emptied |= {m.from_mpdu for m in stage}
                filled |= {m.to_mpdu for m in stage}
        return emptied, filled

    def _count_switch(self, circuit: str) -> None:
        self._switches.setdefault(circuit, deque()).append(dt_util.utcnow().timestamp())

    def path_changes_last_hour(self) -> dict[str, int]:
        """Circuit -> path changes the integration sent within the last hour (the guard's view,
        shown on the migration sensor)."""
        since = dt_util.utcnow().timestamp() - GUARD_WINDOW_S
        out: dict[str, int] = {}
        for circuit, times in list(self._switches.items()):
            while times and times[0] < since:
                times.popleft()
            if times:
                out[circuit] = len(times)
            else:
                del self._switches[circuit]
        return out

    async def async_start(self, plan: Plan, request: MigrationRequest) -> str:
        """Start executing a plan; returns the migration id. Refuses overlapping circuits and a
        drain in the opposite direction of a running one (each would refill the other)."""
        drained = self._drain_of(request)
        emptied, filled = self._running_ends()
        into = {m.to_mpdu for m in plan.moves} & emptied
        out_of = (drained | {m.from_mpdu for m in plan.moves}) & filled
        if into or out_of:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="migration_opposite",
                translation_placeholders={
                    "component": request.component,
                    "elements": ", ".join(sorted(into | out_of)),
                },
            )
        recent = self.path_changes_last_hour()
        moves = [m.circuit for m in plan.moves]
        flapping = sorted(
            c for c in set(moves) if recent.get(c, 0) + moves.count(c) > MAX_PATH_CHANGES_PER_HOUR
        )
        if flapping:
            LOGGER.warning(
                "Not starting a migration of %s: %s already changed path %d times within the "
                "hour (flapping guard)",
                request.component,
                ", ".join(flapping),
                MAX_PATH_CHANGES_PER_HOUR,
            )
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="flapping_guard",
                translation_placeholders={
                    "circuits": ", ".join(flapping),
                    "limit": str(MAX_PATH_CHANGES_PER_HOUR),
                },
            )
        overlap = plan.circuits & self.busy_circuits()
        if overlap:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="migration_overlap",
                translation_placeholders={"circuits": ", ".join(sorted(overlap))},
            )
        rec = MigrationRecord(
            migration_id=uuid.uuid4().hex[:12],
            component=request.component,
            stages=[
                [Move(m.circuit, m.from_mpdu, m.to_mpdu, m.amps) for m in step.moves]
                for step in plan.steps
            ],
        )
        self.records[rec.migration_id] = rec
        if drained:
            stays = frozenset(c for c, p in plan.final_assignment.items() if p in drained)
            self._drained[rec.migration_id] = (drained, stays)
        await self._save()
        self._launch(rec, step_interval_s=request.step_interval_s)
        return rec.migration_id

    @property
    def _step_interval_s(self) -> float:
        options = self.coordinator.config_entry.options
        return float(options.get(CONF_STEP_INTERVAL, DEFAULT_STEP_INTERVAL))

    def _launch(self, rec: MigrationRecord, *, step_interval_s: float) -> None:
        executor = MigrationExecutor(
            HaPlantPort(self.coordinator, self._count_switch),
            rec,
            step_interval_s=step_interval_s,
            on_progress=self._on_progress,
            verify_attempts=VERIFY_ATTEMPTS,
            verify_delay_s=VERIFY_DELAY_S,
        )
        self._executors[rec.migration_id] = executor
        self._tasks[rec.migration_id] = self.coordinator.config_entry.async_create_background_task(
            self.hass, executor.run(), f"{DOMAIN} migration {rec.migration_id}"
        )

    def _left_behind(self, rec: MigrationRecord) -> list[str]:
        """Circuits on the drained part that the plan did not leave there (another migration
        or a person moved them on meanwhile); empty when the drain really is complete."""
        drained, stays = self._drained.pop(rec.migration_id, (frozenset(), frozenset()))
        assignment = self.coordinator.data.assignment
        return sorted(c for c, p in assignment.items() if p in drained and c not in stays)

    def _log_final(self, rec: MigrationRecord) -> None:
        if rec.state is MigrationState.COMPLETED:
            LOGGER.info("Migration %s (%s) completed", rec.migration_id, rec.component)
        elif rec.reason == "cancelled":
            LOGGER.info(
                "Migration %s (%s) cancelled after %d of %d stages",
                rec.migration_id,
                rec.component,
                rec.completed_stages,
                len(rec.stages),
            )
        else:
            LOGGER.warning(
                "Migration %s (%s) %s after %d of %d stages: %s",
                rec.migration_id,
                rec.component,
                "rolled back" if rec.state is MigrationState.ROLLED_BACK else "aborted",
                rec.completed_stages,
                len(rec.stages),
                rec.history[-1] if rec.history else rec.reason,
            )

    async def _on_progress(self, rec: MigrationRecord, note: str) -> None:
        if rec.state is MigrationState.COMPLETED and (left := self._left_behind(rec)):
            rec.state = MigrationState.ABORTED
            rec.reason = f"the drained part still feeds {', '.join(left)}"
            note = f"every stage verified, but {rec.reason}"
            rec.history.append(note)
        if rec.state in FINAL_STATES:
            self._drained.pop(rec.migration_id, None)
            self._log_final(rec)
        await self._save()
        base = {
            "entry_id": self.coordinator.config_entry.entry_id,
            "migration_id": rec.migration_id,
            "component": rec.component,
            "state": rec.state.value,
            "completed_stages": rec.completed_stages,
            "stages": len(rec.stages),
            "note": note,
        }
        if rec.state in FINAL_STATES:
            self._executors.pop(rec.migration_id, None)
            self._tasks.pop(rec.migration_id, None)
            self.hass.bus.async_fire(EVENT_MIGRATION_FINISHED, {**base, "reason": rec.reason})
        else:
            self.hass.bus.async_fire(EVENT_MIGRATION_STEP, base)
        for listener in list(self._listeners):
            listener()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def async_wait_progress(self) -> None:
        """Wait for the next progress change of any migration."""
        waiter: asyncio.Future[None] = self.hass.loop.create_future()
        self._waiters.append(waiter)
        await waiter

    async def async_wait(self, migration_id: str) -> MigrationRecord:
        """Wait until a migration reaches a final state (tests, ``isolate``)."""
        task = self._tasks.get(migration_id)
        if task is not None:
            await asyncio.shield(task)
        return self.records[migration_id]

    def cancel(self, migration_id: str | None = None) -> list[str]:
        """Ask running migrations (one, or all) to stop at their next safe point."""
        ids = [migration_id] if migration_id else list(self._executors)
        cancelled = []
        for mid in ids:
            executor = self._executors.get(mid)
            if executor is not None:
                executor.cancel()
                cancelled.append(mid)
        return cancelled

    async def async_shutdown(self) -> None:
        """On unload: leave running migrations at their last verified stage (persisted)."""
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):  # unloading regardless
                await task
        await self._save()


def describe(rec: MigrationRecord | None) -> Mapping[str, Any]:
    """Attributes of the migration sensor (the latest migration)."""
    if rec is None:
        return {}
    return {
        "migration_id": rec.migration_id,
        "component": rec.component,
        "completed_stages": rec.completed_stages,
        "stages": len(rec.stages),
        "progress": round(100 * rec.progress),
        "reason": rec.reason,
        "circuits": sorted(rec.circuits),
    }
