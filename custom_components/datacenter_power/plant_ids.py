"""The plant's ATS and source ids for the options form, kept while its entry reloads.

The options form has a field per ATS (its lineup's area) and per source (its name), read from
the loaded plant. While the entry reloads (or its setup is retried) it has no runtime data; a
form built then had only the fields of the stored options, and refused what the user entered in
the others once submitted ("extra keys not allowed"). The ids of the plant's last setup in this
run of Home Assistant are kept here for that time; before any setup, the stored options' ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant, callback
from homeassistant.util.hass_dict import HassKey

from .const import CONF_LINEUP_AREAS, CONF_SOURCE_NAMES, DOMAIN


@dataclass(frozen=True, slots=True)
class PlantIds:
    """The ids the options form has a field for."""

    ats: tuple[str, ...]
    sources: tuple[str, ...]


_KNOWN: HassKey[dict[str, PlantIds]] = HassKey(f"{DOMAIN}_plant_ids")


@callback
def async_remember_plant_ids(hass: HomeAssistant, entry: ConfigEntry) -> PlantIds:
    """Keep the loaded plant's ids (call once its runtime data is set)."""
    topology = entry.runtime_data.telemetry.data.topology
    ids = PlantIds(
        ats=tuple(sorted(topology.ats)),
        sources=tuple(sorted({src for node in topology.ats.values() for src in node.sources})),
    )
    hass.data.setdefault(_KNOWN, {})[entry.entry_id] = ids
    return ids


@callback
def async_forget_plant_ids(hass: HomeAssistant, entry_id: str) -> None:
    """Drop a removed entry's ids."""
    hass.data.get(_KNOWN, {}).pop(entry_id, None)


@callback
def async_plant_ids(hass: HomeAssistant, entry: ConfigEntry) -> PlantIds:
    """The plant's ids: the loaded plant's; else those of its last setup together with the ids
    the stored options name."""
    if entry.state is ConfigEntryState.LOADED and hasattr(entry, "runtime_data"):
        return async_remember_plant_ids(hass, entry)
    ids = hass.data.get(_KNOWN, {}).get(entry.entry_id, PlantIds((), ()))
    return PlantIds(
        ats=tuple(sorted({*ids.ats, *_keys(entry.options.get(CONF_LINEUP_AREAS))})),
        sources=tuple(sorted({*ids.sources, *_keys(entry.options.get(CONF_SOURCE_NAMES))})),
    )


def _keys(value: Any) -> list[str]:
    return [str(k) for k in value] if isinstance(value, Mapping) else []
