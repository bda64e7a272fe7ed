"""Proposals: the approval path of ``approval`` mode.

The policy proposes a plan (drain a component predicted to fail, relieve a forecast overload,
restore after a repair) instead of running it. Each proposal gets an id derived from what it
does (kind, target and the moves), so the same plan keeps its id from one decision tick to the
next and a changed plan gets a new one. A new proposal fires ``datacenter_power_proposal`` (the
blueprint turns it into an actionable phone notification); ``datacenter_power.approve_proposal``
runs it, ``datacenter_power.dismiss_proposal`` drops it. An approval of a proposal that is no
longer current (superseded, no longer needed, already run, dismissed, circuits moved since) is
refused with the reason, before anything is commanded.

An outcome that leaves the unit at risk (a proposal gone stale, dismissed, or approved and then
stopped part way) makes the policy plan again within a poll, and the remainder is proposed at
once while the risk lasts: a new plan under a new id, or the same plan again after a run that
did not complete. Only a dismissed plan is not offered again unchanged.

One question per unit: a proposal whose plan is the partial choice (``partial_drain``,
``partial_relief``) of a decision the engine asks (``questions.py``, answered or not) is not
announced (no ``datacenter_power_proposal`` event, no activity): the decision's own
notification offers it as a choice, next to the others. It stays current (approvable by its id,
in the dashboard and the repairs), and is announced as usual once no decision offers it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import probatio as vol
from homeassistant.core import (
    Context,
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv

from .activity import async_fire_activity, latest_decisions
from .const import CONF_POLICY_MODE, DEFAULT_POLICY_MODE, DOMAIN, POLICY_APPROVAL
from .engine.plan import Plan
from .engine.policy import Action, Decisions
from .events import EVENT_PROPOSAL, EVENT_PROPOSAL_CLOSED, PROPOSAL
from .executor import FINAL_STATES, MigrationState
from .notices import Notices
from .phone import outcome_fields, proposal_fields, proposal_tag
from .presentation import plan_summary, plan_text
from .recorded import recorded_action
from .runtime import DataCenterPowerConfigEntry, async_plants

SERVICE_APPROVE: Final = "approve_proposal"
SERVICE_DISMISS: Final = "dismiss_proposal"
SERVICE_GET: Final = "get_proposal"
ATTR_PROPOSAL_ID: Final = "proposal_id"
PROPOSAL_SCHEMA: Final = vol.Schema({vol.Required(ATTR_PROPOSAL_ID): cv.string})
STARTING: Final = "already approved: its migration is starting"
"""Why a proposal taken by an approval cannot be dismissed or approved again meanwhile."""


def _refused(key: str, **placeholders: str) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


@dataclass
class ProposalBook:
    """The proposals of one plant: current ones, and why earlier ones are no longer valid."""

    hass: HomeAssistant
    entry: DataCenterPowerConfigEntry
    current: dict[str, Action] = field(default_factory=dict)
    stale: dict[str, str] = field(default_factory=dict)
    """Proposal id -> why it can no longer be approved."""
    closed: set[str] = field(default_factory=set)
    """Proposals approved or dismissed: not offered again (an approved one is, when its
    migration did not complete)."""
    approved: dict[str, str] = field(default_factory=dict)
    """Approved proposal id -> its migration id, until that migration ends."""
    awaiting_outcome: dict[str, str] = field(default_factory=dict)
    """Announced proposals approved: id -> migration id, until its outcome is announced."""
    held: dict[str, str] = field(default_factory=dict)
    """Current proposals not announced: id -> the decision that offers the plan as a choice."""

    @property
    def approval_mode(self) -> bool:
        """Whether the plant runs in approval mode (only then are proposals offered)."""
        mode = self.entry.options.get(CONF_POLICY_MODE, DEFAULT_POLICY_MODE)
        return bool(mode == POLICY_APPROVAL)

    @callback
    def async_start(self) -> None:
        """Follow the decision coordinator's decisions."""
        forecast = self.entry.runtime_data.decisions
        self.entry.async_on_unload(forecast.async_add_listener(self._on_decisions))
        migrations = self.entry.runtime_data.migrations
        self.entry.async_on_unload(migrations.add_listener(self._on_migrations))
        if forecast.data is not None:
            self._on_decisions()

    def first(self) -> tuple[str, Action] | None:
        """The most urgent current proposal."""
        ranked = sorted(self.current.items(), key=lambda kv: (not kv[1].urgent, kv[1].created_s))
        return ranked[0] if ranked else None

    def proposal_for(self, plan: Plan) -> str | None:
        """The id of the current proposal that runs ``plan``, if any."""
        return next((p for p, a in self.current.items() if a.plan is plan), None)

    def describe(self, pid: str, action: Action) -> dict[str, Any]:
        """A proposal in words and numbers (event data, sensor attributes)."""
        topology = self.entry.runtime_data.telemetry.data.topology
        telemetry = self.entry.runtime_data.telemetry
        decisions = latest_decisions(self.entry)
        assessment = (
            None
            if decisions is None or action.target is None
            else decisions.assessments.get(action.target)
        )
        return {
            "entry_id": self.entry.entry_id,
            "proposal_id": pid,
            "kind": action.kind,
            "component": action.target,
            "device_id": None if action.target is None else telemetry.device_id(action.target),
            "reason": action.reason,
            "urgent": action.urgent,
            "summary": plan_summary(action.plan, topology),
            "plan": plan_text(action.plan, topology),
            "circuits": sorted(action.plan.circuits),
            "stages": len(action.plan.steps),
            **proposal_fields(pid, action, topology, assessment),
        }

    @property
    def notices(self) -> Notices:
        """What this plant has announced in this run of Home Assistant."""
        return self.entry.runtime_data.notices

    def _close(self, pid: str, outcome: str, reason: str, action: Action | None) -> None:
        """Proposal ``pid`` can no longer be approved: when it was announced, say so (the
        phone replaces its notification); it may be announced again if proposed again."""
        if not self.notices.release(f"proposal:{pid}"):
            return
        component = None if action is None else action.target
        self.notices.fire(
            EVENT_PROPOSAL_CLOSED,
            {
                "entry_id": self.entry.entry_id,
                "proposal_id": pid,
                "component": component,
                "outcome": outcome,
                "reason": reason,
                "migration_id": None,
                "tag": proposal_tag(pid),
                "title": f"{component or 'Plant'}: proposal {outcome}",
                "message": f"Proposal {pid} can no longer be approved: {reason}. Nothing was "
                "moved by it.",
            },
        )

    @callback
    def _on_migrations(self) -> None:
        """An approved proposal's migration ended: its outcome closes the proposal."""
        records = self.entry.runtime_data.migrations.records
        for pid, migration_id in list(self.awaiting_outcome.items()):
            rec = records.get(migration_id)
            if rec is None or rec.state not in FINAL_STATES:
                continue
            del self.awaiting_outcome[pid]
            fields = outcome_fields(rec)
            self.notices.fire(
                EVENT_PROPOSAL_CLOSED,
                {
                    "entry_id": self.entry.entry_id,
                    "proposal_id": pid,
                    "component": None if rec.component == "plant" else rec.component,
                    "reason": rec.reason,
                    "migration_id": migration_id,
                    "tag": proposal_tag(pid),
                    **fields,
                },
            )

    def _replan(self) -> None:
        """An outcome left the unit at risk: the policy plans again within a poll."""
        self.entry.runtime_data.decisions.decide_soon()

    def _reopen(self) -> None:
        """Approved proposals whose migration ended without completing may be proposed again
        (the same plan, when nothing moved)."""
        records = self.entry.runtime_data.migrations.records
        for pid, migration_id in list(self.approved.items()):
            rec = records.get(migration_id)
            if rec is not None and rec.state not in FINAL_STATES:
                continue
            del self.approved[pid]
            if rec is not None and rec.state is not MigrationState.COMPLETED:
                self.closed.discard(pid)
                self.stale.pop(pid, None)

    @callback
    def _on_decisions(self) -> None:
        changes = self.entry.runtime_data.decisions.changes
        if changes is None:
            return
        decisions = changes.decisions
        self._reopen()
        busy = self.entry.runtime_data.migrations.busy_circuits()
        fresh = {
            pid: a
            for pid, a in changes.proposals.items()
            if a.kind != "rebalance"  # a rebalance runs in every mode
            and a.plan.moves
            and not a.plan.circuits & busy  # a running migration moves them: after it ends
        }
        assignment = self.entry.runtime_data.telemetry.data.assignment
        for pid, action in self.current.items():
            if pid in fresh:
                continue
            replaced = next((p for p, a in fresh.items() if a.target == action.target), None)
            moved = next(
                (m for m in action.plan.moves if assignment.get(m.circuit) != m.from_mpdu), None
            )
            if moved is not None:  # the concrete reason first (a hand move, another migration)
                why = f"{moved.circuit} is no longer on {moved.from_mpdu}"
                if replaced is not None:
                    why += f"; superseded by proposal {replaced}"
            elif replaced is not None:
                why = f"superseded by proposal {replaced} (the plant or its forecast changed)"
            elif action.target is not None and action.target not in decisions.alerts:
                why = f"no longer needed: {action.target} is no longer at risk"
            else:
                why = "no longer proposed by the policy (the plant or its forecast changed)"
            self.stale.setdefault(pid, why)
            self._close(pid, "stale", self.stale[pid], action)
        for key in self.notices.claimed_with("proposal:"):  # announced before a reload
            old = key.removeprefix("proposal:")
            if old not in fresh and old not in self.current:
                self._close(old, "stale", "no longer proposed by the policy", None)
        for pid in fresh:
            if pid not in self.closed:
                self.stale.pop(pid, None)  # proposed again (the same plan): current once more
        held, self.held = self.held, {}
        for pid, action in fresh.items():
            new = pid not in self.current or pid in held
            if not new or pid in self.stale or not self.approval_mode:
                continue
            asked = offered_by(action, decisions)
            if asked is not None:  # one question: the decision's notification offers it
                self.held[pid] = asked
                continue
            data = self.describe(pid, action)
            if not self.notices.claim(f"proposal:{pid}"):
                continue  # announced already in this run (before a reload)
            self.notices.fire(EVENT_PROPOSAL, data, key=f"proposal:{pid}")
            async_fire_activity(
                self.hass,
                self.entry,
                action.target,
                PROPOSAL,
                f"proposes {action.kind} ({data['summary']}): {action.reason}; waiting for "
                f"approval (proposal {pid})",
                related=action.plan.circuits,
                extra={"proposal_id": pid},
            )
        self.current = {p: a for p, a in fresh.items() if p not in self.stale}

    def _check(self, pid: str) -> Action:
        """The current proposal ``pid``, or a refusal that says why it cannot run."""
        if not self.approval_mode:
            raise _refused("proposal_not_approval_mode", proposal_id=pid)
        if pid in self.stale:
            raise _refused("proposal_stale", proposal_id=pid, reason=self.stale[pid])
        action = self.current.get(pid)
        if action is None:
            raise _refused("proposal_unknown", proposal_id=pid)
        assignment = self.entry.runtime_data.telemetry.data.assignment
        for move in action.plan.moves:
            if assignment.get(move.circuit) != move.from_mpdu:
                why = f"{move.circuit} is no longer on {move.from_mpdu}"
                self.stale[pid] = why
                del self.current[pid]
                self._close(pid, "stale", why, action)
                self._replan()  # the remainder is proposed within a poll
                raise _refused("proposal_stale", proposal_id=pid, reason=why)
        busy = action.plan.circuits & self.entry.runtime_data.migrations.busy_circuits()
        if busy:
            raise _refused(
                "proposal_stale",
                proposal_id=pid,
                reason=f"a running migration moves {', '.join(sorted(busy))}",
            )
        return action

    async def async_approve(self, pid: str, context: Context | None = None) -> str:
        """Run proposal ``pid`` as a staged migration; returns the migration id.

        The proposal is taken at once, before anything is awaited: a dismissal (or a second
        approval) that comes while the migration starts is refused with the reason. When the
        migration cannot start, the refusal carries the real reason (translated) and the
        proposal is current again."""
        action = self._check(pid)
        self.current.pop(pid, None)
        self.closed.add(pid)
        self.stale[pid] = STARTING
        runtime = self.entry.runtime_data
        # The decision follower's own path for the engine's actions: the policy is told the
        # action started and, when the migration ends, how it went.
        try:
            migration_id = await runtime.follower.async_run_approved(action)
        except HomeAssistantError as err:
            if self.stale.get(pid) == STARTING:  # not taken: it may be approved or dismissed again
                del self.stale[pid]
                self.closed.discard(pid)
                self.current[pid] = action
            placeholders = {"proposal_id": pid, "reason": _reason(err)}
            if isinstance(err, ServiceValidationError):
                raise _refused("proposal_not_started", **placeholders) from err
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="proposal_not_started",
                translation_placeholders=placeholders,
            ) from err
        self.approved[pid] = migration_id
        self.stale[pid] = f"already approved: it runs as migration {migration_id}"
        if self.notices.release(f"proposal:{pid}"):
            self.awaiting_outcome[pid] = migration_id
            self._on_migrations()  # (it may have ended already)
        return migration_id

    def dismiss(self, pid: str) -> None:
        """Drop proposal ``pid`` (it is not offered again while the plan stays the same); a
        proposal already approved, dismissed or no longer current is refused with the reason."""
        if pid in self.stale and pid not in self.current:
            raise _refused("proposal_not_dismissed", proposal_id=pid, reason=self.stale[pid])
        if pid not in self.current:
            raise _refused("proposal_unknown", proposal_id=pid)
        action = self.current.pop(pid)
        self.closed.add(pid)
        self.stale[pid] = "dismissed"
        self._close(pid, "dismissed", "dismissed", action)
        self._replan()


def offered_by(action: Action, decisions: Decisions) -> str | None:
    """The id of a decision the engine asks whose partial choice runs ``action``'s moves."""
    moves = {(m.circuit, m.from_mpdu, m.to_mpdu) for m in action.plan.moves}
    for q in decisions.decisions_needed:
        for c in q.choices:
            if (
                c.key in ("partial_drain", "partial_relief")
                and c.plan is not None
                and {(m.circuit, m.from_mpdu, m.to_mpdu) for m in c.plan.moves} == moves
            ):
                return q.id
    return None


def _reason(err: HomeAssistantError) -> str:
    """An error's message without the final full stop (it is placed inside a sentence)."""
    return str(err).strip().rstrip(".")


def _find(hass: HomeAssistant, pid: str) -> ProposalBook:
    for entry in async_plants(hass):
        book = entry.runtime_data.proposals
        if pid in book.current or pid in book.stale:
            return book
    raise _refused("proposal_unknown", proposal_id=pid)


@recorded_action()
async def _approve(call: ServiceCall) -> ServiceResponse:
    pid = call.data[ATTR_PROPOSAL_ID]
    book = _find(call.hass, pid)
    migration_id = await book.async_approve(pid, call.context)
    return {"proposal_id": pid, "migration_id": migration_id}


@recorded_action()
async def _dismiss(call: ServiceCall) -> ServiceResponse:
    pid = call.data[ATTR_PROPOSAL_ID]
    _find(call.hass, pid).dismiss(pid)
    return {"proposal_id": pid, "dismissed": True}


async def _get(call: ServiceCall) -> ServiceResponse:
    """Whether a proposal can still be approved, and if not why (never raises: automations
    use it to tell a person why an approval would be refused)."""
    pid = call.data[ATTR_PROPOSAL_ID]
    try:
        book = _find(call.hass, pid)
        action = book._check(pid)
    except ServiceValidationError as err:
        reason = (err.translation_placeholders or {}).get("reason") or str(err)
        return {"proposal_id": pid, "current": False, "reason": reason}
    return {"current": True, "reason": None, **book.describe(pid, action)}


def async_setup_proposal_services(hass: HomeAssistant) -> None:
    """Register ``get_proposal`` (read-only), ``approve_proposal`` and ``dismiss_proposal``
    (admin-only)."""
    hass.services.async_register(
        DOMAIN, SERVICE_GET, _get, schema=PROPOSAL_SCHEMA, supports_response=SupportsResponse.ONLY
    )
    for name, handler in ((SERVICE_APPROVE, _approve), (SERVICE_DISMISS, _dismiss)):
        hass.services.async_register(  # admin-only: @recorded_action checks
            DOMAIN,
            name,
            handler,
            PROPOSAL_SCHEMA,
            supports_response=SupportsResponse.OPTIONAL,
        )
