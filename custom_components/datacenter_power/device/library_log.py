"""pymodbus's own log lines, kept out of the way of the integration's.

pymodbus logs at ERROR or WARNING for every request that goes unanswered ("No response received
after 3 retries"), every refused connection and every stray frame, although it also raises the
error, which this device layer turns into a typed one (``errors.py``) and the integration reports
once per outage in its own words. :func:`quiet_library_log` demotes those records to DEBUG: they
are dropped unless someone enables debug logging for pymodbus (Home Assistant's ``logger``
integration), and then they appear there, at DEBUG.
"""

from __future__ import annotations

import logging
from typing import Final

__all__ = ["LIBRARY_LOGGERS", "DemoteToDebug", "quiet_library_log"]

LIBRARY_LOGGERS: Final = ("pymodbus", "pymodbus.logging")
"""pymodbus logs through ``pymodbus.logging`` (its ``Log`` class); the parent for good measure."""


class DemoteToDebug(logging.Filter):
    """Turn a library's WARNING/ERROR records into DEBUG ones, kept only when debug is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Demote the record; keep it only if its logger is enabled for DEBUG."""
        if record.levelno > logging.DEBUG:
            record.levelno = logging.DEBUG
            record.levelname = logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_library_log() -> None:
    """Install the filter on pymodbus's loggers (once; calling again changes nothing)."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DemoteToDebug) for f in logger.filters):
            logger.addFilter(DemoteToDebug())
