"""Generate, evaluate and tabulate wear of unknown shape and healthy units with unusual normals.

``python -m dcp_eval.wear_classes`` (inside the environment: ``scripts/run python -m ...``) builds
the :func:`~dcp_eval.generator.generate_wear_spec` scenarios for the given seeds and classes,
runs each with the proactive engine and the reactive baseline (the same ``run_evaluation`` and
``compute_metrics`` that ``scripts/evaluate`` runs), and prints one row per scenario: the wear's
shape, gains and window, the lead time of the first alert against the window, load left on the
failing unit, false alarms and interruptions of both policies. ``--out DIR`` also writes every
scenario as YAML, so any row can be replayed with ``scripts/evaluate``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from dcp_sim.scenario import parse_scenario

from .generator import WEAR_CLASSES, WearClass, generate_wear_spec
from .harness import run_evaluation
from .metrics import compute_metrics

__all__ = ["evaluate_row", "main"]


def evaluate_row(
    seed: int,
    wear_class: WearClass,
    *,
    history_h: float,
    duration_h: float,
    reactive: bool = True,
    out: Path | None = None,
) -> dict[str, Any]:
    """One scenario, both policies: the figures of one table row."""
    spec = generate_wear_spec(seed, wear_class, history_h=history_h, duration_h=duration_h)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        plain = json.loads(json.dumps(spec, default=str))  # numpy scalars as plain values
        (out / f"{spec['name']}.yaml").write_text(yaml.safe_dump(plain, sort_keys=False))
    scenario = parse_scenario(spec, source=spec["name"])
    pro = compute_metrics(run_evaluation(scenario, "proactive"))
    row: dict[str, Any] = {
        "seed": seed,
        "class": wear_class,
        "false_alarms": pro["false_alarms"],
        "interruptions": pro["interruptions"],
        "wall_s": round(float(pro["wall_s"]), 1),
    }
    wear = [e for e in spec["events"] if str(e["kind"]).endswith("_wear")]
    if wear:
        event = wear[0]
        f = pro["failures"][0]
        onset_s = float(event["onset"].rstrip("m")) * 60.0
        window = float(event["failure"].rstrip("m")) * 60.0 - onset_s
        lead = f["lead_time_s"]
        row.update(
            target=event["target"],
            exponent=event["precursor_exponent"],
            scale=event["precursor_scale"],
            gains=event["precursor_gains"],
            window_h=round(window / 3600.0, 1),
            lead_h=None if lead is None else round(lead / 3600.0, 1),
            lead_fraction=None if lead is None else round(lead / window, 2),
            load_at_failure_a=f["load_on_target_at_failure_a"],
        )
    if reactive and wear:  # without a wear fault the baseline has nothing to compare
        rea = compute_metrics(run_evaluation(scenario, "reactive"))
        row["reactive_interruptions"] = rea["interruptions"]
        row["reactive_load_at_failure_a"] = rea["failures"][0]["load_on_target_at_failure_a"]
    return row


def _fmt(row: dict[str, Any]) -> str:
    gains = row.get("gains")
    short = {"temperature": "t", "ripple": "r", "transfer": "x", "nuisance": "n"}
    g = "" if not gains else " ".join(f"{short[k]}{v:g}" for k, v in gains.items())
    cells = [
        f"{row['class']:<15}",
        f"{row['seed']:>4}",
        f"{row.get('target', '-'):<7}",
        f"{row.get('exponent', '-')!s:>5}",
        f"{row.get('scale', '-')!s:>5}",
        f"{g:<24}",
        f"{row.get('window_h', '-')!s:>6}",
        f"{row.get('lead_h', '-')!s:>6}",
        f"{row.get('lead_fraction', '-')!s:>6}",
        f"{row.get('load_at_failure_a', '-')!s:>6}",
        f"{row['false_alarms']:>3}",
        f"{row['interruptions']:>4}",
        f"{row.get('reactive_interruptions', '-')!s:>4}",
    ]
    return " ".join(cells)


HEADER = (
    "class           seed target      p scale gains (t r x n)          win_h lead_h lead/w"
    " load_A  FA intr rint"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 1 when a wear is predicted late or any false alarm is raised."""
    parser = argparse.ArgumentParser(prog="python -m dcp_eval.wear_classes", description=__doc__)
    parser.add_argument("--seeds", default="1-20", help="e.g. 1-20 or 3,5,8")
    parser.add_argument("--classes", default=",".join(WEAR_CLASSES))
    parser.add_argument("--history-h", type=float, default=14 * 24.0)
    parser.add_argument("--duration-h", type=float, default=60.0)
    parser.add_argument("--no-reactive", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write the scenarios here")
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    args = parser.parse_args(argv)
    seeds: list[int] = []
    for part in args.seeds.split(","):
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    classes = [c for c in args.classes.split(",") if c]
    bad = [c for c in classes if c not in WEAR_CLASSES]
    if bad:
        parser.error(f"unknown class {bad[0]!r} (known: {', '.join(WEAR_CLASSES)})")
    ok = True
    if not args.json:
        print(HEADER, flush=True)
    for wear_class in classes:
        for seed in seeds:
            row = evaluate_row(
                seed,
                wear_class,
                history_h=args.history_h,
                duration_h=args.duration_h,
                reactive=not args.no_reactive,
                out=args.out,
            )
            frac = row.get("lead_fraction", 1.0)
            ok = ok and row["false_alarms"] == 0 and frac is not None and frac >= 0.25
            print(json.dumps(row) if args.json else _fmt(row), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
