"""Home Assistant itself (``python -m homeassistant``, recorder on) running the integration on
the 1,000-circuit hall at the default poll interval: CPU, event-loop lag, state writes, recorder
growth and memory, measured from outside the process and by a small probe integration inside.

The plant is served by ``python -m dcp_sim`` (8 gateways); Home Assistant is onboarded and the
integration added through its real config flow and gateway subentry flow, as
``scripts/develop`` does. Memory without the integration (``rss_baseline_mb``) is measured in
the same process before the plant is added.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

_PROBE_MANIFEST = {
    "domain": "dcp_probe",
    "name": "Benchmark probe",
    "version": "1.0.0",
    "documentation": "https://example.invalid",
    "codeowners": [],
    "iot_class": "calculated",
    "requirements": [],
}
_PROBE = '''
"""Event-loop lag (a 100 ms ticker) and state writes, dumped to probe.json every 5 s."""
import asyncio, json, time
from pathlib import Path
from homeassistant.const import EVENT_STATE_CHANGED

DOMAIN = "dcp_probe"


async def async_setup(hass, config):
    stats = {"lag_ms": [], "state_changed": 0, "t": []}
    out = Path(hass.config.path("probe.json"))

    def count(_event):
        stats["state_changed"] += 1

    hass.bus.async_listen(EVENT_STATE_CHANGED, count)

    async def tick():
        loop = asyncio.get_running_loop()
        last_dump = loop.time()
        while True:
            before = loop.time()
            await asyncio.sleep(0.1)
            stats["lag_ms"].append(round((loop.time() - before - 0.1) * 1000, 2))
            stats["t"].append(round(time.time(), 1))
            if loop.time() - last_dump > 5:
                last_dump = loop.time()
                out.write_text(json.dumps(stats))

    hass.async_create_background_task(tick(), "dcp_probe ticker")

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


def _write_config(config: Path, http_port: int) -> None:
    components = config / "custom_components"
    (components / "dcp_probe").mkdir(parents=True)
    (components / "datacenter_power").symlink_to(ROOT / "custom_components" / "datacenter_power")
    (components / "dcp_probe" / "manifest.json").write_text(json.dumps(_PROBE_MANIFEST))
    (components / "dcp_probe" / "__init__.py").write_text(_PROBE)
    (config / "configuration.yaml").write_text(
        "homeassistant:\n  name: Hall\n  time_zone: UTC\n"
        f"http:\n  server_port: {http_port}\n"
        "api:\nconfig:\nonboarding:\nrecorder:\ndcp_probe:\n"
        "logger:\n  default: warning\n"
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


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def run(scenario: Path, minutes: float, http_port: int = 8401) -> dict[str, Any]:
    """Run Home Assistant with the plant for ``minutes`` after every device is live."""
    dev = _dev_stack()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("REQUESTS_CA_BUNDLE", None)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp)
        _write_config(config, http_port)
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
            log = (config / "console.log").open("wb")
            # Not from the repository (nor with it on the path): Home Assistant must find both
            # custom integrations in the configuration's custom_components.
            hass_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
            hass = subprocess.Popen(
                [sys.executable, "-m", "homeassistant", "-c", str(config)],
                cwd=config,
                env=hass_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            api = dev.Api(f"http://127.0.0.1:{http_port}")
            api.wait_up(hass, timeout=300)
            api.onboard()
            time.sleep(30)  # settle: everything Home Assistant loads at start is loaded
            rss_baseline = _rss_mb(hass.pid)
            setup_started = time.monotonic()
            api.setup_integration(ports[0])
            dev.add_gateway_subentries(api, "127.0.0.1", ports[1:])
            want = dev.expected_devices(scenario)
            dev.smoke_wait(api, want, timeout=600)
            live_s = time.monotonic() - setup_started
            time.sleep(60)  # the first forecast refresh and registry writes
            probe = config / "probe.json"
            cpu0, wall0, db0 = _cpu_s(hass.pid), time.monotonic(), _db_mb(config)
            writes0 = json.loads(probe.read_text())["state_changed"]
            t_start = time.time()
            time.sleep(minutes * 60)
            cpu1, wall1, db1 = _cpu_s(hass.pid), time.monotonic(), _db_mb(config)
            stats = json.loads(probe.read_text())
            lags = [
                lag for lag, t in zip(stats["lag_ms"], stats["t"], strict=False) if t >= t_start
            ]
            window = wall1 - wall0
            rss = _rss_mb(hass.pid)
            entities = int(api.template("{{ integration_entities('datacenter_power') | count }}"))
            hass.send_signal(signal.SIGTERM)
            hass.wait(timeout=120)
            stored = sorted(config.glob(".storage/datacenter_power.*.history"))
            history_mb = sum(p.stat().st_size for p in stored) / 1e6
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
                "recorder_mb_per_day": round((db1 - db0) * 86400 / window, 1),
                "rss_mb": round(rss, 1),
                "rss_baseline_mb": round(rss_baseline, 1),
                "rss_added_mb": round(rss - rss_baseline, 1),
                "history_store_mb": round(history_mb, 2),
            }
        finally:
            if hass is not None and hass.poll() is None:
                hass.kill()
            sim.terminate()
            sim.wait()
