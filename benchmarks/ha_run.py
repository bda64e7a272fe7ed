"""Home Assistant itself (``python -m homeassistant``, recorder on) running the integration on
the 1,000-circuit hall at the default poll interval: CPU, event-loop lag, state writes, recorder
growth and memory, measured from outside the process and by a small probe integration inside.

The plant is served by ``python -m dcp_sim`` (8 gateways); Home Assistant is onboarded and the
integration added through its real config flow and gateway subentry flow, as
``scripts/develop`` does. Memory without the integration (``rss_baseline_mb``) is measured in
the same process before the plant is added. With ``--history-days N`` (e.g. ``42 0``: one run
each) the plant is added on a first start and Home Assistant restarted with N days of the
plant's history persisted (``seed_history.py``): the baseline is then taken before the entry is
enabled, and the probe reports the span the forecasters hold.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from benchmarks import seed_history

ROOT = Path(__file__).resolve().parent.parent

_PROBE_MANIFEST = {
    "domain": "dcp_probe",
    "name": "Benchmark probe",
    "version": "1.0.0",
    "documentation": "https://example.invalid",
    "codeowners": [],
    "iot_class": "calculated",
    "requirements": [],
    "dependencies": ["recorder"],  # its commits are timed
}
_PROBE = '''
"""Event-loop lag (a 100 ms ticker), state writes and what blocked the loop, appended to
probe.jsonl every 5 s (only what is new: one line each).

The probe must not disturb what it measures: the watchdog holds the GIL while it writes, so
it writes a few hundred new values at a time, never the whole run; and it never asks for
``gc.get_freeze_count()`` while measuring (it walks every frozen object: ~100 ms for the
~880,000 objects of a 1,000-circuit hall, with the GIL held) - only when probe.final asks.

A watchdog thread samples the event loop thread's Python stack whenever the ticker is late by
more than STALL_S (a poor man's py-spy): every such stall is listed with the stacks seen during
it. With DCP_PROBE_SAMPLE=1 it also samples the loop thread every 10 ms all the time and counts
functions (inclusive) and lines (innermost): where the loop spends its time. With tracemalloc
on (PYTHONTRACEMALLOC), a file tracemalloc.request makes it write tracemalloc.json: the
largest allocation sites still alive, and glibc's malloc figures (where RSS goes).
"""
import asyncio, collections, gc, json, os, sys, threading, time
from pathlib import Path
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import callback

DOMAIN = "dcp_probe"
STALL_S = float(os.environ.get("DCP_PROBE_STALL_S", "0.25"))


def _stack(frame, depth):
    out = []
    while frame is not None and len(out) < depth:
        code = frame.f_code
        parts = code.co_filename.rsplit("/", 2)
        out.append(f"{'/'.join(parts[-2:])}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    return out


def _memory_report(path):
    import ctypes, tracemalloc

    report = {}
    try:
        class MallInfo2(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                "uordblks", "fordblks", "keepcost")]
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
        report["malloc_mb"] = {
            "arena_sbrk": round(info.arena / 2**20, 1),
            "mmapped": round(info.hblkhd / 2**20, 1),
            "in_use": round(info.uordblks / 2**20, 1),
            "free_in_arenas": round(info.fordblks / 2**20, 1),
        }
    except Exception as err:  # noqa: BLE001
        report["malloc_mb"] = repr(err)
    report["python_allocated_blocks"] = sys.getallocatedblocks()
    report["gc_objects"] = len(gc.get_objects())
    report["gc_frozen"] = gc.get_freeze_count()
    if tracemalloc.is_tracing():
        snap = tracemalloc.take_snapshot()
        current, peak = tracemalloc.get_traced_memory()
        report["traced_mb"] = round(current / 2**20, 1)
        report["traced_peak_mb"] = round(peak / 2**20, 1)
        for key, n in (("lineno", 40), ("filename", 30)):
            report[f"top_{key}"] = [
                [str(s.traceback[0]).rsplit("site-packages/", 1)[-1], round(s.size / 2**20, 2), s.count]
                for s in snap.statistics(key)[:n]
            ]
    path.write_text(json.dumps(report, indent=1))


def _history_span(hass):
    """What the plant's forecasting holds (read only, from the watchdog thread: the arrays are
    read, never flushed): the kept history log, and every circuit forecaster's ring span and
    last fit."""
    import numpy as np

    out = []
    for entry in hass.config_entries.async_entries("datacenter_power"):
        data = getattr(entry, "runtime_data", None)
        if data is None:
            continue
        coordinator = data.decisions
        spans, fitted, models = [], [], collections.Counter()
        for f in coordinator.policy._fcs.forecasters.values():
            bins = f._slot_bins()
            ok = (bins >= 0) & (f._count > 0)
            first = int(bins[ok].min()) if np.any(ok) else None
            spans.append(0.0 if first is None else (f._last_bin - first + 1) * f.resample_s / 86400)
            if f._fit is not None:
                fitted.append(f._fit.history_s / 86400)
                models[f._fit.model] += 1
        spans.sort()
        fitted.sort()
        out.append({
            "history_log_rows": len(coordinator.history),
            "history_log_days": len(coordinator.history.days),
            "forecasters": len(spans),
            "ring_span_days_min_median_max": [round(spans[0], 2), round(spans[len(spans) // 2], 2), round(spans[-1], 2)] if spans else None,
            "fitted": len(fitted),
            "fit_span_days_min_max": [round(fitted[0], 2), round(fitted[-1], 2)] if fitted else None,
            "models": dict(models),
        })
    return out


def _time_commits(hass, out):
    """Each commit of the recorder's batch of states and events ([end time, ms]), timed in
    the recorder's own thread around the method that commits it (SQLite or PostgreSQL alike;
    a commit with nothing pending is not counted)."""
    from homeassistant.components.recorder import get_instance

    instance = get_instance(hass)
    commit = instance._commit_event_session_or_retry

    def timed():
        if not instance._event_session_has_pending_writes:
            return commit()
        started = time.perf_counter()
        try:
            return commit()
        finally:
            out.append([round(time.time(), 2), round((time.perf_counter() - started) * 1000, 2)])

    instance._commit_event_session_or_retry = timed


async def async_setup(hass, config):
    stats = {"lag_ms": [], "state_changed": 0, "t": [], "stalls": [], "gc": [], "late": [],
             "commits": []}
    out = Path(hass.config.path("probe.jsonl"))
    loop_thread = threading.get_ident()
    beat = [time.monotonic()]
    sample_all = os.environ.get("DCP_PROBE_SAMPLE") == "1"

    @callback  # on the loop: a plain function would be run in the executor for every write
    def count(_event):
        stats["state_changed"] += 1

    hass.bus.async_listen(EVENT_STATE_CHANGED, count)

    def watchdog():
        functions = collections.Counter()
        lines = collections.Counter()
        samples = 0
        stall = None
        last_dump = time.monotonic()
        written = {"lag_ms": 0, "t": 0, "late": 0, "stalls": 0, "gc": 0, "commits": 0}
        while True:
            time.sleep(0.01)
            now = time.monotonic()
            last_beat = beat[0]
            frame = sys._current_frames().get(loop_thread)
            if frame is not None and sample_all:
                stack = _stack(frame, 80)
                samples += 1
                for name in {s.split(" ", 1)[1] + " " + s.split(":", 1)[0] for s in stack}:
                    functions[name] += 1
                if stack:
                    lines[stack[0]] += 1
            if now - last_beat > STALL_S + 0.1:
                if stall is None:
                    stall = {"t": round(time.time() - (now - last_beat), 1), "beat": last_beat,
                             "stacks": collections.Counter(), "threads": collections.Counter()}
                if frame is not None:
                    stall["stacks"][" <- ".join(_stack(frame, 30))] += 1
                # What the other threads run meanwhile (an executor job holding the GIL?).
                for ident, other in sys._current_frames().items():
                    if ident not in (loop_thread, threading.get_ident()):
                        top = _stack(other, 12)
                        if top and "threading.py" not in top[0] and "selectors.py" not in top[0]:
                            stall["threads"][" <- ".join(top[:6])] += 1
            elif stall is not None and last_beat != stall["beat"]:
                stall["lag_ms"] = round((last_beat - stall.pop("beat") - 0.1) * 1000)
                stall["stacks"] = stall["stacks"].most_common(6)
                stall["threads"] = stall["threads"].most_common(4)
                stats["stalls"].append(stall)
                stall = None
            if now - last_dump > 5:
                last_dump = now
                request = out.with_name("tracemalloc.request")
                if request.exists():
                    request.unlink()
                    _memory_report(out.with_name("tracemalloc.json"))
                line = {"state_changed": stats["state_changed"]}
                for key in ("lag_ms", "t", "late", "stalls", "gc", "commits"):
                    values = stats[key]
                    line[key] = values[written[key]:]
                    written[key] += len(line[key])
                if sample_all:
                    line["profile"] = {
                        "samples": samples,
                        "functions": functions.most_common(100),
                        "lines": lines.most_common(60),
                    }
                final = out.with_name("probe.final")
                if final.exists():
                    final.unlink()
                    line["gc_frozen"] = gc.get_freeze_count()
                    try:
                        line["forecasting"] = {"plants": _history_span(hass)}
                    except Exception as err:  # noqa: BLE001
                        line["forecasting"] = {"error": repr(err)}
                with out.open("a") as stream:
                    stream.write(json.dumps(line) + "\\n")

    threading.Thread(target=watchdog, name="dcp_probe watchdog", daemon=True).start()

    gc_started = [0.0]

    def on_gc(phase, info):
        # Collections of the cyclic garbage collector hold the GIL: every full one, and any
        # other over 50 ms.
        if phase == "start":
            gc_started[0] = time.perf_counter()
            return
        took = time.perf_counter() - gc_started[0]
        if took > 0.05 or info.get("generation") == 2:
            stats["gc"].append(
                [round(time.time(), 2), info.get("generation"), round(took * 1000, 1)]
            )

    gc.callbacks.append(on_gc)

    schedstat = Path(f"/proc/self/task/{threading.get_native_id()}/schedstat")

    def sched():
        # The loop thread's time on a CPU and waiting for one (ns), from the kernel.
        try:
            on_cpu, waiting, _ = schedstat.read_text().split()
            return int(on_cpu), int(waiting)
        except (OSError, ValueError):
            return 0, 0

    async def tick():
        # Every late tick (> 30 ms) records what the loop thread did meanwhile: its own CPU
        # time (the loop was busy) and its wait for a CPU (the machine was busy): late ticks
        # the watchdog cannot sample are told apart by these.
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            cpu0, (run0, wait0) = time.thread_time(), sched()
            await asyncio.sleep(0.1)
            beat[0] = time.monotonic()
            lag = round((loop.time() - before - 0.1) * 1000, 2)
            stats["lag_ms"].append(lag)
            stats["t"].append(round(time.time(), 1))
            if lag > 30:
                run1, wait1 = sched()
                stats["late"].append([
                    round(time.time(), 2), lag,
                    round((time.thread_time() - cpu0) * 1000, 1),
                    round((run1 - run0) / 1e6, 1), round((wait1 - wait0) / 1e6, 1),
                ])

    hass.async_create_background_task(tick(), "dcp_probe ticker")
    _time_commits(hass, stats["commits"])

    async def confirm_http() -> None:
        # The http port comes from YAML; Home Assistant 2026.10 treats it as a pending config
        # and reverts (restarting) unless a person confirms it: the benchmark confirms it.
        from homeassistant.components.http.config import async_get_and_load_store

        store = await async_get_and_load_store(hass)
        if store.pending is not None:
            await store.async_promote_pending()

    hass.async_create_background_task(confirm_http(), "dcp_probe http")
    return True
'''


def _dev_stack() -> Any:
    spec = importlib.util.spec_from_file_location("dev_stack", ROOT / "scripts" / "dev_stack.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_config(config: Path, http_port: int, db_url: str | None = None) -> None:
    components = config / "custom_components"
    (components / "dcp_probe").mkdir(parents=True)
    (components / "datacenter_power").symlink_to(ROOT / "custom_components" / "datacenter_power")
    (components / "dcp_probe" / "manifest.json").write_text(json.dumps(_PROBE_MANIFEST))
    (components / "dcp_probe" / "__init__.py").write_text(_PROBE)
    (config / "configuration.yaml").write_text(
        "homeassistant:\n  name: Hall\n  time_zone: UTC\n"
        f"http:\n  server_port: {http_port}\n"
        "api:\nconfig:\nonboarding:\ndcp_probe:\n"
        + ("recorder:\n" if db_url is None else f"recorder:\n  db_url: {json.dumps(db_url)}\n")
        + "logger:\n  default: warning\n"
    )


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _db_mb(config: Path) -> float:
    return sum(p.stat().st_size for p in config.glob("home-assistant_v2.db*")) / 1e6


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process, of its children that ended (reaped) and of those still
    running: a PostgreSQL server's postmaster and its backends."""
    tick = os.sysconf("SC_CLK_TCK")

    def fields(p: int) -> list[str]:
        return Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()

    own = fields(pid)
    total = sum(int(x) for x in own[11:15])  # utime stime cutime cstime
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(pid):
            try:
                child = fields(int(entry.name))
            except OSError:
                continue
            if child[1] == str(pid):  # its parent
                total += sum(int(x) for x in child[11:15])
    return total / tick


class _Database:
    """Where the recorder writes: SQLite in the configuration (Home Assistant's default) or
    a real PostgreSQL server started for the run (``scripts/pg_server.py``)."""

    def __init__(self, kind: str, config: Path) -> None:
        self.kind = kind
        self.config = config
        self.server: Any = None
        self._dir: Path | None = None
        if kind == "postgresql":
            sys.path.insert(0, str(ROOT / "scripts"))
            from pg_server import PostgresServer

            # Beside the configuration (both on the same file system); reachable by the
            # postgres user when we are root.
            self._dir = Path(tempfile.mkdtemp(prefix="dcp-bench-pg-"))
            self._dir.chmod(0o755)
            self.server = PostgresServer(self._dir / "hall").start()
        elif kind != "sqlite":
            raise ValueError(f"recorder {kind!r}: sqlite or postgresql")

    @property
    def url(self) -> str | None:
        return None if self.server is None else str(self.server.url)

    def mb(self) -> float:
        if self.server is None:
            return _db_mb(self.config)
        return float(self.server.database_bytes()) / 1e6

    def cpu_s(self) -> float | None:
        if self.server is None or self.server.proc is None:
            return None
        return _tree_cpu_s(int(self.server.proc.pid))

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


def _commits(stats: dict[str, Any], t_start: float, window_s: float) -> dict[str, Any]:
    """The recorder's commits in the window: how long each took, and their share of time."""
    timed = stats.get("commits", [])
    took = [ms for t, ms in timed if t >= t_start]
    return {
        "count": len(took),
        "timed_since_start": len(timed),  # setup included
        "ms_p50": round(_percentile(took, 0.5), 1),
        "ms_p99": round(_percentile(took, 0.99), 1),
        "ms_max": round(max(took, default=0.0), 1),
        "ms_per_s": round(sum(took) / window_s, 2),
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def _late_ticks(stats: dict[str, Any], t_start: float) -> dict[str, Any]:
    """Full collections in the window, and how many ticks late by over 50 ms had one end
    while they waited (the collector holds the GIL: the probe's watchdog cannot sample it)."""
    full = [
        (t, ms) for t, generation, ms in stats.get("gc", []) if generation == 2 and t >= t_start
    ]
    late = [
        (t, lag)
        for lag, t in zip(stats["lag_ms"], stats["t"], strict=False)
        if t >= t_start and lag > 50
    ]
    with_gc = sum(
        1 for t, lag in late if any(t - 0.15 - lag / 1000 <= g <= t + 0.05 for g, _ in full)
    )
    return {
        "full_gc": {
            "count": len(full),
            "ms_p50": _percentile([ms for _, ms in full], 0.5),
            "ms_max": max((ms for _, ms in full), default=0.0),
        },
        "late_ticks_over_50ms": len(late),
        # Of those ticks: the loop thread's CPU time and its wait for a CPU meanwhile (ms).
        "late_ticks_loop_cpu_ms_p50": _percentile(
            [
                cpu
                for t, lag, cpu, _run, _wait in stats.get("late", [])
                if t >= t_start and lag > 50
            ],
            0.5,
        ),
        "late_ticks_cpu_wait_ms_p50": _percentile(
            [
                wait
                for t, lag, _cpu, _run, wait in stats.get("late", [])
                if t >= t_start and lag > 50
            ],
            0.5,
        ),
        "late_ticks_with_full_gc": with_gc,
    }


def _read_probe(path: Path) -> dict[str, Any]:
    """Everything the probe wrote so far: its lines' lists joined, its last counters."""
    merged: dict[str, Any] = {
        "lag_ms": [],
        "t": [],
        "late": [],
        "stalls": [],
        "gc": [],
        "commits": [],
    }
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        for key, value in entry.items():
            if isinstance(value, list):
                merged[key].extend(value)
            else:
                merged[key] = value
    return merged


def _final_probe(config: Path) -> dict[str, Any]:
    """How many objects ``gc.freeze`` moved out of the collector's reach, and what the plant's
    forecasting holds (asked once, at the end: counting frozen objects holds the GIL for
    ~100 ms)."""
    (config / "probe.final").touch()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        merged = _read_probe(config / "probe.jsonl")
        if merged.get("gc_frozen") is not None:
            return {"gc_frozen": int(merged["gc_frozen"]), "forecasting": merged.get("forecasting")}
        time.sleep(1)
    return {"gc_frozen": None, "forecasting": None}


def _wait_live(dev: Any, api: Any, want: int, timeout: float, *, all_live: bool = True) -> None:
    """Wait until every device has entities and none is unavailable (asked every 10 s: the
    template walks ~9,000 states on Home Assistant's event loop); with ``all_live`` False, only
    until every device has entities."""
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        n_dev, n_ent, n_bad = dev.plant_status(api)
        status = f"devices: {n_dev} entities: {n_ent} unavailable: {n_bad}"
        if n_dev >= want and n_ent > 0 and (n_bad == 0 or not all_live):
            return
        time.sleep(10)
    raise RuntimeError(f"the plant did not go live in {timeout:.0f} s ({status})")


def _start_hass(config: Path, env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "homeassistant", "-c", str(config)],
        cwd=config,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(
    scenario: Path,
    minutes: float,
    http_port: int | None = None,
    *,
    sample: bool = False,
    keep: Path | None = None,
    settle_s: float = 30.0,
    warm_s: float = 60.0,
    trace_memory: bool = False,
    history_days: float | None = None,
    recorder: str = "sqlite",
) -> dict[str, Any]:
    """Run Home Assistant with the plant for ``minutes`` after every device is live.

    ``http_port``: Home Assistant's (a free one when None). ``settle_s``: wait after start
    before the memory baseline; ``warm_s``: wait after every device is live before measuring
    (the first forecast refresh, registry writes). ``sample``: the probe also samples the event loop's stack all the time (a profile, under
    ``loop_profile``; it costs some CPU, so not for the figures). ``keep``: use this
    configuration directory and leave it (logs, database, probe.jsonl) for inspection.
    ``trace_memory``: Home Assistant runs with tracemalloc on and the largest allocation sites
    at the end are under ``memory`` (it costs memory and CPU, so not for the figures either).
    ``history_days``: the plant is added on a first start, then Home Assistant restarts with
    that many days of the plant's history persisted for it (``seed_history.py``; 0: none), as a
    hall in steady state restarts; the memory baseline is taken before the entry is enabled.
    ``recorder``: ``sqlite`` (Home Assistant's default) or ``postgresql`` (a real server started
    for the run and stopped after; its CPU is reported beside Home Assistant's).
    """
    dev = _dev_stack()
    http_port = _free_port() if http_port is None else http_port
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("REQUESTS_CA_BUNDLE", None)
    if sample:
        env["DCP_PROBE_SAMPLE"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) if keep is None else keep
        config.mkdir(parents=True, exist_ok=True)
        database = _Database(recorder, config)
        _write_config(config, http_port, database.url)
        sim = subprocess.Popen(
            [sys.executable, "-m", "dcp_sim", str(scenario), "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        hass: subprocess.Popen[bytes] | None = None
        try:
            assert sim.stdout is not None
            line = sim.stdout.readline()
            ports = [int(x.rsplit(":", 1)[1]) for x in line.split()[1:]]
            log = (config / "console.log").open("ab")
            # Not from the repository (nor with it on the path): Home Assistant must find both
            # custom integrations in the configuration's custom_components.
            hass_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
            if trace_memory:
                hass_env["PYTHONTRACEMALLOC"] = "1"
            hass = _start_hass(config, hass_env, log)
            api = dev.Api(f"http://127.0.0.1:{http_port}")
            api.wait_up(hass, timeout=300)
            api.onboard()
            want = dev.expected_devices(scenario)
            seeded: dict[str, Any] = {}
            entry_id = ""
            if history_days is not None:
                # A first start adds the plant (entry, subentries, devices, entities); the entry
                # is disabled and Home Assistant stopped; the history is written as the
                # integration persists it; the measured start below is then a restart.
                entry_id, _ = api.setup_integration(ports[0])
                dev.add_gateway_subentries(api, "127.0.0.1", ports[1:])
                # Every device and entity registered (whether all are live yet does not matter:
                # the measured start below waits for that).
                _wait_live(dev, api, want, timeout=900, all_live=False)
                time.sleep(warm_s)
                api.set_entry_enabled(entry_id, False)
                hass.send_signal(signal.SIGTERM)
                hass.wait(timeout=120)
                seeded = seed_history.seed(config, entry_id, scenario, history_days)
                hass = _start_hass(config, hass_env, log)
                api.wait_up(hass, timeout=300)
                api.onboard()
            time.sleep(settle_s)  # everything Home Assistant loads at start is loaded
            rss_baseline = _rss_mb(hass.pid)
            setup_started = time.monotonic()
            if history_days is None:
                api.setup_integration(ports[0])
                dev.add_gateway_subentries(api, "127.0.0.1", ports[1:])
            else:
                # Set up as at a start: the history is loaded and replayed, the first decision
                # fits every forecaster, before the entry's setup returns.
                api.set_entry_enabled(entry_id, True, timeout=1800)
                seeded["entry_setup_s"] = round(time.monotonic() - setup_started, 1)
            _wait_live(dev, api, want, timeout=900)
            live_s = time.monotonic() - setup_started
            time.sleep(warm_s)  # the first forecast refresh and registry writes
            probe = config / "probe.jsonl"
            cpu0, wall0, db0 = _cpu_s(hass.pid), time.monotonic(), database.mb()
            db_cpu0 = database.cpu_s()
            writes0 = _read_probe(probe)["state_changed"]
            t_start = time.time()
            load_start = os.getloadavg()[0]
            time.sleep(minutes * 60)
            load_end = os.getloadavg()[0]
            cpu1, wall1, db1 = _cpu_s(hass.pid), time.monotonic(), database.mb()
            db_cpu1 = database.cpu_s()
            stats = _read_probe(probe)
            lags = [
                lag for lag, t in zip(stats["lag_ms"], stats["t"], strict=False) if t >= t_start
            ]
            window = wall1 - wall0
            rss = _rss_mb(hass.pid)
            memory: Any = None
            if trace_memory:
                (config / "tracemalloc.request").touch()
                report = config / "tracemalloc.json"
                deadline = time.monotonic() + 300
                while not report.exists() and time.monotonic() < deadline:
                    time.sleep(2)
                memory = json.loads(report.read_text()) if report.exists() else "no report"
            final = _final_probe(config)
            entities = int(api.template("{{ integration_entities('datacenter_power') | count }}"))
            hass.send_signal(signal.SIGTERM)
            hass.wait(timeout=120)
            stored = sorted(config.glob(".storage/datacenter_power.*.history*"))
            history_mb = sum(p.stat().st_size for p in stored) / 1e6
            stalls = [s for s in stats["stalls"] if s["t"] >= t_start]
            return {
                "minutes": round(window / 60, 1),
                "devices": want,
                "gateways": len(ports),
                "entities": entities,
                "setup_to_all_live_s": round(live_s, 1),
                "cpu_pct": round(100 * (cpu1 - cpu0) / window, 1),
                "loop_lag_p99_ms": round(_percentile(lags, 0.99), 1),
                "loop_lag_max_ms": round(max(lags, default=0.0), 1),
                "state_writes_per_s": round((stats["state_changed"] - writes0) / window, 1),
                "recorder": recorder,
                "recorder_mb_per_day": round((db1 - db0) * 86400 / window, 1),
                "recorder_db_mb": round(db1, 1),
                "recorder_commit": _commits(stats, t_start, window),
                "database_server_cpu_pct": (
                    None
                    if db_cpu0 is None or db_cpu1 is None
                    else round(100 * (db_cpu1 - db_cpu0) / window, 1)
                ),
                "rss_mb": round(rss, 1),
                "rss_baseline_mb": round(rss_baseline, 1),
                "rss_added_mb": round(rss - rss_baseline, 1),
                "history_store_mb": round(history_mb, 2),
                "load_average_1min": [round(load_start, 2), round(load_end, 2)],
                "stalls": [
                    {
                        "t": round(s["t"] - t_start, 1),
                        "lag_ms": s["lag_ms"],
                        "stack": s["stacks"][:2],
                        "other_threads": s.get("threads", [])[:2],
                    }
                    for s in sorted(stalls, key=lambda s: -s["lag_ms"])[:5]
                ],
                "stall_count": len(stalls),
                "gc_frozen_objects": final["gc_frozen"],
                **seeded,
                "forecasting": final["forecasting"],
                "gc_pauses_ms": [
                    [round(t - t_start, 1), generation, ms]
                    for t, generation, ms in stats.get("gc", [])
                    if t >= t_start and ms > 50
                ],
                **_late_ticks(stats, t_start),
                **({"loop_profile": stats["profile"]} if sample else {}),
                **({"memory": memory} if trace_memory else {}),
            }
        finally:
            if hass is not None and hass.poll() is None:
                hass.kill()
            sim.terminate()
            sim.wait()
            database.close()


def main() -> None:
    """``python -m benchmarks.ha_run``: only the Home Assistant run (profiling aid)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ha_run", description=__doc__)
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "hall-1000.yaml")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--port", type=int, help="Home Assistant's HTTP port (default: a free one)")
    parser.add_argument("--sample", action="store_true", help="sample the loop's stack (profile)")
    parser.add_argument("--keep", type=Path, help="configuration directory to use and keep")
    parser.add_argument(
        "--trace-memory", action="store_true", help="tracemalloc's largest sites at the end"
    )
    parser.add_argument(
        "--history-days",
        type=float,
        nargs="*",
        help="restart with this many days of persisted history (e.g. 0 42: one run each)",
    )
    parser.add_argument(
        "--recorder",
        nargs="+",
        choices=("sqlite", "postgresql"),
        default=["sqlite"],
        help="the recorder's database (e.g. sqlite postgresql: one run each)",
    )
    args = parser.parse_args()
    for days, recorder in [(d, r) for d in args.history_days or [None] for r in args.recorder]:
        result = run(
            args.scenario,
            args.minutes,
            args.port,
            sample=args.sample,
            keep=args.keep,
            trace_memory=args.trace_memory,
            history_days=days,
            recorder=recorder,
        )
        print(json.dumps(result, indent=2), flush=True)


if __name__ == "__main__":
    main()
