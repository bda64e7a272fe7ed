"""The hard generated classes are what they claim, and the engine holds its floors on them
against the oracle (a few seeds; ``python -m dcp_eval.study`` runs many)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from custom_components.datacenter_power.engine.policy import PolicyConfig
from dcp_eval.generator import HARD_CLASSES, HardClass, generate_hard_scenario, scale_loads
from dcp_eval.harness import run_evaluation, utc_offset_s
from dcp_eval.metrics import compute_metrics
from dcp_eval.oracle import policy_failing_load
from dcp_eval.study import check_targets, evaluate_one
from dcp_sim.scenario import (
    LoadSurgeEvent,
    LoadTrendEvent,
    SourceOutageEvent,
    WearEvent,
    parse_scenario,
)

SHARED = Path(__file__).resolve().parents[2] / "scenarios" / "ats-contact-wear.yaml"
"""The project's own copy of the shared ats-contact-wear scenario (the repository stands alone)."""
PLAIN = {"realistic_loads": False}
"""The tests below that tell the story of one generated plant (its hours, its amps) were written on
the plain loads the generator made before issue 21: they keep that plant. ``dcp_eval.study``
runs the classes on the realistic loads."""


@pytest.mark.parametrize("cls", HARD_CLASSES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_class_has_a_wearing_ats_and_its_own_feature(cls: HardClass, seed: int) -> None:
    sc = generate_hard_scenario(seed, cls)
    (wear,) = [e for e in sc.events if isinstance(e, WearEvent)]
    assert wear.target in {a.id for a in sc.ats}
    assert 0 < wear.onset_s < wear.failure_s < sc.duration_s
    # Every circuit can leave the wearing ATS.
    mpdu_ats = {m.id: m.ats for m in sc.mpdus}
    assert all(any(mpdu_ats[p] != wear.target for p in c.paths) for c in sc.circuits)
    if cls == "three_way":
        assert len(sc.ats) == 3
        assert all(len({mpdu_ats[p] for p in c.paths}) == 3 for c in sc.circuits)
    elif cls == "drain_trend_surge":
        trends = [e for e in sc.events if isinstance(e, LoadTrendEvent)]
        surges = [e for e in sc.events if isinstance(e, LoadSurgeEvent)]
        assert trends
        assert surges
        assert trends[0].onset_s < wear.failure_s
        assert any(s.at_s < wear.failure_s + 3600 for s in surges)
    elif cls == "outage_during_drain":
        (outage,) = [e for e in sc.events if isinstance(e, SourceOutageEvent)]
        assert wear.onset_s < outage.at_s < wear.failure_s
        victims = [a for a in sc.ats if a.sources[0] == outage.target]
        assert victims
        assert all(a.id != wear.target for a in victims)


def test_scaled_shared_scenario_has_bigger_loads_only() -> None:
    doc = yaml.safe_load(SHARED.read_text())
    base = parse_scenario(doc, source="base")
    big = parse_scenario(scale_loads(doc, 1.25), source="big")
    assert big.name == "ats-contact-wear-x1.25"
    for a, b in zip(base.circuits, big.circuits, strict=True):
        assert b.load.mean_a == pytest.approx(a.load.mean_a * 1.25)
        assert b.paths == a.paths
    assert big.events == base.events


@pytest.mark.parametrize(("cls", "seed"), [("tight", 1)])
def test_engine_meets_the_floors_against_the_oracle(cls: HardClass, seed: int) -> None:
    """No load on the failing ATS where the oracle has none, at most 10 min over a limit beyond
    the oracle's, no element above 90 % because of us; and the oracle does drain it. (The
    perfect oracle's floors only: ``drain_by`` at the engine's deadline, 8.6 h, runs 21,720 s
    over a limit, so the study also asks for a decision needed here; see
    ``test_study_floors.py``.)"""
    row = evaluate_one(
        generate_hard_scenario(seed, cls, **PLAIN), oracle_time_limit_s=30.0, with_drain_by=False
    )
    assert row["oracle"]["load_on_failing_at_failure_a"] == 0.0
    assert check_targets(row) == []
    assert row["engine"]["interruptions"] <= row["oracle"]["interruptions"]
    assert row["reactive"]["interruptions"] > row["engine"]["interruptions"]


def test_scaled_shared_wear_is_drained_in_the_low_load_hours_before_the_failure() -> None:
    """``ats-contact-wear`` x1.4: ats1 fails at 06:00, near the daily minimum, and no drain
    holds through the failure's hold window (the morning rise, and the plant is over its limits
    after the failure in any assignment). The rest moves in the low-load hours before the
    failure's early estimate: nothing left on ats1, no interruption, every floor met (main
    before this rule: 14.7 A on ats1 at failure, 2 interruptions). The perfect oracle's floors
    only: ``drain_by`` at the engine's deadline, 14.1 h, runs 54,900 s over a limit, so the study
    also asks for a decision needed here."""
    doc = yaml.safe_load(SHARED.read_text())
    sc = parse_scenario(scale_loads(doc, 1.4), source="x1.4")
    row = evaluate_one(sc, oracle_time_limit_s=30.0, with_drain_by=False)
    assert row["oracle"]["load_on_failing_at_failure_a"] == 0.0
    assert row["engine"]["load_on_failing_at_failure_a"] == 0.0
    assert row["engine"]["interruptions"] == 0
    assert check_targets(row) == []


def test_a_short_drain_window_is_taken_only_in_the_low_load_hours() -> None:
    """``hard-tight-8``: in the morning a complete drain of ats1 fits until the failure's early
    estimate, but the afternoon peak (before the failure) would push its receivers over their
    limits. That short window is for the low-load hours only: taken whenever it fits
    (tolerance unbounded), the receivers ran far above their limits before the failure (round
    3: 12,000 s); with the guard, only the measurement noise of the expected-load drain (the
    last circuit, see the next test) crosses a limit, by less than 1 A. Since round 7 the urgent
    relief (``engine/plan_retries.py``, part of an excess relieved when all of it cannot be) also
    catches the afternoon overload of the unguarded window: both stay within 1 A and 20 min."""
    sc = generate_hard_scenario(8, "tight", **PLAIN)
    (wear,) = [e for e in sc.events if isinstance(e, WearEvent)]

    def over_before_failure(cfg: PolicyConfig) -> tuple[float, float]:
        """(seconds of polls with an element above its limit, worst excess in amps)."""
        ev = run_evaluation(sc, "proactive", config=cfg)
        before = ev.times_s < wear.failure_s
        loads = np.nan_to_num(ev.loads_a[before], nan=0.0)
        over = loads - ev.limits_a[None, :]
        step = float(np.median(np.diff(ev.times_s)))
        return float((over > 0).any(axis=1).sum()) * step, float(np.max(over))

    base = PolicyConfig(utc_offset_s=utc_offset_s(sc))
    guarded_s, guarded_a = over_before_failure(base)
    open_s, open_a = over_before_failure(replace(base, drain_low_load_tolerance=math.inf))
    assert guarded_a < 1.0
    assert guarded_s <= 1200.0
    assert open_a < 1.0
    assert open_s <= 1200.0


def test_the_last_circuit_moves_on_its_expected_load_rather_than_be_interrupted() -> None:
    """``hard-tight-8``: no complete drain of ats1 fits with the P90 margin (c12, 8-12 A, has
    only mpdu2 and mpdu3; the receivers together carry 176-179 A of 180 A at the afternoon
    peak), and at the failure the SBMs' bypass would put c12 on mpdu3 anyway, unmanaged (round
    3: 11.3 A interrupted, then 1,260 s above mpdu3's limit). At the drain's deadline the rest
    moves on the expected (P50) load, split for the lowest worst utilisation, and the reason
    says so: nothing on ats1 at its failure, no interruption, no element far above its
    limit."""
    sc = generate_hard_scenario(8, "tight", **PLAIN)
    ev = run_evaluation(sc, "proactive")
    m = compute_metrics(ev)
    assert policy_failing_load(m) == 0.0
    assert m["interruptions"] == 0
    assert any("expected (P50) load" in a.reason for a in ev.actions if a.kind == "migrate")
    assert m["max_utilization"] < 0.82


def test_a_safe_drain_forecast_after_the_deadline_is_not_waited_for() -> None:
    """``hard-outage_during_drain-16``: ats2's last circuit (20 A, a single way out) has no
    room within the P90 margin through the afternoon; from 17.4 h a complete drain within that
    margin is forecast to fit about an hour later, before the *predicted* failure but after
    the drain's deadline (the failure's early estimate, less its margin). Waiting for it bets
    on a late failure: round 4 waited, and ats2 failed at 18.5 h with the circuit still on it
    (20.1 A interrupted). Round 5 moved it on its expected load at 17.4 h. Since round 10 the
    expected-load drain's guard weighs each forecast point by the chance that ats2 still
    works (before: only up to the median failure, which stayed 4.3 h ahead): its receivers
    would be expected 14 min above a limit while it works, over the 10 min budget, so it is
    not taken; the later drain is still not waited for (no note says so), and at 18.2 h a
    complete drain within the P90 margin fits and runs. Nothing on ats2 at its failure, no
    element far above its limit."""
    sc = generate_hard_scenario(16, "outage_during_drain", **PLAIN)
    ev = run_evaluation(sc, "proactive")
    m = compute_metrics(ev)
    assert policy_failing_load(m) == 0.0
    assert m["max_utilization"] < 0.82
    assert m["over_limit_s"] <= 120.0


def test_tight_8_drains_its_last_circuit_and_re_splits_the_receivers() -> None:
    """``hard-tight-8`` (realistic loads): c15 can leave ats1 only for mpdu3 or mpdu4, both
    behind ats2, whose two MPDUs run within about 1 % of their limits at the afternoon peak.
    Round 9 left it on ats1 (ways through one ATS did not count as a single way out): 10.7 A
    interrupted at the failure. Now it moves on its expected load at the drain's deadline and
    a best-effort re-split balances mpdu3 and mpdu4 on the forecast: nothing on ats1 at its
    failure, no interruption, at most ten minutes above a limit (the floor against the
    perfect oracle's 0 s)."""
    sc = generate_hard_scenario(8, "tight")
    ev = run_evaluation(sc, "proactive")
    m = compute_metrics(ev)
    assert policy_failing_load(m) == 0.0
    assert m["interruptions"] == 0
    assert m["over_limit_s"] <= 600.0
    assert any("re-split" in a.reason for a in ev.actions if a.kind == "relieve")
