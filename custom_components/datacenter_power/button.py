"""Buttons: the plant's "Approve proposed migration" (approval mode; see ``plant.py``) and each
ATS's "Reset alarms".

An ATS latches some alarms (*Output lost* after a failure) until they are reset: the register map's
``reset_alarms`` coil clears those whose cause has gone. The button sends it through the plant's
command path (administrators only, refusals logged there) and writes what it cleared, or what
stays latched, to the ATS's Activity. ``restore`` refuses while an alarm is latched (unless forced),
so this is the step between a repair and a restore.
"""

from __future__ import annotations

from typing import override

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .activity import async_fire_activity
from .coordinator import TelemetryCoordinator
from .device.models import AtsReading, DeviceIdentity, DeviceType
from .engine.interlock import Verdict
from .entity import DataCenterPowerEntity, async_setup_plant_entities
from .events import ACTION_DONE
from .plant import plant_buttons
from .runtime import DataCenterPowerConfigEntry

PARALLEL_UPDATES = 1

RESET_ALARMS = ButtonEntityDescription(
    key="reset_alarms", translation_key="reset_alarms", entity_category=EntityCategory.CONFIG
)


def _latched(reading: AtsReading | None) -> list[str]:
    if reading is None:
        return []
    return [
        name
        for name, on in (
            ("output lost", reading.alarm_output_lost),
            ("over-temperature", reading.alarm_over_temperature),
            ("out of sync", reading.alarm_out_of_sync),
            ("over limit", reading.alarm_over_limit),
        )
        if on
    ]


class ResetAlarmsButton(DataCenterPowerEntity[AtsReading], ButtonEntity):
    """Clears an ATS's latched alarms whose cause has gone (the ``reset_alarms`` coil)."""

    @override
    async def async_press(self) -> None:
        """Send the reset (administrators only) and log what it cleared."""
        before = _latched(self.reading)
        await self.async_command(
            lambda _state: Verdict(True),  # changes no power path: nothing to interlock
            lambda client, identity: client.ats_reset_alarms(identity),
            "reset alarms",
        )
        after = _latched(self.reading)
        cleared = [a for a in before if a not in after]
        message = "alarms reset: " + (
            f"cleared {', '.join(cleared)}" if cleared else "nothing was latched"
        )
        if after:
            message += f"; still on (their cause is still there): {', '.join(after)}"
        async_fire_activity(
            self.hass,
            self.coordinator.config_entry,
            self.plant_id,
            ACTION_DONE,
            message,
            context=self._context,
            extra={"cleared": cleared, "still_on": after},
        )


def _entities(coordinator: TelemetryCoordinator, identity: DeviceIdentity) -> list[Entity]:
    if identity.device_type is not DeviceType.ATS:
        return []
    return [ResetAlarmsButton(coordinator, identity.plant_id, RESET_ALARMS)]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DataCenterPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the plant's approve button and every ATS's reset-alarms button."""
    async_add_entities(plant_buttons(entry))
    async_setup_plant_entities(entry, async_add_entities, _entities)
