"""Config, reconfigure, options and gateway-subentry flows.

Adding a plant asks for one Modbus TCP gateway, scans its unit ids (bounded, a timeout per id,
progress shown) and reads each identification block; it refuses to finish when nothing answers
and says why. The plant's identity (the config entry's unique id) is derived from what it
reports, so the same plant cannot be added twice and a reconfigured address must lead to the
same plant. Further gateways of the plant are config subentries, so the topology stays whole.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import probatio as vol
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlowWithReload,
    SubentryFlowResult,
)
from homeassistant.core import callback, split_entity_id, valid_entity_id
from homeassistant.data_entry_flow import FlowHandler, section
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import selector

from . import const
from .campus_topics import valid_hall
from .const import (
    CONF_CALENDAR_ENTITY,
    CONF_CAMPUS_HALL,
    CONF_DECISION_TIMEOUT,
    CONF_FORECAST_HORIZON,
    CONF_HOST,
    CONF_LINEUP_AREAS,
    CONF_MAX_STEP_AMPS,
    CONF_POLICY_MODE,
    CONF_PORT,
    CONF_SCAN_INTERVAL,
    CONF_SOURCE_NAMES,
    CONF_STEP_INTERVAL,
    CONF_SUGGEST_AREAS,
    CONF_WORKDAY_ENTITY,
    DEFAULT_OPTIONS,
    DEFAULT_PORT,
    DOMAIN,
    LOGGER,
    MAX_SCAN_INTERVAL,
    MIN_SCAN_INTERVAL,
    POLICY_MODES,
    SUBENTRY_GATEWAY,
)
from .device.client import PlantClient
from .device.errors import DeviceLayerError
from .device.models import DeviceIdentity, DeviceType
from .device.registers import MAX_UNIT_ID
from .naming import clean_name, readable, shown_name, source_name
from .netcheck import diagnose, probe
from .options import option_errors
from .plant_ids import async_plant_ids

SCAN_UNIT_IDS = range(1, MAX_UNIT_ID + 1)

GATEWAY_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST): selector.TextSelector(),
        vol.Required(CONF_PORT, default=DEFAULT_PORT): selector.NumberSelector(
            selector.NumberSelectorConfig(
                min=1, max=65535, step=1, mode=selector.NumberSelectorMode.BOX
            )
        ),
    }
)


def plant_identity(identities: list[DeviceIdentity]) -> str:
    """The plant's stable identity: its ATS ids, sorted (all device ids if it has no ATS).

    The register map has no plant serial number; the ATSs are the plant's backbone, change
    only when the plant is rebuilt, and do not depend on the gateway's address.
    """
    ats = sorted(i.plant_id for i in identities if i.device_type is DeviceType.ATS)
    return "+".join(ats or sorted(i.plant_id for i in identities))


@dataclass
class _Scan:
    """A gateway scan running as a flow's progress task."""

    host: str
    port: int
    task: asyncio.Task[None] | None = None
    found: list[DeviceIdentity] = field(default_factory=list)
    error: str | None = None
    detail: str = ""

    async def run(self, flow: FlowHandler[Any, Any, Any]) -> None:
        """Scan every unit id; record what answered, or why the scan could not run.

        One Modbus request first (``netcheck.probe``, at most a few seconds): an address that
        cannot be reached, or a service that answers but not in Modbus TCP, is named at once.
        """
        if (verdict := await probe(self.host, self.port)) is not None:
            self.error, self.detail = verdict
            LOGGER.debug("Not scanning %s:%s: %s (%s)", self.host, self.port, *verdict)
            return
        client = PlantClient(self.host, self.port, timeout=const.SCAN_UNIT_TIMEOUT)
        shown = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal shown
            fraction = done / total
            if fraction - shown >= 0.05 or done == total:
                shown = fraction
                flow.async_update_progress(fraction)

        try:
            self.found = await client.scan(
                SCAN_UNIT_IDS,
                per_unit_timeout=const.SCAN_UNIT_TIMEOUT,
                concurrency=const.SCAN_CONCURRENCY,
                progress=progress,
            )
        except DeviceLayerError as err:
            LOGGER.debug("Cannot scan %s:%s: %s", self.host, self.port, err)
            self.error, self.detail = await diagnose(self.host, self.port)
        else:
            if not self.found:
                self.error = "no_devices"
        finally:
            await client.close()

    def placeholders(self) -> dict[str, str]:
        """Placeholders of the scan's progress and error messages."""
        return {
            "host": self.host,
            "port": str(self.port),
            "unit_ids": f"{SCAN_UNIT_IDS.start}-{SCAN_UNIT_IDS.stop - 1}",
            "detail": self.detail,
        }


def _port_error(value: Any) -> dict[str, str]:
    """``{"port": "invalid_port"}`` unless ``value`` is a whole number from 1 to 65535."""
    try:
        number = float(value)
    except TypeError, ValueError:
        return {CONF_PORT: "invalid_port"}
    if not math.isfinite(number) or not number.is_integer() or not 1 <= number <= 65535:
        return {CONF_PORT: "invalid_port"}
    return {}


MAX_HOST_LENGTH = 253
"""The longest DNS name."""


def _address_errors(user_input: Mapping[str, Any]) -> dict[str, str]:
    """Field-level errors of a gateway address: a host name or IP address without spaces (at
    most 253 characters), and a whole port number from 1 to 65535."""
    errors = _port_error(user_input.get(CONF_PORT))
    host = str(user_input.get(CONF_HOST, "")).strip()
    if not host or len(host) > MAX_HOST_LENGTH or any(ch.isspace() for ch in host):
        errors[CONF_HOST] = "invalid_host"
    return errors


def _gateway_in_use(entries: list[ConfigEntry], host: str, port: int) -> bool:
    for entry in entries:
        if entry.data.get(CONF_HOST) == host and entry.data.get(CONF_PORT) == port:
            return True
        for sub in entry.subentries.values():
            if sub.data.get(CONF_HOST) == host and sub.data.get(CONF_PORT) == port:
                return True
    return False


class DataCenterPowerConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a plant from its first gateway, or move it to another address."""

    VERSION = 1
    MINOR_VERSION = 1

    def __init__(self) -> None:
        """Start with no scan."""
        self._scan: _Scan | None = None
        self._form_step = "user"

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> DataCenterPowerOptionsFlow:
        """Options: poll interval, migration thresholds, policy mode."""
        return DataCenterPowerOptionsFlow()

    @classmethod
    @callback
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Further gateways of the plant."""
        return {SUBENTRY_GATEWAY: GatewaySubentryFlow}

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the gateway's address."""
        if user_input is not None and (errors := _address_errors(user_input)):
            return self._gateway_form("user", user_input, errors)
        if user_input is not None:
            host, port = str(user_input[CONF_HOST]).strip(), int(user_input[CONF_PORT])
            if _gateway_in_use(self.hass.config_entries.async_entries(DOMAIN), host, port):
                return self.async_abort(reason="already_configured")
            self._scan = _Scan(host, port)
            return await self.async_step_scan()
        return self._gateway_form("user", None, {})

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Move the plant's gateway to another address (it must lead to the same plant)."""
        self._form_step = "reconfigure"
        if user_input is not None and (errors := _address_errors(user_input)):
            return self._gateway_form("reconfigure", user_input, errors)
        if user_input is not None:
            self._scan = _Scan(str(user_input[CONF_HOST]).strip(), int(user_input[CONF_PORT]))
            return await self.async_step_scan()
        return self._gateway_form("reconfigure", self._get_reconfigure_entry().data, {})

    async def async_step_scan(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Scan the gateway's unit ids, showing progress."""
        assert self._scan is not None
        scan = self._scan
        if scan.task is None:
            scan.task = self.hass.async_create_task(scan.run(self), f"{DOMAIN} scan")
        if not scan.task.done():
            return self.async_show_progress(
                step_id="scan",
                progress_action="scan",
                progress_task=scan.task,
                description_placeholders=scan.placeholders(),
            )
        return self.async_show_progress_done(next_step_id="finish")

    async def async_step_finish(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Create (or update) the entry from the scan, or ask again saying what went wrong."""
        assert self._scan is not None
        scan, self._scan = self._scan, None
        address = {CONF_HOST: scan.host, CONF_PORT: scan.port}
        if scan.error is not None:
            return self._gateway_form(self._form_step, address, {"base": scan.error}, scan)
        await self.async_set_unique_id(plant_identity(scan.found))
        if self._form_step == "reconfigure":
            self._abort_if_unique_id_mismatch(reason="wrong_plant")
            return self.async_update_reload_and_abort(
                self._get_reconfigure_entry(), data_updates=address, reason="gateway_moved"
            )
        self._abort_if_unique_id_configured()
        return self.async_create_entry(
            title=f"Plant {self.unique_id}",
            data=address,
            options=dict(DEFAULT_OPTIONS),
        )

    def _gateway_form(
        self,
        step_id: str,
        values: Mapping[str, Any] | None,
        errors: dict[str, str],
        scan: _Scan | None = None,
    ) -> ConfigFlowResult:
        schema = GATEWAY_SCHEMA
        if values is not None:
            schema = self.add_suggested_values_to_schema(schema, values)
        return self.async_show_form(
            step_id=step_id,
            data_schema=schema,
            errors=errors,
            description_placeholders=(scan or _Scan("", 0)).placeholders(),
        )


class GatewaySubentryFlow(ConfigSubentryFlow):
    """Add a further gateway of the same plant."""

    def __init__(self) -> None:
        """Start with no scan."""
        self._scan: _Scan | None = None

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Ask for the gateway's address."""
        if user_input is not None and (errors := _address_errors(user_input)):
            return self._form(user_input, errors, None)
        if user_input is not None:
            host, port = str(user_input[CONF_HOST]).strip(), int(user_input[CONF_PORT])
            if _gateway_in_use(self.hass.config_entries.async_entries(DOMAIN), host, port):
                return self.async_abort(reason="already_configured")
            self._scan = _Scan(host, port)
            return await self.async_step_scan()
        return self._form(None, {}, None)

    async def async_step_scan(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Scan the gateway's unit ids, showing progress."""
        assert self._scan is not None
        scan = self._scan
        if scan.task is None:
            scan.task = self.hass.async_create_task(scan.run(self), f"{DOMAIN} scan")
        if not scan.task.done():
            return self.async_show_progress(
                step_id="scan",
                progress_action="scan",
                progress_task=scan.task,
                description_placeholders=scan.placeholders(),
            )
        return self.async_show_progress_done(next_step_id="finish")

    async def async_step_finish(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Add the gateway, unless nothing answered or its devices are already in the plant."""
        assert self._scan is not None
        scan, self._scan = self._scan, None
        address = {CONF_HOST: scan.host, CONF_PORT: scan.port}
        entry = self._get_entry()
        if scan.error is not None:
            return self._form(address, {"base": scan.error}, scan)
        if entry.state is ConfigEntryState.LOADED:
            known = entry.runtime_data.telemetry.identities
            if any(i.plant_id in known for i in scan.found):
                return self._form(address, {"base": "devices_in_plant"}, scan)
        if entry.state is ConfigEntryState.LOADED:
            # The subentry is added right after this step returns (not eagerly, then): the
            # refresh then scans the new gateway and its devices join the plant at once.
            entry.async_create_task(
                self.hass, entry.runtime_data.telemetry.async_refresh(), eager_start=False
            )
        return self.async_create_entry(
            title=f"{scan.host}:{scan.port}",
            data=address,
            unique_id=f"{scan.host}:{scan.port}",
        )

    def _form(
        self, values: Mapping[str, Any] | None, errors: dict[str, str], scan: _Scan | None
    ) -> SubentryFlowResult:
        schema = GATEWAY_SCHEMA
        if values is not None:
            schema = self.add_suggested_values_to_schema(schema, values)
        return self.async_show_form(
            step_id="user",
            data_schema=schema,
            errors=errors,
            description_placeholders=(scan or _Scan("", 0)).placeholders(),
        )


class DataCenterPowerOptionsFlow(OptionsFlowWithReload):
    """Poll interval, migration thresholds and the decision policy's mode."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """One form with every option; saving reloads the entry."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            errors = option_errors(user_input)
            errors.update(self._reference_errors(user_input, placeholders))
            hall = str(user_input.get(CONF_CAMPUS_HALL) or "").strip()
            if hall and not valid_hall(hall):
                errors[CONF_CAMPUS_HALL] = "invalid_campus_hall"
        if user_input is not None and not errors:
            options: dict[str, Any] = {
                key: int(user_input[key])
                for key in (CONF_SCAN_INTERVAL, CONF_STEP_INTERVAL, CONF_FORECAST_HORIZON)
            }
            if user_input.get(CONF_DECISION_TIMEOUT) is not None:
                options[CONF_DECISION_TIMEOUT] = int(user_input[CONF_DECISION_TIMEOUT])
            options[CONF_POLICY_MODE] = user_input[CONF_POLICY_MODE]
            options[CONF_MAX_STEP_AMPS] = float(user_input[CONF_MAX_STEP_AMPS])
            for key, domain in (
                (CONF_CALENDAR_ENTITY, "calendar"),
                (CONF_WORKDAY_ENTITY, "binary_sensor"),
            ):
                if user_input.get(key):
                    options[key] = self._existing_entity(str(user_input[key]), domain)
            if hall := str(user_input.get(CONF_CAMPUS_HALL) or "").strip():
                options[CONF_CAMPUS_HALL] = hall
            options.update(self._area_options(user_input.get(CONF_LINEUP_AREAS)))
            options.update(self._name_options(user_input.get(CONF_SOURCE_NAMES)))
            return self.async_create_entry(data=options)
        schema = vol.Schema(
            {
                vol.Required(CONF_SCAN_INTERVAL): _number(
                    MIN_SCAN_INTERVAL, MAX_SCAN_INTERVAL, "s"
                ),
                vol.Required(CONF_POLICY_MODE): selector.SelectSelector(
                    selector.SelectSelectorConfig(
                        options=list(POLICY_MODES),
                        translation_key=CONF_POLICY_MODE,
                        mode=selector.SelectSelectorMode.LIST,
                    )
                ),
                vol.Required(CONF_MAX_STEP_AMPS): _number(1, 500, "A", step=0.5),
                vol.Required(CONF_STEP_INTERVAL): _number(10, 3600, "s"),
                vol.Required(CONF_FORECAST_HORIZON): _number(1, 168, "h"),
                vol.Optional(CONF_DECISION_TIMEOUT): _number(1, 1440, "min"),
                vol.Optional(CONF_CALENDAR_ENTITY): selector.EntitySelector(
                    selector.EntitySelectorConfig(domain="calendar")
                ),
                vol.Optional(CONF_WORKDAY_ENTITY): selector.EntitySelector(
                    selector.EntitySelectorConfig(domain="binary_sensor", integration="workday")
                ),
                vol.Optional(CONF_CAMPUS_HALL): selector.TextSelector(),
                vol.Optional(CONF_LINEUP_AREAS): section(
                    vol.Schema(
                        {
                            vol.Optional(CONF_SUGGEST_AREAS): selector.BooleanSelector(),
                            **{
                                vol.Optional(ats): selector.AreaSelector()
                                for ats in self._lineups()
                            },
                        }
                    ),
                    {"collapsed": True},
                ),
                vol.Optional(CONF_SOURCE_NAMES): section(
                    vol.Schema(
                        {vol.Optional(src): selector.TextSelector() for src in self._sources()}
                    ),
                    {"collapsed": True},
                ),
            }
        )
        current = self.config_entry.options
        areas = {
            CONF_SUGGEST_AREAS: bool(current.get(CONF_SUGGEST_AREAS, True)),
            **dict(current.get(CONF_LINEUP_AREAS) or {}),
        }
        names = {src: source_name(current, src) for src in self._sources()}
        values = {
            **DEFAULT_OPTIONS,
            **current,
            CONF_LINEUP_AREAS: areas,
            CONF_SOURCE_NAMES: names,
            **(user_input or {}),
        }
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(schema, values),
            errors=errors,
            description_placeholders=placeholders,
        )

    def _lineups(self) -> list[str]:
        """The plant's ATS ids (one area field each), also while the entry reloads."""
        return list(async_plant_ids(self.hass, self.config_entry).ats)

    def _sources(self) -> list[str]:
        """The plant's source ids (one name field each), also while the entry reloads."""
        return list(async_plant_ids(self.hass, self.config_entry).sources)

    def _reference_errors(
        self, user_input: Mapping[str, Any], placeholders: dict[str, str]
    ) -> dict[str, str]:
        """A calendar, workday sensor or area that does not exist (``placeholders`` get the
        lineup and area of an unknown area, for the message)."""
        errors: dict[str, str] = {}
        for key, domain, error in (
            (CONF_CALENDAR_ENTITY, "calendar", "unknown_calendar"),
            (CONF_WORKDAY_ENTITY, "binary_sensor", "unknown_workday"),
        ):
            entity_id = user_input.get(key)
            if entity_id and self._existing_entity(str(entity_id), domain) is None:
                errors[key] = error
        areas = ar.async_get(self.hass)
        for ats, area in sorted((user_input.get(CONF_LINEUP_AREAS) or {}).items()):
            if ats == CONF_SUGGEST_AREAS or not area or areas.async_get_area(str(area)):
                continue
            errors["base"] = "unknown_area"
            placeholders.update(lineup=clean_name(str(ats)), area=clean_name(str(area)))
            break
        return errors

    def _existing_entity(self, value: str, domain: str) -> str | None:
        """The entity id of ``value`` (an entity id, or an entity registry id as the entity
        selector also takes) when it is an entity of ``domain`` that is registered (its
        integration may not be loaded yet) or has a state; else None."""
        registered = er.async_get(self.hass).async_get(value)
        if registered is not None:
            return registered.entity_id if registered.domain == domain else None
        if not valid_entity_id(value) or split_entity_id(value)[0] != domain:
            return None
        return value if self.hass.states.get(value) is not None else None

    def _name_options(self, section_input: Mapping[str, Any] | None) -> dict[str, Any]:
        """Source names from the form's section (a name equal to the readable id is not
        stored); the stored ones when the section was not sent."""
        current = self.config_entry.options
        if section_input is None:
            return (
                {CONF_SOURCE_NAMES: current[CONF_SOURCE_NAMES]}
                if CONF_SOURCE_NAMES in current
                else {}
            )
        cleaned = {
            str(src): shown_name(str(name), f"The name of source {str(src)!r}")
            for src, name in section_input.items()
            if name
        }  # printable, one line, capped: naming.clean_name
        names = {src: name for src, name in cleaned.items() if name and name != readable(src)}
        return {CONF_SOURCE_NAMES: names} if names else {}

    def _area_options(self, section_input: Mapping[str, Any] | None) -> dict[str, Any]:
        """The area options from the form's section; the stored ones when it was not sent (an
        API client that posts only the numbers keeps them)."""
        current = self.config_entry.options
        if section_input is None:
            return {
                key: current[key]
                for key in (CONF_SUGGEST_AREAS, CONF_LINEUP_AREAS)
                if key in current
            }
        lineups = {
            str(ats): str(area)
            for ats, area in section_input.items()
            if ats != CONF_SUGGEST_AREAS and area
        }
        return {
            CONF_SUGGEST_AREAS: bool(section_input.get(CONF_SUGGEST_AREAS, True)),
            CONF_LINEUP_AREAS: lineups,
        }


def _number(low: float, high: float, unit: str, step: float = 1) -> selector.NumberSelector:
    return selector.NumberSelector(
        selector.NumberSelectorConfig(
            min=low,
            max=high,
            step=step,
            unit_of_measurement=unit,
            mode=selector.NumberSelectorMode.BOX,
        )
    )
