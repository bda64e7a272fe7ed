"""``python -m benchmarks``: every figure the issues ask for, printed as a table (or JSON)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from . import engine, telemetry

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/benchmark", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rounds", type=int, default=20, help="repetitions per timing")
    args = parser.parse_args()
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    scenarios = ROOT / "scenarios"
    report = {
        "telemetry": telemetry.run(
            [scenarios / "demo.yaml", scenarios / "quiet-week.yaml"], args.rounds
        ),
        "forecasting": [engine.forecasting(scenarios / "quiet-week.yaml", args.rounds)],
        "planning": engine.planning((30, 100, 250), max(1, args.rounds // 5)),
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
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for section, rows in report.items():
        print(f"== {section}")
        for row in rows:
            print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
