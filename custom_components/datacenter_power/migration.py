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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import Store

from .const import CONF_STEP_INTERVAL, DEFAULT_STEP_INTERVAL, DOMAIN, LOGGER
from .coordinator import PlantSnapshot, TelemetryCoordinator
from .device.models import AtsReading, MpduReading, SbmReading
from .engine.interlock import check_sbm_path
from .engine.planner import Infeasible, Plan, plan_migration, restore_plan
from .executor import (
    FINAL_STATES,
    VERIFY_ATTEMPTS,
    VERIFY_DELAY_S,
    MigrationExecutor,
    MigrationRecord,
    MigrationState,
    Observation,
    reconcile,
)

EVENT_MIGRATION_STEP: Final = f"{DOMAIN}_migration_step"
EVENT_MIGRATION_FINISHED: Final = f"{DOMAIN}_migration_finished"
STORAGE_VERSION: Final = 1
KEEP_FINISHED: Final = 20
"""Finished migrations kept in storage (for the migration sensor and diagnostics)."""
PLANNING_MARGIN: Final = 1.10
"""Without a forecast, plan against present currents plus this margin."""


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

    def __init__(self, coordinator: TelemetryCoordinator) -> None:
        """Drive the plant through a telemetry coordinator."""
        self._coordinator = coordinator

    async def set_path(self, circuit_id: str, mpdu_id: str) -> None:
        """Command the circuit's SBM (make-before-break in the device) through the plant's
        command path: the same lock and interlock as every other command."""
        await self._coordinator.async_command(
            circuit_id,
            lambda state: check_sbm_path(state, circuit_id, mpdu_id),
            lambda client, identity: client.set_sbm_path(identity, mpdu_id),
            f"path {mpdu_id}",
        )

    async def observe(self) -> Observation:
        """Refresh telemetry now and describe it for verification."""
        await self._coordinator.async_refresh()
        return observation(self._coordinator.data)

    async def sleep(self, seconds: float) -> None:
        """The executor's clock: real time here."""
        await asyncio.sleep(seconds)


def observation(snapshot: PlantSnapshot) -> Observation:
    """What the executor verifies against, from a telemetry snapshot."""
    currents: dict[str, float] = {}
    ratings: dict[str, float] = {}
    alarms: set[str] = set()
    paths: dict[str, str] = {}
    energized: dict[str, bool] = {}
    live: dict[str, dict[str, bool]] = {}
    for pid, reading in snapshot.readings.items():
        if isinstance(reading, SbmReading):
            if 0 <= reading.active_path < len(reading.paths):
                paths[pid] = reading.paths[reading.active_path]
            energized[pid] = reading.energized
            live[pid] = dict(zip(reading.paths, reading.path_energized, strict=False))
            if reading.breaker_open:
                alarms.add(f"{pid}:breaker_trip")
        elif isinstance(reading, AtsReading):
            currents[pid], ratings[pid] = reading.load_current_a, reading.rating_a
            if reading.alarm_output_lost:
                alarms.add(f"{pid}:output_lost")
        elif isinstance(reading, MpduReading):
            currents[pid], ratings[pid] = reading.current_a, reading.rating_a
            if reading.alarm_breaker_trip:
                alarms.add(f"{pid}:breaker_trip")
    return Observation(
        active_path=paths,
        energized=energized,
        element_current_a=currents,
        element_rating_a=ratings,
        alarms=frozenset(alarms),
        path_energized=live,
    )


def plan_for(snapshot: PlantSnapshot, request: MigrationRequest) -> Plan | Infeasible:
    """Plan a drain of ``request.component`` (or its restore) on the present plant."""
    topology = snapshot.topology
    load = {c: np.array([a * PLANNING_MARGIN]) for c, a in snapshot.circuit_a.items()}
    times = np.array([snapshot.updated_at.timestamp()])
    dead = [m for m in topology.mpdus if m not in snapshot.energized_mpdus]
    if request.restore:
        return restore_plan(
            topology,
            snapshot.assignment,
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
        snapshot.assignment,
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
        for raw in data.get("migrations", []):
            try:
                rec = MigrationRecord.from_dict(raw)
            except KeyError, ValueError, TypeError:
                LOGGER.warning("Discarding a damaged migration record: %s", raw)
                continue
            self.records[rec.migration_id] = rec
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

    async def async_start(self, plan: Plan, request: MigrationRequest) -> str:
        """Start executing a plan; returns the migration id. Refuses overlapping circuits."""
        overlap = plan.circuits & self.busy_circuits()
        if overlap:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="migration_overlap",
                translation_placeholders={"circuits": ", ".join(sorted(overlap))},
            )
        rec = MigrationRecord(
            migration_id=uuid.uuid4().hex[:12],
            component=request.component,
            stages=[list(step.moves) for step in plan.steps],
        )
        self.records[rec.migration_id] = rec
        await self._save()
        self._launch(rec, step_interval_s=request.step_interval_s)
        return rec.migration_id

    @property
    def _step_interval_s(self) -> float:
        options = self.coordinator.config_entry.options
        return float(options.get(CONF_STEP_INTERVAL, DEFAULT_STEP_INTERVAL))

    def _launch(self, rec: MigrationRecord, *, step_interval_s: float) -> None:
        executor = MigrationExecutor(
            HaPlantPort(self.coordinator),
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

    async def _on_progress(self, rec: MigrationRecord, note: str) -> None:
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

    def cancel(self, migration_id: str | None = None, *, reason: str = "cancelled") -> list[str]:
        """Ask running migrations (one, or all) to stop at their next safe point."""
        ids = [migration_id] if migration_id else list(self._executors)
        cancelled = []
        for mid in ids:
            executor = self._executors.get(mid)
            if executor is not None:
                executor.cancel(reason)
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
    """Attributes of the migration sensor."""
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
