"""Where the decision coordinator's history lives on disk: one small index and one file a day.

Storage version 3 (``HISTORY_VERSION``): the index ``datacenter_power.<entry>.history`` lists the
UTC days kept; each day is ``datacenter_power.<entry>.history.<day>`` holding that day's rows as
columns (``history_columns.py``). A save rewrites only the days that changed (normally today:
at 1,000 circuits ~1 MB instead of the whole 14 days), and encodes and writes it in an executor
job, never on the event loop. Saves happen every ``SAVE_INTERVAL_S`` while rows arrive, and on
unload.

Older versions are migrated on load: version 1 (positional lists) and version 2 (typed rows,
``history.HistoryRow``) are converted to columns and written as day files at once. Typed rows
under ``history`` in the index are accepted at any version: that is how ``scripts/develop`` and
the tests hand over a history. Anything damaged (the index, a day file, a row) is dropped with
a warning; the rest loads.
"""

from __future__ import annotations

import time
from typing import Any, Final, override

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from .const import DOMAIN, LOGGER
from .history import HistoryRow, row_from_v1
from .history_columns import HistoryLog, decode_day, encode_day

__all__ = ["HISTORY_VERSION", "SAVE_INTERVAL_S", "HistoryStore"]

HISTORY_VERSION: Final = 3
"""3: an index and a file of columns per day; 2: one file of typed rows; 1: positional lists."""
SAVE_INTERVAL_S: Final = 600.0


class _IndexStore(Store[dict[str, Any]]):
    """The index; converts version-1 rows (positional lists) to typed rows, which the loader
    then turns into columns (version 2 already holds typed rows)."""

    @override
    async def _async_migrate_func(
        self, old_major_version: int, old_minor_version: int, old_data: dict[str, Any]
    ) -> dict[str, Any]:
        if old_major_version >= 2:
            return old_data  # typed rows under "history": the loader converts them
        rows: list[HistoryRow] = []
        dropped = 0
        # A damaged file (a crash while writing) may hold anything: start without history.
        old_rows = old_data.get("history") if isinstance(old_data, dict) else None
        if not isinstance(old_rows, list):
            LOGGER.warning("The stored load history was damaged; it is discarded")
            old_rows = []
        for old in old_rows:
            try:
                rows.append(row_from_v1(old))
            except ValueError, TypeError, KeyError, IndexError:
                dropped += 1
        if dropped:
            LOGGER.warning("Dropped %d damaged history row(s) of storage version 1", dropped)
        LOGGER.info("Converted %d history row(s) from storage version 1", len(rows))
        return {"history": rows}


class HistoryStore:
    """The persisted history of one plant (config entry)."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """The stores of ``entry_id`` (nothing is read before ``async_load``)."""
        self.hass = hass
        self.key = f"{DOMAIN}.{entry_id}.history"
        self._index = _IndexStore(hass, HISTORY_VERSION, self.key)
        self._days: dict[int, Store[dict[str, Any]]] = {}
        self._stored_days: set[int] = set()
        self._last_save = time.monotonic()
        self._saving = False
        self.last_save_s: float | None = None
        """Wall time the last save took (encode and write), for the benchmark."""

    def _day(self, day: int) -> Store[dict[str, Any]]:
        store = self._days.get(day)
        if store is None:
            store = Store(
                self.hass, HISTORY_VERSION, f"{self.key}.{day}", serialize_in_event_loop=False
            )
            self._days[day] = store
        return store

    async def async_load(self, bucket_s: float, max_s: float) -> HistoryLog:
        """The kept history (empty when there is none; damaged parts dropped with a warning)."""
        log = HistoryLog(bucket_s, max_s)
        index: object = await self._index.async_load()
        if index is None:
            return log
        if not isinstance(index, dict):
            LOGGER.warning("The stored load history index was damaged; history starts empty")
            return log
        days = index.get("days", [])
        if not isinstance(days, list) or not all(isinstance(d, int) for d in days):
            LOGGER.warning("The stored load history index was damaged; history starts empty")
            days = []
        for day in sorted(days):
            stored = await self._day(day).async_load()
            try:
                if not isinstance(stored, dict):
                    raise TypeError("not a mapping")
                chunks = await self.hass.async_add_executor_job(decode_day, day, stored)
            except (ValueError, TypeError, KeyError, AttributeError) as err:
                LOGGER.warning(
                    "The stored load history of day %s was damaged (%s); dropped", day, err
                )
                continue
            log.add_chunks(chunks)
            self._stored_days.add(day)
        rows = index.get("history")
        if rows is not None:
            await self._async_import(log, rows)
        return log

    async def _async_import(self, log: HistoryLog, rows: object) -> None:
        """Typed rows (storage version 2, or handed over) into the log, written as columns."""
        if not isinstance(rows, list):
            LOGGER.warning("The stored load history was damaged; %s row(s) discarded", 0)
            return
        imported, damaged = await self.hass.async_add_executor_job(
            HistoryLog.from_rows, rows, log.bucket_s, log.max_s
        )
        if damaged:
            LOGGER.warning("The stored load history was damaged; %s row(s) discarded", damaged)
        log.merge(imported)
        LOGGER.debug("Converted %d typed history row(s) to columns", len(rows) - damaged)
        await self.async_save(log, every_day=True)

    def async_save_due(self, log: HistoryLog) -> bool:
        """Whether a periodic save is due (``SAVE_INTERVAL_S`` since the last, none running)."""
        return not self._saving and time.monotonic() - self._last_save >= SAVE_INTERVAL_S

    async def async_save(self, log: HistoryLog, *, every_day: bool = False) -> None:
        """Write the days that changed (and the newest, with its open bucket), then the index;
        day files no longer kept are removed (a day released from memory is still kept)."""
        self._saving = True
        self._last_save = time.monotonic()
        started = time.perf_counter()
        try:
            kept = set(log.days)
            dirty = log.take_dirty() | ({max(kept)} if kept else set())
            if every_day:
                dirty |= kept
            dirty &= log.hot_days  # days on disk only are written already
            snapshot = log.snapshot_days(dirty)
            for day in sorted(dirty):
                encoded = await self.hass.async_add_executor_job(encode_day, snapshot[day])
                await self._day(day).async_save(encoded)
            await self._index.async_save({"days": sorted(kept)})
            for day in sorted(self._stored_days - kept):
                await self._day(day).async_remove()
                self._days.pop(day, None)
            self._stored_days = kept
        finally:
            self._saving = False
            self.last_save_s = time.perf_counter() - started

    async def async_remove(self) -> None:
        """Remove the index and every day file (the plant was removed)."""
        index = await self._index.async_load()
        days = index.get("days", []) if isinstance(index, dict) else []
        for day in {*self._stored_days, *(d for d in days if isinstance(d, int))}:
            await self._day(day).async_remove()
        await self._index.async_remove()
