"""Device conditions: "health below" and "failure risk on", offered on every ATS, MPDU and
circuit device.

An ATS or MPDU is judged on its own assessment; a circuit on the elements it draws through now
(its MPDU and that MPDU's ATS; all of its paths while it is off), the weakest of them. A unit
the latest poll shows failed is at risk and below any health (``faults.py``).
"""

from __future__ import annotations

from typing import Any

import probatio as vol
from homeassistant.const import (
    CONF_CONDITION,
    CONF_DEVICE_ID,
    CONF_DOMAIN,
    CONF_TYPE,
    PERCENTAGE,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import condition, selector
from homeassistant.helpers.config_validation import DEVICE_CONDITION_BASE_SCHEMA
from homeassistant.helpers.typing import ConfigType, TemplateVarsType

from .activity import latest_decisions
from .const import DOMAIN
from .engine.degradation import HealthAssessment
from .runtime import DataCenterPowerConfigEntry

HEALTH_BELOW = "health_below"
FAILURE_RISK = "failure_risk"
CONDITION_TYPES = (HEALTH_BELOW, FAILURE_RISK)
CONF_BELOW = "below"

CONDITION_SCHEMA = DEVICE_CONDITION_BASE_SCHEMA.extend(
    {
        vol.Required(CONF_TYPE): vol.In(CONDITION_TYPES),
        vol.Optional(CONF_BELOW, default=80.0): vol.All(
            vol.Coerce(float), vol.Range(min=0, max=100)
        ),
    }
)


def plant_component(
    hass: HomeAssistant, device_id: str
) -> tuple[DataCenterPowerConfigEntry, str] | None:
    """The loaded plant and plant id of an ATS, MPDU or circuit device (None otherwise)."""
    for entry in hass.config_entries.async_loaded_entries(DOMAIN):
        runtime = getattr(entry, "runtime_data", None)
        if runtime is None:
            continue
        pid = runtime.telemetry.plant_id_of_device(device_id)
        if pid is None:
            continue
        topology = runtime.telemetry.data.topology
        if pid in topology.ats or pid in topology.mpdus or pid in topology.circuits:
            return entry, pid
    return None


def _elements_of(entry: DataCenterPowerConfigEntry, plant_id: str) -> set[str]:
    """The ATSs/MPDUs that matter to a component (a circuit: the elements it draws through)."""
    runtime = entry.runtime_data
    topology = runtime.telemetry.data.topology
    if plant_id in topology.circuits:
        path = runtime.telemetry.data.assignment.get(plant_id)
        paths = [path] if path is not None else list(topology.circuits[plant_id].paths)
        return {e for p in paths if p in topology.mpdus for e in topology.upstream(p)}
    return {plant_id}


def failed_of(entry: DataCenterPowerConfigEntry, plant_id: str) -> bool:
    """Whether an element that matters to the component has failed (the latest poll)."""
    return bool(_elements_of(entry, plant_id) & set(entry.runtime_data.faults.current().failed))


def assessments_of(entry: DataCenterPowerConfigEntry, plant_id: str) -> list[HealthAssessment]:
    """The assessments that matter to a component (a circuit: the elements it draws through)."""
    decisions = latest_decisions(entry)
    if decisions is None:
        return []
    return [
        decisions.assessments[e]
        for e in sorted(_elements_of(entry, plant_id))
        if e in decisions.assessments
    ]


async def async_get_conditions(hass: HomeAssistant, device_id: str) -> list[dict[str, Any]]:
    """The conditions of an ATS, MPDU or circuit device."""
    if plant_component(hass, device_id) is None:
        return []
    return [
        {
            CONF_CONDITION: "device",
            CONF_DEVICE_ID: device_id,
            CONF_DOMAIN: DOMAIN,
            CONF_TYPE: kind,
        }
        for kind in CONDITION_TYPES
    ]


async def async_get_condition_capabilities(
    hass: HomeAssistant, config: ConfigType
) -> dict[str, vol.Schema]:
    """``health_below`` asks for the threshold, in % (a number field with its unit, labelled by
    ``device_automation.extra_fields.below`` in the translations)."""
    if config[CONF_TYPE] != HEALTH_BELOW:
        return {}
    return {
        "extra_fields": vol.Schema(
            {
                vol.Required(CONF_BELOW, default=80.0): selector.NumberSelector(
                    selector.NumberSelectorConfig(
                        min=0,
                        max=100,
                        step=1,
                        unit_of_measurement=PERCENTAGE,
                        mode=selector.NumberSelectorMode.BOX,
                    )
                )
            }
        )
    }


@callback
def async_condition_from_config(
    hass: HomeAssistant, config: ConfigType
) -> condition.ConditionCheckerType:
    """A checker reading the engine's latest assessments."""
    device_id: str = config[CONF_DEVICE_ID]
    kind: str = config[CONF_TYPE]
    below = float(config.get(CONF_BELOW, 80.0))

    @callback
    def check(hass: HomeAssistant, variables: TemplateVarsType = None) -> bool:
        found = plant_component(hass, device_id)
        if found is None:
            return False
        assessments = assessments_of(*found)
        if not assessments:
            return False
        if failed_of(*found):
            return True  # a failed unit is at risk, and its health is 0
        if kind == FAILURE_RISK:
            return any(a.alert for a in assessments)
        return min(a.health for a in assessments) < below

    return check
