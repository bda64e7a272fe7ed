"""A plant too tight to drain completely: the engine moves what fits and never pushes an element
above its continuous limit to do more."""

from __future__ import annotations

from pathlib import Path

from dcp_eval.harness import run_evaluation
from dcp_eval.metrics import compute_metrics
from dcp_sim.scenario import parse_scenario

DEMO = Path(__file__).resolve().parents[2] / "scenarios" / "demo.yaml"


def test_partial_drain_keeps_every_element_within_its_limit() -> None:
    """The demo plant with 40 A MPDUs: all eight circuits on mpdu2 would reach ~40 A at the
    afternoon peak (limit 32 A). ATS-1 fails at 14 h and is repaired 2 h later."""
    text = DEMO.read_text().replace("rating_a: 63", "rating_a: 40")
    scenario = parse_scenario(text, source="tight-demo")
    assert [m.rating_a for m in scenario.mpdus] == [40, 40]
    m = compute_metrics(run_evaluation(scenario, "proactive"))
    (failure,) = m["failures"]
    assert m["predicted_failures"] == 1
    migrations = [a for a in m["actions"] if a["kind"] == "migrate"]
    assert migrations
    assert "partial" in migrations[0]["reason"]
    # Some load stayed (no room for it) ...
    assert failure["load_on_target_at_failure_a"] > 0
    # ... and the only time over the limit is after the failure, while ATS-1 is down and the
    # SBMs' own bypass has put everything on mpdu2 (2 h repair): nothing the engine did.
    assert m["over_limit_s"] <= 2 * 3600
    reactive = compute_metrics(run_evaluation(scenario, "reactive"))
    assert m["interruptions"] < reactive["interruptions"]
