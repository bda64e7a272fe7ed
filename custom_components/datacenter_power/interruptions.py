"""Circuit interruptions, as the bypass modules count them: logged even when shorter than a poll.

A poll every few seconds sees a circuit energised before and after a 100 ms gap (an open-transition
ATS transfer, a bypass transfer) and would never know. Every SBM counts its own interruptions
(``interruptions``, ``last_interruption_ts`` in the register map); this watcher compares the count
at every refresh with the one before and writes each new interruption to the circuit's Activity
(logbook, type ``interruption``) and to the log. The first reading of a circuit (setup, a device
found later) and a counter that went back (a replaced or restarted module) are only a baseline.
"""

from __future__ import annotations

from datetime import datetime

from homeassistant.core import HomeAssistant, callback
from homeassistant.util import dt as dt_util

from .activity import async_fire_activity
from .const import LOGGER
from .device.models import SbmReading
from .events import INTERRUPTION
from .runtime import DataCenterPowerConfigEntry

"""Activity type of a circuit interruption."""


def _when(unix_s: int) -> datetime | None:
    return dt_util.utc_from_timestamp(unix_s) if unix_s > 0 else None


class InterruptionWatch:
    """Follows one plant's SBM interruption counters and logs every increase."""

    def __init__(self, hass: HomeAssistant, entry: DataCenterPowerConfigEntry) -> None:
        """Start from nothing: the first refresh seen sets every circuit's baseline."""
        self.hass = hass
        self.entry = entry
        self.counts: dict[str, int] = {}

    @callback
    def async_start(self) -> None:
        """Follow the telemetry until the entry unloads (the present counts are the baseline)."""
        telemetry = self.entry.runtime_data.telemetry
        self.entry.async_on_unload(telemetry.async_add_listener(self.async_update))
        self.async_update()

    @callback
    def async_update(self) -> None:
        """Log the interruptions counted since the previous refresh."""
        snapshot = self.entry.runtime_data.telemetry.data
        topology = snapshot.topology
        for cid, reading in snapshot.readings.items():
            if not isinstance(reading, SbmReading):
                continue
            before = self.counts.get(cid)
            self.counts[cid] = reading.interruptions
            if before is None or reading.interruptions <= before:
                continue
            new = reading.interruptions - before
            when = _when(reading.last_interruption_ts)
            at = "" if when is None else f", the last at {dt_util.as_local(when).isoformat()}"
            node = topology.circuits.get(cid)
            critical = node is not None and node.critical
            path = (
                reading.paths[reading.active_path]
                if 0 <= reading.active_path < len(reading.paths)
                else "no path"
            )
            message = (
                f"{'critical circuit' if critical else 'circuit'} interrupted "
                f"{new} time{'' if new == 1 else 's'} since the previous poll{at} "
                f"(counted by its bypass module: {reading.interruptions} in all; now "
                f"{'energised' if reading.energized else 'NOT energised'} on {path})"
            )
            LOGGER.warning("%s: %s", cid, message)
            async_fire_activity(
                self.hass,
                self.entry,
                cid,
                INTERRUPTION,
                message,
                extra={
                    "interruptions": reading.interruptions,
                    "new_interruptions": new,
                    "last_interruption": None if when is None else when.isoformat(),
                    "critical": critical,
                },
            )


@callback
def async_setup_interruptions(hass: HomeAssistant, entry: DataCenterPowerConfigEntry) -> None:
    """Log one plant's circuit interruptions until it unloads."""
    InterruptionWatch(hass, entry).async_start()
