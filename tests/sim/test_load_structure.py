"""Real-world load structure (issue 21, item 4): each optional ``load`` field shows in the load the
plant serves, as docs/scenario-format.md specifies, history included; malformed values name
their key path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from dcp_sim.plant import Plant
from dcp_sim.scenario import ScenarioError, parse_scenario

type Doc = dict[str, Any]
H = 3600.0
D = 86400.0


def _served(plant: Plant, circuit: str, t_end: float) -> dict[float, float]:
    """The circuit's served current at every step from the plant's start to ``t_end``."""
    out = {plant.t_s: plant.telemetry().circuits[circuit].current_a}
    while plant.t_s < t_end:
        plant.step()
        out[plant.t_s] = plant.telemetry().circuits[circuit].current_a
    return out


def _load(doc: Doc, **fields: Any) -> None:
    doc["circuits"][0]["load"] = {"mean_a": 10, **fields}


def test_weekday_profile_sets_each_day(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["duration"] = "7d"  # Monday 2026-03-02 .. Sunday
    _load(doc, weekday_profile=[1.0, 1.1, 1.0, 1.0, 0.95, 0.7, 0.5])
    s = _served(make_plant(doc), "c01", 7 * D)
    noon = [s[d * D + 12 * H] for d in range(7)]
    assert noon == pytest.approx([10.0, 11.0, 10.0, 10.0, 9.5, 7.0, 5.0])
    assert s[6 * D + 12 * H] / s[12 * H] == pytest.approx(0.5)  # Sunday / Monday


def test_weekend_daily_and_peak_hour(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["duration"] = "7d"
    _load(doc, daily=0.3, weekend_daily=0.1, peak_hour=10.5)
    s = _served(make_plant(doc), "c01", 7 * D)
    monday = {t: v for t, v in s.items() if 0 <= t < D}
    saturday = {t - 5 * D: v for t, v in s.items() if 5 * D <= t < 6 * D}
    assert max(monday, key=lambda t: monday[t]) == 10.5 * H
    assert max(monday.values()) == pytest.approx(13.0)
    assert max(saturday.values()) == pytest.approx(11.0)
    assert min(saturday.values()) == pytest.approx(9.0)


def test_holiday_is_drawn_like_a_sunday(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["duration"] = "7d"
    doc["holidays"] = ["2026-03-04"]  # a Wednesday
    _load(
        doc,
        daily=0.3,
        weekly=0.1,
        weekend_daily=0.05,
        weekday_profile=[1, 1, 1, 1, 1, 0.8, 0.6],
        batch={"start": "01:00", "duration": "1h", "extra": 0.2},
    )
    s = _served(make_plant(doc), "c01", 7 * D)
    hours = np.arange(0, 24, 0.5) * H
    wednesday = [s[2 * D + h] for h in hours]
    sunday = [s[6 * D + h] for h in hours]
    tuesday = [s[1 * D + h] for h in hours]
    assert wednesday == pytest.approx(sunday)
    assert s[2 * D + 15 * H] < 0.7 * s[1 * D + 15 * H]
    assert wednesday != pytest.approx(tuesday)


def test_holidays_read_from_yaml_dates() -> None:
    text = (
        "version: 1\nname: h\nseed: 1\nstart: 2026-03-02T00:00:00Z\nhistory: 0s\nduration: 1d\n"
        "step: 60s\nsources: [{id: s, nominal_v: 230}]\n"
        "ats: [{id: a, sources: [s], rating_a: 100, transfer_time: 100ms, rated_operations: 9}]\n"
        "mpdus: [{id: m, ats: a, rating_a: 50}]\n"
        "circuits: [{id: c, paths: [m], rating_a: 16, load: {mean_a: 1}}]\n"
        "holidays: [2026-12-25, '2026-12-24']\n"
    )
    sc = parse_scenario(text)
    assert [d.isoformat() for d in sc.holidays] == ["2026-12-24", "2026-12-25"]


def test_monday_ramp_after_weekend_and_holiday(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["history"] = "2d"  # Saturday and Sunday before t=0 (Monday 00:00)
    doc["duration"] = "4d"
    doc["holidays"] = ["2026-03-04"]
    _load(doc, monday_ramp={"depth": 0.2, "start": "06:00", "duration": "2h"})
    s = _served(make_plant(doc), "c01", 4 * D)
    assert s[-1 * D + 3 * H] == pytest.approx(10.0)  # Sunday: no ramp (history counts)
    assert s[3 * H] == pytest.approx(8.0)  # Monday before the build-up
    assert s[7 * H] == pytest.approx(9.0)  # half-way
    assert s[8 * H] == pytest.approx(10.0)
    assert s[D + 3 * H] == pytest.approx(10.0)  # Tuesday: a normal morning
    assert s[2 * D + 3 * H] == pytest.approx(10.0)  # Wednesday, a holiday: no ramp
    assert s[3 * D + 3 * H] == pytest.approx(8.0)  # Thursday after the holiday ramps again
    assert s[3 * D + 9 * H] == pytest.approx(10.0)


def test_steps_change_the_level_at_their_time(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["history"] = "2h"
    _load(
        doc,
        daily=0.2,
        steps=[{"at": "3h", "delta_a": 2.5}, {"at": "-1h", "delta_a": -2}],
    )
    s = _served(make_plant(doc), "c01", 6 * H)
    cycle = {t: 1 + 0.2 * np.cos(2 * np.pi * ((t / H) % 24 - 15) / 24) for t in s}
    assert s[-2 * H] == pytest.approx(10.0 * cycle[-2 * H])
    assert s[-1 * H - 60] == pytest.approx(10.0 * cycle[-1 * H - 60])
    assert s[-1 * H] == pytest.approx(8.0 * cycle[-1 * H])  # in the history
    assert s[3 * H - 60] == pytest.approx(8.0 * cycle[3 * H - 60])
    assert s[3 * H] == pytest.approx(10.5 * cycle[3 * H])


def test_batch_peak_every_night(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["history"] = "1d"
    _load(doc, batch={"start": "01:00", "duration": "2h", "extra": 0.3})
    s = _served(make_plant(doc), "c01", 2 * D)
    for night in (-1, 0, 1):  # the history's night too
        base = night * D
        assert s[base + 59 * 60] == pytest.approx(10.0)
        assert s[base + 1 * H] == pytest.approx(13.0)
        assert s[base + 3 * H - 60] == pytest.approx(13.0)
        assert s[base + 3 * H] == pytest.approx(10.0)
    assert sum(v > 11 for v in s.values()) == 3 * 120


def test_batch_jitter_and_group_ranges(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["circuits"] = []
    doc["circuit_groups"] = [
        {
            "prefix": "g",
            "count": 3,
            "paths": ["mpdu1"],
            "rating_a": 16,
            "load": {
                "mean_a": 4,
                "batch": {
                    "start": ["00:30", "02:30"],
                    "duration": ["1h", "2h"],
                    "extra": [0.2, 0.4],
                    "jitter": "30m",
                },
            },
        }
    ]
    doc["duration"] = "4d"
    sc = parse_scenario(doc)
    batches = [c.load.batch for c in sc.circuits]
    assert all(b is not None for b in batches)
    assert len({b.start_h for b in batches if b is not None}) == 3
    plant = make_plant(doc)
    s = _served(plant, "g01", 4 * D)
    b = batches[0]
    assert b is not None
    starts = []
    for night in range(3):
        on = [t for t, v in s.items() if night * D <= t < (night + 1) * D and v > 4.01]
        assert len(on) == pytest.approx(b.duration_s / 60, abs=1)
        starts.append(on[0] - night * D)
    for start in starts:
        assert b.start_h * H <= start <= b.start_h * H + b.jitter_s + 60
    assert len(set(starts)) > 1  # the start varies from night to night
    again = _served(make_plant(doc), "g01", 4 * D)
    assert again == s  # fixed by the seed


def _residual(s: dict[float, float], mean: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.array(list(s.values())) / mean - 1.0


def _lag1(x: np.ndarray[Any, np.dtype[np.float64]]) -> float:
    return float(np.corrcoef(x[:-1], x[1:])[0, 1])


def test_noise_correlation_is_ar1(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["duration"] = "6d"
    _load(doc, noise=0.05, noise_correlation="20m")
    doc["circuits"][1]["load"] = {"mean_a": 10, "noise": 0.05}
    plant = make_plant(doc)
    a, b = [], []
    while plant.t_s < 6 * D:
        plant.step()
        tel = plant.telemetry()
        a.append(tel.circuits["c01"].current_a / 10 - 1)
        b.append(tel.circuits["c02"].current_a / 10 - 1)
    ra, rb = np.array(a), np.array(b)
    assert _lag1(ra) == pytest.approx(np.exp(-1 / 20), abs=0.02)
    assert abs(_lag1(rb)) < 0.05  # white without the field, as before
    assert ra.std() == pytest.approx(0.05, rel=0.15)  # same level of noise, now correlated


def test_noise_bursts_raise_the_noise_for_a_while(
    doc: Doc, make_plant: Callable[..., Plant]
) -> None:
    doc["duration"] = "6d"
    _load(doc, noise=0.01, noise_bursts={"per_day": 1, "duration": "2h", "factor": 5})
    r = _residual(_served(make_plant(doc), "c01", 6 * D), 10.0)
    hourly = r[: len(r) // 60 * 60].reshape(-1, 60).std(axis=1)
    loud = hourly > 0.025
    assert 3 <= int(loud.sum()) <= 40  # a few bursts in six days, not all the time
    assert float(np.median(hourly)) == pytest.approx(0.01, rel=0.2)
    assert float(np.median(hourly[loud])) == pytest.approx(0.05, rel=0.3)


def test_explicit_defaults_change_nothing(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    _load(doc, daily=0.2, weekly=0.1, noise=0.03)
    plain = _served(make_plant(doc), "c01", D)
    _load(
        doc,
        daily=0.2,
        weekly=0.1,
        noise=0.03,
        peak_hour=15,
        weekday_profile=[1] * 7,
        steps=[],
        noise_correlation=0,
    )
    assert _served(make_plant(doc), "c01", D) == plain


def _set_load(**fields: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        doc["circuits"][0]["load"] = {"mean_a": 10, **fields}

    return mutate


def _set_doc(key: str, value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        doc[key] = value

    return mutate


def _group_load(**fields: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        doc["circuit_groups"] = [
            {"prefix": "g", "count": 2, "paths": ["mpdu1"], "rating_a": 16, "load": fields}
        ]

    return mutate


L = "circuits[0].load"
BAD: list[tuple[str, Callable[[Doc], None], str]] = [
    ("typo", _set_load(weekday_profil=[1] * 7), f"{L}.weekday_profil: unknown key"),
    ("profile length", _set_load(weekday_profile=[1] * 6), f"{L}.weekday_profile: needs 7"),
    (
        "profile item",
        _set_load(weekday_profile=[1, 1, "x", 1, 1, 1, 1]),
        f"{L}.weekday_profile[2]: expected a number",
    ),
    ("profile zero", _set_load(weekday_profile=[0] * 7), "needs at least one factor > 0"),
    ("peak hour", _set_load(peak_hour=25), f"{L}.peak_hour: must be <= 24"),
    ("weekend daily", _set_load(weekend_daily=1.2), f"{L}.weekend_daily: must be <= 0.95"),
    (
        "ramp depth",
        _set_load(monday_ramp={"depth": 1.5}),
        f"{L}.monday_ramp.depth: must be <= 0.9",
    ),
    (
        "ramp key",
        _set_load(monday_ramp={"depth": 0.1, "length": "2h"}),
        f"{L}.monday_ramp.length: unknown key",
    ),
    (
        "step at",
        _set_load(steps=[{"at": "soon", "delta_a": 1}]),
        f"{L}.steps[0].at: expected a duration",
    ),
    (
        "step missing",
        _set_load(steps=[{"at": "1h"}]),
        f"{L}.steps[0].delta_a: missing required key",
    ),
    (
        "step below zero",
        _set_load(steps=[{"at": "1h", "delta_a": -4}, {"at": "2h", "delta_a": -7}]),
        f"{L}.steps[1].delta_a: takes the mean below 0 A",
    ),
    (
        "batch unquoted clock",
        _set_load(batch={"start": 1320, "duration": "1h", "extra": 0.2}),
        "quote it",
    ),
    (
        "batch clock",
        _set_load(batch={"start": "25:00", "duration": "1h", "extra": 0.2}),
        f"{L}.batch.start: expected a time of day like '01:30'",
    ),
    (
        "batch missing",
        _set_load(batch={"start": "01:00", "duration": "1h"}),
        f"{L}.batch.extra: missing required key",
    ),
    (
        "batch too long",
        _set_load(batch={"start": "01:00", "duration": "23h", "extra": 0.2, "jitter": "2h"}),
        f"{L}.batch: duration + jitter must be at most 24 h",
    ),
    (
        "batch range",
        _set_load(batch={"start": "01:00", "duration": ["3h", "1h"], "extra": 0.2}),
        f"{L}.batch.duration: range [lo, hi] needs lo <= hi",
    ),
    (
        "noise correlation",
        _set_load(noise_correlation="-5m"),
        f"{L}.noise_correlation: expected a duration",
    ),
    (
        "burst factor",
        _set_load(noise_bursts={"per_day": 1, "duration": "1h", "factor": 0.5}),
        f"{L}.noise_bursts.factor: must be >= 1",
    ),
    (
        "burst missing",
        _set_load(noise_bursts={"per_day": 1, "factor": 2}),
        f"{L}.noise_bursts.duration: missing required key",
    ),
    (
        "group key",
        _group_load(mean_a=[1, 2], batch={"start": "01:00", "duration": "1h", "extra": 9}),
        "circuit_groups[0].load.batch.extra: must be <= 3",
    ),
    ("holiday date", _set_doc("holidays", ["2026-02-30"]), "holidays[0]: expected a date"),
    ("holiday type", _set_doc("holidays", [20260101]), "holidays[0]: expected a date"),
    ("holiday twice", _set_doc("holidays", ["2026-01-01", "2026-01-01"]), "listed twice"),
]


@pytest.mark.parametrize(
    ("mutate", "message"), [(m, msg) for _, m, msg in BAD], ids=[n for n, _, _ in BAD]
)
def test_malformed_load_fields(doc: Doc, mutate: Callable[[Doc], None], message: str) -> None:
    mutate(doc)
    with pytest.raises(ScenarioError) as err:
        parse_scenario(doc, source="bad.yaml")
    assert str(err.value).startswith("bad.yaml: ")
    assert message in str(err.value)
