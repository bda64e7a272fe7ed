"""Base entity of every platform, the per-device entity discovery, and the command path.

Every entity belongs to one plant device (an ATS, MPDU, circuit SBM or environment sensor) and
reads that device's typed reading from the telemetry coordinator's latest snapshot. Devices found
after setup (a rescan) get their entities through a coordinator listener, without a restart.
Commands go through one path (:meth:`DataCenterPowerEntity.async_command`): administrators only,
one at a time per plant, judged by ``engine/interlock.py`` against the latest snapshot first; a
refusal or a device error becomes a translated ``HomeAssistantError``, and a refresh (at once,
not debounced) follows every command sent.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import cast, override

from homeassistant.auth.permissions.const import POLICY_CONTROL
from homeassistant.core import callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError, Unauthorized
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN, LOGGER
from .coordinator import DataCenterPowerConfigEntry, PlantSnapshot, TelemetryCoordinator
from .device.client import PlantClient
from .device.errors import DeviceError, DeviceLayerError
from .device.models import AtsReading, DeviceIdentity, Reading, SbmReading
from .engine.interlock import AtsState, InterlockState, Verdict

__all__ = [
    "DataCenterPowerEntity",
    "async_setup_plant_entities",
    "command_lock",
    "interlock_state",
    "plant_interlock_state",
]

type EntityFactory = Callable[[TelemetryCoordinator, DeviceIdentity], Iterable[Entity]]


_DEMAND: weakref.WeakKeyDictionary[TelemetryCoordinator, dict[str, float]] = (
    weakref.WeakKeyDictionary()
)
"""What each circuit drew when last seen drawing, per coordinator. A circuit that is off (or on a
dead path) reads 0 A, but the interlocks need to know what it would draw once powered again; its
last non-zero reading is the best estimate there is."""


def _demand_of(coordinator: TelemetryCoordinator) -> dict[str, float]:
    return _DEMAND.setdefault(coordinator, {})


def _remember_demand(coordinator: TelemetryCoordinator, snapshot: PlantSnapshot) -> None:
    memory = _demand_of(coordinator)
    memory.update({cid: amps for cid, amps in snapshot.circuit_a.items() if amps > 0.0})


_COMMAND_LOCKS: weakref.WeakKeyDictionary[TelemetryCoordinator, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)
"""One command at a time per plant, across platforms: each is judged on the snapshot refreshed
after the previous one, so two commands that fit alone cannot overload together."""


def command_lock(coordinator: TelemetryCoordinator) -> asyncio.Lock:
    """The plant's command lock: hold it from the interlock check until the refresh after the
    command (the migration executor should too, so its moves and the entities' never race)."""
    return _COMMAND_LOCKS.setdefault(coordinator, asyncio.Lock())


def plant_interlock_state(coordinator: TelemetryCoordinator) -> InterlockState:
    """The interlocks' view of the coordinator's latest snapshot, with remembered demands."""
    return interlock_state(coordinator.data, _demand_of(coordinator))


def interlock_state(snapshot: PlantSnapshot, demand_a: dict[str, float]) -> InterlockState:
    """The interlocks' view of a snapshot."""
    ats: dict[str, AtsState] = {}
    selected: dict[str, str] = {}
    for pid, reading in snapshot.readings.items():
        if isinstance(reading, AtsReading):
            ats[pid] = _ats_state(reading)
        elif isinstance(reading, SbmReading) and 0 <= reading.active_path < len(reading.paths):
            selected[pid] = reading.paths[reading.active_path]
    return InterlockState(
        topology=snapshot.topology,
        assignment=snapshot.assignment,
        circuit_a=snapshot.circuit_a,
        energized_mpdus=snapshot.energized_mpdus,
        ats=ats,
        selected_path=selected,
        demand_a=dict(demand_a),
        unknown=frozenset(c for c in snapshot.topology.circuits if not snapshot.available(c)),
    )


def _ats_state(reading: AtsReading) -> AtsState:
    sources = reading.sources

    def source(index: int) -> str | None:
        return sources[index] if 0 <= index < len(sources) else None

    return AtsState(
        active_source=source(reading.active_source),
        preferred_source=source(reading.preferred_source) or "",
        inhibit=reading.inhibit,
        available=frozenset(
            s for s, ok in zip(sources, reading.source_available, strict=False) if ok
        ),
        output_energized=reading.output_energized,
        measured_transfer_ms=reading.last_self_test_ms,
    )


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
        _remember_demand(coordinator, snapshot)
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
        """Attach the entity to its device (registered by the coordinator)."""
        super().__init__(coordinator)
        self.entity_description = description
        self.plant_id = plant_id
        self._attr_unique_id = f"{coordinator.config_entry.unique_id}:{plant_id}:{description.key}"
        self._attr_device_info = DeviceInfo(identifiers={coordinator.identifier(plant_id)})

    @property
    @override
    def available(self) -> bool:
        """Available while the coordinator succeeds and this device answered its last poll."""
        return super().available and self.coordinator.data.available(self.plant_id)

    @property
    def reading(self) -> R | None:
        """This device's reading of the latest refresh (None when it did not answer)."""
        return cast("R | None", self.coordinator.data.readings.get(self.plant_id))

    async def async_command(
        self,
        check: Callable[[InterlockState], Verdict],
        send: Callable[[PlantClient, DeviceIdentity], Awaitable[None]],
        what: str,
    ) -> None:
        """Run a command on this device if the interlock allows it, then refresh.

        Raises a translated ``HomeAssistantError`` when the interlock refuses (naming the element
        and the amps) and when the device layer fails (the device refused, or did not answer).
        Home Assistant itself calls no action on an unavailable entity (a device that did not
        answer its last poll).
        """
        await self._async_check_admin()
        coordinator = self.coordinator
        async with command_lock(coordinator):
            await self._async_command_locked(check, send, what)

    async def _async_check_admin(self) -> None:
        """Changing the power path is for administrators (design: admin-only actions).

        Home Assistant lets every user with control rights call entity services; a command
        from a user who is not an administrator is refused here. Automations and scripts run
        without a user (or as the admin who triggered them) and pass.
        """
        context = self._context
        if context is None or context.user_id is None:
            return
        user = await self.hass.auth.async_get_user(context.user_id)
        if user is not None and not user.is_admin:
            raise Unauthorized(context=context, entity_id=self.entity_id, permission=POLICY_CONTROL)

    async def _async_command_locked(
        self,
        check: Callable[[InterlockState], Verdict],
        send: Callable[[PlantClient, DeviceIdentity], Awaitable[None]],
        what: str,
    ) -> None:
        coordinator = self.coordinator
        verdict = check(plant_interlock_state(coordinator))
        if not verdict.allowed:
            LOGGER.info("Refused %s on %s: %s", what, self.plant_id, verdict.message)
            raise ServiceValidationError(  # the caller's request, not a fault: HTTP 400
                translation_domain=DOMAIN,
                translation_key=f"interlock_{verdict.reason}",
                translation_placeholders=verdict.placeholders(),
            )
        LOGGER.info("Sending %s to %s", what, self.plant_id)
        try:
            await send(coordinator.client_for(self.plant_id), coordinator.identity(self.plant_id))
        except DeviceError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="command_rejected",
                translation_placeholders={"element": self.plant_id, "error": err.code_name},
            ) from err
        except DeviceLayerError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="command_failed",
                translation_placeholders={"element": self.plant_id, "error": str(err)},
            ) from err
        finally:
            # Not the debounced request: the states must show what the command did (or did not
            # do) as soon as it returns, also for the second command within the cooldown.
            await coordinator.async_refresh()
