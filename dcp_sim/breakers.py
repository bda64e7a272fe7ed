"""Thermal trip model shared by circuit, MPDU and ATS breakers.

No trip at or below rating. Above it a breaker trips after
``trip_time(r) = 120 s / (r - 1) ** 3.24`` at a constant ratio ``r = I / rating``, which gives
about 1 h at 135 % and 2 min at 200 % (UL 489 calibration points). Varying current is handled by
integrating ``dt / trip_time(r)`` into a heat state that trips at 1 and cools back to 0 over
15 minutes at or below rating. An overload trip stays open for 30 minutes.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

type FloatArray = npt.NDArray[np.float64]
type BoolArray = npt.NDArray[np.bool_]

TRIP_AT_200_S: Final = 120.0
TRIP_EXPONENT: Final = 3.24
COOL_DOWN_S: Final = 900.0
RECLOSE_AFTER_S: Final = 1800.0


def trip_time_s(ratio: npt.ArrayLike) -> FloatArray:
    """Seconds to trip at a constant current ratio (inf at or below rating)."""
    r = np.asarray(ratio, dtype=np.float64)
    over = np.maximum(r - 1.0, 0.0)
    with np.errstate(divide="ignore"):
        return np.where(r > 1.0, TRIP_AT_200_S / over**TRIP_EXPONENT, np.inf)


class ThermalBreakers:
    """A bank of breakers with their heat state and open/closed position."""

    def __init__(self, ratings_a: FloatArray) -> None:
        self.ratings_a = np.asarray(ratings_a, dtype=np.float64)
        n = self.ratings_a.size
        self.heat = np.zeros(n)
        self.open = np.zeros(n, dtype=np.bool_)
        self.reclose_at = np.full(n, np.inf)
        self.trips = np.zeros(n, dtype=np.int64)

    def heat_up(self, currents_a: FloatArray, dt_s: float) -> None:
        """Integrate one interval of current into the heat state."""
        over = np.maximum(currents_a / self.ratings_a - 1.0, 0.0)
        rate = over**TRIP_EXPONENT / TRIP_AT_200_S
        self.heat = np.where(over > 0.0, self.heat + rate * dt_s, self.heat - dt_s / COOL_DOWN_S)
        np.maximum(self.heat, 0.0, out=self.heat)

    def update(self, t_s: float) -> tuple[BoolArray, BoolArray]:
        """Trip breakers whose heat reached 1 and reclose those whose 30 min are up.

        Returns (tripped now, reclosed now).
        """
        reclosed = self.open & (self.reclose_at <= t_s)
        tripped = (~self.open) & (self.heat >= 1.0)
        if reclosed.any():
            self.open[reclosed] = False
            self.reclose_at[reclosed] = np.inf
        if tripped.any():
            self.open[tripped] = True
            self.reclose_at[tripped] = t_s + RECLOSE_AFTER_S
            self.heat[tripped] = 0.0
            self.trips += tripped
        return tripped, reclosed
