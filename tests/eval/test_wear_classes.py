"""Wear of shapes, strengths and normals nobody tuned the engine on: early warning, no false alarm.

Generated scenarios (``generate_wear_spec``) draw the precursor exponent (0.7-3.5), per-signal
gains (0-2, at least one continuous signal visible), a precursor scale (0.5-1), the wear window
(12-40 h) and every unit's healthy temperature rise (10-60 degC) and ripple (0.1-2 %). The runs
are short (3 days of history, 2 days evaluated); the degradation monitor learns on its first day.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dcp_eval.generator import (
    EXPONENT_RANGE,
    VISIBLE_GAIN,
    WearClass,
    generate_wear_scenario,
    generate_wear_spec,
    random_precursors,
)
from dcp_eval.harness import run_evaluation
from dcp_eval.metrics import compute_metrics
from dcp_sim.scenario import WearEvent

SHORT: dict[str, Any] = {"history_h": 72.0, "duration_h": 48.0, "n_circuits": 20}


@pytest.mark.parametrize("seed", range(40))
def test_generated_shapes_gains_and_normals_are_in_range(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for kind in ("ats_contact_wear", "mpdu_breaker_wear"):
        pre = random_precursors(rng, kind)
        assert EXPONENT_RANGE[0] <= pre["precursor_exponent"] <= EXPONENT_RANGE[1]
        gains = pre["precursor_gains"]
        assert all(0.0 <= g <= 2.0 for g in gains.values())
        assert max(gains["temperature"], gains["ripple"]) >= VISIBLE_GAIN
        assert ("transfer" in gains) == (kind == "ats_contact_wear")
    sc = generate_wear_scenario(seed, "ats_wear" if seed % 2 else "mpdu_wear", **SHORT)
    assert all(10 <= u.thermal_rise_c <= 60 and 0.1 <= u.ripple_pct <= 2 for u in sc.ats)
    assert all(10 <= u.thermal_rise_c <= 60 and 0.1 <= u.ripple_pct <= 2 for u in sc.mpdus)
    (wear,) = sc.wear_events
    assert 12 * 3600 - 1 <= wear.failure_s - wear.onset_s <= 40 * 3600 + 1
    assert wear.failure_s <= sc.duration_s - 6 * 3600


def test_ambient_class_warms_the_room_for_most_of_a_day() -> None:
    spec = generate_wear_spec(3, "ambient", **SHORT)
    assert not [e for e in spec["events"] if str(e["kind"]).endswith("_wear")]
    long = [
        e
        for e in spec["events"]
        if e["kind"] == "ambient_excursion" and float(e["duration"].rstrip("m")) >= 14 * 60
    ]
    assert len(long) == 1
    assert 5.0 <= long[0]["delta_c"] <= 8.0


def _run(seed: int, wear_class: WearClass) -> tuple[dict[str, Any], WearEvent | None]:
    sc = generate_wear_scenario(seed, wear_class, **SHORT)
    wear = sc.wear_events[0] if sc.wear_events else None
    return compute_metrics(run_evaluation(sc, "proactive")), wear


@pytest.mark.parametrize(("seed", "wear_class"), [(2, "ats_wear"), (5, "mpdu_wear")])
def test_wear_of_unknown_shape_is_predicted_a_quarter_window_ahead(
    seed: int, wear_class: WearClass
) -> None:
    m, wear = _run(seed, wear_class)
    assert wear is not None
    (f,) = m["failures"]
    assert m["predicted_failures"] == 1
    assert f["lead_time_s"] >= 0.25 * (wear.failure_s - wear.onset_s)
    assert f["first_alert_s"] > wear.onset_s  # nothing before the wear begins
    assert m["false_alarms"] == 0


@pytest.mark.parametrize(("seed", "wear_class"), [(1, "healthy_unusual"), (4, "ambient")])
def test_unusual_normals_and_a_warm_room_raise_no_alarm(seed: int, wear_class: WearClass) -> None:
    m, wear = _run(seed, wear_class)
    assert wear is None
    assert m["false_alarms"] == 0
    assert m["switch_operations"] == 0
