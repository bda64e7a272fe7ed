"""Give a plant's config entry weeks of persisted history before Home Assistant loads it, so that
the benchmark measures a hall in steady state (full forecaster rings, a full history log) rather
than one that has just started.

The rows are the simulator's own plant (its load model: daily and weekly shape, holidays, noise)
run through the ``days`` before scenario t=0, one per ``HISTORY_BUCKET_S``, as the engine's
observation builder sees it, stamped so that the history ends at ``end_wall``. They are kept in
the integration's ``HistoryLog`` and written by its ``HistoryStore`` (a throwaway
``HomeAssistant`` object on the configuration directory, while the real one is stopped): the
files are exactly what the integration persists and replays at start-up.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

DAY_S = 86400.0


def history_log(scenario_path: Path, days: float, end_wall: float) -> Any:
    """``days`` of the scenario's plant, one row per bucket, ending at ``end_wall``."""
    from custom_components.datacenter_power.decisions import HISTORY_BUCKET_S, HISTORY_MAX_S
    from custom_components.datacenter_power.history_columns import HistoryLog
    from dcp_eval.harness import observation_from_telemetry, topology_from_scenario
    from dcp_sim.plant import Plant
    from dcp_sim.scenario import load_scenario

    scenario = load_scenario(scenario_path)
    topology = topology_from_scenario(scenario)
    plant = Plant(scenario, start_s=-days * DAY_S)
    log = HistoryLog(HISTORY_BUCKET_S, HISTORY_MAX_S)
    t = plant.t_s
    while t <= 0.0:
        plant.advance_to(t)
        log.record(observation_from_telemetry(plant.telemetry(), end_wall, topology))
        t += HISTORY_BUCKET_S
    return log


async def _write(config: Path, entry_id: str, log: Any) -> None:
    from homeassistant.core import HomeAssistant

    from custom_components.datacenter_power.history_store import HistoryStore

    store = HistoryStore(HomeAssistant(str(config)), entry_id)
    if log is None:
        await store.async_remove()
    else:
        await store.async_save(log, every_day=True)


def seed(config: Path, entry_id: str, scenario: Path, days: float) -> dict[str, Any]:
    """Replace the entry's persisted history with ``days`` of the plant ending now (none at 0:
    the stored history is removed, as on a first start). Home Assistant must be stopped."""
    started = time.monotonic()
    log = history_log(scenario, days, time.time()) if days > 0 else None
    asyncio.run(_write(config, entry_id, log))
    stored = sorted(config.glob(f".storage/datacenter_power.{entry_id}.history*"))
    return {
        "history_days": days,
        "history_rows": 0 if log is None else len(log),
        "history_files": len(stored),
        "history_store_mb": round(sum(p.stat().st_size for p in stored) / 1e6, 2),
        "seed_s": round(time.monotonic() - started, 1),
    }
