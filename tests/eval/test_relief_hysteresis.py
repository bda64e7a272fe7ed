"""Relief with hysteresis: on a noisy load trend no circuit goes back and forth.

The shared ``mpdu-overload-trend`` plant with every circuit's noise raised fourfold (and a
shorter history, to keep the test affordable): the relieve rule acts on forecasts that jump
around, yet no circuit's path is switched one way and back again within an hour by relief.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from custom_components.datacenter_power.engine.decisions import Action
from custom_components.datacenter_power.engine.policy import DecisionPolicy
from dcp_eval.harness import run_evaluation
from dcp_eval.metrics import compute_metrics
from dcp_sim.scenario import parse_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "mpdu-overload-trend.yaml"
WINDOW_S = 3600.0


def _noisy() -> dict[str, Any]:
    doc = yaml.safe_load(SCENARIO.read_text())
    doc["name"] = "mpdu-overload-trend-noisy"
    doc["history"] = "4d"
    for group in doc["circuit_groups"]:
        group["load"]["noise"] = 4 * float(group["load"].get("noise", 0.03))
    return doc


def test_no_circuit_goes_back_and_forth_within_an_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    done: list[tuple[float, str, str, str, str]] = []
    original = DecisionPolicy.action_finished

    def spy(self: DecisionPolicy, action: Action, *, ok: bool, note: str = "") -> None:
        # Record what the engine really executed (the harness runs the shipping executor).
        if ok and action.kind in ("relieve", "rebalance"):
            t = self._last_t
            done.extend(
                (t, m.circuit, m.from_mpdu, m.to_mpdu, action.kind) for m in action.plan.moves
            )
        original(self, action, ok=ok, note=note)

    monkeypatch.setattr(DecisionPolicy, "action_finished", spy)
    metrics = compute_metrics(run_evaluation(parse_scenario(_noisy(), source="noisy")))
    assert done, "the noisy trend must make the engine relieve something"
    for i, (t1, c1, src, dst, _) in enumerate(done):
        for t2, c2, src2, dst2, _ in done[i + 1 :]:
            back = c2 == c1 and src2 == dst and dst2 == src
            assert not (back and t2 - t1 < WINDOW_S), f"{c1} moved {src}->{dst} and back"
    assert metrics["interruptions"] == 0
    assert metrics["breaker_trips"] == 0
