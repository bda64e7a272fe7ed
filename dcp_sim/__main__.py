"""``python -m dcp_sim SCENARIO``: serve a scenario's plant over Modbus TCP (``scripts/simulate``).

The plant starts at scenario t=0 (the history period is not replayed) and runs at ``--speed``
simulated seconds per second. Exit status 2 for a bad command line or scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from .plant import Plant
from .scenario import ScenarioError, load_scenario
from .server import PlantServer

_LOGGER = logging.getLogger("dcp_sim")
_STATUS_EVERY_S = 3600.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcp_sim",
        description="Serve a simulated data-center power plant over Modbus TCP, one unit id per "
        "device (docs/register-map.md).",
    )
    parser.add_argument("scenario", help="scenario file (YAML, docs/scenario-format.md)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port",
        type=int,
        default=5020,
        help="TCP port of the first gateway (default 5020); further gateways on the next ports",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per wall-clock second (default 1; 0 = frozen)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


async def _serve(server: PlantServer, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await server.start(host, port)
    for i, bound in enumerate(server.ports):
        _LOGGER.info(
            "gateway %d (%d devices): serving on %s:%s at speed %g",
            i + 1,
            len(server.gateways[i]),
            host,
            bound,
            server.speed,
        )
    # One line a script can read: every gateway's port, in order.
    print("gateways: " + " ".join(f"{host}:{p}" for p in server.ports), flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
        _LOGGER.info("stopped at t=%.0f s", server.plant.t_s)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("pymodbus").setLevel(logging.WARNING)
    if args.speed < 0:
        parser.error(f"--speed must be >= 0, got {args.speed:g}")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0..65535, got {args.port}")
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"python -m dcp_sim: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"python -m dcp_sim: error: cannot read {args.scenario}: {exc}", file=sys.stderr)
        return 2
    plant = Plant(scenario, start_s=0.0)
    try:
        server = PlantServer(plant, speed=args.speed)
    except ValueError as exc:
        print(f"python -m dcp_sim: error: {args.scenario}: {exc}", file=sys.stderr)
        return 2

    _LOGGER.info(
        "scenario %s: %s devices on %d gateway(s)",
        scenario.name,
        len(server.unit_ids),
        len(server.gateways),
    )
    for i, units in enumerate(server.gateways):
        for unit in units.values():
            _LOGGER.info(
                "  gateway %d unit %3d  %-4s  %s",
                i + 1,
                unit.unit_id,
                unit.device_type.name,
                unit.plant_id,
            )
    next_status = [_STATUS_EVERY_S]

    def status(srv: PlantServer) -> None:
        if srv.plant.t_s >= next_status[0]:
            next_status[0] += _STATUS_EVERY_S
            _LOGGER.info(
                "t=%.0f h (%s), %d requests",
                srv.plant.t_s / 3600,
                srv.plant.timestamp,
                srv.requests,
            )

    server.on_step = status
    try:
        asyncio.run(_serve(server, args.host, args.port))
    except OSError as exc:
        print(
            f"python -m dcp_sim: error: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
