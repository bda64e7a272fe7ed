"""Decisions a person must take: the engine found no safe plan (``engine/asking.py``).

When no plan keeps every receiver within its continuous limit through a drain's deadline, the
engine puts a question (``Decisions.decisions_needed``): drain now above a limit, keep the
load, the partial drain that fits, or shed a non-critical circuit. When an element is forecast
above its continuous limit and no relief fits (``engine/relief_asking.py``), it asks the same
way about that element: keep the load, the partial relief, or shed a non-critical circuit on
it. :class:`QuestionBook` (one per plant, ``entry.runtime_data.questions``) turns each new
question into

* ``datacenter_power_decision_needed`` (once per question and run: ``notices.py``) with the
  choices in numbers and the phone's fields, and a ``decision_needed`` activity (the device
  trigger);
* the critical repair *Decision needed at <unit>* (``repairs.py``), whose fix flow offers the
  choices;
* ``datacenter_power.answer_decision`` (decision id + choice), refused with the reason when the
  question is no longer asked, the choice is not offered, or the plant is in monitor mode.

An answer runs the chosen plan as the engine's action through the decision follower (interlock,
staging, verification, as an approved proposal: a ``migrate`` of the unit, or a ``relieve``);
``shed:<circuit>`` first switches that non-critical circuit off through the command path (whose
interlock refuses a critical one), then runs its plan when it moves anything. ``keep_load``
moves nothing. An answered question is closed and not asked again while it stays
the same.

No answer: in ``automatic`` mode the question's fallback is taken once the answer deadline (the
``decision_timeout_min`` option, counted from when the question was first seen) has passed:
the partial drain when one is offered (the engine already runs it: nothing else moves); of a
relief question, the partial relief when the engine already runs it within every other limit;
else the load stays. Never ``drain_now`` or a shed: no automated action takes an element above its
continuous limit or switches a circuit off. ``approval`` mode waits for a person; ``monitor``
mode only reports.

The first-seen times and the closed questions are stored (``helpers.storage``), so a restart
keeps the answer deadline and does not ask an answered question again; an answer to a question
the engine no longer asks after the restart is refused as stale.
"""

from __future__ import annotations

import time
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
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .activity import async_fire_activity
from .const import (
    CONF_DECISION_TIMEOUT,
    CONF_POLICY_MODE,
    CONF_STEP_INTERVAL,
    DEFAULT_DECISION_TIMEOUT,
    DEFAULT_POLICY_MODE,
    DEFAULT_STEP_INTERVAL,
    DOMAIN,
    LOGGER,
    POLICY_AUTOMATIC,
    POLICY_MONITOR,
)
from .device.models import SbmReading
from .engine.decisions import Action, DecisionChoice, DecisionNeeded
from .engine.interlock import check_sbm_output
from .events import DECISION_ANSWERED, DECISION_NEEDED, EVENT_DECISION_NEEDED
from .notices import Notices
from .phone import notification_data
from .recorded import recorded_action
from .runtime import DataCenterPowerConfigEntry, async_plants

__all__ = [
    "CHOICE_LABELS",
    "CHOICE_STEPS",
    "QuestionBook",
    "async_setup_question_services",
    "choice_label",
    "choice_step",
]

SERVICE_ANSWER: Final = "answer_decision"
ATTR_DECISION_ID: Final = "decision_id"
ATTR_CHOICE: Final = "choice"
ANSWER_SCHEMA: Final = vol.Schema(
    {vol.Required(ATTR_DECISION_ID): cv.string, vol.Required(ATTR_CHOICE): cv.string}
)
CHOICE_LABELS: Final = {
    "drain_now": "Drain now",
    "keep_load": "Keep the load",
    "partial_drain": "Partial drain",
    "partial_relief": "Partial relief",
    "shed": "Shed",
}
"""The short titles of the choices (phone buttons); the repair's are translated."""
CHOICE_STEPS: Final = ("drain_now", "keep_load", "partial_drain", "partial_relief", "shed")
"""The fix flow's menu steps (a placeholder each in the repair)."""
STORE_VERSION: Final = 1
MAX_KEPT: Final = 200
"""Closed questions and first-seen times remembered (the oldest forgotten first)."""


def choice_step(key: str) -> str:
    """The fix flow's step (and the phone button's word) of a choice: ``shed:<c>`` -> shed."""
    return key.split(":", 1)[0]


def _over_words(c: DecisionChoice) -> str:
    x = c.excursions[0]
    return f"{x.element} {x.over_pct:.0f} % over its limit for {x.over_s / 3600:.1f} h"


def choice_label(c: DecisionChoice, kind: str = "drain") -> str:
    """A choice of a ``kind`` question in a few words with its key number (the fix flow's menu
    entry)."""
    if c.key == "drain_now":
        worst = max(c.excursions, key=lambda x: x.over_pct, default=None)
        refused = " (refused now)" if c.over_now else ""
        if worst is None:
            return "Drain now: within the limits, without the plan margin" + refused
        return (
            f"Drain now: {worst.element} up to {worst.over_pct:.0f} % over its limit for "
            f"{worst.over_s / 3600:.1f} h{refused}"
        )
    if c.key == "keep_load" and c.excursions:  # a relief question: the element stays over
        return f"Keep the load: {_over_words(c)}"
    if c.key == "partial_relief":
        n = len(c.moved)
        moves = f"{n} circuit{'s' if n != 1 else ''} ({c.moved_a:.1f} A) move"
        return f"Partial relief: {moves}; " + (
            f"{_over_words(c)} still" if c.excursions else "within every limit"
        )
    if c.key == "keep_load":
        n = len(c.left)
        return f"Keep the load: {c.left_a:.1f} A on {n} circuit{'s' if n != 1 else ''} at risk"
    if c.shed is not None and kind == "relief":
        return f"Shed {c.shed} ({c.shed_a:.1f} A), then within every limit"
    if c.shed is not None:
        return f"Shed {c.shed} ({c.shed_a:.1f} A), then drain everything"
    return f"Partial drain: {len(c.moved)} move, {len(c.left)} left ({c.left_a:.1f} A)"


def _refused(key: str, **placeholders: str) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


def _when(ts: float | None) -> str:
    if ts is None:
        return "unknown"
    return dt_util.as_local(dt_util.utc_from_timestamp(ts)).strftime("%H:%M")


@dataclass
class QuestionBook:
    """One plant's questions to a person: open, answered, and why earlier ones are closed."""

    hass: HomeAssistant
    entry: DataCenterPowerConfigEntry
    current: dict[str, DecisionNeeded] = field(default_factory=dict)
    first_seen: dict[str, float] = field(default_factory=dict)
    """Question id -> when it was first seen (epoch s; stored)."""
    closed: dict[str, str] = field(default_factory=dict)
    """Answered question id -> by whom and with what (stored: not asked again)."""
    gone: dict[str, str] = field(default_factory=dict)
    """Question id -> why it is no longer asked (it is current again if the engine asks it
    again)."""
    _store: Store[dict[str, Any]] | None = None
    _answering: set[str] = field(default_factory=set)

    @property
    def mode(self) -> str:
        """The plant's policy mode."""
        return str(self.entry.options.get(CONF_POLICY_MODE, DEFAULT_POLICY_MODE))

    @property
    def timeout_s(self) -> float:
        """The answer deadline (automatic mode), from the option."""
        return 60.0 * float(self.entry.options.get(CONF_DECISION_TIMEOUT, DEFAULT_DECISION_TIMEOUT))

    @property
    def notices(self) -> Notices:
        """What this plant has announced in this run."""
        return self.entry.runtime_data.notices

    async def async_load(self) -> None:
        """Read what earlier runs stored (first-seen times, closed questions)."""
        self._store = Store(self.hass, STORE_VERSION, f"{DOMAIN}.{self.entry.entry_id}.questions")
        data = await self._store.async_load() or {}
        self.first_seen = {str(k): float(v) for k, v in dict(data.get("first_seen", {})).items()}
        self.closed = {str(k): str(v) for k, v in dict(data.get("closed", {})).items()}

    def _save(self) -> None:
        # At once (rare writes): an answer must survive a restart that follows it.
        for kept in (self.closed, self.first_seen, self.gone):
            while len(kept) > MAX_KEPT:
                del kept[next(iter(kept))]
        if self._store is not None:
            data = {"first_seen": dict(self.first_seen), "closed": dict(self.closed)}
            # (Home Assistant's task, not the entry's: an unload must not cancel the write.)
            self.hass.async_create_background_task(
                self._store.async_save(data), f"{DOMAIN} save decisions"
            )

    @callback
    def async_start(self) -> None:
        """Follow the decision coordinator's decisions."""
        decider = self.entry.runtime_data.decisions
        self.entry.async_on_unload(decider.async_add_listener(self._on_decisions))
        if decider.data is not None:
            self._on_decisions()

    def answer_by(self, did: str) -> float | None:
        """When the fallback is taken without an answer (automatic mode only)."""
        if self.mode != POLICY_AUTOMATIC or did not in self.first_seen:
            return None
        return self.first_seen[did] + self.timeout_s

    def describe(self, q: DecisionNeeded) -> dict[str, Any]:
        """A question in words and numbers (event data, the repair's placeholders)."""
        telemetry = self.entry.runtime_data.telemetry
        did = q.id
        answer_by = self.answer_by(did)
        keys = [c.key for c in q.choices]
        fallback = CHOICE_LABELS[choice_step(q.fallback)].lower()
        rule = (
            f"Nobody answering by {_when(answer_by)}: the {fallback} stays as the answer."
            if answer_by is not None
            else "Nothing moves beyond what fits within the limits until someone answers."
            if self.mode != POLICY_MONITOR
            else "Monitor mode: nothing is moved; answer by moving circuits yourself."
        )
        title = f"Decision needed at {q.element}"
        lines = [c.summary for c in q.choices]
        situation = (
            f"{q.element}: forecast above its continuous limit from {_when(q.deadline_s)}; no "
            "relief keeps every element within its limit."
            if q.kind == "relief"
            else f"{q.element}: no plan keeps every receiver within its continuous limit before "
            f"the drain deadline ({_when(q.deadline_s)})."
        )
        return {
            "entry_id": self.entry.entry_id,
            "decision_id": did,
            "kind": q.kind,
            "component": q.element,
            "device_id": telemetry.device_id(q.element),
            "reason": q.reason,
            "deadline": _when(q.deadline_s),
            "deadline_s": q.deadline_s,
            "failure_low_s": q.failure_low_s,
            "answer_by_s": answer_by,
            "fallback": q.fallback,
            "rule": rule,
            "mode": self.mode,
            "choices": [
                {
                    "key": c.key,
                    "title": CHOICE_LABELS[choice_step(c.key)] + (f" {c.shed}" if c.shed else ""),
                    "summary": c.summary,
                    "action": f"DCP_DECIDE_{did}_{c.key}",
                    **{k: v for k, v in c.as_dict().items() if k not in ("plan", "summary")},
                }
                for c in q.choices
            ],
            "choice_keys": keys,
            "title": title,
            "situation": situation,
            "message": f"{situation} " + " ".join(lines),
            "tag": f"{DOMAIN}_decision_{did}",
            "notification_data": notification_data(True),
        }

    @callback
    def _on_decisions(self) -> None:
        decisions = self.entry.runtime_data.decisions.data
        now = time.time()
        asked = {q.id: q for q in decisions.decisions_needed}
        for did in set(self.current) - set(asked):
            self.gone[did] = "no longer asked: the plant or its forecast changed"
            self.notices.release(f"decision:{did}")
        self.current = {d: q for d, q in asked.items() if d not in self.closed}
        for did in self.current:
            self.gone.pop(did, None)
        for did, q in self.current.items():
            if did not in self.first_seen:
                self.first_seen[did] = now
                self._save()
            if self.notices.claim(f"decision:{did}"):
                data = self.describe(q)
                self.notices.fire(EVENT_DECISION_NEEDED, data, key=f"decision:{did}")
                async_fire_activity(
                    self.hass,
                    self.entry,
                    q.element,
                    DECISION_NEEDED,
                    f"decision needed (decision {did}): {data['message']} {data['rule']}",
                    related=[c for choice in q.choices for c in choice.left],
                    extra={"decision_id": did, "choices": data["choice_keys"]},
                )
        if self.mode != POLICY_AUTOMATIC:
            return
        for did, q in list(self.current.items()):
            by = self.answer_by(did)
            if by is not None and now >= by and did not in self._answering:
                self._fallback(q)

    def _fallback(self, q: DecisionNeeded) -> None:
        """The no-answer rule (automatic mode): the fallback stands as the answer. Nothing more
        is run for it: in automatic mode the engine itself runs the partial drain that fits
        within the limits (before and after the question), and keeping the load moves
        nothing; never drain_now or a shed."""
        LOGGER.info(
            "Decision %s at %s: nobody answered in time; %s stands", q.id, q.element, q.fallback
        )
        self._close(q, q.fallback, "the no-answer rule (automatic mode)", None, None)

    def check(self, did: str, key: str) -> tuple[DecisionNeeded, DecisionChoice]:
        """The open question ``did`` and its choice ``key``, or a refusal saying why not."""
        if self.mode == POLICY_MONITOR:
            raise _refused("decision_monitor_mode", decision_id=did)
        if did in self.closed:
            raise _refused("decision_stale", decision_id=did, reason=self.closed[did])
        q = self.current.get(did)
        if q is None and did in self.gone:
            raise _refused("decision_stale", decision_id=did, reason=self.gone[did])
        if q is None and did in self.first_seen:
            why = "no longer asked: the plant, its forecast or a restart changed the question"
            raise _refused("decision_stale", decision_id=did, reason=why)
        if q is None:
            raise _refused("decision_unknown", decision_id=did)
        choice = q.choice(key)
        if choice is None:
            raise _refused(
                "decision_unknown_choice",
                decision_id=did,
                choice=key,
                choices=", ".join(c.key for c in q.choices),
            )
        assignment = self.entry.runtime_data.telemetry.data.assignment
        plan = choice.plan
        for move in () if plan is None else plan.moves:
            if assignment.get(move.circuit) != move.from_mpdu:
                why = f"{move.circuit} is no longer on {move.from_mpdu}"
                raise _refused("decision_stale", decision_id=did, reason=why)
        if did in self._answering:
            raise _refused("decision_stale", decision_id=did, reason="an answer is being run")
        return q, choice

    async def async_answer(
        self, did: str, key: str, context: Context | None, *, by: str = "a person"
    ) -> str | None:
        """Run the answer ``key`` to question ``did``; returns the migration id (None: nothing
        moves). Refused (translated, with the reason) before anything is commanded when the
        question or the choice is not current."""
        q, choice = self.check(did, key)
        self._answering.add(did)
        try:
            migration_id = await self._async_run(q, choice, context)
        finally:
            self._answering.discard(did)
        self._close(q, key, by, migration_id, context)
        return migration_id

    def _close(
        self,
        q: DecisionNeeded,
        key: str,
        by: str,
        migration_id: str | None,
        context: Context | None,
    ) -> None:
        """Question ``q`` answered with ``key``: closed (stored), its repair removed."""
        did = q.id
        choice = q.choice(key)
        self.closed[did] = f"answered by {by}: {key}" + (
            f" (migration {migration_id})" if migration_id else ""
        )
        self.current.pop(did, None)
        self._save()
        self.notices.release(f"decision:{did}")
        async_fire_activity(
            self.hass,
            self.entry,
            q.element,
            DECISION_ANSWERED,
            f"decision {did} answered by {by}: "
            + (choice.summary if choice is not None else key)
            + (f" It runs as migration {migration_id}." if migration_id else ""),
            context=context,
            extra={"decision_id": did, "choice": key, "migration_id": migration_id},
        )
        self.entry.runtime_data.repairs.async_update()

    async def _async_run(
        self, q: DecisionNeeded, choice: DecisionChoice, context: Context | None
    ) -> str | None:
        plan = choice.plan
        if plan is None or (not plan.moves and choice.shed is None):
            return None
        runtime = self.entry.runtime_data
        if choice.shed is not None:
            circuit = choice.shed
            await runtime.commands.async_command(
                circuit,
                lambda state: check_sbm_output(state, circuit, False),
                lambda client, identity: client.set_sbm_output(identity, False),
                "output off (shed to make room)",
                context,
            )
            reading = runtime.telemetry.data.readings.get(circuit)
            if isinstance(reading, SbmReading) and reading.output_on:
                raise _refused(
                    "decision_not_started", decision_id=q.id, reason=f"{circuit} is still on"
                )
        if not plan.moves:  # the shed alone keeps the element within its limit
            return None
        options = self.entry.options
        relief = q.kind == "relief"
        action = Action(
            kind="relieve" if relief else "migrate",
            target=None if relief else q.element,
            plan=plan,
            reason=f"answer to decision {q.id}: {choice.summary}",
            urgent=False,
            step_interval_s=float(options.get(CONF_STEP_INTERVAL, DEFAULT_STEP_INTERVAL)),
            created_s=time.time(),
        )
        try:
            return await runtime.follower.async_run_approved(action)
        except HomeAssistantError as err:
            reason = str(err).strip().rstrip(".")
            raise _refused("decision_not_started", decision_id=q.id, reason=reason) from err


def _find(hass: HomeAssistant, did: str) -> QuestionBook:
    for entry in async_plants(hass):
        book = entry.runtime_data.questions
        if did in book.current or did in book.closed or did in book.gone or did in book.first_seen:
            return book
    raise _refused("decision_unknown", decision_id=did)


@recorded_action()
async def _answer(call: ServiceCall) -> ServiceResponse:
    did, key = call.data[ATTR_DECISION_ID], call.data[ATTR_CHOICE]
    book = _find(call.hass, did)
    migration_id = await book.async_answer(did, key, call.context)
    return {"decision_id": did, "choice": key, "migration_id": migration_id}


def async_setup_question_services(hass: HomeAssistant) -> None:
    """Register ``answer_decision`` (admin-only)."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_ANSWER,
        _answer,
        ANSWER_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
