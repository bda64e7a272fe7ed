"""Element forecasts: sums of circuit forecasts, a deferred planning window, calibrated bands."""

from __future__ import annotations

import math

import numpy as np

from custom_components.datacenter_power.engine.element_forecast import ElementForecasts
from custom_components.datacenter_power.engine.forecast import Z90
from custom_components.datacenter_power.engine.policy import PolicyConfig

from .test_policy import T0, TOPO

STEP = 300.0


def _load(rng: np.random.Generator, t: float) -> float:
    hour = ((t - T0) % 86400.0) / 3600.0
    return (
        4.0
        * (1.0 + 0.25 * math.cos(2 * math.pi * (hour - 15.0) / 24.0))
        * (1.0 + 0.08 * rng.standard_normal())
    )


def _run(hours: float) -> tuple[ElementForecasts, float]:
    rng = np.random.default_rng(5)
    fcs = ElementForecasts(TOPO, PolicyConfig(poll_s=STEP))
    assignment = TOPO.normal_assignment()
    t = T0
    end_history = T0 + 3 * 86400.0
    while t < end_history + hours * 3600.0:
        amps = {c: _load(rng, t) for c in TOPO.circuits}
        for c, a in amps.items():
            fcs.observe(c, t, a)
        fcs.outcome(t, amps, dict.fromkeys(TOPO.circuits, True))
        if t >= end_history and t - fcs.refreshed_s >= 3600.0:
            fcs.refresh(t, (), assignment)
        t += STEP
    return fcs, t


def test_band_is_calibrated_from_outcomes() -> None:
    fcs, _ = _run(12.0)
    cal = fcs.calibration()
    assert cal.samples >= 200
    assert cal.coverage is not None
    assert abs(cal.coverage - 0.8) < 0.1
    # The published element band is the calibrated one.
    fc = fcs.element_fc["mpdu2"]
    raw = sum(
        (fcs.circuit_fc[c].p90 - fcs.circuit_fc[c].p50) / Z90
        for c in TOPO.circuits_through("mpdu2", TOPO.normal_assignment())
    )
    assert cal.scale != 1.0
    assert np.all((fc.p90 - fc.p50) <= Z90 * cal.scale * raw + 1e-9)


def test_deferred_window_starts_later_without_now() -> None:
    fcs, _t = _run(1.0)
    now = fcs.refreshed_s
    start = now + 4 * 3600.0
    loads, grid = fcs.loads(
        now, dict.fromkeys(TOPO.circuits, 99.0), from_s=start, until_s=start + 3600
    )
    assert grid[0] >= start
    assert grid[-1] <= start + 3600
    assert all(len(v) == len(grid) for v in loads.values())
    assert all(np.all(v < 99.0) for v in loads.values())  # "now" (99 A) is not in the window
    loads_now, grid_now = fcs.loads(now, dict.fromkeys(TOPO.circuits, 99.0))
    assert grid_now[0] == now
    assert loads_now["a1"][0] == 99.0


def test_expected_seconds_above_a_limit_follow_the_load_and_the_window() -> None:
    """The expected-load drain's guard: expected seconds with some element above its limit,
    from the element P50 and calibrated spread. The normal paths (about 16 A of 40 A) give
    none; every circuit on mpdu1 (about 40 A, +-25 % over the day) gives hours, fewer over a
    shorter window."""
    fcs, _t = _run(1.0)
    now = fcs.refreshed_s
    packed: dict[str, str | None] = dict.fromkeys(TOPO.circuits, "mpdu1")
    assert fcs.expected_over_s(TOPO.normal_assignment(), now + 86400.0) < 60.0
    day = fcs.expected_over_s(packed, now + 86400.0)
    quarter = fcs.expected_over_s(packed, now + 6 * 3600.0)
    assert day > 3 * 3600.0
    assert 0.0 <= quarter < day <= 86400.0 + 900.0
