"""Degradation monitor on simulator telemetry: wear is caught early, distractions never alarm."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pytest

from custom_components.datacenter_power.engine.degradation import (
    DegradationMonitor,
    HealthAssessment,
    HealthSample,
)
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.telemetry import PlantTelemetry
from tests.plants import circuit, two_ats_plant

H = 3600.0
COMPONENTS: dict[str, Literal["ats", "mpdu"]] = {
    "ats1": "ats",
    "ats2": "ats",
    "mpdu1": "mpdu",
    "mpdu2": "mpdu",
}


def _doc(seed: int, history_h: float, duration_h: float, events: list[dict[str, Any]]) -> Any:
    def load(cid: str, paths: list[str], mean: float) -> dict[str, Any]:
        return circuit(cid, paths, mean, rating_a=32, daily=0.25, weekly=0.1, noise=0.03)

    return parse_scenario(
        two_ats_plant(
            "degradation-unit",
            seed=seed,
            ats_rating_a=100,
            mpdu_rating_a=63,
            ambient_c=24,
            history=f"{history_h:g}h",
            duration=f"{duration_h:g}h",
            circuits=[
                load("a1", ["mpdu1", "mpdu2"], 14.0),
                load("a2", ["mpdu1", "mpdu2"], 10.0),
                load("b1", ["mpdu2", "mpdu1"], 12.0),
                load("b2", ["mpdu2", "mpdu1"], 9.0),
            ],
            events=events,
        )
    )


def _samples(tel: PlantTelemetry, epoch0: float) -> dict[str, HealthSample]:
    """What a poller gets at one moment: unreachable devices give nothing, a lost room sensor
    gives NaN ambient."""
    t = epoch0 + tel.t_s
    ambient = tel.env.ambient_c if tel.env.reachable else math.nan
    out: dict[str, HealthSample] = {}
    for aid, a in tel.ats.items():
        if a.reachable:
            out[aid] = HealthSample(
                t_s=t,
                current_a=a.load_current_a,
                rating_a=a.rating_a,
                ambient_c=ambient,
                temperature_c=a.contact_temperature_c,
                ripple_pct=a.ripple_pct,
                energized=a.output_energized,
                self_tests=a.self_tests,
                self_test_ms=a.last_self_test_ms,
                nominal_transfer_ms=a.transfer_time_ms,
                operations=a.operations,
                rated_operations=a.rated_operations,
            )
    for mid, m in tel.mpdus.items():
        if m.reachable:
            out[mid] = HealthSample(
                t_s=t,
                current_a=m.current_a,
                rating_a=m.rating_a,
                ambient_c=ambient,
                temperature_c=m.terminal_temperature_c,
                ripple_pct=m.ripple_pct,
                energized=m.energized,
                nuisance_trips=m.nuisance_trips,
            )
    return out


@dataclass(frozen=True)
class Run:
    """Per component: (scenario time h, assessment) every 15 minutes from t=0."""

    epoch0: float
    assessments: dict[str, list[tuple[float, HealthAssessment]]]
    monitors: dict[str, DegradationMonitor]

    def first_alert_h(self, component: str, after_h: float = -math.inf) -> float | None:
        for t_h, a in self.assessments[component]:
            if a.alert and t_h >= after_h:
                return t_h
        return None

    def episodes(self, component: str) -> int:
        """Alert episodes (an alert that starts, however long it lasts)."""
        flags = [a.alert for _, a in self.assessments[component]]
        return sum(1 for i, f in enumerate(flags) if f and (i == 0 or not flags[i - 1]))


def simulate(seed: int, history_h: float, duration_h: float, events: list[dict[str, Any]]) -> Run:
    scenario = _doc(seed, history_h, duration_h, events)
    plant = Plant(scenario)
    epoch0 = scenario.start.timestamp()
    monitors = {c: DegradationMonitor(c, k) for c, k in COMPONENTS.items()}
    out: dict[str, list[tuple[float, HealthAssessment]]] = {c: [] for c in COMPONENTS}
    k = 0
    t = -scenario.history_s
    while t <= scenario.duration_s:
        plant.advance_to(t)
        for cid, sample in _samples(plant.telemetry(), epoch0).items():
            monitors[cid].observe(sample)
        if t >= 0 and k % 15 == 0:
            for cid, mon in monitors.items():
                out[cid].append((t / H, mon.assess(epoch0 + t)))
        k += 1
        t += 60.0
    return Run(epoch0, out, monitors)


def wear(kind: str, target: str, onset_h: float, failure_h: float, scale: float) -> dict[str, Any]:
    return {
        "kind": kind,
        "target": target,
        "onset": f"{onset_h:g}h",
        "failure": f"{failure_h:g}h",
        "repair_after": "3h",
        "precursor_scale": scale,
    }


DISTRACTIONS: list[dict[str, Any]] = [
    {"kind": "ambient_excursion", "at": "20h", "duration": "4h", "delta_c": 8},
    {"kind": "load_surge", "targets": ["b1", "b2"], "at": "30h", "duration": "3h", "extra_a": 8},
    {"kind": "sensor_stuck", "target": "ats2", "at": "40h", "duration": "45m"},
    {"kind": "sensor_stuck", "target": "env1", "at": "44h", "duration": "30m"},
    {"kind": "comms_loss", "target": "mpdu2", "at": "50h", "duration": "40m"},
    {"kind": "source_outage", "target": "util_b", "at": "60h", "duration": "30m"},
    {"kind": "ambient_excursion", "at": "70h", "duration": "90m", "delta_c": 5},
]

# (seed, ATS onset h, ATS failure h, MPDU onset h, MPDU failure h, precursor scale)
WEAR_CASES = [
    (1, 10.0, 34.0, 30.0, 48.0, 1.0),
    (2, 6.0, 18.0, 12.0, 60.0, 1.0),
    (3, 20.0, 68.0, 8.0, 32.0, 1.0),
    (4, 10.0, 34.0, 16.0, 40.0, 0.5),
    (5, 14.0, 44.0, 20.0, 38.0, 0.5),
]


@pytest.fixture(scope="module", params=WEAR_CASES, ids=lambda c: f"seed{c[0]}-scale{c[5]:g}")
def wear_run(request: pytest.FixtureRequest) -> tuple[tuple[Any, ...], Run]:
    seed, a_on, a_fail, m_on, m_fail, scale = request.param
    events = [
        wear("ats_contact_wear", "ats1", a_on, a_fail, scale),
        wear("mpdu_breaker_wear", "mpdu2", m_on, m_fail, scale),
        *DISTRACTIONS,
    ]
    return request.param, simulate(seed, 30.0, max(a_fail, m_fail) + 8.0, events)


def test_wear_is_alerted_hours_before_failure(wear_run: tuple[tuple[Any, ...], Run]) -> None:
    (_seed, a_on, a_fail, m_on, m_fail, scale), run = wear_run
    for component, onset, failure in (("ats1", a_on, a_fail), ("mpdu2", m_on, m_fail)):
        first = run.first_alert_h(component)
        assert first is not None, component
        assert first > onset  # nothing before the wear begins
        lead = failure - first
        if scale == 1.0 and failure - onset >= 18.0:
            assert lead >= 6.0, (component, lead)
        else:
            assert lead >= 3.0, (component, lead)
        at_alert = dict(run.assessments[component])[first]
        assert at_alert.failure_probability >= 0.5
        assert at_alert.signals  # explained in operator words
        assert any("wear trend since" in s for s in at_alert.signals)
        # The time to failure comes with its spread, and the spread holds the truth.
        low, high = at_alert.time_to_failure_low_s, at_alert.time_to_failure_high_s
        assert low is not None
        assert high is not None
        assert low <= (failure - first) * H <= high


def test_healthy_neighbours_never_alarm(wear_run: tuple[tuple[Any, ...], Run]) -> None:
    _, run = wear_run
    for component in ("ats2", "mpdu1"):
        assert run.episodes(component) == 0, component
        assert all(a.health > 95 for _, a in run.assessments[component])


def test_health_falls_as_wear_grows(wear_run: tuple[tuple[Any, ...], Run]) -> None:
    (_seed, a_on, a_fail, _m_on, _m_fail, _scale), run = wear_run
    series = {round(t, 2): a for t, a in run.assessments["ats1"]}
    before = series[round(a_on - 1.0, 2)]
    assert before.health > 97
    checkpoints = [a_on + f * (a_fail - a_on) for f in (0.5, 0.75, 0.95)]
    health = [series[round(math.floor(t * 4) / 4, 2)].health for t in checkpoints]
    assert health[0] > health[1] > health[2]
    assert health[2] < 80
    ttf = series[round(math.floor(checkpoints[1] * 4) / 4, 2)].time_to_failure_s
    assert ttf is not None
    assert ttf > 0


def test_time_to_failure_closes_in_late_in_the_wear(
    wear_run: tuple[tuple[Any, ...], Run],
) -> None:
    """At 90 % of the wear the median is far nearer the truth than the elapsed wear time (the
    old estimate), and the P10-P90 band holds the truth (the P10, what plans use, is not late)."""
    (_seed, a_on, a_fail, _m_on, _m_fail, _scale), run = wear_run
    series = {round(t, 2): a for t, a in run.assessments["ats1"]}

    def at(f: float) -> tuple[float, HealthAssessment]:
        t = math.floor((a_on + f * (a_fail - a_on)) * 4) / 4
        return t, series[round(t, 2)]

    t_late, late = at(0.9)
    assert late.time_to_failure_s is not None
    assert late.time_to_failure_low_s is not None
    truth = (a_fail - t_late) * H
    elapsed = (t_late - a_on) * H
    assert abs(late.time_to_failure_s - truth) < 0.5 * abs(elapsed - truth)
    assert late.time_to_failure_low_s <= truth
    assert late.time_to_failure_high_s is not None
    assert truth <= late.time_to_failure_high_s


def test_repair_ends_the_episode(wear_run: tuple[tuple[Any, ...], Run]) -> None:
    (_seed, _a_on, a_fail, _m_on, _m_fail, _scale), run = wear_run
    # The wear events are repaired 3 h after failure; the alert clears within a few hours
    # and does not come back.
    last_t, last = run.assessments["ats1"][-1]
    assert last_t >= a_fail + 7.5
    assert not last.alert
    assert run.episodes("ats1") == 1


@pytest.mark.parametrize(("seed", "days"), [(11, 7), (12, 4)])
def test_quiet_week_with_distractions_has_no_false_alarm(seed: int, days: int) -> None:
    events = [
        *DISTRACTIONS,
        {"kind": "ambient_excursion", "at": "100h", "duration": "4h", "delta_c": 8},
        {
            "kind": "load_surge",
            "targets": ["a1", "a2"],
            "at": "110h",
            "duration": "2h",
            "extra_a": 9,
        },
        {"kind": "sensor_stuck", "target": "mpdu1", "at": "120h", "duration": "2h"},
        {"kind": "comms_loss", "target": "ats1", "at": "130h", "duration": "3h"},
        {"kind": "source_outage", "target": "util_a", "at": "140h", "duration": "2h"},
        {"kind": "sudden_failure", "target": "ats2", "at": "150h", "repair_after": "2h"},
    ]
    run = simulate(seed, 30.0, days * 24.0, events)
    for component in COMPONENTS:
        assert run.episodes(component) == 0, component
        worst = max(a.scores["z"] for _, a in run.assessments[component])
        assert worst < 6.0
        assert min(a.health for _, a in run.assessments[component]) > 95


def test_mark_repaired_clears_and_keeps_the_baseline() -> None:
    run = simulate(7, 30.0, 22.0, [wear("ats_contact_wear", "ats1", 2.0, 20.0, 1.0)])
    monitor = run.monitors["ats1"]
    now = run.epoch0 + 22 * H
    before = monitor.assess(now)
    assert before.alert  # failed at 20 h, repaired at 23 h
    normal = asdict(monitor._normal)
    monitor.mark_repaired(now)
    after = monitor.assess(now)
    assert not after.alert
    assert after.health == 100.0
    assert asdict(monitor._normal) == normal


def test_stuck_values_and_gaps_are_ignored() -> None:
    mon = DegradationMonitor("mpdu9", "mpdu")
    rng = np.random.default_rng(0)
    t0 = 1_700_000_000.0
    for k in range(36 * 60):
        t = t0 + 60.0 * k
        if 30 * 60 <= k < 31 * 60:
            continue  # an hour of lost communications
        stuck = 33 * 60 <= k < 35 * 60
        temp = 31.5 if stuck else 24.0 + 30.0 * 0.25 + 0.4 * rng.standard_normal()
        mon.observe(
            HealthSample(
                t_s=t,
                current_a=50.0 if stuck else 100.0 * math.sqrt(0.25),
                rating_a=100.0,
                ambient_c=24.0 + 0.1 * rng.standard_normal(),
                temperature_c=temp,
                ripple_pct=0.9 if stuck else 0.4 + 0.05 * rng.standard_normal(),
                energized=True,
            )
        )
    a = mon.assess(t0 + 36 * H)
    assert not a.alert
    assert a.health == 100.0
    assert a.time_to_failure_s is None
    assert json.loads(json.dumps(a.as_dict()))["component"] == "mpdu9"


def _synthetic(
    temperature: float,
    ripple: float,
    self_test: float,
    *,
    p: float = 2.0,
    rise: float = 30.0,
    end_h: float = 54.0,
) -> DegradationMonitor:
    """An ATS with a (t - onset)^p wear (onset 36 h, failure 60 h), each signal with its gain.

    The healthy normal (rise at rating ``rise``, ripple 0.9 %, self-test 80 ms against a nominal
    100 ms) is unlike the simulator's defaults: the monitor must learn it.
    """
    mon = DegradationMonitor("ats9", "ats")
    rng = np.random.default_rng(5)
    t0 = 1_700_000_000.0  # epoch, about 22:13 UTC
    tests = 0
    test_ms = 0.0
    for k in range(int(end_h * 60)):
        t = t0 + 60.0 * k
        x = max(0.0, (k / 60.0 - 36.0) / 24.0)
        s = x**p
        if k % 360 == 0:
            tests += 1
            test_ms = 80.0 * (1 + 0.03 * rng.standard_normal()) * (1 + 1.5 * s * self_test)
        current = 40.0 + 10.0 * math.sin(2 * math.pi * k / 1440.0)
        mon.observe(
            HealthSample(
                t_s=t,
                current_a=current,
                rating_a=100.0,
                ambient_c=22.0 + 0.1 * rng.standard_normal(),
                temperature_c=22.0
                + rise * (current / 100.0) ** 2
                + 12.0 * s * temperature
                + 0.4 * rng.standard_normal(),
                ripple_pct=0.9 + 1.6 * s * ripple + 0.05 * rng.standard_normal(),
                energized=True,
                self_tests=tests,
                self_test_ms=test_ms,
                nominal_transfer_ms=100.0,
                operations=tests,
                rated_operations=6000,
            )
        )
    return mon


@pytest.mark.parametrize(
    ("temperature", "ripple", "self_test", "p", "rise", "end_h"),
    [
        (0.5, 0.0, 0.0, 2.0, 30.0, 54.0),  # one signal alone, weak: wear of unknown strength
        (0.0, 0.3, 0.0, 3.5, 12.0, 54.0),  # late and steep, ripple only
        (0.0, 0.0, 2.0, 1.0, 55.0, 55.0),  # the self-test alone (four a day: three needed)
        (1.0, 1.0, 1.0, 0.7, 30.0, 54.0),  # early and fast
        (2.0, 0.0, 0.5, 2.5, 45.0, 54.0),
    ],
)
def test_any_visible_signal_of_any_shape_alerts(
    temperature: float, ripple: float, self_test: float, p: float, rise: float, end_h: float
) -> None:
    mon = _synthetic(temperature, ripple, self_test, p=p, rise=rise, end_h=end_h)
    a = mon.assess(1_700_000_000.0 + end_h * H)
    assert a.alert
    assert a.failure_probability >= 0.5
    assert a.time_to_failure_s is not None
    assert a.time_to_failure_low_s is not None
    assert a.time_to_failure_high_s is not None
    remaining = (60.0 - end_h) * H  # failure at 60 h
    assert a.time_to_failure_low_s <= remaining <= a.time_to_failure_high_s
    assert a.health < 100.0
    # The onset is dated from the trajectory (36 h; the first bins of a steep shape are flat).
    onset_h = (a.scores["onset_s"] - 1_700_000_000.0) / H
    assert 24.0 <= onset_h <= 50.0


def test_healthy_unit_with_an_unusual_normal_is_healthy() -> None:
    mon = _synthetic(0.0, 0.0, 0.0, rise=58.0)
    a = mon.assess(1_700_000_000.0 + 54 * H)
    assert not a.alert
    assert a.failure_probability == 0.0
    assert a.time_to_failure_s is None
    assert a.health == 100.0
    assert a.signals == ()


def _receiver(seed: int) -> DegradationMonitor:
    """A lightly loaded unit (its rise with load barely measurable while learning) takes a
    drained neighbour's load for two days."""
    mon = DegradationMonitor("ats8", "ats")
    rng = np.random.default_rng(seed)
    t0 = 1_700_000_000.0
    for k in range(24 * 12 + 48 * 60):
        learning = k < 24 * 12
        t = t0 + (300.0 * k if learning else 86400.0 + 60.0 * (k - 24 * 12))
        base = 0.1 if learning else 0.45  # utilisation: x4.5 after the drain
        u = base * (1.0 + 0.04 * math.sin(2 * math.pi * t / 86400.0))
        mon.observe(
            HealthSample(
                t_s=t,
                current_a=250.0 * u,
                rating_a=250.0,
                ambient_c=23.0 + 0.1 * rng.standard_normal(),
                temperature_c=23.0 + 47.0 * u * u + 0.4 * rng.standard_normal(),
                ripple_pct=1.7 + 0.05 * rng.standard_normal(),
                energized=True,
            )
        )
        if not learning and k % 30 == 0:
            mon.assess(t)
    return mon


@pytest.mark.parametrize("seed", [0, 4, 15, 26])
def test_a_drain_receiver_far_above_its_learned_load_is_not_wear(seed: int) -> None:
    """The extrapolated heating is not a departure: the learned normal's own error is a bias
    shared by every bin, which must not add up in the CUSUM (seeds 4, 15 and 26 draw normals
    whose error would reach half the alarm threshold if it were treated as bin noise)."""
    mon = _receiver(seed)
    a = mon.assess(1_700_000_000.0 + 3 * 86400.0)
    assert not a.alert
    assert a.scores["fused_cusum"] < 7.0
    assert a.health == 100.0
