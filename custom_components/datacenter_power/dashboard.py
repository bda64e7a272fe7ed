"""The plant dashboard and device areas: what a person sees first.

``build_dashboard`` makes a Lovelace dashboard from Home Assistant's own cards, laid out like the
plant: a first view that opens with the plant status (red, amber or green, and what to do: the
plant status sensor's, ``status.py``; the cards only show it), then the plant's state (load,
headroom, components at risk, the migration in progress, the proposal waiting for approval and,
only while there is one, its approve button, the repairs, each element's failure risk and health
in labelled grids), then one view
per ATS lineup: the ATS (with its Reset alarms button), each MPDU under it with its circuits
(and their interruption counts), utilisation gauges against the
continuous limit (100 % = the limit), health, failure risk, time to failure, the forecast peak,
and for the ATS and each MPDU a history graph of the measured load beside its load forecast at
P10, P50 and P90 (the forecast band as lines: Home Assistant's cards cannot shade a band). The ``datacenter_power.create_dashboard`` action adds it to the sidebar (a
storage dashboard, updated when called again) and returns it, so it can also be pasted into a
YAML dashboard.

Devices get an area per ATS lineup ("Lineup ats1": the ATS, its MPDUs and the circuits whose
normal path is under it), once, when first seen: an area a person sets later is left alone. The
options choose an existing area per lineup instead (moving the lineup's devices there when the
choice changes) or turn these suggestions off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import probatio as vol
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.storage import Store

from .const import CONF_LINEUP_AREAS, CONF_SUGGEST_AREAS, DOMAIN, LOGGER
from .engine.topology import Topology
from .recorded import recorded_action
from .runtime import DataCenterPowerConfigEntry
from .status import OK, SEVERITY, STATES

SERVICE_CREATE_DASHBOARD: Final = "create_dashboard"
LIMIT_SEVERITY: Final = {"green": 0, "yellow": 85, "red": 100}
"""Gauge colours in % of the continuous limit."""


def _entity(
    hass: HomeAssistant, entry: DataCenterPowerConfigEntry, plant_id: str, key: str
) -> str | None:
    """The entity id of a plant device's enabled entity by its key (None if there is none)."""
    platforms = ("sensor", "binary_sensor", "switch", "select", "button")
    registry = er.async_get(hass)
    for platform in platforms:
        entity_id = registry.async_get_entity_id(
            platform, DOMAIN, f"{entry.unique_id}:{plant_id}:{key}"
        )
        registered = None if entity_id is None else registry.async_get(entity_id)
        if registered is not None and registered.disabled_by is None:
            return registered.entity_id
    return None


def _plant_entity(hass: HomeAssistant, entry: DataCenterPowerConfigEntry, key: str) -> str | None:
    registry = er.async_get(hass)
    for platform, uid in (
        ("sensor", f"{entry.unique_id}:plant:{key}"),
        ("button", f"{entry.unique_id}:plant:{key}"),
        ("sensor", f"{entry.unique_id}:{key}"),
    ):
        entity_id = registry.async_get_entity_id(platform, DOMAIN, uid)
        if entity_id is not None:
            return entity_id
    return None


def _short(hass: HomeAssistant, entity_id: str, prefix: str | None = None) -> dict[str, Any]:
    """A card row named without its device's name ("Total load", not "Plant ats1+ats2 Total
    load": the card's title says which device), optionally prefixed (a glance's column)."""
    name = entity_id
    if (state := hass.states.get(entity_id)) is not None:
        name = state.name
    registered = er.async_get(hass).async_get(entity_id)
    device = None
    if registered is not None and registered.device_id is not None:
        device = dr.async_get(hass).async_get(registered.device_id)
    if device is not None:
        device_name = device.name_by_user or device.name or ""
        if device_name and name.startswith(device_name + " "):
            name = name[len(device_name) + 1 :]
            name = name[:1].upper() + name[1:]
    return {"entity": entity_id, "name": prefix or name}


def _named(hass: HomeAssistant, rows: list[Any]) -> list[Any]:
    """Every plain entity id among ``rows`` as a row named without its device's name."""
    return [_short(hass, r) if isinstance(r, str) else r for r in rows]


def _present(*ids: str | None) -> list[str]:
    return [i for i in ids if i is not None]


def _gauge(entity_id: str | None, name: str) -> dict[str, Any] | None:
    if entity_id is None:
        return None
    return {
        "type": "gauge",
        "entity": entity_id,
        "name": name,
        "min": 0,
        "max": 125,
        "needle": True,
        "severity": LIMIT_SEVERITY,
    }


BAND_HOURS: Final = 24
"""Hours of history the forecast-band graphs show."""


def _band_graph(
    ent: Callable[[str, str], str | None], element: str, load_key: str
) -> dict[str, Any] | None:
    """A history graph of an element's measured load beside its load forecast at P10, P50 and
    P90: Home Assistant's cards cannot shade a band, so the band shows as the two outer lines
    (and the median between them) with the measured load running inside."""
    load = ent(element, load_key)
    if load is None:
        return None
    names = {"p10": "Forecast P10", "p50": "Forecast P50", "p90": "Forecast P90"}
    lines: list[dict[str, Any]] = [{"entity": load, "name": "Measured"}]
    for quantile, name in names.items():
        entity_id = ent(element, f"load_forecast_{quantile}")
        if entity_id is not None:
            lines.append({"entity": entity_id, "name": name})
    return {
        "type": "history-graph",
        "title": f"{element}: load and forecast band (P10-P90)",
        "hours_to_show": BAND_HOURS,
        "entities": lines,
    }


STATUS_COLOURS: Final = (("critical", "red", "mdi:alert-octagon"), ("warning", "amber",
    "mdi:alert"), ("ok", "green", "mdi:check-circle"))  # fmt: skip
"""The plant status tile's colour and icon per severity (``status.py``)."""


def _status_cards(status: str | None) -> list[dict[str, Any]]:
    """The plant status at the top: a tile, red when anything has failed, is predicted to fail
    or is above its continuous limit, amber for warnings, green only when nothing is wrong;
    below it, while anything is wrong, every problem with what to do. The status and the advice
    are the integration's (the plant status sensor): the cards only show them."""
    if status is None:
        return []
    cards: list[dict[str, Any]] = []
    for severity, colour, icon in STATUS_COLOURS:
        states = [s for s in STATES if SEVERITY[s] == severity]
        cards.append(
            {
                "type": "conditional",
                "conditions": [{"condition": "state", "entity": status, "state": states}],
                "card": {
                    "type": "tile",
                    "entity": status,
                    "name": "Plant status",
                    "icon": icon,
                    "color": colour,
                    "state_content": ["state", "summary"],
                    "grid_options": {"columns": "full"},
                },
            }
        )
    cards.append(
        {
            "type": "conditional",
            "conditions": [{"condition": "state", "entity": status, "state_not": OK}],
            "card": {
                "type": "markdown",
                "title": "What to do",
                "content": (
                    f"{{% for line in state_attr('{status}', 'problems') or [] %}}\n"
                    "- {{ line }}\n{% endfor %}"
                ),
            },
        }
    )
    return cards


def _health_cards(
    hass: HomeAssistant, topology: Topology, ent: Callable[[str, str], str | None]
) -> list[dict[str, Any]]:
    """Each ATS and MPDU once per grid, under a title saying what the grid shows: its failure
    risk (red while it is predicted to fail or has failed) and its health in %."""
    cards: list[dict[str, Any]] = []
    risks = [
        {"type": "tile", "entity": e, "name": element, "vertical": False}
        for element in topology.elements
        if (e := ent(element, "failure_risk")) is not None
    ]
    if risks:
        cards.append(
            {
                "type": "grid",
                "title": "Failure risk (red: predicted to fail or failed)",
                "columns": 2,  # a tile needs ~160 px for "mpdu12" and its state
                "square": False,
                "cards": risks,
            }
        )
    health = [
        _short(hass, e, element)
        for element in topology.elements
        if (e := ent(element, "health")) is not None
    ]
    if health:
        cards.append({"type": "glance", "title": "Health (%)", "entities": health, "columns": 4})
    return cards


def build_dashboard(hass: HomeAssistant, entry: DataCenterPowerConfigEntry) -> dict[str, Any]:
    """The dashboard of one plant (Lovelace config, Home Assistant's own cards only)."""
    snapshot = entry.runtime_data.telemetry.data
    topology = snapshot.topology

    def ent(pid: str, key: str) -> str | None:
        return _entity(hass, entry, pid, key)

    overview: list[dict[str, Any]] = _status_cards(_plant_entity(hass, entry, "plant_status"))
    plant = _present(
        _plant_entity(hass, entry, "plant_load"),
        _plant_entity(hass, entry, "plant_headroom"),
        _plant_entity(hass, entry, "components_at_risk"),
        _plant_entity(hass, entry, "migration"),
        _plant_entity(hass, entry, "proposal"),
    )
    approve = _plant_entity(hass, entry, "approve_proposal")
    if approve is not None:
        # only while there is something to approve (the button is unavailable otherwise)
        overview.append(
            {
                "type": "conditional",
                "conditions": [
                    {"condition": "state", "entity": approve, "state_not": "unavailable"}
                ],
                "card": {
                    "type": "button",
                    "entity": approve,
                    "name": "Approve proposed migration",
                    "icon": "mdi:check-decagram",
                    "tap_action": {
                        "action": "perform-action",
                        "perform_action": "button.press",
                        "target": {"entity_id": approve},
                        "confirmation": {"text": "Run the proposed migration now?"},
                    },
                },
            }
        )
    overview.append(
        {
            "type": "entities",
            "title": "Plant",
            "show_header_toggle": False,
            "entities": _named(hass, plant),
        },
    )
    overview.append(
        {
            "type": "markdown",
            "title": "Attention",
            "content": (
                "Repairs with the evidence, the recommended work and the staged plan: "
                "[Settings > Repairs](/config/repairs). Every action and refusal: "
                "[Logbook](/logbook)."
            ),
        }
    )
    overview += _health_cards(hass, topology, ent)
    views: list[dict[str, Any]] = [{"title": "Plant", "path": "plant", "cards": overview}]
    for ats in topology.ats:
        cards: list[dict[str, Any]] = []
        cards.append(
            {
                "type": "entities",
                "title": f"ATS {ats}",
                "show_header_toggle": False,
                "entities": _named(
                    hass,
                    _present(
                        ent(ats, "load_current"),
                        ent(ats, "output_lost"),
                        ent(ats, "reset_alarms"),
                        ent(ats, "active_source"),
                        ent(ats, "preferred_source"),
                        ent(ats, "inhibit"),
                        ent(ats, "health"),
                        ent(ats, "failure_risk"),
                        ent(ats, "time_to_failure"),
                        ent(ats, "forecast_peak"),
                    ),
                ),
            }
        )
        gauges = [g for g in [_gauge(ent(ats, "limit_utilization"), f"{ats} vs limit")] if g]
        for mpdu in topology.mpdus_of(ats):
            gauge = _gauge(ent(mpdu, "limit_utilization"), f"{mpdu} vs limit")
            if gauge is not None:
                gauges.append(gauge)
        if gauges:
            cards.append({"type": "horizontal-stack", "cards": gauges})
        for mpdu in topology.mpdus_of(ats):
            circuits = [c for c in topology.circuits if topology.circuits[c].normal_path == mpdu]
            rows: list[Any] = _named(
                hass,
                _present(
                    ent(mpdu, "current"),
                    ent(mpdu, "output"),
                    ent(mpdu, "health"),
                    ent(mpdu, "failure_risk"),
                    ent(mpdu, "time_to_failure"),
                    ent(mpdu, "forecast_peak"),
                ),
            )
            if circuits:
                rows.append({"type": "section", "label": "Circuits (normal path here)"})
            for circuit in circuits:
                for entity_id in _present(
                    ent(circuit, "current"),
                    ent(circuit, "active_path"),
                    ent(circuit, "off_normal_path"),
                    ent(circuit, "interruptions"),
                ):
                    row = _short(hass, entity_id)
                    rows.append({**row, "name": f"{circuit}: {row['name'].lower()}"})
            cards.append(
                {
                    "type": "entities",
                    "title": f"MPDU {mpdu}",
                    "show_header_toggle": False,
                    "entities": rows,
                }
            )
        for element, load_key in (
            (ats, "load_current"),
            *((m, "current") for m in topology.mpdus_of(ats)),
        ):
            band = _band_graph(ent, element, load_key)
            if band is not None:
                cards.append(band)
        views.append(
            {
                "title": f"Lineup {ats}",
                "path": f"lineup-{ats}",
                "cards": cards,
            }
        )
    return {"title": entry.title, "views": views}


def _dashboards_collection(hass: HomeAssistant) -> Any:
    """Lovelace's storage-dashboards collection, reached through its websocket command (the
    same object the frontend's "add dashboard" uses); None when it is not there."""
    handlers = hass.data.get("websocket_api", {})
    handler = handlers.get("lovelace/dashboards/list", (None,))[0]
    for candidate in (handler, getattr(handler, "__wrapped__", None)):
        owner = getattr(candidate, "__self__", None)
        collection = getattr(owner, "storage_collection", None)
        if collection is not None:
            return collection
    return None


async def async_create_dashboard(
    hass: HomeAssistant, entry: DataCenterPowerConfigEntry
) -> tuple[str | None, dict[str, Any]]:
    """Add (or update) the plant's dashboard in the sidebar; returns its url path (None when
    Lovelace's storage dashboards are not available) and its config."""
    config = build_dashboard(hass, entry)
    collection = _dashboards_collection(hass)
    if collection is None:
        return None, config
    url_path = f"dcp-{entry.entry_id[:8].lower()}"
    if not any(item.get("url_path") == url_path for item in collection.async_items()):
        await collection.async_create_item(
            {"url_path": url_path, "title": entry.title, "icon": "mdi:transmission-tower"}
        )
    from homeassistant.components.lovelace.const import LOVELACE_DATA

    await hass.data[LOVELACE_DATA].dashboards[url_path].async_save(config)
    return url_path, config


@recorded_action()
async def _create_dashboard(call: ServiceCall) -> ServiceResponse:
    entries = call.hass.config_entries.async_loaded_entries(DOMAIN)
    wanted = call.data.get("config_entry_id")
    chosen = [e for e in entries if wanted is None or e.entry_id == wanted]
    if not chosen and wanted is not None:  # the caller's mistake: refused, not a server error
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="unknown_plant",
            translation_placeholders={"entry_id": str(wanted)[:64]},
        )
    if not chosen:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_plant")
    url_path, config = await async_create_dashboard(call.hass, chosen[0])
    return {"url_path": url_path, "dashboard": config}


def async_setup_dashboard_service(hass: HomeAssistant) -> None:
    """Register ``create_dashboard`` (admin-only: it adds a dashboard for everyone)."""
    hass.services.async_register(  # admin-only: @recorded_action checks
        DOMAIN,
        SERVICE_CREATE_DASHBOARD,
        _create_dashboard,
        vol.Schema({vol.Optional("config_entry_id"): cv.string}),
        supports_response=SupportsResponse.OPTIONAL,
    )


def _lineup_of(topology: Topology, pid: str) -> str | None:
    """The ATS lineup a device belongs to (None: the environment sensor, the plant)."""
    if pid in topology.ats:
        return pid
    if pid in topology.mpdus:
        return topology.ats_of(pid)
    if pid in topology.circuits:
        return topology.ats_of(topology.circuits[pid].normal_path)
    return None


async def async_assign_areas(hass: HomeAssistant, entry: DataCenterPowerConfigEntry) -> None:
    """Give each device its ATS lineup's area.

    * An area chosen for a lineup in the options moves every device of that lineup there when
      the choice is made or changed (and new devices of the lineup later); a device a person
      moves afterwards stays where they put it.
    * Otherwise, unless suggestions are off in the options, a device seen for the first time
      without an area goes to "Lineup <ats>". An area a person sets is never changed.
    """
    store: Store[dict[str, Any]] = Store(hass, 1, f"{DOMAIN}.{entry.entry_id}.areas")
    stored = await store.async_load() or {}
    seen = set(stored.get("devices", []))
    applied: dict[str, str] = dict(stored.get("applied", {}))
    suggest = bool(entry.options.get(CONF_SUGGEST_AREAS, True))
    areas = ar.async_get(hass)
    chosen = {
        str(ats): str(area_id)
        for ats, area_id in dict(entry.options.get(CONF_LINEUP_AREAS) or {}).items()
        if areas.async_get_area(str(area_id)) is not None
    }
    telemetry = entry.runtime_data.telemetry
    topology = telemetry.data.topology
    devices = dr.async_get(hass)
    for pid in telemetry.identities:
        device_id = telemetry.device_id(pid)
        lineup = _lineup_of(topology, pid)
        if device_id is None or lineup is None:
            continue
        device = devices.async_get(device_id)
        first_time = device_id not in seen
        seen.add(device_id)
        if device is None:
            continue
        area_id = chosen.get(lineup)
        if area_id is not None and (first_time or applied.get(lineup) != area_id):
            if device.area_id != area_id:
                devices.async_update_device(device_id, area_id=area_id)
                LOGGER.debug("%s moved to the area chosen for lineup %s", pid, lineup)
        elif first_time and area_id is None and suggest and device.area_id is None:
            area = areas.async_get_or_create(f"Lineup {lineup}")
            devices.async_update_device(device_id, area_id=area.id)
            LOGGER.debug("%s placed in area %s", pid, area.name)
    if stored != (new := {"devices": sorted(seen), "applied": chosen}):
        await store.async_save(new)
