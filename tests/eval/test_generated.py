"""The engine on generated plants and faults nobody tuned it on (short runs, general claims)."""

from __future__ import annotations

from typing import Any

import pytest

from dcp_eval.generator import Case, generate_scenario
from dcp_eval.harness import run_evaluation
from dcp_eval.metrics import compute_metrics

SHORT: dict[str, Any] = {"history_h": 48.0, "duration_h": 30.0, "n_circuits": 24}


def _metrics(seed: int, case: Case, policy: str = "proactive") -> dict[str, Any]:
    sc = generate_scenario(seed, case, **SHORT)
    return compute_metrics(run_evaluation(sc, "proactive" if policy == "proactive" else "reactive"))


@pytest.mark.parametrize("seed", [10, 11])
def test_quiet_plants_are_left_alone(seed: int) -> None:
    m = _metrics(seed, "quiet")
    assert m["switch_operations"] == 0
    assert m["false_alarms"] == 0
    assert m["breaker_trips"] == 0
    assert m["forecast_mape_1h"] < 0.05
    assert m["engine_errors"] == []


@pytest.mark.parametrize(("seed", "case"), [(1, "ats_wear"), (4, "mpdu_wear")])
def test_worn_component_is_drained_before_it_fails(seed: int, case: Case) -> None:
    m = _metrics(seed, case)
    (f,) = m["failures"]
    assert f["failed_at_s"] is not None
    assert m["predicted_failures"] == 1
    assert f["lead_time_s"] >= 3600.0
    assert f["load_on_target_at_failure_a"] <= 0.5
    assert m["false_alarms"] == 0
    assert m["breaker_trips"] == 0
    assert m["over_limit_s"] <= 600.0
    kinds = [a["kind"] for a in m["actions"]]
    assert kinds[0] == "migrate"


def test_load_trend_is_relieved_before_anything_trips() -> None:
    reactive = _metrics(3, "trend", "reactive")
    proactive = _metrics(3, "trend")
    assert reactive["breaker_trips"] >= 1
    assert proactive["breaker_trips"] == 0
    assert proactive["over_limit_s"] <= 600.0
    assert proactive["false_alarms"] == 0
    assert {a["kind"] for a in proactive["actions"]} == {"relieve"}
