"""Scaling figures: polling 50-1,000 devices, command latency during refreshes, and the engine
on the 1,000-circuit hall (Home Assistant's own ``modbus`` as the baseline: ``ha_modbus.py``).

The simulator always runs in a process of its own (``benchmarks/counted_sim.py``: ``dcp_sim``'s
server, one port per gateway, counting the requests it serves), so that the side being measured
does not share its event loop or its CPU with the plant, and every side's requests are counted
in the same place. Home Assistant runs in this process through the test harness's
``async_test_home_assistant`` (the real core, registries and integrations, no HTTP server),
with either the integration or Home Assistant's ``modbus`` integration configured in YAML, one
entity per value, against the same simulated plant.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from custom_components.datacenter_power.const import (
    CONF_HOST,
    CONF_PORT,
    CONF_SCAN_INTERVAL,
    DEFAULT_OPTIONS,
    DOMAIN,
    GC_FREEZE_QUIET,
    HALL_CIRCUITS,
    POLL_CONCURRENCY,
    SUBENTRY_GATEWAY,
)
from custom_components.datacenter_power.device.client import PlantClient
from custom_components.datacenter_power.engine.plan import Infeasible, Plan
from custom_components.datacenter_power.engine.planner import plan_migration
from custom_components.datacenter_power.engine.policy import DecisionPolicy, PolicyConfig
from dcp_eval.harness import epoch0, observation_from_telemetry, run_evaluation
from dcp_eval.harness import topology_from_scenario as _topology
from dcp_sim.plant import Plant

from .hall import hall_scenario, hall_spec

ROOT = Path(__file__).resolve().parent.parent

COMMAND_FAILURES: list[str] = []
"""Commands that failed in the last timing (each also logged)."""
_LOGGER = logging.getLogger(__name__)
PLANTS: dict[str, int] = {"50": 45, "200": 189, "1000": 1000}
"""Poll figure key -> circuits of the hall: 50 and 200 devices exactly, and the 1,000-circuit
hall (1,049 devices, 8 gateways) for "1000"."""


# -- the simulator in its own process ---------------------------------------------------------


class Simulator:
    """A running simulator process: its gateways' ports, and its count of requests served."""

    def __init__(self, proc: asyncio.subprocess.Process, ports: list[int]) -> None:
        self._proc = proc
        self.ports = ports

    async def requests(self) -> int:
        """Requests the simulator has served so far (all gateways; a write counts twice)."""
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write(b"?\n")
        await self._proc.stdin.drain()
        line = (await asyncio.wait_for(self._proc.stdout.readline(), 30)).decode()
        if not line.startswith("requests "):
            raise RuntimeError(f"simulator answered {line!r}")
        return int(line.split()[1])


@contextlib.asynccontextmanager
async def simulator(spec: dict[str, Any], speed: float = 1.0) -> AsyncIterator[Simulator]:
    """Serve a scenario in a process of its own (``benchmarks/counted_sim.py``: ``dcp_sim``'s
    server, which also counts the requests it serves) on free ports."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plant.yaml"
        path.write_text(yaml.safe_dump(spec))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.counted_sim",
            str(path),
            "--speed",
            str(speed),
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        assert proc.stdin is not None
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
            if not line.startswith("gateways:"):
                raise RuntimeError(f"simulator did not start: {line!r}")
            yield Simulator(proc, [int(x.rsplit(":", 1)[1]) for x in line.split()[1:]])
        finally:
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.terminate()
                await proc.wait()


def _ms(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "p50": round(statistics.median(ordered) * 1000, 1),
        "p99": round(p99 * 1000, 1),
        "max": round(ordered[-1] * 1000, 1),
        "n": len(ordered),
    }


# -- polling through the device layer ---------------------------------------------------------


async def _poll(n_circuits: int, rounds: int) -> dict[str, Any]:
    async with simulator(hall_spec(n_circuits)) as sim:
        ports = sim.ports
        clients = [PlantClient("127.0.0.1", p, timeout=2.0) for p in ports]
        try:
            found = await asyncio.gather(*(c.scan() for c in clients))

            async def refresh() -> None:
                await asyncio.gather(
                    *(
                        c.read_all(ids, concurrency=POLL_CONCURRENCY)
                        for c, ids in zip(clients, found, strict=True)
                    )
                )

            await refresh()  # open the connections
            before = await sim.requests()
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                await refresh()
                times.append(time.perf_counter() - started)
            requests = (await sim.requests() - before) / rounds
        finally:
            for c in clients:
                await c.close()
    return {
        "devices": sum(map(len, found)),
        "gateways": len(ports),
        "requests_per_refresh": requests,
        "refresh_ms": round(statistics.median(times) * 1000, 1),
        "refresh_ms_max": round(max(times) * 1000, 1),
    }


def poll_one(n_circuits: int, rounds: int) -> dict[str, Any]:
    """One refresh of every device of a hall (all gateways at once, one request per device)."""
    return asyncio.run(_poll(n_circuits, rounds))


# -- Home Assistant in this process ------------------------------------------------------------


@contextlib.asynccontextmanager
async def home_assistant() -> AsyncIterator[Any]:
    """A real Home Assistant core (the test harness's), with custom integrations enabled."""
    from homeassistant import loader
    from homeassistant.helpers import frame
    from pytest_homeassistant_custom_component.common import async_test_home_assistant

    import custom_components.datacenter_power  # noqa: F401  (ours, before the harness's)

    with tempfile.TemporaryDirectory() as tmp:
        async with async_test_home_assistant(config_dir=tmp) as hass:
            hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)
            frame.async_setup(hass)  # as bootstrap does (the test harness's fixture does too)
            yield hass
            await hass.async_stop(force=True)


async def _commands_during(
    hass: Any,
    refresh: Callable[[], Awaitable[Any]],
    refresh_s: float,
    commands: list[tuple[str, str, dict[str, Any]]],
    rounds: int,
) -> list[float]:
    """Issue commands (domain, service, data) in the middle of refreshes; their latencies.

    A command that fails (the device did not answer in time: on a loaded machine it happens)
    counts with the time it took to fail and is logged; ``COMMAND_FAILURES`` counts them.
    """
    from homeassistant.exceptions import HomeAssistantError

    rng = random.Random(11)
    latencies: list[float] = []
    for i in range(rounds):
        domain, service, data = commands[i % len(commands)]
        task = asyncio.ensure_future(refresh())
        await asyncio.sleep(rng.uniform(0.1, 0.6) * refresh_s)
        started = time.perf_counter()
        try:
            await hass.services.async_call(domain, service, data, blocking=True)
        except HomeAssistantError as err:
            COMMAND_FAILURES.append(f"{domain}.{service}: {err}")
            _LOGGER.warning("Command failed during the benchmark: %s", err)
        latencies.append(time.perf_counter() - started)
        await task
    return latencies


def _entity(hass: Any, domain: str, unique_id: str) -> str:
    from homeassistant.helpers import entity_registry as er

    entity_id = er.async_get(hass).async_get_entity_id(domain, DOMAIN, unique_id)
    assert entity_id is not None, unique_id
    return str(entity_id)


async def _integration(n_circuits: int, rounds: int, commands: int) -> dict[str, Any]:
    from homeassistant.config_entries import ConfigSubentryData
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    spec = hall_spec(n_circuits)
    unique_id = "+".join(sorted(a["id"] for a in spec["ats"]))
    async with simulator(spec) as sim, home_assistant() as hass:
        ports = sim.ports
        entry = MockConfigEntry(
            domain=DOMAIN,
            title="Plant",
            unique_id=unique_id,
            data={CONF_HOST: "127.0.0.1", CONF_PORT: ports[0]},
            # The timed refreshes are the only polls (the default 5 s interval would overlap).
            options={**DEFAULT_OPTIONS, CONF_SCAN_INTERVAL: 300},
            subentries_data=[
                ConfigSubentryData(
                    data={CONF_HOST: "127.0.0.1", CONF_PORT: p},
                    subentry_type=SUBENTRY_GATEWAY,
                    title=f"127.0.0.1:{p}",
                    unique_id=f"127.0.0.1:{p}",
                )
                for p in ports[1:]
            ],
        )
        entry.add_to_hass(hass)
        setup_started = time.perf_counter()
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        setup_s = time.perf_counter() - setup_started
        coordinator = entry.runtime_data.telemetry
        live = len(coordinator.data.readings)

        def requests() -> int:
            return sum(coordinator.client_request_count(k) for k in coordinator.gateways)

        await coordinator.async_refresh()
        before, served_before = requests(), await sim.requests()
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            await coordinator.async_refresh()
            times.append(time.perf_counter() - started)
        per_refresh = (await sim.requests() - served_before) / rounds
        sent_per_refresh = (requests() - before) / rounds
        refresh_s = statistics.median(times)
        if n_circuits > HALL_CIRCUITS:
            # A hall is set up once its objects are frozen out of full garbage collections
            # (gc_freeze.py: GC_FREEZE_QUIET after the plant stopped changing, with one full
            # collection); commands are timed after that, as in a Home Assistant that runs.
            for _ in range(round(GC_FREEZE_QUIET) + 60):
                if gc.get_freeze_count():
                    break
                await asyncio.sleep(1)
        frozen = gc.get_freeze_count()
        inhibit = _entity(hass, "switch", f"{unique_id}:ats1:inhibit")
        path = _entity(hass, "select", f"{unique_id}:m01c01:active_path")
        alt = spec["circuit_groups"][0]["paths"][1]
        cycle = [
            ("switch", "turn_on", {"entity_id": inhibit}),
            ("select", "select_option", {"entity_id": path, "option": alt}),
            ("switch", "turn_off", {"entity_id": inhibit}),
            ("select", "select_option", {"entity_id": path, "option": "mpdu01"}),
        ]
        COMMAND_FAILURES.clear()
        latencies = await _commands_during(
            hass, coordinator.async_refresh, refresh_s, cycle, commands
        )
        # What the last select and switch commands asked for is what their entities show.
        last = [cycle[i % len(cycle)] for i in range(commands)]
        want_path = next(c[2]["option"] for c in reversed(last) if c[0] == "select")
        want_inhibit = next(c[1] for c in reversed(last) if c[0] == "switch") == "turn_on"
        reflected = hass.states.get(path).state == want_path and (
            hass.states.get(inhibit).state == ("on" if want_inhibit else "off")
        )
        entities = len(hass.states.async_entity_ids())
        await hass.config_entries.async_unload(entry.entry_id)
    return {
        "devices": live,
        "entities": entities,
        "setup_s": round(setup_s, 1),
        "requests_per_refresh": per_refresh,
        "requests_per_refresh_sent": sent_per_refresh,
        "refresh_ms": round(refresh_s * 1000, 1),
        "command_latency_ms": _ms(latencies),
        # The ATS inhibit switch alone: the command the baseline times (ha_modbus.py).
        "switch_latency_ms": _ms(latencies[0::2]),
        "command_failures": len(COMMAND_FAILURES),
        "command_reflected": reflected,
        "gc_frozen_objects": frozen,
    }


def integration(n_circuits: int, rounds: int, commands: int) -> dict[str, Any]:
    """The integration in Home Assistant: refresh time and command latency during refreshes."""
    return asyncio.run(_integration(n_circuits, rounds, commands))


# -- the engine on the hall -------------------------------------------------------------------


PLAN_RUNS = 3
"""Plans timed per figure (median reported): a single solve is at the mercy of the machine's load."""


def engine(n_circuits: int = 1000, history_days: float = 3.0, **hall: Any) -> dict[str, Any]:
    """Forecast refresh of every series, planning a drain of one ATS, and its optimality gap
    (``hall``: :func:`hall_spec` options). Each figure carries its CPU time and the 1-minute
    load average at that moment (other jobs share this machine's CPUs)."""
    sc = hall_scenario(n_circuits, history=f"{history_days:g}d", **hall)
    topo = _topology(sc)
    policy = DecisionPolicy(topo, PolicyConfig(mode="monitor", poll_s=300.0))
    plant = Plant(sc)
    t0 = epoch0(sc)
    while plant.t_s < 0:
        plant.advance_to(plant.t_s + 300)
        policy.observe(observation_from_telemetry(plant.telemetry(), t0, topo))
    forecast_load = load_average()[0]
    started, cpu = time.perf_counter(), time.process_time()
    policy.decide(t0 + plant.t_s)
    forecast_s, forecast_cpu = time.perf_counter() - started, time.process_time() - cpu
    tel = plant.telemetry()
    assignment = {c: t.paths[t.active_path] for c, t in tel.circuits.items()}
    times = np.asarray(t0 + plant.t_s + np.arange(96) * 900.0, dtype=np.float64)
    load = {}
    for c in topo.circuits:
        fc = policy.circuit_forecast(c)
        p90 = None if fc is None else np.asarray(fc.p90, dtype=float)
        load[c] = (
            p90[: len(times)]
            if p90 is not None and len(p90) >= len(times)
            else np.full(len(times), tel.circuits[c].current_a * 1.3)
        )
    plan_load = load_average()[0]
    walls: list[float] = []
    cpus_: list[float] = []
    quick: Plan | Infeasible | None = None
    for _ in range(PLAN_RUNS):
        started, cpu = time.perf_counter(), time.process_time()
        quick = plan_migration(topo, assignment, load, times, drain="ats1", time_limit_s=2.0)
        walls.append(time.perf_counter() - started)
        cpus_.append(time.process_time() - cpu)
    assert quick is not None
    best = plan_migration(topo, assignment, load, times, drain="ats1", time_limit_s=120.0)
    gap = None
    if isinstance(quick, Plan) and isinstance(best, Plan):
        gap = (len(quick.moves) - len(best.moves)) / max(1, len(best.moves))
    return {
        "circuits": n_circuits,
        "history_days": history_days,
        "forecast_refresh_s": round(forecast_s, 3),
        "forecast_refresh_cpu_s": round(forecast_cpu, 3),
        "forecast_refresh_load_1min": forecast_load,
        "plan_ms": round(statistics.median(walls) * 1000, 1),
        "plan_ms_runs": [round(w * 1000, 1) for w in walls],
        "plan_cpu_ms": round(statistics.median(cpus_) * 1000, 1),
        "plan_load_1min": plan_load,
        "plan_solver": getattr(quick, "solver", type(quick).__name__),
        "plan_moves": len(quick.moves) if isinstance(quick, Plan) else None,
        "optimum_moves": len(best.moves) if isinstance(best, Plan) else None,
        "plan_optimality_gap": None if gap is None else round(gap, 4),
    }


def evaluate(n_circuits: int = 1000, history: str = "2d") -> dict[str, Any]:
    """``scripts/evaluate`` on a generated hall: one day evaluated after ``history`` (the
    evaluation itself, in this process: the interpreter's start and imports are not counted)."""
    sc = hall_scenario(n_circuits, history=history, duration="1d")
    load_start = load_average()[0]
    started, cpu = time.perf_counter(), time.process_time()
    run_evaluation(sc, "proactive")
    return {
        "circuits": n_circuits,
        "history": history,
        "wall_s": round(time.perf_counter() - started, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
        "load_1min_start": load_start,
        "load_1min_end": load_average()[0],
    }


def cpus() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def load_average() -> list[float]:
    """The machine's load averages while measuring (other jobs share the CPUs)."""
    return [round(x, 2) for x in os.getloadavg()]
