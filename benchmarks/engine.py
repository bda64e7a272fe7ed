"""Engine figures: forecaster against Holt-Winters, MILP planner against its greedy fallback,
evaluation wall times, event-loop stall while the policy decides, and failure-to-rebalance time.

Every comparison runs both sides in this process on the same data.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from statsmodels.tsa.holtwinters import ExponentialSmoothing

from custom_components.datacenter_power.engine.forecast import LoadForecaster
from custom_components.datacenter_power.engine.plan import Plan
from custom_components.datacenter_power.engine.planner import plan_migration
from custom_components.datacenter_power.engine.policy import DecisionPolicy, PolicyConfig
from custom_components.datacenter_power.engine.topology import (
    AtsNode,
    CircuitNode,
    MpduNode,
    Topology,
)
from dcp_eval.harness import (
    epoch0,
    observation_from_telemetry,
    run_evaluation,
    topology_from_scenario,
)
from dcp_eval.metrics import compute_metrics
from dcp_sim.plant import Plant
from dcp_sim.scenario import SuddenFailureEvent, load_scenario

type FloatArray = npt.NDArray[np.float64]
DAY = 86400.0


def _mpdu_series(scenario: Path, days: float) -> tuple[FloatArray, FloatArray]:
    """(epoch times, MPDU-1 current) every 5 min over ``days`` of a scenario's history."""
    sc = load_scenario(scenario)
    plant = Plant(sc, start_s=-days * DAY)
    t0 = epoch0(sc)
    times, values = [], []
    while plant.t_s < 0:
        plant.advance_to(plant.t_s + 300)
        tel = plant.telemetry()
        times.append(t0 + tel.t_s)
        values.append(tel.mpdus["mpdu1"].current_a)
    return np.array(times), np.array(values)


def forecasting(scenario: Path, rounds: int) -> dict[str, Any]:
    """Fit + 24 h forecast on 13 days, scored on day 14: ours against Holt-Winters."""
    t, y = _mpdu_series(scenario, 14)
    cut = int(13 * DAY / 300)
    t_fit, y_fit, y_next = t[:cut], y[:cut], y[cut:]
    ours_s, hw_s = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        fc = LoadForecaster(resample_s=900)
        fc.observe_many(t_fit, y_fit)
        ours = fc.forecast(float(t_fit[-1]))
        ours_s.append(time.perf_counter() - started)
    pred_ours = np.array([ours.value_at(float(x)) for x in t[cut:]])
    y15 = y_fit.reshape(-1, 3).mean(axis=1)  # the same 15-minute resampling
    for _ in range(max(1, rounds // 5)):
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ExponentialSmoothing(
                y15, trend="add", seasonal="add", seasonal_periods=96
            ).fit()
            hw = model.forecast(96)
        hw_s.append(time.perf_counter() - started)
    pred_hw = np.repeat(np.asarray(hw), 3)[: len(y_next)]

    def mape(pred: FloatArray) -> float:
        n = min(len(pred), len(y_next))
        return float(np.mean(np.abs(pred[:n] - y_next[:n]) / np.abs(y_next[:n])))

    ours_ms = statistics.median(ours_s) * 1000
    hw_ms = statistics.median(hw_s) * 1000
    cheap = []
    for _ in range(rounds):
        started = time.perf_counter()
        fc.forecast(float(t_fit[-1]) + 600)
        cheap.append(time.perf_counter() - started)
    return {
        "series": f"{scenario.stem} mpdu1, 13 d of 5-min data",
        "ours_fit_forecast_ms": round(ours_ms, 2),
        "ours_cheap_update_ms": round(statistics.median(cheap) * 1000, 3),
        "holt_winters_fit_forecast_ms": round(hw_ms, 1),
        "time_ratio_hw_over_ours": round(hw_ms / ours_ms, 1),
        "mape_24h_ours": round(mape(pred_ours), 4),
        "mape_24h_holt_winters": round(mape(pred_hw), 4),
    }


def _rss_mb() -> float:
    """This process's resident memory (Linux), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return math.nan


def forecaster_at_scale(n_series: int = 1000, days: float = 42.0) -> dict[str, Any]:
    """The circuit forecasters at scale: ``n_series`` series with ``days`` of 5-minute history
    (the ring's default span), every one fitted once (a start-up), then one hourly refresh an
    hour later in steady state (each series refits daily at its own phase: about 1/24 of them
    refit, the rest take the cheap update). Memory: statsmodels' import, then the forecasters
    with their rings and fits, per series. Elements are sums of circuit forecasts: they have no
    model of their own, so the circuit figures are the whole cost."""
    rng = np.random.default_rng(21)
    t_end = 1.8e9 - (1.8e9 % 86400.0)
    t = t_end - days * DAY + np.arange(int(days * 288)) * 300.0
    hour = (t % DAY) / 3600.0
    weekend = (np.floor(t / DAY) + 3) % 7 >= 5
    base = 1.0 + 0.25 * np.cos((hour - 15) / 24 * 2 * np.pi) - 0.1 * weekend
    # The libraries' share, in a fresh interpreter: numpy and the scipy parts the engine uses
    # anyway, then the forecaster's lazy statsmodels import (this process has it already).
    probe = (
        "import numpy, pathlib, scipy.optimize, scipy.special;"
        "rss=lambda:[int(l.split()[1]) for l in pathlib.Path('/proc/self/status')"
        ".read_text().splitlines() if l.startswith('VmRSS:')][0]/1024;"
        "a=rss();import statsmodels.regression.linear_model;print(rss()-a)"
    )
    lib_mb = float(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                  check=True).stdout)  # fmt: skip
    rss_lib = _rss_mb()
    fcs: list[LoadForecaster] = []
    for i in range(n_series):
        fc = LoadForecaster(refit_phase_s=DAY * i / n_series)
        mean = float(rng.uniform(2, 8))
        fc.observe_many(t, mean * base * (1 + 0.04 * rng.standard_normal(len(t))))
        fcs.append(fc)
    fit_s: list[float] = []
    started = time.perf_counter()
    for fc in fcs:
        t0 = time.perf_counter()
        fc.forecast(t_end)
        fit_s.append(time.perf_counter() - t0)
    startup_s = time.perf_counter() - started
    rss_fc = _rss_mb()
    now = t_end + 3600.0
    refits = 0
    cheap_s: list[float] = []
    started = time.perf_counter()
    for fc in fcs:
        before = fc.fitted_s
        t0 = time.perf_counter()
        fc.forecast(now)
        spent = time.perf_counter() - t0
        if fc.fitted_s != before:
            refits += 1
        else:
            cheap_s.append(spent)
    refresh_s = time.perf_counter() - started
    # RSS growth undercounts when earlier figures left freed heap behind (the forecasters reuse
    # it), so the per-series share is also counted exactly: numpy reports its arrays to
    # tracemalloc. A sample of fresh forecasters, fed and fitted the same way.
    sample = 50
    tracemalloc.start()
    before_bytes = tracemalloc.get_traced_memory()[0]
    kept = []
    for i in range(sample):
        fc = LoadForecaster(refit_phase_s=DAY * i / sample)
        fc.observe_many(t, 4.0 * base * (1 + 0.04 * rng.standard_normal(len(t))))
        fc.forecast(t_end)
        kept.append(fc)
    traced_kb = (tracemalloc.get_traced_memory()[0] - before_bytes) / 1024 / sample
    tracemalloc.stop()
    return {
        "series": n_series,
        "history_days": days,
        "fit_and_forecast_s_median": round(statistics.median(fit_s), 4),
        "cheap_update_s_median": round(statistics.median(cheap_s), 5),
        "startup_refresh_all_fit_s": round(startup_s, 1),
        "hourly_refresh_s": round(refresh_s, 2),
        "hourly_refresh_refits": refits,
        "statsmodels_import_mb": round(lib_mb, 1),
        "forecasters_mb": round(rss_fc - rss_lib, 1),
        "per_series_kb": round((rss_fc - rss_lib) * 1024 / n_series, 1),
        "per_series_kb_traced": round(traced_kb, 1),
    }


def _random_plant(
    n: int, rng: np.random.Generator
) -> tuple[Topology, dict[str, str | None], dict[str, FloatArray], FloatArray]:
    """3 ATS / 6 MPDU, ``n`` circuits with two paths, 96-point daily profiles; mpdu1 overloaded."""
    mpdus = [MpduNode(f"m{i}", f"a{i // 2}", n * 6.0 / 6 * 1.1) for i in range(6)]
    ats = [AtsNode(f"a{i}", ("u1", "u2"), n * 6.0) for i in range(3)]
    circuits: list[CircuitNode] = []
    assignment: dict[str, str | None] = {}
    load: dict[str, FloatArray] = {}
    hours = np.arange(96) / 4.0
    for c in range(n):
        first = 0 if c < n // 4 else int(rng.integers(0, 6))
        second = int((first + 1 + rng.integers(0, 5)) % 6)
        cid = f"c{c:03d}"
        circuits.append(CircuitNode(cid, (f"m{first}", f"m{second}"), 32.0))
        assignment[cid] = f"m{first}"
        mean = float(rng.uniform(2, 6))
        peak = float(rng.uniform(12, 18))
        load[cid] = mean * (1 + 0.25 * np.cos((hours - peak) / 24 * 2 * np.pi))
    times = 1.8e9 + hours * 3600
    return Topology.build(ats, mpdus, circuits), assignment, load, times


def planning(sizes: tuple[int, ...], rounds: int) -> list[dict[str, Any]]:
    """Relieve the overloaded plant: HiGHS MILP against the greedy fallback."""
    out = []
    for n in sizes:
        rng = np.random.default_rng(n)
        milp_s: list[float] = []
        greedy_s: list[float] = []
        milp_moves: list[int | None] = []
        greedy_moves: list[int | None] = []
        for _ in range(rounds):
            topo, assignment, load, times = _random_plant(n, rng)
            for limit, sink_s, sink_moves in (
                (2.0, milp_s, milp_moves),
                (0.0, greedy_s, greedy_moves),
            ):
                started = time.perf_counter()
                result = plan_migration(topo, assignment, load, times, time_limit_s=limit)
                sink_s.append(time.perf_counter() - started)
                sink_moves.append(len(result.moves) if isinstance(result, Plan) else None)
        out.append(
            {
                "circuits": n,
                "milp_ms": round(statistics.median(milp_s) * 1000, 1),
                "greedy_ms": round(statistics.median(greedy_s) * 1000, 1),
                "milp_moves": milp_moves,
                "greedy_moves": greedy_moves,
            }
        )
    return out


def evaluation(scenarios: list[Path]) -> list[dict[str, Any]]:
    """Wall time of scripts/evaluate's run, proactive against reactive, with the key outcomes."""
    out = []
    for path in scenarios:
        sc = load_scenario(path)
        row: dict[str, Any] = {"scenario": sc.name}
        for policy in ("proactive", "reactive"):
            m = compute_metrics(run_evaluation(sc, policy))
            row[f"{policy}_wall_s"] = round(m["wall_s"], 1)
            row[f"{policy}_interruptions"] = m["interruptions"]
            row[f"{policy}_trips"] = m["breaker_trips"]
            row[f"{policy}_over_limit_s"] = m["over_limit_s"]
        out.append(row)
    return out


async def _loop_lag_while(job: Any) -> float:
    """Largest delay of a 1 ms ticker on the event loop while ``job`` runs in the executor."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        while not done:
            started = loop.time()
            await asyncio.sleep(0.001)
            worst = max(worst, loop.time() - started - 0.001)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    await loop.run_in_executor(None, job)
    done = True
    await tick
    return worst


def event_loop_stall(scenario: Path) -> dict[str, Any]:
    """The forecasting coordinator's work on the default plant: ``decide`` runs in an executor
    job (as in Home Assistant); the ticker measures how long the event loop is held meanwhile.
    ``observe`` (one poll) runs on the loop itself."""
    sc = load_scenario(scenario)
    topology = topology_from_scenario(sc)
    policy = DecisionPolicy(topology, PolicyConfig(mode="monitor"))
    plant = Plant(sc)
    t0 = epoch0(sc)
    while plant.t_s < 0:
        plant.advance_to(plant.t_s + 300)
        policy.observe(observation_from_telemetry(plant.telemetry(), t0, topology))
    obs = observation_from_telemetry(plant.telemetry(), t0, topology)
    observe_s = []
    for _ in range(200):
        started = time.perf_counter()
        policy.observe(obs)
        observe_s.append(time.perf_counter() - started)
    now = t0 + plant.t_s
    decide_s: list[float] = []

    def decide() -> None:
        started = time.perf_counter()
        policy.decide(now)
        decide_s.append(time.perf_counter() - started)

    lag = asyncio.run(_loop_lag_while(decide))
    return {
        "plant": sc.name,
        "decide_in_executor_ms": round(decide_s[0] * 1000, 1),
        "max_event_loop_stall_ms": round(lag * 1000, 1),
        "observe_on_loop_ms": round(max(observe_s) * 1000, 3),
    }


def failover(scenario: Path) -> dict[str, Any]:
    """Simulated time from a sudden failure to the end of the rebalancing (60 s polls)."""
    sc = load_scenario(scenario)
    failure = next(e for e in sc.events if isinstance(e, SuddenFailureEvent))
    ev = run_evaluation(sc, "proactive")
    rebalance = next(a for a in ev.actions if a.kind == "rebalance" and a.started_s >= failure.at_s)
    return {
        "scenario": sc.name,
        "failed": failure.target,
        "poll_s": 60,
        "rebalance_started_after_s": rebalance.started_s - failure.at_s,
        "rebalance_finished_after_s": (rebalance.finished_s or float("nan")) - failure.at_s,
        "over_limit_s": ev.plant_metrics.over_limit_s,
    }
