"""The ``set_path`` action: a person moves one circuit, with an explicit override for a unit at risk.

The circuit's *Active path* select refuses a path whose MPDU (or its ATS) is predicted to fail,
has failed or did not answer the last poll (the interlock's ``target_at_risk``, translated, with
the reason). An operator who means it anyway (the unit is known good, the alert is a false one,
there is no other room) calls ``datacenter_power.set_path`` with ``force: true``: the same command
path, lock and every other interlock (energised path, continuous limits, fresh telemetry); only
the at-risk rule is waived, and the override is logged as a warning and in the logbook.
"""

from __future__ import annotations

from typing import Final

import probatio as vol
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv

from .activity import async_fire_activity
from .const import DOMAIN, LOGGER
from .device.models import DeviceType
from .engine.interlock import check_sbm_path
from .events import OVERRIDE
from .recorded import recorded_action
from .services import MAX_NAME_LENGTH, require_current, resolve

SERVICE_SET_PATH: Final = "set_path"
ATTR_CIRCUIT: Final = "circuit"
ATTR_PATH: Final = "path"
ATTR_FORCE: Final = "force"

_NAME: Final = vol.All(cv.string, vol.Length(min=1, max=MAX_NAME_LENGTH))
SET_PATH_SCHEMA: Final = vol.Schema(
    {
        vol.Required(ATTR_CIRCUIT): _NAME,
        vol.Required(ATTR_PATH): _NAME,
        vol.Optional(ATTR_FORCE, default=False): cv.boolean,
    }
)


def _invalid(key: str, **placeholders: str) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


@recorded_action()
async def _set_path(call: ServiceCall) -> ServiceResponse:
    """Select a circuit's path through the plant's command path; ``force`` waives only the
    rule that no load goes onto a unit at risk."""
    entry, circuit = resolve(call.hass, call.data[ATTR_CIRCUIT])
    telemetry = entry.runtime_data.telemetry
    identity = telemetry.identity(circuit)
    if identity.device_type is not DeviceType.SBM:
        raise _invalid("not_a_circuit", circuit=circuit)
    path_entry, path = resolve(call.hass, call.data[ATTR_PATH])
    if path_entry is not entry or path not in identity.paths:
        raise _invalid("not_a_path", circuit=circuit, path=path, paths=", ".join(identity.paths))
    require_current(entry, circuit)
    force = bool(call.data[ATTR_FORCE])
    risk = entry.runtime_data.commands.at_risk().get(path)
    what = f"path {path}"
    if force and risk is not None:
        what += " (forced onto a unit at risk)"
    await entry.runtime_data.commands.async_command(
        circuit,
        lambda state: check_sbm_path(state, circuit, path, accept_risk=force),
        lambda client, ident: client.set_sbm_path(ident, path),
        what,
        call.context,
    )
    if force and risk is not None:
        LOGGER.warning("%s moved onto %s by an explicit override although %s", circuit, path, risk)
        async_fire_activity(
            call.hass,
            entry,
            circuit,
            OVERRIDE,
            f"moved onto {path} by an explicit override (force) although {risk}",
            context=call.context,
            related=(path,),
        )
    return {"circuit": circuit, "path": path, "forced": bool(force and risk is not None)}


def async_setup_path_service(hass: HomeAssistant) -> None:
    """Register ``set_path`` (admin-only)."""
    hass.services.async_register(  # admin-only: @recorded_action checks
        DOMAIN,
        SERVICE_SET_PATH,
        _set_path,
        SET_PATH_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
