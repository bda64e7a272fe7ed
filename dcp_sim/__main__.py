"""``python -m dcp_sim SCENARIO``: serve a scenario's plant over Modbus TCP (``scripts/simulate``).

The plant starts at scenario t=0 (the history period is not replayed) and runs at ``--speed``
simulated seconds per second. With ``--from T`` it first runs through the history period and the
scenario up to T, then serves from T on (``scripts/develop`` gives Home Assistant the same
history, so that the live plant continues exactly where that history ends). Every circuit
interruption is logged as it happens. Exit status 2 for a bad command line or scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import sys
from collections.abc import Sequence

from .plant import Plant
from .scenario import ScenarioError, load_scenario, parse_duration
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
    parser.add_argument(
        "--from",
        dest="start_at",
        type=_duration,
        default=None,
        metavar="DURATION",
        help="run through the history and the scenario up to this time (e.g. 13h50m), then serve",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _duration(text: str) -> float:
    seconds = 0.0
    rest = text.strip()
    if not rest:
        raise argparse.ArgumentTypeError("empty duration")
    # Compound durations (13h50m) are sums of the scenario format's single-unit durations.
    parts = re.findall(r"\d+(?:\.\d+)?(?:ms|s|m|h|d)?", rest)
    if "".join(parts) != rest:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 45s, 30m, 13h50m)")
    for part in parts:
        try:
            seconds += parse_duration(part)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return seconds


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
    if args.start_at is None:
        plant = Plant(scenario, start_s=0.0)
    else:
        plant = Plant(scenario)
        plant.advance_to(args.start_at)
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
    next_status = [_STATUS_EVERY_S * (plant.t_s // _STATUS_EVERY_S + 1)]
    start_interruptions = plant.metrics.interruptions
    interruptions = [start_interruptions]
    _LOGGER.info("serving from t=%.0f s (%s)", plant.t_s, plant.timestamp)

    def status(srv: PlantServer) -> None:
        if srv.plant.metrics.interruptions != interruptions[0]:
            interruptions[0] = srv.plant.metrics.interruptions
            _LOGGER.warning(
                "t=%.0f s: circuit interruption; interruptions while serving: %d",
                srv.plant.t_s,
                interruptions[0] - start_interruptions,
            )
        if srv.plant.t_s >= next_status[0]:
            next_status[0] += _STATUS_EVERY_S
            _LOGGER.info(
                "t=%.0f h (%s), %d requests, interruptions while serving: %d",
                srv.plant.t_s / 3600,
                srv.plant.timestamp,
                srv.requests,
                srv.plant.metrics.interruptions - start_interruptions,
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
