"""Switches: a circuit's SBM output, an MPDU's output, an ATS's auto-transfer inhibit.

Each command is judged by the interlocks (``engine/interlock.py``) against the latest snapshot
before it is sent: switching off a critical circuit, or an MPDU a critical circuit draws from, or
lifting an inhibit so that an ATS would transfer under critical load, is refused with the element
and the amps; a refresh follows every command sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, override

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.components.switch.const import SwitchDeviceClass
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import TelemetryCoordinator
from .device.client import PlantClient
from .device.models import AtsReading, DeviceIdentity, DeviceType, MpduReading, Reading, SbmReading
from .engine.interlock import (
    InterlockState,
    Verdict,
    check_ats_inhibit,
    check_mpdu_output,
    check_sbm_output,
)
from .entity import DataCenterPowerEntity, async_setup_plant_entities
from .runtime import DataCenterPowerConfigEntry

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class DataCenterPowerSwitchDescription[R: Reading](SwitchEntityDescription):
    """A switch of one device type: its state, its interlock and its command."""

    is_on_fn: Callable[[R], bool]
    check_fn: Callable[[InterlockState, str, bool], Verdict]
    set_fn: Callable[[PlantClient, DeviceIdentity, bool], Awaitable[None]]


SBM_OUTPUT = DataCenterPowerSwitchDescription[SbmReading](
    key="output",
    translation_key="output",
    device_class=SwitchDeviceClass.OUTLET,
    is_on_fn=lambda r: r.output_on,
    check_fn=check_sbm_output,
    set_fn=lambda client, identity, on: client.set_sbm_output(identity, on),
)
MPDU_OUTPUT = DataCenterPowerSwitchDescription[MpduReading](
    key="output",
    translation_key="output",
    device_class=SwitchDeviceClass.SWITCH,
    is_on_fn=lambda r: r.output_on,
    check_fn=check_mpdu_output,
    set_fn=lambda client, identity, on: client.set_mpdu_output(identity, on),
)
ATS_INHIBIT = DataCenterPowerSwitchDescription[AtsReading](
    key="inhibit",
    translation_key="inhibit",
    device_class=SwitchDeviceClass.SWITCH,
    is_on_fn=lambda r: r.inhibit,
    check_fn=check_ats_inhibit,
    set_fn=lambda client, identity, on: client.set_ats_inhibit(identity, on),
)

_BY_TYPE: dict[DeviceType, tuple[DataCenterPowerSwitchDescription[Any], ...]] = {
    DeviceType.ATS: (ATS_INHIBIT,),
    DeviceType.MPDU: (MPDU_OUTPUT,),
    DeviceType.SBM: (SBM_OUTPUT,),
    DeviceType.ENV: (),
}


def _entities(coordinator: TelemetryCoordinator, identity: DeviceIdentity) -> Iterable[Entity]:
    return [
        DataCenterPowerSwitch(coordinator, identity.plant_id, description)
        for description in _BY_TYPE[identity.device_type]
    ]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DataCenterPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the switches of every device of the plant (and of devices found later)."""
    async_setup_plant_entities(entry, async_add_entities, _entities)


class DataCenterPowerSwitch[R: Reading](DataCenterPowerEntity[R], SwitchEntity):
    """A command of one plant device that is on or off."""

    entity_description: DataCenterPowerSwitchDescription[R]

    @property
    @override
    def is_on(self) -> bool | None:
        """The state from the latest reading."""
        reading = self.reading
        return None if reading is None else self.entity_description.is_on_fn(reading)

    async def _async_set(self, on: bool) -> None:
        description = self.entity_description
        await self.async_command(
            lambda state: description.check_fn(state, self.plant_id, on),
            lambda client, identity: description.set_fn(client, identity, on),
            f"{description.key} {'on' if on else 'off'}",
        )

    @override
    async def async_turn_on(self, **kwargs: Any) -> None:
        """Switch on, if the interlock allows it."""
        await self._async_set(True)

    @override
    async def async_turn_off(self, **kwargs: Any) -> None:
        """Switch off, if the interlock allows it."""
        await self._async_set(False)
