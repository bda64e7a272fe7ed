"""The expected-load drain weighs its receivers' time above a limit up to the failure's late
estimate, not its median (issue 24, ``hard-outage_during_drain-20``).

Its own test file so that it runs alone: one engine run on a generated plant (realistic loads,
the study's default history)."""

from __future__ import annotations

from dcp_eval.generator import generate_hard_scenario
from dcp_eval.harness import run_evaluation
from dcp_eval.metrics import compute_metrics
from dcp_eval.oracle import policy_failing_load
from dcp_sim.scenario import WearEvent


def test_the_expected_load_drain_counts_excursions_up_to_the_late_failure_estimate() -> None:
    """``hard-outage_during_drain-20``: at 7 h ats3 alerts (early estimate 0.8 h, median 3.0 h,
    P90 8.1 h) and its last circuit (c20, 10 A, a single way out: mpdu2) has no room within the
    P90 margin through the afternoon peak. Counted only up to the median failure (10 h), the
    expected-load drain's over-limit budget let c20 move at 7.03 h; ats3 failed at 15.2 h, and
    mpdu2 ran up to 70.7 A of its 68 A limit from 9.5 h to 11.9 h (8,580 s; `drain_by` at the
    engine's deadline 4,080 s, the reactive baseline 7,980 s). The moved load sits there until
    the failure, which may come as late as the estimate's P90: counted up to then, the drain
    waits, c20 moves in the evening (12 h), and nothing is above a limit or on ats3 at its
    failure."""
    sc = generate_hard_scenario(20, "outage_during_drain")
    (wear,) = [e for e in sc.events if isinstance(e, WearEvent)]
    ev = run_evaluation(sc, "proactive")
    m = compute_metrics(ev)
    assert policy_failing_load(m) == 0.0
    assert m["over_limit_s"] <= 600.0
    expected = [
        a.started_s for a in ev.actions if a.kind == "migrate" and "expected (P50)" in a.reason
    ]
    # Not before the afternoon peak (it runs from about 9.5 h to 11.9 h on this plant).
    assert all(t >= 11.5 * 3600.0 for t in expected)
    assert all(t < wear.failure_s for t in expected)
