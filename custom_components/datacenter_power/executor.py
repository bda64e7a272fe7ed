"""Execute a staged migration: switch, verify, continue; roll back the stage that fails to verify.

Kept free of Home Assistant so the same state machine can be driven against the simulator in tests
and from the integration. The caller supplies a `PlantPort` (commands + fresh observations) and
persists the `MigrationRecord` on every progress callback, so a restart can reconcile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from .engine.topology import CONTINUOUS_FRACTION as CONTINUOUS_LIMIT


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
class Move:
    """One SBM path change."""

    circuit_id: str
    from_mpdu: str
    to_mpdu: str
    amps: float


@dataclass(frozen=True, slots=True)
class Observation:
    """What the plant reports right after a refresh, as far as verification needs it."""

    active_path: Mapping[str, str]  # circuit id -> MPDU id it is on
    energized: Mapping[str, bool]  # circuit id -> output energised
    element_current_a: Mapping[str, float]  # ATS/MPDU id -> current
    element_rating_a: Mapping[str, float]  # ATS/MPDU id -> rating
    alarms: frozenset[str] = frozenset()  # "element:alarm" strings currently active


class PlantPort(Protocol):
    """The two things the executor needs from the plant."""

    async def set_path(self, circuit_id: str, mpdu_id: str) -> None:
        """Command an SBM to change path (make-before-break); raise on refusal."""

    async def observe(self) -> Observation:
        """Refresh telemetry and return it."""


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

    @property
    def circuits(self) -> frozenset[str]:
        """Every circuit this migration touches (to refuse overlapping migrations)."""
        return frozenset(m.circuit_id for stage in self.stages for m in stage)

    @property
    def progress(self) -> float:
        """Fraction of stages verified, 0..1."""
        return self.completed_stages / len(self.stages) if self.stages else 1.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form for `helpers.storage.Store`."""
        return {
            "migration_id": self.migration_id,
            "component": self.component,
            "stages": [
                [[m.circuit_id, m.from_mpdu, m.to_mpdu, m.amps] for m in stage]
                for stage in self.stages
            ],
            "state": self.state.value,
            "completed_stages": self.completed_stages,
            "reason": self.reason,
            "history": self.history[-50:],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MigrationRecord:
        """Inverse of `as_dict`; raises KeyError/ValueError/TypeError on a damaged record."""
        stages = [
            [Move(str(c), str(f), str(t), float(a)) for c, f, t, a in stage]
            for stage in data["stages"]
        ]
        return cls(
            migration_id=str(data["migration_id"]),
            component=str(data["component"]),
            stages=stages,
            state=MigrationState(data["state"]),
            completed_stages=int(data["completed_stages"]),
            reason=data.get("reason"),
            history=[str(h) for h in data.get("history", [])],
        )


class VerificationError(Exception):
    """A stage did not do what it should; the message says what an operator needs to know."""


def verify_stage(stage: list[Move], obs: Observation, before: Observation) -> None:
    """Raise `VerificationError` unless every move landed, every circuit is energised, no new
    alarm appeared and no element is above its continuous limit (or, if it already was before
    the stage, carries more than it did)."""
    for move in stage:
        actual = obs.active_path.get(move.circuit_id)
        if actual != move.to_mpdu:
            raise VerificationError(
                f"{move.circuit_id} reports path {actual}, expected {move.to_mpdu}"
            )
        if not obs.energized.get(move.circuit_id, False):
            raise VerificationError(f"{move.circuit_id} is not energised after the move")
    new_alarms = obs.alarms - before.alarms
    if new_alarms:
        raise VerificationError(f"new alarm(s) after the step: {', '.join(sorted(new_alarms))}")
    for element, current in obs.element_current_a.items():
        rating = obs.element_rating_a.get(element)
        if not rating or current <= CONTINUOUS_LIMIT * rating:
            continue
        was = before.element_current_a.get(element, 0.0)
        if was > CONTINUOUS_LIMIT * rating and current <= was + 0.05 * rating:
            continue  # already over before this stage (a relief) and not made worse
        over = current - CONTINUOUS_LIMIT * rating
        raise VerificationError(
            f"{element} carries {current:.1f} A, {over:.1f} A above its continuous limit"
        )


ProgressCallback = Callable[[MigrationRecord, str], Awaitable[None]]


class MigrationExecutor:
    """Runs one `MigrationRecord` to a final state. `cancel()` stops at the next safe point."""

    def __init__(
        self,
        port: PlantPort,
        record: MigrationRecord,
        *,
        step_interval_s: float,
        on_progress: ProgressCallback,
        verify_attempts: int = 3,
        verify_delay_s: float = 1.0,
    ) -> None:
        self._port = port
        self.record = record
        self._step_interval_s = step_interval_s
        self._on_progress = on_progress
        self._verify_attempts = verify_attempts
        self._verify_delay_s = verify_delay_s
        self._cancel = asyncio.Event()

    def cancel(self) -> None:
        """Ask the migration to stop after the stage in progress (a verified, safe point)."""
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
                rec.reason = "cancelled"
                await self._set(MigrationState.ABORTED, "cancelled at a safe point")
                return rec
            index = rec.completed_stages
            stage = rec.stages[index]
            await self._set(MigrationState.RUNNING, f"stage {index + 1}/{len(rec.stages)}")
            before = await self._port.observe()
            try:
                for move in stage:
                    await self._port.set_path(move.circuit_id, move.to_mpdu)
                await self._set(MigrationState.VERIFYING, f"verifying stage {index + 1}")
                await self._verify(stage, before)
            except Exception as err:  # any failure means: back to the safe state
                await self._rollback(stage, str(err) or type(err).__name__)
                return rec
            rec.completed_stages += 1
            await self._set(MigrationState.RUNNING, f"stage {index + 1} verified")
            if rec.completed_stages < len(rec.stages):
                await self._wait_interval()
        rec.reason = None
        await self._set(MigrationState.COMPLETED, "all stages verified")
        return rec

    async def _verify(self, stage: list[Move], before: Observation) -> None:
        last: VerificationError | None = None
        for _ in range(self._verify_attempts):
            obs = await self._port.observe()
            try:
                verify_stage(stage, obs, before)
            except VerificationError as err:
                last = err
                await asyncio.sleep(self._verify_delay_s)
            else:
                return
        assert last is not None
        raise last

    async def _wait_interval(self) -> None:
        try:
            await asyncio.wait_for(self._cancel.wait(), timeout=self._step_interval_s)
        except TimeoutError:
            return

    async def _rollback(self, stage: list[Move], why: str) -> None:
        """Return the circuits of the failed stage to where they were (if that path is energised)."""
        obs = await self._port.observe()
        left: list[str] = []
        for move in stage:
            if obs.active_path.get(move.circuit_id) == move.from_mpdu:
                continue
            try:
                await self._port.set_path(move.circuit_id, move.from_mpdu)
            except Exception:  # report, never leave the loop half done
                left.append(move.circuit_id)
        self.record.reason = why
        note = f"stage {self.record.completed_stages + 1} failed: {why}"
        if left:
            note += f"; could not move back: {', '.join(left)} (left on their new, energised path)"
        await self._set(MigrationState.ROLLED_BACK, note)


def reconcile(record: MigrationRecord, obs: Observation) -> MigrationRecord:
    """After a restart: count as done the stages whose circuits all sit on their target paths,
    and mark a half-done stage so the caller can resume or hold. Never commands anything."""
    done = 0
    for stage in record.stages:
        if all(obs.active_path.get(m.circuit_id) == m.to_mpdu for m in stage):
            done += 1
        else:
            break
    return replace(record, completed_stages=done, history=[*record.history, "reconciled"])
