"""Determinism, wear and its precursors, self-tests, environment, stuck sensors, comms, metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dcp_sim.plant import CommandRejected, Plant
from dcp_sim.scenario import load_scenario, parse_scenario
from dcp_sim.telemetry import PlantTelemetry

type Doc = dict[str, Any]
H = 3600.0
DEMO = Path(__file__).resolve().parents[2] / "scenarios" / "demo.yaml"


def test_same_seed_same_run_however_chunked() -> None:
    scenario = load_scenario(DEMO)
    whole = Plant(scenario)
    checkpoints = [-86400.0, 0.0, 5 * H, 14 * H, scenario.duration_s]
    seen_whole: list[PlantTelemetry] = []
    for t in checkpoints:
        whole.advance_to(t)
        seen_whole.append(whole.telemetry())
    chunked = Plant(scenario)
    rng = np.random.default_rng(0)
    seen_chunked: list[PlantTelemetry] = []
    for t in checkpoints:
        while chunked.t_s < t:  # irregular chunks, off-grid targets, extra reads
            chunked.advance_to(min(t, chunked.t_s + float(rng.uniform(0, 3000))))
            chunked.telemetry()
        seen_chunked.append(chunked.telemetry())
    assert seen_chunked == seen_whole
    assert chunked.metrics == whole.metrics
    assert whole.metrics.failed_at_s == {"ats1": 14 * H}


def test_other_seed_other_run(doc: Doc) -> None:
    doc["circuits"][0]["load"]["noise"] = 0.05
    a, b = Plant(parse_scenario(doc)), Plant(parse_scenario(doc))
    doc["seed"] = 6
    c = Plant(parse_scenario(doc))
    for plant in (a, b, c):
        plant.advance_to(H)
    assert a.telemetry() == b.telemetry()
    assert a.telemetry().circuits["c01"].current_a != c.telemetry().circuits["c01"].current_a


def _wear_doc(doc: Doc, kind: str, target: str, **extra: Any) -> Doc:
    doc["events"] = [
        {"kind": kind, "target": target, "onset": "0s", "failure": "20h", **extra},
    ]
    return doc


def test_ats_wear_precursors_match_the_model(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    plant = make_plant(_wear_doc(doc, "ats_contact_wear", "ats1"))
    plant.advance_to(16 * H)
    resid: dict[str, list[float]] = {"t1": [], "t2": [], "r1": [], "r2": []}
    while plant.t_s < 20 * H - 60:
        plant.step()
        tel = plant.telemetry()
        s = (plant.t_s / (20 * H)) ** 2
        for key, ats, sev in (("1", "ats1", s), ("2", "ats2", 0.0)):
            a = tel.ats[ats]
            u = a.load_current_a / a.rating_a
            resid["t" + key].append(a.contact_temperature_c - 24 - 30 * u * u - 12 * sev)
            resid["r" + key].append(a.ripple_pct - 0.4 - 1.6 * sev)
    for key in ("t1", "t2"):
        assert np.mean(resid[key]) == pytest.approx(0.0, abs=0.1)
        assert np.std(resid[key]) == pytest.approx(0.4, rel=0.15)
    for key in ("r1", "r2"):
        assert np.mean(resid[key]) == pytest.approx(0.0, abs=0.015)
        assert np.std(resid[key]) == pytest.approx(0.05, rel=0.15)
    # A real transfer of the worn ATS takes longer; s(10h) = 0.25
    tel = plant.telemetry()
    assert tel.ats["ats1"].contact_temperature_c > tel.ats["ats2"].contact_temperature_c + 8


def test_worn_ats_transfers_slower_and_fails(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    _wear_doc(doc, "ats_contact_wear", "ats1", repair_after="2h")
    doc["events"].append(
        {"kind": "source_outage", "target": "util_a", "at": "10h", "duration": "1h"}
    )
    plant = make_plant(doc)
    plant.advance_to(10 * H)
    assert plant.telemetry().ats["ats1"].last_transfer_ms == pytest.approx(100 * (1 + 1.5 * 0.25))
    plant.advance_to(20 * H - 60)
    before = plant.telemetry().ats["ats1"].load_current_a
    assert before > 0
    plant.advance_to(20 * H)
    tel = plant.telemetry()
    assert not tel.ats["ats1"].output_energized
    assert tel.ats["ats1"].load_current_a == 0.0
    assert not tel.mpdus["mpdu1"].energized
    assert plant.metrics.failed_at_s == {"ats1": 20 * H}
    assert plant.metrics.load_on_target_at_failure_a == {"ats1": pytest.approx(before)}
    plant.advance_to(22 * H)
    tel = plant.telemetry()
    assert tel.ats["ats1"].output_energized  # repaired, and healthy again
    assert tel.ats["ats1"].ripple_pct == pytest.approx(0.4, abs=0.25)


def test_mpdu_wear_precursors(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    plant = make_plant(_wear_doc(doc, "mpdu_breaker_wear", "mpdu1", precursor_scale=10))
    plant.advance_to(20 * H - 60)
    tel = plant.telemetry()
    # expected count: integral of 0.5/h * 10 * (t/20h)^2 over 20 h = 33.3 (Poisson)
    assert 18 <= tel.mpdus["mpdu1"].nuisance_trips <= 52
    assert tel.mpdus["mpdu2"].nuisance_trips == 0
    assert not tel.mpdus["mpdu1"].breaker_open  # nuisance trips do not open it
    assert tel.mpdus["mpdu1"].terminal_temperature_c > 24 + 100
    assert tel.mpdus["mpdu1"].alarm_over_temperature
    assert tel.mpdus["mpdu2"].terminal_temperature_c < 30
    plant.advance_to(20 * H)
    tel = plant.telemetry()
    assert not tel.mpdus["mpdu1"].energized
    assert tel.circuits["c01"].active_path == 1
    assert plant.metrics.failed_at_s == {"mpdu1": 20 * H}


def test_self_tests_every_six_hours(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["history"] = "1d"
    doc["duration"] = "3d"
    plant = make_plant(doc)
    hours: list[int] = []
    measured: list[float] = []
    count = plant.telemetry().ats["ats2"].self_tests
    while plant.t_s < 3 * 86400:
        plant.step()
        ats2 = plant.telemetry().ats["ats2"]
        if ats2.self_tests != count:
            assert ats2.self_tests == count + 1
            count = ats2.self_tests
            hours.append(plant.timestamp.hour)
            measured.append(ats2.last_self_test_ms)
            assert plant.timestamp.minute == 0
    assert count == 16
    assert hours[:4] == [3, 9, 15, 21]
    assert set(hours) == {3, 9, 15, 21}
    assert np.mean(measured) == pytest.approx(100.0, abs=2.0)
    assert 1.5 < np.std(measured) < 4.5
    ats2 = plant.telemetry().ats["ats2"]
    assert ats2.transfers_total == 0
    assert ats2.operations == 16
    assert plant.metrics.interruptions == 0


def test_self_test_drifts_with_wear(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    plant = make_plant(_wear_doc(doc, "ats_contact_wear", "ats1"))
    plant.advance_to(15 * H)  # s = 0.5625
    assert plant.telemetry().ats["ats1"].last_self_test_ms == pytest.approx(
        100 * (1 + 1.5 * 0.5625), rel=0.1
    )


def test_ambient_excursion(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["events"] = [{"kind": "ambient_excursion", "at": "1h", "duration": "1h", "delta_c": 6}]
    plant = make_plant(doc)
    plant.advance_to(1 * H - 60)
    assert plant.telemetry().env.ambient_c == pytest.approx(24, abs=0.5)
    plant.advance_to(1 * H + 60)
    tel = plant.telemetry()
    assert tel.env.ambient_c == pytest.approx(30, abs=0.5)
    assert tel.ats["ats1"].contact_temperature_c > 29
    plant.advance_to(2 * H)
    assert plant.telemetry().env.ambient_c == pytest.approx(24, abs=0.5)


def test_sensor_stuck_freezes_measurements_not_state(
    doc: Doc, make_plant: Callable[..., Plant]
) -> None:
    doc["circuits"][0]["load"]["noise"] = 0.05
    doc["events"] = [
        {"kind": "sensor_stuck", "target": "mpdu1", "at": "1h", "duration": "30m"},
        {"kind": "sensor_stuck", "target": "env1", "at": "1h", "duration": "30m"},
    ]
    plant = make_plant(doc)
    plant.advance_to(1 * H)
    frozen = plant.telemetry()
    plant.advance_to(1 * H + 600)
    plant.command_mpdu_output("mpdu1", False)
    tel = plant.telemetry()
    for name in ("current_a", "terminal_temperature_c", "ripple_pct", "energy_kwh"):
        assert getattr(tel.mpdus["mpdu1"], name) == getattr(frozen.mpdus["mpdu1"], name)
    assert tel.env == frozen.env
    assert not tel.mpdus["mpdu1"].energized
    assert not tel.mpdus["mpdu1"].output_on
    assert tel.circuits["c03"].current_a == 0.0  # other devices report truthfully
    assert tel.mpdus["mpdu2"].current_a != frozen.mpdus["mpdu2"].current_a
    plant.advance_to(1.5 * H)
    tel = plant.telemetry()
    assert tel.mpdus["mpdu1"].current_a == 0.0
    assert tel.env.ambient_c != frozen.env.ambient_c


def test_comms_loss(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["events"] = [{"kind": "comms_loss", "target": "ats2", "at": "1h", "duration": "10m"}]
    plant = make_plant(doc)
    plant.advance_to(1 * H)
    tel = plant.telemetry()
    assert not tel.ats["ats2"].reachable
    assert tel.ats["ats1"].reachable
    with pytest.raises(CommandRejected, match="unreachable"):
        plant.command_ats_self_test("ats2")
    plant.advance_to(1 * H + 600)
    assert plant.telemetry().ats["ats2"].reachable


def test_metrics_count_from_t0_only(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["history"] = "1h"
    plant = make_plant(doc)
    assert plant.t_s == -H
    plant.command_sbm_path("c01", "mpdu2")
    plant.command_sbm_output("c03", False)
    plant.advance_to(H)
    m = plant.metrics
    assert (m.switch_operations, m.interruptions) == (0, 0)
    assert m.unserved_energy_wh == pytest.approx(3 * 230 * 1.0)  # [0, 1h) only
    plant.command_sbm_output("c03", True)
    plant.command_sbm_output("c03", False)
    plant.command_sbm_path("c01", "mpdu1")
    assert (plant.metrics.switch_operations, plant.metrics.interruptions) == (1, 1)


def test_continuous_limit_metrics(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["circuits"][0]["rating_a"] = 63
    doc["events"] = [
        {"kind": "load_surge", "targets": ["c01"], "at": "1h", "duration": "30m", "extra_a": 35}
    ]
    plant = make_plant(doc)
    plant.advance_to(1 * H)
    tel = plant.telemetry()
    assert tel.mpdus["mpdu1"].alarm_over_limit
    assert not tel.mpdus["mpdu2"].alarm_over_limit
    assert not tel.ats["ats1"].alarm_over_limit
    plant.advance_to(3 * H)
    m = plant.metrics
    assert m.over_limit_s == pytest.approx(1800.0)
    assert m.max_utilization == pytest.approx(43 / 50)
    assert m.breaker_trips == 0


def test_telemetry_shape(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    tel = make_plant(doc).telemetry()
    assert set(tel.ats) == {"ats1", "ats2"}
    assert set(tel.mpdus) == {"mpdu1", "mpdu2"}
    assert list(tel.circuits) == ["c01", "c02", "c03"]
    a = tel.ats["ats1"]
    assert a.sources == ("util_a", "util_b")
    assert a.source_frequency_hz == (50.0, 50.0)
    assert a.load_current_a == pytest.approx(8.0)
    assert a.load_power_kw == pytest.approx(8.0 * 0.23)
    c = tel.circuits["c03"]
    assert (c.paths, c.path_energized, c.voltage_v, c.critical) == (
        ("mpdu1",),
        (True,),
        230.0,
        True,
    )
    assert tel.env.id == "env1"
    assert tel.timestamp.tzinfo is not None
    with pytest.raises(AttributeError):
        a.rating_a = 1.0  # type: ignore[misc]
