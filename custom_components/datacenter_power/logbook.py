"""Logbook: how this integration's activity reads in the logbook and in a device's Activity.

Every entry comes from one event type, ``datacenter_power_activity`` (see ``activity.py``): it
carries the device it concerns and a ready sentence saying what happened, who or what caused it
and why. Home Assistant adds "triggered by" from the event's context (a user, an automation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.components.logbook.const import (
    LOGBOOK_ENTRY_ICON,
    LOGBOOK_ENTRY_MESSAGE,
    LOGBOOK_ENTRY_NAME,
)
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .const import DOMAIN
from .events import (
    ACTION_DONE,
    CIRCUIT_MOVED,
    DECISION_ANSWERED,
    DECISION_NEEDED,
    EVENT_ACTIVITY,
    FAILOVER,
    FAILURE_PREDICTED,
    FAILURE_RISK_CLEARED,
    INTERRUPTION,
    MIGRATION_FAILED,
    MIGRATION_FINISHED,
    MIGRATION_STARTED,
    OVERLOAD_FORECAST,
    OVERRIDE,
    PROPOSAL,
    PROPOSAL_APPROVED,
    PROPOSAL_DISMISSED,
    REFUSED,
)

PLANT_NAME = "Data Center Power"
ICONS: dict[str, str] = {
    FAILURE_PREDICTED: "mdi:alert-decagram",
    FAILURE_RISK_CLEARED: "mdi:shield-check",
    OVERLOAD_FORECAST: "mdi:chart-bell-curve-cumulative",
    FAILOVER: "mdi:flash-alert",
    MIGRATION_STARTED: "mdi:transfer",
    CIRCUIT_MOVED: "mdi:source-branch",
    MIGRATION_FINISHED: "mdi:check-circle",
    MIGRATION_FAILED: "mdi:close-circle",
    ACTION_DONE: "mdi:gesture-tap-button",
    REFUSED: "mdi:cancel",
    INTERRUPTION: "mdi:flash-off",
    PROPOSAL: "mdi:clipboard-text-clock",
    PROPOSAL_APPROVED: "mdi:check-decagram",
    PROPOSAL_DISMISSED: "mdi:clipboard-remove",
    OVERRIDE: "mdi:hand-back-right",
    DECISION_NEEDED: "mdi:account-question",
    DECISION_ANSWERED: "mdi:account-check",
}
"""An icon per activity type, so the logbook's entries are told apart at a glance."""


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Event], dict[str, Any]]], None],
) -> None:
    """Describe the activity event."""

    @callback
    def describe(event: Event) -> dict[str, Any]:
        device_id = event.data.get("device_id")
        device = None if device_id is None else dr.async_get(hass).async_get(device_id)
        name = PLANT_NAME if device is None else (device.name_by_user or device.name or PLANT_NAME)
        return {
            LOGBOOK_ENTRY_NAME: name,
            LOGBOOK_ENTRY_MESSAGE: str(event.data.get("message", "")),
            LOGBOOK_ENTRY_ICON: ICONS.get(str(event.data.get("type")), "mdi:flash"),
        }

    async_describe_event(DOMAIN, EVENT_ACTIVITY, describe)
