"""Campus commands of a hall: approve or dismiss the open proposal by its id, nothing else.

A message on the hall's command topic is checked first (``campus_topics.parse_command``: JSON,
addressed to this hall, ``approve`` or ``dismiss``, a proposal id; ``check_run``: shown in the
hall's current run, not before a restart, since a proposal raised again after a restart has the
same id) and then handed to the integration's own ``datacenter_power.approve_proposal`` /
``dismiss_proposal`` actions, which refuse a stale id with the reason (and record calls and refusals in the logbook). A proposal of
another plant on the same Home Assistant is refused here. Every outcome is logged and published
on the hall's result topic; a refused message is never acted on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError

from .campus_topics import CommandRefused, check_run, parse_command
from .const import DOMAIN, LOGGER
from .proposals import ATTR_PROPOSAL_ID, SERVICE_APPROVE, SERVICE_DISMISS, SERVICE_GET
from .runtime import DataCenterPowerConfigEntry

_SERVICES = {"approve": SERVICE_APPROVE, "dismiss": SERVICE_DISMISS}


def _reason(err: HomeAssistantError) -> str:
    """The refusal's reason: the action's own placeholder, else its message."""
    placeholders = err.translation_placeholders or {}
    return str(placeholders.get("reason") or err).strip().rstrip(".") or type(err).__name__


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
    result.update(
        action=command.action,
        proposal_id=command.proposal_id,
        run=command.run,
        request_id=command.request_id,
    )
    context = Context()
    data = {ATTR_PROPOSAL_ID: command.proposal_id}
    try:
        check_run(command, run)
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
    except (HomeAssistantError, CommandRefused) as err:
        reason = _reason(err) if isinstance(err, HomeAssistantError) else str(err)
        LOGGER.warning(
            "Campus command on hall %s refused: %s proposal %s: %s",
            hall,
            command.action,
            command.proposal_id,
            reason,
        )
        return {**result, "ok": False, "reason": reason}
    LOGGER.info(
        "Campus command on hall %s: %s proposal %s done", hall, command.action, command.proposal_id
    )
    migration_id = (response or {}).get("migration_id")
    return {**result, "ok": True, "reason": None, "migration_id": migration_id}
