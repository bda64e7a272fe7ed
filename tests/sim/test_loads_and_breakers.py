"""Load shape and the breaker trip curve, on their own and inside the plant."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from dcp_sim.breakers import ThermalBreakers, trip_time_s
from dcp_sim.loads import daily_shape, weekly_shape
from dcp_sim.plant import Plant

type Doc = dict[str, Any]
H = 3600.0


def _current_series(plant: Plant, circuit: str, t_end: float) -> tuple[list[float], list[float]]:
    times, values = [], []
    while plant.t_s < t_end:
        plant.step()
        tel = plant.telemetry()
        times.append(tel.t_s)
        values.append(tel.circuits[circuit].current_a)
    return times, values


def test_shapes() -> None:
    assert daily_shape(15.0) == pytest.approx(1.0)
    assert daily_shape(3.0) == pytest.approx(-1.0)
    assert daily_shape(9.0) == pytest.approx(0.0, abs=1e-12)
    monday = 1_772_409_600.0  # 2026-03-02T00:00Z
    assert weekly_shape(monday) == 1.0
    assert weekly_shape(monday + 4.5 * 86400) == 1.0  # Friday
    assert weekly_shape(monday + 5.5 * 86400) == -1.0  # Saturday
    assert weekly_shape(monday + 6.5 * 86400) == -1.0  # Sunday


def test_daily_cycle_peaks_mid_afternoon(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["circuits"][0]["load"] = {"mean_a": 10, "daily": 0.3}
    times, values = _current_series(make_plant(doc), "c01", 24 * H)
    by_time = dict(zip(times, values, strict=True))
    assert times[int(np.argmax(values))] == 15 * H
    assert times[int(np.argmin(values))] == 27 * H - 24 * H  # 03:00
    assert by_time[15 * H] == pytest.approx(13.0)
    assert by_time[3 * H] == pytest.approx(7.0)
    assert by_time[9 * H] == pytest.approx(10.0)


def test_weekly_trend_and_noise(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["duration"] = "7d"
    doc["circuits"][0]["load"] = {"mean_a": 4, "weekly": 0.1}
    doc["circuits"][1]["load"] = {"mean_a": 4, "noise": 0.05}
    doc["circuits"][2]["load"] = {"mean_a": 2, "trend_per_day": 0.1}
    plant = make_plant(doc)
    plant.advance_to(86400.0)  # Tuesday 00:00
    tel = plant.telemetry()
    assert tel.circuits["c01"].current_a == pytest.approx(4.4)
    assert tel.circuits["c03"].current_a == pytest.approx(2.2)
    noisy = []
    while plant.t_s < 3 * 86400:
        plant.step()
        noisy.append(plant.telemetry().circuits["c02"].current_a)
    assert np.mean(noisy) == pytest.approx(4.0, rel=0.01)
    assert np.std(noisy) / 4.0 == pytest.approx(0.05, rel=0.1)
    plant.advance_to(5.5 * 86400)  # Saturday noon
    assert plant.telemetry().circuits["c01"].current_a == pytest.approx(3.6)
    assert plant.timestamp.weekday() == 5


def test_load_events_and_schedule(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["schedule"] = [{"start": "1h", "duration": "1h", "circuits": ["c02"], "extra_a": 1.5}]
    doc["events"] = [
        {"kind": "load_trend", "targets": ["c01"], "onset": "1h", "growth_a_per_h": 1, "end": "3h"},
        {"kind": "load_surge", "targets": ["c03"], "at": "1h", "duration": "30m", "extra_a": 2},
    ]
    plant = make_plant(doc)
    expected = {  # t: (c01, c02, c03)
        0.5 * H: (5.0, 4.0, 3.0),
        1 * H: (5.0, 5.5, 5.0),
        1.5 * H: (5.5, 5.5, 3.0),
        2 * H: (6.0, 4.0, 3.0),
        3 * H: (7.0, 4.0, 3.0),
        5 * H: (7.0, 4.0, 3.0),
    }
    for t, currents in expected.items():
        plant.advance_to(t)
        c = plant.telemetry().circuits
        assert (c["c01"].current_a, c["c02"].current_a, c["c03"].current_a) == pytest.approx(
            currents
        ), t


def test_trip_curve_calibration() -> None:
    assert trip_time_s(1.35) == pytest.approx(3600.0, rel=0.05)
    assert trip_time_s(2.0) == pytest.approx(120.0)
    assert trip_time_s([1.0, 0.5])[0] == np.inf
    assert trip_time_s(1.1) > 10 * 3600.0


@pytest.mark.parametrize(("ratio", "expected_s"), [(1.35, 3600.0), (2.0, 120.0), (3.0, 13.0)])
def test_thermal_bank_trips_on_time(ratio: float, expected_s: float) -> None:
    bank = ThermalBreakers(np.array([10.0, 10.0]))
    t, dt = 0.0, 1.0
    while not bank.open[0]:
        bank.heat_up(np.array([10.0 * ratio, 10.0]), dt)
        t += dt
        bank.update(t)
    assert t == pytest.approx(expected_s, rel=0.05, abs=1.0)
    assert not bank.open[1]
    assert bank.trips.tolist() == [1, 0]
    bank.update(t + 1799.0)
    assert bank.open[0]
    bank.update(t + 1800.0)
    assert not bank.open[0]


@pytest.mark.parametrize(("load_a", "trip_s"), [(21.6, 3600.0), (32.0, 120.0)])
def test_circuit_breaker_trips_and_recloses(
    doc: Doc, make_plant: Callable[..., Plant], load_a: float, trip_s: float
) -> None:
    doc["circuits"][2]["load"] = {"mean_a": load_a}  # c03 on a 16 A breaker
    plant = make_plant(doc)
    while not plant.telemetry().circuits["c03"].breaker_open:
        plant.step()
        assert plant.t_s <= trip_s + 120
    assert plant.t_s == pytest.approx(trip_s, abs=60.0)
    tripped_at = plant.t_s
    tel = plant.telemetry().circuits["c03"]
    assert (tel.energized, tel.current_a) == (False, 0.0)
    assert plant.metrics.breaker_trips == 1
    assert plant.metrics.interruptions == 1
    plant.advance_to(tripped_at + 1740.0)
    assert plant.telemetry().circuits["c03"].breaker_open
    plant.advance_to(tripped_at + 1800.0)
    assert plant.telemetry().circuits["c03"].energized
    # 30 minutes dark at load_a * 230 V
    assert plant.metrics.unserved_energy_wh == pytest.approx(load_a * 230 * 0.5, rel=1e-6)


def test_no_trip_at_rating(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["circuits"][2]["load"] = {"mean_a": 16.0}
    plant = make_plant(doc)
    plant.advance_to(12 * H)
    assert not plant.telemetry().circuits["c03"].breaker_open
    assert plant.metrics.breaker_trips == 0


def test_mpdu_overload_trip_moves_circuits(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["mpdus"][0]["rating_a"] = 10  # mpdu1 carries c01 + c03 = 8 A, then 16 A (160 %)
    doc["events"] = [
        {"kind": "load_surge", "targets": ["c01"], "at": "1h", "duration": "2h", "extra_a": 8}
    ]
    plant = make_plant(doc)
    plant.advance_to(1 * H + 600)  # 160 %: trips after 120 / 0.6**3.24 = 630 s
    assert not plant.telemetry().mpdus["mpdu1"].breaker_open
    plant.advance_to(1 * H + 720)
    tel = plant.telemetry()
    assert tel.mpdus["mpdu1"].breaker_open
    assert tel.mpdus["mpdu1"].alarm_breaker_trip
    assert tel.mpdus["mpdu1"].breaker_trips == 1
    assert tel.circuits["c01"].active_path == 1
    assert tel.circuits["c01"].energized
    assert not tel.circuits["c03"].energized  # single path
    assert plant.metrics.breaker_trips == 1
    assert plant.metrics.interruptions == 2  # bypass 30 ms > ride-through 20 ms, and c03


def test_local_wall_clock_follows_start_offset(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["start"] = "2026-03-02T00:00:00+02:00"
    doc["circuits"][0]["load"] = {"mean_a": 10, "daily": 0.3}
    plant = make_plant(doc)
    times, values = _current_series(plant, "c01", 24 * H)
    assert times[int(np.argmax(values))] == 15 * H  # 15:00 local
    assert plant.timestamp.utcoffset() == timedelta(0)  # reported in UTC
    assert plant.timestamp.hour == 22  # 2026-03-02T22:00Z == 2026-03-03T00:00+02:00
    assert plant.telemetry().ats["ats1"].self_tests == 4


def test_ats_breaker_trips_on_overload(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["ats"][0]["rating_a"] = 5  # c01 + c03 = 8 A: 160 %, trips after about 630 s
    plant = make_plant(doc)
    plant.advance_to(600)
    assert plant.telemetry().ats["ats1"].output_energized
    plant.advance_to(720)
    tel = plant.telemetry()
    assert not tel.ats["ats1"].output_energized
    assert tel.ats["ats1"].alarm_output_lost
    assert not tel.mpdus["mpdu1"].energized
    assert tel.circuits["c01"].active_path == 1
    assert plant.metrics.breaker_trips == 1
    plant.advance_to(720 + 1800)  # reclosed; only c03 (3 A) is left on it
    assert plant.telemetry().ats["ats1"].load_current_a == pytest.approx(3.0)
