"""Decision coordinator: fetches what the engine needs and runs its decisions, off the event loop.

It only fetches and decides. Every telemetry refresh becomes one ``PlantObservation`` that the
policy takes in (cheap: it appends samples); announced work is read from the calendar chosen in
the options. On its own slow interval (and at once when an element dies, or at the first poll
after a migration ends) the coordinator runs
``DecisionPolicy.decide`` (model fits, degradation scoring, planning) in an executor job, never
on the event loop; observations and action feedback that arrive meanwhile wait and are applied
afterwards, so the policy is only ever touched by one thread at a time, and nothing outside this
module touches it at all.

Its data is the engine's ``Decisions``, with ``forecasts`` holding the latest forecast of every
ATS, MPDU and circuit (copied out of the policy in the same executor job): the entities and the
``get_forecast`` action read them there. With every decision it publishes what that decision
changed, once for every consumer (``decision_changes.py``, :meth:`async_add_tick_listener`). Acting on decisions (alert events, migrations, the
failover event) is the decision follower's (``decision_follower.py``); what
each mode executes is the engine's (``engine/modes.py``).

The history the policy learns from is kept compact and bounded (the last poll of every
``HISTORY_BUCKET_S``, at most ``HISTORY_MAX_S``) as columns (``history_columns.py``) and persisted
one file per day (``history_store.py``); after a restart it is replayed into a fresh policy off
the event loop, so a restart loses nothing the forecasts need.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date, timedelta
from typing import Any, Final, override

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .announced import scheduled_loads
from .const import (
    CONF_CALENDAR_ENTITY,
    CONF_DECISION_TIMEOUT,
    CONF_FORECAST_HORIZON,
    CONF_MAX_STEP_AMPS,
    CONF_POLICY_MODE,
    CONF_SCAN_INTERVAL,
    CONF_STEP_INTERVAL,
    CONF_WORKDAY_ENTITY,
    DEFAULT_DECISION_TIMEOUT,
    DEFAULT_FORECAST_HORIZON,
    DEFAULT_MAX_STEP_AMPS,
    DEFAULT_POLICY_MODE,
    DEFAULT_SCAN_INTERVAL,
    DEFAULT_STEP_INTERVAL,
    DOMAIN,
    LOGGER,
    POLICY_MODES,
)
from .coordinator import TelemetryCoordinator
from .decision_changes import DecisionChanges, changes_between
from .engine.forecast import Forecast
from .engine.modes import Mode
from .engine.observation import PlantObservation
from .engine.policy import Action, DecisionPolicy, Decisions, PolicyConfig
from .engine.readings import observation_from_readings
from .engine.topology import Topology
from .history import pack_observation  # noqa: F401  (re-exported: the hand-over form of a row)
from .history_columns import DAY_S, HistoryLog
from .history_store import HISTORY_VERSION, HistoryStore
from .runtime import DataCenterPowerConfigEntry
from .workdays import WorkdayCalendar

FORECAST_INTERVAL: Final = timedelta(minutes=5)
HISTORY_BUCKET_S: Final = 300.0
HISTORY_MAX_S: Final = 42 * 86400.0
"""Six weeks: the forecasters learn each weekday's shape from at least five past weeks, and a
restart replays what is kept here (issue 21)."""
STORAGE_VERSION: Final = HISTORY_VERSION
"""The history's storage version (``history_store.py`` says what each one holds)."""

type PolicyFeedback = Callable[[DecisionPolicy], None]


def policy_config(entry: DataCenterPowerConfigEntry) -> PolicyConfig:
    """The policy's configuration from the entry's options (the mode as the user chose it:
    ``engine/modes.py`` says what each one alerts, proposes and executes)."""
    options = entry.options
    chosen = options.get(CONF_POLICY_MODE, DEFAULT_POLICY_MODE)
    mode: Mode = chosen if chosen in POLICY_MODES else DEFAULT_POLICY_MODE
    return PolicyConfig(
        mode=mode,
        horizon_s=3600.0 * float(options.get(CONF_FORECAST_HORIZON, DEFAULT_FORECAST_HORIZON)),
        poll_s=float(options.get(CONF_SCAN_INTERVAL, DEFAULT_SCAN_INTERVAL)),
        max_step_amps=float(options.get(CONF_MAX_STEP_AMPS, DEFAULT_MAX_STEP_AMPS)),
        step_interval_s=float(options.get(CONF_STEP_INTERVAL, DEFAULT_STEP_INTERVAL)),
        decision_timeout_s=60.0
        * float(options.get(CONF_DECISION_TIMEOUT, DEFAULT_DECISION_TIMEOUT)),
    )


class DecisionCoordinator(DataUpdateCoordinator[Decisions]):
    """Runs the decision policy for one plant on a slow interval."""

    config_entry: DataCenterPowerConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: DataCenterPowerConfigEntry,
        telemetry: TelemetryCoordinator,
    ) -> None:
        """Create the coordinator; the policy is built from the first telemetry snapshot."""
        self._unsub: Callable[[], None] | None = None  # before anything that may raise
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} forecast {entry.title}",
            update_interval=FORECAST_INTERVAL,
        )
        self.telemetry = telemetry
        self._feedback: list[PolicyFeedback] = []
        self._dead: frozenset[str] = frozenset()
        self.policy = DecisionPolicy(telemetry.data.topology, policy_config(entry))
        """Touched only by this coordinator: on the loop between executor jobs, or in one."""
        self._store = HistoryStore(hass, entry.entry_id)
        self.history = HistoryLog(HISTORY_BUCKET_S, HISTORY_MAX_S)
        """The kept history (loaded at setup); touched on the event loop only."""
        self._pending: list[PlantObservation] = []
        self._deciding = False
        self._decide_after_poll = False
        self._rebuilding: asyncio.Task[None] | None = None
        workday = entry.options.get(CONF_WORKDAY_ENTITY)
        self._workdays = WorkdayCalendar(hass, workday) if workday else None
        self._non_working: frozenset[date] = frozenset()
        self._lineup: dict[str, str | None] = {}
        self._paths: dict[str, str] = {}
        """Each circuit's last known path (a different one is a move)."""
        """The circuits' paths at the last poll (a change while a unit is at risk re-plans)."""
        self.migrating: Callable[[], bool] = lambda: False
        """Whether a migration is running (set by the integration's setup)."""
        self.changes: DecisionChanges | None = None
        """What the latest decision changed (``decision_changes.py``; None before the first)."""

    @callback
    def async_add_tick_listener(self, on_tick: Callable[[DecisionChanges], None]) -> CALLBACK_TYPE:
        """Call ``on_tick(changes)`` once for every new decision (the latest one at once, if
        there is one), in the order listeners were added among all of this coordinator's;
        returns the remover. A refresh that failed is no new decision."""
        told: DecisionChanges | None = None

        @callback
        def listener() -> None:
            nonlocal told
            changes = self.changes
            if changes is not None and changes is not told:
                told = changes
                on_tick(changes)

        remove = self.async_add_listener(listener)
        listener()
        return remove

    @override
    async def _async_setup(self) -> None:
        """Replay the persisted history into the policy, then follow telemetry."""
        self.history = await self._store.async_load(HISTORY_BUCKET_S, HISTORY_MAX_S)
        if len(self.history):
            LOGGER.debug("Replaying %d persisted observations into the policy", len(self.history))
            # Nothing else touches the policy yet: replay it off the event loop.
            await self.hass.async_add_executor_job(self._learn, self.policy, self.history)
        self._release_old_days()
        self._unsub = self.telemetry.async_add_listener(self._on_telemetry)
        self._on_telemetry()

    @staticmethod
    def _learn(policy: DecisionPolicy, history: HistoryLog) -> None:
        """Teach ``policy`` the kept history (in an executor job: at 1,000 circuits unpacking
        and observing 14 days of rows takes seconds)."""
        for obs in history.observations():
            policy.observe(obs)

    def _release_old_days(self) -> None:
        """Keep yesterday's and today's rows in memory, older days on disk only (saved; a
        replay reads them back): 42 days at 1,000 circuits were ~130 MB of memory."""
        last = self.history.last_t_s
        if last is not None:
            self.history.release_days_before(int(last // DAY_S) - 1)

    async def _async_save_history(self) -> None:
        """Write what changed, then let the saved old days go from memory."""
        await self._store.async_save(self.history)
        self._release_old_days()

    async def _async_rebuild(self, topology: Topology) -> None:
        """Replace the policy with one for ``topology``, taught the kept history off the loop
        (all of it, read back from disk after a save: memory holds only the last two days)."""
        policy = DecisionPolicy(
            topology, policy_config(self.config_entry), non_working_days=self._non_working
        )
        policy.schedule = self.policy.schedule
        await self._async_save_history()
        kept = await HistoryStore(self.hass, self.config_entry.entry_id).async_load(
            HISTORY_BUCKET_S, HISTORY_MAX_S
        )
        await self.hass.async_add_executor_job(self._learn, policy, kept)
        LOGGER.debug("The plant changed; the policy now covers %d circuits", len(topology.circuits))
        self.policy = policy
        self._pending.clear()
        self._feedback.clear()
        self._rebuilding = None

    @callback
    def _on_telemetry(self) -> None:
        if not self.telemetry.last_update_success:
            return  # the previous snapshot again: nothing new to learn, nothing current
        snapshot = self.telemetry.data
        if snapshot.topology != self.policy.topology:
            # A rescan found devices (or a gateway went): a new policy learns the new plant.
            if self._rebuilding is None:
                self._rebuilding = self.config_entry.async_create_background_task(
                    self.hass, self._async_rebuild(snapshot.topology), f"{DOMAIN} rebuild policy"
                )
            return
        obs = observation_from_readings(
            snapshot.updated_at.timestamp(), snapshot.topology, snapshot.readings
        )
        if self.history.record(obs) and self._store.async_save_due(self.history):
            self.config_entry.async_create_background_task(
                self.hass, self._async_save_history(), f"{DOMAIN} save history"
            )
        self._pending.append(obs)
        if not self._deciding:
            self._drain()
        dead = frozenset(e.id for e in obs.elements.values() if e.reachable and not e.energized)
        lineup = dict(snapshot.assignment)
        # A circuit moved (by hand, say) while a unit is at risk or a proposal waits: the plan
        # for the old lineup is stale, and the remainder is planned (proposed) at once.
        # (Not while a migration moves them: its end decides, see ``migration_finished``.)
        moved = (
            lineup != self._lineup
            and not self.migrating()
            and bool(self.data is not None and (self.data.alerts or self.data.proposals))
        )
        self._lineup = lineup
        # A circuit on another path than last seen (a hand move, a bypass transfer): the element
        # forecasts are sums under the old lineup until the next decision, so decide now (the
        # forecast entities show none meanwhile). Not for a circuit that only went silent or
        # came back on the same path, nor while a migration moves circuits (its end decides).
        paths = {c: p for c, p in lineup.items() if p is not None}
        repathed = any(self._paths.get(c, p) != p for c, p in paths.items())
        self._paths.update(paths)
        moved = moved or (repathed and not self.migrating())
        if (dead - self._dead or self._decide_after_poll or moved) and self.data is not None:
            # Something just died (rebalance), or a migration ended and this poll shows the new
            # lineup: decide now instead of at the next slow tick.
            self._decide_after_poll = False
            self.hass.async_create_task(self.async_request_refresh())
        self._dead = dead

    @callback
    def migration_finished(self) -> None:
        """A migration (the engine's or a person's) ended: decide, and plan, on the next poll,
        so the forecast bands and the next plan follow the new lineup within a poll instead of
        keeping the old one's sums until the slow interval comes round (an action the policy
        planned while the migration ran was not started: it is planned again now)."""
        self.decide_soon()

    @callback
    def decide_soon(self) -> None:
        """Plan again at the next poll, whatever the replan interval (a migration ended, or a
        proposal went stale, was dismissed or ran only in part: the remainder is proposed within
        a poll while the risk lasts)."""
        self._tell_policy(lambda policy: policy.replan())
        self._decide_after_poll = True

    def _drain(self) -> None:
        """Apply what waited for the policy (only ever called on the event loop, between
        executor jobs)."""
        pending, self._pending = self._pending, []
        for obs in pending:
            self.policy.observe(obs)
        feedback, self._feedback = self._feedback, []
        for apply in feedback:
            apply(self.policy)

    def _tell_policy(self, apply: PolicyFeedback) -> None:
        self._feedback.append(apply)
        if not self._deciding:
            self._drain()

    def action_started(self, action: Action) -> None:
        """Tell the policy that ``action`` is being executed (now, or after the running
        ``decide``: the policy is never touched by two threads)."""
        self._tell_policy(lambda policy: policy.action_started(action))

    def action_finished(self, action: Action, *, ok: bool, note: str = "") -> None:
        """Tell the policy how ``action`` ended (now, or after the running ``decide``)."""
        self._tell_policy(lambda policy: policy.action_finished(action, ok=ok, note=note))

    async def _async_announced_work(self) -> None:
        """Read announced work from the calendar chosen in the options into the policy (a
        calendar that fails to answer leaves the previous schedule in place)."""
        calendar = self.config_entry.options.get(CONF_CALENDAR_ENTITY)
        if not calendar:
            return
        now = dt_util.utcnow()
        try:
            response = await self.hass.services.async_call(
                "calendar",
                "get_events",
                {
                    "entity_id": calendar,
                    "start_date_time": now - timedelta(days=14),
                    "end_date_time": now + timedelta(seconds=self.policy.config.horizon_s),
                },
                blocking=True,
                return_response=True,
            )
        except HomeAssistantError as err:
            LOGGER.warning("Cannot read announced work from %s: %s", calendar, err)
            return
        events = (response or {}).get(calendar, {})
        listed = events.get("events") if isinstance(events, dict) else None
        self.policy.schedule = scheduled_loads(
            [e for e in listed if isinstance(e, dict)] if isinstance(listed, list) else [],
            self.policy.topology.circuits,
        )

    async def _async_non_working_days(self) -> None:
        """Read the non-working days of the kept history and the horizon from the workday
        sensor chosen in the options into the policy (the policy keeps the last answer when
        the sensor cannot give one)."""
        if self._workdays is None:
            return
        today = dt_util.now().date()
        days = await self._workdays.async_non_working(
            today - timedelta(seconds=HISTORY_MAX_S + 86400),
            today + timedelta(seconds=self.policy.config.horizon_s + 86400),
        )
        if days is not None and days != self._non_working:
            self._non_working = days
            self._tell_policy(lambda policy: policy.set_non_working_days(days))

    @override
    async def _async_update_data(self) -> Decisions:
        await self._async_announced_work()
        await self._async_non_working_days()
        self._drain()
        self._deciding = True
        try:
            decisions = await self.hass.async_add_executor_job(self._decide, time.time())
        finally:
            self._deciding = False
            self._drain()
        self.changes = changes_between(self.changes, decisions)
        return decisions

    def _decide(self, now_s: float) -> Decisions:
        """One decision tick, with the latest forecast of every element and circuit copied out
        of the policy (in the executor job: the entities never read the policy)."""
        policy = self.policy
        decisions = policy.decide(now_s)
        forecasts: dict[str, Forecast] = {}
        for component in (*policy.topology.elements, *policy.topology.circuits):
            fc = policy.element_forecast(component) or policy.circuit_forecast(component)
            if fc is not None:
                forecasts[component] = fc
        return replace(decisions, forecasts=forecasts)

    async def async_persist(self) -> None:
        """Write the history now (on unload)."""
        await self._store.async_save(self.history)

    @override
    async def async_shutdown(self) -> None:
        """Stop following telemetry and persist the history."""
        await super().async_shutdown()
        if self._unsub is not None:
            self._unsub()
            self._unsub = None
        await self.async_persist()

    def forecast_of(self, component: str) -> Mapping[str, Any] | None:
        """The latest forecast of an ATS/MPDU (circuit sums) or a circuit, JSON-safe."""
        fc = None if self.data is None else self.data.forecasts.get(component)
        return None if fc is None else fc.as_dict()
