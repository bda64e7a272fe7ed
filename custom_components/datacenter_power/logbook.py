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

from .activity import EVENT_ACTIVITY

PLANT_NAME = "Data Center Power"
ICONS: dict[str, str] = {
    "failure_predicted": "mdi:alert-decagram",
    "failure_risk_cleared": "mdi:shield-check",
    "overload_forecast": "mdi:chart-bell-curve-cumulative",
    "failover": "mdi:flash-alert",
    "migration_started": "mdi:transfer",
    "circuit_moved": "mdi:source-branch",
    "migration_finished": "mdi:check-circle",
    "migration_failed": "mdi:close-circle",
    "action": "mdi:gesture-tap-button",
    "refused": "mdi:cancel",
    "interruption": "mdi:flash-off",
    "proposal": "mdi:clipboard-text-clock",
    "proposal_approved": "mdi:check-decagram",
    "proposal_dismissed": "mdi:clipboard-remove",
    "override": "mdi:hand-back-right",
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

    async_describe_event("datacenter_power", EVENT_ACTIVITY, describe)
