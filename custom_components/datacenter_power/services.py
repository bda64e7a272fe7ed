"""The integration's actions: plan, run and cancel staged migrations, isolate and restore.

Registered once in ``async_setup`` (not per entry). A component is named by its Home Assistant
device id or by its plant id (``ats1``); the entry that owns it is found from that. Actions that
change the power path are admin-only, and each call of one is written to the plant's activity
(``@recorded_action``, ``recorded.py``). Every invalid call raises ``ServiceValidationError`` with
a translation key, before anything is commanded. Every command an action sends (the MPDU
outputs of ``isolate`` and ``restore``, the SBM moves of a migration) goes through the plant's
command path (``commands.py``): its command lock and the interlocks, as for the entities.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from typing import Any, Final

import probatio as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.util import dt as dt_util

from .const import (
    CONF_MAX_STEP_AMPS,
    CONF_STEP_INTERVAL,
    DEFAULT_MAX_STEP_AMPS,
    DEFAULT_STEP_INTERVAL,
    DOMAIN,
)
from .decisions import policy_config
from .device.models import AtsReading, DeviceType
from .engine.faults import unit_failure
from .engine.interlock import check_mpdu_output
from .engine.plan import Infeasible, Plan
from .executor import MigrationState
from .migration import MigrationRequest, plan_for
from .options import MIN_STEP_INTERVAL
from .presentation import plan_response
from .recorded import recorded_action
from .runtime import DataCenterPowerConfigEntry

ATTR_COMPONENT: Final = "component"
ATTR_TARGET: Final = "target"
ATTR_MAX_STEP_AMPS: Final = "max_step_amps"
ATTR_STEP_INTERVAL: Final = "step_interval"
ATTR_DRY_RUN: Final = "dry_run"
ATTR_MIGRATION_ID: Final = "migration_id"
ATTR_FORCE: Final = "force"

SERVICE_PLAN_MIGRATION: Final = "plan_migration"
SERVICE_MIGRATE_LOAD: Final = "migrate_load"
SERVICE_CANCEL_MIGRATION: Final = "cancel_migration"
SERVICE_ISOLATE: Final = "isolate"
SERVICE_RESTORE: Final = "restore"
SERVICE_GET_FORECAST: Final = "get_forecast"

MAX_NAME_LENGTH: Final = 255
"""Longest component name accepted (device ids are 32 characters, plant ids shorter)."""
SHOWN_NAME_LENGTH: Final = 64
"""Longest name echoed back in an error message."""
MAX_STEP_AMPS_RANGE: Final = (1.0, 1000.0)
STEP_INTERVAL_RANGE: Final = (MIN_STEP_INTERVAL, 3600.0)
STALE_POLLS: Final = 3
"""Telemetry older than this many poll intervals (and at least ``STALE_MIN_S``) is not current."""
STALE_MIN_S: Final = 30.0
_FORECASTABLE: Final = (DeviceType.ATS, DeviceType.MPDU, DeviceType.SBM)


def _number(low: float, high: float, unit: str) -> Any:
    """A finite number from ``low`` to ``high`` (the ranges of ``services.yaml``)."""

    def check(value: Any) -> float:
        if isinstance(value, bool):
            raise vol.Invalid(f"expected a number from {low:g} to {high:g} {unit}")
        try:
            number = float(value)
        except TypeError, ValueError:
            raise vol.Invalid(f"expected a number from {low:g} to {high:g} {unit}") from None
        if not math.isfinite(number) or not low <= number <= high:
            raise vol.Invalid(f"must be a finite number from {low:g} to {high:g} {unit}")
        return number

    return check


_NAME: Final = vol.All(cv.string, vol.Length(min=1, max=MAX_NAME_LENGTH))
_STEP_AMPS: Final = _number(*MAX_STEP_AMPS_RANGE, "A")
_STEP_INTERVAL: Final = _number(*STEP_INTERVAL_RANGE, "s")

_PLAN_FIELDS: Final = {
    vol.Required(ATTR_COMPONENT): _NAME,
    vol.Optional(ATTR_TARGET): _NAME,
    vol.Optional(ATTR_MAX_STEP_AMPS): _STEP_AMPS,
}
PLAN_SCHEMA: Final = vol.Schema(_PLAN_FIELDS)
MIGRATE_SCHEMA: Final = vol.Schema(
    {
        **_PLAN_FIELDS,
        vol.Optional(ATTR_STEP_INTERVAL): _STEP_INTERVAL,
        vol.Optional(ATTR_DRY_RUN, default=False): cv.boolean,
    }
)
CANCEL_SCHEMA: Final = vol.Schema({vol.Optional(ATTR_MIGRATION_ID): _NAME})
COMPONENT_SCHEMA: Final = vol.Schema(
    {
        vol.Required(ATTR_COMPONENT): _NAME,
        vol.Optional(ATTR_MAX_STEP_AMPS): _STEP_AMPS,
        vol.Optional(ATTR_STEP_INTERVAL): _STEP_INTERVAL,
    }
)
RESTORE_SCHEMA: Final = COMPONENT_SCHEMA.extend(
    {vol.Optional(ATTR_FORCE, default=False): cv.boolean}
)
FORECAST_SCHEMA: Final = vol.Schema({vol.Required(ATTR_COMPONENT): _NAME})


def _invalid(key: str, **placeholders: str) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


def _entries(hass: HomeAssistant) -> list[DataCenterPowerConfigEntry]:
    return [
        e for e in hass.config_entries.async_entries(DOMAIN) if e.state is ConfigEntryState.LOADED
    ]


def shown(name: str) -> str:
    """A caller's name as echoed in an error: at most ``SHOWN_NAME_LENGTH`` characters."""
    return name if len(name) <= SHOWN_NAME_LENGTH else f"{name[: SHOWN_NAME_LENGTH - 1]}…"


def _resolve(hass: HomeAssistant, name: str) -> tuple[DataCenterPowerConfigEntry, str]:
    """The entry owning a component named by device id or plant id, and its plant id.

    Surrounding spaces and letter case do not matter (``" ATS1 "`` is ``ats1``)."""
    key = name.strip()
    for entry in _entries(hass):
        telemetry = entry.runtime_data.telemetry
        identities = telemetry.identities
        if key in identities:
            return entry, key
        plant_id = telemetry.plant_id_of_device(key) or telemetry.plant_id_of_device(key.lower())
        if plant_id is not None:
            return entry, plant_id
        folded = [p for p in identities if p.casefold() == key.casefold()]
        if len(folded) == 1:
            return entry, folded[0]
    raise _invalid("unknown_component", component=shown(name))


def _require_current(entry: DataCenterPowerConfigEntry, *components: str) -> None:
    """Refuse to plan or act on telemetry that is not current: the last refresh failed, is too
    old, or one of ``components`` did not answer it."""
    telemetry = entry.runtime_data.telemetry
    snapshot = telemetry.data
    age = (dt_util.utcnow() - snapshot.updated_at).total_seconds()
    interval = telemetry.update_interval
    limit = max(STALE_POLLS * (interval.total_seconds() if interval else 0.0), STALE_MIN_S)
    if not telemetry.last_update_success or age > limit:
        raise _invalid("telemetry_stale", age=f"{age:.0f}")
    silent = [c for c in components if not snapshot.available(c)]
    if silent:
        raise _invalid("component_unavailable", component=", ".join(silent))


def _request(call: ServiceCall) -> tuple[DataCenterPowerConfigEntry, MigrationRequest]:
    """The plant that owns the component, and the validated request: ATS/MPDU source,
    distinct target in the same plant, positive amounts."""
    entry, component = _resolve(call.hass, call.data[ATTR_COMPONENT])
    identity = entry.runtime_data.telemetry.identity(component)
    if identity.device_type not in (DeviceType.ATS, DeviceType.MPDU):
        raise _invalid("not_a_source", component=component)
    topology = entry.runtime_data.telemetry.data.topology
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
        if target in topology.mpdus and topology.depends_on(target, component):
            raise _invalid("target_under_component", target=target, component=component)
        if component in topology.mpdus and topology.depends_on(component, target):
            # The target feeds the part being drained: its load already flows through it.
            others = [m for m in topology.mpdus_of(target) if m != component]
            raise _invalid(
                "target_feeds_component",
                target=target,
                component=component,
                others=", ".join(others) or "none",
            )
    _require_current(entry, *(c for c in (component, target) if c is not None))
    outside = [c for c in (component, target) if c is not None and topology.kind(c) is None]
    if outside:  # found, but its chain is not (yet): nothing can be planned around it
        raise _invalid("component_unavailable", component=", ".join(outside))
    options = entry.options
    max_step = float(
        call.data.get(ATTR_MAX_STEP_AMPS, options.get(CONF_MAX_STEP_AMPS, DEFAULT_MAX_STEP_AMPS))
    )
    interval = float(
        call.data.get(ATTR_STEP_INTERVAL, options.get(CONF_STEP_INTERVAL, DEFAULT_STEP_INTERVAL))
    )
    if not math.isfinite(max_step) or max_step <= 0:
        raise _invalid("not_positive", field=ATTR_MAX_STEP_AMPS, value=str(max_step))
    if not math.isfinite(interval) or interval < 0:
        raise _invalid("not_positive", field=ATTR_STEP_INTERVAL, value=str(interval))
    return entry, MigrationRequest(component, target, max_step, interval)


def _check_step_limit(plan: Plan, request: MigrationRequest) -> None:
    """Refuse a plan whose step must move more than ``max_step_amps`` (one circuit alone draws
    more): the limit is never silently exceeded."""
    for step in plan.steps:
        if step.amps > request.max_step_amps + 1e-6:
            move = max(step.moves, key=lambda m: float(m.amps))
            raise _invalid(
                "step_below_circuit",
                max_step_amps=f"{request.max_step_amps:g}",
                circuit=move.circuit,
                amps=f"{float(move.amps):.1f}",
            )


def _infeasible(request: MigrationRequest, result: Infeasible) -> ServiceValidationError:
    """The refusal of a request no safe plan serves, with the real reason: circuits with no
    other live path, an element over its limit (only when that is why), or the planner's own."""
    reason = result.reason.strip().rstrip(".")
    if result.element and result.excess_a > 0 and not result.no_path:
        reason = (
            f"{result.element} would be {result.excess_a:.1f} A above its continuous limit "
            f"({reason})"
        )
    return _invalid(
        "infeasible",
        component=request.component,
        element=result.element,
        amps=f"{result.excess_a:.1f}",
        circuits=", ".join(result.no_path),
        reason=reason,
    )


def _plan(entry: DataCenterPowerConfigEntry, request: MigrationRequest) -> Plan:
    result = plan_for(entry.runtime_data.telemetry.data, request, entry.runtime_data.decisions.data)
    if isinstance(result, Infeasible):
        raise _infeasible(request, result)
    _check_step_limit(result, request)
    return result


async def _plan_migration(call: ServiceCall) -> ServiceResponse:
    entry, request = _request(call)
    result = plan_for(entry.runtime_data.telemetry.data, request, entry.runtime_data.decisions.data)
    if isinstance(result, Plan):
        _check_step_limit(result, request)
    return plan_response(result, entry.runtime_data.telemetry.data.topology)


@recorded_action()
async def _migrate_load(call: ServiceCall) -> ServiceResponse:
    entry, request = _request(call)
    plan = _plan(entry, request)
    topology = entry.runtime_data.telemetry.data.topology
    if call.data[ATTR_DRY_RUN]:
        # Every check the real call makes before it commands anything: it refuses the same.
        entry.runtime_data.migrations.check_start(plan, request, dry_run=True)
        return {"migration_id": None, "dry_run": True, "plan": plan_response(plan, topology)}
    migration_id = await entry.runtime_data.migrations.async_start(plan, request)
    return {"migration_id": migration_id, "dry_run": False, "plan": plan_response(plan, topology)}


@recorded_action()
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


async def _switch_mpdu(
    call: ServiceCall, entry: DataCenterPowerConfigEntry, mpdu: str, *, on: bool
) -> None:
    """Switch an MPDU's output through the plant's command path: the command lock and the same
    interlock as the MPDU's output switch (refused with the element and the amps)."""
    await entry.runtime_data.commands.async_command(
        mpdu,
        lambda state: check_mpdu_output(state, mpdu, on),
        lambda client, identity: client.set_mpdu_output(identity, on),
        f"output {'on' if on else 'off'}",
        call.context,
    )


@recorded_action()
async def _isolate(call: ServiceCall) -> ServiceResponse:
    """Drain a component, then take it out of service (MPDU outputs off)."""
    entry, request = _request(call)
    plan = _plan(entry, request)
    manager = entry.runtime_data.migrations
    migration_id = await manager.async_start(plan, request)
    record = await manager.async_wait(migration_id)
    if record.state is MigrationState.ABORTED and record.reason == "cancelled":
        raise _invalid(  # the caller (or another) cancelled it: not a fault
            "isolate_stopped", component=request.component, reason="cancelled"
        )
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
    for mpdu in mpdus:
        await _switch_mpdu(call, entry, mpdu, on=False)
    return {"migration_id": migration_id, "isolated": list(mpdus)}


_RESTORING: Final[dict[str, asyncio.Lock]] = {}
"""Per plant: held while a restore checks and switches, so two restores never both act."""


def _restore_units(entry: DataCenterPowerConfigEntry, component: str) -> tuple[str, ...]:
    """The ATS and MPDUs a restore of ``component`` re-energises or loads (an MPDU: itself and
    its ATS; an ATS: itself and its MPDUs)."""
    topology = entry.runtime_data.telemetry.data.topology
    if component in topology.ats:
        return (component, *topology.mpdus_of(component))
    return (component, topology.ats_of(component))


def _check_restore(entry: DataCenterPowerConfigEntry, component: str, *, force: bool) -> None:
    """Every refusal of ``restore``, before anything is commanded: a unit predicted to fail or
    failed (never overridden), then (unless ``force``) a latched alarm, or a unit not yet
    healthy for the policy's soak time."""
    runtime = entry.runtime_data
    snapshot = runtime.telemetry.data
    decisions = runtime.decisions.data
    assessment = None if decisions is None else decisions.assessments.get(component)
    if assessment is not None and assessment.alert:
        raise _invalid("component_at_risk", component=component)
    units = _restore_units(entry, component)
    failed_now = entry.runtime_data.faults.current().failed
    for unit in units:
        failure = failed_now.get(unit) or unit_failure(snapshot.topology, snapshot.readings, unit)
        if failure is not None:
            raise _invalid("component_failed", component=unit, why=failure.why)
    if force:
        return
    for unit in units:
        reading = snapshot.readings.get(unit)
        if isinstance(reading, AtsReading):
            latched = [
                name
                for name, on in (
                    ("output lost", reading.alarm_output_lost),
                    ("over-temperature", reading.alarm_over_temperature),
                    ("out of sync", reading.alarm_out_of_sync),
                )
                if on
            ]
            if latched:
                raise _invalid("alarm_latched", component=unit, alarms=", ".join(latched))
    soak_s = policy_config(entry).restore_stable_s
    now_s = dt_util.utcnow().timestamp()
    for unit in units:
        status = None if decisions is None else decisions.status.get(unit)
        since = max(
            -math.inf if status is None else status.healthy_since_s,
            entry.runtime_data.faults.recovered_s.get(unit) or -math.inf,
        )
        if now_s - since < soak_s:
            raise _invalid(
                "not_soaked",
                component=unit,
                healthy_min=f"{max(0.0, now_s - since) / 60:.0f}",
                soak_min=f"{soak_s / 60:.0f}",
            )


@recorded_action()
async def _restore(call: ServiceCall) -> ServiceResponse:
    """Re-energise an isolated component and move circuits back to their normal paths.

    Everything that can refuse is checked before the first command: the checks of
    :func:`_check_restore`, a restore already running on the plant (one at a time: a second
    one is refused, not queued), and circuits another migration is moving. A failed unit is
    never commanded."""
    entry, request = _request(call)
    component = request.component
    lock = _RESTORING.setdefault(entry.entry_id, asyncio.Lock())
    if lock.locked():
        raise _invalid("restore_running", component=component)
    async with lock:
        _check_restore(entry, component, force=bool(call.data.get(ATTR_FORCE, False)))
        telemetry = entry.runtime_data.telemetry
        decisions = entry.runtime_data.decisions.data
        topology = telemetry.data.topology
        mpdus = topology.mpdus_of(component) if component in topology.ats else (component,)
        off = [m for m in mpdus if m not in telemetry.data.energized_mpdus]
        # What the restore would move once the outputs are on, checked before switching them.
        ahead = replace(telemetry.data, energized_mpdus=telemetry.data.energized_mpdus | set(off))
        planned = plan_for(ahead, replace(request, restore=True), decisions)
        if isinstance(planned, Plan):
            busy = planned.circuits & entry.runtime_data.migrations.busy_circuits()
            if busy:
                raise _invalid("migration_overlap", circuits=", ".join(sorted(busy)))
        for mpdu in off:
            await _switch_mpdu(call, entry, mpdu, on=True)
        result = plan_for(telemetry.data, replace(request, restore=True), decisions)
        if isinstance(result, Infeasible) or not result.steps:
            return {"migration_id": None, "plan": result.as_dict()}
        migration_id = await entry.runtime_data.migrations.async_start(
            result, request, kind="restore"
        )
        return {"migration_id": migration_id, "plan": result.as_dict()}


async def _get_forecast(call: ServiceCall) -> ServiceResponse:
    """The full load forecast (P10/P50/P90) of an ATS, MPDU or circuit."""
    entry, component = _resolve(call.hass, call.data[ATTR_COMPONENT])
    if entry.runtime_data.telemetry.identity(component).device_type not in _FORECASTABLE:
        raise _invalid("not_forecastable", component=component)
    coordinator = entry.runtime_data.decisions
    forecast = coordinator.forecast_of(component)
    policy = coordinator.policy
    circuits = [component] if component in policy.topology.circuits else policy.topology.circuits
    learned = [fc for c in circuits if (fc := policy.circuit_forecast(c)) is not None]
    unlearned = all(fc.model == "no-data" for fc in learned)
    if forecast is None or (unlearned and not any(forecast.get("p90", ()))):
        # Nothing learned and no announced work: an all-zero series is no forecast.
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
        schema=FORECAST_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    admin: list[tuple[str, Any, vol.Schema]] = [
        (SERVICE_MIGRATE_LOAD, _migrate_load, MIGRATE_SCHEMA),
        (SERVICE_CANCEL_MIGRATION, _cancel_migration, CANCEL_SCHEMA),
        (SERVICE_ISOLATE, _isolate, COMPONENT_SCHEMA),
        (SERVICE_RESTORE, _restore, RESTORE_SCHEMA),
    ]
    for name, handler, schema in admin:  # admin-only: @recorded_action checks
        hass.services.async_register(
            DOMAIN, name, handler, schema, supports_response=SupportsResponse.OPTIONAL
        )


resolve = _resolve
"""The entry owning a component and its plant id (for the actions of other modules)."""
require_current = _require_current
"""Refuse to act on telemetry that is not current (for the actions of other modules)."""
