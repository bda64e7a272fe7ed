"""``scripts/campus``: a campus of halls on one machine, on the engines a site would run.

One Mosquitto broker (``dcp_campus.broker``: a user and an ACL per hall, the campus's own user),
N halls and one campus Home Assistant:

* each hall is ``scripts/develop`` run headless (``dev_stack.py``): a simulator serving a hall of
  ``--circuits`` circuits over Modbus TCP, a Home Assistant with the integration in approval mode,
  its recorder on a PostgreSQL server of the hall's own (``pg_server``); then Home Assistant's
  ``mqtt`` integration is added with the hall's broker user, its birth and last will on the
  hall's availability topic, and the plant's ``campus_hall`` option names the hall, so that it
  publishes its summary with MQTT discovery and takes approvals from the campus;
* the campus is a plain Home Assistant with only the ``mqtt`` integration (the campus user):
  every hall appears there as devices, with no code of ours.

Every hall's plant has an ATS wearing out (its contacts), so that each hall has an alert and a
proposal to approve soon after it goes live. With ``--measure`` the command waits until the
campus shows every hall, measures (``campus_measure.py``), provokes the faults of issue 25 and
prints one JSON line; without it, it prints the URLs and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "scripts"))
from dev_stack import Api, write_config  # noqa: E402
from stack_procs import ignore_further_stops, spawn, stop_all  # noqa: E402

from benchmarks.hall import hall_spec  # noqa: E402
from dcp_campus.broker import Broker  # noqa: E402

WORK = REPO / "config-campus"
FAILURE_H = 14.0
"""Scenario hour at which each hall's worn ATS fails (its wear shows from hour 2)."""
LIVE_BEFORE_FAILURE_S = 15 * 60.0
"""Each hall goes live this long before its failure: the alert and a proposal are up at once
(time to approve from the campus), and the failure comes during the measurement, which lasts
until every hall's failure is past."""
READY_TIMEOUT_S = 900.0
CAMPUS_CONFIG = (
    "# Written by scripts/campus: a plain Home Assistant; the halls arrive over MQTT.\n"
    "api:\nconfig:\nonboarding:\nfrontend:\nhistory:\nlogbook:\n"
    "logger:\n  default: warning\n"
)


def log(msg: str) -> None:
    print(f"campus: {msg}", flush=True)


@dataclass
class Hall:
    """One hall: its ``dev_stack.py`` process (simulator, Home Assistant, PostgreSQL)."""

    name: str
    config: Path
    port: int
    sim_port: int
    pg_port: int
    proc: subprocess.Popen[bytes] | None = None
    ready_from: int = 0
    """Where this start's lines begin in the stack's log."""
    failure_at: float = 0.0
    """Wall-clock time of this start's ATS failure."""
    api: Api = field(init=False)

    def __post_init__(self) -> None:
        self.api = Api(f"http://127.0.0.1:{self.port}")

    @property
    def console(self) -> Path:
        return self.config.parent / f"{self.name}-stack.log"

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"


def hall_scenario(path: Path, name: str, circuits: int, seed: int) -> Path:
    """A hall of ``circuits`` circuits whose first ATS wears out and fails at ``FAILURE_H``."""
    spec = hall_spec(circuits, history="1d", duration="1d", name=name)
    spec["seed"] = seed
    spec["events"] = [
        {
            "kind": "ats_contact_wear",
            "target": "ats1",
            "onset": "2h",
            "failure": f"{FAILURE_H:g}h",
            "repair_after": "30m",
        }
    ]
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def start_hall(hall: Hall, scenario: Path, env: dict[str, str]) -> None:
    """``dev_stack.py`` headless for the hall (a first start adds the plant, later ones keep it)."""
    start_at = FAILURE_H * 3600.0 - LIVE_BEFORE_FAILURE_S
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "dev_stack.py"),
        str(scenario),
        "--config",
        str(hall.config),
        "--port",
        str(hall.port),
        "--sim-port",
        str(hall.sim_port),
        "--policy-mode",
        "approval",
        "--recorder",
        "postgresql",
        "--pg-port",
        str(hall.pg_port),
        "--from",
        f"{start_at:g}",
        "--headless",
    ]
    hall.ready_from = hall.console.stat().st_size if hall.console.exists() else 0
    hall.failure_at = time.time() + LIVE_BEFORE_FAILURE_S  # the simulator runs in real time
    hall.proc = spawn(cmd, env=env, cwd=REPO, log=hall.console.open("ab"))


def wait_ready(halls: list[Hall], timeout_s: float) -> None:
    """Until every hall's stack printed READY (its plant live); exits on a stack that died."""
    deadline = time.monotonic() + timeout_s
    waiting = list(halls)
    while waiting:
        for hall in list(waiting):
            assert hall.proc is not None
            with hall.console.open("rb") as log_file:  # this start's lines only
                log_file.seek(hall.ready_from)
                ready = b"READY" in log_file.read()
            if ready:
                waiting.remove(hall)
                hall.api.onboard()  # logs in as the demo user
            elif hall.proc.poll() is not None:
                raise SystemExit(
                    f"{hall.name} stopped (exit {hall.proc.returncode}): see {hall.console}"
                )
        if time.monotonic() > deadline:
            raise SystemExit(
                f"not ready after {timeout_s:.0f} s: {', '.join(h.name for h in waiting)}"
            )
        time.sleep(2)


def _flow(api: Api, path: str, values: dict[str, Any]) -> dict[str, Any]:
    """Run a config or options flow to its end, answering every form with ``values``."""
    result: dict[str, Any] = api.call("POST", path, values.pop("_init"))
    deadline = time.monotonic() + 60
    while result.get("type") == "form":
        if time.monotonic() > deadline:
            raise SystemExit(f"flow did not finish: {result}")
        fields = {f["name"] for f in result.get("data_schema", [])}
        answer = {k: v for k, v in values.items() if k in fields}
        result = api.call("POST", f"{path}/{result['flow_id']}", answer)
        if result.get("errors"):
            raise SystemExit(f"flow refused {answer}: {result['errors']}")
    if result.get("type") not in ("create_entry", "abort"):
        raise SystemExit(f"flow stopped: {result}")
    return result


def add_mqtt(api: Api, broker: Broker, user: str, availability: str | None) -> str:
    """Home Assistant's own mqtt integration with this broker user (and, for a hall, its birth
    and last will on the hall's availability topic); returns the entry id."""
    entries = api.call("GET", "/api/config/config_entries/entry")
    entry = next((e for e in entries if e["domain"] == "mqtt"), None)
    if entry is None:
        name, password = broker.credentials(user)
        done = _flow(
            api,
            "/api/config/config_entries/flow",
            {
                "_init": {"handler": "mqtt", "show_advanced_options": True},
                "broker": broker.host,
                "port": broker.port,
                "username": name,
                "password": password,
                # A host that vanishes without closing its connection is seen after 1.5
                # keepalives: 30 s gives the last will within 45 s (docs/scaling.md).
                "other_settings": {
                    "keepalive": 30,
                    "set_client_cert": False,
                    "set_ca_cert": "off",
                    "transport": "tcp",
                },
            },
        )
        entry_id = str(done["result"]["entry_id"])
    else:
        entry_id = str(entry["entry_id"])
    if availability is not None:
        _flow(
            api,
            "/api/config/config_entries/options/flow",
            {
                "_init": {"handler": entry_id, "show_advanced_options": True},
                "discovery": True,
                "discovery_prefix": "homeassistant",
                "birth_enable": True,
                "birth_topic": availability,
                "birth_payload": "online",
                "birth_qos": "1",
                "birth_retain": True,
                "will_enable": True,
                "will_topic": availability,
                "will_payload": "offline",
                "will_qos": "1",
                "will_retain": True,
            },
        )
    return entry_id


def publish_hall(hall: Hall) -> None:
    """The plant's ``campus_hall`` option: the hall publishes and takes campus approvals."""
    entry_id = hall.api.plant_entry()
    if entry_id is None:
        raise SystemExit(f"{hall.name}: the plant is not set up")
    flow = hall.api.call("POST", "/api/config/config_entries/options/flow", {"handler": entry_id})
    current = {
        f["name"]: f.get("description", {}).get("suggested_value", f.get("default"))
        for f in flow.get("data_schema", [])
    }
    if current.get("campus_hall") == hall.name:
        hall.api.call("DELETE", f"/api/config/config_entries/options/flow/{flow['flow_id']}")
        return
    values = {k: v for k, v in current.items() if v is not None} | {"campus_hall": hall.name}
    done = hall.api.call(
        "POST", f"/api/config/config_entries/options/flow/{flow['flow_id']}", values
    )
    if done.get("type") != "create_entry":
        raise SystemExit(f"{hall.name}: options flow stopped: {done}")


def start_campus(config: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    config.mkdir(parents=True, exist_ok=True)
    path = config / "configuration.yaml"
    if not path.exists():
        path.write_text(CAMPUS_CONFIG)
    env = dict(env, SETUP_PORT=str(port))
    return spawn(
        [sys.executable, "-m", "homeassistant", "-c", str(config)],
        env=env,
        cwd=REPO,
        log=(config / "hass-console.log").open("ab"),
    )


def _passwords(path: Path, names: list[str]) -> dict[str, str]:
    """The broker users' passwords, made once and kept (0600) so that every hall's and the
    campus's mqtt entry still logs in at the next start."""
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    users = ["campus", *names]
    if any(u not in known for u in users):
        known |= {u: secrets.token_urlsafe(16) for u in users if u not in known}
        path.write_text(json.dumps(known))
        path.chmod(0o600)
    return {u: known[u] for u in users}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--halls", type=int, default=2, help="number of halls (default 2)")
    parser.add_argument("--circuits", type=int, default=250, help="circuits per hall (default 250)")
    parser.add_argument("--port", type=int, default=8300, help="the campus's HTTP port; halls next")
    parser.add_argument("--measure", action="store_true", help="measure, print one JSON line, stop")
    parser.add_argument("--fresh", action="store_true", help="start every instance over")
    parser.add_argument(
        "--work", default=str(WORK), help=f"working directory (default {WORK.name}/)"
    )
    return parser


def main() -> int:
    args = _parser().parse_args()
    if not 1 <= args.halls <= 20:
        raise SystemExit("--halls must be 1 to 20")
    work = Path(args.work).resolve()
    if args.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    names = [f"hall{i + 1}" for i in range(args.halls)]
    broker = Broker(
        work / "broker", halls=names, passwords=_passwords(work / "passwords.json", names)
    )
    halls = [
        Hall(
            name,
            work / name / "config",
            port=args.port + 1 + i,
            sim_port=5200 + 20 * i,
            pg_port=5500 + i,
        )
        for i, name in enumerate(names)
    ]
    campus_config = work / "campus"
    campus_proc: subprocess.Popen[bytes] | None = None
    pg_servers: list[Any] = []

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        broker.start()
        log(f"Mosquitto on {broker.host}:{broker.port} (users: {', '.join(names)}, campus)")
        for i, hall in enumerate(halls):
            hall.config.mkdir(parents=True, exist_ok=True)
            write_config(hall.config, headless=False)
            scenario = hall_scenario(
                work / hall.name / "scenario.yaml", hall.name, args.circuits, 11 + i
            )
            start_hall(hall, scenario, env)
        campus_proc = start_campus(campus_config, args.port, env)
        campus = Api(f"http://127.0.0.1:{args.port}")
        campus.wait_up(campus_proc, timeout=300)
        campus.onboard()
        campus.core_config()
        add_mqtt(campus, broker, "campus", None)
        wait_ready(halls, READY_TIMEOUT_S)
        for hall in halls:
            add_mqtt(hall.api, broker, hall.name, f"dcp/{hall.name}/availability")
            publish_hall(hall)
        log(f"every hall is up and publishing after {time.monotonic() - started:.0f} s")
        if args.measure:
            import campus_measure

            def restart_hall(hall: Hall) -> None:
                start_hall(hall, work / hall.name / "scenario.yaml", env)
                wait_ready([hall], READY_TIMEOUT_S)

            try:
                result = campus_measure.measure(
                    broker, halls, campus, campus_proc, started, restart_hall
                )
            finally:
                pg_servers = campus_measure.STARTED_HERE
            print(json.dumps(result), flush=True)
            return 0
        print(f"\nCampus: http://localhost:{args.port}  (user demo / demo-password-123)")
        for hall in halls:
            print(f"{hall.name}: {hall.url}  log: {hall.config / 'home-assistant.log'}")
        print(f"Broker: mqtt://127.0.0.1:{broker.port}  log: {broker.log_path}\nCtrl-C stops all.")
        while campus_proc.poll() is None:
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        ignore_further_stops()
        procs = [h.proc for h in halls if h.proc is not None]
        if campus_proc is not None:
            procs.append(campus_proc)
        stop_all(procs)
        for server in pg_servers:  # started again by a fault: no stack owns it any more
            server.stop()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
