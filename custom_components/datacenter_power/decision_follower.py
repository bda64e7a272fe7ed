"""The decision follower: what the integration does with each of the engine's decisions.

A listener of the decision coordinator (``decisions.py``), one per plant
(``entry.runtime_data.follower``). At every new decision it

* fires ``failure_predicted`` for every alert not announced yet in this run (once Home Assistant
  has started: ``notices.py``); an alert that clears may be announced again;
* lets the migration manager resume (or abort, with the reason) what a restart interrupted,
  before anything else is dispatched;
* runs what the engine orders now (``Decisions.actions``: what each mode executes is
  ``engine/modes.py``'s), one action at a time by the engine's ``dispatch`` rule (the one the
  evaluation runs), as a staged migration of the migration manager (``migration.py``); fires
  ``failover`` when that is a rebalance after a sudden failure;
* tells the policy when each action started and how it ended.

An approved proposal runs the same way (:meth:`DecisionFollower.async_run_approved`).
"""

from __future__ import annotations

import asyncio
from typing import Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from .const import CONF_MAX_STEP_AMPS, DEFAULT_MAX_STEP_AMPS, DOMAIN, LOGGER
from .decision_changes import DecisionChanges
from .decisions import DecisionCoordinator
from .engine.dispatch import Dispatch, dispatch
from .engine.policy import Action, Decisions
from .engine.risk import accepted_risk
from .events import EVENT_FAILOVER, EVENT_FAILURE_PREDICTED
from .executor import MigrationState
from .migration import MigrationManager, MigrationRequest
from .notices import Notices
from .presentation import conservative_ttf_s, ttf_text

__all__ = ["DecisionFollower"]

_KINDS: Final = {"migrate": "drain"}
"""The engine's action kinds as migration kinds (the others keep their name)."""


class DecisionFollower:
    """Acts on one plant's decisions: announces alerts, runs the engine's actions."""

    def __init__(
        self,
        hass: HomeAssistant,
        manager: MigrationManager,
        decider: DecisionCoordinator,
        notices: Notices,
    ) -> None:
        """Follow ``decider``'s decisions (from :meth:`async_start`), running actions as
        ``manager``'s migrations."""
        self.hass = hass
        self._manager = manager
        self._decider = decider
        self._notices = notices
        self._entry: ConfigEntry = decider.config_entry
        self.seen: Decisions | None = None
        """The latest decision acted on."""
        self._engine_action: Action | None = None
        """The engine's action being executed (one at a time)."""
        self._engine_migration_id: str | None = None
        """Its migration, once started (what an urgent action preempts)."""

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Act on every new decision from now on (the latest one at once); returns the
        remover."""
        return self._decider.async_add_tick_listener(self._on_tick)

    @callback
    def _on_tick(self, changes: DecisionChanges) -> None:
        decisions = self.seen = changes.decisions
        self._announce(changes)
        self._manager.resume_interrupted()
        now = self._to_execute(decisions)
        if now.start is None:
            return
        action = now.start
        preempted = self._engine_migration_id if now.preempt else None
        self._engine_action, self._engine_migration_id = action, None
        self._decider.action_started(action)
        self._entry.async_create_background_task(
            self.hass,
            self._async_execute(action, decisions, preempted),
            f"{DOMAIN} {action.kind} {action.target or 'plant'}",
        )

    def _announce(self, changes: DecisionChanges) -> None:
        """Fire ``failure_predicted`` for every alert that turned on and is not announced yet
        in this run (once Home Assistant has started: ``notices.py``); an alert that clears may
        be announced again."""
        decisions = changes.decisions
        entry_id = self._entry.entry_id
        notices = self._notices
        notices.release_closed("predicted:", decisions.alerts)
        for component in sorted(changes.alerts_on):
            if not notices.claim(f"predicted:{component}"):
                continue
            assessment = decisions.assessments[component]
            low = (
                None
                if assessment.time_to_failure_s is None
                else round(conservative_ttf_s(assessment))
            )
            notices.fire(
                EVENT_FAILURE_PREDICTED,
                {
                    "entry_id": entry_id,
                    "component": component,
                    "device_id": self._manager.coordinator.device_id(component),
                    "health": round(assessment.health, 1),
                    "failure_probability": round(assessment.failure_probability, 3),
                    "time_to_failure_s": assessment.time_to_failure_s,
                    "time_to_failure_p10_s": low,
                    "estimate": ttf_text(assessment),
                    "signals": list(assessment.signals),
                },
                key=f"predicted:{component}",
            )

    def _to_execute(self, decisions: Decisions) -> Dispatch:
        """What to run now: the engine's ``dispatch`` rule, the one the evaluation runs (one
        action at a time; an urgent action preempts a running engine action at its next safe
        point; a person's migration is never preempted). The mode is already applied by the
        engine."""
        manual = self._engine_action is None and self._manager.active is not None
        return dispatch(decisions, self._engine_action, manual_running=manual)

    async def _async_execute(
        self,
        action: Action,
        decisions: Decisions | None,
        preempted: str | None = None,
        started: asyncio.Future[str] | None = None,
    ) -> None:
        """Run one of the engine's actions as a migration and tell the policy how it ended;
        ``preempted`` is the engine migration to stop at its next safe point first; ``started``
        (when given) gets the migration id as soon as it runs, or the error that stopped it."""
        if preempted is not None:
            self._manager.cancel(preempted, reason="preempted by an urgent action")
            await self._manager.async_wait(preempted)
        options = self._entry.options
        request = MigrationRequest(
            component=action.target or "plant",
            max_step_amps=float(options.get(CONF_MAX_STEP_AMPS, DEFAULT_MAX_STEP_AMPS)),
            step_interval_s=action.step_interval_s,
        )
        ok, note = False, ""
        try:
            migration_id = await self._manager.async_start(
                action.plan,
                request,
                accepts_risk=accepted_risk(
                    action,
                    decisions.alerts if decisions is not None else (),
                    self._manager.coordinator.data.topology,
                ),
                kind=_KINDS.get(action.kind, action.kind),
            )
            if self._engine_action is action:
                self._engine_migration_id = migration_id
            if started is not None:
                started.set_result(migration_id)
            LOGGER.info(
                "Executing %s (%s) as migration %s", action.kind, action.reason, migration_id
            )
            if action.kind == "rebalance" and decisions is not None:
                self._notices.fire(
                    EVENT_FAILOVER,
                    {
                        "entry_id": self._entry.entry_id,
                        "failed": sorted(
                            e
                            for e, st in decisions.status.items()
                            if st.reachable and not st.energized
                        ),
                        "migration_id": migration_id,
                        "reason": action.reason,
                        "plan": action.plan.as_dict(),
                    },
                )
            record = await self._manager.async_wait(migration_id)
            ok, note = record.state is MigrationState.COMPLETED, record.reason or ""
        except HomeAssistantError as err:
            note = str(err)
            if started is not None and not started.done():
                started.set_exception(err)
        finally:
            if started is not None and not started.done():
                started.set_exception(
                    HomeAssistantError(
                        translation_domain=DOMAIN,
                        translation_key="migration_not_started",
                        translation_placeholders={"reason": note or "an unexpected error"},
                    )
                )
            if self._engine_action is action:  # (not when a later action has preempted it)
                self._engine_action, self._engine_migration_id = None, None
            self._decider.action_finished(action, ok=ok, note=note)

    async def async_run_approved(self, action: Action) -> str:
        """Run an approved proposal now as the engine's action (the policy is told it started
        and, when the migration ends, how it went); returns the migration id."""
        running = self._engine_action
        if running is not None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="engine_action_running",
                translation_placeholders={
                    "kind": running.kind,
                    "component": running.target or "the plant",
                    "migration": self._engine_migration_id or "starting",
                },
            )
        self._engine_action, self._engine_migration_id = action, None
        self._decider.action_started(action)
        started: asyncio.Future[str] = self.hass.loop.create_future()
        self._entry.async_create_background_task(
            self.hass,
            self._async_execute(action, self.seen, None, started),
            f"{DOMAIN} approved {action.kind} {action.target or 'plant'}",
        )
        return await started
