"""Device triggers: failure predicted, failure risk cleared, migration finished or failed,
failover and overload forecast, offered on every ATS, MPDU and circuit device.

They listen to the activity events (``activity.py``). An ATS or MPDU triggers on its own
events; a circuit triggers on the events of the elements it draws through (its MPDU and ATS)
and on migrations and failovers that move it, so an automation can watch one circuit.
"""

from __future__ import annotations

from typing import Any

import probatio as vol
from homeassistant.components.device_automation import DEVICE_TRIGGER_BASE_SCHEMA
from homeassistant.components.device_automation.exceptions import InvalidDeviceAutomationConfig
from homeassistant.const import CONF_DEVICE_ID, CONF_DOMAIN, CONF_PLATFORM, CONF_TYPE
from homeassistant.core import CALLBACK_TYPE, Event, HassJob, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.trigger import TriggerActionType, TriggerInfo
from homeassistant.helpers.typing import ConfigType

from .const import DOMAIN
from .device_condition import plant_component
from .events import EVENT_ACTIVITY, TRIGGER_TYPES

TRIGGER_SCHEMA = DEVICE_TRIGGER_BASE_SCHEMA.extend({vol.Required(CONF_TYPE): vol.In(TRIGGER_TYPES)})


async def async_get_triggers(hass: HomeAssistant, device_id: str) -> list[dict[str, Any]]:
    """The triggers of an ATS, MPDU or circuit device."""
    if plant_component(hass, device_id) is None:
        return []
    return [
        {
            CONF_PLATFORM: "device",
            CONF_DOMAIN: DOMAIN,
            CONF_DEVICE_ID: device_id,
            CONF_TYPE: trigger_type,
        }
        for trigger_type in TRIGGER_TYPES
    ]


async def async_attach_trigger(
    hass: HomeAssistant,
    config: ConfigType,
    action: TriggerActionType,
    trigger_info: TriggerInfo,
) -> CALLBACK_TYPE:
    """Call ``action`` when an activity of the trigger's type concerns the device."""
    device_id: str = config[CONF_DEVICE_ID]
    kind: str = config[CONF_TYPE]
    if dr.async_get(hass).async_get(device_id) is None:
        raise InvalidDeviceAutomationConfig(f"Device {device_id} not found")
    job = HassJob(action, f"{DOMAIN} device trigger {kind}")
    trigger_data = trigger_info["trigger_data"]

    @callback
    def matches(event_data: Any) -> bool:
        return event_data.get("type") == kind and (
            event_data.get("device_id") == device_id
            or device_id in event_data.get("related_device_ids", ())
        )

    @callback
    def handle(event: Event[Any]) -> None:
        hass.async_run_hass_job(
            job,
            {
                "trigger": {
                    **trigger_data,
                    CONF_PLATFORM: "device",
                    CONF_DOMAIN: DOMAIN,
                    CONF_DEVICE_ID: device_id,
                    CONF_TYPE: kind,
                    "component": event.data.get("component"),
                    "message": event.data.get("message"),
                    "event": event,
                    "description": f"{kind.replace('_', ' ')} ({event.data.get('component')})",
                }
            },
            event.context,
        )

    return hass.bus.async_listen(EVENT_ACTIVITY, handle, event_filter=matches)
