"""An undecodable reply (a faulty gateway's garbage) is contained in the device layer: the
device reads as unavailable, nothing is logged at ERROR, the event loop sees no exception, and
the connection keeps serving the other devices."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from custom_components.datacenter_power.device.client import PlantClient
from custom_components.datacenter_power.device.errors import DeviceLayerError, DeviceUnavailable
from custom_components.datacenter_power.device.models import DeviceIdentity, DeviceType
from dcp_sim.server import PlantServer
from tests.integration.modbus_proxy import ModbusProxy


async def test_garbage_reply_is_contained(
    server: PlantServer,
    devices: dict[str, DeviceIdentity],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Garbage for one unit: only it is unavailable; no loop exception, no traceback."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    identities = list(devices.values())
    proxy = ModbusProxy(server.port)
    port = await proxy.start()
    client = PlantClient("127.0.0.1", port, timeout=0.3)
    victim = identities[-1]
    try:
        proxy.faults[victim.unit_id] = "garbage"
        with caplog.at_level(logging.DEBUG):
            for _ in range(2):
                result = await client.read_all(identities, concurrency=1)
                assert isinstance(result[victim.plant_id], DeviceUnavailable)
                others = [i.plant_id for i in identities if i is not victim]
                assert all(not isinstance(result[p], Exception) for p in others), result
            sbm = next(i for i in identities if i.device_type is DeviceType.SBM)
            proxy.faults[sbm.unit_id] = "garbage"
            with pytest.raises(DeviceLayerError):
                await client.set_sbm_path(sbm, sbm.upstream[0])  # a write, garbage answered
            del proxy.faults[sbm.unit_id]
        assert not reported
        # pymodbus logs every unanswered request itself ("No response received"), at ERROR and
        # without a traceback; what must not appear is the fatal protocol error's traceback.
        assert not [
            r
            for r in caplog.records
            if r.exc_info or (r.levelno >= logging.ERROR and r.name == "asyncio")
        ]
        assert not [r for r in caplog.records if "Fatal error" in r.getMessage()]
        proxy.faults.clear()
        result = await client.read_all(identities, concurrency=1)
        assert not any(isinstance(r, Exception) for r in result.values())
    finally:
        loop.set_exception_handler(None)
        await client.close()
        await proxy.stop()
