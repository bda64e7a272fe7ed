"""The evaluation metrics of ``docs/scenario-format.md`` ("Metrics"), computed from a run.

Plant-side counters (interruptions, trips, over-limit time, switch operations, unserved energy)
come from the simulator; everything about the engine's judgement is computed here:

* an *alert episode* starts whenever a component's alert turns on during the evaluated period;
* ``failures``: one entry per ``*_wear`` event; ``first_alert_s`` is the first moment at or after
  the event's onset (and before its failure) when the target's alert was on;
* ``predicted_failures``: failures inside the period alerted at least 15 minutes before;
* ``false_alarms``: episodes on a component that is not, within 48 h after the episode starts,
  the target of a ``*_wear`` event (between its onset and its repair) nor an ATS/MPDU on the
  normal path of a ``load_trend`` target (between its onset and its end);
* ``forecast_mape_1h``: mean |forecast - actual| / actual over the 1-hour-ahead ATS/MPDU load
  forecasts whose element kept the same circuits in between (None for ``reactive``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from dcp_sim.scenario import LoadTrendEvent, Scenario, WearEvent

from .harness import Evaluation

__all__ = ["PREDICTION_LEAD_S", "alert_episodes", "compute_metrics", "false_alarm_episodes"]

PREDICTION_LEAD_S: Final = 15 * 60.0
FALSE_ALARM_WINDOW_S: Final = 48 * 3600.0


@dataclass(frozen=True, slots=True)
class Episode:
    """One alert episode: when it started and (if it did) ended."""

    component: str
    start_s: float
    end_s: float | None


def alert_episodes(alerts: dict[str, list[tuple[float, bool]]]) -> list[Episode]:
    """Episodes from the per-component (time, alert) change lists."""
    out: list[Episode] = []
    for comp, changes in alerts.items():
        start: float | None = None
        for t, on in changes:
            if on and start is None:
                start = t
            elif not on and start is not None:
                out.append(Episode(comp, start, t))
                start = None
        if start is not None:
            out.append(Episode(comp, start, None))
    out.sort(key=lambda e: (e.start_s, e.component))
    return out


def _justified(scenario: Scenario, component: str, start_s: float) -> bool:
    """Whether an alert starting at ``start_s`` on ``component`` points at a real problem."""
    window_end = start_s + FALSE_ALARM_WINDOW_S
    mpdu_ats = {m.id: m.ats for m in scenario.mpdus}
    normal = {c.id: c.paths[0] for c in scenario.circuits}
    for ev in scenario.events:
        if isinstance(ev, WearEvent) and ev.target == component:
            ends = math.inf if ev.repair_after_s is None else ev.failure_s + ev.repair_after_s
            if ev.onset_s <= window_end and start_s <= ends:
                return True
        elif isinstance(ev, LoadTrendEvent):
            ends = math.inf if ev.end_s is None else ev.end_s
            if not (ev.onset_s <= window_end and start_s <= ends):
                continue
            on_path = {normal[c] for c in ev.targets}
            on_path |= {mpdu_ats[m] for m in list(on_path)}
            if component in on_path:
                return True
    return False


def false_alarm_episodes(scenario: Scenario, episodes: list[Episode]) -> list[Episode]:
    """The episodes that count as false alarms."""
    return [e for e in episodes if not _justified(scenario, e.component, e.start_s)]


def _first_alert(changes: list[tuple[float, bool]], onset_s: float, until_s: float) -> float | None:
    """First time in [onset, until) at which the alert was on."""
    state = False
    for t, on in changes:
        if t > onset_s:
            break
        state = on
    if state:
        return onset_s
    for t, on in changes:
        if onset_s < t < until_s and on:
            return t
    return None


def compute_metrics(ev: Evaluation) -> dict[str, Any]:
    """The metrics object printed by ``scripts/evaluate --json``."""
    sc = ev.scenario
    pm = ev.plant_metrics
    proactive = ev.policy == "proactive"
    failures: list[dict[str, Any]] = []
    predictable = 0
    predicted = 0
    for w in sc.wear_events:
        failed = pm.failed_at_s.get(w.target)
        if failed is not None and not w.failure_s - 1e-6 <= failed < w.failure_s + sc.step_s:
            failed = None  # recorded for another event of the same target
        until = failed if failed is not None else sc.duration_s
        first = _first_alert(ev.alerts.get(w.target, []), w.onset_s, until)
        lead = None if (first is None or failed is None) else failed - first
        if failed is not None and 0.0 <= failed <= sc.duration_s:
            predictable += 1
            if lead is not None and lead >= PREDICTION_LEAD_S:
                predicted += 1
        load = pm.load_on_target_at_failure_a.get(w.target)
        failures.append(
            {
                "target": w.target,
                "kind": w.kind,
                "failed_at_s": failed,
                "first_alert_s": first,
                "lead_time_s": lead,
                "load_on_target_at_failure_a": None if load is None else round(load, 3),
            }
        )
    episodes = alert_episodes(ev.alerts)
    false = false_alarm_episodes(sc, episodes)
    mape: float | None = None
    if proactive:
        errs = [
            abs(p.forecast_a - p.actual_a) / p.actual_a for p in ev.forecast_pairs if p.actual_a > 0
        ]
        mape = round(sum(errs) / len(errs), 5) if errs else None
    return {
        "scenario": sc.name,
        "policy": ev.policy,
        "failures": failures,
        "predictable_failures": predictable,
        "predicted_failures": predicted,
        "false_alarms": len(false),
        "interruptions": pm.interruptions,
        "unserved_energy_wh": round(pm.unserved_energy_wh, 3),
        "breaker_trips": pm.breaker_trips,
        "over_limit_s": round(pm.over_limit_s, 3),
        "max_utilization": round(pm.max_utilization, 5),
        "switch_operations": pm.switch_operations,
        "forecast_mape_1h": mape,
        "wall_s": round(ev.wall_s, 3),
        # Details beyond the spec's keys, for reports and debugging.
        "alert_episodes": [
            {
                "component": e.component,
                "start_s": e.start_s,
                "end_s": e.end_s,
                "false": e in false,
            }
            for e in episodes
        ],
        "actions": [
            {
                "kind": a.kind,
                "target": a.target,
                "reason": a.reason,
                "started_s": a.started_s,
                "finished_s": a.finished_s,
                "ok": a.ok,
                "moves": a.moves,
                "stages": len(a.stages),
                "note": a.note,
            }
            for a in ev.actions
        ],
        "forecast_pairs": len(ev.forecast_pairs) if proactive else 0,
        "band_coverage": _band(ev),
        "engine_errors": ev.errors[:20],
    }


def _band(ev: Evaluation) -> dict[str, Any] | None:
    """Share of element outcomes inside the engine's published P10-P90 band (target ~0.8)."""
    cal = ev.calibration
    if cal is None or cal.coverage is None:
        return None
    return {
        "samples": cal.samples,
        "coverage": round(cal.coverage, 4),
        "below_p90": None if cal.below_p90 is None else round(cal.below_p90, 4),
        "scale": round(cal.scale, 4),
    }
