"""``python -m dcp_eval.study``: engine, oracles and reactive on many generated hard scenarios.

For every class of ``generator.HARD_CLASSES`` and every seed it runs the engine (proactive), the
reactive baseline, the perfect-knowledge oracle and ``drain_by`` (the oracle with the failure's
time unknown, the unit emptied by the engine's own drain deadline), and prints one row per
scenario and one table per class, with the floors of ``floors.py`` checked per scenario
(perfect floors, or ``drain_by``'s and a decision raised where the scenario is
information-limited) and per class (never worse than the reactive baseline).

``--shared`` adds the shared ``ats-contact-wear`` with every circuit's mean load x1.25 and x1.4.
``--no-drain-by`` skips ``drain_by`` (one oracle solve less per scenario: perfect floors only).
Run it with ``nice``: it is long (tens of seconds per scenario).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from custom_components.datacenter_power.engine.policy import DecisionPolicy, PolicyConfig
from dcp_sim.plant import Plant
from dcp_sim.scenario import Scenario, parse_scenario

from .drain_by import drained_by
from .floors import (
    PEAK_LIMIT,
    TARGET_OVER_S,
    check_targets,
    decision_raised,
    engine_deadlines,
    information_limited,
    is_miss,
    worse_than_reactive,
)
from .generator import HARD_CLASSES, HardClass, generate_hard_scenario, scale_loads
from .harness import (
    epoch0,
    observation_from_telemetry,
    run_evaluation,
    schedule_from_scenario,
    topology_from_scenario,
    utc_offset_s,
)
from .metrics import compute_metrics
from .oracle import FloatArray, OracleResult, demand_matrix, oracle_metrics_of, solve_oracle

__all__ = [
    "PEAK_LIMIT",
    "TARGET_OVER_S",
    "band_coverage",
    "check_targets",
    "class_table",
    "evaluate_one",
    "main",
    "summary",
]

SHARED_ACW: Final = Path(__file__).resolve().parents[2] / "shared/scenarios/ats-contact-wear.yaml"
OLD_JSON: Final = (
    "{file}: {n} row(s) written before issue 24 (no drain_by, drain deadline or decision "
    "fields): judged against the perfect oracle only; run the study again for both oracles"
)


def evaluate_one(
    scenario: Scenario, *, oracle_time_limit_s: float = 60.0, with_drain_by: bool = True
) -> dict[str, Any]:
    """Engine, reactive, oracle and ``drain_by`` figures of one scenario (quiet stdout)."""
    run = run_evaluation(scenario, "proactive")
    engine = compute_metrics(run)
    reactive = compute_metrics(run_evaluation(scenario, "reactive"))
    demand = demand_matrix(scenario)
    oracle = solve_oracle(scenario, time_limit_s=oracle_time_limit_s, demand=demand)
    deadlines = engine_deadlines(scenario, run.drain_deadlines)
    db, note = (
        _drain_by(scenario, deadlines, oracle, demand, oracle_time_limit_s)
        if with_drain_by
        else (None, "skipped (--no-drain-by)")
    )
    row: dict[str, Any] = {
        "scenario": scenario.name,
        "engine": {**oracle_metrics_of(engine), "switch_operations": engine["switch_operations"]},
        "reactive": {
            **oracle_metrics_of(reactive),
            "switch_operations": reactive["switch_operations"],
        },
        "oracle": oracle.as_dict(),
        "drain_by": db,
        "drain_by_note": note,
        "drain_deadlines": deadlines,
        "decisions_needed": run.decisions_needed,
        "lead_h": [
            None if f["lead_time_s"] is None else round(f["lead_time_s"] / 3600, 1)
            for f in engine["failures"]
        ],
        "infeasible": sum(1 for a in engine["actions"] if "partial" in a["reason"]),
        "band_coverage": engine.get("band_coverage"),
        "actions": [
            f"{a['kind']}@{a['started_s'] / 3600:.1f}h:{a['moves']}" for a in engine["actions"]
        ],
    }
    row["info_limited"] = information_limited(row)
    row["misses"] = check_targets(row)
    return row


def _drain_by(
    scenario: Scenario,
    deadlines: dict[str, dict[str, float | None]],
    oracle: OracleResult,
    demand: FloatArray,
    time_limit_s: float,
) -> tuple[dict[str, Any] | None, str]:
    """``drain_by`` at the engine's deadlines (``floors.engine_deadlines``) and what it is."""
    if not deadlines:
        return None, "no failure in the period"
    at: dict[str, float] = {}
    for unit, d in deadlines.items():
        if d["at_s"] is None:
            return None, f"no drain deadline for {unit} (the engine saw no risk): perfect floors"
        at[unit] = d["at_s"]
    if all(at[u] >= float(d["failure_s"] or 0.0) - 1e-6 for u, d in deadlines.items()):
        return oracle.as_dict(), "deadline at the failure: the perfect oracle"
    result = drained_by(scenario, at, time_limit_s=time_limit_s, demand=demand)
    when = ", ".join(f"{u} by {x / 3600:.2f} h" for u, x in at.items())
    return result.as_dict(), f"empty {when}"


def band_coverage(scenario: Scenario, *, poll_s: float = 60.0) -> dict[str, Any]:
    """Coverage of the engine's element P10-P90 bands on ``scenario`` with nothing moved: the
    plant runs on its own (``monitor`` mode) while the engine forecasts and calibrates."""
    sc = scenario
    t0 = epoch0(sc)
    plant = Plant(sc)
    topology = topology_from_scenario(sc)
    policy = DecisionPolicy(
        topology,
        PolicyConfig(mode="monitor", poll_s=poll_s, utc_offset_s=utc_offset_s(sc)),
        schedule=schedule_from_scenario(sc),
        non_working_days=sc.holidays,
    )
    while plant.t_s < sc.duration_s - 1e-6:
        policy.observe(observation_from_telemetry(plant.telemetry(), t0, topology))
        if plant.t_s >= 0:
            policy.decide(t0 + plant.t_s)
            plant.advance_to(plant.t_s + poll_s)
        else:
            plant.advance_to(min(plant.t_s + 300.0, 0.0))
    cal = policy.calibration()
    return {
        "samples": cal.samples,
        "coverage": None if cal.coverage is None else round(cal.coverage, 3),
        "below_p90": None if cal.below_p90 is None else round(cal.below_p90, 3),
        "scale": round(cal.scale, 3),
    }


def _missed(row: dict[str, Any]) -> bool:
    return any(is_miss(m) for m in row["misses"])


WHO: Final = ("engine", "oracle", "drain_by", "reactive")


def _cell(m: dict[str, Any] | None) -> str:
    if m is None:
        return f"{'-':>3} {'-':>6} {'-':>6} {'-':>5} {'-':>3}"
    return (
        f"{m['interruptions']:>3} {m['load_on_failing_at_failure_a']:>6.1f} "
        f"{m['over_limit_s']:>6.0f} {m['max_utilization']:>5.2f} {m['switch_operations']:>3}"
    )


def _fmt_row(name: str, row: dict[str, Any]) -> str:
    cells = " | ".join(_cell(row.get(who)) for who in WHO)
    verdict = ",".join(row["misses"]) or "ok"
    if row.get("info_limited"):
        verdict = f"info-limited: {verdict}"
    return f"{name:<28} {cells} | {verdict}"


HEADER: Final = (
    f"{'':<28} "
    + " | ".join(f"{w:<27}" for w in WHO)
    + " |\n"
    + f"{'scenario':<28} "
    + " | ".join(f"{'int':>3} {'failA':>6} {'overS':>6} {'peak':>5} {'mov':>3}" for _ in WHO)
    + " | floors"
)


def class_table(rows: list[dict[str, Any]]) -> str:
    """Per class: sums of interruptions, failing amps and seconds over and the worst peak for
    the engine, both oracles (``drain_by`` over the rows that have it) and the reactive
    baseline; then the floors met, the information-limited rows (those with a decision raised)
    and whether the engine is ever worse than the reactive baseline."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["class"], []).append(r)
    lines = [
        f"{'class':<20} {'n':>3} | "
        + " | ".join(f"{w:<8} int  failA   overS peak" for w in WHO)
        + " | drain_by rows"
    ]
    for cls, rs in by.items():
        cells = []
        for who in WHO:
            ms = [r[who] for r in rs if r.get(who) is not None]
            if not ms:
                cells.append(f"{who:<8} {'-':>3} {'-':>6} {'-':>7} {'-':>4}")
                continue
            cells.append(
                f"{who:<8} {sum(m['interruptions'] for m in ms):>3} "
                f"{sum(m['load_on_failing_at_failure_a'] for m in ms):>6.1f} "
                f"{sum(m['over_limit_s'] for m in ms):>7.0f} "
                f"{max(m['max_utilization'] for m in ms):>4.2f}"
            )
        with_db = sum(1 for r in rs if r.get("drain_by") is not None)
        lines.append(f"{cls:<20} {len(rs):>3} | " + " | ".join(cells) + f" | {with_db}")
    worse = worse_than_reactive(rows)
    lines += ["", f"{'class':<20} {'n':>3} | met   | info-limited (decision) | vs reactive | band"]
    for cls, rs in by.items():
        met = sum(1 for r in rs if not _missed(r))
        limited = [r for r in rs if information_limited(r)]
        decided = sum(1 for r in limited if decision_raised(r))
        lines.append(
            f"{cls:<20} {len(rs):>3} | {f'{met}/{len(rs)}':<5} | "
            f"{f'{len(limited)} ({decided})':<23} | {','.join(worse[cls]) or 'ok':<11} | "
            f"{_coverage(rs)}"
        )
    lines.append(f"{'all':<20} {len(rows):>3} | P10-P90 band coverage {_coverage(rows)}")
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]]) -> str:
    """The study's verdict lines: scenarios meeting every floor, classes never worse than
    the reactive baseline."""
    misses = sum(1 for r in rows if _missed(r))
    worse = worse_than_reactive(rows)
    ok = sum(1 for w in worse.values() if not w)
    return (
        f"{len(rows) - misses}/{len(rows)} scenarios meet every floor; "
        f"{ok}/{len(worse)} classes never worse than the reactive baseline"
    )


def _coverage(rows: list[dict[str, Any]]) -> str:
    """Pooled share of element outcomes inside the engine's P10-P90 band (target 0.8)."""
    bands = [r["band_coverage"] for r in rows if r.get("band_coverage")]
    n = sum(b["samples"] for b in bands)
    if not n:
        return "-"
    return f"{sum(b['coverage'] * b['samples'] for b in bands) / n:.3f} (n={n})"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(prog="python -m dcp_eval.study", description=__doc__)
    p.add_argument("--classes", nargs="*", default=list(HARD_CLASSES), choices=HARD_CLASSES)
    p.add_argument("--seeds", type=int, nargs="*", default=list(range(1, 9)))
    p.add_argument("--shared", action="store_true", help="add ats-contact-wear x1.25 and x1.4")
    p.add_argument("--json", metavar="FILE", help="also write every row to FILE")
    p.add_argument(
        "--history-days",
        type=float,
        default=3.0,
        help="history the engine learns from before each generated scenario (default 3 days)",
    )
    p.add_argument(
        "--coverage",
        action="store_true",
        help="also measure the P10-P90 band coverage (one monitor-mode run per scenario)",
    )
    p.add_argument(
        "--no-drain-by",
        action="store_true",
        help="skip drain_by (one oracle solve less per scenario; perfect floors only)",
    )
    p.add_argument(
        "--from-json",
        nargs="*",
        metavar="FILE",
        help="print the tables of earlier --json runs again (targets re-checked), run nothing",
    )
    args = p.parse_args(argv)
    if args.from_json:
        old: list[dict[str, Any]] = []
        for f in args.from_json:
            rows_f: list[dict[str, Any]] = json.loads(Path(f).read_text())
            before = sum(1 for r in rows_f if "drain_by" not in r)
            if before:
                print(OLD_JSON.format(file=f, n=before))
            old += rows_f
        print(HEADER)
        for r in old:
            r["info_limited"] = information_limited(r)
            r["misses"] = check_targets(r)
            print(_fmt_row(r["scenario"], r))
        print()
        print(class_table(old))
        print(f"\n{summary(old)}")
        return 0
    jobs: list[tuple[str, Scenario]] = []
    for cls in args.classes:
        hc: HardClass = cls
        history_h = args.history_days * 24.0
        jobs += [
            (cls, generate_hard_scenario(seed, hc, history_h=history_h)) for seed in args.seeds
        ]
    if args.shared:
        doc = yaml.safe_load(SHARED_ACW.read_text())
        for factor in (1.25, 1.4):
            jobs.append(("acw-scaled", parse_scenario(scale_loads(doc, factor), source="acw")))
    rows: list[dict[str, Any]] = []
    print(HEADER, flush=True)
    for cls, sc in jobs:
        # HiGHS may write to fd 1: keep stdout for the table.
        saved = os.dup(1)
        try:
            os.dup2(2, 1)
            row = evaluate_one(sc, with_drain_by=not args.no_drain_by)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        row["class"] = cls
        rows.append(row)
        print(_fmt_row(sc.name, row), flush=True)
        if args.coverage:
            row["band"] = band_coverage(sc)
            print(f"  P10-P90 band: {row['band']}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    print()
    print(class_table(rows))
    print(f"\n{summary(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
