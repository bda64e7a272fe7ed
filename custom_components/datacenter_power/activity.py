"""Activity: every action the integration takes or refuses, as one event per device concerned.

One event type, ``datacenter_power_activity``, carries ``device_id`` (so the entry shows in the
device page's Activity and in the logbook, described by ``logbook.py``), a ``type``, a readable
``message`` saying what happened, who or what caused it and why, and ``related_device_ids``
(circuits a migration moved, circuits below a failed element). The event is fired with the
context of the person or automation that caused it, so the logbook names them; automatic actions
get a fresh context and say "automatically" in the message. The same events drive the device
triggers (``device_trigger.py``).

Sources, all hooked from outside the modules that act (so those stay as they are):
* each decision tick's changes (``decision_changes.py``: failure predicted / risk cleared /
  overload forecast, which also get their own bus events for plain event automations);
* the migration manager's progress (started, each circuit moved, finished or failed);
* the ``failover`` event;
* every action of the integration that acts (``recorded.py``: requested, done, refused);
* refused entity commands (:func:`async_record_refusal`, called by the command path).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from homeassistant.core import (
    Context,
    Event,
    HomeAssistant,
    callback,
)
from homeassistant.helpers import device_registry as dr

from .const import DOMAIN, POLICY_AUTOMATIC
from .decision_changes import DecisionChanges
from .engine.faults import unit_failure
from .engine.policy import Decisions
from .events import (
    CIRCUIT_MOVED,
    EVENT_ACTIVITY,
    EVENT_FAILOVER,
    EVENT_FAILURE_RISK_CLEARED,
    EVENT_OVERLOAD_FORECAST,
    FAILOVER,
    FAILURE_PREDICTED,
    FAILURE_RISK_CLEARED,
    MIGRATION_FAILED,
    MIGRATION_FINISHED,
    MIGRATION_STARTED,
    OVERLOAD_FORECAST,
    REFUSED,
)
from .executor import FINAL_STATES, MigrationRecord, MigrationState
from .presentation import ttf_text
from .ranges import circuit_span
from .runtime import DataCenterPowerConfigEntry


def _count(n: int, noun: str) -> str:
    """``1 stage``, ``4 circuits``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def latest_decisions(entry: DataCenterPowerConfigEntry) -> Decisions | None:
    """The decision coordinator's latest decisions (None before its first refresh)."""
    return cast("Decisions | None", entry.runtime_data.decisions.data)


def hub_device_id(hass: HomeAssistant, entry: DataCenterPowerConfigEntry) -> str | None:
    """The plant's own device (it carries the migration sensor)."""
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, f"{entry.unique_id}"), entry.entry_id
    )
    return None if device is None else device.id


@callback
def async_fire_activity(
    hass: HomeAssistant,
    entry: DataCenterPowerConfigEntry,
    component: str | None,
    kind: str,
    message: str,
    *,
    context: Context | None = None,
    related: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Fire one activity event on ``component``'s device (the plant's device when None)."""
    telemetry = entry.runtime_data.telemetry
    device_id = (
        telemetry.device_id(component) if component is not None else hub_device_id(hass, entry)
    )
    related_ids = [d for c in related if c != component and (d := telemetry.device_id(c))]
    entry.runtime_data.notices.fire(  # device triggers: only once automations are armed
        EVENT_ACTIVITY,
        {
            **(extra or {}),
            "entry_id": entry.entry_id,
            "device_id": device_id,
            "component": component,
            "type": kind,
            "message": message,
            "related_device_ids": related_ids,
        },
        context=context or Context(),
    )


@callback
def async_record_refusal(
    hass: HomeAssistant,
    entry: DataCenterPowerConfigEntry,
    component: str | None,
    what: str,
    why: str,
    context: Context | None,
) -> None:
    """A refused command (interlock or device): who asked, what, and why it was refused."""
    async_fire_activity(
        hass,
        entry,
        component,
        REFUSED,
        f"refused {what}: {why}",
        context=context,
        extra={"what": what, "why": why},
    )


@dataclass
class _Seen:
    state: MigrationState
    completed: int


@dataclass
class ActivityRecorder:
    """Turns one plant's decisions and migrations into activity events."""

    hass: HomeAssistant
    entry: DataCenterPowerConfigEntry
    seen: dict[str, _Seen] = field(default_factory=dict)
    requested: dict[str, tuple[Context, str]] = field(default_factory=dict)
    """Migration id -> (context, how) of migrations a person or automation asked for."""
    pending: list[tuple[Context, str]] = field(default_factory=list)
    """Requests in progress: a migration that starts meanwhile is theirs (an executor's first
    step can run before the action that started it has returned)."""
    lineups: list[tuple[object, dict[str, str | None]]] = field(default_factory=list)
    """The last two polls' lineups (snapshot, circuit -> path): where the circuits of a unit
    that has just failed were before it failed."""

    @callback
    def async_start(self) -> None:
        """Follow the plant's decisions, migrations and failovers until the entry unloads."""
        data = self.entry.runtime_data
        for rec in data.migrations.records.values():
            if rec.state in FINAL_STATES:  # running ones (started during setup, or resumed
                # after a restart) are written when they next make progress
                self.seen[rec.migration_id] = _Seen(rec.state, rec.completed_stages)
        self.entry.async_on_unload(data.decisions.async_add_tick_listener(self._on_tick))
        self.entry.async_on_unload(data.decisions.async_add_listener(self._catch_up))
        self.entry.async_on_unload(data.migrations.add_listener(self._on_migrations))
        self.entry.async_on_unload(self.hass.bus.async_listen(EVENT_FAILOVER, self._on_failover))
        self.entry.async_on_unload(data.telemetry.async_add_listener(self._on_telemetry))
        self._on_telemetry()
        self._catch_up()

    @callback
    def _on_telemetry(self) -> None:
        telemetry = self.entry.runtime_data.telemetry
        snapshot = telemetry.data
        if not telemetry.last_update_success or (self.lineups and self.lineups[-1][0] is snapshot):
            return
        self.lineups = [*self.lineups[-1:], (snapshot, dict(snapshot.assignment))]

    def _lineup_before(self) -> dict[str, str | None]:
        """The lineup of the poll before the latest one."""
        current = self.entry.runtime_data.telemetry.data
        for snapshot, lineup in reversed(self.lineups):
            if snapshot is not current:
                return lineup
        return {}

    def failure_sentence(self, element: str) -> str:
        """What a failure did to the load, in one sentence: "ats1 failed (its output is dead
        although util_a is available); a01-a04 transferred by their bypass to mpdu2; a05 left
        without power"."""
        snapshot = self.entry.runtime_data.telemetry.data
        topology = snapshot.topology
        failure = unit_failure(topology, snapshot.readings, element)
        text = f"{element} failed" + ("" if failure is None else f" ({failure.why})")
        before = {c: p for c, p in self._lineup_before().items() if c in topology.circuits}
        was_on = sorted(topology.circuits_through(element, before))
        if not was_on:
            return text + "; it carried no load"
        moved: dict[str, list[str]] = {}
        dark: list[str] = []
        for circuit in was_on:
            now = snapshot.assignment.get(circuit)
            if now is None:
                dark.append(circuit)
            elif now != before.get(circuit):
                moved.setdefault(now, []).append(circuit)
        parts = [
            f"{circuit_span(circuits)} transferred by their bypass to {path}"
            for path, circuits in sorted(moved.items())
        ]
        if dark:
            parts.append(f"{circuit_span(dark)} left without power")
        return "; ".join([text, *parts])

    @callback
    def _on_tick(self, changes: DecisionChanges) -> None:
        """A new decision: each alert that turned on or off, each element newly forecast over
        its limit (an alert once per run: a reload does not write it again)."""
        decisions = changes.decisions
        topology = self.entry.runtime_data.decisions.policy.topology
        assignment = self.entry.runtime_data.telemetry.data.assignment
        notices = self.entry.runtime_data.notices
        notices.release_closed("activity:predicted:", decisions.alerts)
        for component in sorted(changes.alerts_on):
            if not notices.claim(f"activity:predicted:{component}"):
                continue  # written before a reload in this run
            a = decisions.assessments[component]
            self._fire_decision(
                component,
                FAILURE_PREDICTED,
                f"failure predicted (health {a.health:.0f} %, time to failure {ttf_text(a)}): "
                + "; ".join(a.signals),
                related=topology.circuits_through(component, assignment),
                extra={"health": round(a.health, 1), "time_to_failure_s": a.time_to_failure_s},
            )
        for component in sorted(changes.alerts_off):
            now = decisions.assessments.get(component)
            health = "" if now is None else f" (health {now.health:.0f} %)"
            self._fire_decision(
                component,
                FAILURE_RISK_CLEARED,
                f"failure risk cleared{health}",
                related=topology.circuits_through(component, assignment),
                event=EVENT_FAILURE_RISK_CLEARED,
            )
        for o in changes.new_overloads:
            element = o.element
            when = "now" if o.urgent else "within the forecast horizon"
            self._fire_decision(
                element,
                OVERLOAD_FORECAST,
                f"load forecast to reach its continuous limit of {o.limit_a:.0f} A {when} "
                f"(peak {o.peak_a:.1f} A)",
                related=topology.circuits_through(element, assignment),
                event=EVENT_OVERLOAD_FORECAST,
                extra={"peak_a": round(o.peak_a, 1), "limit_a": round(o.limit_a, 1)},
            )

    @callback
    def _catch_up(self) -> None:
        """After every decision refresh: a migration not written yet (started while the plant
        was being set up) is written now."""
        if latest_decisions(self.entry) is None:
            return
        for rec in self.entry.runtime_data.migrations.records.values():
            if rec.migration_id not in self.seen:
                self._on_migrations()
                break

    def _fire_decision(
        self,
        component: str,
        kind: str,
        message: str,
        *,
        related: Iterable[str],
        event: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        context = Context()
        related = list(related)
        async_fire_activity(
            self.hass, self.entry, component, kind, message, context=context, related=related,
            extra=extra,
        )  # fmt: skip
        if event is not None:
            telemetry = self.entry.runtime_data.telemetry
            self.entry.runtime_data.notices.fire(
                event,
                {
                    **(extra or {}),
                    "entry_id": self.entry.entry_id,
                    "component": component,
                    "device_id": telemetry.device_id(component),
                    "circuits": related,
                },
                context=context,
            )

    def _automatic_reason(self, component: str) -> str:
        decisions = latest_decisions(self.entry)
        if decisions is not None:
            for action in (*decisions.actions, *decisions.proposals):
                if (action.target or "plant") == component:
                    return action.reason
        return "decided by the policy"

    @callback
    def _on_migrations(self) -> None:
        manager = self.entry.runtime_data.migrations
        for rec in list(manager.records.values()):
            before = self.seen.get(rec.migration_id)
            self.seen[rec.migration_id] = _Seen(rec.state, rec.completed_stages)
            circuits = sorted(rec.circuits)
            what = f"migration {rec.migration_id} ({_label(rec)})"
            component = None if rec.component == "plant" else rec.component
            if before is None:
                requested = self.requested.pop(rec.migration_id, None)
                if requested is None and self.pending:
                    requested = self.pending[-1]
                if requested is not None:
                    context, cause = requested
                elif "reconciled" in rec.history:
                    context, cause = Context(), "resumed after a Home Assistant restart"
                else:
                    context = Context()
                    mode = self.entry.options.get("policy_mode")
                    cause = (
                        "started automatically"
                        + (" (automatic mode)" if mode == POLICY_AUTOMATIC else "")
                        + f": {self._automatic_reason(rec.component)}"
                    )
                async_fire_activity(
                    self.hass, self.entry, component, MIGRATION_STARTED,
                    f"{what} {cause}; {_count(len(circuits), 'circuit')} in "
                    f"{_count(len(rec.stages), 'stage')}",
                    context=context, related=circuits,
                    extra={"migration_id": rec.migration_id},
                )  # fmt: skip
                before = _Seen(MigrationState.IDLE, 0)
            for index in range(before.completed, rec.completed_stages):
                for move in rec.stages[index]:
                    async_fire_activity(
                        self.hass, self.entry, move.circuit, CIRCUIT_MOVED,
                        f"moved from {move.from_mpdu} to {move.to_mpdu} ({move.amps:.1f} A) by "
                        f"{what}, stage {index + 1} of {len(rec.stages)}, verified",
                        extra={"migration_id": rec.migration_id},
                    )  # fmt: skip
            if rec.state in FINAL_STATES and before.state not in FINAL_STATES:
                ok = rec.state is MigrationState.COMPLETED
                text = (
                    (
                        f"{what} finished: all {len(rec.stages)} stages verified"
                        if len(rec.stages) != 1
                        else f"{what} finished: its stage verified"
                    )
                    if ok
                    else f"{what} {rec.state.value.replace('_', ' ')} after "
                    f"{rec.completed_stages} of {_count(len(rec.stages), 'stage')}: {rec.reason}"
                )
                async_fire_activity(
                    self.hass, self.entry, component,
                    MIGRATION_FINISHED if ok else MIGRATION_FAILED, text,
                    related=circuits,
                    extra={"migration_id": rec.migration_id, "state": rec.state.value},
                )  # fmt: skip

    @callback
    def _on_failover(self, event: Event[Mapping[str, Any]]) -> None:
        if event.data.get("entry_id") != self.entry.entry_id:
            return
        if event.data.get("migration_id") is None and "message" in event.data:
            # the alert of a failure or an element over its limit (``faults.py``): no rebalance
            advice: Mapping[str, str] = event.data.get("advice", {})
            failed = set(event.data.get("failed", []))
            over = {o["element"]: o for o in event.data.get("over_limit", [])}
            for component in event.data.get("new", []):
                if component in failed:
                    what = self.failure_sentence(component)
                elif (o := over.get(component)) is not None:
                    what = (
                        f"{component} is above its continuous limit: {o['load_a']} A, "
                        f"{o['excess_a']} A over its limit of {o['limit_a']} A ({o['pct']} %)"
                    )
                else:
                    what = str(event.data["title"])
                async_fire_activity(
                    self.hass, self.entry, component, FAILOVER,
                    f"{what}. {advice.get(component, '')}".strip(),
                    context=event.context, extra={"migration_id": None},
                )  # fmt: skip
            return
        moved = sorted({m["circuit"] for s in event.data["plan"]["steps"] for m in s["moves"]})
        for failed in event.data.get("failed", []):
            async_fire_activity(
                self.hass, self.entry, failed, FAILOVER,
                f"failed without warning; rebalancing automatically (migration "
                f"{event.data.get('migration_id')}): {event.data.get('reason')}",
                context=event.context, related=moved,
                extra={"migration_id": event.data.get("migration_id")},
            )  # fmt: skip


def _label(rec: MigrationRecord) -> str:
    """What a migration does, in two words: ``drain ats1``, ``restore mpdu1``, ``rebalance``."""
    if rec.component == "plant":
        return "rebalance" if rec.kind in ("drain", "rebalance") else rec.kind
    return f"{rec.kind} {rec.component}"
