"""The metric definitions of scenario-format.md, on hand-made evaluations (no simulation)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dcp_eval.generator import generate_scenario
from dcp_eval.harness import Evaluation, ForecastPair
from dcp_eval.metrics import alert_episodes, compute_metrics, false_alarm_episodes
from dcp_sim.plant import PlantMetrics
from dcp_sim.scenario import Scenario, parse_scenario

H = 3600.0


def _scenario(events: list[dict[str, Any]]) -> Scenario:
    return parse_scenario(
        {
            "version": 1,
            "name": "m",
            "seed": 1,
            "start": "2026-03-02T00:00:00Z",
            "history": "0s",
            "duration": "4d",
            "step": "60s",
            "sources": [{"id": "u", "nominal_v": 230}],
            "ats": [
                {
                    "id": "ats1",
                    "sources": ["u"],
                    "rating_a": 200,
                    "transfer_time": "50ms",
                    "rated_operations": 100,
                },
                {
                    "id": "ats2",
                    "sources": ["u"],
                    "rating_a": 200,
                    "transfer_time": "50ms",
                    "rated_operations": 100,
                },
            ],
            "mpdus": [
                {"id": "mpdu1", "ats": "ats1", "rating_a": 100},
                {"id": "mpdu2", "ats": "ats2", "rating_a": 100},
            ],
            "circuits": [
                {"id": "c1", "paths": ["mpdu1", "mpdu2"], "rating_a": 16, "load": {"mean_a": 4}},
                {"id": "c2", "paths": ["mpdu2", "mpdu1"], "rating_a": 16, "load": {"mean_a": 4}},
            ],
            "events": events,
        }
    )


def _evaluation(
    sc: Scenario,
    alerts: dict[str, list[tuple[float, bool]]],
    pm: PlantMetrics | None = None,
    pairs: list[ForecastPair] | None = None,
    policy: str = "proactive",
) -> Evaluation:
    return Evaluation(
        scenario=sc,
        policy="proactive" if policy == "proactive" else "reactive",
        plant_metrics=pm or PlantMetrics(),
        times_s=np.zeros(0),
        elements=("ats1", "ats2", "mpdu1", "mpdu2"),
        loads_a=np.zeros((0, 4)),
        limits_a=np.array([160.0, 160.0, 80.0, 80.0]),
        alerts=alerts,
        forecast_pairs=pairs or [],
        actions=[],
        infeasible=[],
        wall_s=1.5,
    )


def test_episodes_start_on_every_rising_edge() -> None:
    eps = alert_episodes({"ats1": [(0.0, False), (10.0, True), (20.0, False), (30.0, True)]})
    assert [(e.start_s, e.end_s) for e in eps] == [(10.0, 20.0), (30.0, None)]


WEAR = {
    "kind": "ats_contact_wear",
    "target": "ats1",
    "onset": "10h",
    "failure": "30h",
    "repair_after": "4h",
}


@pytest.mark.parametrize(
    ("component", "start_h", "false"),
    [
        ("ats1", 12.0, False),  # during the degradation
        ("ats1", -20.0, False),  # before onset, but onset is within 48 h
        ("ats1", -40.0, True),  # onset more than 48 h later
        ("ats1", 40.0, True),  # after the repair: the component is healthy again
        ("ats2", 12.0, True),  # the wrong component
        ("mpdu1", 12.0, True),  # downstream of the worn ATS is not the target
    ],
)
def test_false_alarm_window_around_wear(component: str, start_h: float, false: bool) -> None:
    sc = _scenario([WEAR])
    eps = alert_episodes({component: [(start_h * H, True)]})
    assert bool(false_alarm_episodes(sc, eps)) is false


@pytest.mark.parametrize(
    ("component", "false"), [("mpdu1", False), ("ats1", False), ("mpdu2", True), ("ats2", True)]
)
def test_load_trend_justifies_its_normal_path_only(component: str, false: bool) -> None:
    sc = _scenario(
        [
            {
                "kind": "load_trend",
                "targets": ["c1"],
                "onset": "5h",
                "growth_a_per_h": 0.5,
                "end": "30h",
            }
        ]
    )
    eps = alert_episodes({component: [(10 * H, True)]})
    assert bool(false_alarm_episodes(sc, eps)) is false


def test_failure_record_lead_time_and_prediction() -> None:
    sc = _scenario([WEAR])
    pm = PlantMetrics(failed_at_s={"ats1": 30 * H}, load_on_target_at_failure_a={"ats1": 0.0})
    # Alert from 8 h (before onset: counts from onset), off at 9 h, on again at 20 h.
    alerts = {"ats1": [(8 * H, True), (9 * H, False), (20 * H, True)], "ats2": [(0.0, False)]}
    m = compute_metrics(_evaluation(sc, alerts, pm))
    (f,) = m["failures"]
    assert f["first_alert_s"] == 20 * H
    assert f["lead_time_s"] == 10 * H
    assert m["predictable_failures"] == 1
    assert m["predicted_failures"] == 1
    # The 8 h episode starts before onset, but onset follows within 48 h: justified.
    assert m["false_alarms"] == 0
    assert len(m["alert_episodes"]) == 2


def test_late_alert_is_not_a_prediction() -> None:
    sc = _scenario([WEAR])
    pm = PlantMetrics(failed_at_s={"ats1": 30 * H})
    m = compute_metrics(_evaluation(sc, {"ats1": [(30 * H - 600, True)]}, pm))
    assert m["failures"][0]["lead_time_s"] == 600
    assert m["predicted_failures"] == 0
    assert m["predictable_failures"] == 1


def test_unfailed_wear_is_not_predictable() -> None:
    sc = _scenario([{**WEAR, "failure": "200h"}])
    m = compute_metrics(_evaluation(sc, {}))
    assert m["predictable_failures"] == 0
    assert m["failures"][0]["failed_at_s"] is None
    assert m["failures"][0]["lead_time_s"] is None


def test_mape_is_mean_absolute_percentage_and_null_for_reactive() -> None:
    sc = _scenario([])
    pairs = [ForecastPair("mpdu1", 0, H, 110.0, 100.0), ForecastPair("mpdu2", 0, H, 45.0, 50.0)]
    assert compute_metrics(_evaluation(sc, {}, pairs=pairs))["forecast_mape_1h"] == pytest.approx(
        0.1
    )
    assert (
        compute_metrics(_evaluation(sc, {}, pairs=pairs, policy="reactive"))["forecast_mape_1h"]
        is None
    )


def test_metrics_carry_every_spec_key() -> None:
    m = compute_metrics(_evaluation(_scenario([]), {}))
    for key in (
        "scenario", "policy", "failures", "predictable_failures", "predicted_failures",
        "false_alarms", "interruptions", "unserved_energy_wh", "breaker_trips", "over_limit_s",
        "max_utilization", "switch_operations", "forecast_mape_1h", "wall_s",
    ):  # fmt: skip
        assert key in m


@pytest.mark.parametrize("case", ["quiet", "ats_wear", "mpdu_wear", "trend", "sudden"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_generator_builds_valid_varied_plants(case: str, seed: int) -> None:
    sc = generate_scenario(seed, case)  # type: ignore[arg-type]
    assert 2 <= len(sc.ats) <= 4
    assert 2 <= len(sc.mpdus) <= 6
    assert 20 <= len(sc.circuits) <= 80
    kinds = {e.kind for e in sc.events}
    expected = {
        "quiet": set(),
        "ats_wear": {"ats_contact_wear"},
        "mpdu_wear": {"mpdu_breaker_wear"},
        "trend": {"load_trend"},
        "sudden": {"sudden_failure"},
    }[case]
    assert expected <= kinds
    # Every circuit has an alternate path under another ATS (a drain is always possible).
    feed = {m.id: m.ats for m in sc.mpdus}
    for c in sc.circuits:
        assert len(c.paths) >= 2
        assert {feed[p] for p in c.paths[1:]} - {feed[c.paths[0]]}
