"""Staged migrations inside Home Assistant: plan, run, persist, reconcile after a restart.

The engine plans (``engine.planner``) and the HA-free ``executor`` switches, verifies and rolls
back; this module gives them the plant (commands through the plant's command path,
observations from a fresh refresh), persists every migration's progress in a
``helpers.storage.Store`` so a restart loses nothing, fires the ``migration_step`` and
``migration_finished`` events, and refuses two migrations touching the same circuits.

What the engine's decisions start is the decision follower's (``decision_follower.py``): it runs
them as migrations of this manager, and lets it resume what a restart interrupted
(:meth:`MigrationManager.resume_interrupted`) at the first decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .commands import CommandPath
from .const import (
    CONF_STEP_INTERVAL,
    DEFAULT_MAX_STEP_AMPS,
    DEFAULT_STEP_INTERVAL,
    DOMAIN,
    LOGGER,
)
from .device.models import AtsReading, MpduReading
from .engine.interlock import check_sbm_path
from .engine.plan import Infeasible, Plan
from .engine.policy import Decisions
from .engine.requested import plan_request
from .engine.topology import Topology
from .events import (
    EVENT_MIGRATION_FINISHED,
    EVENT_MIGRATION_STEP,
    ISSUE_MIGRATION_HELD,
    ISSUE_MIGRATIONS_DAMAGED,
    held_issue_id,
)
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
from .notices import Notices
from .path_changes import PathChanges
from .phone import outcome_fields
from .snapshot import PlantSnapshot

STORAGE_VERSION: Final = 1
KEEP_FINISHED: Final = 20
"""Finished migrations kept in storage (for the migration sensor and diagnostics)."""
HELD_REASON: Final = "interrupted by a restart; held for a person to decide"
"""Why a migration interrupted by a restart outside automatic mode stopped (a repair asks)."""
MAX_PATH_CHANGES_PER_HOUR: Final = 4
"""Flapping guard: a migration is not started when it would change a circuit's path more often
than this within an hour, counting every commanded change (migrations, hand moves; a bypass
module's own transfer is not held against a plan); rolling back a stage is always allowed, so
at most one more. ATS sources are never switched by the integration."""


@dataclass(frozen=True, slots=True)
class MigrationRequest:
    """What a caller asks for (the action's fields, validated)."""

    component: str
    target: str | None = None
    max_step_amps: float = DEFAULT_MAX_STEP_AMPS
    step_interval_s: float = float(DEFAULT_STEP_INTERVAL)
    restore: bool = False


class HaPlantPort:
    """The executor's view of the plant: SBM commands and fresh observations."""

    def __init__(
        self,
        commands: CommandPath,
        on_switch: Callable[[str], None] | None = None,
        accepts_risk: frozenset[str] = frozenset(),
    ) -> None:
        """Drive the plant through its command path; ``on_switch(circuit)`` is told of every
        path change sent (the flapping guard counts them); ``accepts_risk``: the MPDUs the plan
        loads deliberately although they alert (the engine's urgent hand-back)."""
        self._commands = commands
        self._on_switch = on_switch
        self._accepts_risk = accepts_risk

    async def set_path(self, circuit_id: str, mpdu_id: str) -> None:
        """Command the circuit's SBM (make-before-break in the device) through the plant's
        command path: the same lock and interlock as every other command."""
        accept = mpdu_id in self._accepts_risk
        await self._commands.async_command(
            circuit_id,
            lambda state: check_sbm_path(state, circuit_id, mpdu_id, accept_risk=accept),
            lambda client, identity: client.set_sbm_path(identity, mpdu_id),
            f"path {mpdu_id}",
        )
        if self._on_switch is not None:
            self._on_switch(circuit_id)

    async def observe(self) -> Observation:
        """Refresh telemetry now and describe it for verification, with the units at risk by
        the latest decision; a failed refresh gives no telemetry at all (only why), never the
        previous snapshot."""
        coordinator = self._commands.telemetry
        await coordinator.async_refresh()
        if not coordinator.last_update_success:
            error = coordinator.last_exception
            return Observation.stale(f"the refresh failed ({error or 'no answer'})")
        return replace(observation(coordinator.data), at_risk=self._commands.at_risk())

    async def sleep(self, seconds: float) -> None:
        """The executor's clock: real time here."""
        await asyncio.sleep(seconds)


def observation(snapshot: PlantSnapshot) -> Observation:
    """What the executor verifies against, from a telemetry snapshot."""
    return Observation.from_readings(snapshot.readings)


def plan_for(
    snapshot: PlantSnapshot,
    request: MigrationRequest,
    decisions: Decisions | None = None,
) -> Plan | Infeasible:
    """Plan a drain of ``request.component`` (or its restore) on the present plant, against the
    load profiles the policy plans with (``decisions``; present currents before any forecast)
    and with the load of circuits that do not answer reserved on the elements that measure it
    (``engine/requested.py``)."""
    topology = snapshot.topology
    # A device found while part of its chain was not (a rescan pending) is outside the graph.
    assignment = {c: p for c, p in snapshot.assignment.items() if c in topology.circuits}
    circuit_a = {c: a for c, a in snapshot.circuit_a.items() if c in topology.circuits}
    element_a: dict[str, float] = {}
    for pid, reading in snapshot.readings.items():
        if isinstance(reading, MpduReading) and pid in topology.mpdus:
            element_a[pid] = reading.current_a
        elif isinstance(reading, AtsReading) and pid in topology.ats:
            element_a[pid] = reading.load_current_a
    if not request.restore and request.component in topology.elements:
        # A drain cannot know whether a circuit that does not answer draws through the part it
        # empties (it would "complete" around it): refused until it answers.
        silent = sorted(
            c
            for c, node in topology.circuits.items()
            if not snapshot.available(c)
            and any(topology.depends_on(p, request.component) for p in node.paths)
        )
        if silent:
            return Infeasible(
                f"drain {request.component}",
                request.component,
                0.0,
                None,
                f"{', '.join(silent)} did not answer the last poll: whether they draw through "
                f"{request.component} is unknown",
            )
    # Never a receiver (the engine's own rule): an element predicted to fail, one
    # whose meter does not answer, and everything below such an ATS.
    why_out = excluded(snapshot, request, decisions, element_a)
    result = plan_request(
        topology,
        assignment,
        circuit_a,
        element_a,
        snapshot.updated_at.timestamp(),
        profiles=None if decisions is None else decisions.load_profiles,
        drain=None if request.restore else request.component,
        unavailable=sorted(why_out),
        max_step_amps=request.max_step_amps,
        restore=request.restore,
    )
    if isinstance(result, Infeasible) and result.no_path:
        stuck = [_no_path_detail(topology, c, request.component, why_out) for c in result.no_path]
        result = replace(
            result,
            reason=f"critical circuit{'s' if len(stuck) > 1 else ''} "
            f"{', '.join(result.no_path)} {'have' if len(stuck) > 1 else 'has'} no other live "
            f"path ({'; '.join(stuck)})",
        )
    return result


def excluded(
    snapshot: PlantSnapshot,
    request: MigrationRequest,
    decisions: Decisions | None,
    element_a: Mapping[str, float],
) -> dict[str, str]:
    """The ATSs and MPDUs that may take no load in this request, each with why: not
    energised, predicted to fail, its meter silent, fed by such an ATS, or (with a target)
    not the target."""
    topology = snapshot.topology
    out: dict[str, str] = {}
    for element in topology.elements:
        if element in topology.mpdus and element not in snapshot.energized_mpdus:
            out[element] = "is not energised"
        elif decisions is not None and (st := decisions.status.get(element)) and st.alert:
            out[element] = "is predicted to fail"
        elif element not in element_a:
            out[element] = "did not answer the last poll"
    for mpdu in topology.mpdus:
        ats = topology.ats_of(mpdu)
        if mpdu not in out and ats in out:
            out[mpdu] = f"is fed by {ats}, which {out[ats]}"
    if not request.restore and request.target is not None:
        # Only the target may take the load: every other element but the target's chain is out.
        target = request.target
        keep = set(topology.upstream(target)) if target in topology.mpdus else set()
        if target in topology.ats:
            keep = {target, *topology.mpdus_of(target)}
        for mpdu in topology.mpdus:
            if mpdu not in keep and mpdu not in out:
                out[mpdu] = f"is outside the target {target}"
    if not request.restore:
        out.pop(request.component, None)  # the drained part itself: the planner's own rule
    return out


def _no_path_detail(topology: Topology, circuit: str, drained: str, why: Mapping[str, str]) -> str:
    """Why ``circuit`` cannot leave ``drained``: each of its other paths and why it is out."""
    others = [p for p in topology.circuits[circuit].paths if not topology.depends_on(p, drained)]
    if not others:
        return f"{circuit}: every path it has goes through {drained}"
    return f"{circuit}: " + ", ".join(f"{p} {why.get(p, 'is not available')}" for p in others)


class MigrationManager:
    """Every migration of one plant: running ones, their persistence and their events."""

    def __init__(self, hass: HomeAssistant, commands: CommandPath, notices: Notices) -> None:
        """Create the manager; call :meth:`async_load` before use."""
        self.hass = hass
        self.commands = commands
        self.coordinator = commands.telemetry
        self._notices = notices
        entry = self.coordinator.config_entry
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}.migrations"
        )
        self.records: dict[str, MigrationRecord] = {}
        self._executors: dict[str, MigrationExecutor] = {}
        self._tasks: dict[str, asyncio.Task[MigrationRecord]] = {}
        self._listeners: list[Callable[[], None]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._changes = PathChanges()
        """Every circuit's path changes within the last hour (hand moves, migrations, bypass
        transfers), from the bypass modules' own counters at every poll."""
        self._drained: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        """Migration id -> (MPDUs it drains, circuits its plan leaves there), to refuse an
        opposite drain and to tell ``completed`` from "moved, but the part is not empty"."""
        self.on_finished: Callable[[], None] = lambda: None
        """Called when a migration ends (the decision coordinator decides at the next poll)."""
        self.awaiting_decision = True
        """Until the decision follower has acted on a first decision."""
        self._to_resume: list[str] = []
        """Migrations a restart interrupted in automatic mode: resumed only once the engine's
        first decision says where load may go (not on the plant as it was before the restart)."""

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

    # -- after a restart ----------------------------------------------------------------------

    def resume_interrupted(self) -> None:
        """At the first decision after a restart (the decision follower calls this at every
        decision, before it dispatches the engine's actions, so a drain of a unit at risk is not
        held back by them): resume each interrupted migration whose remaining stages load no
        unit at risk now; abort the others with the reason. Every stage is checked again when
        it comes (the executor)."""
        self.awaiting_decision = False
        pending, self._to_resume = self._to_resume, []
        if not pending:
            return
        refused = self.commands.at_risk()
        assignment = self.coordinator.data.assignment
        for migration_id in pending:
            rec = self.records.get(migration_id)
            if rec is None or rec.state in FINAL_STATES:
                continue
            bad = next(
                (
                    m
                    for stage in rec.stages[rec.completed_stages :]
                    for m in stage
                    if m.to_mpdu in refused
                    and m.to_mpdu not in rec.accepts_risk
                    and assignment.get(m.circuit) != m.to_mpdu
                ),
                None,
            )
            if bad is None:
                LOGGER.info("Resuming migration %s after a restart", rec.migration_id)
                self._launch(rec, step_interval_s=self._step_interval_s)
                continue
            rec.state = MigrationState.ABORTED
            rec.reason = (
                f"not resumed after a restart: {bad.to_mpdu} (target of {bad.circuit}) may "
                f"take no load: {refused[bad.to_mpdu]}"
            )
            rec.history.append(rec.reason)
            self.coordinator.config_entry.async_create_background_task(
                self.hass, self._on_progress(rec, rec.reason), f"{DOMAIN} migration not resumed"
            )

    # -- persistence ---------------------------------------------------------------------------

    async def async_load(self, *, resume: bool) -> None:
        """Restore persisted migrations; reconcile any that a restart interrupted.

        A migration that was running is reconciled against the SBM positions the plant
        reports now. With ``resume`` (automatic mode) it continues at the engine's first
        decision, unless a remaining stage would load a unit at risk then (it is aborted with
        the reason: :meth:`resume_interrupted`); otherwise it is held (its circuits stay where they are,
        every one energised) and a repair issue asks a person.
        """
        data = await self._store.async_load() or {}
        raws = data.get("migrations", []) if isinstance(data, dict) else None
        if isinstance(data, dict):
            self._changes.load(
                data.get("path_changes"), data.get("bypass_changes"), dt_util.utcnow().timestamp()
            )
        self._changes.observe(self.coordinator.data.readings, dt_util.utcnow().timestamp())
        self.coordinator.config_entry.async_on_unload(
            self.coordinator.async_add_listener(self._on_telemetry)
        )
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
                translation_key=ISSUE_MIGRATIONS_DAMAGED,
                translation_placeholders={"count": str(damaged) if damaged else "all"},
            )
        self._drop_stale_held_issues()
        for rec in list(self.records.values()):
            if rec.state in FINAL_STATES:
                continue
            fixed = reconcile(rec, observation(self.coordinator.data))
            self.records[rec.migration_id] = fixed
            if resume:
                LOGGER.info(
                    "Migration %s was interrupted by a restart: it resumes at the first "
                    "decision, if its remaining stages load no unit at risk then",
                    rec.migration_id,
                )
                self._to_resume.append(rec.migration_id)
            else:
                fixed.state = MigrationState.ABORTED
                fixed.reason = HELD_REASON
                ir.async_create_issue(
                    self.hass,
                    DOMAIN,
                    held_issue_id(fixed.migration_id),
                    data={"entry_id": self.coordinator.config_entry.entry_id},
                    is_fixable=False,
                    severity=ir.IssueSeverity.WARNING,
                    translation_key=ISSUE_MIGRATION_HELD,
                    translation_placeholders={
                        "migration_id": fixed.migration_id,
                        "component": fixed.component,
                        "done": str(fixed.completed_stages),
                        "stages": str(len(fixed.stages)),
                    },
                )
        await self._save()

    def held(self) -> list[MigrationRecord]:
        """Migrations held after a restart, waiting for a person (each has a repair issue)."""
        return [
            r
            for r in self.records.values()
            if r.state is MigrationState.ABORTED and r.reason == HELD_REASON
        ]

    def _release_held(self, records: list[MigrationRecord], why: str) -> None:
        """A person decided about held migrations: their repair issues go, their records say
        what happened (and are no longer held)."""
        for rec in records:
            rec.reason = f"{HELD_REASON}; then {why}"
            rec.history.append(why)
            ir.async_delete_issue(self.hass, DOMAIN, held_issue_id(rec.migration_id))
            LOGGER.info("Held migration %s: %s", rec.migration_id, why)

    def _drop_stale_held_issues(self) -> None:
        """Delete this plant's held-migration repairs whose migration is no longer held (its
        record was released, or pruned from storage)."""
        held = {held_issue_id(r.migration_id) for r in self.held()}
        entry_id = self.coordinator.config_entry.entry_id
        registry = ir.async_get(self.hass)
        for (domain, issue_id), issue in list(registry.issues.items()):
            if (
                domain == DOMAIN
                and issue_id.startswith(held_issue_id(""))
                and (issue.data or {}).get("entry_id") == entry_id
                and issue_id not in held
            ):
                ir.async_delete_issue(self.hass, DOMAIN, issue_id)

    async def _save(self) -> None:
        finished = [r for r in self.records.values() if r.state in FINAL_STATES]
        for rec in finished[:-KEEP_FINISHED]:
            del self.records[rec.migration_id]
        await self._store.async_save(
            {
                "migrations": [r.as_dict() for r in self.records.values()],
                "path_changes": self._changes.dump()[0],
                "bypass_changes": self._changes.dump()[1],
            }
        )

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

    @callback
    def _on_telemetry(self) -> None:
        """Count every path change the poll shows (saved at once: a reload may come before the
        next migration record is)."""
        if not self.coordinator.last_update_success:
            return
        now = dt_util.utcnow().timestamp()
        if self._changes.observe(self.coordinator.data.readings, now):
            self.hass.async_create_task(self._save(), eager_start=True)

    def path_changes_last_hour(self, *, commanded_only: bool = False) -> dict[str, int]:
        """Circuit -> path changes within the last hour, whatever caused them (hand moves,
        migrations, bypass transfers; shown on the migration sensor), or only the commanded
        ones (what the flapping guard holds against a plan: a bypass module's own transfer
        protects the load and is not flapping)."""
        return self._changes.last_hour(dt_util.utcnow().timestamp(), commanded_only=commanded_only)

    def check_start(self, plan: Plan, request: MigrationRequest, *, dry_run: bool = False) -> None:
        """Every refusal of :meth:`async_start`, before anything is recorded or commanded (a
        dry run makes the same checks): a drain in the opposite direction of a running one
        (each would refill the other), the flapping guard, circuits a running migration moves.
        Only a real start logs the flapping guard's refusal."""
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
        recent = self.path_changes_last_hour(commanded_only=True)
        moves = [m.circuit for m in plan.moves]
        flapping = sorted(
            c for c in set(moves) if recent.get(c, 0) + moves.count(c) > MAX_PATH_CHANGES_PER_HOUR
        )
        if flapping and not dry_run:
            LOGGER.warning(
                "Not starting a migration of %s: %s already changed path %d times within the "
                "hour (flapping guard)",
                request.component,
                ", ".join(flapping),
                MAX_PATH_CHANGES_PER_HOUR,
            )
        if flapping:
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

    async def async_start(
        self,
        plan: Plan,
        request: MigrationRequest,
        *,
        accepts_risk: frozenset[str] = frozenset(),
        kind: str | None = None,
    ) -> str:
        """Start executing a plan; returns the migration id. Refuses what :meth:`check_start`
        refuses. ``accepts_risk``: MPDUs the plan loads deliberately although they alert (the
        engine's urgent hand-back); every stage onto any other unit at risk is refused.
        ``kind``: what the migration does (by default a restore, a plant rebalance or a drain,
        by the request)."""
        self.check_start(plan, request)
        drained = self._drain_of(request)
        rec = MigrationRecord(
            migration_id=uuid.uuid4().hex[:12],
            component=request.component,
            stages=[list(step.moves) for step in plan.steps],
            accepts_risk=accepts_risk,
            kind=kind
            or (
                "restore"
                if request.restore
                else "rebalance"
                if request.component == "plant"
                else "drain"
            ),
        )
        self.records[rec.migration_id] = rec
        if drained:
            stays = frozenset(c for c, p in plan.final_assignment.items() if p in drained)
            self._drained[rec.migration_id] = (drained, stays)
        self._release_held(
            [h for h in self.held() if h.component == request.component],
            f"superseded by migration {rec.migration_id}",
        )
        await self._save()
        self._launch(rec, step_interval_s=request.step_interval_s)
        return rec.migration_id

    @property
    def _step_interval_s(self) -> float:
        options = self.coordinator.config_entry.options
        return float(options.get(CONF_STEP_INTERVAL, DEFAULT_STEP_INTERVAL))

    def _launch(self, rec: MigrationRecord, *, step_interval_s: float) -> None:
        executor = MigrationExecutor(
            HaPlantPort(self.commands, None, rec.accepts_risk),
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
            self._notices.fire(
                EVENT_MIGRATION_FINISHED,
                {
                    **base,
                    "reason": rec.reason,
                    "circuits": sorted(rec.circuits),
                    **outcome_fields(rec),
                },
            )
            self.on_finished()
        else:
            self._notices.fire(EVENT_MIGRATION_STEP, base)
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
        """Ask running migrations (one, or all) to stop at their next safe point; a held one
        (after a restart) is released: its circuits stay where they are and its repair goes."""
        ids = [migration_id] if migration_id else list(self._executors)
        cancelled = []
        for mid in ids:
            executor = self._executors.get(mid)
            if executor is not None:
                executor.cancel(reason)
                cancelled.append(mid)
        held = [r for r in self.held() if migration_id in (None, r.migration_id)]
        if held:
            self._release_held(held, "cancelled by a person")
            cancelled += [r.migration_id for r in held]
            for listener in list(self._listeners):  # the migration sensor: no longer held
                listener()
            self.coordinator.config_entry.async_create_background_task(
                self.hass, self._save(), f"{DOMAIN} save migrations"
            )
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
