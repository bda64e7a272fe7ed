"""The integration's actions: plan, run and cancel staged migrations, isolate and restore.

Registered once in ``async_setup`` (not per entry). A component is named by its Home Assistant
device id or by its plant id (``ats1``); the entry that owns it is found from that. Actions that
change the power path are admin-only. Every invalid call raises ``ServiceValidationError`` with
a translation key, before anything is commanded.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

import probatio as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.service import async_register_admin_service

from .const import DOMAIN
from .coordinator import DataCenterPowerConfigEntry
from .device.errors import DeviceLayerError
from .device.models import DeviceType
from .engine.planner import Infeasible, Plan
from .executor import MigrationState
from .migration import MigrationRequest, plan_for
from .presentation import plan_response

ATTR_COMPONENT: Final = "component"
ATTR_TARGET: Final = "target"
ATTR_MAX_STEP_AMPS: Final = "max_step_amps"
ATTR_STEP_INTERVAL: Final = "step_interval"
ATTR_DRY_RUN: Final = "dry_run"
ATTR_MIGRATION_ID: Final = "migration_id"

SERVICE_PLAN_MIGRATION: Final = "plan_migration"
SERVICE_MIGRATE_LOAD: Final = "migrate_load"
SERVICE_CANCEL_MIGRATION: Final = "cancel_migration"
SERVICE_ISOLATE: Final = "isolate"
SERVICE_RESTORE: Final = "restore"
SERVICE_GET_FORECAST: Final = "get_forecast"

_PLAN_FIELDS: Final = {
    vol.Required(ATTR_COMPONENT): cv.string,
    vol.Optional(ATTR_TARGET): cv.string,
    vol.Optional(ATTR_MAX_STEP_AMPS): vol.Coerce(float),
}
PLAN_SCHEMA: Final = vol.Schema(_PLAN_FIELDS)
MIGRATE_SCHEMA: Final = vol.Schema(
    {
        **_PLAN_FIELDS,
        vol.Optional(ATTR_STEP_INTERVAL): vol.Coerce(float),
        vol.Optional(ATTR_DRY_RUN, default=False): cv.boolean,
    }
)
CANCEL_SCHEMA: Final = vol.Schema({vol.Optional(ATTR_MIGRATION_ID): cv.string})
COMPONENT_SCHEMA: Final = vol.Schema(
    {
        vol.Required(ATTR_COMPONENT): cv.string,
        vol.Optional(ATTR_MAX_STEP_AMPS): vol.Coerce(float),
        vol.Optional(ATTR_STEP_INTERVAL): vol.Coerce(float),
    }
)


def _invalid(key: str, **placeholders: str) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


def _entries(hass: HomeAssistant) -> list[DataCenterPowerConfigEntry]:
    return [
        e for e in hass.config_entries.async_entries(DOMAIN) if e.state is ConfigEntryState.LOADED
    ]


def _resolve(hass: HomeAssistant, name: str) -> tuple[DataCenterPowerConfigEntry, str]:
    """The entry owning a component named by device id or plant id, and its plant id."""
    for entry in _entries(hass):
        telemetry = entry.runtime_data.telemetry
        if name in telemetry.identities:
            return entry, name
        plant_id = telemetry.plant_id_of_device(name)
        if plant_id is not None:
            return entry, plant_id
    raise _invalid("unknown_component", component=name)


def _request(call: ServiceCall) -> tuple[DataCenterPowerConfigEntry, MigrationRequest]:
    """The plant that owns the component, and the validated request: ATS/MPDU source,
    distinct target in the same plant, positive amounts."""
    entry, component = _resolve(call.hass, call.data[ATTR_COMPONENT])
    identity = entry.runtime_data.telemetry.identity(component)
    if identity.device_type not in (DeviceType.ATS, DeviceType.MPDU):
        raise _invalid("not_a_source", component=component)
    target: str | None = None
    if ATTR_TARGET in call.data:
        target_entry, target = _resolve(call.hass, call.data[ATTR_TARGET])
        if target_entry is not entry:
            raise _invalid("target_other_plant", target=target)
        if target == component:
            raise _invalid("target_is_source", component=component)
        if entry.runtime_data.telemetry.identity(target).device_type not in (
            DeviceType.ATS,
            DeviceType.MPDU,
        ):
            raise _invalid("not_a_source", component=target)
    options = entry.options
    max_step = float(call.data.get(ATTR_MAX_STEP_AMPS, options.get(ATTR_MAX_STEP_AMPS, 40.0)))
    interval = float(call.data.get(ATTR_STEP_INTERVAL, options.get(ATTR_STEP_INTERVAL, 120.0)))
    if max_step <= 0:
        raise _invalid("not_positive", field=ATTR_MAX_STEP_AMPS, value=str(max_step))
    if interval < 0:
        raise _invalid("not_positive", field=ATTR_STEP_INTERVAL, value=str(interval))
    return entry, MigrationRequest(component, target, max_step, interval)


def _plan(entry: DataCenterPowerConfigEntry, request: MigrationRequest) -> Plan:
    result = plan_for(entry.runtime_data.telemetry.data, request)
    if isinstance(result, Infeasible):
        raise _invalid(
            "infeasible",
            component=request.component,
            element=result.element,
            amps=f"{result.excess_a:.1f}",
            reason=result.reason,
        )
    return result


async def _plan_migration(call: ServiceCall) -> ServiceResponse:
    entry, request = _request(call)
    result = plan_for(entry.runtime_data.telemetry.data, request)
    return plan_response(result, entry.runtime_data.telemetry.data.topology)


async def _migrate_load(call: ServiceCall) -> ServiceResponse:
    entry, request = _request(call)
    plan = _plan(entry, request)
    topology = entry.runtime_data.telemetry.data.topology
    if call.data[ATTR_DRY_RUN]:
        return {"migration_id": None, "dry_run": True, "plan": plan_response(plan, topology)}
    migration_id = await entry.runtime_data.migrations.async_start(plan, request)
    return {"migration_id": migration_id, "dry_run": False, "plan": plan_response(plan, topology)}


async def _cancel_migration(call: ServiceCall) -> ServiceResponse:
    wanted = call.data.get(ATTR_MIGRATION_ID)
    cancelled: list[str] = []
    for entry in _entries(call.hass):
        manager = entry.runtime_data.migrations
        if wanted is None or wanted in manager.records:
            cancelled += manager.cancel(wanted)
    if wanted is not None and not cancelled:
        raise _invalid("unknown_migration", migration_id=wanted)
    response: dict[str, Any] = {"cancelled": cancelled}
    return response


async def _isolate(call: ServiceCall) -> ServiceResponse:
    """Drain a component, then take it out of service (MPDU outputs off)."""
    entry, request = _request(call)
    plan = _plan(entry, request)
    manager = entry.runtime_data.migrations
    migration_id = await manager.async_start(plan, request)
    record = await manager.async_wait(migration_id)
    if record.state is not MigrationState.COMPLETED:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="isolate_stopped",
            translation_placeholders={
                "component": request.component,
                "reason": record.reason or record.state.value,
            },
        )
    telemetry = entry.runtime_data.telemetry
    topology = telemetry.data.topology
    mpdus = (
        topology.mpdus_of(request.component)
        if request.component in topology.ats
        else (request.component,)
    )
    await telemetry.async_refresh()
    still = [
        c
        for m in mpdus
        for c in telemetry.data.topology.circuits_through(m, telemetry.data.assignment)
    ]
    if still:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="isolate_not_empty",
            translation_placeholders={"component": request.component, "circuits": ", ".join(still)},
        )
    try:
        for mpdu in mpdus:
            await telemetry.client_for(mpdu).set_mpdu_output(telemetry.identity(mpdu), False)
    except DeviceLayerError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="command_failed",
            translation_placeholders={"element": request.component, "error": str(err)},
        ) from err
    await telemetry.async_request_refresh()
    return {"migration_id": migration_id, "isolated": list(mpdus)}


async def _restore(call: ServiceCall) -> ServiceResponse:
    """Re-energise an isolated component and move circuits back to their normal paths."""
    entry, request = _request(call)
    component = request.component
    telemetry = entry.runtime_data.telemetry
    decisions = entry.runtime_data.forecast.data
    assessment = None if decisions is None else decisions.assessments.get(component)
    if assessment is not None and assessment.alert:
        raise _invalid("component_at_risk", component=component)
    topology = telemetry.data.topology
    mpdus = topology.mpdus_of(component) if component in topology.ats else (component,)
    try:
        for mpdu in mpdus:
            if mpdu not in telemetry.data.energized_mpdus:
                await telemetry.client_for(mpdu).set_mpdu_output(telemetry.identity(mpdu), True)
    except DeviceLayerError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="command_failed",
            translation_placeholders={"element": component, "error": str(err)},
        ) from err
    await telemetry.async_refresh()
    result = plan_for(telemetry.data, replace(request, restore=True))
    if isinstance(result, Infeasible) or not result.steps:
        return {"migration_id": None, "plan": result.as_dict()}
    migration_id = await entry.runtime_data.migrations.async_start(result, request)
    return {"migration_id": migration_id, "plan": result.as_dict()}


async def _get_forecast(call: ServiceCall) -> ServiceResponse:
    """The full load forecast (P10/P50/P90) of an ATS, MPDU or circuit."""
    entry, component = _resolve(call.hass, call.data[ATTR_COMPONENT])
    forecast = entry.runtime_data.forecast.forecast_of(component)
    if forecast is None:
        raise _invalid("no_forecast", component=component)
    response: dict[str, Any] = {"component": component, **forecast}
    return response


def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_PLAN_MIGRATION,
        _plan_migration,
        schema=PLAN_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_GET_FORECAST,
        _get_forecast,
        schema=vol.Schema({vol.Required(ATTR_COMPONENT): cv.string}),
        supports_response=SupportsResponse.ONLY,
    )
    admin: list[tuple[str, Any, vol.Schema]] = [
        (SERVICE_MIGRATE_LOAD, _migrate_load, MIGRATE_SCHEMA),
        (SERVICE_CANCEL_MIGRATION, _cancel_migration, CANCEL_SCHEMA),
        (SERVICE_ISOLATE, _isolate, COMPONENT_SCHEMA),
        (SERVICE_RESTORE, _restore, COMPONENT_SCHEMA),
    ]
    for name, handler, schema in admin:
        async_register_admin_service(
            hass, DOMAIN, name, handler, schema, supports_response=SupportsResponse.OPTIONAL
        )
