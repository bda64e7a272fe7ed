"""Alert within one poll: a sudden ATS/MPDU failure, or an element above its continuous limit.

The failover rebalance fires ``datacenter_power_failover`` only when it has something to move; a
failure that no rebalance can fix (every path of the dumped circuits leads to the one element
left) used to be silent. :class:`FaultWatch` reads every telemetry refresh (``engine/faults.py``)
and, when a unit fails or an element goes above its limit, fires the same event at once (what
failed, what is over and by how much, what can be done or why nothing can be moved), writes it
to the log, and keeps the conditions the repair issues (``repairs.py``) and the risk entities
(``prediction.py``, ``plant.py``) show. An element stays "over" until it is back below
``CLEAR_FRACTION`` of its limit, so a load hovering at the limit does not alert every poll; a
failed unit stays failed until a poll shows it live again (switched off after it failed, it is
still failed: ``restore`` never commands it).

The event keeps the rebalance event's fields (``failed``, ``migration_id`` = None, ``reason``,
``plan`` with no steps) and adds ``over_limit``, ``title``, ``message`` and ``tag``, so the
failover blueprint (and any automation written for it) works for both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from homeassistant.core import Context, HomeAssistant, callback

from .activity import latest_decisions
from .const import CONF_MAX_STEP_AMPS, DEFAULT_MAX_STEP_AMPS, LOGGER
from .engine.faults import OverLimit, UnitFailure, is_live, over_limits, unit_failures
from .engine.plan import Infeasible
from .events import EVENT_FAILOVER
from .migration import MigrationRequest, plan_for
from .presentation import infeasible_text, plan_summary
from .runtime import DataCenterPowerConfigEntry
from .snapshot import PlantSnapshot

__all__ = ["CLEAR_FRACTION", "FaultWatch", "Faults"]

CLEAR_FRACTION: Final = 0.95
"""An element that went above its limit counts as over until it is below this fraction of it."""


@dataclass(frozen=True, slots=True)
class Faults:
    """What the last refresh showed: failed units, elements over their limit, and what can be
    done about each (in words)."""

    failed: dict[str, UnitFailure] = field(default_factory=dict)
    over: dict[str, OverLimit] = field(default_factory=dict)
    advice: dict[str, str] = field(default_factory=dict)

    @property
    def components(self) -> frozenset[str]:
        """Every component with a condition."""
        return frozenset(self.failed) | frozenset(self.over)


def _circuits_text(circuits: list[str]) -> str:
    return ", ".join(circuits) if circuits else "none"


class FaultWatch:
    """Follows one plant's telemetry for failures and elements over their limit."""

    def __init__(self, hass: HomeAssistant, entry: DataCenterPowerConfigEntry) -> None:
        """Nothing known yet: the first refresh seen reports whatever it shows."""
        self.hass = hass
        self.entry = entry
        self.faults = Faults()
        self._seen: PlantSnapshot | None = None
        self.recovered_s: dict[str, float] = {}
        """Element -> when a poll first showed it live again after it had failed (Unix s)."""
        self._advice_key: object = None

    @callback
    def async_start(self) -> None:
        """Follow the telemetry until the entry unloads."""
        telemetry = self.entry.runtime_data.telemetry
        self.entry.async_on_unload(telemetry.async_add_listener(self.async_update))
        self.async_update()

    @callback
    def current(self) -> Faults:
        """The plant's conditions as of its latest refresh (brought up to date first)."""
        self.async_update()
        return self.faults

    @callback
    def async_update(self) -> None:
        """Bring the conditions up to date with the latest refresh (once per refresh), and alert
        on the ones that are new."""
        telemetry = self.entry.runtime_data.telemetry
        snapshot = telemetry.data
        if snapshot is self._seen or not telemetry.last_update_success:
            return
        self._seen = snapshot
        topology, readings = snapshot.topology, snapshot.readings
        failed = unit_failures(topology, readings)
        for element, failure in self.faults.failed.items():
            if element not in failed and not is_live(readings.get(element)):
                # not seen live since it failed (switched off since, or silent): still failed
                failed[element] = failure
        over = over_limits(topology, readings)
        kept = over_limits(topology, readings, CLEAR_FRACTION)
        over.update({e: o for e, o in kept.items() if e in self.faults.over})
        # A unit that did not answer this poll is not known to be back within its limit: it
        # keeps its last reading's condition (found by the soak: a slow gateway cleared the
        # repair of an MPDU still 40 % over its limit).
        over.update({e: o for e, o in self.faults.over.items() if e not in readings})
        before = self.faults
        new = (set(failed) - set(before.failed)) | (set(over) - set(before.over))
        try:
            advice = self._advise(snapshot, failed, over)
        except Exception:  # advice only: nothing may stop the alert itself
            LOGGER.exception("No advice for %s", ", ".join(sorted({*failed, *over})))
            advice = {}
        self.faults = Faults(failed, over, advice)
        for element in sorted(set(before.failed) - set(failed)):
            self.recovered_s[element] = snapshot.updated_at.timestamp()
            LOGGER.warning("%s is live again (it had failed)", element)
        for element in sorted(set(before.over) - set(over)):
            LOGGER.warning("%s is back within its continuous limit", element)
        # Announced once per condition in this run, after Home Assistant has started (a reload
        # does not alert again what is still failed or over; a restart does, once).
        notices = self.entry.runtime_data.notices
        notices.release_closed("fault:", self.faults.components)
        new = {e for e in new | self.faults.components if notices.claim(f"fault:{e}")}
        if new:
            self._alert(snapshot, sorted(new))

    def _advise(
        self,
        snapshot: PlantSnapshot,
        failed: dict[str, UnitFailure],
        over: dict[str, OverLimit],
    ) -> dict[str, str]:
        """What can be done about each condition (planned again only when the conditions or
        the lineup change: a plan is not made every poll)."""
        key = (frozenset(failed), frozenset(over), frozenset(snapshot.assignment.items()))
        if key == self._advice_key:
            return self.faults.advice
        self._advice_key = key
        out: dict[str, str] = {}
        for element, f in failed.items():
            below = f" (and {', '.join(f.below)} below it)" if f.below else ""
            out[element] = (
                f"It receives no load{below}. Repair or replace it; once it is healthy again "
                "for the policy's soak time (and, for an ATS, its latched alarms are reset with "
                "its Reset alarms button), bring its circuits back with datacenter_power.restore."
            )
        for element in over:
            out[element] = self._relief_text(snapshot, element, failed)
        return out

    def _relief_text(
        self, snapshot: PlantSnapshot, element: str, failed: dict[str, UnitFailure]
    ) -> str:
        topology = snapshot.topology
        # Only circuits of the topology: a device found while part of its chain was not is in
        # the assignment but outside the graph until the rescan (found by the soak: KeyError).
        assignment = {c: p for c, p in snapshot.assignment.items() if c in topology.circuits}
        circuits = sorted(topology.circuits_through(element, assignment))
        bad = set(failed) | {m for f in failed.values() for m in f.below}
        movable = [
            c
            for c in circuits
            if any(
                p != assignment.get(c)
                and p in snapshot.energized_mpdus
                and p not in bad
                and topology.ats_of(p) not in bad
                and not topology.depends_on(p, element)
                for p in topology.circuits[c].paths
            )
        ]
        non_critical = [c for c in circuits if not topology.circuits[c].critical]
        shed = (
            f" Non-critical circuits on it that could be switched off: {', '.join(non_critical)}."
            if non_critical
            else ""
        )
        why_failed = f" ({', '.join(sorted(failed))} failed)" if failed else ""
        if not movable:
            return (
                f"Nothing can be moved: none of the {len(circuits)} circuits on {element} "
                f"({_circuits_text(circuits)}) has another live path{why_failed}. Its breaker may "
                f"trip: repair the failed unit or reduce the load now.{shed}"
            )
        manager = self.entry.runtime_data.migrations
        active = manager.active
        if active is not None:
            return (
                f"Migration {active.migration_id} is moving circuits now; "
                f"{len(movable)} of the {len(circuits)} circuits on {element} have another live "
                f"path.{shed}"
            )
        options = self.entry.options
        request = MigrationRequest(
            element,
            max_step_amps=float(options.get(CONF_MAX_STEP_AMPS, DEFAULT_MAX_STEP_AMPS)),
        )
        try:
            result = plan_for(snapshot, request, latest_decisions(self.entry))
        except Exception as err:  # advice only: a planner error must never stop the alert
            LOGGER.debug("No advice for %s: %s", element, err)
            result = None
        who = (
            "the failover rebalance (in every mode)"
            if failed
            else "the policy's relief (automatic mode; proposed in approval mode)"
        )
        if isinstance(result, Infeasible):
            plan = (
                f" Moving all of them would not fit: {infeasible_text(result).rstrip('.')}. "
                f"What fits is moved by {who}."
            )
        elif result is not None and result.moves:
            plan = (
                f" A safe plan moves {plan_summary(result, topology)} off {element} "
                f"(datacenter_power.migrate_load, or {who})."
            )
        else:
            plan = ""
        return (
            f"{len(movable)} of its {len(circuits)} circuits ({', '.join(movable)}) have another "
            f"live path.{plan}{shed}"
        )

    def _alert(self, snapshot: PlantSnapshot, new: list[str]) -> None:
        faults = self.faults
        parts: list[str] = []
        decisions = latest_decisions(self.entry)
        predicted = frozenset() if decisions is None else decisions.alerts
        for element, f in sorted(faults.failed.items()):
            how = "as predicted" if element in predicted else "without warning"
            parts.append(f"{element} failed {how}: {f.why}.")
        for element, o in sorted(faults.over.items()):
            parts.append(
                f"{element} carries {o.load_a:.1f} A, {o.excess_a:.1f} A above its continuous "
                f"limit of {o.limit_a:.1f} A ({o.pct:.0f} %; rating {o.rating_a:.0f} A)."
            )
        for element in sorted(faults.components):
            parts.append(f"{element}: {faults.advice.get(element, '')}")
        message = " ".join(p for p in parts if p)
        failed = sorted(faults.failed)
        over = sorted(faults.over)
        title = (
            f"FAILURE: {', '.join(failed)} failed"
            + (f", {', '.join(over)} over its limit" if over else "")
            if failed
            else f"OVER LIMIT: {', '.join(over)}"
        )
        LOGGER.error("%s. %s", title, message)
        self.entry.runtime_data.notices.fire(
            EVENT_FAILOVER,
            {
                "entry_id": self.entry.entry_id,
                "failed": failed,
                "over_limit": [
                    {
                        "element": o.element,
                        "load_a": round(o.load_a, 1),
                        "limit_a": round(o.limit_a, 1),
                        "excess_a": round(o.excess_a, 1),
                        "pct": round(o.pct),
                    }
                    for o in (faults.over[e] for e in over)
                ],
                "new": new,
                "advice": {e: faults.advice.get(e, "") for e in sorted(faults.components)},
                "migration_id": None,
                "reason": message,
                "plan": {"steps": [], "circuits": []},
                "title": title,
                "message": message,
                "tag": f"datacenter_power_alert_{self.entry.entry_id}_{'_'.join(new)}",
                "at": snapshot.updated_at.isoformat(),
            },
            context=Context(),
        )
