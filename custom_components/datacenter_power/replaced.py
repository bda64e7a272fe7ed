"""Replaced units: a device whose identification changed while Home Assistant was running.

A unit swapped for another (a spare, another model, other firmware) answers at the same Modbus
unit id, but it is not the device the integration identified, registered and planned with. The
telemetry coordinator re-reads identifications (a device coming back after being silent, a
device about to be commanded, every device at each rescan, every 10 minutes) and, when one
changed, holds that device unavailable (its entities go unavailable, the planner and the
interlocks treat it as unknown), refuses commands to it, and raises a repair saying what changed.
Reloading the integration identifies the new unit; the repair is withdrawn then.
"""

from __future__ import annotations

from dataclasses import fields

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN
from .device.models import DeviceIdentity
from .events import ISSUE_UNIT_REPLACED
from .naming import clean_name


def describe_change(old: DeviceIdentity, new: DeviceIdentity) -> str:
    """What differs between two identifications, e.g. ``model MPDU-32 -> MPDU-40`` (what the
    units report made printable: ``naming.clean_name``)."""
    changes = [
        f"{f.name} {clean_name(str(getattr(old, f.name)), 128)} -> "
        f"{clean_name(str(getattr(new, f.name)), 128)}"
        for f in fields(DeviceIdentity)
        if getattr(old, f.name) != getattr(new, f.name)
    ]
    return ", ".join(changes) or "identification changed"


def issue_id(entry_id: str, plant_id: str) -> str:
    """The repair issue of one replaced device of one entry."""
    return f"{ISSUE_UNIT_REPLACED}_{entry_id}_{plant_id}"


def async_raise(hass: HomeAssistant, entry_id: str, plant_id: str, change: str) -> None:
    """Raise the repair: the unit was replaced, it is held unavailable, reload to adopt it."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(entry_id, plant_id),
        is_fixable=False,
        is_persistent=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=ISSUE_UNIT_REPLACED,
        translation_placeholders={"device": plant_id, "change": change},
    )


def async_clear(hass: HomeAssistant, entry_id: str) -> None:
    """Withdraw every replaced-unit repair of an entry (its devices were identified afresh)."""
    registry = ir.async_get(hass)
    prefix = issue_id(entry_id, "")
    for domain, issue in list(registry.issues):
        if domain == DOMAIN and issue.startswith(prefix):
            ir.async_delete_issue(hass, DOMAIN, issue)
