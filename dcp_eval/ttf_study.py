"""How good is the detector's time to failure? Measured on the generated wear classes.

``python -m dcp_eval.ttf_study`` (inside the environment) builds the
:func:`~dcp_eval.generator.generate_wear_spec` scenarios of the wear classes, runs the simulator
through history and the evaluated period with the polls the harness uses (5 min of history,
then 60 s), feeds the wearing unit's readings to a fresh :class:`DegradationMonitor` exactly as
the policy does, and asks it for its time to failure at 25, 50 and 75 % of the wear window
(onset to failure). It reports, per fraction, how many estimates exist (the alert is on), the
median absolute error of the median estimate, of the conservative (P10) one, and how often the
P10-P90 band holds the true time to failure (and how often the P10 is not later than it, which
is what plans rely on).

No engine policy runs here (no drain): the wear signals do not depend on the unit's load (the
temperature model is the excess over what load and room explain), so the monitor sees what it
would see in the harness. ``scripts/evaluate`` and ``dcp_eval.wear_classes`` measure the alerts,
lead times and drains with the whole engine.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from custom_components.datacenter_power.engine.degradation import (
    DegradationMonitor,
    HealthSample,
)
from dcp_sim.plant import Plant
from dcp_sim.scenario import Scenario, load_scenario, parse_scenario

from .generator import WearClass, generate_wear_spec
from .harness import epoch0, observation_from_telemetry, topology_from_scenario

__all__ = ["FRACTIONS", "WearRun", "main", "record_run", "score"]

FRACTIONS = (0.25, 0.5, 0.75)


@dataclass(frozen=True, slots=True)
class WearRun:
    """The wearing unit's readings of one generated scenario, with the truth."""

    name: str
    target: str
    kind: str
    onset_s: float
    """Epoch seconds (the monitor's clock)."""
    failure_s: float
    exponent: float
    samples: tuple[HealthSample, ...]


def record_run(
    seed: int, wear_class: WearClass, *, history_h: float = 14 * 24.0, duration_h: float = 60.0
) -> WearRun:
    """Simulate one generated wear scenario and keep the target's health samples."""
    spec = generate_wear_spec(seed, wear_class, history_h=history_h, duration_h=duration_h)
    return record_scenario(parse_scenario(spec, source=spec["name"]))


def record_scenario(sc: Scenario) -> WearRun:
    """Simulate a scenario up to its first wear failure; keep the target's health samples."""
    event = sc.wear_events[0]
    topo = topology_from_scenario(sc)
    t0 = epoch0(sc)
    plant = Plant(sc)
    history_poll = max(sc.step_s, round(300.0 / sc.step_s) * sc.step_s)
    poll = max(sc.step_s, round(60.0 / sc.step_s) * sc.step_s)
    samples: list[HealthSample] = []
    ambient = math.nan
    while True:
        t = plant.t_s
        obs = observation_from_telemetry(plant.telemetry(), t0, topo)
        if math.isfinite(obs.ambient_c):
            ambient = obs.ambient_c
        e = obs.elements[event.target]
        if e.reachable and math.isfinite(ambient):
            samples.append(HealthSample.of(obs.t_s, e, topo.rating_a(e.id), ambient))
        if t >= event.failure_s or t >= sc.duration_s - 1e-6:
            break
        plant.advance_to(min(t + (history_poll if t < 0 else poll), sc.duration_s))
        if plant.t_s <= t:
            plant.step()
    return WearRun(
        name=sc.name,
        target=event.target,
        kind="ats" if event.kind.startswith("ats") else "mpdu",
        onset_s=t0 + event.onset_s,
        failure_s=t0 + event.failure_s,
        exponent=event.precursor_exponent,
        samples=tuple(samples),
    )


def replay(run: WearRun) -> dict[float, dict[str, Any]]:
    """Feed a fresh monitor; its estimate at each fraction of the wear window."""
    mon = DegradationMonitor(run.target, "ats" if run.kind == "ats" else "mpdu")
    window = run.failure_s - run.onset_s
    marks = {f: run.onset_s + f * window for f in FRACTIONS}
    out: dict[float, dict[str, Any]] = {}
    pending = sorted(marks.items(), key=lambda kv: kv[1])
    for s in run.samples:
        while pending and s.t_s >= pending[0][1]:
            f, t = pending.pop(0)
            a = mon.assess(t)
            out[f] = {
                "truth_h": (run.failure_s - t) / 3600.0,
                "alert": a.alert,
                "p50_h": None if a.time_to_failure_s is None else a.time_to_failure_s / 3600.0,
                "p10_h": None
                if a.time_to_failure_low_s is None
                else a.time_to_failure_low_s / 3600.0,
                "p90_h": None
                if a.time_to_failure_high_s is None
                else a.time_to_failure_high_s / 3600.0,
            }
        mon.observe(s)
    return out


def score(rows: Sequence[dict[float, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per fraction: estimates, median |error| (median and P10, hours, and relative to the
    truth), band coverage and how often the P10 is not later than the truth."""
    summary: dict[str, dict[str, Any]] = {}
    for f in FRACTIONS:
        est = [r[f] for r in rows if f in r and r[f]["alert"] and r[f]["p50_h"] is not None]
        n_all = sum(1 for r in rows if f in r)
        if not est:
            summary[f"{f:.2f}"] = {"runs": n_all, "estimates": 0}
            continue
        truth = np.array([e["truth_h"] for e in est])
        p50 = np.array([e["p50_h"] for e in est])
        p10 = np.array([e["p10_h"] for e in est])
        p90 = np.array([e["p90_h"] for e in est])
        summary[f"{f:.2f}"] = {
            "runs": n_all,
            "estimates": len(est),
            "mae_p50_h": round(float(np.median(np.abs(p50 - truth))), 2),
            "mae_p50_rel": round(float(np.median(np.abs(p50 - truth) / truth)), 2),
            "mae_p10_h": round(float(np.median(np.abs(p10 - truth))), 2),
            "coverage_p10_p90": round(float(np.mean((p10 <= truth) & (truth <= p90))), 2),
            "p10_not_late": round(float(np.mean(p10 <= truth)), 2),
        }
    return summary


def trace(
    run: WearRun, step_s: float = 1800.0
) -> list[tuple[float, bool, float | None, float | None]]:
    """(hours before the failure, alert, P10 h, P50 h) every ``step_s`` of the wear window."""
    mon = DegradationMonitor(run.target, "ats" if run.kind == "ats" else "mpdu")
    out: list[tuple[float, bool, float | None, float | None]] = []
    mark = run.onset_s + step_s
    for s in run.samples:
        while s.t_s >= mark and mark <= run.failure_s:
            a = mon.assess(mark)
            low, mid = a.time_to_failure_low_s, a.time_to_failure_s
            out.append(
                (
                    round((run.failure_s - mark) / 3600.0, 2),
                    a.alert,
                    None if low is None else round(low / 3600.0, 2),
                    None if mid is None else round(mid / 3600.0, 2),
                )
            )
            mark += step_s
        mon.observe(s)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: one line per scenario (``--rows``) and the summary as JSON; with
    ``--scenario FILE``, the estimate every half hour of that scenario's first wear."""
    parser = argparse.ArgumentParser(prog="python -m dcp_eval.ttf_study", description=__doc__)
    parser.add_argument("--seeds", default="1-20", help="e.g. 1-20 or 3,5,8")
    parser.add_argument("--classes", default="ats_wear,mpdu_wear")
    parser.add_argument("--rows", action="store_true", help="print every scenario's estimates")
    parser.add_argument("--scenario", default=None, help="a scenario file with a wear event")
    args = parser.parse_args(argv)
    if args.scenario is not None:
        for point in trace(record_scenario(load_scenario(args.scenario))):
            keys = ("to_failure_h", "alert", "p10_h", "p50_h")
            print(json.dumps(dict(zip(keys, point, strict=True))))
        return 0
    seeds: list[int] = []
    for part in args.seeds.split(","):
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    rows: list[dict[float, dict[str, Any]]] = []
    for cls in args.classes.split(","):
        if cls not in ("ats_wear", "mpdu_wear"):
            parser.error(f"not a wear class: {cls!r}")
        wear_class: WearClass = "ats_wear" if cls == "ats_wear" else "mpdu_wear"
        for seed in seeds:
            run = record_run(seed, wear_class)
            row = replay(run)
            rows.append(row)
            if args.rows:
                cells = {
                    f"{f:.2f}": {
                        k: v if not isinstance(v, float) else round(v, 1) for k, v in e.items()
                    }
                    for f, e in row.items()
                }
                print(json.dumps({"name": run.name, "p": run.exponent, **cells}), flush=True)
    print(json.dumps(score(rows), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
