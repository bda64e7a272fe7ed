"""Execute a staged migration: check, switch, verify, continue; roll back the stage that fails.

The one executor of the project: Home Assistant (``migration.py``) and the evaluation harness
(``dcp_eval.harness``) both run :class:`MigrationExecutor`, so every figure ``scripts/evaluate``
prints describes the controller that ships. It is free of Home Assistant (``tests/test_layering``)
and of wall-clock time: the caller's :class:`PlantPort` commands the SBMs, returns fresh
observations and sleeps (real time in Home Assistant, virtual time in the harness). The caller
persists the :class:`MigrationRecord` on every progress callback, so a restart can reconcile.

Rules, for every stage in order:

1. Before the stage, from a fresh observation: every move must still be valid: its circuit
   answers, sits on ``from_mpdu`` (or already on ``to_mpdu``: nothing to do), its target path
   is energised, and its target may take load now (the observation's ``at_risk``: neither the
   MPDU nor its ATS is predicted to fail, failed or silent, unless the record accepts that unit:
   the engine's urgent hand-back). Otherwise the migration stops before the stage (``aborted``,
   the reason names the circuit): a plan made for another plant is never executed. A circuit
   that does not answer, and an observation that is not fresh telemetry (the refresh failed),
   are observed again first, like an unconfirmed stage below; nothing is ever checked,
   commanded or verified on telemetry older than the last poll.
2. Switch the moves still to do (make-before-break in the SBM).
3. Verify against the observation taken before the stage: every moved circuit reports its new
   path and is energised, no new alarm (breaker trip, output lost) appeared, and no ATS/MPDU is
   newly above its continuous limit or, if it already was, carries more than before. A hazard
   (not energised, alarm, over the limit) fails at once; a stage not yet confirmed (the circuit
   does not answer, or still reports its old path) is observed again, at most
   ``verify_attempts`` times, ``verify_delay_s`` apart.
4. A stage that fails is rolled back: each circuit it moved goes back to ``from_mpdu`` if that
   path is energised; never onto a dead path (such a circuit stays where it is, and the note says
   so). The migration ends ``rolled_back``; verified stages stay.
5. ``cancel()`` stops at the next safe point: before a stage, or at once while waiting between
   stages; never between a switch and its verification.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final, NamedTuple, Protocol

from .device.models import AtsReading, MpduReading, Reading, SbmReading
from .engine.plan import Move
from .engine.topology import CONTINUOUS_FRACTION as CONTINUOUS_LIMIT

__all__ = [
    "FINAL_STATES",
    "VERIFY_ATTEMPTS",
    "VERIFY_DELAY_S",
    "MigrationExecutor",
    "MigrationRecord",
    "MigrationState",
    "Move",
    "Observation",
    "PlantPort",
    "StageCheck",
    "VerificationError",
    "check_stage",
    "reconcile",
    "verify_stage",
]

VERIFY_ATTEMPTS: Final = 3
"""Observations a stage gets to show that its moves landed before it is rolled back."""
VERIFY_DELAY_S: Final = 1.0
"""Seconds between those observations."""
WORSE_FRACTION: Final = 0.05
"""An element already above its limit before a stage may carry this fraction of its rating more
after it (measurement noise) before the stage counts as making it worse."""


class MigrationState(StrEnum):
    """Where a migration is; also the state of the per-plant migration sensor."""

    IDLE = "idle"
    RUNNING = "running"
    VERIFYING = "verifying"
    COMPLETED = "completed"
    ABORTED = "aborted"
    ROLLED_BACK = "rolled_back"


FINAL_STATES = frozenset(
    {MigrationState.COMPLETED, MigrationState.ABORTED, MigrationState.ROLLED_BACK}
)


@dataclass(frozen=True, slots=True)
class Observation:
    """What the plant reports right after a refresh, as far as checks and verification need it.

    A circuit whose SBM did not answer is absent from ``active_path``; an ATS/MPDU that did not
    answer is absent from ``element_current_a``.
    """

    active_path: Mapping[str, str]
    """Circuit id -> MPDU its SBM has selected (answering circuits only)."""
    energized: Mapping[str, bool]
    """Circuit id -> output energised."""
    element_current_a: Mapping[str, float]
    """ATS/MPDU id -> current."""
    element_rating_a: Mapping[str, float]
    """ATS/MPDU id -> rating."""
    alarms: frozenset[str] = frozenset()
    """``"element:alarm"`` strings currently active (breaker trips, output lost)."""
    path_energized: Mapping[str, Mapping[str, bool]] = field(default_factory=dict)
    """Circuit id -> {MPDU id -> whether the SBM sees that path live}."""
    at_risk: Mapping[str, str] = field(default_factory=dict)
    """MPDU id -> why no load may move onto it now (``engine.risk.refused_receivers``)."""
    problem: str | None = None
    """Why this is not fresh telemetry (the refresh failed): nothing may be judged on it."""

    @classmethod
    def stale(cls, problem: str) -> Observation:
        """An observation that carries no telemetry, only why (a failed refresh)."""
        return cls({}, {}, {}, {}, problem=problem)

    @classmethod
    def from_readings(cls, readings: Mapping[str, Reading]) -> Observation:
        """What the executor checks and verifies against, from one poll's readings by plant id.

        Home Assistant (from a telemetry snapshot) and the evaluation harness (from the simulator's
        telemetry) both call this, so the executor verifies against the same facts in both.
        """
        currents: dict[str, float] = {}
        ratings: dict[str, float] = {}
        alarms: set[str] = set()
        paths: dict[str, str] = {}
        energized: dict[str, bool] = {}
        live: dict[str, dict[str, bool]] = {}
        for pid, reading in readings.items():
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
        return cls(
            active_path=paths,
            energized=energized,
            element_current_a=currents,
            element_rating_a=ratings,
            alarms=frozenset(alarms),
            path_energized=live,
        )

    def path_live(self, circuit: str, mpdu: str) -> bool:
        """Whether ``circuit``'s SBM reports ``mpdu`` live (False when unknown)."""
        return bool(self.path_energized.get(circuit, {}).get(mpdu, False))


class PlantPort(Protocol):
    """What the executor needs from the plant, and its clock."""

    async def set_path(self, circuit_id: str, mpdu_id: str) -> None:
        """Command an SBM to change path (make-before-break); raise on refusal."""

    async def observe(self) -> Observation:
        """Refresh telemetry and return it."""

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` of plant time (cancellable)."""


def _move_from(raw: Any) -> Move:
    """One persisted move: ``{"circuit", "from_mpdu", "to_mpdu", "amps"}`` or, as written before
    the executor shared the engine's ``Move``, ``[circuit, from, to, amps]``."""
    if isinstance(raw, Mapping):
        return Move(
            str(raw["circuit"]), str(raw["from_mpdu"]), str(raw["to_mpdu"]), float(raw["amps"])
        )
    circuit, from_mpdu, to_mpdu, amps = raw
    return Move(str(circuit), str(from_mpdu), str(to_mpdu), float(amps))


@dataclass(slots=True)
class MigrationRecord:
    """A migration's plan and progress; serialisable for persistence."""

    migration_id: str
    component: str
    stages: list[list[Move]]
    state: MigrationState = MigrationState.IDLE
    completed_stages: int = 0
    reason: str | None = None
    history: list[str] = field(default_factory=list)
    accepts_risk: frozenset[str] = frozenset()
    """MPDUs this plan loads deliberately although they alert (the engine's urgent hand-back:
    an element far above its limit now is the surer harm); every other MPDU at risk is refused."""
    kind: str = "drain"
    """What it does: ``drain`` (a component emptied), ``restore`` (circuits back to their
    normal paths), ``relieve`` (an overload relieved) or ``rebalance`` (after a failure); the
    logbook names it so."""

    @property
    def circuits(self) -> frozenset[str]:
        """Every circuit this migration touches (to refuse overlapping migrations)."""
        return frozenset(m.circuit for stage in self.stages for m in stage)

    @property
    def progress(self) -> float:
        """Fraction of stages verified, 0..1."""
        return self.completed_stages / len(self.stages) if self.stages else 1.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form for `helpers.storage.Store`."""
        return {
            "migration_id": self.migration_id,
            "component": self.component,
            "stages": [[m.as_dict() for m in stage] for stage in self.stages],
            "state": self.state.value,
            "completed_stages": self.completed_stages,
            "reason": self.reason,
            "history": self.history[-50:],
            "accepts_risk": sorted(self.accepts_risk),
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MigrationRecord:
        """Inverse of `as_dict` (older list-form moves load too); raises KeyError, ValueError
        or TypeError on a damaged record."""
        return cls(
            migration_id=str(data["migration_id"]),
            component=str(data["component"]),
            stages=[[_move_from(m) for m in stage] for stage in data["stages"]],
            state=MigrationState(data["state"]),
            completed_stages=int(data["completed_stages"]),
            reason=data.get("reason"),
            history=[str(h) for h in data.get("history", [])],
            accepts_risk=frozenset(str(m) for m in data.get("accepts_risk", ())),
            kind=str(data.get("kind", "rebalance" if data["component"] == "plant" else "drain")),
        )


class VerificationError(Exception):
    """A stage did not do what it should; the message says what an operator needs to know.

    ``unconfirmed`` means the stage could not be confirmed yet (the circuit did not answer or
    still reports its old path) and another observation may settle it; otherwise it is a hazard.
    """

    def __init__(self, message: str, *, unconfirmed: bool = False) -> None:
        """Carry the operator's message."""
        super().__init__(message)
        self.unconfirmed = unconfirmed


class StageCheck(NamedTuple):
    """What :func:`check_stage` found."""

    todo: list[Move]
    """The moves still to switch."""
    problem: str | None
    """Why the stage must not start (None: it may)."""
    unconfirmed: bool = False
    """The problem is a circuit that did not answer: another observation may settle it."""


def check_stage(
    stage: Sequence[Move], obs: Observation, accepts_risk: frozenset[str] = frozenset()
) -> StageCheck:
    """Before a stage: the moves still to switch, or why the stage must not start.

    A move is valid when its circuit answers, sits on ``from_mpdu``, its target path is
    energised and its target may take load (not in ``obs.at_risk``, unless ``accepts_risk``
    names it); a circuit already on ``to_mpdu`` needs nothing. Nothing is valid on an
    observation that is not fresh telemetry.
    """
    if obs.problem is not None:
        return StageCheck([], f"no fresh telemetry: {obs.problem}", unconfirmed=True)
    todo: list[Move] = []
    for move in stage:
        where = obs.active_path.get(move.circuit)
        if where is None:
            return StageCheck([], f"{move.circuit} does not answer", unconfirmed=True)
        if where == move.to_mpdu:
            continue
        if where != move.from_mpdu:
            return StageCheck(
                [], f"{move.circuit} is on {where}, not {move.from_mpdu}: the plan is stale"
            )
        if not obs.path_live(move.circuit, move.to_mpdu):
            return StageCheck([], f"{move.to_mpdu} (target of {move.circuit}) is not energised")
        risk = obs.at_risk.get(move.to_mpdu)
        if risk is not None and move.to_mpdu not in accepts_risk:
            return StageCheck(
                [], f"{move.to_mpdu} (target of {move.circuit}) may take no load: {risk}"
            )
        todo.append(move)
    return StageCheck(todo, None)


def verify_stage(stage: Sequence[Move], obs: Observation, before: Observation) -> None:
    """Raise `VerificationError` unless every move landed, every moved circuit is energised, no
    new alarm appeared and no element is above its continuous limit (or, if it already was before
    the stage, carries more than it did). Nothing verifies on an observation that is not fresh
    telemetry (unconfirmed: observed again)."""
    if obs.problem is not None:
        raise VerificationError(f"no fresh telemetry: {obs.problem}", unconfirmed=True)
    for move in stage:
        actual = obs.active_path.get(move.circuit)
        if actual is None:
            raise VerificationError(f"{move.circuit} does not answer", unconfirmed=True)
        if actual != move.to_mpdu:
            raise VerificationError(
                f"{move.circuit} reports path {actual}, expected {move.to_mpdu}", unconfirmed=True
            )
        if not obs.energized.get(move.circuit, False):
            raise VerificationError(f"{move.circuit} is not energised after the move")
    new_alarms = obs.alarms - before.alarms
    if new_alarms:
        raise VerificationError(f"new alarm(s) after the step: {', '.join(sorted(new_alarms))}")
    for element, current in sorted(obs.element_current_a.items()):
        rating = obs.element_rating_a.get(element)
        if not rating or not math.isfinite(current) or current <= CONTINUOUS_LIMIT * rating:
            continue
        was = before.element_current_a.get(element, 0.0)
        if was > CONTINUOUS_LIMIT * rating and current <= was + WORSE_FRACTION * rating:
            continue  # already over before this stage (a relief) and not made worse
        over = current - CONTINUOUS_LIMIT * rating
        raise VerificationError(
            f"{element} carries {current:.1f} A, {over:.1f} A above its continuous limit"
        )


ProgressCallback = Callable[[MigrationRecord, str], Awaitable[None]]
SwitchCallback = Callable[[int, Sequence[Move]], None]
"""Called with (stage index, moves commanded) once a stage's commands are all accepted."""


class MigrationExecutor:
    """Runs one `MigrationRecord` to a final state. `cancel()` stops at the next safe point."""

    def __init__(
        self,
        port: PlantPort,
        record: MigrationRecord,
        *,
        step_interval_s: float,
        on_progress: ProgressCallback,
        verify_attempts: int = VERIFY_ATTEMPTS,
        verify_delay_s: float = VERIFY_DELAY_S,
        on_switch: SwitchCallback | None = None,
    ) -> None:
        """Prepare to run ``record``'s remaining stages through ``port``."""
        self._port = port
        self.record = record
        self._step_interval_s = step_interval_s
        self._on_progress = on_progress
        self._verify_attempts = max(1, verify_attempts)
        self._verify_delay_s = verify_delay_s
        self._on_switch = on_switch
        self._cancel = asyncio.Event()
        self._cancel_reason = "cancelled"
        self._between_stages = False

    @property
    def between_stages(self) -> bool:
        """Whether it is waiting between two stages (a safe point: `cancel()` stops it at once)."""
        return self._between_stages

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the migration to stop at the next safe point; ``reason`` becomes its reason."""
        if not self._cancel.is_set():
            self._cancel_reason = reason
        self._cancel.set()

    async def _set(self, state: MigrationState, note: str) -> None:
        self.record.state = state
        self.record.history.append(note)
        await self._on_progress(self.record, note)

    async def run(self) -> MigrationRecord:
        """Execute the remaining stages in order."""
        rec = self.record
        while rec.completed_stages < len(rec.stages):
            if self._cancel.is_set():
                rec.reason = self._cancel_reason
                await self._set(MigrationState.ABORTED, f"{self._cancel_reason} at a safe point")
                return rec
            index = rec.completed_stages
            stage = rec.stages[index]
            await self._set(MigrationState.RUNNING, f"stage {index + 1}/{len(rec.stages)}")
            before, (todo, problem, _) = await self._check(stage)
            if problem is not None:
                rec.reason = problem
                await self._set(
                    MigrationState.ABORTED, f"stopped before stage {index + 1}: {problem}"
                )
                return rec
            try:
                for move in todo:
                    await self._port.set_path(move.circuit, move.to_mpdu)
                if self._on_switch is not None:
                    self._on_switch(index, tuple(todo))
                await self._set(MigrationState.VERIFYING, f"verifying stage {index + 1}")
                await self._verify(stage, before)
            except Exception as err:  # any failure means: back to the safe state
                await self._rollback(todo, str(err) or type(err).__name__)
                return rec
            rec.completed_stages += 1
            await self._set(MigrationState.RUNNING, f"stage {index + 1} verified")
            if rec.completed_stages < len(rec.stages):
                await self._wait_interval()
        rec.reason = None
        await self._set(MigrationState.COMPLETED, "all stages verified")
        return rec

    async def _check(self, stage: Sequence[Move]) -> tuple[Observation, StageCheck]:
        """Observe and check a stage; a circuit that does not answer gets the same bounded
        number of observations as a verification."""
        for attempt in range(self._verify_attempts):
            obs = await self._port.observe()
            check = check_stage(stage, obs, self.record.accepts_risk)
            if not check.unconfirmed or attempt + 1 >= self._verify_attempts:
                break
            await self._port.sleep(self._verify_delay_s)
        return obs, check

    async def _verify(self, stage: Sequence[Move], before: Observation) -> None:
        for attempt in range(self._verify_attempts):
            obs = await self._port.observe()
            try:
                verify_stage(stage, obs, before)
            except VerificationError as err:
                if not err.unconfirmed or attempt + 1 >= self._verify_attempts:
                    raise
                await self._port.sleep(self._verify_delay_s)
            else:
                return

    async def _wait_interval(self) -> None:
        """Sleep the step interval through the port, waking at once on `cancel()`."""
        if self._cancel.is_set() or self._step_interval_s <= 0:
            return
        sleeper = asyncio.ensure_future(self._port.sleep(self._step_interval_s))
        stopper = asyncio.ensure_future(self._cancel.wait())
        self._between_stages = True
        try:
            await asyncio.wait((sleeper, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._between_stages = False
            for task in (sleeper, stopper):
                task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)

    async def _rollback(self, moves: Sequence[Move], why: str) -> None:
        """Return the circuits of the failed stage to where they were, never onto a dead path
        (and never on telemetry older than the last poll: observed again, a bounded number of
        times, before anything is left where it is)."""
        obs = await self._port.observe()
        for _ in range(self._verify_attempts - 1):
            if obs.problem is None:
                break
            await self._port.sleep(self._verify_delay_s)
            obs = await self._port.observe()
        left: list[str] = []
        for move in moves:
            if obs.problem is not None:
                left.append(f"{move.circuit} (no fresh telemetry)")
                continue
            where = obs.active_path.get(move.circuit)
            if where == move.from_mpdu:
                continue
            if where is None:
                left.append(f"{move.circuit} (does not answer)")
                continue
            if not obs.path_live(move.circuit, move.from_mpdu):
                left.append(f"{move.circuit} ({move.from_mpdu} is not energised)")
                continue
            try:
                await self._port.set_path(move.circuit, move.from_mpdu)
            except Exception as err:  # report, never leave the loop half done
                left.append(f"{move.circuit} ({err or type(err).__name__})")
        self.record.reason = why
        note = f"stage {self.record.completed_stages + 1} failed: {why}"
        if left:
            note += f"; not moved back: {', '.join(left)}"
        await self._set(MigrationState.ROLLED_BACK, note)


def reconcile(record: MigrationRecord, obs: Observation) -> MigrationRecord:
    """After a restart: count as done the stages whose circuits all sit on their target paths,
    and mark a half-done stage so the caller can resume or hold. Never commands anything."""
    done = 0
    for stage in record.stages:
        if all(obs.active_path.get(m.circuit) == m.to_mpdu for m in stage):
            done += 1
        else:
            break
    return replace(record, completed_stages=done, history=[*record.history, "reconciled"])
