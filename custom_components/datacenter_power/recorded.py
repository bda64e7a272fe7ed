"""The actions' record: each call of an action that acts is written to the plant's activity.

``@recorded_action`` decorates the handler of every action that acts (``migrate_load``,
``cancel_migration``, ``isolate``, ``restore``, ``set_path``, ``approve_proposal``,
``dismiss_proposal``, ``create_dashboard``); the read-only ones (``plan_migration``,
``get_forecast``, ``get_proposal``) are not recorded. The activity says who acted: a user, an
automation or script (remembered from their own events, :func:`async_track_causes`), or the
user whose phone notification's action triggered the automation.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final

from homeassistant.core import Context, Event, HomeAssistant, ServiceCall, ServiceResponse, callback
from homeassistant.exceptions import HomeAssistantError, Unauthorized, UnknownUser

from .activity import ActivityRecorder, async_fire_activity, async_record_refusal
from .const import DOMAIN
from .events import ACTION_DONE, PROPOSAL_APPROVED, PROPOSAL_DISMISSED
from .runtime import DataCenterPowerConfigEntry, async_plants

__all__ = ["async_track_causes", "async_who", "by", "recorded_action"]

PROPOSAL_DECISIONS: Final = {
    "approve_proposal": ("approved", PROPOSAL_APPROVED),
    "dismiss_proposal": ("dismissed", PROPOSAL_DISMISSED),
}
"""The actions that decide about a proposal: logged as a decision with who took it."""


def _owner(
    hass: HomeAssistant, name: str | None
) -> tuple[DataCenterPowerConfigEntry, str | None] | None:
    # Also a plant still being set up: an automation may act on its first proposal meanwhile
    # (the call was not logged at all).
    entries = async_plants(hass)
    for entry in entries:
        telemetry = entry.runtime_data.telemetry
        if name is not None and name in telemetry.identities:
            return entry, name
        if name is not None and (pid := telemetry.plant_id_of_device(name)) is not None:
            return entry, pid
    return (entries[0], None) if len(entries) == 1 else None


def _proposal_owner(
    hass: HomeAssistant, pid: str
) -> tuple[DataCenterPowerConfigEntry, str | None] | None:
    """The plant and component a proposal concerns (its activity goes on that device)."""
    for entry in async_plants(hass):
        action = entry.runtime_data.proposals.current.get(pid)
        if action is not None:
            return entry, action.target
    return None


CAUSES: Final = f"{DOMAIN}_causes"
"""``hass.data`` key: context id -> the automation or script that runs with it, and the user of
a phone notification's action (the automation it triggers runs with a child context)."""
MAX_CAUSES: Final = 256
NO_USER: Final = "no user"


@callback
def async_track_causes(hass: HomeAssistant) -> None:
    """Remember which automation or script runs with which context (from their own events),
    and who tapped a phone notification's action, so the activity can say who did something."""
    causes: dict[str, str] = hass.data.setdefault(CAUSES, {})

    def remember(context_id: str, who: str) -> None:
        causes[context_id] = who
        while len(causes) > MAX_CAUSES:
            del causes[next(iter(causes))]

    @callback
    def on_run(event: Event[Mapping[str, Any]]) -> None:
        kind = "automation" if event.event_type == "automation_triggered" else "script"
        name = event.data.get("name") or event.data.get("entity_id") or kind
        remember(event.context.id, f"{kind} {name}")

    @callback
    def on_phone(event: Event[Mapping[str, Any]]) -> None:
        if event.context.user_id is not None:
            remember(event.context.id, f"user:{event.context.user_id}")

    hass.bus.async_listen("automation_triggered", on_run)
    hass.bus.async_listen("script_started", on_run)
    hass.bus.async_listen("mobile_app_notification_action", on_phone)


async def async_who(hass: HomeAssistant, context: Context | None) -> str:
    """Who acted with ``context``, in words: a user's name, "automation <name>" (with the user
    whose phone action triggered it, when known), or "no user" (an action called without one,
    e.g. by another integration)."""

    async def user_name(user_id: str) -> str:
        user = await hass.auth.async_get_user(user_id)
        return f"user {user.name}" if user is not None and user.name else f"user {user_id}"

    if context is None:
        return NO_USER
    if context.user_id is not None:
        return await user_name(context.user_id)
    causes: dict[str, str] = hass.data.get(CAUSES, {})
    who = causes.get(context.id)
    if who is not None and not who.startswith("user:"):
        parent = causes.get(context.parent_id or "")
        if parent is not None and parent.startswith("user:"):
            who += f" (from the phone of {(await user_name(parent[5:]))[5:]})"
        return who
    if context.parent_id is not None:
        return "an automation or script"
    return NO_USER


def by(who: str) -> str:
    """``by user Ann``, ``by automation X``; ``without a user`` for a call that had none."""
    return "without a user" if who == NO_USER else f"by {who}"


def _describe_call(call: ServiceCall) -> str:
    args = ", ".join(f"{k}={v}" for k, v in call.data.items())
    return f"{DOMAIN}.{call.service}({args})"


type Handler = Callable[[ServiceCall], Coroutine[Any, Any, ServiceResponse]]


def recorded_action(*, admin: bool = True) -> Callable[[Handler], Handler]:
    """Decorate an action's handler so that each call is written to the plant's activity: done
    (with who called it and the migration it started) or refused (with why). With ``admin``
    (the default), a caller who is not an administrator is refused first, as Home Assistant's
    admin actions are, and that refusal is written too. A migration the action starts is
    written as requested through it (``ActivityRecorder.pending``/``requested``)."""

    def decorate(handler: Handler) -> Handler:
        async def recorded(call: ServiceCall) -> ServiceResponse:
            hass, name = call.hass, call.service
            owner = _owner(hass, call.data.get("component"))
            if owner is not None and owner[1] is None and "proposal_id" in call.data:
                owner = _proposal_owner(hass, str(call.data["proposal_id"])) or owner
            recorder = None if owner is None else owner[0].runtime_data.activity
            request = (call.context, f"requested through {DOMAIN}.{name}")
            if recorder is not None:
                recorder.pending.append(request)
            try:
                if admin:
                    await _async_check_admin(hass, call)
                response = await handler(call)
            except HomeAssistantError as err:  # Unauthorized included
                if owner is not None:
                    why = "not an administrator" if isinstance(err, Unauthorized) else str(err)
                    async_record_refusal(
                        hass, owner[0], owner[1], _describe_call(call), why, call.context
                    )
                raise
            finally:
                if recorder is not None:
                    recorder.pending.remove(request)
            if owner is not None:
                await _async_record_done(call, owner, recorder, request, response)
            return response

        return recorded

    return decorate


async def _async_check_admin(hass: HomeAssistant, call: ServiceCall) -> None:
    """What Home Assistant's admin actions check (``async_register_admin_service``)."""
    if call.context.user_id:
        user = await hass.auth.async_get_user(call.context.user_id)
        if user is None:
            raise UnknownUser(context=call.context)
        if not user.is_admin:
            raise Unauthorized(context=call.context)


async def _async_record_done(
    call: ServiceCall,
    owner: tuple[DataCenterPowerConfigEntry, str | None],
    recorder: ActivityRecorder | None,
    request: tuple[Context, str],
    response: ServiceResponse,
) -> None:
    """An action done: who did it, and the migration it started (a proposal's approval or
    dismissal is also written as that decision)."""
    hass, name = call.hass, call.service
    entry, component = owner
    mid = response.get("migration_id") if isinstance(response, dict) else None
    if isinstance(mid, str) and recorder is not None:
        recorder.requested[mid] = request
    who = await async_who(hass, call.context)
    async_fire_activity(
        hass, entry, component, ACTION_DONE,
        f"{_describe_call(call)} done {by(who)}" + (f": migration {mid}" if mid else ""),
        context=call.context, extra={"who": who},
    )  # fmt: skip
    if name in PROPOSAL_DECISIONS:
        verb, kind = PROPOSAL_DECISIONS[name]
        async_fire_activity(
            hass, entry, component, kind,
            f"proposal {call.data.get('proposal_id')} {verb} {by(who)}"
            + (f": it runs as migration {mid}" if mid else ""),
            context=call.context,
            extra={"proposal_id": call.data.get("proposal_id"), "who": who},
        )  # fmt: skip
