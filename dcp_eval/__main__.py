"""``python -m dcp_eval SCENARIO [--policy proactive|reactive] [--json] [--plot FILE]``.

The command behind ``scripts/evaluate``. Exit status 0 after a run, 2 for a bad command line or
scenario (one clear line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from dcp_sim.scenario import ScenarioError, load_scenario

from .harness import run_evaluation
from .metrics import compute_metrics

PROG = "scripts/evaluate"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run a scenario with the decision engine in the loop (accelerated time) and "
        "print the metrics of docs/scenario-format.md.",
    )
    parser.add_argument("scenario", help="scenario file (YAML)")
    parser.add_argument(
        "--policy",
        choices=("proactive", "reactive"),
        default="proactive",
        help="proactive: the integration's engine (default); reactive: no engine actions",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", metavar="FILE", help="also write a PNG timeline to FILE")
    parser.add_argument(
        "--oracle",
        action="store_true",
        help="also solve the perfect-knowledge oracle and report it with the regret",
    )
    return parser


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def format_table(m: dict[str, Any]) -> str:
    """The metrics as a readable text table."""
    lines = [f"scenario {m['scenario']}  policy {m['policy']}", ""]
    keys = (
        "predictable_failures",
        "predicted_failures",
        "false_alarms",
        "interruptions",
        "unserved_energy_wh",
        "breaker_trips",
        "over_limit_s",
        "max_utilization",
        "switch_operations",
        "forecast_mape_1h",
        "wall_s",
    )
    width = max(len(k) for k in keys)
    lines += [f"  {k:<{width}}  {_fmt(m[k])}" for k in keys]
    band = m.get("band_coverage")
    if band:
        lines.append(
            f"  {'band_coverage':<{width}}  {band['coverage']:.3f} of {band['samples']} element "
            f"outcomes inside P10-P90 (target 0.8; below P90 {band['below_p90']:.3f})"
        )
    if m["failures"]:
        lines += ["", "  failures:"]
        for f in m["failures"]:
            lead = f["lead_time_s"]
            lines.append(
                f"    {f['target']:<8} {f['kind']:<18} failed_at {_fmt(f['failed_at_s'])} s  "
                f"first_alert {_fmt(f['first_alert_s'])} s  "
                f"lead {'-' if lead is None else f'{lead / 3600:.1f} h'}  "
                f"load at failure {_fmt(f['load_on_target_at_failure_a'])} A"
            )
    if m.get("actions"):
        lines += ["", "  actions:"]
        for a in m["actions"]:
            lines.append(
                f"    t={a['started_s'] / 3600:6.2f} h  {a['kind']:<9} {a['target'] or '':<7} "
                f"moves {a['moves']:<3} ok {a['ok']}  {a['note']}"
            )
    if "oracle" in m:
        o, r = m["oracle"], m["regret"]
        lines += [
            "",
            f"  oracle ({o['status']}, {o['grid_s'] / 60:g} min grid):  policy / oracle / regret",
        ]
        for k in r:
            mine = r[k] + o[k]
            lines.append(f"    {k:<30} {_fmt(round(mine, 5))} / {_fmt(o[k])} / {_fmt(r[k])}")
        lines.append(
            f"    {'switch_operations':<30} {m['switch_operations']} / {o['switch_operations']}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        message = str(exc)
        shown = os.environ.get("DCP_EVAL_SHOWN_AS")  # set by scripts/evaluate for a copied file
        if shown:
            message = message.replace(args.scenario, shown)
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    # The MILP solver (HiGHS, C++) occasionally writes diagnostics straight to file descriptor 1;
    # keep stdout for the metrics alone by pointing fd 1 at stderr while the engine runs.
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        evaluation = run_evaluation(scenario, args.policy)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    metrics = compute_metrics(evaluation)
    if args.oracle:
        from .oracle import regret, solve_oracle

        sys.stdout.flush()
        saved = os.dup(1)
        try:
            os.dup2(2, 1)
            oracle = solve_oracle(scenario)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        metrics["oracle"] = oracle.as_dict()
        metrics["regret"] = regret(metrics, oracle)
    if args.plot:
        from .plot import plot_evaluation

        try:
            plot_evaluation(evaluation, metrics, args.plot)
        except OSError as exc:
            print(f"{PROG}: error: cannot write plot {args.plot}: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(metrics, allow_nan=False, default=str))
    else:
        print(format_table(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
