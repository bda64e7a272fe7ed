"""The engine's persisted history at hall size: bytes on disk and save time, 14 days kept.

Rows come from the simulated hall (a few hours at 5-minute buckets, repeated over 14 days with
each current moved by a few milliamps of noise, so that compression sees fresh numbers). The
columns (``history_columns.py``, one file a day, only the changed day rewritten) are measured
against the typed rows of storage version 2 (every row a JSON object, the whole file rewritten
at every save); the typed rows are measured on one day and scaled to 14 (they grow linearly).
"""

from __future__ import annotations

import json
import random
import time
import tracemalloc
from dataclasses import replace
from typing import Any

import orjson

from custom_components.datacenter_power.history import pack_observation
from custom_components.datacenter_power.history_columns import DAY_S, HistoryLog, encode_day
from dcp_eval.harness import epoch0, observation_from_telemetry, topology_from_scenario
from dcp_sim.plant import Plant

from .hall import hall_scenario

BUCKET_S = 300.0
KEEP_DAYS = 14


def run(
    n_circuits: int = 1000, sampled_hours: float = 2.0, days: int = KEEP_DAYS
) -> dict[str, Any]:
    """Size and save time of ``days`` of history of an ``n_circuits`` hall."""
    sc = hall_scenario(n_circuits, history="0s")
    topology = topology_from_scenario(sc)
    plant = Plant(sc, start_s=0.0)
    t0 = epoch0(sc)
    t0 -= t0 % DAY_S
    sampled = []
    while plant.t_s < sampled_hours * 3600:
        plant.advance_to(plant.t_s + BUCKET_S)
        sampled.append(observation_from_telemetry(plant.telemetry(), t0, topology))
    rng = random.Random(11)
    per_day = int(DAY_S / BUCKET_S)
    tracemalloc.start()
    log = HistoryLog(BUCKET_S, days * DAY_S)
    for i in range(days * per_day):
        obs = sampled[i % len(sampled)]
        circuits = {
            cid: replace(c, current_a=c.current_a + rng.uniform(-0.005, 0.005))
            for cid, c in obs.circuits.items()
        }
        log.record(replace(obs, t_s=t0 + i * BUCKET_S, circuits=circuits))
    memory_mb = tracemalloc.get_traced_memory()[0] / 1e6
    tracemalloc.stop()
    kept = log.days
    snapshot = log.snapshot_days(kept)
    sizes = [len(json.dumps(encode_day(snapshot[d]))) for d in kept]
    full_day = max(kept[:-1] or kept, key=lambda d: len(snapshot[d][0][1]) if snapshot[d] else 0)
    started = time.perf_counter()
    text = json.dumps(encode_day(log.snapshot_days([full_day])[full_day]))
    save_s = time.perf_counter() - started
    # Storage version 2: every row a JSON object, all days in one file, rewritten in full.
    typed = [pack_observation(o) for o in sampled[: min(len(sampled), per_day)]]
    started = time.perf_counter()
    typed_bytes = len(orjson.dumps(typed))
    typed_s = time.perf_counter() - started
    scale = days * per_day / len(typed)
    return {
        "circuits": n_circuits,
        "days": days,
        "rows": len(log),
        "store_mb": round(sum(sizes) / 1e6, 2),
        "day_file_mb": round(len(text) / 1e6, 2),
        "save_ms": round(save_s * 1000, 1),
        "memory_mb": round(memory_mb, 1),
        "typed_rows_mb": round(typed_bytes * scale / 1e6, 1),
        "typed_rows_save_ms": round(typed_s * scale * 1000, 1),
    }
