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
  utilisation). Every criterion but the moves belongs to one interval, so the intervals are
  solved in turn (moves counted against the interval before): one 36 h horizon as one MILP
  did not finish in a minute, the sequence takes seconds.
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


class _Rows:
    """Constraint rows collected one by one (sparse)."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.vals: list[float] = []
        self.lo: list[float] = []
        self.hi: list[float] = []

    def add(self, entries: list[tuple[int, float]], low: float, high: float) -> None:
        r = len(self.lo)
        for col, v in entries:
            self.rows.append(r)
            self.cols.append(col)
            self.vals.append(v)
        self.lo.append(low)
        self.hi.append(high)

    def constraint(self, nvar: int) -> LinearConstraint:
        a = sparse.csr_array((self.vals, (self.rows, self.cols)), shape=(len(self.lo), nvar))
        return LinearConstraint(a, np.array(self.lo), np.array(self.hi))


def solve_oracle(
    scenario: Scenario,
    *,
    grid_s: float = 900.0,
    sub_periods: int = 3,
    noise_allowance: float = 0.005,
    time_limit_s: float = 60.0,
    demand: FloatArray | None = None,
) -> OracleResult:
    """Solve the oracle for ``scenario`` and replay its schedule on the simulator.

    Every criterion but the moves is a sum over intervals of terms of one interval's
    assignment (interruptions and failing load at its end, its seconds above a limit, its
    peak), so the intervals are solved one after the other, each exactly (HiGHS), with the
    moves counted against the interval before: the first criteria are optimal on the grid, the
    move count is a good schedule, not a proven minimum. ``noise_allowance``: fraction of each
    continuous limit kept free for the per-step noise the sub-period means smooth away (the
    replay measures what really happens). ``time_limit_s`` bounds the whole solve.
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
    mpdu_ats = {m.id: m.ats for m in sc.mpdus}
    elements = [*(a.id for a in sc.ats), *(m.id for m in sc.mpdus)]
    rating = {a.id: a.rating_a for a in sc.ats} | {m.id: m.rating_a for m in sc.mpdus}
    circuits = list(sc.circuits)
    wear_at = {w.failure_s: w.target for w in sc.wear_events if 0.0 < w.failure_s < sc.duration_s}
    prev = {c.id: c.paths[0] for c in circuits}
    schedule: list[tuple[float, dict[str, str]]] = []
    planned_moves = 0
    planned_over = 0.0
    n_vars = 0
    status = "optimal"
    for k in range(k_n):
        st = states[k]
        # End of this interval: what the next change of plant state costs.
        hit = _hit_mpdus(sc, st, states[k + 1]) if k + 1 < k_n else set()
        target = wear_at.get(ends[k]) if k + 1 < k_n else None
        j_fail = max(0, min(n_steps, round(ends[k] / dt) - 1))
        xkeys: list[tuple[int, str]] = []
        ub: list[float] = []
        cost: list[float] = []
        dark: set[int] = set()
        for ci, c in enumerate(circuits):
            live = [p for p in c.paths if st.mpdu_live[p]]
            if not live:
                dark.add(ci)
            for p in c.paths:
                xkeys.append((ci, p))
                ub.append(1.0 if (p in live or not live) else 0.0)
                w = W_MOVE if p != prev[c.id] else 0.0
                if p in hit:
                    w += W_INTERRUPTION
                if target is not None and (p == target or mpdu_ats[p] == target):
                    w += W_FAILING_AMP * float(dem[j_fail, ci])
                cost.append(w)
        nx = len(xkeys)
        j0 = min(n_steps, round(bounds_t[k] / dt))
        j1 = max(j0 + 1, min(n_steps + 1, round(ends[k] / dt)))
        chunks = np.array_split(np.arange(j0, j1), min(sub_periods, j1 - j0))
        # z[j]: sub-period j spends its seconds above a limit; u: the interval's peak use.
        z0, u_id = nx, nx + len(chunks)
        nvar = u_id + 1
        n_vars += nvar
        share = lengths[k] / (j1 - j0)
        c_vec = np.array([*cost, *(W_OVER_S * share * len(ch) for ch in chunks), W_PEAK])
        ub_vec = np.array([*ub, *([1.0] * len(chunks)), np.inf])
        integrality = np.ones(nvar)
        integrality[u_id] = 0
        rows = _Rows()
        by_circuit: dict[int, list[int]] = {}
        for i, (ci, _) in enumerate(xkeys):
            by_circuit.setdefault(ci, []).append(i)
        for idx in by_circuit.values():
            rows.add([(i, 1.0) for i in idx], 1.0, 1.0)
        for jz, chunk in enumerate(chunks):
            d = dem[chunk].mean(axis=0)
            for e in elements:
                entries = [
                    (i, float(d[ci]))
                    for i, (ci, p) in enumerate(xkeys)
                    if ub[i] > 0 and ci not in dark and (p == e or mpdu_ats[p] == e)
                ]
                if not entries:
                    continue
                most = sum(v for _, v in {xkeys[i][0]: (i, v) for i, v in entries}.values())
                cap = CONTINUOUS_FRACTION * rating[e] * (1.0 - noise_allowance)
                if most > cap:
                    rows.add([*entries, (z0 + jz, -(most - cap))], -np.inf, cap)
                if most > 0.3 * rating[e]:
                    rows.add([*entries, (u_id, -rating[e])], -np.inf, 0.0)
        left = max(1.0, time_limit_s - (time.perf_counter() - started))
        res = milp(
            c_vec,
            constraints=rows.constraint(nvar),
            integrality=integrality,
            bounds=Bounds(np.zeros(nvar), ub_vec),
            options={"time_limit": min(left, 10.0), "mip_rel_gap": 1e-6, "disp": False},
        )
        assign = dict(prev)
        if res.x is None:
            status = "no solution"
        else:
            if res.status != 0 and status == "optimal":
                status = "time limit"
            for i, (ci, p) in enumerate(xkeys):
                if res.x[i] > 0.5:
                    assign[circuits[ci].id] = p
            planned_over += sum(
                float(round(res.x[z0 + jz])) * share * len(ch) for jz, ch in enumerate(chunks)
            )
        planned_moves += sum(1 for c in circuits if assign[c.id] != prev[c.id])
        prev = assign
        schedule.append((bounds_t[k], assign))
    metrics = replay(sc, schedule)
    return OracleResult(
        status=status,
        grid_s=grid_s,
        intervals=k_n,
        variables=n_vars,
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
