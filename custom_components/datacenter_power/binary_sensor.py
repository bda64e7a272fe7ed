"""Binary sensors: whether each part of the power chain is live (``power``), whether each source and
path is available, the devices' alarm bits (``problem``), and whether a circuit is on its
alternative path (no device class: a planned move is no problem)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, override

from homeassistant.components.binary_sensor import (
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import TelemetryCoordinator
from .device.models import AtsReading, DeviceIdentity, DeviceType, MpduReading, Reading, SbmReading
from .entity import DataCenterPowerEntity, async_setup_plant_entities
from .naming import source_name
from .prediction import prediction_binary_sensors
from .runtime import DataCenterPowerConfigEntry

PARALLEL_UPDATES = 0

_POWER = BinarySensorDeviceClass.POWER
_PROBLEM = BinarySensorDeviceClass.PROBLEM


@dataclass(frozen=True, kw_only=True)
class DataCenterPowerBinarySensorDescription[R: Reading](BinarySensorEntityDescription):
    """A binary sensor of one device type: its state from the device's reading."""

    is_on_fn: Callable[[R], bool | None]


ATS_BINARY_SENSORS: tuple[DataCenterPowerBinarySensorDescription[AtsReading], ...] = (
    DataCenterPowerBinarySensorDescription(
        key="output", translation_key="output", device_class=_POWER,
        is_on_fn=lambda r: r.output_energized,
    ),
    DataCenterPowerBinarySensorDescription(
        key="over_temperature", translation_key="over_temperature", device_class=_PROBLEM,
        is_on_fn=lambda r: r.alarm_over_temperature,
    ),
    DataCenterPowerBinarySensorDescription(
        key="output_lost", translation_key="output_lost", device_class=_PROBLEM,
        is_on_fn=lambda r: r.alarm_output_lost,
    ),
    DataCenterPowerBinarySensorDescription(
        key="out_of_sync", translation_key="out_of_sync", device_class=_PROBLEM,
        is_on_fn=lambda r: r.alarm_out_of_sync,
    ),
    DataCenterPowerBinarySensorDescription(
        key="over_limit", translation_key="over_limit", device_class=_PROBLEM,
        is_on_fn=lambda r: r.alarm_over_limit,
    ),
)  # fmt: skip

MPDU_BINARY_SENSORS: tuple[DataCenterPowerBinarySensorDescription[MpduReading], ...] = (
    DataCenterPowerBinarySensorDescription(
        key="output", translation_key="output", device_class=_POWER,
        is_on_fn=lambda r: r.energized,
    ),
    DataCenterPowerBinarySensorDescription(
        key="breaker_trip", translation_key="breaker_trip", device_class=_PROBLEM,
        is_on_fn=lambda r: r.alarm_breaker_trip,
    ),
    DataCenterPowerBinarySensorDescription(
        key="over_temperature", translation_key="over_temperature", device_class=_PROBLEM,
        is_on_fn=lambda r: r.alarm_over_temperature,
    ),
    DataCenterPowerBinarySensorDescription(
        key="over_limit", translation_key="over_limit", device_class=_PROBLEM,
        is_on_fn=lambda r: r.alarm_over_limit,
    ),
)  # fmt: skip

SBM_BINARY_SENSORS: tuple[DataCenterPowerBinarySensorDescription[SbmReading], ...] = (
    DataCenterPowerBinarySensorDescription(
        key="energized", translation_key="energized", device_class=_POWER,
        is_on_fn=lambda r: r.energized,
    ),
    DataCenterPowerBinarySensorDescription(
        key="breaker_trip", translation_key="breaker_trip", device_class=_PROBLEM,
        is_on_fn=lambda r: r.breaker_open,
    ),
    DataCenterPowerBinarySensorDescription(
        # Not a problem class: a planned move (a drain before a predicted failure) puts circuits
        # on their alternative path on purpose, and the logbook and cards showed it as a red
        # "Problem". What is wrong (a failure, a unit at risk) is the plant status's to say.
        key="off_normal_path", translation_key="off_normal_path",
        is_on_fn=lambda r: r.active_path != 0,
    ),
)  # fmt: skip


def _flag(values: Callable[[Any], tuple[bool, ...]], i: int) -> Callable[[Any], bool | None]:
    def is_on(reading: Any) -> bool | None:
        flags = values(reading)
        return flags[i] if i < len(flags) else None

    return is_on


def upstream_binary_sensors(
    identity: DeviceIdentity, options: Mapping[str, Any] | None = None
) -> list[DataCenterPowerBinarySensorDescription[Any]]:
    """Per-source availability of an ATS (named after the source: ``naming.py``), per-path
    energisation of an SBM."""
    if identity.device_type is DeviceType.ATS:
        return [
            DataCenterPowerBinarySensorDescription[AtsReading](
                key=f"source_available_{source}",
                translation_key="source_available",
                translation_placeholders={"source": source_name(options or {}, source)},
                device_class=_POWER,
                is_on_fn=_flag(lambda r: r.source_available, i),
            )
            for i, source in enumerate(identity.sources)
        ]
    return [
        DataCenterPowerBinarySensorDescription[SbmReading](
            key=f"path_energized_{path}",
            translation_key="path_energized",
            translation_placeholders={"path": path},
            device_class=_POWER,
            entity_category=EntityCategory.DIAGNOSTIC,
            # Its MPDU's output sensor says the same; off by default (10,000-entity limit).
            entity_registry_enabled_default=False,
            is_on_fn=_flag(lambda r: r.path_energized, i),
        )
        for i, path in enumerate(identity.paths)
    ]


_BY_TYPE: dict[DeviceType, tuple[DataCenterPowerBinarySensorDescription[Any], ...]] = {
    DeviceType.ATS: ATS_BINARY_SENSORS,
    DeviceType.MPDU: MPDU_BINARY_SENSORS,
    DeviceType.SBM: SBM_BINARY_SENSORS,
    DeviceType.ENV: (),
}


def _entities(coordinator: TelemetryCoordinator, identity: DeviceIdentity) -> Iterable[Entity]:
    descriptions = [
        *_BY_TYPE[identity.device_type],
        *upstream_binary_sensors(identity, coordinator.config_entry.options),
    ]
    return [
        *(
            DataCenterPowerBinarySensor(coordinator, identity.plant_id, description)
            for description in descriptions
        ),
        *prediction_binary_sensors(coordinator.config_entry, identity),
    ]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DataCenterPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the binary sensors of every device of the plant (and of devices found later), and the
    engine's predictions for every ATS/MPDU."""
    async_setup_plant_entities(entry, async_add_entities, _entities)


class DataCenterPowerBinarySensor[R: Reading](DataCenterPowerEntity[R], BinarySensorEntity):
    """One status or alarm bit of one plant device."""

    entity_description: DataCenterPowerBinarySensorDescription[R]

    @property
    @override
    def is_on(self) -> bool | None:
        """The bit from the latest reading."""
        reading = self.reading
        return None if reading is None else self.entity_description.is_on_fn(reading)
