"""Campus commands of a hall: approve or dismiss the open proposal, answer an open decision.

A message on the hall's command topic is checked first (``campus_topics.parse_command``: JSON,
addressed to this hall, ``approve``/``dismiss`` with a proposal id or ``answer`` with a decision
id and a choice key; ``check_run``: shown in the hall's current run, not before a restart, since a
proposal or decision raised again after a restart has the same id) and then handed to the
integration's own actions: ``datacenter_power.approve_proposal`` / ``dismiss_proposal``, which
refuse a stale id with the reason, and ``datacenter_power.answer_decision``, which refuses a
decision no longer asked, a choice it does not offer and monitor mode (each records calls and
refusals in the logbook). A proposal or decision of another plant on the same Home Assistant is
refused here. Every outcome is logged and published on the hall's result topic; a refused message
is never acted on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError

from .campus_topics import ANSWER, Command, CommandRefused, check_run, parse_command
from .const import DOMAIN, LOGGER
from .proposals import ATTR_PROPOSAL_ID, SERVICE_APPROVE, SERVICE_DISMISS, SERVICE_GET
from .questions import ATTR_CHOICE, ATTR_DECISION_ID, SERVICE_ANSWER, QuestionBook
from .runtime import DataCenterPowerConfigEntry, async_plants

_SERVICES = {"approve": SERVICE_APPROVE, "dismiss": SERVICE_DISMISS}


def _reason(err: HomeAssistantError) -> str:
    """The refusal's reason: the action's own placeholder, else its message."""
    placeholders = err.translation_placeholders or {}
    return str(placeholders.get("reason") or err).strip().rstrip(".") or type(err).__name__


def _message(err: HomeAssistantError) -> str:
    """The refusal as the action says it (its translated message, the reason included)."""
    return str(err).strip().rstrip(".") or type(err).__name__


def _knows(book: QuestionBook, decision_id: str) -> bool:
    """Whether ``book`` (one plant's questions) has asked ``decision_id`` (open or not)."""
    return any(
        decision_id in ids for ids in (book.current, book.closed, book.gone, book.first_seen)
    )


async def _approve_or_dismiss(
    hass: HomeAssistant, entry: DataCenterPowerConfigEntry, command: Command, context: Context
) -> dict[str, Any]:
    data = {ATTR_PROPOSAL_ID: command.proposal_id}
    found = await hass.services.async_call(
        DOMAIN, SERVICE_GET, data, blocking=True, return_response=True, context=context
    )
    owner = (found or {}).get("entry_id")
    if owner is not None and owner != entry.entry_id:
        raise CommandRefused(f"proposal {command.proposal_id} belongs to another plant")
    response = await hass.services.async_call(
        DOMAIN,
        _SERVICES[command.action],
        data,
        blocking=True,
        return_response=True,
        context=context,
    )
    return response or {}


async def _answer(
    hass: HomeAssistant, entry: DataCenterPowerConfigEntry, command: Command, context: Context
) -> dict[str, Any]:
    did = str(command.decision_id)
    if not _knows(entry.runtime_data.questions, did) and any(
        _knows(other.runtime_data.questions, did)
        for other in async_plants(hass)
        if other.entry_id != entry.entry_id
    ):
        raise CommandRefused(f"decision {did} belongs to another plant")
    response = await hass.services.async_call(
        DOMAIN,
        SERVICE_ANSWER,
        {ATTR_DECISION_ID: did, ATTR_CHOICE: command.choice},
        blocking=True,
        return_response=True,
        context=context,
    )
    return response or {}


async def async_handle_command(
    hass: HomeAssistant,
    entry: DataCenterPowerConfigEntry,
    hall: str,
    run: str,
    payload: str | bytes | bytearray,
) -> dict[str, Any]:
    """Act on one command message to ``hall`` in its ``run``; returns the result document
    (``ok`` and why not)."""
    result: dict[str, Any] = {"hall": hall, "at": datetime.now(UTC).isoformat()}
    try:
        command = parse_command(hall, payload)
    except CommandRefused as err:
        LOGGER.warning("Campus command on hall %s refused: %s", hall, err)
        return {**result, "ok": False, "action": None, "proposal_id": None, "reason": str(err)}
    answer = command.action == ANSWER
    result.update(action=command.action, run=command.run, request_id=command.request_id)
    if answer:
        result.update(decision_id=command.decision_id, choice=command.choice)
    else:
        result.update(proposal_id=command.proposal_id)
    context = Context()
    try:
        check_run(command, run)
        handler = _answer if answer else _approve_or_dismiss
        response = await handler(hass, entry, command, context)
    except (HomeAssistantError, CommandRefused) as err:
        if isinstance(err, CommandRefused):
            reason = str(err)
        else:  # an answer's refusal says what was refused (stale, not offered, monitor mode)
            reason = _message(err) if answer else _reason(err)
        LOGGER.warning(
            "Campus command on hall %s refused: %s %s: %s",
            hall,
            command.action,
            command.subject,
            reason,
        )
        return {**result, "ok": False, "reason": reason}
    LOGGER.info("Campus command on hall %s: %s %s done", hall, command.action, command.subject)
    return {**result, "ok": True, "reason": None, "migration_id": response.get("migration_id")}
