"""``scripts/benchmark --small``: every scaling figure is produced (on small plants), so that the
benchmark cannot rot. Nothing here is timed; the figures' meaning is checked, not their speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# The subprocess has its own limit; Home Assistant starts, sets the demo plant up and runs it.
@pytest.mark.timeout(1500)
def test_benchmark_small_runs_and_reports_every_key() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("REQUESTS_CA_BUNDLE", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--json",
            "--small",
            "--rounds",
            "2",
            "--ha-minutes",
            "0.3",
            "--recorder",
            "postgresql",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    for key in (
        "cpus",
        "poll",
        "baseline_ha_modbus",
        "ha_1000",
        "command_latency_ms",
        "forecast_refresh_s",
        "plan_ms",
        "plan_optimality_gap",
        "evaluate_1000_s",
    ):
        assert key in report, key
    assert report["cpus"] >= 1
    poll = report["poll"]["50"]
    assert poll["devices"] == 50
    assert poll["requests_per_refresh"] == 50  # one request per device
    ours = report["integration_50"]
    base = report["baseline_ha_modbus"]
    assert ours["devices"] == base["devices"] == 50
    # Counted where they arrive, at the simulator, and by the integration's own clients.
    assert ours["requests_per_refresh"] == ours["requests_per_refresh_sent"] == 50
    # The baseline is Home Assistant's own modbus integration, not an emulation of it: it set up
    # its entities from YAML, read every one of them, and its requests reached the simulator.
    assert base["source"] == "homeassistant.components.modbus"
    assert base["hubs"] == 1
    assert base["modbus_entities"] > 0
    assert base["template_binary_sensors"] > 0
    assert base["entities"] == base["modbus_entities"] + base["template_binary_sensors"]
    assert base["unavailable_after"] == 0
    # One request per modbus entity (its own read, through the hub's lock), counted at the
    # simulator: more than ten times ours on the same plant.
    assert base["requests_per_refresh"] == base["modbus_entities"]
    assert base["requests_per_refresh"] >= 10 * ours["requests_per_refresh"]
    # Its inhibit switch was commanded during refreshes and reads back what was last asked.
    assert base["command_failures"] == 0
    assert base["command_reflected"] is True
    for latency in (report["command_latency_ms"], base["command_latency_ms"]):
        assert 0 < latency["p50"] <= latency["p99"]
    assert report["integration_1000"]["command_reflected"] is True
    assert report["plan_optimality_gap"] is not None
    assert report["plan_optimality_gap"] >= 0
    assert report["forecast_refresh_s"] > 0
    assert report["evaluate_1000_s"] > 0
    # Each engine figure says how much CPU it took and how loaded the machine was meanwhile.
    engine = report["engine_1000"]
    assert engine["plan_cpu_ms"] > 0
    assert len(engine["plan_ms_runs"]) == 3
    assert engine["plan_ms"] == sorted(engine["plan_ms_runs"])[1]  # the median
    assert engine["plan_load_1min"] >= 0
    assert engine["forecast_refresh_load_1min"] >= 0
    assert report["evaluate_1000"]["cpu_s"] > 0
    assert report["evaluate_1000"]["load_1min_start"] >= 0
    # Home Assistant ran the small plant (demo.yaml) and the probe measured it.
    ha = report["ha_1000"]
    assert ha["scenario"] == "demo.yaml"
    assert ha["devices"] >= 10
    assert ha["entities"] > ha["devices"]
    assert ha["rss_mb"] > ha["rss_baseline_mb"] > 0
    assert ha["cpu_pct"] > 0
    assert ha["loop_lag_max_ms"] >= ha["loop_lag_p99_ms"] >= 0
    assert len(ha["load_average_1min"]) == 2
    # The same plant again with the recorder on a real PostgreSQL server, beside SQLite's run.
    pg = report["ha_1000_postgresql"]
    assert ha["recorder"] == "sqlite"
    assert pg["recorder"] == "postgresql"
    assert pg["entities"] == ha["entities"]
    for run in (ha, pg):
        commits = run["recorder_commit"]
        # The probe timed the recorder's commits (the demo's plant changes once a minute, so the
        # short window may hold none; the setup before it holds many).
        assert commits["timed_since_start"] >= commits["count"] >= 0
        assert commits["timed_since_start"] > 0
        assert 0 <= commits["ms_p50"] <= commits["ms_max"]
        assert run["recorder_db_mb"] > 0
    assert ha["database_server_cpu_pct"] is None  # SQLite runs inside Home Assistant
    assert pg["database_server_cpu_pct"] >= 0
    assert set(report["recorder_comparison"]) == {"sqlite", "postgresql"}
    # The history as columns is far smaller than the typed rows it replaced.
    store = report["history_store"]
    assert store["rows"] == 2 * 288
    assert 0 < store["store_mb"] < store["typed_rows_mb"] / 5
