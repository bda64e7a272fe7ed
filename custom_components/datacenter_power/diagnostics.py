"""Diagnostics downloads of a plant (config entry) and of one of its devices.

Gateway addresses are redacted: the ``host`` fields, and every gateway host, ``host:port`` and
IPv4 address inside any text (a device's error, a migration's reason, an exception) and key.
Identities, readings, errors and the topology are what a support request needs to see why a
device is unavailable or a path is unexpected.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any, cast

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from .const import CONF_HOST, DOMAIN
from .coordinator import TelemetryCoordinator
from .device.models import DeviceIdentity, Reading
from .runtime import DataCenterPowerConfigEntry

TO_REDACT = {CONF_HOST, "title"}
REDACTED = "**REDACTED**"
_IPV4 = r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w-]|\.\w)"
"""Any IPv4 address, with its port if it has one (a gateway's resolved address)."""


def _address_pattern(entry: DataCenterPowerConfigEntry) -> re.Pattern[str]:
    """Every gateway host of the plant (the entry's, its subentries', the coordinator's), with
    an optional ``:port``, as a whole word; and any IPv4 address."""
    hosts = {str(entry.data.get(CONF_HOST) or "")}
    hosts |= {str(sub.data.get(CONF_HOST) or "") for sub in entry.subentries.values()}
    hosts |= {g.host for g in entry.runtime_data.telemetry.gateways.values()}
    named = [
        rf"(?<![\w.-]){re.escape(h)}(?::\d{{1,5}})?(?![\w-]|\.\w)"
        for h in sorted((h for h in hosts if h), key=len, reverse=True)
    ]
    return re.compile("|".join([*named, _IPV4]), re.IGNORECASE)


def _scrub(data: Any, pattern: re.Pattern[str]) -> Any:
    """``data`` with every address ``pattern`` matches in its strings (values and keys)
    replaced by ``**REDACTED**``."""
    if isinstance(data, str):
        return pattern.sub(REDACTED, data)
    if isinstance(data, dict):
        return {_scrub(k, pattern): _scrub(v, pattern) for k, v in data.items()}
    if isinstance(data, list):
        return [_scrub(v, pattern) for v in data]
    if isinstance(data, tuple):
        return tuple(_scrub(v, pattern) for v in data)
    return data


def _identity(identity: DeviceIdentity) -> dict[str, Any]:
    data = asdict(identity)
    data["device_type"] = identity.device_type.name
    return data


def _reading(reading: Reading | None) -> dict[str, Any] | None:
    return None if reading is None else asdict(reading)


def _gateways(coordinator: TelemetryCoordinator) -> list[dict[str, Any]]:
    snapshot = coordinator.data
    out = []
    for key, gateway in coordinator.gateways.items():
        out.append(
            async_redact_data(
                {
                    "key": "main" if gateway.subentry_id is None else "subentry",
                    "host": gateway.host,
                    "port": gateway.port,
                    "devices": sorted(p for p, g in snapshot.gateways.items() if g == key),
                    "request_count": coordinator.client_request_count(key),
                },
                TO_REDACT,
            )
        )
    return out


def _errors(coordinator: TelemetryCoordinator) -> dict[str, str]:
    """Why each device is unavailable now: the last snapshot's per-device errors, or, when the
    last refresh failed altogether (gateway down), that failure for every device."""
    if coordinator.last_update_success:
        return dict(sorted(coordinator.data.errors.items()))
    why = f"{type(coordinator.last_exception).__name__}: {coordinator.last_exception}"
    return dict.fromkeys(sorted(coordinator.data.identities), f"last refresh failed: {why}")


def _health(entry: DataCenterPowerConfigEntry) -> dict[str, Any]:
    """Is the telemetry current, did the engine run, what did migrations do, which repairs."""
    telemetry = entry.runtime_data.telemetry
    forecast = entry.runtime_data.decisions
    age = (dt_util.utcnow() - telemetry.data.updated_at).total_seconds()
    return {
        "telemetry": {
            "last_update_success": telemetry.last_update_success,
            "last_exception": None
            if telemetry.last_update_success
            else str(telemetry.last_exception),
            "readings_age_s": round(age, 1),
            "stale": not telemetry.last_update_success,
        },
        "forecast": {
            "last_update_success": forecast.last_update_success,
            "last_exception": None
            if forecast.last_update_success
            else str(forecast.last_exception),
        },
        "migrations": [r.as_dict() for r in entry.runtime_data.migrations.records.values()],
        "repairs": sorted(
            issue_id
            for (domain, issue_id) in ir.async_get(entry.runtime_data.telemetry.hass).issues
            if domain == DOMAIN
        ),
    }


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: DataCenterPowerConfigEntry
) -> dict[str, Any]:
    """The whole plant: entry settings, gateways, every device's identity and reading."""
    return cast("dict[str, Any]", _scrub(_entry_diagnostics(entry), _address_pattern(entry)))


def _entry_diagnostics(entry: DataCenterPowerConfigEntry) -> dict[str, Any]:
    """The entry's diagnostics before addresses inside texts are redacted."""
    coordinator = entry.runtime_data.telemetry
    snapshot = coordinator.data
    topology = snapshot.topology
    return {
        "entry": {
            "unique_id": entry.unique_id,
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "options": dict(entry.options),
            "subentries": [
                async_redact_data(
                    {"type": sub.subentry_type, "title": sub.title, **sub.data}, TO_REDACT
                )
                for sub in entry.subentries.values()
            ],
        },
        "last_update_success": coordinator.last_update_success,
        "gateways": _gateways(coordinator),
        "identities": {p: _identity(i) for p, i in sorted(snapshot.identities.items())},
        "readings": {p: _reading(r) for p, r in sorted(snapshot.readings.items())},
        "errors": _errors(coordinator),
        **_health(entry),
        "topology": {
            "ats": sorted(topology.ats),
            "mpdus": {m.id: m.ats for m in topology.mpdus.values()},
            "circuits": {c.id: list(c.paths) for c in topology.circuits.values()},
        },
        "assignment": dict(sorted(snapshot.assignment.items())),
        "energized_mpdus": sorted(snapshot.energized_mpdus),
    }


async def async_get_device_diagnostics(
    hass: HomeAssistant, entry: DataCenterPowerConfigEntry, device: dr.DeviceEntry
) -> dict[str, Any]:
    """One device: its identity, this refresh's reading or why it is unavailable."""
    coordinator = entry.runtime_data.telemetry
    snapshot = coordinator.data
    plant_id = coordinator.plant_id_of_device(device.id)
    if plant_id is None or plant_id not in snapshot.identities:
        return {"plant_id": plant_id, "known": False}
    device_data = {
        "plant_id": plant_id,
        "known": True,
        "identity": _identity(snapshot.identities[plant_id]),
        "available": snapshot.available(plant_id),
        "reading": _reading(snapshot.readings.get(plant_id)),
        "error": snapshot.errors.get(plant_id),
        "gateway": "main" if snapshot.gateways.get(plant_id) == "main" else "subentry",
    }
    return cast("dict[str, Any]", _scrub(device_data, _address_pattern(entry)))
