"""Prediction and migration entities: health, failure risk, time to failure, forecast peak, and
the plant's migration sensor.

They read the decision coordinator's data (the engine's decisions, forecasts included; never
the policy object, which an executor job changes) and the migration manager, not the telemetry,
so they live apart from the per-device telemetry entities; ``sensor.py`` and ``binary_sensor.py``
add them through the factories at the bottom.
"""

from __future__ import annotations

from typing import Any, Final, override
from weakref import WeakKeyDictionary

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorStateClass,
)
from homeassistant.const import PERCENTAGE, UnitOfElectricCurrent
from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.update_coordinator import CoordinatorEntity
from homeassistant.util import dt as dt_util

from . import migration
from .const import DOMAIN, MANUFACTURER
from .decisions import DecisionCoordinator
from .device.models import DeviceIdentity, DeviceType
from .engine.faults import unit_failure
from .engine.forecast import Forecast, Quantile
from .executor import FINAL_STATES, MigrationRecord, MigrationState
from .migration import MigrationManager, describe
from .presentation import conservative_ttf_s, ttf_text
from .ranges import circuit_span
from .runtime import DataCenterPowerConfigEntry
from .status import load_at_risk, why_still_on

UNSHAPED_MODELS = frozenset({"no-data", "fallback-mean"})
"""Forecast models that know no daily shape yet (too little history)."""
NO_FAILURE = "none"
"""Time-to-failure state of a unit that is not expected to fail."""
QUANTILES: tuple[Quantile, ...] = ("p10", "p50", "p90")
"""The forecast band's sensors (the dashboard draws them beside the measured load)."""
FORECAST_POINTS = 24
"""Points of the forecast series kept as an attribute (small enough for the recorder)."""
_SHAPED: WeakKeyDictionary[DecisionCoordinator, tuple[object, bool]] = WeakKeyDictionary()
"""Per decision coordinator: its latest forecasts (by identity) and whether any circuit's
forecast there has a daily shape (``ForecastPeakSensor._forecast``)."""


class PredictionEntity(CoordinatorEntity[DecisionCoordinator]):
    """An entity of one ATS/MPDU device fed by the engine's decisions."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: DecisionCoordinator, plant_id: str, key: str) -> None:
        """Attach to the component's device (registered by the telemetry coordinator)."""
        super().__init__(coordinator)
        telemetry = coordinator.telemetry
        self.plant_id = plant_id
        self._attr_translation_key = key
        self._attr_unique_id = f"{coordinator.config_entry.unique_id}:{plant_id}:{key}"
        self._attr_device_info = DeviceInfo(identifiers={telemetry.identifier(plant_id)})

    @override
    async def async_added_to_hass(self) -> None:
        """Follow the component's telemetry as well: a component that cannot be read has no
        current assessment, whatever the last decision said. Through the device's listener
        (only when its reading or availability changed, a few devices per loop turn): at
        1,000 circuits the ~340 prediction entities of the ATSs and MPDUs, written at every
        poll in one go, held the event loop ~40 ms."""
        await super().async_added_to_hass()
        self.async_on_remove(
            self.coordinator.telemetry.async_add_listener(
                self._handle_coordinator_update, self.plant_id
            )
        )

    @property
    @override
    def available(self) -> bool:
        """Available once the engine has assessed this component, and while its telemetry is
        current (the last poll succeeded and this component answered it)."""
        data = self.coordinator.data
        telemetry = self.coordinator.telemetry
        return (
            super().available
            and data is not None
            and self.plant_id in data.assessments
            and telemetry.last_update_success
            and telemetry.data.available(self.plant_id)
        )

    def failed_now(self) -> bool:
        """Whether the latest poll shows this unit failed (dead although fed and switched on),
        or it failed and no poll has shown it live since (switched off after it failed): at
        risk at once, before the policy's next decision says so."""
        snapshot = self.coordinator.telemetry.data
        if unit_failure(snapshot.topology, snapshot.readings, self.plant_id) is not None:
            return True
        return self.plant_id in self.coordinator.config_entry.runtime_data.faults.current().failed


class HealthSensor(PredictionEntity, SensorEntity):
    """Health score 0-100 (100: behaves like its learned baseline; 0: failed)."""

    _attr_native_unit_of_measurement = PERCENTAGE
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_suggested_display_precision = 0

    @property
    @override
    def native_value(self) -> float | None:
        """The health score (0 for a unit that has failed: never "100 %" when it is dead)."""
        if self.failed_now():
            return 0.0
        return round(self.coordinator.data.assessments[self.plant_id].health, 1)


class TimeToFailureSensor(PredictionEntity, SensorEntity):
    """Hours to failure, conservative: the estimate's 10th percentile (what plans use), with
    the 10th/50th/90th percentiles as attributes.

    ``none`` for a unit that is not expected to fail (no failure-risk alert: a healthy unit has
    no time to failure, which is not the same as not knowing it); unknown while the trend is
    too short to extrapolate; 0 with ``failed: true`` once the unit has failed (dead although fed), so a
    ``numeric_state`` automation "below N hours" fires for a failure as well, and no forecast is
    shown for what has already happened."""

    def _failed(self) -> bool:
        status = self.coordinator.data.status.get(self.plant_id)
        return (status is not None and status.failed) or self.failed_now()

    @property
    @override
    def native_value(self) -> float | str | None:
        """Hours until the estimated failure (10th percentile), 0 when failed, or ``none``."""
        if self._failed():
            return 0
        a = self.coordinator.data.assessments[self.plant_id]
        if not a.alert:
            return NO_FAILURE  # a departure still below the alert is no predicted failure
        if a.time_to_failure_s is None:
            return None
        return _hours(conservative_ttf_s(a))

    @property
    @override
    def extra_state_attributes(self) -> dict[str, Any]:
        """The estimate in words, whether the unit has failed, and the percentiles (hours)."""
        a = self.coordinator.data.assessments[self.plant_id]
        failed = self._failed()
        attrs: dict[str, Any] = {"estimate": ttf_text(a, failed=failed), "failed": failed}
        if not failed and a.alert and a.time_to_failure_s is not None:
            attrs["p10_h"] = _hours(conservative_ttf_s(a))
            attrs["p50_h"] = _hours(a.time_to_failure_s)
            high = a.time_to_failure_high_s
            attrs["p90_h"] = None if high is None else _hours(max(high, a.time_to_failure_s))
        return attrs


def _hours(seconds: float) -> float:
    return round(seconds / 3600.0, 1)


_MOVED: WeakKeyDictionary[DecisionCoordinator, tuple[object, object, dict[str, list[str]]]] = (
    WeakKeyDictionary()
)
"""Per decision coordinator: (the snapshot, the decision, element -> circuits moved onto or
off it since the decision's lineup), computed once for all of the plant's forecast sensors."""


def _moved_by_element(coordinator: DecisionCoordinator) -> dict[str, list[str]]:
    """Element -> the circuits on another path now than in the lineup the latest decision's
    forecasts are sums under. Circuits without a path now (silent, off) are not counted: they
    did not move."""
    decisions = coordinator.data
    snapshot = coordinator.telemetry.data
    cached = _MOVED.get(coordinator)
    if cached is not None and cached[0] is snapshot and cached[1] is decisions:
        return cached[2]
    out: dict[str, list[str]] = {}
    lineup = decisions.lineup
    topology = snapshot.topology
    for circuit, now in snapshot.assignment.items() if lineup else ():
        then = lineup.get(circuit)
        if now is None or now == then:
            continue
        before = (
            set(topology.upstream(then)) if then is not None and then in topology.mpdus else set()
        )
        after = set(topology.upstream(now)) if now in topology.mpdus else set()
        for element in before ^ after:
            out.setdefault(element, []).append(circuit)
    _MOVED[coordinator] = (snapshot, decisions, out)
    return out


class ForecastPeakSensor(PredictionEntity, SensorEntity):
    """The forecast (P90) peak load over the horizon, with its time and the series."""

    _attr_device_class = SensorDeviceClass.CURRENT
    _attr_native_unit_of_measurement = UnitOfElectricCurrent.AMPERE
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_suggested_display_precision = 1
    _unrecorded_attributes = frozenset({"forecast"})

    def _moved(self) -> list[str]:
        """Circuits that moved onto or off this element since its forecast was summed (by hand,
        by their bypass): the forecast is another lineup's until the next decision (within a
        poll), never shown as this one's (it read 0 A beside 4.9 A measured)."""
        return _moved_by_element(self.coordinator).get(self.plant_id, [])

    def _forecast(self) -> Forecast | None:
        """The component's forecast once it has a daily shape to go on: a flat mean of the first
        hours (``fallback-mean``) is no forecast of a peak (the state is unknown until then);
        none while circuits have moved onto or off the element since it was made."""
        if self._moved():
            return None
        forecasts = self.coordinator.data.forecasts
        fc = forecasts.get(self.plant_id)
        if fc is None:
            return None
        # Element forecasts are sums of circuit forecasts: look at what those know. Once per
        # forecast update for all of the plant's forecast sensors (at 1,000 circuits and ~190
        # sensors, asking every circuit for every sensor held the event loop for 0.3-0.8 s).
        shaped = _SHAPED.get(self.coordinator)
        if shaped is None or shaped[0] is not forecasts:
            circuits = self.coordinator.telemetry.data.topology.circuits
            known = any(
                cfc.model not in UNSHAPED_MODELS
                for c in circuits
                if (cfc := forecasts.get(c)) is not None
            )
            shaped = (forecasts, known)
            _SHAPED[self.coordinator] = shaped
        return fc if shaped[1] else None

    def _why_unknown(self) -> str:
        if moved := self._moved():
            return (
                f"{circuit_span(moved)} moved onto or off {self.plant_id} since the last "
                "forecast: the new lineup's forecast is made at the next decision (within a "
                "poll or two)"
            )
        policy = self.coordinator.policy
        fc = policy.element_forecast(self.plant_id)
        if fc is None:
            return "no forecast yet: it is made at the next decision tick (every 5 minutes)"
        hours = policy.config.min_history_s / 3600.0
        return (
            f"learning the daily load shape: a peak is forecast once about {hours:.0f} h of "
            f"history is known (until then the forecast is a flat mean of {fc.p50.mean():.1f} A; "
            "datacenter_power.get_forecast returns it)"
        )

    @property
    @override
    def native_value(self) -> float | None:
        """Peak of the P90 forecast."""
        fc = self._forecast()
        return None if fc is None else round(fc.peak("p90")[1], 2)

    @property
    @override
    def extra_state_attributes(self) -> dict[str, Any]:
        """When the peak is, and the forecast thinned to a few points; while there is no peak
        yet, why (``forecast_status``)."""
        fc = self._forecast()
        if fc is None:
            return {"forecast_status": self._why_unknown()}
        peak_s, _ = fc.peak("p90")
        return {
            "peak_time": dt_util.utc_from_timestamp(peak_s).isoformat(),
            "forecast": fc.as_dict(max_points=FORECAST_POINTS),
        }


class ForecastBandSensor(ForecastPeakSensor):
    """The load forecast for the present moment at one quantile (P10, P50 or P90).

    Home Assistant's cards cannot shade a band, but the three sensors' history drawn beside the
    measured load (a history graph on the plant dashboard) shows the forecast band as three
    lines: the load should run between P10 and P90 most of the time."""

    _unrecorded_attributes = frozenset()

    def __init__(self, coordinator: DecisionCoordinator, plant_id: str, quantile: Quantile) -> None:
        """One quantile of one component's forecast."""
        super().__init__(coordinator, plant_id, f"load_forecast_{quantile}")
        self.quantile: Quantile = quantile

    @property
    @override
    def native_value(self) -> float | None:
        """The forecast at this moment (its first point until the next forecast)."""
        fc = self._forecast()
        if fc is None:
            return None
        return round(fc.value_at(dt_util.utcnow().timestamp(), self.quantile), 2)

    @property
    @override
    def extra_state_attributes(self) -> dict[str, Any]:
        """Which quantile; while there is no shaped forecast yet, why."""
        fc = self._forecast()
        if fc is None:
            return {"quantile": self.quantile, "forecast_status": self._why_unknown()}
        return {"quantile": self.quantile, "model": fc.model}


class FailureRiskBinarySensor(PredictionEntity, BinarySensorEntity):
    """On when the engine predicts this component fails within the horizon, or it has failed."""

    _attr_device_class = BinarySensorDeviceClass.PROBLEM

    @property
    @override
    def is_on(self) -> bool:
        """The debounced failure-risk judgement; on at once for a unit the last poll shows
        failed."""
        return self.coordinator.data.assessments[self.plant_id].alert or self.failed_now()

    @property
    @override
    def extra_state_attributes(self) -> dict[str, Any]:
        """The contributing signals, in words, and the figures behind them."""
        a = self.coordinator.data.assessments[self.plant_id]
        status = self.coordinator.data.status.get(self.plant_id)
        failed = (status is not None and status.failed) or self.failed_now()
        return {
            "failed": failed,
            "signals": list(a.signals),
            "failure_probability": round(a.failure_probability, 3),
            "time_to_failure_h": 0.0
            if failed
            else None
            if a.time_to_failure_s is None
            else round(conservative_ttf_s(a) / 3600.0, 2),
        }


HELD: Final = "held"
"""The migration sensor's state while a migration interrupted by a restart waits for a person
(its record says ``aborted``: nothing runs, but it is not over)."""

LOAD_AT_RISK: Final = "load_at_risk"
"""Migration sensor state while no migration runs and a unit predicted to fail still carries
load: the last migration's ``completed`` would suggest that all is done."""


class MigrationSensor(SensorEntity):
    """The plant's migration state (idle, running, verifying, completed, aborted, rolled back,
    held; ``load_at_risk`` when none runs and a unit predicted to fail still carries circuits)."""

    _attr_has_entity_name = True
    _attr_translation_key = "migration"
    _attr_device_class = SensorDeviceClass.ENUM
    _attr_should_poll = False

    def __init__(self, entry: DataCenterPowerConfigEntry, manager: MigrationManager) -> None:
        """One per plant, on the plant's hub device."""
        self._manager = manager
        self._entry = entry
        self._attr_options = [*(s.value for s in MigrationState), HELD, LOAD_AT_RISK]
        self._attr_unique_id = f"{entry.unique_id}:migration"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, f"{entry.unique_id}")},
            name=entry.title,
            manufacturer=MANUFACTURER,
            model="Plant",
        )

    @override
    async def async_added_to_hass(self) -> None:
        """Follow the manager's progress, and the decisions and polls that say whether load is
        still on a unit at risk."""
        self.async_on_remove(self._manager.add_listener(self._changed))
        runtime = self._entry.runtime_data
        self.async_on_remove(runtime.decisions.async_add_listener(self._changed))
        self.async_on_remove(runtime.telemetry.async_add_listener(self._changed))

    @callback
    def _changed(self) -> None:
        self.async_write_ha_state()

    def _shown(self) -> MigrationRecord | None:
        """The migration the sensor is about: a running one, else one held for a person (it
        waits for a decision), else the latest."""
        manager = self._manager
        held = manager.held()
        return manager.active or (held[-1] if held else None) or manager.latest

    @property
    @override
    def native_value(self) -> str:
        """That migration's state (``held`` while it waits for a person; idle when there has
        been none), or ``load_at_risk`` while none runs or waits and a unit predicted to fail
        still carries circuits."""
        shown = self._shown()
        if shown is not None and shown in self._manager.held():
            return HELD
        if (shown is None or shown.state in FINAL_STATES) and load_at_risk(self._entry):
            return LOAD_AT_RISK
        return MigrationState.IDLE.value if shown is None else shown.state.value

    @property
    @override
    def extra_state_attributes(self) -> dict[str, Any]:
        """Progress and what it moves; the load still on units at risk and why; and the
        flapping guard: path changes per circuit within the last hour, against the limit."""
        latest = self._manager.latest
        at_risk: dict[str, Any] = {}
        if on := load_at_risk(self._entry):
            at_risk = {
                "last_state": MigrationState.IDLE.value if latest is None else latest.state.value,
                "load_at_risk": {u: list(c) for u, c in on.items()},
                "why_still_there": "; ".join(
                    f"{unit} still carries {circuit_span(c)}: {why_still_on(self._entry, unit, c)}"
                    for unit, c in on.items()
                ),
            }
        return {
            **describe(self._shown()),
            **at_risk,
            "path_changes_last_hour": self._manager.path_changes_last_hour(),
            # Read at call time: the guard reads it so (a test that lowers it sees it here too).
            "path_changes_limit_per_hour": migration.MAX_PATH_CHANGES_PER_HOUR,
        }


def prediction_sensors(entry: DataCenterPowerConfigEntry, identity: DeviceIdentity) -> list[Entity]:
    """Health, time to failure and forecast peak of an ATS or MPDU (nothing for others)."""
    if identity.device_type not in (DeviceType.ATS, DeviceType.MPDU):
        return []
    forecast, pid = entry.runtime_data.decisions, identity.plant_id
    return [
        HealthSensor(forecast, pid, "health"),
        TimeToFailureSensor(forecast, pid, "time_to_failure"),
        ForecastPeakSensor(forecast, pid, "forecast_peak"),
        *(ForecastBandSensor(forecast, pid, q) for q in QUANTILES),
    ]


def prediction_binary_sensors(
    entry: DataCenterPowerConfigEntry, identity: DeviceIdentity
) -> list[Entity]:
    """The failure-risk binary sensor of an ATS or MPDU (nothing for others)."""
    if identity.device_type not in (DeviceType.ATS, DeviceType.MPDU):
        return []
    return [
        FailureRiskBinarySensor(entry.runtime_data.decisions, identity.plant_id, "failure_risk")
    ]
