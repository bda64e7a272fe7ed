"""The plant's devices in Home Assistant's device registry: their names, and their parents.

The telemetry coordinator registers every device it discovers (``coordinator.py``); this module
says how: named by what the device reports (printable: ``naming.shown_name``), ATS first, then
each MPDU via its ATS, each circuit's bypass module via its normal-path MPDU, environment
sensors standalone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from typing import Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from .const import MANUFACTURER
from .device.models import DeviceIdentity, DeviceType
from .naming import shown_name

__all__ = ["async_register_devices", "device_name"]

_TYPE_ORDER: Final = (DeviceType.ATS, DeviceType.MPDU, DeviceType.SBM, DeviceType.ENV)
_NAME_PREFIX: Final = {
    DeviceType.ATS: "ATS",
    DeviceType.MPDU: "MPDU",
    DeviceType.SBM: "Circuit",
    DeviceType.ENV: "Environment",
}


def device_name(identity: DeviceIdentity) -> str:
    """Name of a plant device in Home Assistant, e.g. ``ATS ats1`` or ``Circuit c01`` (what the
    device reports, printable: ``naming.shown_name``)."""
    plant_id = shown_name(identity.plant_id, f"The id unit {identity.unit_id} reports")
    return f"{_NAME_PREFIX[identity.device_type]} {plant_id}"


def async_register_devices(
    hass: HomeAssistant,
    entry_id: str,
    subentry_id: str | None,
    identities: Iterable[DeviceIdentity],
    *,
    identifier: Callable[[str], tuple[str, str]],
    device_ids: MutableMapping[str, str],
) -> None:
    """Register devices parents first (``device_ids``: plant id -> registry id, read for the
    parents and updated with each device registered)."""
    registry = dr.async_get(hass)
    ordered = sorted(identities, key=lambda i: (_TYPE_ORDER.index(i.device_type), i.unit_id))
    for identity in ordered:
        via: str | None = None
        if identity.device_type is DeviceType.MPDU and identity.ats is not None:
            via = device_ids.get(identity.ats)
        elif identity.device_type is DeviceType.SBM and identity.paths:
            via = device_ids.get(identity.paths[0])
        device = registry.async_get_or_create(
            config_entry_id=entry_id,
            config_subentry_id=subentry_id,
            identifiers={identifier(identity.plant_id)},
            manufacturer=MANUFACTURER,
            model=shown_name(identity.model, f"The model unit {identity.unit_id} reports"),
            name=device_name(identity),
            sw_version=shown_name(
                identity.firmware, f"The firmware version unit {identity.unit_id} reports"
            ),
            serial_number=shown_name(identity.plant_id, f"The id unit {identity.unit_id} reports"),
            via_device_id=via,
        )
        device_ids[identity.plant_id] = device.id
