"""The study's floors against two oracles (issue 24), on small synthetic rows: perfect floors,
or ``drain_by``'s and a decision raised where the scenario is information-limited; per class,
never worse than the reactive baseline; earlier runs' JSON re-checked with a clear message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dcp_eval.floors import (
    check_targets,
    engine_deadlines,
    information_limited,
    worse_than_reactive,
)
from dcp_eval.generator import generate_hard_scenario
from dcp_eval.study import class_table, main, summary

H = 3600.0
FAILURE_S = 15 * H


def fig(interruptions: int = 0, fail_a: float = 0.0, over_s: float = 0.0, peak: float = 0.8):
    return {
        "interruptions": interruptions,
        "load_on_failing_at_failure_a": fail_a,
        "over_limit_s": over_s,
        "max_utilization": peak,
        "switch_operations": 10,
    }


def row(
    engine: dict[str, Any],
    *,
    oracle: dict[str, Any] | None = None,
    reactive: dict[str, Any] | None = None,
    drain_by: dict[str, Any] | None = None,
    decided_s: float | None = None,
    cls: str = "tight",
) -> dict[str, Any]:
    """A study row whose unit fails at 15 h, its drain deadline at 12 h."""
    return {
        "scenario": f"hard-{cls}-x",
        "class": cls,
        "engine": engine,
        "oracle": oracle or fig(),
        "reactive": reactive or fig(interruptions=20, fail_a=60.0, over_s=9000.0, peak=1.1),
        "drain_by": drain_by,
        "drain_deadlines": {
            "ats1": {"failure_s": FAILURE_S, "first_s": 13 * H, "final_s": 12 * H,
                     "set_s": 10 * H, "at_s": 12 * H},
        },
        "decisions_needed": []
        if decided_s is None
        else [{"element": "ats1", "raised_s": 0.0, "deadline_s": 0.0, "choices": [],
               "seen_s": decided_s}],
    }  # fmt: skip


LIMITED = fig(over_s=4800.0)
"""drain_by at the deadline runs 4,800 s over a limit where the oracle runs none."""


def test_an_information_limited_scenario_is_judged_against_drain_by() -> None:
    """The engine 5,000 s over a limit (the perfect floor missed) is within 600 s of what any
    drain by its deadline costs, and it raised a decision before the failure: met."""
    r = row(fig(over_s=5000.0), drain_by=LIMITED, decided_s=11 * H)
    assert information_limited(r)
    assert check_targets(r) == ["over(info-limited)"]


def test_information_limited_needs_a_decision_raised_before_the_failure() -> None:
    assert check_targets(row(fig(over_s=5000.0), drain_by=LIMITED)) == [
        "over(info-limited)",
        "no-decision",
    ]
    late = row(fig(over_s=5000.0), drain_by=LIMITED, decided_s=FAILURE_S + 60.0)
    assert "no-decision" in check_targets(late)
    # A relief question (an overloaded element) or one about another unit is not the decision.
    for other in ({"kind": "relief"}, {"element": "ats2"}):
        asked = row(fig(over_s=5000.0), drain_by=LIMITED, decided_s=11 * H)
        asked["decisions_needed"][0].update(other)
        assert "no-decision" in check_targets(asked), other
    # Meeting the perfect floors is the issue's first alternative: the missing decision is
    # shown, not a miss.
    assert check_targets(row(fig(), drain_by=LIMITED)) == ["no-decision(perfect floors met)"]


def test_information_limited_rows_may_not_exceed_drain_by() -> None:
    worse = row(fig(interruptions=2, over_s=5500.0), drain_by=LIMITED, decided_s=11 * H)
    assert check_targets(worse) == ["over(info-limited)", "int>drain_by", "over>drain_by"]
    # Its peak is judged against the higher of drain_by's and the reactive baseline's.
    peaky = row(
        fig(over_s=5000.0, peak=0.95),
        reactive=fig(interruptions=20, peak=0.85),
        drain_by=fig(over_s=4800.0, peak=0.95),
        decided_s=11 * H,
    )
    assert check_targets(peaky) == ["over(info-limited)", "peak90(info-limited)"]
    peaky["engine"]["max_utilization"] = 0.97
    assert check_targets(peaky)[-1] == "peak90"


def test_where_drain_by_meets_the_floors_the_perfect_ones_apply() -> None:
    r = row(fig(over_s=5000.0), drain_by=fig(over_s=300.0), decided_s=11 * H)
    assert not information_limited(r)
    assert check_targets(r) == ["over"]
    assert check_targets(row(fig(over_s=5000.0), drain_by=None)) == ["over"]


def test_a_class_may_not_be_worse_than_the_reactive_baseline() -> None:
    rows = [
        row(fig(interruptions=500), reactive=fig(interruptions=400), cls="outage_during_drain"),
        row(fig(interruptions=313), reactive=fig(interruptions=291), cls="outage_during_drain"),
        row(fig(fail_a=3.0, over_s=700.0), reactive=fig(fail_a=2.0, over_s=900.0)),
    ]
    for r in rows:
        r["misses"] = check_targets(r)
    assert worse_than_reactive(rows) == {
        "outage_during_drain": ["int 813>691"],
        "tight": ["failA 3>2"],
    }
    assert "int 813>691" in class_table(rows)
    assert summary(rows).endswith("0/2 classes never worse than the reactive baseline")


def test_the_engines_deadline_is_its_last_before_the_failure_not_before_it_was_set() -> None:
    sc = generate_hard_scenario(8, "tight", realistic_loads=False)
    (wear,) = sc.wear_events
    f = wear.failure_s
    changes = {
        wear.target: [
            (f - 8 * H, f - 2 * H),  # the first alert's deadline
            (f - 6 * H, None),  # the alert ended
            (f - 4 * H, f - 3 * H),  # a new alert
            (f - 2 * H, f - 2.5 * H),  # an estimate falling fast: already past when set
            (f + 60.0, f + 3600.0),  # after the failure: ignored
        ]
    }
    (got,) = engine_deadlines(sc, changes).values()
    assert got == {
        "failure_s": f,
        "first_s": f - 2 * H,
        "final_s": f - 2.5 * H,
        "set_s": f - 2 * H,
        "at_s": f - 2 * H,
    }
    # A deadline after the failure is the failure (a drain by then is the perfect oracle's);
    # no deadline at all (the engine saw no risk) is none.
    late = engine_deadlines(sc, {wear.target: [(f - H, f + H)]})[wear.target]
    assert late["at_s"] == f
    assert engine_deadlines(sc, {})[wear.target]["at_s"] is None


def test_old_json_is_rechecked_on_the_perfect_floors_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = row(fig(over_s=5000.0))
    for key in ("drain_by", "drain_deadlines", "decisions_needed"):
        del old[key]
    new = row(fig(over_s=5000.0), drain_by=LIMITED, decided_s=11 * H)
    (tmp_path / "old.json").write_text(json.dumps([old]))
    (tmp_path / "new.json").write_text(json.dumps([new]))
    assert main(["--from-json", str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 0
    out = capsys.readouterr().out
    assert "old.json: 1 row(s) written before issue 24" in out
    assert "new.json" not in out
    assert "| over\n" in out
    assert "info-limited: over(info-limited)" in out
    assert "1/2 scenarios meet every floor" in out
