"""Sensors: every measurement the plant's devices report, shaped for history, statistics and the
Energy dashboard (energy counters are ``total_increasing`` kWh, power in kW).

Each description reads one value from a device's typed reading (``device/models.py``). Rarely
useful diagnostics (ripple, phase angle, time on each source, mechanism counters) are in the
diagnostic category and disabled by default; the firmware is the device's ``sw_version``.
A circuit's voltage (its MPDU's), its active-path sensor (the path select shows it) and its
bypass counter are disabled by default too, so that a 1,000-circuit hall stays under Home
Assistant's 10,000 enabled entities per config entry (docs/scaling.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, override

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    DEGREE,
    PERCENTAGE,
    EntityCategory,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfFrequency,
    UnitOfPower,
    UnitOfTemperature,
    UnitOfTime,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from .coordinator import TelemetryCoordinator
from .device.models import (
    AtsReading,
    DeviceIdentity,
    DeviceType,
    EnvReading,
    MpduReading,
    Reading,
    SbmReading,
)
from .engine.topology import CONTINUOUS_FRACTION
from .entity import DataCenterPowerEntity, async_setup_plant_entities
from .naming import source_name
from .plant import plant_sensors
from .prediction import MigrationSensor, prediction_sensors
from .runtime import DataCenterPowerConfigEntry

PARALLEL_UPDATES = 0

NO_SOURCE = "none"
"""Active-source option when the ATS is connected to no source."""


@dataclass(frozen=True, kw_only=True)
class DataCenterPowerSensorDescription[R: Reading](SensorEntityDescription):
    """A sensor of one device type: its value from the device's reading."""

    value_fn: Callable[[R], StateType | datetime]
    options_fn: Callable[[DeviceIdentity], list[str]] | None = None
    """Enum sensors: their options, from the device's identity."""


def _limit_pct(current_a: float, rating_a: float) -> float | None:
    """Current as a percentage of the continuous limit (80 % of rating): 100 % = at the limit."""
    if rating_a <= 0:
        return None
    return round(100.0 * current_a / (CONTINUOUS_FRACTION * rating_a), 1)


def _pick(options: tuple[str, ...], index: int, missing: str | None = None) -> str | None:
    return options[index] if 0 <= index < len(options) else missing


class _Shape(TypedDict, total=False):
    """The measurement-shaping fields shared by many descriptions (checked by mypy)."""

    device_class: SensorDeviceClass
    state_class: SensorStateClass
    native_unit_of_measurement: str
    suggested_display_precision: int
    entity_category: EntityCategory
    entity_registry_enabled_default: bool


_CURRENT: _Shape = {
    "device_class": SensorDeviceClass.CURRENT,
    "state_class": SensorStateClass.MEASUREMENT,
    "native_unit_of_measurement": UnitOfElectricCurrent.AMPERE,
    "suggested_display_precision": 1,
}
_VOLTAGE: _Shape = {
    "device_class": SensorDeviceClass.VOLTAGE,
    "state_class": SensorStateClass.MEASUREMENT,
    "native_unit_of_measurement": UnitOfElectricPotential.VOLT,
    "suggested_display_precision": 1,
}
_CIRCUIT_VOLTAGE: _Shape = {**_VOLTAGE, "entity_registry_enabled_default": False}
"""A circuit's voltage is its MPDU's: off by default (the 10,000-entity limit)."""
_POWER: _Shape = {
    "device_class": SensorDeviceClass.POWER,
    "state_class": SensorStateClass.MEASUREMENT,
    "native_unit_of_measurement": UnitOfPower.KILO_WATT,
    "suggested_display_precision": 2,
}
_ENERGY: _Shape = {
    "device_class": SensorDeviceClass.ENERGY,
    "state_class": SensorStateClass.TOTAL_INCREASING,
    "native_unit_of_measurement": UnitOfEnergy.KILO_WATT_HOUR,
    "suggested_display_precision": 1,
}
_TEMPERATURE: _Shape = {
    "device_class": SensorDeviceClass.TEMPERATURE,
    "state_class": SensorStateClass.MEASUREMENT,
    "native_unit_of_measurement": UnitOfTemperature.CELSIUS,
    "suggested_display_precision": 1,
}
_LIMIT: _Shape = {
    "state_class": SensorStateClass.MEASUREMENT,
    "native_unit_of_measurement": PERCENTAGE,
    "suggested_display_precision": 0,
}
_RIPPLE: _Shape = {
    "state_class": SensorStateClass.MEASUREMENT,
    "native_unit_of_measurement": PERCENTAGE,
    "suggested_display_precision": 2,
    "entity_category": EntityCategory.DIAGNOSTIC,
    "entity_registry_enabled_default": False,
}
_COUNTER: _Shape = {"state_class": SensorStateClass.TOTAL_INCREASING}
_DIAGNOSTIC_COUNTER: _Shape = {
    "state_class": SensorStateClass.TOTAL_INCREASING,
    "entity_category": EntityCategory.DIAGNOSTIC,
    "entity_registry_enabled_default": False,
}
_MILLISECONDS: _Shape = {
    "device_class": SensorDeviceClass.DURATION,
    "state_class": SensorStateClass.MEASUREMENT,
    "native_unit_of_measurement": UnitOfTime.MILLISECONDS,
    "suggested_display_precision": 0,
}

ATS_SENSORS: tuple[DataCenterPowerSensorDescription[AtsReading], ...] = (
    DataCenterPowerSensorDescription(
        key="load_current", translation_key="load_current", **_CURRENT,
        value_fn=lambda r: r.load_current_a,
    ),
    DataCenterPowerSensorDescription(
        key="load_power", translation_key="load_power", **_POWER,
        value_fn=lambda r: r.load_power_kw,
    ),
    DataCenterPowerSensorDescription(
        key="energy", translation_key="energy", **_ENERGY, value_fn=lambda r: r.energy_kwh,
    ),
    DataCenterPowerSensorDescription(
        key="output_voltage", translation_key="output_voltage", **_VOLTAGE,
        value_fn=lambda r: r.output_voltage_v,
    ),
    DataCenterPowerSensorDescription(
        key="limit_utilization", translation_key="limit_utilization", **_LIMIT,
        value_fn=lambda r: _limit_pct(r.load_current_a, r.rating_a),
    ),
    DataCenterPowerSensorDescription(
        key="contact_temperature", translation_key="contact_temperature", **_TEMPERATURE,
        value_fn=lambda r: r.contact_temperature_c,
    ),
    DataCenterPowerSensorDescription(
        key="active_source", translation_key="active_source",
        device_class=SensorDeviceClass.ENUM,
        options_fn=lambda i: [*i.sources, NO_SOURCE],
        value_fn=lambda r: _pick(r.sources, r.active_source, NO_SOURCE),
    ),
    DataCenterPowerSensorDescription(
        key="transfers", translation_key="transfers", **_COUNTER,
        value_fn=lambda r: r.transfers_total,
    ),
    DataCenterPowerSensorDescription(
        key="failure_transfers", translation_key="failure_transfers", **_COUNTER,
        value_fn=lambda r: r.transfers_failure,
    ),
    DataCenterPowerSensorDescription(
        key="last_transfer_duration", translation_key="last_transfer_duration", **_MILLISECONDS,
        value_fn=lambda r: r.last_transfer_ms,
    ),
    DataCenterPowerSensorDescription(
        key="self_test_transfer_time", translation_key="self_test_transfer_time",
        device_class=SensorDeviceClass.DURATION, state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTime.MILLISECONDS, suggested_display_precision=0,
        entity_category=EntityCategory.DIAGNOSTIC,
        # 0 means "no self-test yet", not an instantaneous transfer.
        value_fn=lambda r: r.last_self_test_ms or None,
    ),
    DataCenterPowerSensorDescription(
        key="ripple", translation_key="ripple", **_RIPPLE, value_fn=lambda r: r.ripple_pct,
    ),
    DataCenterPowerSensorDescription(
        key="phase_angle", translation_key="phase_angle",
        state_class=SensorStateClass.MEASUREMENT, native_unit_of_measurement=DEGREE,
        suggested_display_precision=1, entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda r: r.phase_angle_deg,
    ),
    DataCenterPowerSensorDescription(
        key="operations", translation_key="operations", **_DIAGNOSTIC_COUNTER,
        value_fn=lambda r: r.operations,
    ),
    DataCenterPowerSensorDescription(
        key="self_tests", translation_key="self_tests", **_DIAGNOSTIC_COUNTER,
        value_fn=lambda r: r.self_tests,
    ),
)  # fmt: skip


def _source_voltage(i: int) -> Callable[[AtsReading], StateType]:
    return lambda r: r.source_voltage_v[i] if i < len(r.source_voltage_v) else None


def _source_frequency(i: int) -> Callable[[AtsReading], StateType]:
    return lambda r: r.source_frequency_hz[i] if i < len(r.source_frequency_hz) else None


def _time_on_source(i: int) -> Callable[[AtsReading], StateType]:
    return lambda r: r.time_on_source_s[i] if i < len(r.time_on_source_s) else None


def ats_source_sensors(
    identity: DeviceIdentity, options: Mapping[str, Any] | None = None
) -> list[DataCenterPowerSensorDescription[AtsReading]]:
    """Per-source sensors of an ATS (voltage, frequency, time on it), named after the source
    (its name in the entry's ``options``, else its readable id: ``naming.py``)."""
    out: list[DataCenterPowerSensorDescription[AtsReading]] = []
    for i, source in enumerate(identity.sources):
        placeholders = {"source": source_name(options or {}, source)}
        out += [
            DataCenterPowerSensorDescription(
                key=f"source_voltage_{source}", translation_key="source_voltage",
                translation_placeholders=placeholders, **_VOLTAGE,
                value_fn=_source_voltage(i),
            ),
            DataCenterPowerSensorDescription(
                key=f"source_frequency_{source}", translation_key="source_frequency",
                translation_placeholders=placeholders,
                device_class=SensorDeviceClass.FREQUENCY,
                state_class=SensorStateClass.MEASUREMENT,
                native_unit_of_measurement=UnitOfFrequency.HERTZ,
                suggested_display_precision=2,
                value_fn=_source_frequency(i),
            ),
            DataCenterPowerSensorDescription(
                key=f"time_on_source_{source}", translation_key="time_on_source",
                translation_placeholders=placeholders,
                device_class=SensorDeviceClass.DURATION,
                state_class=SensorStateClass.TOTAL_INCREASING,
                native_unit_of_measurement=UnitOfTime.SECONDS,
                entity_category=EntityCategory.DIAGNOSTIC,
                entity_registry_enabled_default=False,
                value_fn=_time_on_source(i),
            ),
        ]  # fmt: skip
    return out


MPDU_SENSORS: tuple[DataCenterPowerSensorDescription[MpduReading], ...] = (
    DataCenterPowerSensorDescription(
        key="current", translation_key="current", **_CURRENT, value_fn=lambda r: r.current_a,
    ),
    DataCenterPowerSensorDescription(
        key="power", translation_key="power", **_POWER, value_fn=lambda r: r.power_kw,
    ),
    DataCenterPowerSensorDescription(
        key="energy", translation_key="energy", **_ENERGY, value_fn=lambda r: r.energy_kwh,
    ),
    DataCenterPowerSensorDescription(
        key="input_voltage", translation_key="input_voltage", **_VOLTAGE,
        value_fn=lambda r: r.input_voltage_v,
    ),
    DataCenterPowerSensorDescription(
        key="limit_utilization", translation_key="limit_utilization", **_LIMIT,
        value_fn=lambda r: _limit_pct(r.current_a, r.rating_a),
    ),
    DataCenterPowerSensorDescription(
        key="terminal_temperature", translation_key="terminal_temperature", **_TEMPERATURE,
        value_fn=lambda r: r.terminal_temperature_c,
    ),
    DataCenterPowerSensorDescription(
        key="breaker_trips", translation_key="breaker_trips", **_COUNTER,
        value_fn=lambda r: r.breaker_trips,
    ),
    DataCenterPowerSensorDescription(
        key="ripple", translation_key="ripple", **_RIPPLE, value_fn=lambda r: r.ripple_pct,
    ),
    DataCenterPowerSensorDescription(
        key="nuisance_trips", translation_key="nuisance_trips", **_DIAGNOSTIC_COUNTER,
        value_fn=lambda r: r.nuisance_trips,
    ),
)  # fmt: skip

SBM_SENSORS: tuple[DataCenterPowerSensorDescription[SbmReading], ...] = (
    DataCenterPowerSensorDescription(
        key="current", translation_key="current", **_CURRENT, value_fn=lambda r: r.current_a,
    ),
    DataCenterPowerSensorDescription(
        key="voltage", translation_key="voltage", **_CIRCUIT_VOLTAGE,
        value_fn=lambda r: r.voltage_v,
    ),
    DataCenterPowerSensorDescription(
        key="power", translation_key="power", **_POWER, value_fn=lambda r: r.power_kw,
    ),
    DataCenterPowerSensorDescription(
        key="energy", translation_key="energy", **_ENERGY, value_fn=lambda r: r.energy_kwh,
    ),
    DataCenterPowerSensorDescription(
        key="active_path", translation_key="active_path",
        device_class=SensorDeviceClass.ENUM,
        # the "Active path" select shows (and changes) the same: one entry per change in
        # Activity, not two
        entity_category=EntityCategory.DIAGNOSTIC, entity_registry_enabled_default=False,
        options_fn=lambda i: list(i.paths),
        value_fn=lambda r: _pick(r.paths, r.active_path),
    ),
    DataCenterPowerSensorDescription(
        key="bypass_transfers", translation_key="bypass_transfers", **_DIAGNOSTIC_COUNTER,
        value_fn=lambda r: r.bypass_transfers,
    ),
    DataCenterPowerSensorDescription(
        key="switch_operations", translation_key="switch_operations", **_DIAGNOSTIC_COUNTER,
        value_fn=lambda r: r.switch_operations,
    ),
    # Counted by the SBM itself: an interruption shorter than a poll shows here (enabled: it is
    # what an engineer looks for after a transfer).
    DataCenterPowerSensorDescription(
        key="interruptions", translation_key="interruptions",
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda r: r.interruptions,
    ),
    DataCenterPowerSensorDescription(
        key="last_interruption", translation_key="last_interruption",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda r: _timestamp(r.last_interruption_ts),
    ),
)  # fmt: skip


def _timestamp(unix_s: int) -> datetime | None:
    """A device's Unix time as an aware datetime (0 = never: unknown)."""
    return dt_util.utc_from_timestamp(unix_s) if unix_s > 0 else None


ENV_SENSORS: tuple[DataCenterPowerSensorDescription[EnvReading], ...] = (
    DataCenterPowerSensorDescription(
        key="ambient_temperature", translation_key="ambient_temperature", **_TEMPERATURE,
        value_fn=lambda r: r.ambient_c,
    ),
    DataCenterPowerSensorDescription(
        key="humidity", translation_key="humidity",
        device_class=SensorDeviceClass.HUMIDITY, state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE, suggested_display_precision=0,
        value_fn=lambda r: r.humidity_pct,
    ),
)  # fmt: skip


_BY_TYPE: dict[DeviceType, tuple[DataCenterPowerSensorDescription[Any], ...]] = {
    DeviceType.ATS: ATS_SENSORS,
    DeviceType.MPDU: MPDU_SENSORS,
    DeviceType.SBM: SBM_SENSORS,
    DeviceType.ENV: ENV_SENSORS,
}


def _descriptions(
    identity: DeviceIdentity, options: Mapping[str, Any]
) -> list[DataCenterPowerSensorDescription[Any]]:
    return [*_BY_TYPE[identity.device_type], *ats_source_sensors(identity, options)]


def _entities(coordinator: TelemetryCoordinator, identity: DeviceIdentity) -> Iterable[Entity]:
    return [
        *(
            DataCenterPowerSensor(coordinator, identity, description)
            for description in _descriptions(identity, coordinator.config_entry.options)
        ),
        *prediction_sensors(coordinator.config_entry, identity),
    ]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DataCenterPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors of every device of the plant (and of devices found later), and the
    engine's predictions for every ATS/MPDU."""
    async_setup_plant_entities(entry, async_add_entities, _entities)
    async_add_entities([MigrationSensor(entry, entry.runtime_data.migrations)])
    async_add_entities(plant_sensors(entry))


class DataCenterPowerSensor[R: Reading](DataCenterPowerEntity[R], SensorEntity):
    """One measurement of one plant device."""

    entity_description: DataCenterPowerSensorDescription[R]

    def __init__(
        self,
        coordinator: TelemetryCoordinator,
        identity: DeviceIdentity,
        description: DataCenterPowerSensorDescription[R],
    ) -> None:
        """Set up the sensor; enum sensors take their options from the device's identity."""
        super().__init__(coordinator, identity.plant_id, description)
        if description.options_fn is not None:
            self._attr_options = description.options_fn(identity)

    @property
    @override
    def native_value(self) -> StateType | datetime:
        """The value from the latest reading."""
        reading = self.reading
        return None if reading is None else self.entity_description.value_fn(reading)

    @override
    def state_key(self) -> tuple[Any, ...]:
        """Availability and the value at its display precision (a change smaller than what the
        UI shows writes no new state)."""
        value = self.native_value
        digits = self.entity_description.suggested_display_precision
        if isinstance(value, float) and digits is not None:
            value = round(value, digits)
        return (self.available, value)
