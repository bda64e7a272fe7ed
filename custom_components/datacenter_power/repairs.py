"""Repairs: what a facility engineer must look at, with the evidence and what to do.

One repair issue per condition, kept in step with the plant (created when the condition appears,
updated while it lasts, deleted when it goes, created again if it returns):

* ``failure_predicted`` - a component the engine predicts to fail: severity (critical within a
  day), the contributing signals in words, time to failure, a recommended action; fixable when a
  safe migration exists (the fix flow shows the staged plan and runs it on confirmation);
* ``degraded`` - health clearly below normal without a failure prediction yet (warning);
* ``migration_held`` - a migration a restart interrupted and held (fixable: finish the drain);
* ``migration_failed`` - the latest migration of a component did not verify and was rolled back
  or aborted (fixable: plan it again and run it);
* ``inhibit_on`` - an ATS's auto-transfer inhibit is on: the circuits below it have no backup
  source while it is;
* ``unit_failed`` - an ATS or MPDU failed without warning (critical, from the poll that shows
  it: ``faults.py``): why, its circuits, what to do;
* ``over_limit`` - an ATS or MPDU carries more than its continuous limit (critical, from the poll
  that shows it): by how much, and what can be moved, or that nothing can and why;
* ``decision_needed`` - no plan is safe through a drain's deadline, or no relief keeps an
  element forecast over its limit within it (``questions.py``): critical,
  every choice in numbers; its fix flow offers them as a menu and runs the chosen one (not
  fixable in monitor mode, which only reports).

Issue ids carry the entry id so two plants never share one; every issue's ``data`` names the
entry and the component so the fix flow finds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import probatio as vol
from homeassistant.components.repairs import RepairsFlow, RepairsFlowResult
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import Context, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir

from .activity import latest_decisions
from .const import (
    CONF_MAX_STEP_AMPS,
    CONF_STEP_INTERVAL,
    DEFAULT_MAX_STEP_AMPS,
    DEFAULT_STEP_INTERVAL,
    DOMAIN,
    LOGGER,
    POLICY_MONITOR,
)
from .device.models import AtsReading
from .engine.plan import Infeasible, Plan
from .events import (
    ISSUE_DECISION_NEEDED,
    ISSUE_DEGRADED,
    ISSUE_FAILURE_PREDICTED,
    ISSUE_INHIBIT_ON,
    ISSUE_MIGRATION_FAILED,
    ISSUE_MIGRATION_HELD,
    ISSUE_OVER_LIMIT,
    ISSUE_UNIT_FAILED,
    held_issue_id,
)
from .executor import FINAL_STATES, MigrationRecord, MigrationState
from .migration import MigrationRequest, plan_for
from .presentation import (
    infeasible_text,
    plan_text,
    recommendation,
    severity_is_critical,
    signals_text,
    ttf_text,
)
from .questions import CHOICE_STEPS, choice_label, choice_step
from .runtime import DataCenterPowerConfigEntry

DEGRADED_HEALTH: Final = 80.0
"""Health below this (without a failure prediction) is a warning."""
HELD_REASON: Final = "interrupted by a restart"


@dataclass(frozen=True, slots=True)
class Issue:
    """A repair issue as it should be now."""

    issue_id: str
    key: str
    component: str
    severity: ir.IssueSeverity
    fixable: bool
    placeholders: dict[str, str]
    extra: dict[str, str]


def _options(entry: DataCenterPowerConfigEntry) -> tuple[float, float]:
    options = entry.options
    return (
        float(options.get(CONF_MAX_STEP_AMPS, DEFAULT_MAX_STEP_AMPS)),
        float(options.get(CONF_STEP_INTERVAL, DEFAULT_STEP_INTERVAL)),
    )


def drain_plan(entry: DataCenterPowerConfigEntry, component: str) -> tuple[Plan | None, str]:
    """The safe plan that drains ``component``: the policy's proposal (planned against the load
    forecast) when there is one, else one planned as a person's request is (``plan_for``: the
    same forecast basis, present currents plus a margin before any forecast). Returns
    ``(plan, text)``; ``plan`` is None (and ``text`` says why) when there is none."""
    runtime = entry.runtime_data
    decisions = latest_decisions(entry)
    topology = runtime.telemetry.data.topology
    candidates = list(runtime.proposals.current.values())
    if decisions is not None:
        candidates += [a for a in decisions.proposals if a.kind != "rebalance"]
    assignment = runtime.telemetry.data.assignment
    for action in candidates:
        if (
            action.target == component
            and action.plan.moves
            and all(assignment.get(m.circuit) == m.from_mpdu for m in action.plan.moves)
        ):
            return action.plan, plan_text(action.plan, topology)
    if not runtime.telemetry.data.topology.circuits_through(
        component, runtime.telemetry.data.assignment
    ):
        return None, f"No circuit draws through {component} any more: it is drained."
    max_step, interval = _options(entry)
    result = plan_for(
        runtime.telemetry.data,
        MigrationRequest(component, max_step_amps=max_step, step_interval_s=interval),
        runtime.decisions.data,
    )
    if isinstance(result, Infeasible):
        return None, infeasible_text(result)
    if not result.moves:
        return None, "Nothing needs to move."
    return result, plan_text(result, topology)


class RepairKeeper:
    """Keeps one plant's repair issues in step with its decisions, migrations and telemetry."""

    def __init__(self, hass: HomeAssistant, entry: DataCenterPowerConfigEntry) -> None:
        """Create the keeper; :meth:`async_start` follows the plant."""
        self.hass = hass
        self.entry = entry

    @callback
    def async_start(self) -> None:
        """Follow the plant until the entry unloads."""
        runtime = self.entry.runtime_data
        self.entry.async_on_unload(runtime.decisions.async_add_listener(self.async_update))
        self.entry.async_on_unload(runtime.telemetry.async_add_listener(self.async_update))
        self.entry.async_on_unload(runtime.migrations.add_listener(self.async_update))
        self.async_update()

    def _id(self, key: str, component: str) -> str:
        return f"{key}_{component}_{self.entry.entry_id}"

    @callback
    def async_update(self) -> None:
        """Create, update and delete issues so the registry shows the conditions of now."""
        wanted: dict[str, Issue] = {}
        for issue in (
            *self._faults(),
            *self._predictions(),
            *self._migrations(),
            *self._inhibits(),
            *self._questions(),
        ):
            wanted[issue.issue_id] = issue
        registry = ir.async_get(self.hass)
        for (domain, issue_id), entry in list(registry.issues.items()):
            if domain != DOMAIN or issue_id in wanted:
                continue
            if (entry.data or {}).get("entry_id") == self.entry.entry_id:
                LOGGER.debug("Condition gone, repair issue %s removed", issue_id)
                ir.async_delete_issue(self.hass, DOMAIN, issue_id)
        for issue in wanted.values():
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                issue.issue_id,
                is_fixable=issue.fixable,
                is_persistent=False,
                severity=issue.severity,
                translation_key=issue.key,
                translation_placeholders=issue.placeholders,
                data={
                    "entry_id": self.entry.entry_id,
                    "component": issue.component,
                    "kind": issue.key,
                    **issue.extra,
                },
            )

    def _faults(self) -> list[Issue]:
        """Failed units and elements over their limit, as of the latest refresh."""
        faults = self.entry.runtime_data.faults.current()
        snapshot = self.entry.runtime_data.telemetry.data
        topology = snapshot.topology
        out: list[Issue] = []
        for element, f in sorted(faults.failed.items()):
            normal = sorted(
                c
                for c, node in topology.circuits.items()
                if any(topology.depends_on(p, element) for p in node.paths[:1])
            )
            dark = [
                c for c in normal if snapshot.available(c) and snapshot.assignment.get(c) is None
            ]
            moved = [c for c in normal if c not in dark and snapshot.available(c)]
            out.append(
                Issue(
                    self._id(ISSUE_UNIT_FAILED, element),
                    ISSUE_UNIT_FAILED,
                    element,
                    ir.IssueSeverity.CRITICAL,
                    False,
                    {
                        "component": element,
                        "why": f.why,
                        "moved": ", ".join(moved) or "none",
                        "dark": ", ".join(dark) or "none",
                        "advice": faults.advice.get(element, ""),
                    },
                    {},
                )
            )
        for element, o in sorted(faults.over.items()):
            out.append(
                Issue(
                    self._id(ISSUE_OVER_LIMIT, element),
                    ISSUE_OVER_LIMIT,
                    element,
                    ir.IssueSeverity.CRITICAL,
                    False,
                    {
                        "component": element,
                        "load": f"{o.load_a:.1f}",
                        "limit": f"{o.limit_a:.1f}",
                        "excess": f"{o.excess_a:.1f}",
                        "pct": f"{o.pct:.0f}",
                        "rating": f"{o.rating_a:.0f}",
                        "advice": faults.advice.get(element, ""),
                    },
                    {},
                )
            )
        return out

    def _predictions(self) -> list[Issue]:
        runtime = self.entry.runtime_data
        decisions = latest_decisions(self.entry)
        if decisions is None:
            return []
        topology = runtime.telemetry.data.topology
        out: list[Issue] = []
        for component, a in sorted(decisions.assessments.items()):
            kind = topology.kind(component) or "ats"
            base = {
                "component": component,
                "health": f"{a.health:.0f}",
                "signals": signals_text(a),
                "time_to_failure": ttf_text(a),
                "recommendation": recommendation(kind, a),
            }
            if a.alert:
                plan, text = drain_plan(self.entry, component)
                out.append(
                    Issue(
                        self._id(ISSUE_FAILURE_PREDICTED, component),
                        ISSUE_FAILURE_PREDICTED,
                        component,
                        ir.IssueSeverity.CRITICAL
                        if severity_is_critical(a)
                        else ir.IssueSeverity.ERROR,
                        plan is not None,
                        {
                            **base,
                            "probability": f"{100 * a.failure_probability:.0f}",
                            "plan": text,
                        },
                        {},
                    )
                )
            elif a.health < DEGRADED_HEALTH:
                out.append(
                    Issue(
                        self._id(ISSUE_DEGRADED, component),
                        ISSUE_DEGRADED,
                        component,
                        ir.IssueSeverity.WARNING,
                        False,
                        base,
                        {},
                    )
                )
        return out

    def _migrations(self) -> list[Issue]:
        records = list(self.entry.runtime_data.migrations.records.values())
        held = {r.migration_id for r in self.entry.runtime_data.migrations.held()}
        out: list[Issue] = []
        latest: dict[str, MigrationRecord] = {}
        for rec in records:
            latest[rec.component] = rec
        for component, rec in latest.items():
            if rec.state not in FINAL_STATES or rec.state is MigrationState.COMPLETED:
                continue
            placeholders = {
                "migration_id": rec.migration_id,
                "component": component,
                "done": str(rec.completed_stages),
                "stages": str(len(rec.stages)),
                "reason": rec.reason or rec.state.value,
            }
            if rec.migration_id not in held and (rec.reason or "").startswith(HELD_REASON):
                continue  # held, then a person decided (cancelled, superseded): nothing to repair
            if rec.migration_id in held:
                # same id as the one the migration manager raises at setup
                out.append(
                    Issue(
                        held_issue_id(rec.migration_id),
                        ISSUE_MIGRATION_HELD,
                        component,
                        ir.IssueSeverity.WARNING,
                        component != "plant",
                        {k: v for k, v in placeholders.items() if k != "reason"},
                        {"migration_id": rec.migration_id},
                    )
                )
            elif rec.reason != "cancelled":
                out.append(
                    Issue(
                        self._id(ISSUE_MIGRATION_FAILED, component),
                        ISSUE_MIGRATION_FAILED,
                        component,
                        ir.IssueSeverity.ERROR,
                        component != "plant",
                        placeholders,
                        {"migration_id": rec.migration_id},
                    )
                )
        return out

    def _questions(self) -> list[Issue]:
        """Open decisions a person must take (no plan is safe), one per unit."""
        book = self.entry.runtime_data.questions
        out: list[Issue] = []
        for did, q in sorted(book.current.items(), key=lambda kv: kv[1].element):
            data = book.describe(q)
            offered = {choice_step(c.key): c for c in q.choices}
            shed = offered.get("shed")
            out.append(
                Issue(
                    self._id(ISSUE_DECISION_NEEDED, q.element),
                    ISSUE_DECISION_NEEDED,
                    q.element,
                    ir.IssueSeverity.CRITICAL,
                    book.mode != POLICY_MONITOR,
                    {
                        "component": q.element,
                        "decision_id": did,
                        "deadline": str(data["deadline"]),
                        "situation": str(data["situation"]),
                        "reason": q.reason,
                        "choices": "\n".join(f"- {c.summary}" for c in q.choices),
                        "rule": str(data["rule"]),
                        **{
                            step: choice_label(c, q.kind)
                            if (c := offered.get(step))
                            else "not offered"
                            for step in CHOICE_STEPS
                        },
                        "shed_circuit": shed.shed or "" if shed is not None else "",
                    },
                    {"decision_id": did},
                )
            )
        return out

    def _inhibits(self) -> list[Issue]:
        snapshot = self.entry.runtime_data.telemetry.data
        topology = snapshot.topology
        out: list[Issue] = []
        for pid, reading in sorted(snapshot.readings.items()):
            if not isinstance(reading, AtsReading) or not reading.inhibit:
                continue
            circuits = (
                topology.circuits_through(pid, snapshot.assignment) if pid in topology.ats else []
            )
            amps = sum(snapshot.circuit_a.get(c, 0.0) for c in circuits)
            critical = [c for c in circuits if topology.circuits[c].critical]
            out.append(
                Issue(
                    self._id(ISSUE_INHIBIT_ON, pid),
                    ISSUE_INHIBIT_ON,
                    pid,
                    ir.IssueSeverity.WARNING,
                    False,
                    {
                        "component": pid,
                        "circuits": ", ".join(circuits) or "none",
                        "critical": ", ".join(critical) or "none",
                        "amps": f"{amps:.1f}",
                        "sources": ", ".join(reading.sources),
                    },
                    {},
                )
            )
        return out


def _loaded(hass: HomeAssistant, entry_id: str) -> DataCenterPowerConfigEntry | None:
    entry = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN or entry.state is not ConfigEntryState.LOADED:
        return None
    return entry


class MigrationRepairFlow(RepairsFlow):
    """Shows the staged plan that takes the load off a component, and runs it when confirmed."""

    def __init__(self, entry_id: str, component: str, issue_id: str | None = None) -> None:
        """A flow for one component of one plant (opened from the issue ``issue_id``)."""
        self._entry_id = entry_id
        self._component = component
        self._from_issue = issue_id

    def _evidence(self) -> dict[str, str]:
        """The issue's own words (signals, time to failure, recommendation), so the form that
        asks for confirmation says why as well as what."""
        if self._from_issue is None:
            return {}
        issue = ir.async_get(self.hass).async_get_issue(DOMAIN, self._from_issue)
        return dict(issue.translation_placeholders or {}) if issue is not None else {}

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> RepairsFlowResult:
        """Go straight to the confirmation (the plan)."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> RepairsFlowResult:
        """Show the plan; on confirmation start it as a staged, verified migration."""
        entry = _loaded(self.hass, self._entry_id)
        if entry is None:
            return self.async_abort(reason="not_loaded")
        plan, text = drain_plan(entry, self._component)
        if plan is None:
            return self.async_abort(reason="no_plan", description_placeholders={"why": text})
        if user_input is None:
            return self.async_show_form(
                step_id="confirm",
                data_schema=vol.Schema({}),
                description_placeholders={
                    **self._evidence(),
                    "component": self._component,
                    "plan": text,
                },
            )
        max_step, interval = _options(entry)
        request_of = MigrationRequest(
            self._component, max_step_amps=max_step, step_interval_s=interval
        )
        book = entry.runtime_data.proposals
        proposal = book.proposal_for(plan) if book.approval_mode else None
        recorder = entry.runtime_data.activity
        request = (Context(), "confirmed in its repair (Settings > Repairs)")
        recorder.pending.append(request)
        try:
            if proposal is not None:
                # the policy's own proposal: approving it keeps the policy informed
                migration_id = await book.async_approve(proposal)
            else:
                migration_id = await entry.runtime_data.migrations.async_start(plan, request_of)
        except HomeAssistantError as err:
            return self.async_abort(
                reason="not_started", description_placeholders={"why": str(err)}
            )
        finally:
            recorder.pending.remove(request)
        recorder.requested[migration_id] = request
        return self.async_create_entry(data={"migration_id": migration_id})


class DecisionRepairFlow(RepairsFlow):
    """Offers the choices of a decision a person must take (a menu, each with its numbers) and
    runs the chosen one (``questions.py``: a staged, verified migration; nothing for keep_load)."""

    def __init__(self, entry_id: str, decision_id: str, issue_id: str) -> None:
        """A flow for one open decision of one plant."""
        self._entry_id = entry_id
        self._decision_id = decision_id
        self._issue_id = issue_id

    def _placeholders(self) -> dict[str, str]:
        issue = ir.async_get(self.hass).async_get_issue(DOMAIN, self._issue_id)
        return dict(issue.translation_placeholders or {}) if issue is not None else {}

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> RepairsFlowResult:
        """The menu of the choices offered."""
        entry = _loaded(self.hass, self._entry_id)
        if entry is None:
            return self.async_abort(reason="not_loaded")
        q = entry.runtime_data.questions.current.get(self._decision_id)
        if q is None:
            return self.async_abort(reason="decision_gone")
        return self.async_show_menu(
            step_id="init",
            menu_options=[choice_step(c.key) for c in q.choices],
            description_placeholders=self._placeholders(),
        )

    async def _async_answer(self, step: str) -> RepairsFlowResult:
        entry = _loaded(self.hass, self._entry_id)
        if entry is None:
            return self.async_abort(reason="not_loaded")
        book = entry.runtime_data.questions
        q = book.current.get(self._decision_id)
        choice = (
            None if q is None else next((c for c in q.choices if choice_step(c.key) == step), None)
        )
        if choice is None:
            return self.async_abort(reason="decision_gone")
        recorder = entry.runtime_data.activity
        request = (Context(), "chosen in its repair (Settings > Repairs)")
        recorder.pending.append(request)
        try:
            migration_id = await book.async_answer(
                self._decision_id, choice.key, request[0], by="a person (Settings > Repairs)"
            )
        except HomeAssistantError as err:
            return self.async_abort(
                reason="not_started", description_placeholders={"why": str(err)}
            )
        finally:
            recorder.pending.remove(request)
        if migration_id is not None:
            recorder.requested[migration_id] = request
        return self.async_create_entry(data={"migration_id": migration_id or ""})

    async def async_step_drain_now(
        self, user_input: dict[str, Any] | None = None
    ) -> RepairsFlowResult:
        """Drain now, above a limit: only ever on this explicit choice."""
        return await self._async_answer("drain_now")

    async def async_step_keep_load(
        self, user_input: dict[str, Any] | None = None
    ) -> RepairsFlowResult:
        """Keep the load: nothing moves."""
        return await self._async_answer("keep_load")

    async def async_step_partial_drain(
        self, user_input: dict[str, Any] | None = None
    ) -> RepairsFlowResult:
        """The partial drain that fits within every limit."""
        return await self._async_answer("partial_drain")

    async def async_step_partial_relief(
        self, user_input: dict[str, Any] | None = None
    ) -> RepairsFlowResult:
        """The partial relief: what moves off the element within every other limit."""
        return await self._async_answer("partial_relief")

    async def async_step_shed(self, user_input: dict[str, Any] | None = None) -> RepairsFlowResult:
        """Switch the named non-critical circuit off, then the complete drain."""
        return await self._async_answer("shed")


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """The fix flow of one of this integration's fixable issues."""
    data = data or {}
    if data.get("kind") == ISSUE_DECISION_NEEDED:
        return DecisionRepairFlow(str(data.get("entry_id")), str(data.get("decision_id")), issue_id)
    return MigrationRepairFlow(str(data.get("entry_id")), str(data.get("component")), issue_id)


@callback
def async_remove_repairs(hass: HomeAssistant, entry_id: str) -> None:
    """Delete every issue of a removed plant."""
    registry = ir.async_get(hass)
    for (domain, issue_id), issue in list(registry.issues.items()):
        if domain == DOMAIN and (issue.data or {}).get("entry_id") == entry_id:
            ir.async_delete_issue(hass, DOMAIN, issue_id)


__all__ = [
    "DecisionRepairFlow",
    "MigrationRepairFlow",
    "RepairKeeper",
    "async_create_fix_flow",
    "async_remove_repairs",
    "drain_plan",
]
