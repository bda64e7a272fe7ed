"""Per-device listeners of a refresh: only the devices whose reading changed are told.

The entities of a device listen to that device, not to every refresh of the plant: at 1,000
circuits ~9,000 entity callbacks per poll, most of them for devices whose reading did not
change, were a large part of the event loop's work; one comparison per device replaces them.
And when the simulator or a real plant steps, ~1,000 circuits change in the same poll: their
~3,000 state writes in one go held the loop for over a second, so the devices that changed are
told ``DISPATCH_SLICE`` at a time, letting the event loop run in between.

The telemetry coordinator composes one :class:`DeviceListeners`: a listener added with a plant
id as its context (``CoordinatorEntity(coordinator, context=plant_id)``) lands here, and every
refresh calls :meth:`DeviceListeners.async_refreshed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback

from . import const
from .const import DOMAIN, LOGGER
from .device.models import Reading

__all__ = ["DeviceListeners"]


class DeviceListeners:
    """The listeners of each device of one plant, told when that device's reading changed."""

    def __init__(self, hass: HomeAssistant) -> None:
        """No listener yet."""
        self._hass = hass
        self._listeners: dict[str, list[CALLBACK_TYPE]] = {}
        self._told: dict[str, Reading | None] = {}
        """Plant id -> the reading its listeners were last called with."""
        self._told_ok = False
        self._to_tell: dict[str, None] = {}
        """Devices whose listeners are still to be called (an ordered set)."""
        self._readings: Mapping[str, Reading] = {}
        self._telling: asyncio.Task[None] | None = None

    @callback
    def async_add(
        self, plant_id: str, update: CALLBACK_TYPE, readings: Mapping[str, Reading] | None
    ) -> CALLBACK_TYPE:
        """Call ``update`` after a refresh only when the device's reading (or its availability,
        or the refresh's success) changed; ``readings`` are the latest refresh's (None before
        the first), what a listener added now starts from (an entity writes its state when
        added). Returns the function that removes it."""
        listeners = self._listeners.setdefault(plant_id, [])
        listeners.append(update)
        if plant_id not in self._told and readings is not None:
            self._told[plant_id] = readings.get(plant_id)

        @callback
        def remove() -> None:
            listeners.remove(update)

        return remove

    @callback
    def async_refreshed(self, readings: Mapping[str, Reading], ok: bool) -> None:
        """A refresh ended (``ok``: it succeeded): tell the listeners of every device whose
        reading changed (all of them when the success changed), a slice now and the rest with
        the loop running in between."""
        self._readings = readings
        everyone = ok != self._told_ok
        self._told_ok = ok
        for pid in self._listeners:
            new = readings.get(pid)
            old = self._told.get(pid)
            if everyone or not (new is old or new == old):
                self._to_tell[pid] = None
        self._tell_slice()
        if self._to_tell and self._telling is None:
            self._telling = self._hass.async_create_task(
                self._async_tell_rest(), f"{DOMAIN} entity updates", eager_start=False
            )

    @callback
    def async_clear(self) -> None:
        """Tell no one what is still waiting (the plant is unloading)."""
        self._to_tell.clear()

    @callback
    def _tell_slice(self) -> None:
        for _ in range(min(const.DISPATCH_SLICE, len(self._to_tell))):
            pid = next(iter(self._to_tell))
            del self._to_tell[pid]
            self._told[pid] = self._readings.get(pid)
            for update in list(self._listeners.get(pid, ())):
                try:
                    update()
                except Exception:
                    LOGGER.exception("Unexpected error updating the entities of %s", pid)

    async def _async_tell_rest(self) -> None:
        try:
            while self._to_tell:
                await asyncio.sleep(0)
                self._tell_slice()
        finally:
            self._telling = None
