"""``python -m benchmarks``: every figure the issues ask for, printed as a table (or JSON).

The scaling figures (issue 11) are top-level keys: ``cpus``, ``poll``, ``baseline_ha_modbus``,
``integration_50``, ``ha_1000``, ``command_latency_ms``, ``forecast_refresh_s``, ``plan_ms``,
``plan_optimality_gap``, ``evaluate_1000_s``, and ``history_store`` (the engine's persisted history
at 14 days). ``--small`` runs everything on small plants (Home Assistant on the demo plant; what
the test does, so that the benchmark cannot rot); CI does not time it. The engine figures
(``engine_1000``, ``evaluate_1000``) carry their CPU time and the 1-minute load average when
they were measured; ``--engine-only`` measures only those. ``--baseline-only`` measures only the
50-device comparison (``baseline_ha_modbus``: Home Assistant's own ``modbus``, and
``integration_50``). ``--recorder postgresql`` runs the Home Assistant hall twice, with the
recorder on SQLite (``ha_1000``) and on a real PostgreSQL server (``ha_1000_postgresql``), and
puts their recorder figures side by side (``recorder_comparison``). ``--ha-only`` measures only
the Home Assistant hall.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from . import engine, ha_modbus, history, scale, telemetry

ROOT = Path(__file__).resolve().parent.parent


def _legacy(rounds: int) -> dict[str, Any]:
    scenarios = ROOT / "scenarios"
    return {
        "telemetry": telemetry.run(
            [scenarios / "demo.yaml", scenarios / "quiet-week.yaml"], rounds
        ),
        "forecasting": [engine.forecasting(scenarios / "quiet-week.yaml", rounds)],
        "forecaster_at_scale": engine.forecaster_at_scale(1000),
        "planning": engine.planning((30, 100, 250), max(1, rounds // 5)),
        "evaluation": engine.evaluation(
            [
                scenarios / "ats-contact-wear.yaml",
                scenarios / "mpdu-overload-trend.yaml",
                scenarios / "quiet-week.yaml",
            ]
        ),
        "event_loop": [engine.event_loop_stall(scenarios / "demo.yaml")],
        "failover": [engine.failover(scenarios / "mpdu-sudden-failure.yaml")],
    }


def _scaling(args: argparse.Namespace) -> dict[str, Any]:
    commands = 4 if args.small else args.commands
    report: dict[str, Any] = {
        "cpus": scale.cpus(),
        "load_average_at_start": scale.load_average(),
        "note": "CPUs shared with other jobs on this machine; see load averages",
    }
    if args.baseline_only:
        rounds = max(2, args.rounds // 5)
        report["baseline_ha_modbus"] = ha_modbus.baseline(45, rounds, commands)
        report["integration_50"] = scale.integration(45, rounds, commands)
        report["load_average_at_end"] = scale.load_average()
        return report
    if not args.ha_only:
        _device_and_engine(args, report)
    if args.ha_minutes > 0 and not args.engine_only:
        report.update(_ha_hall(args))
    else:
        report["ha_1000"] = None
    report["load_average_at_end"] = scale.load_average()
    return report


def _device_and_engine(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Polling, the modbus baseline, commands, the engine's figures, the history store."""
    small = args.small
    plants = {"50": 45} if small else dict(scale.PLANTS)
    commands = 4 if small else args.commands
    if not args.engine_only:
        report["poll"] = {k: scale.poll_one(n, args.rounds) for k, n in plants.items()}
        report["baseline_ha_modbus"] = ha_modbus.baseline(45, max(2, args.rounds // 5), commands)
        report["integration_50"] = scale.integration(45, max(2, args.rounds // 5), commands)
        big = scale.integration(45 if small else 1000, max(2, args.rounds // 5), commands)
        report["integration_1000"] = big
        report["command_latency_ms"] = big["command_latency_ms"]
    # Small: 4 lineups of one MPDU each, so that draining one has somewhere to go.
    figures = scale.engine(100, history_days=2.0, mpdus_per_ats=1) if small else scale.engine(1000)
    report["engine_1000"] = figures
    for key in ("forecast_refresh_s", "plan_ms", "plan_optimality_gap"):
        report[key] = figures[key]
    evaluated = scale.evaluate(30 if small else 1000, history="1d" if small else "2d")
    report["evaluate_1000"] = evaluated
    report["evaluate_1000_s"] = evaluated["wall_s"]
    if not args.engine_only:
        report["history_store"] = (
            history.run(50, sampled_hours=0.5, days=2) if small else history.run(1000)
        )


def _ha_hall(args: argparse.Namespace) -> dict[str, Any]:
    """Home Assistant running the hall (``ha_1000``, recorder on SQLite); with ``--recorder
    postgresql`` a second run of the same hall with the recorder on a real PostgreSQL server
    (``ha_1000_postgresql``), one run each, and the two side by side."""
    from . import ha_run

    small = args.small
    scenario = ROOT / "scenarios" / ("demo.yaml" if small else "hall-1000.yaml")
    recorders = ["sqlite", "postgresql"] if args.recorder == "postgresql" else ["sqlite"]
    out: dict[str, Any] = {}
    for recorder in recorders:
        key = "ha_1000" if recorder == "sqlite" else f"ha_1000_{recorder}"
        out[key] = ha_run.run(
            scenario,
            args.ha_minutes,
            settle_s=5.0 if small else 30.0,
            warm_s=10.0 if small else 60.0,
            recorder=recorder,
        )
        out[key]["scenario"] = scenario.name
    if "ha_1000_postgresql" in out:
        out["recorder_comparison"] = _recorder_comparison(out["ha_1000"], out["ha_1000_postgresql"])
    return out


def _recorder_comparison(sqlite: dict[str, Any], postgresql: dict[str, Any]) -> dict[str, Any]:
    """The figures that concern the recorder, SQLite's run beside PostgreSQL's."""
    keys = (
        "cpu_pct",
        "database_server_cpu_pct",
        "loop_lag_p99_ms",
        "loop_lag_max_ms",
        "state_writes_per_s",
        "recorder_commit",
        "recorder_mb_per_day",
        "rss_added_mb",
        "load_average_1min",
    )
    return {
        "sqlite": {k: sqlite.get(k) for k in keys},
        "postgresql": {k: postgresql.get(k) for k in keys},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/benchmark", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rounds", type=int, default=20, help="repetitions per timing")
    parser.add_argument("--commands", type=int, default=40, help="commands timed per plant")
    parser.add_argument(
        "--ha-minutes",
        type=float,
        default=10.0,
        help="minutes Home Assistant runs the 1,000-circuit hall (0: skip)",
    )
    parser.add_argument(
        "--recorder",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="postgresql: Home Assistant runs the hall a second time with its recorder on a "
        "real PostgreSQL server (ha_1000_postgresql, recorder_comparison); SQLite's run stays",
    )
    parser.add_argument(
        "--ha-only",
        action="store_true",
        help="only Home Assistant running the hall (ha_1000; with --recorder, both runs)",
    )
    parser.add_argument("--small", action="store_true", help="small plants only (the test)")
    parser.add_argument(
        "--scaling-only", action="store_true", help="skip the figures of earlier issues"
    )
    parser.add_argument(
        "--engine-only",
        action="store_true",
        help="only the engine figures: forecast refresh, plan, evaluation (no Modbus, no HA)",
    )
    parser.add_argument(
        "--baseline-only",
        action="store_true",
        help="only the 50-device comparison: Home Assistant's modbus against the integration",
    )
    args = parser.parse_args()
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("homeassistant").setLevel(logging.ERROR)
    started = time.perf_counter()
    report = _scaling(args)
    if not (
        args.small or args.scaling_only or args.engine_only or args.baseline_only or args.ha_only
    ):
        report.update(_legacy(args.rounds))
    report["benchmark_wall_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for section, rows in report.items():
        print(f"== {section}")
        for row in rows if isinstance(rows, list) else [rows]:
            text = "  ".join(f"{k}={v}" for k, v in row.items()) if isinstance(row, dict) else row
            print(f"  {text}")


if __name__ == "__main__":
    main()
