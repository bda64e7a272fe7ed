"""The oracle: perfect knowledge of the loads, a schedule that respects the plant, honest regret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from dcp_eval.__main__ import main
from dcp_eval.harness import run_evaluation
from dcp_eval.metrics import compute_metrics
from dcp_eval.oracle import demand_matrix, policy_failing_load, regret, solve_oracle
from dcp_sim.plant import Plant
from dcp_sim.scenario import Scenario, parse_scenario

type Doc = dict[str, Any]


def _wear(small: Doc, *, failure: str = "2h") -> Scenario:
    """The small plant with ATS-1 (mpdu1, four circuits on it normally) failing, no repair."""
    small["events"] = [
        {"kind": "ats_contact_wear", "target": "ats1", "onset": "10m", "failure": failure}
    ]
    return parse_scenario(small, source="oracle-test")


def test_demand_replay_is_the_plants_demand(small: Doc) -> None:
    sc = parse_scenario(small, source="small")
    dem = demand_matrix(sc)
    assert dem.shape == (round(sc.duration_s / sc.step_s) + 1, len(sc.circuits))
    plant = Plant(sc)
    for j in (0, 7, 60, dem.shape[0] - 1):
        plant.advance_to(j * sc.step_s)
        tel = plant.telemetry()
        got = np.array([tel.circuits[c.id].current_a for c in sc.circuits])
        np.testing.assert_allclose(got, dem[j], rtol=0, atol=1e-9)


def test_oracle_drains_the_failing_unit_before_it_fails(small: Doc) -> None:
    sc = _wear(small)
    res = solve_oracle(sc, time_limit_s=30.0)
    assert res.status == "optimal"
    assert res.metrics["load_on_failing_at_failure_a"] == 0.0
    assert res.metrics["interruptions"] == 0
    assert res.metrics["over_limit_s"] == 0.0
    # Every circuit only ever uses its own listed paths, and none is left on ATS-1's MPDU in
    # the interval that ends with the failure.
    paths = {c.id: set(c.paths) for c in sc.circuits}
    for _, assign in res.schedule:
        assert all(p in paths[c] for c, p in assign.items())
    before = [a for t, a in res.schedule if t < 2 * 3600][-1]
    assert "mpdu1" not in before.values()
    # The moves are few: the four circuits of mpdu1 leave once (then stay: ATS-1 is never
    # repaired); the b/d circuits have no reason to move.
    assert res.metrics["switch_operations"] == 4


def test_oracle_reports_what_physics_forbids(small: Doc) -> None:
    """Nowhere to go: every circuit listed only on mpdu1, so the oracle, too, leaves load on
    the failing unit, and the regret of doing nothing is zero."""
    for g in small["circuit_groups"]:
        g["paths"] = ["mpdu1"]
    sc = _wear(small)
    res = solve_oracle(sc, time_limit_s=30.0)
    assert res.metrics["load_on_failing_at_failure_a"] > 10.0
    assert res.metrics["interruptions"] == 10
    reactive = compute_metrics(run_evaluation(sc, "reactive"))
    r = regret(reactive, res)
    assert r["interruptions"] == 0
    assert r["load_on_failing_at_failure_a"] == pytest.approx(0.0, abs=1e-6)


def test_regret_is_policy_minus_oracle(small: Doc) -> None:
    sc = _wear(small)
    res = solve_oracle(sc, time_limit_s=30.0)
    reactive = compute_metrics(run_evaluation(sc, "reactive"))
    r = regret(reactive, res)
    assert r["interruptions"] == reactive["interruptions"] - res.metrics["interruptions"]
    assert r["interruptions"] == 4  # mpdu1's circuits, bypassed when ATS-1 dies
    assert r["load_on_failing_at_failure_a"] == pytest.approx(policy_failing_load(reactive))
    assert r["load_on_failing_at_failure_a"] > 10.0
    assert r["max_utilization"] == pytest.approx(
        reactive["max_utilization"] - res.metrics["max_utilization"], abs=1e-4
    )


def test_evaluate_oracle_json(
    tmp_path: Path, small: Doc, capsys: pytest.CaptureFixture[str]
) -> None:
    _wear(small)  # validates the document
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(small), encoding="utf-8")
    assert main([str(path), "--policy", "reactive", "--oracle", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["oracle"]["load_on_failing_at_failure_a"] == 0.0
    assert set(out["regret"]) == {
        "interruptions",
        "load_on_failing_at_failure_a",
        "over_limit_s",
        "max_utilization",
    }
    assert out["regret"]["interruptions"] == out["interruptions"] - out["oracle"]["interruptions"]
