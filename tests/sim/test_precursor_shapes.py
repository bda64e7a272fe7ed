"""Wear shapes and per-signal gains, per-unit healthy normals, and their validation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from dcp_sim.plant import Plant
from dcp_sim.scenario import PrecursorGains, ScenarioError, WearEvent, parse_scenario

type Doc = dict[str, Any]
H = 3600.0


def _wear(doc: Doc, kind: str, target: str, **extra: Any) -> Doc:
    doc["events"] = [{"kind": kind, "target": target, "onset": "0s", "failure": "20h", **extra}]
    return doc


def test_defaults_match_the_documented_model(doc: Doc) -> None:
    s = parse_scenario(_wear(doc, "ats_contact_wear", "ats1"))
    assert all(a.thermal_rise_c == 30.0 and a.ripple_pct == 0.4 for a in s.ats)
    assert all(m.thermal_rise_c == 30.0 and m.ripple_pct == 0.4 for m in s.mpdus)
    wear = s.events[0]
    assert isinstance(wear, WearEvent)
    assert wear.precursor_exponent == 2.0
    assert wear.precursor_gains == PrecursorGains(1.0, 1.0, 1.0, 1.0)
    assert wear.severity(10 * H) == pytest.approx(0.25)


@pytest.mark.parametrize("p", [0.5, 1.0, 3.0, 4.0])
def test_exponent_shapes_the_severity(doc: Doc, p: float) -> None:
    s = parse_scenario(_wear(doc, "ats_contact_wear", "ats1", precursor_exponent=p))
    wear = s.events[0]
    assert isinstance(wear, WearEvent)
    for frac in (0.1, 0.5, 0.9):
        assert wear.severity(frac * 20 * H) == pytest.approx(frac**p)
    assert wear.severity(25 * H) == pytest.approx(1.0)


def test_unit_normals_and_gains_drive_the_telemetry(
    doc: Doc, make_plant: Callable[..., Plant]
) -> None:
    doc["ats"][0]["thermal_rise_c"] = 55
    doc["ats"][0]["ripple_pct"] = 1.5
    doc["ats"][1]["thermal_rise_c"] = 12
    doc["ats"][1]["ripple_pct"] = 0.15
    gains = {"temperature": 0.5, "ripple": 2.0, "transfer": 0}
    plant = make_plant(
        _wear(doc, "ats_contact_wear", "ats1", precursor_exponent=1, precursor_gains=gains)
    )
    plant.advance_to(10 * H)  # s = 0.5 (linear)
    resid: dict[str, list[float]] = {k: [] for k in ("t1", "t2", "r1", "r2")}
    while plant.t_s < 12 * H:
        plant.step()
        tel = plant.telemetry()
        s = plant.t_s / (20 * H)
        for key, ats, rise, ripple0, sev_t, sev_r in (
            ("1", "ats1", 55, 1.5, 0.5 * s, 2.0 * s),
            ("2", "ats2", 12, 0.15, 0.0, 0.0),
        ):
            a = tel.ats[ats]
            u = a.load_current_a / a.rating_a
            resid["t" + key].append(a.contact_temperature_c - 24 - rise * u * u - 12 * sev_t)
            resid["r" + key].append(a.ripple_pct - ripple0 - 1.6 * sev_r)
    for key in ("t1", "t2"):
        assert np.mean(resid[key]) == pytest.approx(0.0, abs=0.1)
    for key in ("r1", "r2"):
        assert np.mean(resid[key]) == pytest.approx(0.0, abs=0.015)
    # transfer gain 0: self-tests and real transfers show no lengthening
    tel = plant.telemetry().ats["ats1"]
    assert tel.self_tests > 0
    assert tel.last_self_test_ms == pytest.approx(100, rel=0.12)


def test_transfer_gain_scales_real_transfers(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    _wear(doc, "ats_contact_wear", "ats1", precursor_exponent=1, precursor_gains={"transfer": 2})
    doc["events"].append(
        {"kind": "source_outage", "target": "util_a", "at": "10h", "duration": "1h"}
    )
    plant = make_plant(doc)
    plant.advance_to(10 * H)
    # s(10 h) = 0.5, gain 2: x (1 + 1.5 * 2 * 0.5)
    assert plant.telemetry().ats["ats1"].last_transfer_ms == pytest.approx(100 * 2.5)


def test_nuisance_gain_zero_shows_no_trips(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    gains = {"nuisance": 0, "temperature": 3}
    plant = make_plant(
        _wear(doc, "mpdu_breaker_wear", "mpdu1", precursor_scale=10, precursor_gains=gains)
    )
    plant.advance_to(20 * H - 60)
    tel = plant.telemetry()
    assert tel.mpdus["mpdu1"].nuisance_trips == 0
    assert tel.mpdus["mpdu1"].terminal_temperature_c > 24 + 300  # 12 degC x 3 x 10 x ~1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["ats"][0].update(thermal_rise_c=9), "ats[0].thermal_rise_c: must be >= 10"),
        (lambda d: d["ats"][1].update(thermal_rise_c=61), "ats[1].thermal_rise_c: must be <= 60"),
        (lambda d: d["mpdus"][0].update(ripple_pct=0.05), "mpdus[0].ripple_pct: must be >= 0.1"),
        (lambda d: d["mpdus"][1].update(ripple_pct=2.5), "mpdus[1].ripple_pct: must be <= 2"),
        (
            lambda d: d["mpdus"][1].update(ripple_pct="high"),
            "mpdus[1].ripple_pct: expected a number",
        ),
        (lambda d: d["ats"][0].update(ripple=1), "ats[0].ripple: unknown key"),
        (
            lambda d: _wear(d, "ats_contact_wear", "ats1", precursor_exponent=0.4),
            "events[0].precursor_exponent: must be >= 0.5",
        ),
        (
            lambda d: _wear(d, "ats_contact_wear", "ats1", precursor_exponent=4.5),
            "events[0].precursor_exponent: must be <= 4",
        ),
        (
            lambda d: _wear(d, "ats_contact_wear", "ats1", precursor_gains={"ripple": 3.5}),
            "events[0].precursor_gains.ripple: must be <= 3",
        ),
        (
            lambda d: _wear(d, "mpdu_breaker_wear", "mpdu1", precursor_gains={"nuisance": -1}),
            "events[0].precursor_gains.nuisance: must be >= 0",
        ),
        (
            lambda d: _wear(d, "mpdu_breaker_wear", "mpdu1", precursor_gains={"noise": 1}),
            "events[0].precursor_gains.noise: unknown key",
        ),
        (
            lambda d: _wear(d, "mpdu_breaker_wear", "mpdu1", precursor_gains=[1, 2]),
            "events[0].precursor_gains: expected a mapping",
        ),
        (
            lambda d: _wear(d, "ats_contact_wear", "ats1", precursor_shape=2),
            "events[0].precursor_shape: unknown key",
        ),
    ],
)
def test_out_of_range_and_unknown_keys_name_the_path(
    doc: Doc, mutate: Callable[[Doc], object], message: str
) -> None:
    mutate(doc)
    with pytest.raises(ScenarioError) as err:
        parse_scenario(doc, source="bad.yaml")
    assert str(err.value).startswith("bad.yaml: ")
    assert message in str(err.value)
