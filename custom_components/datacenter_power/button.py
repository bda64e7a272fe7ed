"""Buttons: the plant's "Approve proposed migration" (approval mode); see ``plant.py``."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import DataCenterPowerConfigEntry
from .plant import plant_buttons

PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DataCenterPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the plant's approve button."""
    async_add_entities(plant_buttons(entry))
