"""The plant's numeric options: their ranges, the options flow's checks and a repair at setup.

One table of ranges so that the options flow (field-level errors), the setup (a stored ``null``
or ``nan`` from an older version falls back to the default instead of breaking the start) and
the actions (the step-interval minimum) agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .const import (
    CONF_DECISION_TIMEOUT,
    CONF_FORECAST_HORIZON,
    CONF_MAX_STEP_AMPS,
    CONF_POLICY_MODE,
    CONF_SCAN_INTERVAL,
    CONF_STEP_INTERVAL,
    DEFAULT_OPTIONS,
    MAX_SCAN_INTERVAL,
    MIN_SCAN_INTERVAL,
    POLICY_MODES,
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Allowed values of one numeric option."""

    low: float
    high: float
    whole: bool

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is a finite number within the range (whole when required)."""
        number = _finite(value)
        if number is None or not self.low <= number <= self.high:
            return False
        return not self.whole or number.is_integer()


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or None (``nan``, ``inf``, ``None``, text, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


MIN_STEP_INTERVAL: Final = 10.0
"""Seconds: the shortest pause between migration steps, for the options and the actions."""
MAX_STEP_INTERVAL: Final = 3600.0
MIN_STEP_AMPS: Final = 1.0
MAX_STEP_AMPS_OPTION: Final = 500.0

LIMITS: Final[Mapping[str, Limits]] = {
    CONF_SCAN_INTERVAL: Limits(MIN_SCAN_INTERVAL, MAX_SCAN_INTERVAL, whole=True),
    CONF_MAX_STEP_AMPS: Limits(MIN_STEP_AMPS, MAX_STEP_AMPS_OPTION, whole=False),
    CONF_STEP_INTERVAL: Limits(MIN_STEP_INTERVAL, MAX_STEP_INTERVAL, whole=True),
    CONF_FORECAST_HORIZON: Limits(1, 168, whole=True),
    CONF_DECISION_TIMEOUT: Limits(1, 1440, whole=True),
}


def option_errors(user_input: Mapping[str, Any]) -> dict[str, str]:
    """Field -> error key (``invalid_<field>``, translated with its range) of the options form."""
    return {
        key: f"invalid_{key}"
        for key, limits in LIMITS.items()
        if key in user_input and not limits.accepts(user_input[key])
    }


def repaired_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The options with every missing, non-numeric, non-finite or negative number (and an unknown
    policy mode) replaced by its default; and the keys that were replaced.

    An entry made by an older version (which stored ``null`` for ``nan``) still starts. Finite
    values outside the form's range are kept (a pause of 0 s between steps is how the tests and
    a commissioning engineer run migrations back to back).
    """
    out = dict(options)
    fixed: list[str] = []
    for key in LIMITS:
        number = _finite(out.get(key))
        if number is not None and (number > 0 or (key == CONF_STEP_INTERVAL and number == 0)):
            continue
        if key in out:
            fixed.append(key)
        out[key] = DEFAULT_OPTIONS[key]
    if out.get(CONF_POLICY_MODE) not in POLICY_MODES:
        if CONF_POLICY_MODE in out:
            fixed.append(CONF_POLICY_MODE)
        out[CONF_POLICY_MODE] = DEFAULT_OPTIONS[CONF_POLICY_MODE]
    return out, fixed
