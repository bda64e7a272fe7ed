"""The plant's status in one word and what to do about it: what the dashboard's first card, the
migration and proposal sensors and automations read.

A person on duty must see at a glance whether anything is wrong: a unit that has failed, a unit
predicted to fail (and whether it still carries load, and why nothing moves it), an element above
its continuous limit, a plant that does not answer. :func:`plant_status` computes that from what
the integration already knows (the latest poll, the fault watch, the engine's latest decision, the
proposals and the running migration), most severe first, each problem with what to do about it.
No template computes it: the plant status sensor (``plant.py``) carries it, so an automation can
use it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from .activity import latest_decisions
from .const import CONF_POLICY_MODE, DEFAULT_POLICY_MODE, POLICY_APPROVAL, POLICY_AUTOMATIC
from .device.models import SbmReading
from .executor import FINAL_STATES
from .presentation import plan_summary, ttf_text
from .ranges import circuit_span

if TYPE_CHECKING:
    from .runtime import DataCenterPowerConfigEntry
    from .snapshot import PlantSnapshot

CRITICAL: Final = "critical"
WARNING: Final = "warning"
OK: Final = "ok"

# The status sensor's states, most severe first (translated in translations/en.json).
NO_TELEMETRY: Final = "no_telemetry"
FAILED: Final = "failed"
OVER_LIMIT: Final = "over_limit"
AT_RISK: Final = "at_risk"
OVERLOAD_FORECAST: Final = "overload_forecast"
DEGRADED: Final = "degraded"
NOT_ANSWERING: Final = "not_answering"
MIGRATING: Final = "migrating"
STATES: Final = (
    NO_TELEMETRY,
    FAILED,
    OVER_LIMIT,
    AT_RISK,
    OVERLOAD_FORECAST,
    DEGRADED,
    NOT_ANSWERING,
    MIGRATING,
    OK,
)
SEVERITY: Final = {
    NO_TELEMETRY: CRITICAL,
    FAILED: CRITICAL,
    OVER_LIMIT: CRITICAL,
    AT_RISK: CRITICAL,
    OVERLOAD_FORECAST: WARNING,
    DEGRADED: WARNING,
    NOT_ANSWERING: WARNING,
    MIGRATING: WARNING,
    OK: OK,
}
DEGRADED_HEALTH: Final = 80.0
"""Health below which a unit without a prediction is worth a look (the *degrading* repair's)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that is wrong, in words, and what to do about it."""

    state: str
    component: str | None
    problem: str
    what_to_do: str

    @property
    def sentence(self) -> str:
        """``problem: what to do``."""
        return f"{self.problem}: {self.what_to_do}" if self.what_to_do else self.problem


@dataclass(frozen=True, slots=True)
class PlantStatus:
    """The plant's status: the most severe problem's state, and every problem."""

    problems: tuple[Problem, ...] = ()
    load_at_risk: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Unit at risk (predicted to fail) -> circuits still drawing through it."""

    @property
    def state(self) -> str:
        """The most severe problem's state (``ok`` when there is none)."""
        return self.problems[0].state if self.problems else OK

    @property
    def severity(self) -> str:
        """``critical`` (red), ``warning`` (amber) or ``ok`` (green)."""
        return SEVERITY[self.state]

    @property
    def what_to_do(self) -> str:
        """Every problem with what to do, one per line (``Nothing to do.`` when all is well)."""
        if not self.problems:
            return (
                "Nothing to do: no unit has failed or is predicted to fail, and every element is "
                "within its continuous limit."
            )
        return "\n".join(p.sentence for p in self.problems)


def policy_mode(entry: DataCenterPowerConfigEntry) -> str:
    """The plant's policy mode as chosen in the options."""
    return str(entry.options.get(CONF_POLICY_MODE, DEFAULT_POLICY_MODE))


def dark_circuits(snapshot: PlantSnapshot, element: str) -> list[str]:
    """Circuits switched on whose active path goes through ``element`` and which have no power
    (left without power by its failure)."""
    topology = snapshot.topology
    out = []
    for circuit in topology.circuits:
        reading = snapshot.readings.get(circuit)
        if not isinstance(reading, SbmReading) or not reading.output_on or reading.energized:
            continue
        if 0 <= reading.active_path < len(reading.paths):
            path = reading.paths[reading.active_path]
            if path in topology.mpdus and topology.depends_on(path, element):
                out.append(circuit)
    return sorted(out)


def load_at_risk(entry: DataCenterPowerConfigEntry) -> dict[str, tuple[str, ...]]:
    """Unit predicted to fail -> the circuits still drawing through it (units without any are
    left out)."""
    decisions = latest_decisions(entry)
    if decisions is None:
        return {}
    snapshot = entry.runtime_data.telemetry.data
    topology = snapshot.topology
    assignment = {c: p for c, p in snapshot.assignment.items() if c in topology.circuits}
    out: dict[str, tuple[str, ...]] = {}
    for unit in sorted(decisions.alerts):
        if unit not in topology.elements:
            continue
        on = sorted(topology.circuits_through(unit, assignment))
        if on:
            out[unit] = tuple(on)
    return out


def _plan_text(entry: DataCenterPowerConfigEntry, unit: str) -> tuple[bool, str]:
    """(whether a safe plan drains ``unit``, the plan's summary or why there is none)."""
    from .repairs import drain_plan  # repairs imports the proposals this module reads too

    snapshot = entry.runtime_data.telemetry.data
    key = (
        id(latest_decisions(entry)),
        frozenset(snapshot.assignment.items()),
        frozenset(entry.runtime_data.proposals.current),
    )
    cached = entry.runtime_data.drain_plans.get(unit)
    if cached is not None and cached[0] == key:
        text = cached[1]
    else:
        try:
            plan, why = drain_plan(entry, unit)
        except Exception as err:
            plan, why = None, f"no plan could be made ({err})"
        text = "+" + plan_summary(plan, snapshot.topology) if plan is not None else "-" + why
        entry.runtime_data.drain_plans[unit] = (key, text)
    return text.startswith("+"), text[1:].rstrip(".")


def why_still_on(entry: DataCenterPowerConfigEntry, unit: str, circuits: tuple[str, ...]) -> str:
    """Why load is still on ``unit`` (predicted to fail) and what to do: the migration moving
    it, the proposal waiting for approval, the mode, or why no safe plan exists."""
    runtime = entry.runtime_data
    active = runtime.migrations.active
    if active is not None and active.circuits & set(circuits):
        return (
            f"migration {active.migration_id} is moving "
            f"{circuit_span(active.circuits & set(circuits))} off it "
            f"(stage {min(active.completed_stages + 1, len(active.stages))} of "
            f"{len(active.stages)}); wait for it to finish"
        )
    mode = policy_mode(entry)
    book = runtime.proposals
    if mode == POLICY_APPROVAL:
        for pid, action in book.current.items():
            if action.target == unit:
                return (
                    f"approve proposal {pid} "
                    f"({plan_summary(action.plan, runtime.telemetry.data.topology)}) with the "
                    "Approve proposed migration button or datacenter_power.approve_proposal"
                )
    feasible, text = _plan_text(entry, unit)
    if not feasible:
        return f"no safe plan ({text}): see Settings > Repairs"
    if mode == POLICY_AUTOMATIC:
        return (
            f"the policy drains it automatically before the predicted failure ({text}); to "
            f"drain it now: datacenter_power.migrate_load component {unit}"
        )
    if mode == POLICY_APPROVAL:
        dismissed = [
            pid
            for pid, why in book.stale.items()
            if why.startswith("dismissed") and pid not in book.current
        ]
        if dismissed:
            return (
                f"its proposal was dismissed; a safe plan exists ({text}): run it from its "
                "repair (Settings > Repairs) or with datacenter_power.migrate_load"
            )
        return (
            f"no proposal yet (the policy proposes when it plans next); a safe plan exists "
            f"({text}): run it from its repair (Settings > Repairs)"
        )
    return (
        f"monitor mode moves nothing; a safe plan exists ({text}): run it from its repair "
        f"(Settings > Repairs) or with datacenter_power.migrate_load component {unit}"
    )


def _failed(entry: DataCenterPowerConfigEntry) -> list[Problem]:
    faults = entry.runtime_data.faults.current()
    snapshot = entry.runtime_data.telemetry.data
    out = []
    for element, failure in sorted(faults.failed.items()):
        dark = dark_circuits(snapshot, element)
        problem = f"{element} has failed ({failure.why})"
        if dark:
            problem += f"; {circuit_span(dark)} without power"
        out.append(Problem(FAILED, element, problem, faults.advice.get(element, "")))
    for element, over in sorted(faults.over.items()):
        out.append(
            Problem(
                OVER_LIMIT,
                element,
                f"{element} carries {over.load_a:.1f} A, {over.excess_a:.1f} A above its "
                f"continuous limit of {over.limit_a:.1f} A",
                faults.advice.get(element, ""),
            )
        )
    return out


def _at_risk(entry: DataCenterPowerConfigEntry, on: Mapping[str, tuple[str, ...]]) -> list[Problem]:
    decisions = latest_decisions(entry)
    if decisions is None:
        return []
    failed = entry.runtime_data.faults.current().failed
    out = []
    for unit in sorted(decisions.alerts - set(failed)):
        a = decisions.assessments[unit]
        when = ttf_text(a)
        circuits = on.get(unit, ())
        if circuits:
            out.append(
                Problem(
                    AT_RISK,
                    unit,
                    f"{unit} may fail ({when}) and still carries {circuit_span(circuits)}",
                    why_still_on(entry, unit, circuits),
                )
            )
        else:
            out.append(
                Problem(
                    AT_RISK,
                    unit,
                    f"{unit} may fail ({when}); it carries no load",
                    "repair it in a maintenance window (see its repair for the work), then "
                    f"bring its circuits back with datacenter_power.restore component {unit}",
                )
            )
    return out


def _warnings(entry: DataCenterPowerConfigEntry) -> list[Problem]:
    runtime = entry.runtime_data
    snapshot = runtime.telemetry.data
    decisions = latest_decisions(entry)
    out = []
    if decisions is not None:
        for o in sorted(decisions.overloads, key=lambda o: o.element):
            out.append(
                Problem(
                    OVERLOAD_FORECAST,
                    o.element,
                    f"{o.element}'s load is forecast to reach its continuous limit of "
                    f"{o.limit_a:.0f} A (peak {o.peak_a:.1f} A)",
                    "the policy relieves it (automatic mode; proposed in approval mode); "
                    f"datacenter_power.plan_migration component {o.element} shows a plan",
                )
            )
        for unit, a in sorted(decisions.assessments.items()):
            if not a.alert and a.health < DEGRADED_HEALTH:
                out.append(
                    Problem(
                        DEGRADED,
                        unit,
                        f"{unit}'s health is {a.health:.0f} %",
                        "no failure is predicted yet; check it (its repair says what to look at)",
                    )
                )
    silent = sorted(p for p in runtime.telemetry.identities if not snapshot.available(p))
    if silent:
        out.append(
            Problem(
                NOT_ANSWERING,
                None,
                f"{len(silent)} device{'s' if len(silent) != 1 else ''} did not answer the last "
                f"poll ({circuit_span(silent)})",
                "check the gateway and the devices' network; nothing is moved onto a unit that "
                "does not answer",
            )
        )
    active = runtime.migrations.active
    if active is not None and active.state not in FINAL_STATES:
        out.append(
            Problem(
                MIGRATING,
                None if active.component == "plant" else active.component,
                f"migration {active.migration_id} is moving {circuit_span(active.circuits)} "
                f"(stage {min(active.completed_stages + 1, len(active.stages))} of "
                f"{len(active.stages)})",
                "",
            )
        )
    return out


def plant_status(entry: DataCenterPowerConfigEntry) -> PlantStatus:
    """The plant's status now: every problem, most severe first."""
    telemetry = entry.runtime_data.telemetry
    if not telemetry.last_update_success:
        error = telemetry.last_exception
        return PlantStatus(
            (
                Problem(
                    NO_TELEMETRY,
                    None,
                    f"the last poll of the plant failed ({error or 'no answer'})",
                    "nothing is known about the plant now and every command is refused until a "
                    "poll succeeds: check the gateway and its network",
                ),
            )
        )
    on = load_at_risk(entry)
    problems = [*_failed(entry), *_at_risk(entry, on), *_warnings(entry)]
    order = {state: i for i, state in enumerate(STATES)}
    problems.sort(key=lambda p: order[p.state])  # stable: the order within a state is kept
    return PlantStatus(tuple(problems), on)
