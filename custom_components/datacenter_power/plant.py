"""Plant-wide entities on the plant's own device: the plant status, total load, headroom,
components at risk, the proposal waiting for approval, and the button that approves it.

They are what a dashboard's first row shows: whether anything is wrong and what to do
(``status.py``), how much the plant carries, how much room is left under the continuous limits,
what is at risk, and (in approval mode) what the policy wants to do and a way to say yes. They
follow both coordinators (telemetry for loads, decisions for risks and proposals) and the
migrations.
"""

from __future__ import annotations

from typing import Any, override

from homeassistant.components.button import ButtonEntity
from homeassistant.components.sensor import SensorDeviceClass, SensorEntity, SensorStateClass
from homeassistant.const import UnitOfElectricCurrent
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError, Unauthorized
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .activity import async_fire_activity, async_record_refusal, latest_decisions
from .const import DOMAIN, MANUFACTURER
from .coordinator import TelemetryCoordinator
from .device.models import AtsReading
from .events import PROPOSAL_APPROVED
from .ranges import circuit_span
from .recorded import async_who, by
from .runtime import DataCenterPowerConfigEntry
from .status import STATES, load_at_risk, plant_status, why_still_on

MAX_STATE = 255


def plant_device_info(entry: DataCenterPowerConfigEntry) -> DeviceInfo:
    """The plant's own device (shared with the migration sensor)."""
    return DeviceInfo(
        identifiers={(DOMAIN, f"{entry.unique_id}")},
        name=entry.title,
        manufacturer=MANUFACTURER,
        model="Plant",
    )


class PlantEntity(CoordinatorEntity[TelemetryCoordinator]):
    """An entity of the plant as a whole; also follows the decision coordinator."""

    _attr_has_entity_name = True

    def __init__(self, entry: DataCenterPowerConfigEntry, key: str) -> None:
        """One per plant."""
        super().__init__(entry.runtime_data.telemetry)
        self.entry = entry
        self._attr_translation_key = key
        self._attr_unique_id = f"{entry.unique_id}:plant:{key}"
        self._attr_device_info = plant_device_info(entry)

    @override
    async def async_added_to_hass(self) -> None:
        """Follow the engine's decisions too."""
        await super().async_added_to_hass()
        runtime = self.entry.runtime_data
        self.async_on_remove(runtime.decisions.async_add_listener(self._handle_coordinator_update))
        self.async_on_remove(runtime.migrations.add_listener(self._handle_coordinator_update))


class TotalLoadSensor(PlantEntity, SensorEntity):
    """The plant's load: the sum of what its ATSs carry."""

    _attr_device_class = SensorDeviceClass.CURRENT
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_native_unit_of_measurement = UnitOfElectricCurrent.AMPERE
    _attr_suggested_display_precision = 1

    @property
    @override
    def native_value(self) -> float | None:
        """Sum of the ATS load currents (unknown while no ATS answers)."""
        readings = [r for r in self.coordinator.data.readings.values() if isinstance(r, AtsReading)]
        return round(sum(r.load_current_a for r in readings), 2) if readings else None


class HeadroomSensor(PlantEntity, SensorEntity):
    """Room left under the continuous limits: the smallest headroom of any ATS or MPDU."""

    _attr_device_class = SensorDeviceClass.CURRENT
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_native_unit_of_measurement = UnitOfElectricCurrent.AMPERE
    _attr_suggested_display_precision = 1

    def _headroom(self) -> dict[str, float]:
        snapshot = self.coordinator.data
        topology = snapshot.topology
        loads = topology.element_loads(snapshot.assignment, snapshot.circuit_a)
        return {
            e: round(topology.limit_a(e) - float(loads.get(e, 0.0)), 2)
            for e in topology.elements
            if e not in topology.mpdus or e in snapshot.energized_mpdus
        }

    @property
    @override
    def native_value(self) -> float | None:
        """The tightest element's headroom (A)."""
        headroom = self._headroom()
        return min(headroom.values()) if headroom else None

    @property
    @override
    def extra_state_attributes(self) -> dict[str, Any]:
        """Which element is tightest, and every element's headroom."""
        headroom = self._headroom()
        if not headroom:
            return {}
        return {"tightest": min(headroom, key=lambda e: headroom[e]), "elements": headroom}


class AtRiskSensor(PlantEntity, SensorEntity):
    """How many components the engine predicts to fail or have failed, and which."""

    _attr_state_class = SensorStateClass.MEASUREMENT

    def _at_risk(self) -> tuple[frozenset[str], frozenset[str]] | None:
        """(components at risk: predicted to fail or failed, the failed ones)."""
        decisions = latest_decisions(self.entry)
        if decisions is None:
            return None
        failed = frozenset(self.entry.runtime_data.faults.current().failed)
        return decisions.alerts | failed, failed

    @property
    @override
    def native_value(self) -> int | None:
        """The number of components whose failure risk is on, failed ones included."""
        at_risk = self._at_risk()
        return None if at_risk is None else len(at_risk[0])

    @property
    @override
    def extra_state_attributes(self) -> dict[str, Any]:
        """The components at risk, those that have failed, those above their limit now and
        those forecast to reach it."""
        at_risk = self._at_risk()
        decisions = latest_decisions(self.entry)
        if at_risk is None or decisions is None:
            return {}
        return {
            "components": sorted(at_risk[0]),
            "failed": sorted(at_risk[1]),
            "over_limit": sorted(self.entry.runtime_data.faults.current().over),
            "overload_forecast": sorted({o.element for o in decisions.overloads}),
        }


class ProposalSensor(PlantEntity, SensorEntity):
    """The migration waiting for approval: ``none`` when there is none and nothing is at risk;
    ``none_at_risk`` when there is none although a unit predicted to fail still carries load
    (the attribute ``why_none`` says why nothing is proposed and what to do)."""

    @property
    @override
    def native_value(self) -> str:
        """The proposal in one line."""
        book = self.entry.runtime_data.proposals
        first = book.first()
        if first is None:
            return "none_at_risk" if load_at_risk(self.entry) else "none"
        data = book.describe(*first)
        text = f"{data['kind']} {data['component'] or 'plant'}: {data['summary']}"
        return text[:MAX_STATE]

    @property
    @override
    def extra_state_attributes(self) -> dict[str, Any]:
        """The proposal id, reason and staged plan; with none, the load still at risk and why
        nothing is proposed."""
        book = self.entry.runtime_data.proposals
        first = book.first()
        if first is None:
            on = load_at_risk(self.entry)
            attrs: dict[str, Any] = {"approval_mode": book.approval_mode}
            if on:
                attrs["load_at_risk"] = {u: list(c) for u, c in on.items()}
                attrs["why_none"] = "; ".join(
                    f"{unit} still carries {circuit_span(c)}: {why_still_on(self.entry, unit, c)}"
                    for unit, c in on.items()
                )
            return attrs
        data = book.describe(*first)
        return {
            "approval_mode": book.approval_mode,
            **{k: data[k] for k in ("proposal_id", "kind", "component", "reason", "plan")},
        }


class PlantStatusSensor(PlantEntity, SensorEntity):
    """Whether anything is wrong, in one word (``ok`` only when nothing is), the severity for a
    colour (critical / warning / ok) and what to do, computed by ``status.py``."""

    _attr_device_class = SensorDeviceClass.ENUM

    def __init__(self, entry: DataCenterPowerConfigEntry, key: str) -> None:
        """One per plant; its states are ``status.STATES``."""
        super().__init__(entry, key)
        self._attr_options = list(STATES)

    @property
    @override
    def available(self) -> bool:
        """Always: a poll that failed is a status to show (``no_telemetry``), not a reason to
        hide it."""
        return True

    @property
    @override
    def native_value(self) -> str:
        """The most severe problem's kind."""
        return plant_status(self.entry).state

    @property
    @override
    def extra_state_attributes(self) -> dict[str, Any]:
        """Severity, the first problem, every problem with what to do, and the load still on
        units predicted to fail."""
        status = plant_status(self.entry)
        return {
            "severity": status.severity,
            "summary": status.problems[0].sentence if status.problems else "All is well",
            "what_to_do": status.what_to_do,
            "problems": [p.sentence for p in status.problems],
            "components": sorted({p.component for p in status.problems if p.component}),
            "load_at_risk": {u: list(c) for u, c in status.load_at_risk.items()},
        }


class ApproveButton(PlantEntity, ButtonEntity):
    """Approves the proposal shown by the proposal sensor (approval mode only)."""

    @property
    @override
    def available(self) -> bool:
        """Only while a proposal waits (in approval mode)."""
        book = self.entry.runtime_data.proposals
        return super().available and book.approval_mode and book.first() is not None

    @override
    async def async_press(self) -> None:
        """Run the proposal (administrators only)."""
        context = self._context
        if context is not None and context.user_id is not None:
            user = await self.hass.auth.async_get_user(context.user_id)
            if user is not None and not user.is_admin:
                raise Unauthorized(context=context)
        book = self.entry.runtime_data.proposals
        first = book.first()
        if first is None:
            raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_proposal")
        pid, action = first
        try:
            migration_id = await book.async_approve(pid, context)
        except HomeAssistantError as err:  # the logbook says why, as for the approve action
            async_record_refusal(
                self.hass, self.entry, action.target, f"approve proposal {pid}", str(err), context
            )
            raise
        who = await async_who(self.hass, context)
        async_fire_activity(
            self.hass,
            self.entry,
            action.target,
            PROPOSAL_APPROVED,
            f"proposal {pid} approved {by(who)} (Approve button): it runs as migration "
            f"{migration_id}",
            context=context,
            extra={"proposal_id": pid, "who": who},
        )


def plant_sensors(entry: DataCenterPowerConfigEntry) -> list[Entity]:
    """The plant-wide sensors."""
    return [
        PlantStatusSensor(entry, "plant_status"),
        TotalLoadSensor(entry, "plant_load"),
        HeadroomSensor(entry, "plant_headroom"),
        AtRiskSensor(entry, "components_at_risk"),
        ProposalSensor(entry, "proposal"),
    ]


def plant_buttons(entry: DataCenterPowerConfigEntry) -> list[Entity]:
    """The approve button."""
    return [ApproveButton(entry, "approve_proposal")]
