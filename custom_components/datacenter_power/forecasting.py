"""Forecasting coordinator: the engine's decision policy, fed by telemetry, run off the event loop.

Every telemetry refresh becomes one ``PlantObservation`` that the policy takes in (cheap: it
appends samples). On its own slow interval the coordinator runs ``DecisionPolicy.decide`` (model
fits, degradation scoring, planning) in an executor job, never on the event loop; observations
that arrive meanwhile wait and are applied afterwards, so the policy is only ever touched by one
thread at a time.

The history the policy learns from is kept compact and bounded (the last poll of every
``HISTORY_BUCKET_S``, at most ``HISTORY_MAX_S``) and persisted in a ``helpers.storage.Store``;
after a restart it is replayed into a fresh policy, so a restart loses nothing the forecasts need.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Final, override

from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .announced import scheduled_loads
from .const import (
    CONF_CALENDAR_ENTITY,
    CONF_FORECAST_HORIZON,
    CONF_MAX_STEP_AMPS,
    CONF_POLICY_MODE,
    CONF_SCAN_INTERVAL,
    CONF_STEP_INTERVAL,
    DEFAULT_FORECAST_HORIZON,
    DEFAULT_MAX_STEP_AMPS,
    DEFAULT_POLICY_MODE,
    DEFAULT_SCAN_INTERVAL,
    DEFAULT_STEP_INTERVAL,
    DOMAIN,
    LOGGER,
    POLICY_AUTOMATIC,
)
from .coordinator import DataCenterPowerConfigEntry, PlantSnapshot, TelemetryCoordinator
from .device.models import AtsReading, EnvReading, MpduReading, SbmReading
from .engine.observation import CircuitObs, ElementObs, PlantObservation
from .engine.policy import Action, DecisionPolicy, Decisions, PolicyConfig
from .engine.topology import Topology
from .executor import MigrationState
from .migration import MigrationManager, MigrationRequest

EVENT_FAILURE_PREDICTED: Final = f"{DOMAIN}_failure_predicted"
EVENT_FAILOVER: Final = f"{DOMAIN}_failover"
FORECAST_INTERVAL: Final = timedelta(minutes=5)
HISTORY_BUCKET_S: Final = 300.0
HISTORY_MAX_S: Final = 14 * 86400.0
STORAGE_VERSION: Final = 1
SAVE_DELAY_S: Final = 600.0
NAN: Final = math.nan


def observation_from_snapshot(snapshot: PlantSnapshot) -> PlantObservation:
    """What the policy sees of one telemetry refresh (unavailable devices: NaN, unreachable)."""
    circuits: dict[str, CircuitObs] = {}
    elements: dict[str, ElementObs] = {}
    ambient = NAN
    for pid, identity in snapshot.identities.items():
        reading = snapshot.readings.get(pid)
        if isinstance(reading, SbmReading):
            circuits[pid] = CircuitObs(
                id=pid,
                reachable=True,
                active_path=reading.paths[reading.active_path]
                if 0 <= reading.active_path < len(reading.paths)
                else None,
                energized=reading.energized,
                current_a=reading.current_a,
                output_on=reading.output_on,
                path_energized=dict(zip(reading.paths, reading.path_energized, strict=False)),
            )
        elif isinstance(reading, AtsReading):
            elements[pid] = ElementObs(
                id=pid,
                kind="ats",
                reachable=True,
                energized=reading.output_energized,
                current_a=reading.load_current_a,
                temperature_c=reading.contact_temperature_c,
                ripple_pct=reading.ripple_pct,
                self_tests=reading.self_tests,
                self_test_ms=reading.last_self_test_ms,
                nominal_transfer_ms=reading.transfer_time_ms,
                operations=reading.operations,
                rated_operations=reading.rated_operations,
                sources_available=any(reading.source_available),
                alarms=frozenset(
                    name
                    for name, on in (
                        ("over_temperature", reading.alarm_over_temperature),
                        ("output_lost", reading.alarm_output_lost),
                        ("over_limit", reading.alarm_over_limit),
                    )
                    if on
                ),
            )
        elif isinstance(reading, MpduReading):
            elements[pid] = ElementObs(
                id=pid,
                kind="mpdu",
                reachable=True,
                energized=reading.energized and reading.output_on and not reading.breaker_open,
                current_a=reading.current_a,
                temperature_c=reading.terminal_temperature_c,
                ripple_pct=reading.ripple_pct,
                nuisance_trips=reading.nuisance_trips,
                alarms=frozenset(
                    name
                    for name, on in (
                        ("breaker_trip", reading.alarm_breaker_trip),
                        ("over_temperature", reading.alarm_over_temperature),
                        ("over_limit", reading.alarm_over_limit),
                    )
                    if on
                ),
            )
        elif isinstance(reading, EnvReading):
            ambient = reading.ambient_c
        elif reading is None and identity.plant_id in snapshot.topology.circuits:
            circuits[pid] = CircuitObs(pid, False, None, False, NAN)
        elif reading is None and snapshot.topology.kind(pid) in ("ats", "mpdu"):
            kind = "ats" if snapshot.topology.kind(pid) == "ats" else "mpdu"
            elements[pid] = ElementObs(pid, kind, False, False, NAN)  # type: ignore[arg-type]
    return PlantObservation(
        t_s=snapshot.updated_at.timestamp(),
        circuits=circuits,
        elements=elements,
        ambient_c=ambient,
    )


def pack_observation(obs: PlantObservation) -> list[Any]:
    """A compact, JSON-safe row of an observation (the fields the policy learns from)."""
    return [
        round(obs.t_s, 1),
        None if math.isnan(obs.ambient_c) else round(obs.ambient_c, 2),
        {
            c.id: [c.reachable, c.active_path, c.energized, _num(c.current_a), c.output_on]
            for c in obs.circuits.values()
        },
        {
            e.id: [
                e.kind,
                e.reachable,
                e.energized,
                _num(e.current_a),
                _num(e.temperature_c),
                _num(e.ripple_pct),
                e.self_tests,
                e.self_test_ms,
                e.nominal_transfer_ms,
                e.operations,
                e.rated_operations,
                e.nuisance_trips,
                e.sources_available,
            ]
            for e in obs.elements.values()
        },
    ]


def _num(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def _val(value: float | None) -> float:
    return NAN if value is None else float(value)


def unpack_observation(row: list[Any]) -> PlantObservation:
    t_s, ambient, circuits, elements = row
    return PlantObservation(
        t_s=float(t_s),
        ambient_c=_val(ambient),
        circuits={
            cid: CircuitObs(cid, bool(r), p, bool(en), _val(a), bool(on))
            for cid, (r, p, en, a, on) in circuits.items()
        },
        elements={
            eid: ElementObs(
                id=eid,
                kind=v[0],
                reachable=bool(v[1]),
                energized=bool(v[2]),
                current_a=_val(v[3]),
                temperature_c=_val(v[4]),
                ripple_pct=_val(v[5]),
                self_tests=int(v[6]),
                self_test_ms=float(v[7]),
                nominal_transfer_ms=float(v[8]),
                operations=int(v[9]),
                rated_operations=int(v[10]),
                nuisance_trips=int(v[11]),
                sources_available=bool(v[12]),
            )
            for eid, v in elements.items()
        },
    )


def policy_config(entry: DataCenterPowerConfigEntry) -> PolicyConfig:
    """The policy's configuration from the entry's options.

    The policy runs in ``approval`` mode unless the entry is ``automatic``: it then proposes
    instead of ordering, and this layer decides what to execute (a rebalance after a sudden
    failure in every mode; anything else only when automatic or approved).
    """
    options = entry.options
    automatic = options.get(CONF_POLICY_MODE, DEFAULT_POLICY_MODE) == POLICY_AUTOMATIC
    return PolicyConfig(
        mode="automatic" if automatic else "approval",
        horizon_s=3600.0 * float(options.get(CONF_FORECAST_HORIZON, DEFAULT_FORECAST_HORIZON)),
        poll_s=float(options.get(CONF_SCAN_INTERVAL, DEFAULT_SCAN_INTERVAL)),
        max_step_amps=float(options.get(CONF_MAX_STEP_AMPS, DEFAULT_MAX_STEP_AMPS)),
        step_interval_s=float(options.get(CONF_STEP_INTERVAL, DEFAULT_STEP_INTERVAL)),
    )


class ForecastCoordinator(DataUpdateCoordinator[Decisions]):
    """Runs the decision policy for one plant on a slow interval."""

    config_entry: DataCenterPowerConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: DataCenterPowerConfigEntry,
        telemetry: TelemetryCoordinator,
        migrations: MigrationManager,
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
        self.migrations = migrations
        self._finished: list[tuple[Action, bool, str]] = []
        self._alerting: frozenset[str] = frozenset()
        self._dead: frozenset[str] = frozenset()
        self.policy = DecisionPolicy(telemetry.data.topology, policy_config(entry))
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}.history"
        )
        self._history: deque[list[Any]] = deque(maxlen=int(HISTORY_MAX_S / HISTORY_BUCKET_S))
        self._pending: list[PlantObservation] = []
        self._deciding = False
        self._rebuilding: asyncio.Task[None] | None = None

    @override
    async def _async_setup(self) -> None:
        """Replay the persisted history into the policy, then follow telemetry."""
        stored = await self._store.async_load() or {}
        rows = stored.get("history", []) if isinstance(stored, dict) else None
        replay: list[PlantObservation] = []
        damaged = 0
        for row in rows if isinstance(rows, list) else []:
            try:
                replay.append(unpack_observation(row))
            except ValueError, TypeError, KeyError, IndexError, AttributeError:
                damaged += 1
                continue
            self._history.append(row)
        if damaged or not isinstance(rows, list):
            LOGGER.warning("The stored load history was damaged; %s row(s) discarded", damaged)
        if replay:
            LOGGER.debug("Replaying %d persisted observations into the policy", len(replay))
            # Nothing else touches the policy yet: replay it off the event loop.
            await self.hass.async_add_executor_job(self._observe_all, replay)
        self._unsub = self.telemetry.async_add_listener(self._on_telemetry)
        self._on_telemetry()

    def _observe_all(self, observations: list[PlantObservation]) -> None:
        for obs in observations:
            self.policy.observe(obs)

    async def _async_rebuild(self, topology: Topology) -> None:
        """Replace the policy with one for ``topology``, taught the kept history off the loop."""
        policy = DecisionPolicy(topology, policy_config(self.config_entry))
        policy.schedule = self.policy.schedule
        replay = [unpack_observation(row) for row in self._history]

        def learn() -> None:
            for obs in replay:
                policy.observe(obs)

        await self.hass.async_add_executor_job(learn)
        LOGGER.debug("The plant changed; the policy now covers %d circuits", len(topology.circuits))
        self.policy = policy
        self._pending.clear()
        self._finished.clear()
        self._rebuilding = None

    @callback
    def _on_telemetry(self) -> None:
        snapshot = self.telemetry.data
        if snapshot.topology != self.policy.topology:
            # A rescan found devices (or a gateway went): a new policy learns the new plant.
            if self._rebuilding is None:
                self._rebuilding = self.config_entry.async_create_background_task(
                    self.hass, self._async_rebuild(snapshot.topology), f"{DOMAIN} rebuild policy"
                )
            return
        obs = observation_from_snapshot(snapshot)
        bucket = obs.t_s // HISTORY_BUCKET_S
        if not self._history or self._history[-1][0] // HISTORY_BUCKET_S != bucket:
            self._history.append(pack_observation(obs))
            self._store.async_delay_save(self._data_to_save, SAVE_DELAY_S)
        else:
            self._history[-1] = pack_observation(obs)
        self._pending.append(obs)
        if not self._deciding:
            self._drain()
        dead = frozenset(e.id for e in obs.elements.values() if e.reachable and not e.energized)
        if dead - self._dead and self.data is not None:
            # Something just died: decide now (rebalance) instead of at the next slow tick.
            self.hass.async_create_task(self.async_request_refresh())
        self._dead = dead

    def _drain(self) -> None:
        """Apply what waited for the policy (only ever called on the event loop, between
        executor jobs)."""
        pending, self._pending = self._pending, []
        for obs in pending:
            self.policy.observe(obs)
        finished, self._finished = self._finished, []
        for action, ok, note in finished:
            self.policy.action_finished(action, ok=ok, note=note)

    def _data_to_save(self) -> dict[str, Any]:
        return {"history": list(self._history)}

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

    @override
    async def _async_update_data(self) -> Decisions:
        await self._async_announced_work()
        self._drain()
        self._deciding = True
        try:
            decisions = await self.hass.async_add_executor_job(self.policy.decide, time.time())
        finally:
            self._deciding = False
            self._drain()
        self._announce(decisions)
        for action in self._to_execute(decisions):
            await self._execute(action)
        return decisions

    def _announce(self, decisions: Decisions) -> None:
        """Fire ``failure_predicted`` for every alert that just turned on."""
        entry_id = self.config_entry.entry_id
        for component in sorted(decisions.alerts - self._alerting):
            assessment = decisions.assessments[component]
            self.hass.bus.async_fire(
                EVENT_FAILURE_PREDICTED,
                {
                    "entry_id": entry_id,
                    "component": component,
                    "device_id": self.telemetry.device_id(component),
                    "health": round(assessment.health, 1),
                    "failure_probability": round(assessment.failure_probability, 3),
                    "time_to_failure_s": assessment.time_to_failure_s,
                    "signals": list(assessment.signals),
                },
            )
        self._alerting = decisions.alerts

    def _to_execute(self, decisions: Decisions) -> list[Action]:
        """Actions to run now: the policy's orders, plus any rebalance after a sudden failure
        (in every mode: the plant is already in trouble and the bypass has moved load)."""
        if self.policy.busy or self.migrations.active is not None:
            return []
        chosen = list(decisions.actions)
        chosen += [a for a in decisions.proposals if a.kind == "rebalance"]
        return chosen[:1]

    async def _execute(self, action: Action) -> None:
        request = MigrationRequest(
            component=action.target or "plant",
            max_step_amps=self.policy.config.max_step_amps,
            step_interval_s=action.step_interval_s,
        )
        self.policy.action_started(action)
        try:
            migration_id = await self.migrations.async_start(action.plan, request)
        except HomeAssistantError as err:
            self.policy.action_finished(action, ok=False, note=str(err))
            return
        LOGGER.info("Executing %s (%s) as migration %s", action.kind, action.reason, migration_id)
        if action.kind == "rebalance":
            self.hass.bus.async_fire(
                EVENT_FAILOVER,
                {
                    "entry_id": self.config_entry.entry_id,
                    "failed": sorted(self._dead),
                    "migration_id": migration_id,
                    "reason": action.reason,
                    "plan": action.plan.as_dict(),
                },
            )

        async def follow() -> None:
            record = await self.migrations.async_wait(migration_id)
            ok = record.state is MigrationState.COMPLETED
            self._finished.append((action, ok, record.reason or ""))
            if not self._deciding:
                self._drain()

        self.config_entry.async_create_background_task(
            self.hass, follow(), f"{DOMAIN} follow {migration_id}"
        )

    async def async_persist(self) -> None:
        """Write the history now (on unload)."""
        await self._store.async_save(self._data_to_save())

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
        fc = self.policy.element_forecast(component) or self.policy.circuit_forecast(component)
        return None if fc is None else fc.as_dict()
