"""The oracle: the best path assignment over time with perfect knowledge of loads and events.

``scripts/evaluate --oracle`` reports it beside the policy, with the regret (policy - oracle), so a
bad figure can be told apart: the engine's fault (positive regret) or the physics' (the oracle
cannot do better either).

How it is computed:

* **Perfect knowledge.** Every circuit's demand at every physics step is replayed from the
  scenario's seed with the simulator's own load model (``LoadModel``, same seed derivation as the
  plant; a test checks the replay against the plant). Element life (failures, repairs, source
  outages and the ATS transfers they cause) follows from the event list.
* **MILP on a coarse grid** (``scipy.optimize.milp``, HiGHS). Time is cut into intervals of
  ``grid_s`` (15 min), split again at every event time so each interval has one plant state.
  Binary ``x[c, p, k]``: circuit ``c`` draws from its listed path ``p`` during interval ``k``; a
  path through a dead element carries nothing (forced to 0) unless every path of the circuit is
  dead (then the circuit is dark and draws nothing). Each element's load is checked at a few
  sub-periods of every interval (their mean demand) against its continuous limit less a small
  allowance for noise inside the sub-period, relaxable per interval by a binary ``z[k]`` that
  "spends" that interval above the limit. Lexicographic weights: circuits interrupted (on an
  element at the moment it dies, or on an ATS when it transfers) and amps on a failing unit at
  its failure, then seconds above a limit, then SBM moves (and, with a small weight, the peak
  utilisation).
* **Replay.** The solution is executed on the real simulator (``dcp_sim.plant.Plant``): at each
  interval start every circuit is commanded to its planned path (make-before-break; a move onto a
  dead path is skipped). The oracle's metrics are the simulator's own counters, measured exactly
  as the policy's, so the regret compares like with like.

The oracle is an achievable schedule, i.e. an upper bound on the true optimum (a finer grid or a
longer solve could only do better); with the default grid it is within a few minutes of it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from dcp_sim.loads import LoadModel
from dcp_sim.plant import CommandRejected, Plant
from dcp_sim.scenario import Scenario, SourceOutageEvent, SuddenFailureEvent, WearEvent

__all__ = [
    "OracleResult",
    "demand_matrix",
    "oracle_metrics_of",
    "policy_failing_load",
    "regret",
    "solve_oracle",
]

type FloatArray = npt.NDArray[np.float64]

CONTINUOUS_FRACTION: Final = 0.8
"""The scenario format's continuous limit (80 % of rating): a property of the score, not of the
plant's physics."""
W_INTERRUPTION: Final = 2e5
W_FAILING_AMP: Final = 2e4
W_OVER_S: Final = 5.0
W_MOVE: Final = 1.0
W_PEAK: Final = 50.0
"""Weight of the peak utilisation (1.0 = 100 %): 2 % of peak is worth one move."""


@dataclass(frozen=True, slots=True)
class OracleResult:
    """The oracle's schedule and what it achieved on the simulator."""

    status: str
    """``optimal``, ``time limit`` (best found, not proven) or ``no solution`` (normal paths)."""
    grid_s: float
    intervals: int
    variables: int
    planned_moves: int
    planned_over_limit_s: float
    metrics: dict[str, Any]
    """interruptions, load_on_failing_at_failure_a, over_limit_s, max_utilization,
    switch_operations, breaker_trips, unserved_energy_wh."""
    wall_s: float
    schedule: tuple[tuple[float, Mapping[str, str]], ...] = field(repr=False, default=())
    """(interval start s, circuit -> path) for every interval."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form (without the schedule)."""
        return {
            **self.metrics,
            "status": self.status,
            "grid_s": self.grid_s,
            "intervals": self.intervals,
            "variables": self.variables,
            "planned_moves": self.planned_moves,
            "planned_over_limit_s": round(self.planned_over_limit_s, 1),
            "wall_s": round(self.wall_s, 3),
        }


# ------------------------------------------------------------------------------------------
# Perfect knowledge
# ------------------------------------------------------------------------------------------


def demand_matrix(scenario: Scenario) -> FloatArray:
    """Every circuit's demand at every physics step of the evaluated period, shape
    (steps + 1, circuits), row ``j`` at ``t = j * step``. Same draws as ``Plant(scenario)``."""
    sc = scenario
    seeds = np.random.SeedSequence([sc.seed, 0x91A47]).spawn(3)
    model = LoadModel(sc, np.random.default_rng(seeds[0]))
    dt = sc.step_s
    t0 = -sc.history_s
    n_hist = round(sc.history_s / dt)
    n_eval = round(sc.duration_s / dt)
    for k in range(n_hist):
        model.demand(t0 + k * dt)
    return np.vstack([model.demand(t0 + (n_hist + j) * dt) for j in range(n_eval + 1)])


@dataclass(frozen=True, slots=True)
class _PlantState:
    ats_live: dict[str, bool]
    ats_source: dict[str, int]
    mpdu_live: dict[str, bool]


def _state_at(sc: Scenario, t: float) -> _PlantState:
    """Element life at scenario time ``t`` (events that started at or before ``t``)."""
    down: set[str] = set()
    for ev in sc.events:
        match ev:
            case WearEvent():
                end = math.inf if ev.repair_after_s is None else ev.failure_s + ev.repair_after_s
                if ev.failure_s <= t < end:
                    down.add(ev.target)
            case SuddenFailureEvent():
                end = math.inf if ev.repair_after_s is None else ev.at_s + ev.repair_after_s
                if ev.at_s <= t < end:
                    down.add(ev.target)
            case SourceOutageEvent():
                if ev.at_s <= t < ev.at_s + ev.duration_s:
                    down.add(ev.target)
            case _:
                pass
    ats_live: dict[str, bool] = {}
    ats_source: dict[str, int] = {}
    for a in sc.ats:
        src = next((i for i, s in enumerate(a.sources) if s not in down), -1)
        ats_source[a.id] = src
        ats_live[a.id] = a.id not in down and src >= 0
    mpdu_live = {m.id: ats_live[m.ats] and m.id not in down for m in sc.mpdus}
    return _PlantState(ats_live, ats_source, mpdu_live)


def _event_times(sc: Scenario) -> list[float]:
    out: set[float] = set()
    for ev in sc.events:
        match ev:
            case WearEvent():
                out.add(ev.failure_s)
                if ev.repair_after_s is not None:
                    out.add(ev.failure_s + ev.repair_after_s)
            case SuddenFailureEvent():
                out.add(ev.at_s)
                if ev.repair_after_s is not None:
                    out.add(ev.at_s + ev.repair_after_s)
            case SourceOutageEvent():
                out.update((ev.at_s, ev.at_s + ev.duration_s))
            case _:
                pass
    return sorted(t for t in out if 0.0 < t < sc.duration_s)


def _hit_mpdus(sc: Scenario, before: _PlantState, after: _PlantState) -> set[str]:
    """MPDUs whose circuits see an interruption at a change of plant state."""
    hit: set[str] = set()
    ats_hit: set[str] = set()
    for a in sc.ats:
        if not before.ats_live[a.id]:
            continue
        if not after.ats_live[a.id]:
            if sc.bypass_delay_s > sc.ride_through_s:
                ats_hit.add(a.id)
        elif (
            after.ats_source[a.id] != before.ats_source[a.id]
            and a.transfer_time_s > sc.ride_through_s
        ):
            ats_hit.add(a.id)
    for m in sc.mpdus:
        if not before.mpdu_live[m.id]:
            continue
        if m.ats in ats_hit or (
            not after.mpdu_live[m.id] and sc.bypass_delay_s > sc.ride_through_s
        ):
            hit.add(m.id)
    return hit


# ------------------------------------------------------------------------------------------
# The MILP
# ------------------------------------------------------------------------------------------


def solve_oracle(
    scenario: Scenario,
    *,
    grid_s: float = 900.0,
    sub_periods: int = 3,
    noise_allowance: float = 0.015,
    time_limit_s: float = 60.0,
    demand: FloatArray | None = None,
) -> OracleResult:
    """Solve the oracle's MILP for ``scenario`` and replay its schedule on the simulator.

    ``noise_allowance``: fraction of each continuous limit kept free for the per-step noise the
    sub-period means smooth away (the replay measures what really happens).
    """
    started = time.perf_counter()
    sc = scenario
    dt = sc.step_s
    dem = demand_matrix(sc) if demand is None else demand
    n_steps = dem.shape[0] - 1
    bounds_t = sorted(
        {*(float(t) for t in np.arange(0.0, sc.duration_s, grid_s)), *_event_times(sc)}
    )
    k_n = len(bounds_t)
    ends = [*bounds_t[1:], sc.duration_s]
    lengths = np.array(ends) - np.array(bounds_t)
    states = [_state_at(sc, t) for t in bounds_t]
    circuits = [c.id for c in sc.circuits]
    c_index = {c: i for i, c in enumerate(circuits)}
    mpdu_ats = {m.id: m.ats for m in sc.mpdus}
    elements = [*(a.id for a in sc.ats), *(m.id for m in sc.mpdus)]
    rating = {a.id: a.rating_a for a in sc.ats} | {m.id: m.rating_a for m in sc.mpdus}

    # Variables: x[c, p, k] for every listed path, then z[k], then y[c, p, k] (moves), then u.
    xkeys: list[tuple[int, str, int]] = []
    for k in range(k_n):
        for c in sc.circuits:
            for p in c.paths:
                xkeys.append((c_index[c.id], p, k))
    nx = len(xkeys)
    xid = {key: i for i, key in enumerate(xkeys)}
    z0 = nx
    y0 = z0 + k_n
    u_id = y0 + nx
    nvar = u_id + 1
    lb = np.zeros(nvar)
    ub = np.ones(nvar)
    ub[u_id] = np.inf
    ub[y0 : y0 + nx] = np.inf
    integrality = np.zeros(nvar)
    integrality[:nx] = 1
    integrality[z0 : z0 + k_n] = 1
    cost = np.zeros(nvar)
    cost[z0 : z0 + k_n] = W_OVER_S * lengths
    cost[y0 : y0 + nx] = W_MOVE
    cost[u_id] = W_PEAK

    dark = np.zeros((k_n, len(circuits)), dtype=bool)
    for k, st in enumerate(states):
        for c in sc.circuits:
            live = [p for p in c.paths if st.mpdu_live[p]]
            if not live:
                dark[k, c_index[c.id]] = True
                continue
            for p in c.paths:
                if not st.mpdu_live[p]:
                    ub[xid[(c_index[c.id], p, k)]] = 0.0

    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    lo: list[float] = []
    hi: list[float] = []

    def row(entries: list[tuple[int, float]], low: float, high: float) -> None:
        r = len(lo)
        for col, v in entries:
            rows.append(r)
            cols.append(col)
            vals.append(v)
        lo.append(low)
        hi.append(high)

    # One path per circuit and interval.
    for k in range(k_n):
        for c in sc.circuits:
            row([(xid[(c_index[c.id], p, k)], 1.0) for p in c.paths], 1.0, 1.0)
    # Moves: y >= x[k] - x[k-1] (x[-1] = normal path).
    for c in sc.circuits:
        ci = c_index[c.id]
        for p in c.paths:
            for k in range(k_n):
                i = xid[(ci, p, k)]
                if k == 0:
                    init = 1.0 if p == c.paths[0] else 0.0
                    row([(y0 + i, 1.0), (i, -1.0)], -init, np.inf)
                else:
                    row([(y0 + i, 1.0), (i, -1.0), (xid[(ci, p, k - 1)], 1.0)], 0.0, np.inf)
    # Element loads per sub-period.
    feeds: dict[str, list[tuple[int, str]]] = {e: [] for e in elements}
    for c in sc.circuits:
        for p in c.paths:
            feeds[p].append((c_index[c.id], p))
            feeds[mpdu_ats[p]].append((c_index[c.id], p))
    for k in range(k_n):
        j0 = min(n_steps, round(bounds_t[k] / dt))
        j1 = max(j0 + 1, min(n_steps + 1, round(ends[k] / dt)))
        chunks = np.array_split(np.arange(j0, j1), min(sub_periods, j1 - j0))
        for chunk in chunks:
            d = dem[chunk].mean(axis=0)
            d = np.where(dark[k], 0.0, d)
            for e in elements:
                members = [(ci, p) for ci, p in feeds[e] if ub[xid[(ci, p, k)]] > 0]
                if not members:
                    continue
                most = sum(d[ci] for ci in {ci for ci, _ in members})
                cap = CONTINUOUS_FRACTION * rating[e] * (1.0 - noise_allowance)
                entries = [(xid[(ci, p, k)], float(d[ci])) for ci, p in members]
                if most > cap:
                    row([*entries, (z0 + k, -(most - cap))], -np.inf, cap)
                if most > 0.5 * rating[e]:
                    row([*entries, (u_id, -rating[e])], -np.inf, 0.0)
    # Interruptions and amps on failing units at the moment of a change of plant state.
    wear_at = {w.failure_s: w.target for w in sc.wear_events if 0.0 < w.failure_s < sc.duration_s}
    for k in range(1, k_n):
        hit = _hit_mpdus(sc, states[k - 1], states[k])
        for m in hit:
            for ci, p in feeds[m]:
                if p == m:
                    cost[xid[(ci, p, k - 1)]] += W_INTERRUPTION
        target = wear_at.get(bounds_t[k])
        if target is not None:
            j = max(0, min(n_steps, round(bounds_t[k] / dt) - 1))
            for ci, p in feeds[target]:
                cost[xid[(ci, p, k - 1)]] += W_FAILING_AMP * float(dem[j, ci])

    a_mat = sparse.csr_array((vals, (rows, cols)), shape=(len(lo), nvar))
    res = milp(
        cost,
        constraints=LinearConstraint(a_mat, np.array(lo), np.array(hi)),
        integrality=integrality,
        bounds=Bounds(lb, ub),
        options={"time_limit": time_limit_s, "mip_rel_gap": 1e-6, "disp": False},
    )
    schedule: list[tuple[float, dict[str, str]]] = []
    planned_moves = 0
    planned_over = 0.0
    if res.x is not None:
        status = "optimal" if res.status == 0 else "time limit"
        xs = np.round(res.x[:nx]).astype(int)
        for k in range(k_n):
            assign: dict[str, str] = {}
            for c in sc.circuits:
                ci = c_index[c.id]
                for p in c.paths:
                    if xs[xid[(ci, p, k)]]:
                        assign[c.id] = p
                        break
            schedule.append((bounds_t[k], assign))
        planned_moves = round(float(res.x[y0 : y0 + nx].sum()))
        planned_over = float(np.dot(np.round(res.x[z0 : z0 + k_n]), lengths))
    else:
        status = "no solution"
        schedule = [(0.0, {c.id: c.paths[0] for c in sc.circuits})]
    metrics = replay(sc, schedule)
    return OracleResult(
        status=status,
        grid_s=grid_s,
        intervals=k_n,
        variables=nvar,
        planned_moves=planned_moves,
        planned_over_limit_s=planned_over,
        metrics=metrics,
        wall_s=time.perf_counter() - started,
        schedule=tuple(schedule),
    )


# ------------------------------------------------------------------------------------------
# Replay on the simulator
# ------------------------------------------------------------------------------------------


def replay(scenario: Scenario, schedule: list[tuple[float, dict[str, str]]]) -> dict[str, Any]:
    """Execute a path schedule on the simulator; its metrics (same counters as the policy's)."""
    sc = scenario
    plant = Plant(sc)
    plant.advance_to(0.0)
    for t_start, assign in schedule:
        if t_start > plant.t_s + 1e-6:
            plant.advance_to(t_start)
        tel = plant.telemetry()
        for cid, path in assign.items():
            c = tel.circuits[cid]
            if c.paths[c.active_path] == path or not c.path_energized[c.paths.index(path)]:
                continue
            try:
                plant.command_sbm_path(cid, path)
            except CommandRejected:
                continue
    plant.advance_to(sc.duration_s)
    pm = plant.metrics
    failing = sum(
        pm.load_on_target_at_failure_a.get(w.target, 0.0)
        for w in sc.wear_events
        if 0.0 <= pm.failed_at_s.get(w.target, math.inf) <= sc.duration_s
    )
    return {
        "interruptions": pm.interruptions,
        "load_on_failing_at_failure_a": round(failing, 3),
        "over_limit_s": round(pm.over_limit_s, 3),
        "max_utilization": round(pm.max_utilization, 5),
        "switch_operations": pm.switch_operations,
        "breaker_trips": pm.breaker_trips,
        "unserved_energy_wh": round(pm.unserved_energy_wh, 3),
    }


# ------------------------------------------------------------------------------------------
# Regret
# ------------------------------------------------------------------------------------------


def policy_failing_load(metrics: Mapping[str, Any]) -> float:
    """Amps on failing units at their failure, summed, from ``compute_metrics`` output."""
    return round(
        sum(
            float(f["load_on_target_at_failure_a"] or 0.0)
            for f in metrics["failures"]
            if f["failed_at_s"] is not None
        ),
        3,
    )


def oracle_metrics_of(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The policy's figures under the oracle's keys."""
    return {
        "interruptions": metrics["interruptions"],
        "load_on_failing_at_failure_a": policy_failing_load(metrics),
        "over_limit_s": metrics["over_limit_s"],
        "max_utilization": metrics["max_utilization"],
    }


def regret(policy_metrics: Mapping[str, Any], oracle: OracleResult) -> dict[str, float]:
    """Policy minus oracle for interruptions, failing load, seconds over limit, peak use."""
    mine = oracle_metrics_of(policy_metrics)
    return {k: round(float(mine[k]) - float(oracle.metrics[k]), 5) for k in mine}
