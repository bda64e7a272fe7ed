"""Keep a hall's long-lived objects out of the garbage collector's full collections.

Why: a full (generation-2) collection of CPython's cyclic garbage collector walks every object
of the process while holding the GIL. With the 1,000-circuit hall loaded (~7,000 entities, their
states, ~9,000 registry entries, the engine's policy) one took 2.2-2.8 s every few minutes, and
each was a stall of Home Assistant's event loop of that length (docs/scaling.md). Those objects
live as long as the plant does: ``gc.freeze()`` moves every object tracked at that moment into a
permanent generation that no collection walks again. Reference counting still frees them as
before; only a reference cycle among frozen objects stays in memory until ``gc.unfreeze()``.

The garbage collector is the process's, not the integration's, so this is bounded: only for a
hall (over ``HALL_CIRCUITS`` circuits; a small plant's collections are short); only once the
plant's devices and entities have stayed the same for ``GC_FREEZE_QUIET`` seconds (set up),
and again only if it grows (a gateway added), so at most once per size the plant has had;
after one full collection, so that no garbage of the setup is frozen; and unloading the last
hall unfreezes, so that its objects become collectable again. Home Assistant 2026.10 itself
never calls ``gc.freeze`` (its ``profiler`` integration only calls ``gc.collect``).

With each freeze, and every ``HEAP_TRIM_INTERVAL`` while a hall is frozen, the C heap's free
pages go back to the system (glibc's ``malloc_trim``, in an executor job; nothing where the C
library has no such call): setting up a hall peaks about 100 MB above what stays alive, and
running one leaves ~50 MB free in the heap within minutes (measured with ``mallinfo2`` at 1,000
circuits); glibc keeps that memory otherwise.
"""

from __future__ import annotations

import ctypes
import gc
import time

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_call_later, async_track_time_interval

from . import const
from .const import LOGGER
from .runtime import DataCenterPowerConfigEntry

__all__ = ["async_setup_gc_freeze"]

_FROZEN_BY: set[str] = set()
"""Entries whose setup froze the collector (process-wide, as the collector is)."""


def _trim_heap() -> bool:
    """Return the C heap's free pages to the system; False where there is no ``malloc_trim``
    (musl, or a C library other than glibc)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except OSError, AttributeError:
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True


@callback
def async_setup_gc_freeze(hass: HomeAssistant, entry: DataCenterPowerConfigEntry) -> None:
    """Freeze the collector's view of the plant once a hall is set up (and after it grew)."""
    coordinator = entry.runtime_data.telemetry
    registry = er.async_get(hass)
    seen: list[tuple[int, int]] = [(-1, -1)]  # (devices, entities) last seen
    frozen_devices = [-1]  # devices when last frozen
    timer: list[CALLBACK_TYPE | None] = [None]
    trimming: list[CALLBACK_TYPE | None] = [None]

    @callback
    def _trim(_now: object) -> None:
        hass.async_add_executor_job(_trim_heap)

    @callback
    def _freeze(_now: object) -> None:
        timer[0] = None
        started = time.perf_counter()
        collected = gc.collect()  # what setup left as garbage is not frozen with the rest
        gc.freeze()
        frozen_devices[0] = seen[0][0]
        _FROZEN_BY.add(entry.entry_id)
        _trim(None)
        if trimming[0] is None:
            trimming[0] = async_track_time_interval(hass, _trim, const.HEAP_TRIM_INTERVAL)
        LOGGER.debug(
            "Hall set up (%s devices, %s entities): %s unreachable objects collected, %s objects "
            "frozen out of full collections in %.0f ms",
            *seen[0],
            collected,
            gc.get_freeze_count(),
            (time.perf_counter() - started) * 1000,
        )

    @callback
    def _check() -> None:
        snapshot = coordinator.data
        if snapshot is None or len(snapshot.topology.circuits) <= const.HALL_CIRCUITS:
            return
        devices = len(snapshot.identities)
        if devices == frozen_devices[0] and timer[0] is None:
            return  # set up and frozen at this size: nothing to count
        entities = len(er.async_entries_for_config_entry(registry, entry.entry_id))
        if (devices, entities) == seen[0]:
            return
        seen[0] = (devices, entities)
        if timer[0] is not None:
            timer[0]()
        timer[0] = async_call_later(hass, const.GC_FREEZE_QUIET, _freeze)

    @callback
    def _unload() -> None:
        for pending in (timer, trimming):
            if pending[0] is not None:
                pending[0]()
                pending[0] = None
        if entry.entry_id in _FROZEN_BY:
            _FROZEN_BY.discard(entry.entry_id)
            if not _FROZEN_BY:
                gc.unfreeze()  # the plant's objects go back to the oldest generation

    entry.async_on_unload(coordinator.async_add_listener(_check))
    entry.async_on_unload(_unload)
