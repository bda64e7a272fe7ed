"""``python -m benchmarks.counted_sim SPEC``: the simulator the benchmark measures against, which
also says how many requests it has served.

Requests per refresh are counted where they arrive, at the simulator, so that every side
(the device layer, the integration, Home Assistant's own ``modbus``) is counted the same way,
retries included, whatever its client code does. It is ``dcp_sim``'s :class:`PlantServer` (the
plant and server of ``python -m dcp_sim``) in a process of its own: it prints the ``gateways:``
line ``python -m dcp_sim`` prints, then answers each line read on stdin with
``requests N`` (``PlantServer.requests``: one per read request; a write counts twice), and stops
at the end of stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from dcp_sim.plant import Plant
from dcp_sim.scenario import load_scenario
from dcp_sim.server import PlantServer


async def _serve(scenario_path: str, speed: float) -> None:
    server = PlantServer(Plant(load_scenario(scenario_path), start_s=0.0), speed=speed)
    await server.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("gateways: " + " ".join(f"127.0.0.1:{p}" for p in server.ports), flush=True)
    try:
        while await reader.readline():
            print(f"requests {server.requests}", flush=True)
    finally:
        await server.stop()


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.counted_sim")
    parser.add_argument("scenario")
    parser.add_argument("--speed", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    asyncio.run(_serve(args.scenario, args.speed))


if __name__ == "__main__":
    main()
