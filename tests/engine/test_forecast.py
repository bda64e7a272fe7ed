"""Load forecaster on simulator data: 1 h accuracy, interval coverage, announced work, trends
carried no further than observed, short history, gaps, holidays, staggered refits, speed and
persistence. (Accuracy on real demand: tests/engine/test_forecast_real.py.)"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from custom_components.datacenter_power.engine.forecast import Forecast, LoadForecaster
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from tests.plants import circuit, two_ats_plant

type FloatArray = npt.NDArray[np.float64]
H = 3600.0
DAY = 86400.0
TREND_ONSET_H = 30.0


def _circuit(cid: str, paths: list[str], mean: float, daily: float) -> dict[str, Any]:
    return circuit(cid, paths, mean, daily=daily, weekly=0.12, noise=0.03)


DOC: dict[str, Any] = two_ats_plant(
    "forecast-unit",
    seed=7,
    ats_rating_a=200,
    mpdu_rating_a=100,
    ambient_c=23,
    start="2026-03-06T00:00:00Z",  # a Friday: the forecast days cross into the weekend
    history="10d",
    duration="2d",
    circuits=[
        *(_circuit(f"a{i}", ["mpdu1", "mpdu2"], 3.0 + 0.4 * i, 0.1 + 0.05 * i) for i in range(5)),
        *(_circuit(f"b{i}", ["mpdu2", "mpdu1"], 3.5 + 0.3 * i, 0.3 - 0.04 * i) for i in range(5)),
    ],
    schedule=[
        {
            "start": "10h",
            "duration": "2h",
            "circuits": ["a0", "a1"],
            "extra_a": 3,
            "announced": True,
        }
    ],
    events=[
        {
            "kind": "load_trend",
            "targets": ["b0", "b1", "b2", "b3"],
            "onset": f"{TREND_ONSET_H:g}h",
            "growth_a_per_h": 0.25,
        }
    ],
)


@dataclass(frozen=True)
class Run:
    """Telemetry of one simulated run: epoch times and per-series currents, 60 s apart."""

    epoch0: float
    t: FloatArray
    series: dict[str, FloatArray]

    def index(self, scenario_h: float) -> int:
        return int(np.searchsorted(self.t, self.epoch0 + scenario_h * H))

    def known_mpdu1(self, times: FloatArray) -> FloatArray:
        """The announced work: two circuits of mpdu1, +3 A each, 10h-12h."""
        start = self.epoch0 + 10 * H
        return np.where((times >= start) & (times < start + 2 * H), 6.0, 0.0)

    def known_a0(self, times: FloatArray) -> FloatArray:
        """The announced work on circuit a0 alone."""
        return self.known_mpdu1(times) / 2.0


@pytest.fixture(scope="module")
def run() -> Run:
    scenario = parse_scenario(DOC)
    plant = Plant(scenario)
    epoch0 = scenario.start.timestamp()
    names = ["ats1", "mpdu1", "mpdu2", "a0"]
    times: list[float] = []
    values: dict[str, list[float]] = {n: [] for n in names}
    t = -scenario.history_s
    while t <= scenario.duration_s:
        plant.advance_to(t)
        tel = plant.telemetry()
        times.append(epoch0 + t)
        values["ats1"].append(tel.ats["ats1"].load_current_a)
        values["mpdu1"].append(tel.mpdus["mpdu1"].current_a)
        values["mpdu2"].append(tel.mpdus["mpdu2"].current_a)
        values["a0"].append(tel.circuits["a0"].current_a)
        t += 60.0
    return Run(epoch0, np.array(times), {k: np.array(v) for k, v in values.items()})


def _feed(run: Run, name: str, start_h: float, end_h: float, **kw: float) -> LoadForecaster:
    fc = LoadForecaster(**kw)
    i0, i1 = run.index(start_h), run.index(end_h)
    fc.observe_many(run.t[i0:i1], run.series[name][i0:i1])
    return fc


def _walk(
    run: Run, name: str, fc: LoadForecaster, start_h: float, end_h: float, lead_h: float
) -> tuple[float, float]:
    """Forecast every 15 min from start_h to end_h; (MAPE, P10-P90 coverage) at lead_h ahead."""
    values = run.series[name]
    known = {"ats1": run.known_mpdu1, "mpdu1": run.known_mpdu1, "a0": run.known_a0}.get(name)
    errors: list[float] = []
    inside = 0
    i = run.index(start_h)
    end = run.index(end_h)
    while i < end:
        forecast = fc.forecast(float(run.t[i - 1]), known=known)
        j = i - 1 + round(lead_h * 60)
        actual = float(values[j])
        target = float(run.t[j])
        errors.append(abs(forecast.value_at(target) - actual) / actual)
        inside += forecast.value_at(target, "p10") <= actual <= forecast.value_at(target, "p90")
        fc.observe_many(run.t[i : i + 15], values[i : i + 15])
        i += 15
    return float(np.mean(errors)), inside / len(errors)


@pytest.mark.parametrize("name", ["ats1", "mpdu1", "mpdu2", "a0"])
def test_one_hour_ahead_accuracy_and_coverage(run: Run, name: str) -> None:
    fc = _feed(run, name, -240, 0)
    mape, coverage = _walk(run, name, fc, 0, 24, 1.0)
    limit = 0.05 if name == "a0" else 0.025  # one circuit is noisier than an aggregate
    assert mape < limit
    assert 0.7 <= coverage <= 0.97


def test_day_ahead_interval_coverage(run: Run) -> None:
    fc = _feed(run, "mpdu1", -240, 0)
    _mape, coverage = _walk(run, "mpdu1", fc, 0, 24, 20.0)
    assert 0.7 <= coverage <= 0.97


def test_announced_work_is_in_the_forecast(run: Run) -> None:
    fc = _feed(run, "mpdu1", -240, 6)
    now = run.epoch0 + 6 * H
    with_work = fc.forecast(now, known=run.known_mpdu1)
    without = fc.forecast(now)
    during = run.epoch0 + 11 * H
    assert with_work.value_at(during) - without.value_at(during) == pytest.approx(6.0, abs=0.3)
    before = run.epoch0 + 8 * H
    assert with_work.value_at(before) == pytest.approx(without.value_at(before), abs=0.1)
    actual = float(np.mean(run.series["mpdu1"][run.index(10.5) : run.index(11.5)]))
    assert with_work.value_at(during) == pytest.approx(actual, abs=0.6)
    assert without.value_at(during, "p90") < actual - 4.0
    # History containing the announced work is not mistaken for a recurring daily bump.
    later = _feed(run, "mpdu1", -240, 13)
    tomorrow = later.forecast(run.epoch0 + 13 * H, known=run.known_mpdu1)
    day2 = run.epoch0 + 35 * H
    actual2 = float(run.series["mpdu1"][run.index(35)])
    assert abs(tomorrow.value_at(day2) - actual2) / actual2 < 0.06


def test_growing_load_is_extrapolated_as_far_as_it_was_seen(run: Run) -> None:
    fc = _feed(run, "mpdu2", -240, TREND_ONSET_H - 1)
    before = fc.forecast(run.epoch0 + (TREND_ONSET_H - 1) * H)
    values = run.series["mpdu2"]
    onset = run.index(TREND_ONSET_H)
    for i in range(run.index(TREND_ONSET_H - 1), onset + 3 * 60):
        fc.observe(float(run.t[i]), float(values[i]))
    now = float(run.t[onset + 3 * 60 - 1])
    trend = fc.forecast(now)
    # A limit the load reaches within the next hours: predicted before it is reached.
    level_now = float(np.mean(values[onset + 3 * 60 - 15 : onset + 3 * 60]))
    limit = level_now + 2.0
    assert before.peak("p90", until_s=now + 3 * H)[1] < limit
    actual_cross = float(run.t[onset + int(np.argmax(values[onset:] >= limit))])
    predicted = trend.first_crossing(limit, "p90")
    assert predicted is not None
    assert now < predicted <= actual_cross

    # The slope is roughly the real one: four circuits x 0.25 A/h...
    def rise(f: Forecast, a_h: float, b_h: float) -> float:
        return f.value_at(now + b_h * H) - f.value_at(now + a_h * H)

    assert 0.7 < rise(trend, 1, 2) - rise(before, 1, 2) < 1.3
    # ...but three hours of it are not carried across the day: beyond the 3 h it was seen,
    # the forecast follows the daily shape again (the old model carried it 5 days).
    assert abs(rise(trend, 6, 20) - rise(before, 6, 20)) < 1.0


@pytest.mark.parametrize("step_a", [-8.0, 5.0])
def test_level_shift_is_followed_not_extrapolated(run: Run, step_a: float) -> None:
    # Circuits moved away from (or onto) the MPDU at 2 h: its load steps, then carries on.
    values = run.series["mpdu1"].copy()
    values[run.index(2) :] += step_a
    fc = LoadForecaster()
    i0, i1 = run.index(-240), run.index(3.5)
    fc.observe_many(run.t[i0:i1], values[i0:i1])
    forecast = fc.forecast(float(run.t[i1 - 1]))
    # 6 h ahead the removed (or added) circuits' own daily swing is still in the shape: the
    # step is followed as an offset, so allow a little more there.
    for lead_h, tol in ((1.0, 0.04), (6.0, 0.07)):
        j = run.index(3.5 + lead_h)
        actual = float(np.mean(values[j - 5 : j + 5]))
        assert abs(forecast.value_at(float(run.t[j])) - actual) / actual < tol, lead_h


@pytest.mark.parametrize("history_h", [6.0, 24.0])
def test_short_history_degrades_gracefully(run: Run, history_h: float) -> None:
    long = _feed(run, "mpdu1", -240, 0).forecast(run.epoch0)
    short_fc = _feed(run, "mpdu1", -history_h, 0)
    assert short_fc.history_s == pytest.approx(history_h * H, abs=900)
    short = short_fc.forecast(run.epoch0, known=run.known_mpdu1)
    assert short.model != long.model
    width_short = float(np.mean(short.p90 - short.p10))
    width_long = float(np.mean(long.p90 - long.p10))
    assert width_short > 1.5 * width_long
    assert np.all(np.isfinite(short.p50))
    assert np.all((short.p10 <= short.p50) & (short.p50 <= short.p90))
    # It still says something useful: the next day's actual load is mostly inside.
    idx = [run.index(h) for h in np.arange(1, 24, 0.5)]
    actual = run.series["mpdu1"][idx]
    times = run.t[idx]
    lo = np.array([short.value_at(float(t), "p10") for t in times])
    hi = np.array([short.value_at(float(t), "p90") for t in times])
    assert float(np.mean((lo <= actual) & (actual <= hi))) >= 0.75


def test_nan_samples_and_gaps(run: Run) -> None:
    values = run.series["mpdu1"].copy()
    i0, i1 = run.index(-240), run.index(0)
    rng = np.random.default_rng(3)
    values[i0:i1][rng.random(i1 - i0) < 0.2] = np.nan  # a fifth of the polls lost
    values[run.index(-30) : run.index(-24)] = np.nan  # a 6 h comms drop
    fc = LoadForecaster()
    fc.observe_many(run.t[i0:i1], values[i0:i1])
    fc.observe(float(run.t[i1 - 1]), math.inf)
    forecast = fc.forecast(float(run.t[i1 - 1]))
    assert forecast.model == "daily-profile"
    assert np.all(np.isfinite(forecast.p10 + forecast.p50 + forecast.p90))
    actual = float(run.series["mpdu1"][run.index(1)])
    assert abs(forecast.value_at(run.epoch0 + H) - actual) / actual < 0.03
    # A gap right before "now" (the last hours missing) still forecasts from the model.
    fc2 = _feed(run, "mpdu1", -240, -3)
    late = fc2.forecast(run.epoch0)
    assert abs(late.value_at(run.epoch0 + H) - actual) / actual < 0.05


def test_no_data_gives_the_announced_load_only() -> None:
    fc = LoadForecaster(horizon_s=4 * H)
    forecast = fc.forecast(1_000_000.0, known=lambda t: np.full(t.shape, 2.0))
    assert forecast.model == "no-data"
    assert len(forecast.p50) == 16
    assert np.all(forecast.p50 == 2.0)
    fc.observe(999_000.0, math.nan)
    assert fc.history_s == 0.0


def test_refit_cadence_and_speed(run: Run) -> None:
    fit_ms: list[float] = []
    for k in range(10):
        fc = _feed(run, "mpdu1", -336 + k, k)  # 14 d windows (10 d of history + 2 d of run)
        t0 = time.perf_counter()
        fc.forecast(run.epoch0 + k * H)
        fit_ms.append((time.perf_counter() - t0) * 1e3)
    fc = _feed(run, "mpdu1", -240, 24)
    now = run.epoch0 + 24 * H
    fc.forecast(now)
    fitted = fc._fit
    cheap_ms: list[float] = []
    for minutes in range(1, 60, 5):
        t0 = time.perf_counter()
        fc.forecast(now + minutes * 60)
        cheap_ms.append((time.perf_counter() - t0) * 1e3)
    assert fc._fit is fitted  # between refits the coefficients are reused
    fc.forecast(now + 23 * H)
    assert fc._fit is fitted
    fc.forecast(now + DAY)  # the next day (phase 0: midnight UTC)
    assert fc._fit is not fitted
    # Budgets: 60 ms per refit + 24 h forecast, 3 ms per cheap update. The best of several
    # runs is the cost itself; medians swing with whatever else shares the CPU.
    assert min(fit_ms) < 60.0
    assert min(cheap_ms) < 3.0


def test_refits_are_spread_over_the_day_by_phase(run: Run) -> None:
    """Each series refits when ``now - refit_phase_s`` crosses a day: 24 phases refit at 24
    different hours, never all at once."""
    i0, i1 = run.index(-240), run.index(0)
    fcs = []
    for k in range(24):
        fc = LoadForecaster(refit_phase_s=k * H)
        fc.observe_many(run.t[i0:i1], run.series["mpdu1"][i0:i1])
        fc.forecast(run.epoch0)
        fcs.append(fc)
    refit_hours: list[int] = []
    for hour in range(1, 25):
        for k, fc in enumerate(fcs):
            before = fc.fitted_s
            fc.forecast(run.epoch0 + hour * H)
            if fc.fitted_s != before:
                refit_hours.append(hour)
                assert hour % 24 == k % 24, (k, hour)
    assert sorted(refit_hours) == list(range(1, 25))


def test_holidays_take_sundays_shape() -> None:
    """A non-working weekday (the ``workday`` hook) is forecast like a Sunday."""
    t0 = 1.7e9 - (1.7e9 % (7 * DAY)) + 4 * DAY  # a Monday 00:00 UTC (epoch day 0 is a Thursday)
    t = t0 + np.arange(0, 28 * DAY, 900.0)
    day = np.floor(t / DAY)
    weekend = ((day + 3) % 7) >= 5
    y = np.where(weekend, 4.0, 10.0) + np.sin(2 * np.pi * (t % DAY) / DAY)
    import datetime as dt

    holiday = dt.datetime.fromtimestamp(t0 + 28 * DAY, dt.UTC).date()  # the next Monday
    plain = LoadForecaster()
    with_holiday = LoadForecaster(non_working_days={holiday})
    for f in (plain, with_holiday):
        f.observe_many(t, y)
    now = t0 + 28 * DAY - 900.0
    noon = t0 + 28 * DAY + 12 * H
    assert plain.forecast(now).value_at(noon) == pytest.approx(10.0 + np.sin(np.pi), abs=0.5)
    assert with_holiday.forecast(now).value_at(noon) == pytest.approx(4.0, abs=0.5)


def _weekend_history(
    levels: tuple[float, float, float], hours_into_monday: float, noise_a: float
) -> tuple[FloatArray, FloatArray]:
    """A Saturday, a Sunday and the first hours of a Monday at the given levels: the same
    daily shape, readings every 5 minutes with noise."""
    sat = 1.7e9 - (1.7e9 % (7 * DAY)) + 2 * DAY  # a Saturday 00:00 UTC
    t = sat + np.arange(0, 2 * DAY + hours_into_monday * H, 300.0)
    day = np.floor((t - sat) / DAY)
    level = np.select([day == 0, day == 1], list(levels[:2]), levels[2])
    shape = 1.0 + 0.1 * np.sin(2 * np.pi * (t % DAY) / DAY)
    noise = np.random.default_rng(3).normal(0.0, noise_a, len(t))
    return t, level * shape + noise


@pytest.mark.parametrize(
    ("levels", "noise_a", "holiday"),
    [
        # Saturday above Sunday, a holiday Monday below both: the weekend's shape, a new level.
        ((10.5, 9.5, 9.0), 0.05, True),
        # Noisy weekend, a working Monday a little higher (less than the level-shift rule's
        # 4 standard deviations): a day type the history has never shown.
        ((10.0, 10.0, 11.2), 1.0, False),
    ],
)
def test_two_day_history_follows_the_present_level(
    levels: tuple[float, float, float], noise_a: float, holiday: bool
) -> None:
    """Two days of history (a weekend) and a Monday at its own level: the 1-hour forecast
    follows where Monday is now. (Two days' leave-one-out residuals mirror each other: fitted
    as they were, yesterday's residual pushed the forecast the wrong way, 21 % off in the first
    case; a correction fitted on the weekend's noise faded the offset of a day type never
    seen, 10 % off in the second.)"""
    import datetime as dt

    t, y = _weekend_history(levels, 6.0, noise_a)
    monday = dt.datetime.fromtimestamp(t[0] + 2 * DAY, dt.UTC).date()
    f = LoadForecaster(non_working_days={monday} if holiday else None)
    monday_start = float(t[0]) + 2 * DAY
    before = t < monday_start
    f.observe_many(t[before], y[before])
    f.forecast(monday_start)  # forecasts run all along: the fit holds the weekend only
    f.observe_many(t[~before], y[~before])
    now = float(t[-1]) + 300.0
    target = now + H
    expected = levels[2] * (1.0 + 0.1 * np.sin(2 * np.pi * (target % DAY) / DAY))
    assert f.forecast(now).value_at(target) == pytest.approx(expected, rel=0.03)


def test_ring_buffer_is_bounded(run: Run) -> None:
    fc = _feed(run, "mpdu1", -240, 0, max_history_s=3 * DAY)
    assert fc.history_s <= 3 * DAY
    assert LoadForecaster().history_s == 0.0


def test_forecast_helpers() -> None:
    p50 = np.array([1.0, 3.0, 5.0, 4.0])
    f = Forecast(100.0, 10.0, p50 - 1, p50, p50 + 1, "test")
    np.testing.assert_allclose(f.times(), [100.0, 110.0, 120.0, 130.0])
    assert f.value_at(105.0) == pytest.approx(2.0)
    assert f.value_at(0.0) == 1.0  # clamped
    assert f.value_at(999.0, "p90") == 5.0
    assert f.peak() == (120.0, 6.0)
    assert f.peak("p50", until_s=110.0) == (110.0, 3.0)
    assert f.peak("p10", until_s=50.0) == (100.0, 0.0)
    assert f.first_crossing(3.0) == pytest.approx(105.0)
    assert f.first_crossing(4.0, "p50") == pytest.approx(115.0)
    assert f.first_crossing(1.5) == 100.0
    assert f.first_crossing(99.0) is None
    d = f.as_dict(max_points=2)
    assert json.loads(json.dumps(d)) == d
    assert d["p50"] == [1.0, 5.0]
    assert d["step_s"] == 20.0
    assert f.as_dict()["p90"] == [2.0, 4.0, 6.0, 5.0]


def _held(f: LoadForecaster) -> dict[str, Any]:
    """What a forecaster holds: per bin its mean (mA) and sample count, the noise within bins
    and the mean sample offset (``within_var`` writes the open bin to the ring first)."""
    within_var = f.within_var
    held = f._slot_bins()
    ok = (held >= 0) & (f._count > 0)
    bins = zip(held[ok].tolist(), f._sum[ok].tolist(), f._count[ok].tolist(), strict=True)
    return {
        "within_var": within_var,
        "offset_s": f.bin_offset_s,
        "bins": {b: (round(1000.0 * total / n), n) for b, total, n in bins},
    }


def test_sample_by_sample_equals_all_at_once_with_reads_in_between() -> None:
    """``observe`` keeps the bin being filled in Python numbers and writes it to the ring
    buffer before any read: reading (history, noise) between samples, or a sample arriving
    late into a closed bin, changes nothing."""
    rng = np.random.default_rng(7)
    t0 = 1.8e9
    t = t0 + np.arange(3 * 96 * 15) * 60.0  # 3 days of 1-minute samples
    y = 5 + np.sin(t / 86400 * 2 * np.pi) + rng.normal(0, 0.1, t.size)
    y[100:130] = np.nan  # a gap
    cap_s = 2 * 86400.0  # the ring holds 2 days: the first day's slots are reused
    one = LoadForecaster(max_history_s=cap_s)
    many = LoadForecaster(max_history_s=cap_s)
    for i, (ti, yi) in enumerate(zip(t.tolist(), y.tolist(), strict=True)):
        one.observe(ti, yi)
        if i % 997 == 0:
            assert one.history_s > 0
            assert one.within_var >= 0
    one.observe(float(t[-400]), 9.0)  # late sample into a closed bin
    many.observe_many(t, y)
    many.observe_many([t[-400]], [9.0])
    a_dict, b_dict = _held(one), _held(many)
    # The ring's contents are identical; the running noise and timing statistics are
    # accumulated in a different grouping, so they agree closely but not bit for bit.
    for key in ("within_var", "offset_s"):
        assert a_dict.pop(key) == pytest.approx(b_dict.pop(key), rel=0.02)
    assert a_dict == b_dict
    now = float(t[-1]) + 60.0
    a, b = one.forecast(now), many.forecast(now)
    np.testing.assert_allclose(a.p50, b.p50, rtol=1e-3)
    np.testing.assert_allclose(a.p90, b.p90, rtol=2e-2)


def _array_bytes(obj: object, seen: set[int]) -> int:
    """Bytes of every numpy array an object holds, through its attributes (once each)."""
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    names = [*getattr(obj, "__dict__", {}), *getattr(type(obj), "__slots__", ())]
    values = [getattr(obj, n) for n in names if hasattr(obj, n)]
    return sum(_array_bytes(v, seen) for v in values if not callable(v))


def test_a_fitted_forecaster_holds_under_44_kb() -> None:
    """A hall keeps one forecaster per circuit for weeks: after 42 days (its whole ring, a
    weekly fit) its arrays stay under 44 kB. They were 70 kB: a bin number per slot beside the
    ring (the slot's bin follows from the newest bin), the ring's sample counts in 32 bits
    (16 hold 180 polls a bin at 5 s; more widen them) and the profile's reading counts in
    64 bits (only "two or more" is ever asked of them)."""
    t = 1.8e9 + np.arange(42 * 288) * 300.0
    weekend = (np.floor(t / DAY) + 3) % 7 >= 5
    rng = np.random.default_rng(1)
    y = 4 + np.cos(t / DAY * 2 * np.pi) + 0.3 * weekend + rng.normal(0, 0.1, t.size)
    f = LoadForecaster()
    f.observe_many(t, y)
    f.forecast(float(t[-1]) + 60.0)
    assert f._fit is not None
    assert f._fit.mode == "weekly"
    assert f.history_s == 42 * DAY
    assert _array_bytes(f, set()) < 44 * 1024


@pytest.mark.parametrize("at_once", [True, False])
def test_a_bin_of_more_than_65535_samples_keeps_its_count(at_once: bool) -> None:
    """The ring counts samples in 16 bits until a bin holds more: then in 32, never wrapping
    (a wrapped count would make that bin's mean 16 times too large here)."""
    t = 1.8e9 + np.arange(70_000) * 0.01  # one 15-minute bin
    y = np.where(np.arange(70_000) % 2 == 0, 1.0, 3.0)
    f = LoadForecaster()
    if at_once:
        f.observe_many(t, y)
    else:
        for t_s, value in zip(t.tolist(), y.tolist(), strict=True):
            f.observe(t_s, value)
    assert _held(f)["bins"] == {math.floor(1.8e9 / 900.0): (2000, 70_000)}
