"""Telemetry cost: one block read per device (our client) against one read per entity value.

Home Assistant's own ``modbus`` integration reads each entity's registers with its own request.
Both run here, in the same process, against the same simulated plant on loopback, so the ratio
is a like-for-like comparison of the request pattern.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient

from custom_components.datacenter_power.device.client import PlantClient
from custom_components.datacenter_power.device.models import DeviceIdentity
from custom_components.datacenter_power.device.registers import MAPS, Kind
from dcp_sim.plant import Plant
from dcp_sim.scenario import load_scenario
from dcp_sim.server import PlantServer


def _value_reads(identity: DeviceIdentity) -> list[tuple[int, int]]:
    """(address, count) of every value an entity would show, one request each."""
    block = MAPS[identity.device_type].measurements
    reads: list[tuple[int, int]] = []
    for f in block.fields:
        if f.kind is Kind.BITS and f.bits:
            reads += [(f.address, 1)] * len(f.bits)  # one binary sensor per alarm bit
        elif f.count > 1:
            n = len(identity.upstream) or f.count
            reads += [(f.address + i * f.element_words, f.element_words) for i in range(n)]
        else:
            reads.append((f.address, f.words))
    return reads


async def _measure(scenario: Path, rounds: int) -> dict[str, Any]:
    server = PlantServer(Plant(load_scenario(scenario), start_s=0.0), speed=0)
    port = await server.start("127.0.0.1", 0)
    try:
        async with PlantClient("127.0.0.1", port, timeout=2.0) as client:
            devices = await client.scan(range(1, max(server.unit_ids.values()) + 1))
            await client.read_all(devices)  # warm the connections
            before = client.request_count
            block_times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                await client.read_all(devices)
                block_times.append(time.perf_counter() - t0)
            block_requests = (client.request_count - before) / rounds

        per_value = {d.plant_id: _value_reads(d) for d in devices}
        raw = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2.0)
        await raw.connect()
        try:
            value_times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                for d in devices:
                    for address, count in per_value[d.plant_id]:
                        await raw.read_input_registers(address, count=count, device_id=d.unit_id)
                value_times.append(time.perf_counter() - t0)
        finally:
            raw.close()
    finally:
        await server.stop()
    value_requests = sum(len(v) for v in per_value.values())
    block_ms = statistics.median(block_times) * 1000
    value_ms = statistics.median(value_times) * 1000
    return {
        "scenario": scenario.stem,
        "devices": len(devices),
        "requests_per_refresh": block_requests,
        "requests_per_entity_value": value_requests,
        "request_ratio": round(value_requests / block_requests, 1),
        "refresh_ms": round(block_ms, 2),
        "per_value_refresh_ms": round(value_ms, 2),
        "time_ratio": round(value_ms / block_ms, 1),
    }


def run(scenarios: list[Path], rounds: int = 20) -> list[dict[str, Any]]:
    """Measure each scenario's plant."""
    return [asyncio.run(_measure(s, rounds)) for s in scenarios]
