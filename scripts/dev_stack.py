"""Run the simulator and Home Assistant together, onboard a demo user, and set up the integration.

Used by ``scripts/develop`` (interactive, Ctrl-C stops both) and ``scripts/develop --smoke`` (headless:
waits until every simulated device has live entities, prints one summary line and exits). Everything
goes through Home Assistant's public HTTP API, exactly as a person in the UI would.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # dcp_sim, for the expected device count
CLIENT_ID = "http://localhost:8123/"
DEMO_USER = ("demo", "demo-password-123")


def write_config(config_dir: Path, http_port: int, headless: bool) -> None:
    """Write a minimal configuration with the integration linked in and debug logging."""
    (config_dir / "custom_components").mkdir(parents=True, exist_ok=True)
    link = config_dir / "custom_components" / "datacenter_power"
    if not link.exists():
        link.symlink_to(REPO / "custom_components" / "datacenter_power")
    ui = "" if headless else "frontend:\nhistory:\nlogbook:\nenergy:\n"
    (config_dir / "configuration.yaml").write_text(
        "homeassistant:\n  name: Data Center\n  time_zone: UTC\n"
        f"http:\n  server_port: {http_port}\n"
        "api:\nconfig:\nonboarding:\nrepairs:\ndiagnostics:\n"
        + ui
        + "logger:\n  default: warning\n"
        "  logs:\n    custom_components.datacenter_power: debug\n"
    )


class Api:
    """Tiny JSON client for Home Assistant's HTTP API (urllib keeps this script dependency-free)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.token: str | None = None

    def call(self, method: str, path: str, body: Any = None, form: bool = False) -> Any:
        headers = {}
        data = None
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:500]
            raise SystemExit(f"{method} {path} failed: HTTP {err.code} {detail}") from None
        return json.loads(raw) if raw else None

    def wait_up(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"Home Assistant exited with code {proc.returncode}")
            try:
                self.call("GET", "/api/onboarding")
                return
            except urllib.error.URLError, ConnectionError, OSError:
                time.sleep(0.5)
        raise SystemExit("Home Assistant did not start serving its API in time")

    def onboard(self) -> None:
        """Create the demo user (first run) and log in as it."""
        steps = {s["step"]: s["done"] for s in self.call("GET", "/api/onboarding")}
        if not steps.get("user"):
            result = self.call(
                "POST",
                "/api/onboarding/users",
                {
                    "client_id": CLIENT_ID,
                    "name": "Demo",
                    "username": DEMO_USER[0],
                    "password": DEMO_USER[1],
                    "language": "en",
                },
            )
            code = result["auth_code"]
        else:
            code = self._login_code()
        tokens = self.call(
            "POST",
            "/auth/token",
            {"grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID},
            form=True,
        )
        self.token = tokens["access_token"]
        for step, path, body in (
            ("core_config", "/api/onboarding/core_config", None),
            ("analytics", "/api/onboarding/analytics", None),
            (
                "integration",
                "/api/onboarding/integration",
                {"client_id": CLIENT_ID, "redirect_uri": CLIENT_ID},
            ),
        ):
            if not steps.get(step):
                self.call("POST", path, body or {})

    def _login_code(self) -> str:
        flow = self.call(
            "POST",
            "/auth/login_flow",
            {"client_id": CLIENT_ID, "handler": ["homeassistant", None], "redirect_uri": CLIENT_ID},
        )
        result = self.call(
            "POST",
            f"/auth/login_flow/{flow['flow_id']}",
            {"client_id": CLIENT_ID, "username": DEMO_USER[0], "password": DEMO_USER[1]},
        )
        if result.get("type") != "create_entry":
            raise SystemExit(f"could not log in as the demo user: {result}")
        return str(result["result"])

    def setup_integration(self, sim_port: int) -> None:
        """Add the plant through the integration's real config flow, unless it is already set up."""
        entries = self.call("GET", "/api/config/config_entries/entry")
        if any(e["domain"] == "datacenter_power" for e in entries):
            return
        result = self.call(
            "POST",
            "/api/config/config_entries/flow",
            {"handler": "datacenter_power", "show_advanced_options": False},
        )
        deadline = time.monotonic() + 120
        while result.get("type") != "create_entry":
            if time.monotonic() > deadline:
                raise SystemExit(f"config flow did not finish: {result}")
            flow = f"/api/config/config_entries/flow/{result['flow_id']}"
            if result.get("type") == "form" and result.get("step_id") == "user":
                result = self.call("POST", flow, {"host": "127.0.0.1", "port": sim_port})
            elif result.get("type") in ("progress", "form"):
                time.sleep(0.5)
                result = (
                    self.call("GET", flow)
                    if result["type"] == "progress"
                    else self.call("POST", flow, {})
                )
            else:
                raise SystemExit(f"config flow stopped: {result}")

    def template(self, tpl: str) -> str:
        req = urllib.request.Request(
            self.base + "/api/template",
            data=json.dumps({"template": tpl}).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.read().decode().strip()


def add_gateway_subentries(api: Api, host: str, ports: list[int]) -> None:
    """Add each further gateway of the plant as a gateway subentry, through the real subentry
    flow (a gateway already in the plant aborts with ``already_configured``: nothing to do)."""
    entry = next(
        e
        for e in api.call("GET", "/api/config/config_entries/entry")
        if e["domain"] == "datacenter_power"
    )
    for port in ports:
        result = api.call(
            "POST",
            "/api/config/config_entries/subentries/flow",
            {"handler": [entry["entry_id"], "gateway"]},
        )
        flow = f"/api/config/config_entries/subentries/flow/{result['flow_id']}"
        result = api.call("POST", flow, {"host": host, "port": port})
        deadline = time.monotonic() + 120
        while result.get("type") == "progress":
            if time.monotonic() > deadline:
                raise SystemExit(f"gateway {host}:{port}: subentry flow did not finish")
            time.sleep(0.5)
            result = api.call("GET", flow)
        if result.get("type") == "progress_done":
            result = api.call("POST", flow, {})
        if result.get("type") not in ("create_entry", "abort"):
            raise SystemExit(f"gateway {host}:{port}: subentry flow stopped: {result}")


def gateway_count(scenario: Path) -> int:
    """How many gateways the simulator serves the scenario's plant over."""
    from dcp_sim.plant import Plant
    from dcp_sim.scenario import load_scenario
    from dcp_sim.server import assign_gateways

    return len(assign_gateways(Plant(load_scenario(scenario), start_s=0.0)))


def expected_devices(scenario: Path) -> int:
    from dcp_sim.scenario import load_scenario

    sc = load_scenario(scenario)
    return len(sc.ats) + len(sc.mpdus) + len(sc.circuits) + 1  # + the environment sensor


def smoke_wait(api: Api, want: int, timeout: float) -> int:
    ents = "integration_entities('datacenter_power')"
    last = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n_dev = int(
            api.template(
                "{{ " + ents + " | map('device_id') | reject('none') | unique | list | count }}"
            )
        )
        n_ent = int(api.template("{{ " + ents + " | count }}"))
        n_bad = int(
            api.template("{{ " + ents + " | select('is_state', 'unavailable') | list | count }}")
        )
        last = f"devices: {n_dev} entities: {n_ent} unavailable: {n_bad}"
        if n_dev >= want and n_ent > 0 and n_bad == 0:
            print(last, flush=True)
            return 0
        time.sleep(1)
    print(last, flush=True)
    print(f"smoke check failed: expected {want} devices with live entities", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", nargs="?", default=str(REPO / "scenarios" / "demo.yaml"))
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--sim-port", type=int, default=5020)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()

    config_dir = REPO / ("config-smoke" if args.smoke else "config")
    if args.smoke and config_dir.exists():
        subprocess.run(["rm", "-rf", str(config_dir)], check=True)
    write_config(config_dir, args.port, headless=args.smoke)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dcp_sim",
                args.scenario,
                "--port",
                str(args.sim_port),
                "--speed",
                str(args.speed),
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL if args.smoke else None,
        )
        procs.append(sim)
        hass_log = open(config_dir / "hass-console.log", "wb")  # noqa: SIM115
        hass = subprocess.Popen(
            [sys.executable, "-m", "homeassistant", "-c", str(config_dir)],
            env=env,
            cwd=REPO,
            stdout=hass_log,
            stderr=subprocess.STDOUT,
        )
        procs.append(hass)
        api = Api(f"http://127.0.0.1:{args.port}")
        api.wait_up(hass, timeout=180)
        api.onboard()
        api.setup_integration(args.sim_port)
        extra = range(args.sim_port + 1, args.sim_port + gateway_count(Path(args.scenario)))
        add_gateway_subentries(api, "127.0.0.1", list(extra))
        if args.smoke:
            want = expected_devices(Path(args.scenario))
            return smoke_wait(api, want, timeout=120 + want / 5)  # a hall takes longer
        print(
            f"\nHome Assistant: http://localhost:{args.port}  user: {DEMO_USER[0]}  "
            f"password: {DEMO_USER[1]}\nSimulator: Modbus TCP 127.0.0.1:{args.sim_port}"
            f"{f'-{extra[-1]}' if extra else ''}  "
            f"log: {config_dir / 'home-assistant.log'}\nCtrl-C stops both.",
            flush=True,
        )
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
