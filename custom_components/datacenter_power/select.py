"""Selects: a circuit's active path (options = its MPDUs) and an ATS's preferred source (options =
its sources).

A path change is make-before-break (the SBM does that); the interlock refuses a path whose MPDU
is not energised or that would put the MPDU or its ATS above its continuous limit. A preferred
source change makes the ATS transfer (an open transition) and is refused while critical circuits
draw through it. A refresh follows every command sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, override

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import TelemetryCoordinator
from .device.client import PlantClient
from .device.models import AtsReading, DeviceIdentity, DeviceType, Reading, SbmReading
from .engine.interlock import (
    InterlockState,
    Verdict,
    check_ats_preferred_source,
    check_sbm_path,
)
from .entity import DataCenterPowerEntity, async_setup_plant_entities
from .runtime import DataCenterPowerConfigEntry

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class DataCenterPowerSelectDescription[R: Reading](SelectEntityDescription):
    """A select of one device type: its options, current option, interlock and command."""

    options_fn: Callable[[DeviceIdentity], list[str]]
    current_fn: Callable[[R], str | None]
    check_fn: Callable[[InterlockState, str, str], Verdict]
    select_fn: Callable[[PlantClient, DeviceIdentity, str], Awaitable[None]]


def _pick(options: tuple[str, ...], index: int) -> str | None:
    return options[index] if 0 <= index < len(options) else None


SBM_ACTIVE_PATH = DataCenterPowerSelectDescription[SbmReading](
    key="active_path",
    translation_key="active_path",
    options_fn=lambda identity: list(identity.paths),
    current_fn=lambda r: _pick(r.paths, r.active_path),
    check_fn=check_sbm_path,
    select_fn=lambda client, identity, option: client.set_sbm_path(identity, option),
)
ATS_PREFERRED_SOURCE = DataCenterPowerSelectDescription[AtsReading](
    key="preferred_source",
    translation_key="preferred_source",
    options_fn=lambda identity: list(identity.sources),
    current_fn=lambda r: _pick(r.sources, r.preferred_source),
    check_fn=check_ats_preferred_source,
    select_fn=lambda client, identity, option: client.set_ats_preferred_source(identity, option),
)

_BY_TYPE: dict[DeviceType, tuple[DataCenterPowerSelectDescription[Any], ...]] = {
    DeviceType.ATS: (ATS_PREFERRED_SOURCE,),
    DeviceType.MPDU: (),
    DeviceType.SBM: (SBM_ACTIVE_PATH,),
    DeviceType.ENV: (),
}


def _entities(coordinator: TelemetryCoordinator, identity: DeviceIdentity) -> Iterable[Entity]:
    return [
        DataCenterPowerSelect(coordinator, identity, description)
        for description in _BY_TYPE[identity.device_type]
    ]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DataCenterPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the selects of every device of the plant (and of devices found later)."""
    async_setup_plant_entities(entry, async_add_entities, _entities)


class DataCenterPowerSelect[R: Reading](DataCenterPowerEntity[R], SelectEntity):
    """A choice among a plant device's upstream elements."""

    entity_description: DataCenterPowerSelectDescription[R]

    def __init__(
        self,
        coordinator: TelemetryCoordinator,
        identity: DeviceIdentity,
        description: DataCenterPowerSelectDescription[R],
    ) -> None:
        """Set up the select with the device's own options."""
        super().__init__(coordinator, identity.plant_id, description)
        self._attr_options = description.options_fn(identity)

    @property
    @override
    def current_option(self) -> str | None:
        """The option from the latest reading."""
        reading = self.reading
        return None if reading is None else self.entity_description.current_fn(reading)

    @override
    async def async_select_option(self, option: str) -> None:
        """Select ``option``, if the interlock allows it."""
        description = self.entity_description
        await self.async_command(
            lambda state: description.check_fn(state, self.plant_id, option),
            lambda client, identity: description.select_fn(client, identity, option),
            f"{description.key} {option}",
        )
