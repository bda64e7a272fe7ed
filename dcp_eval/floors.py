"""The engine study's floors (issues 10 and 24): two oracles, and never worse than doing nothing.

Kept apart from the study's runner (``study.py``) so the rules can be read, tested on small
synthetic rows and re-applied to earlier runs' JSON without running anything.

A row holds the engine's, the reactive baseline's and the perfect-knowledge oracle's figures
(``interruptions``, ``load_on_failing_at_failure_a``, ``over_limit_s``, ``max_utilization``),
and since issue 24 also ``drain_by``: the oracle with the failure's time unknown, i.e. the best
schedule that has emptied the failing unit by the engine's own drain deadline (``drain_by.py``).

* **Perfect floors** (everywhere): ``fail`` = load on the failing unit at failure where the
  oracle leaves none (``fail(oracle over limit)``: the oracle empties it only by running longer
  above a limit than the engine did: a note, not a miss); ``over`` = more than 10 min above a
  continuous limit beyond the oracle's; ``peak90`` = an element above 90 % of its rating where
  the reactive baseline stays lower.
* **Information-limited**: ``drain_by`` itself misses a perfect floor, so no schedule that
  drains by the engine's deadline meets it. The engine then must match ``drain_by`` instead
  (``int>drain_by``: more interruptions; ``over>drain_by``: more than 10 min above a limit
  beyond it; ``peak90`` against the higher of the reactive and ``drain_by`` peaks; the perfect
  misses are shown as notes, e.g. ``over(info-limited)``), and it must have raised a decision
  needed before the failure (``no-decision``). Where the engine met the perfect floors there
  anyway, that is the issue's first alternative ("meets the perfect oracle's floors"): the
  missing decision is shown as a note (``no-decision(perfect floors met)``), not a miss.
* **Never worse than doing nothing** (per class, sums): the engine's interruptions, amps on
  failing units at failure and seconds above a limit at most the reactive baseline's.

The engine's drain deadline for ``drain_by`` (:func:`engine_deadlines`): the last value it held
before the unit failed (the deadline never recedes while an alert lasts, so that is the
earliest of the last alert), not before the tick it was set (a deadline already past when set
asks for a drain no policy with that knowledge could have completed), nor after the failure (a
drain by the failure is the perfect oracle's). A failing unit for which the engine never held a
deadline (it saw no risk) gets no ``drain_by``: not seeing the wear is the engine's miss, so
the perfect floors apply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from dcp_sim.scenario import Scenario

__all__ = [
    "PEAK_LIMIT",
    "TARGET_OVER_S",
    "check_targets",
    "decision_raised",
    "engine_deadlines",
    "information_limited",
    "is_miss",
    "perfect_misses",
    "worse_than_reactive",
]

TARGET_OVER_S: Final = 600.0
PEAK_LIMIT: Final = 0.9
REACTIVE_KEYS: Final = (
    ("interruptions", "int"),
    ("load_on_failing_at_failure_a", "failA"),
    ("over_limit_s", "overS"),
)


def is_miss(label: str) -> bool:
    """A label without parentheses is a missed floor; ``x(...)`` is a note."""
    return "(" not in label


def perfect_misses(e: Mapping[str, Any], o: Mapping[str, Any], r: Mapping[str, Any]) -> list[str]:
    """The perfect oracle's floors that figures ``e`` miss (``o`` oracle, ``r`` reactive)."""
    out: list[str] = []
    if o["load_on_failing_at_failure_a"] <= 0.5 and e["load_on_failing_at_failure_a"] > 0.5:
        # Where the oracle empties the failing unit only by running something above its
        # continuous limit longer than we did, that is a trade the engine must not make (it
        # never pushes an element over its limit): shown, not counted as a miss.
        traded = o["over_limit_s"] > e["over_limit_s"]
        out.append("fail(oracle over limit)" if traded else "fail")
    if e["over_limit_s"] > o["over_limit_s"] + TARGET_OVER_S:
        out.append("over")
    if e["max_utilization"] > PEAK_LIMIT and e["max_utilization"] > r["max_utilization"] + 0.005:
        out.append("peak90")
    return out


def information_limited(row: Mapping[str, Any]) -> bool:
    """Whether ``drain_by`` at the engine's deadline misses a perfect floor itself (False when
    the row has no ``drain_by``: skipped, no deadline, or written before issue 24)."""
    db = row.get("drain_by")
    if db is None:
        return False
    return any(is_miss(m) for m in perfect_misses(db, row["oracle"], row["reactive"]))


def decision_raised(row: Mapping[str, Any]) -> bool:
    """Whether the engine asked a person about draining a unit it held a drain deadline for,
    before that unit failed (a relief question about an overloaded element does not count: the
    information-limited floors are about the drain; rows written before relief questions
    existed carry no ``kind`` and are drain questions)."""
    failures = {unit: d["failure_s"] for unit, d in (row.get("drain_deadlines") or {}).items()}
    return any(
        d.get("kind", "drain") == "drain"
        and float(d.get("seen_s", math.inf)) < failures.get(d.get("element"), -math.inf)
        for d in row.get("decisions_needed") or []
    )


def check_targets(row: Mapping[str, Any]) -> list[str]:
    """The floors this scenario misses, with notes (see the module's docstring); a row misses
    a floor when a label without parentheses is in the list."""
    e, o, r = row["engine"], row["oracle"], row["reactive"]
    out = perfect_misses(e, o, r)
    if not information_limited(row):
        return out
    db = row["drain_by"]
    if any(is_miss(m) for m in out):
        out = [f"{m}(info-limited)" if is_miss(m) else m for m in out]
        if e["interruptions"] > db["interruptions"]:
            out.append("int>drain_by")
        if e["over_limit_s"] > db["over_limit_s"] + TARGET_OVER_S:
            out.append("over>drain_by")
        peak = max(r["max_utilization"], db["max_utilization"])
        if e["max_utilization"] > PEAK_LIMIT and e["max_utilization"] > peak + 0.005:
            out.append("peak90")
    if not decision_raised(row):
        # Issue 24's "Done when": a row meets the perfect floors, or is information-limited,
        # within drain_by's and with the decision raised. Where the engine met the perfect
        # floors without asking, a plan within the limits did exist for it: shown, not a miss.
        missed = any(is_miss(m) for m in perfect_misses(e, o, r))
        out.append("no-decision" if missed else "no-decision(perfect floors met)")
    return out


def worse_than_reactive(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Per class (``row["class"]``): the sums where the engine is worse than the reactive
    baseline (interruptions, amps on failing units at failure, seconds above a limit); an
    empty list: never worse."""
    by: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by.setdefault(row["class"], []).append(row)
    out: dict[str, list[str]] = {}
    for cls, rs in by.items():
        out[cls] = []
        for key, label in REACTIVE_KEYS:
            mine = sum(float(x["engine"][key]) for x in rs)
            base = sum(float(x["reactive"][key]) for x in rs)
            if mine > base + 1e-6:
                out[cls].append(f"{label} {mine:g}>{base:g}")
    return out


def engine_deadlines(
    scenario: Scenario, changes: Mapping[str, Sequence[tuple[float, float | None]]]
) -> dict[str, dict[str, float | None]]:
    """Per unit failing in the evaluated period: its failure, the engine's first and final
    drain deadline before it, the tick the final one was set, and ``at_s``, the time
    ``drain_by`` must empty it by (None: the engine held no deadline). ``changes``: the
    harness' ``Evaluation.drain_deadlines`` (scenario seconds)."""
    out: dict[str, dict[str, float | None]] = {}
    for w in scenario.wear_events:
        if not 0.0 < w.failure_s <= scenario.duration_s:
            continue
        held: list[tuple[float, float]] = [
            (t, v) for t, v in changes.get(w.target, ()) if t < w.failure_s and v is not None
        ]
        entry: dict[str, float | None] = {
            "failure_s": w.failure_s,
            "first_s": None,
            "final_s": None,
            "set_s": None,
            "at_s": None,
        }
        if held:
            set_s, final = held[-1]
            entry |= {
                "first_s": held[0][1],
                "final_s": final,
                "set_s": set_s,
                "at_s": min(w.failure_s, max(final, set_s, w.onset_s + scenario.step_s)),
            }
        out[w.target] = entry
    return out
