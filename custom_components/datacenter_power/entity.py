"""Base entity of every platform, the per-device entity discovery, and entity commands.

Every entity belongs to one plant device (an ATS, MPDU, circuit SBM or environment sensor) and
reads that device's typed reading from the telemetry coordinator's latest snapshot. Devices found
after setup (a rescan) get their entities through a coordinator listener, without a restart.
An entity's command goes through the plant's one command path, ``CommandPath.async_command``
(``commands.py``: administrators only, one at a time per plant, judged by ``engine/interlock.py``
against the latest snapshot, a re-read of the device and its neighbours after every command sent,
ahead of any poll in progress); the entity adds only its own device and the caller's context.
This module keeps no plant state.

A refresh calls an entity only when its device's reading changed (the entity listens with its
plant id as the context; the coordinator compares each device once: ``device_listeners.py``),
and the entity writes its state
only when what it shows changed (availability, state at its display resolution, attributes): at
1,000 circuits most of ~9,000 entities are unchanged in any one poll, and calling or writing them
all would be most of Home Assistant's CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast, override

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from . import const
from .commands import CommandCheck, CommandSend
from .coordinator import TelemetryCoordinator
from .device.models import DeviceIdentity, DeviceType, Reading
from .runtime import DataCenterPowerConfigEntry

__all__ = ["DataCenterPowerEntity", "async_setup_plant_entities"]

type EntityFactory = Callable[[TelemetryCoordinator, DeviceIdentity], Iterable[Entity]]


def async_setup_plant_entities(
    entry: DataCenterPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    factory: EntityFactory,
) -> None:
    """Add the entities ``factory`` makes for every device, now and whenever a new one appears."""
    coordinator = entry.runtime_data.telemetry
    known: set[str] = set()

    @callback
    def _async_add_new_devices() -> None:
        snapshot = coordinator.data
        known.intersection_update(snapshot.identities)  # a gateway removed takes its devices
        new = [i for pid, i in snapshot.identities.items() if pid not in known]
        if not new:
            return
        known.update(i.plant_id for i in new)
        # Entities belong to the config subentry of their device's gateway (None: the entry's
        # own), so that removing a gateway removes its entities with its devices.
        by_subentry: dict[str | None, list[Entity]] = {}
        gateways = coordinator.gateways
        for identity in new:
            gateway = gateways.get(snapshot.gateways.get(identity.plant_id, ""))
            subentry = None if gateway is None else gateway.subentry_id
            by_subentry.setdefault(subentry, []).extend(factory(coordinator, identity))
        for subentry, entities in by_subentry.items():
            async_add_entities(entities, config_subentry_id=subentry)

    _async_add_new_devices()
    entry.async_on_unload(coordinator.async_add_listener(_async_add_new_devices))


class DataCenterPowerEntity[R: Reading](CoordinatorEntity[TelemetryCoordinator]):
    """An entity of one plant device; ``R`` is the type of that device's reading."""

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: TelemetryCoordinator,
        plant_id: str,
        description: EntityDescription,
    ) -> None:
        """Attach the entity to its device (registered by the coordinator): it is told of a
        refresh only when that device's reading changed (its listener's context is the plant
        id: ``TelemetryCoordinator.async_add_listener``)."""
        super().__init__(coordinator, context=plant_id)
        self.entity_description = description
        self.plant_id = plant_id
        self._attr_unique_id = f"{coordinator.config_entry.unique_id}:{plant_id}:{description.key}"
        self._attr_device_info = DeviceInfo(identifiers={coordinator.identifier(plant_id)})
        snapshot = coordinator.data
        identity = snapshot.identities.get(plant_id) if snapshot is not None else None
        if (
            description.key in const.HALL_OPTIONAL
            and identity is not None
            and identity.device_type is DeviceType.SBM
            and len(snapshot.topology.circuits) > const.HALL_CIRCUITS
        ):
            # A hall: redundant circuit entities start disabled (const.HALL_OPTIONAL).
            self._attr_entity_registry_enabled_default = False
        self._written: tuple[Any, ...] | None = None
        self._seen: tuple[Reading | None, bool] | None = None

    def state_key(self) -> tuple[Any, ...]:
        """What the entity shows, at its resolution: a refresh that leaves it equal writes no
        state. Sensors round their value to their display precision."""
        return (self.available, self.state, self.extra_state_attributes)

    @callback
    @override
    def _handle_coordinator_update(self) -> None:
        """Write the state only when it changed (see the module docstring)."""
        # Cheapest first: the same reading as last time (a command's re-read of a few devices
        # publishes every other reading unchanged) cannot change what this entity shows.
        seen = (self.reading, self.coordinator.last_update_success)
        if seen == self._seen:
            return
        self._seen = seen
        key = self.state_key()
        if key == self._written:
            return
        self._written = key
        self.async_write_ha_state()

    @property
    @override
    def available(self) -> bool:
        """Available while the coordinator succeeds and this device answered its last poll."""
        return super().available and self.coordinator.data.available(self.plant_id)

    @property
    def reading(self) -> R | None:
        """This device's reading of the latest refresh (None when it did not answer)."""
        return cast("R | None", self.coordinator.data.readings.get(self.plant_id))

    async def async_command(self, check: CommandCheck, send: CommandSend, what: str) -> None:
        """Run a command on this device through the plant's command path (see
        ``CommandPath.async_command``), as the user who asked for it.

        Home Assistant itself calls no action on an unavailable entity (a device that did not
        answer its last poll).
        """
        commands = self.coordinator.config_entry.runtime_data.commands
        await commands.async_command(self.plant_id, check, send, what, self._context)
