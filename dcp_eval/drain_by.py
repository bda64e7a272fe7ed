"""``python -m dcp_eval.drain_by``: how early would a policy have to know a failure's time?

The oracle (``oracle.py``) knows when a unit fails, so it may keep the unit loaded until just
before. A policy that only knows the failure is *somewhere ahead* must empty the unit earlier,
and on a tight plant its receivers then carry the load longer. This module asks the oracle the
question with that knowledge taken away: the fewest seconds above a continuous limit of any
schedule that has emptied the failing unit by time X (every wearing unit is made to fail at X
instead, its repair kept at the same moment, the rest of the scenario unchanged). Read against
the issue's floors it says how close to the true failure a drain must come to meet them, i.e.
whether a miss is the engine's or the price of not knowing the time to failure.
``dcp_eval.study`` runs it at the engine's own drain deadline (issue 24: a scenario where even
that misses a floor is *information-limited*, see ``floors.py``).

Example: ``scripts/run python -m dcp_eval.drain_by tight 8 --at-h 12 13 14 14.5 15``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace

from dcp_sim.scenario import Event, Scenario, WearEvent

from .generator import HARD_CLASSES, generate_hard_scenario
from .oracle import FloatArray, OracleResult, solve_oracle

__all__ = ["drained_by", "main"]


def drained_by(
    scenario: Scenario,
    at_s: float | Mapping[str, float],
    *,
    time_limit_s: float = 60.0,
    demand: FloatArray | None = None,
) -> OracleResult:
    """The oracle on ``scenario`` with every wearing unit failing at ``at_s`` (scenario
    seconds) and repaired when it was going to be: the best schedule that has emptied it by
    then. A mapping gives each unit its own time (units it does not name keep their failure).
    ``at_s`` must lie after the wear's onset. ``demand``: the scenario's
    ``oracle.demand_matrix``, when the caller has it (the wear's time does not change it)."""
    events: list[Event] = []
    for ev in scenario.events:
        if not isinstance(ev, WearEvent):
            events.append(ev)
            continue
        at = at_s.get(ev.target) if isinstance(at_s, Mapping) else at_s
        if at is None:
            events.append(ev)
            continue
        if not ev.onset_s < at:
            raise ValueError(f"{ev.target}: {at:.0f} s is not after its wear's onset")
        repair = None
        if ev.repair_after_s is not None:
            repair = ev.failure_s + ev.repair_after_s - at
        events.append(replace(ev, failure_s=at, repair_after_s=repair))
    return solve_oracle(
        replace(scenario, events=tuple(events)), time_limit_s=time_limit_s, demand=demand
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print, for each X, the oracle's figures when the failing unit must be empty by X."""
    ap = argparse.ArgumentParser(prog="python -m dcp_eval.drain_by", description=__doc__)
    ap.add_argument("cls", choices=HARD_CLASSES)
    ap.add_argument("seed", type=int)
    ap.add_argument("--at-h", type=float, nargs="+", required=True, help="hours into the run")
    args = ap.parse_args(argv)
    sc = generate_hard_scenario(args.seed, args.cls)
    fails = ", ".join(f"{w.target} at {w.failure_s / 3600:.2f} h" for w in sc.wear_events)
    print(f"{sc.name}: {fails}")
    for x in args.at_h:
        m = drained_by(sc, x * 3600.0).metrics
        print(
            f"empty by {x:5.2f} h: {m['over_limit_s']:6.0f} s above a limit, "
            f"{m['load_on_failing_at_failure_a']:.1f} A on the unit at X, "
            f"peak {m['max_utilization']:.3f}, {m['interruptions']} interruptions"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
