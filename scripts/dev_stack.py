"""Run the simulator and Home Assistant together, onboard a demo user, and set up the integration.

Used by ``scripts/develop`` (interactive: runs until Ctrl-C), ``scripts/develop --smoke``
(headless: waits until every simulated device has live entities, prints one summary line and
exits) and the browser check (``scripts/browser_check.py``). Everything goes through Home
Assistant's public HTTP and websocket APIs, as a person in the UI would:

* first start: onboarding creates the demo user; core config (country, location, units, time
  zone) is set like the general settings page does; the plant is added through the integration's
  config flow and its options set to automatic migration;
* later starts on the same configuration directory log in as the demo user and keep everything
  (names, dashboards, options, Home Assistant's history); ``--fresh`` starts over;
* the HTTP port is Home Assistant's stored HTTP setting (no YAML ``http:``, which Home Assistant
  would treat as a trial and revert five minutes later);
* the simulator may stop and start again (``scripts/simulate`` on the same port): Home Assistant
  stays up and the integration reconnects.
* ``--recorder postgresql``: Home Assistant records into a PostgreSQL server started (first)
  and stopped (last) with the stack (``dev_recorder.py``, ``pg_server.py``); SQLite otherwise.

The plant goes live at ``--from`` (scenario time; by default seven minutes before the scenario's
first wear failure) and Home Assistant is given the plant's telemetry up to that moment — the
scenario's history period and the hours since — in the integration's own persisted history
format, time-shifted so that the live plant continues where that history ends. The integration
replays it exactly as after a restart, so forecasts and health are live from the first minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # dcp_sim, dcp_eval and the integration's history format
sys.path.insert(1, str(REPO / "scripts"))
from dev_recorder import forget, recorded_states, server_for, set_recorder  # noqa: E402
from pg_server import PostgresError, PostgresServer  # noqa: E402
from stack_procs import ignore_further_stops, spawn, stop_all  # noqa: E402

CLIENT_ID = "http://localhost:8123/"
DEMO_USER = ("demo", "demo-password-123")
DEMO_SCENARIO = REPO / "scenarios" / "demo.yaml"
LIVE_BEFORE_FAILURE_S = 7 * 60.0
"""Default ``--from``: the live plant starts this long before the first wear failure."""
CORE_CONFIG = {
    "location_name": "Data Center",
    "country": "DE",
    "currency": "EUR",
    "language": "en",
    "latitude": 50.1109,
    "longitude": 8.6821,
    "elevation": 112,
    "time_zone": "UTC",
    "unit_system": "metric",
}
"""What the general settings page would set for the demo site (a Frankfurt data center)."""
OFFLINE_DEFAULTS = ("met", "google_translate", "radio_browser")
"""Integrations onboarding adds that need the internet (weather, text-to-speech, radio): removed
on a first start when they cannot set up, so the log and the integrations page show the plant."""
HOME_AREAS = ("living_room", "kitchen", "bedroom")
POWER_ROOM = "Power room"
OPTIONS = {"policy_mode": "automatic", "step_interval": 30}
"""Options set once, when the plant is added: migrate on its own, 30 s between stages."""
IGNORED_ISSUES = ("deprecated_method",)
"""Home Assistant's own repairs that do not apply here: this development instance is a Home
Assistant Core install in a virtualenv on purpose (ignored, as a user would; still listed under
"ignored")."""
LEGACY_YAML = re.compile(
    r"^homeassistant:\n  name: Data Center\n  time_zone: UTC\nhttp:\n  server_port: \d+\n",
    re.MULTILINE,
)
"""Exactly what earlier versions of this script wrote (a user's own blocks are left alone)."""


def log(msg: str) -> None:
    print(f"develop: {msg}", flush=True)


# -- configuration directory ------------------------------------------------------------------


PHONE_AND_AUTOMATIONS = (
    # ``mobile_app:``, not ``default_config:``: default_config also sets up cloud, dhcp, ssdp,
    # stream, go2rtc, usb and file, whose packages (openai, aiodhcpwatcher, async-upnp-client,
    # av, go2rtc-client, aiousbwatcher, file-read-backwards) are not in this environment and
    # would be fetched from PyPI at every start, or fail offline. mobile_app needs only PyNaCl.
    ("mobile_app", "mobile_app:\n"),
    # The automation, script and scene editors read and write these files (blueprints too).
    ("automation", "automation: !include automations.yaml\n"),
    ("script", "script: !include scripts.yaml\n"),
    ("scene", "scene: !include scenes.yaml\n"),
)
"""Top-level keys a phone (the Companion app's registration API) and UI-made automations need,
with the YAML that provides each; added to an older configuration that lacks the key."""
INCLUDED_FILES = ("automations.yaml", "scripts.yaml", "scenes.yaml")
"""Files the ``!include``s above read: created when missing (automations.yaml as ``[]``)."""


def _has_key(text: str, key: str) -> bool:
    """Whether the YAML has the top-level key (``key:`` or a labelled ``key name:``), or
    ``default_config:``, which includes ``mobile_app``."""
    keys = re.findall(r"^([a-z_]+)(?:[ \t]+[^:\n]*)?:", text, re.MULTILINE)
    return key in keys or (key == "mobile_app" and "default_config" in keys)


def add_phone_and_automations(text: str) -> tuple[str, list[str]]:
    """``text`` with every key of ``PHONE_AND_AUTOMATIONS`` it lacks appended (the user's own
    blocks are kept as they are); returns the new text and the keys added. Idempotent."""
    added = [key for key, _ in PHONE_AND_AUTOMATIONS if not _has_key(text, key)]
    if not added:
        return text, []
    if text and not text.endswith("\n"):
        text += "\n"
    text += "".join(yaml for key, yaml in PHONE_AND_AUTOMATIONS if key in added)
    return text, added


def write_config(config_dir: Path, headless: bool) -> None:
    """A minimal configuration with the integration linked in, debug logging, a phone
    (``mobile_app``) and the automation, script and scene editors.

    Written once; later starts keep the user's edits, except that the ``http:`` and
    ``homeassistant:`` blocks earlier versions of this script wrote are removed (Home Assistant
    keeps both settings in its storage now), and what a phone and UI automations need is added
    when an older version did not write it (``PHONE_AND_AUTOMATIONS``).
    """
    (config_dir / "custom_components").mkdir(parents=True, exist_ok=True)
    link = config_dir / "custom_components" / "datacenter_power"
    if not link.exists():
        link.symlink_to(REPO / "custom_components" / "datacenter_power")
    for name in INCLUDED_FILES:
        included = config_dir / name
        if not included.exists():
            # as Home Assistant's own default configuration writes them
            included.write_text("[]\n" if name == "automations.yaml" else "")
    path = config_dir / "configuration.yaml"
    if path.exists():
        text = path.read_text()
        cleaned = LEGACY_YAML.sub("", text)
        if cleaned != text:
            log(f"removed the http:/homeassistant: YAML of an earlier version from {path}")
        cleaned, added = add_phone_and_automations(cleaned)
        if added:
            log(f"added {', '.join(added)} to {path} (a phone and UI automations need them)")
        if cleaned != text:
            path.write_text(cleaned)
        return
    ui = "" if headless else "frontend:\nhistory:\nlogbook:\nenergy:\n"
    text = (
        "# Written by scripts/develop (once; your changes are kept).\n"
        "api:\nconfig:\nonboarding:\nrepairs:\ndiagnostics:\n"
        + ui
        + "logger:\n  default: warning\n"
        "  logs:\n    custom_components.datacenter_power: debug\n"
        # mobile_app brings in Home Assistant's camera support, which logs an ERROR with a
        # traceback at every start when ffmpeg and libturbojpeg are not installed: a plant has
        # no cameras, and the demo's log should show only what concerns it.
        "    haffmpeg: critical\n"
        "    homeassistant.components.camera.img_util: critical\n"
    )
    path.write_text(add_phone_and_automations(text)[0])


def set_http_port(config_dir: Path, port: int) -> None:
    """Make Home Assistant's stored HTTP setting listen on ``port`` (before it starts).

    A first start takes the port from ``SETUP_PORT``; later starts use what is stored, so a
    different ``--port`` is written there (the rest of the HTTP setting is kept).
    """
    path = config_dir / ".storage" / "http"
    if not path.exists():
        return
    doc = json.loads(path.read_text())
    data = doc.get("data", {})
    stable = data.get("stable") or {}
    if stable.get("server_port") == port and data.get("pending") is None:
        return
    stable["server_port"] = port
    data["stable"] = stable
    data["pending"] = None
    path.write_text(json.dumps(doc, indent=4))


# -- Home Assistant's API ---------------------------------------------------------------------


class ApiError(Exception):
    """An API call answered with an HTTP error."""

    def __init__(self, method: str, path: str, code: int, detail: str) -> None:
        super().__init__(f"{method} {path} failed: HTTP {code} {detail}")
        self.code = code


class Api:
    """Tiny client for Home Assistant's HTTP and websocket APIs."""

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
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:500]
            raise ApiError(method, path, err.code, detail) from None
        ctype = resp.headers.get("Content-Type", "")
        if not raw:
            return None
        return json.loads(raw) if "json" in ctype else raw.decode()

    def ws(self, *commands: dict[str, Any], timeout: float = 120.0) -> list[Any]:
        """Send websocket commands in order; returns their results (raises on an error; waits
        ``timeout`` seconds for each)."""
        return asyncio.run(self._ws(list(commands), timeout))

    async def _ws(self, commands: list[dict[str, Any]], wait_s: float) -> list[Any]:
        import aiohttp

        url = self.base.replace("http", "ws", 1) + "/api/websocket"
        results: list[Any] = []
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": self.token})
            auth = await ws.receive_json()
            if auth.get("type") != "auth_ok":
                raise SystemExit(f"websocket authentication failed: {auth}")
            for i, cmd in enumerate(commands, start=1):
                await ws.send_json({"id": i, **cmd})
                while True:
                    msg = await ws.receive_json(timeout=wait_s)
                    if msg.get("id") == i and msg.get("type") == "result":
                        break
                if not msg.get("success"):
                    raise SystemExit(f"websocket {cmd['type']} failed: {msg.get('error')}")
                results.append(msg.get("result"))
        return results

    def wait_up(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"Home Assistant exited with code {proc.returncode}")
            try:
                self.call("GET", "/auth/providers")
                return
            except ApiError:
                return  # it answers
            except urllib.error.URLError, ConnectionError, OSError:
                time.sleep(0.5)
        raise SystemExit("Home Assistant did not start serving its API in time")

    def onboard(self) -> bool:
        """Create the demo user (first start) or log in as it; returns True on a first start."""
        try:
            steps = {s["step"]: s["done"] for s in self.call("GET", "/api/onboarding")}
        except ApiError as err:
            if err.code != 404:  # onboarding is over: Home Assistant no longer serves it
                raise
            steps = {}
        first = bool(steps) and not steps.get("user")
        if first:
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
            if steps and not steps.get(step):
                self.call("POST", path, body or {})
        return first

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
            raise SystemExit(
                f"could not log in as the demo user {DEMO_USER[0]!r}: {result.get('errors')} "
                "(start over with --fresh)"
            )
        return str(result["result"])

    def core_config(self) -> None:
        """Country, location, units and time zone, unless someone has set them already."""
        if self.call("GET", "/api/config").get("country"):
            return
        self.ws({"type": "config/core/update", **CORE_CONFIG})

    def ignore_foreign_issues(self, timeout: float) -> None:
        """Ignore Home Assistant's installation-method repair (raised once it has started)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.call("GET", "/api/config").get("state") == "RUNNING":
                break
            time.sleep(1)
        (issues,) = self.ws({"type": "repairs/list_issues"})
        for issue in issues["issues"]:
            if (
                issue["domain"] == "homeassistant"
                and issue["issue_id"].startswith(IGNORED_ISSUES)
                and not issue.get("ignored")
            ):
                self.ws(
                    {
                        "type": "repairs/ignore_issue",
                        "domain": issue["domain"],
                        "issue_id": issue["issue_id"],
                        "ignore": True,
                    }
                )

    def remove_offline_defaults(self, timeout: float) -> list[str]:
        """Remove the onboarding defaults that failed to set up (no internet here)."""
        removed: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entries = [
                e
                for e in self.call("GET", "/api/config/config_entries/entry")
                if e["domain"] in OFFLINE_DEFAULTS
            ]
            settled = [e for e in entries if e["state"] not in ("setup_in_progress", "not_loaded")]
            for e in settled:
                if e["state"] != "loaded":
                    self.call("DELETE", f"/api/config/config_entries/entry/{e['entry_id']}")
                    removed.append(e["domain"])
            if len(settled) == len(entries) and len(entries) + len(removed) >= 1:
                break
            time.sleep(1)
        return removed

    def arrange_areas(self, entry_id: str) -> int:
        """Replace onboarding's home areas (living room, kitchen, bedroom) by a power room that
        holds the plant's devices, so the overview dashboard opens on the plant."""
        (areas,) = self.ws({"type": "config/area_registry/list"})
        commands: list[dict[str, Any]] = [
            {"type": "config/area_registry/delete", "area_id": a["area_id"]}
            for a in areas
            if a["area_id"] in HOME_AREAS
        ]
        room = next((a for a in areas if a["name"] == POWER_ROOM), None)
        if room is None:
            commands.append(
                {"type": "config/area_registry/create", "name": POWER_ROOM, "icon": "mdi:flash"}
            )
        results = self.ws(*commands) if commands else []
        area_id = room["area_id"] if room is not None else results[-1]["area_id"]
        (devices,) = self.ws({"type": "config/device_registry/list"})
        mine = [d for d in devices if entry_id in d["config_entries"] and not d["area_id"]]
        if mine:
            self.ws(
                *(
                    {
                        "type": "config/device_registry/update",
                        "device_id": d["id"],
                        "area_id": area_id,
                    }
                    for d in mine
                )
            )
        return len(mine)

    def create_dashboard(self) -> str:
        """The integration's own plant dashboard in the sidebar (its ``create_dashboard``
        action, as a user would call it from Developer tools): the plant's state, the migration
        in progress, the approve button, health and failure risk, then one view per ATS lineup.
        Returns its URL path."""
        answer = self.call(
            "POST", "/api/services/datacenter_power/create_dashboard?return_response", {}
        )
        return str(answer["service_response"]["url_path"])

    def plant_entry(self) -> str | None:
        entries = self.call("GET", "/api/config/config_entries/entry")
        return next((e["entry_id"] for e in entries if e["domain"] == "datacenter_power"), None)

    def setup_integration(self, sim_port: int, policy_mode: str = "automatic") -> tuple[str, bool]:
        """Add the plant through the integration's config flow unless it is there (its options
        set to ``OPTIONS`` in ``policy_mode``); returns its entry id and whether it was just
        added."""
        if (entry_id := self.plant_entry()) is not None:
            return entry_id, False
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
        entry_id = result["result"]["entry_id"]
        flow = self.call("POST", "/api/config/config_entries/options/flow", {"handler": entry_id})
        current = {
            f["name"]: f.get("description", {}).get("suggested_value")
            for f in flow.get("data_schema", [])
        }
        values = (
            {k: v for k, v in current.items() if v is not None}
            | OPTIONS
            | {"policy_mode": policy_mode}
        )
        done = self.call(
            "POST", f"/api/config/config_entries/options/flow/{flow['flow_id']}", values
        )
        if done.get("type") != "create_entry":
            raise SystemExit(f"options flow stopped: {done}")
        return entry_id, True

    def set_entry_enabled(self, entry_id: str, enabled: bool, timeout: float = 120.0) -> None:
        """Enable (set up) or disable (unload) an entry; returns when Home Assistant has."""
        self.ws(
            {
                "type": "config_entries/disable",
                "entry_id": entry_id,
                "disabled_by": None if enabled else "user",
            },
            timeout=timeout,
        )

    def template(self, tpl: str) -> str:
        return str(self.call("POST", "/api/template", {"template": tpl})).strip()


# -- the plant's history, as the integration would have recorded it -----------------------------


def default_start_at(scenario_path: Path) -> float:
    """Seven minutes before the first wear failure (0 for a scenario without one)."""
    from dcp_sim.scenario import WearEvent, load_scenario

    sc = load_scenario(scenario_path)
    failures = [e.failure_s for e in sc.events if isinstance(e, WearEvent)]
    return max(0.0, min(failures) - LIVE_BEFORE_FAILURE_S) if failures else 0.0


def history_rows(
    scenario_path: Path, start_at: float, live_wall: float, speed: float, until_wall: float
) -> list[Any]:
    """The plant's telemetry every 5 minutes from the start of its history to ``until_wall``.

    Rows are the integration's own persisted form (``pack_observation``), stamped with the
    wall-clock time at which the live plant (started at ``live_wall`` at scenario time
    ``start_at``, running at ``speed``) has, or would have had, that state.
    """
    from custom_components.datacenter_power.decisions import (
        HISTORY_BUCKET_S,
        pack_observation,
    )
    from dcp_eval.harness import observation_from_telemetry, topology_from_scenario
    from dcp_sim.plant import Plant
    from dcp_sim.scenario import load_scenario

    scenario = load_scenario(scenario_path)
    plant = Plant(scenario)
    topology = topology_from_scenario(scenario)
    until_t = start_at + max(0.0, until_wall - live_wall) * (speed if speed > 0 else 0.0)

    def wall(t: float) -> float:
        return live_wall + (t - start_at) / (speed if t > start_at and speed > 0 else 1.0)

    rows: list[Any] = []
    t = plant.t_s
    while t <= until_t:
        plant.advance_to(t)
        obs = observation_from_telemetry(plant.telemetry(), 0.0, topology)
        row = pack_observation(obs)
        row["t_s"] = round(wall(plant.t_s), 1)
        rows.append(row)
        t += HISTORY_BUCKET_S
    return rows


def give_history(api: Api, config_dir: Path, entry_id: str, rows: list[Any]) -> None:
    """Replace the integration's persisted history while its entry is unloaded."""
    from custom_components.datacenter_power.decisions import STORAGE_VERSION

    api.set_entry_enabled(entry_id, False)
    key = f"datacenter_power.{entry_id}.history"
    doc = {"version": STORAGE_VERSION, "minor_version": 1, "key": key, "data": {"history": rows}}
    (config_dir / ".storage" / key).write_text(json.dumps(doc, separators=(",", ":")))
    api.set_entry_enabled(entry_id, True)


# -- checks -----------------------------------------------------------------------------------


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
    from dcp_sim.units import assign_gateways

    return len(assign_gateways(Plant(load_scenario(scenario), start_s=0.0)))


def expected_devices(scenario: Path) -> int:
    from dcp_sim.scenario import load_scenario

    sc = load_scenario(scenario)
    return len(sc.ats) + len(sc.mpdus) + len(sc.circuits) + 1  # + the environment sensor


def plant_status(api: Api) -> tuple[int, int, int]:
    """Devices, entities and unavailable entities of the integration (buttons aside: the
    approve button is unavailable while no proposal waits)."""
    ents = "integration_entities('datacenter_power')"
    out = api.template(
        "{{ ["
        + ents
        + " | map('device_id') | reject('none') | unique | list | count, "
        + ents
        + " | count, "
        + ents
        # (the approve button is unavailable by design while no proposal waits)
        + " | reject('match', 'button[.]') | select('is_state', 'unavailable') | list | count]"
        + " | join(' ') }}"
    )
    n_dev, n_ent, n_bad = (int(x) for x in out.split())
    return n_dev, n_ent, n_bad


def wait_live(api: Api, want: int, timeout: float) -> tuple[bool, str]:
    last = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n_dev, n_ent, n_bad = plant_status(api)
        last = f"devices: {n_dev} entities: {n_ent} unavailable: {n_bad}"
        if n_dev >= want and n_ent > 0 and n_bad == 0:
            return True, last
        time.sleep(1)
    return False, last


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# -- the recorder's database -------------------------------------------------------------------


def start_recorder(config_dir: Path, args: argparse.Namespace) -> PostgresServer | None:
    """Point the recorder at SQLite, or start the configuration's PostgreSQL server and point
    it there (``--fresh`` and ``--smoke`` start its database over too)."""
    if (args.fresh or args.smoke) and forget(config_dir):
        log("removed this configuration's PostgreSQL data (a fresh start)")
    if args.recorder != "postgresql":
        set_recorder(config_dir, None)
        return None
    try:
        pg = server_for(config_dir, args.pg_port).start()
    except PostgresError as err:
        raise SystemExit(f"develop: PostgreSQL: {err}") from None
    try:
        if changed := set_recorder(config_dir, pg.url):
            log(changed)
    except BaseException:
        pg.stop()
        raise
    log(f"PostgreSQL for the recorder on 127.0.0.1:{pg.port} (data {pg.data})")
    return pg


def recorder_summary(config_dir: Path, pg: PostgresServer | None) -> str:
    if pg is None:
        return f"Recorder: SQLite, {config_dir / 'home-assistant_v2.db'}"
    return f"Recorder: PostgreSQL on 127.0.0.1:{pg.port}  data: {pg.data}  log: {pg.log_path}"


def smoke_recorder(api: Api, pg: PostgresServer) -> bool:
    """The recorder writes the plant's states to PostgreSQL."""
    out = api.template("{{ integration_entities('datacenter_power') | join(',') }}")
    entity_ids = [e for e in out.split(",") if e]
    count = recorded_states(pg, entity_ids, timeout_s=60)
    print(f"recorder: postgresql, {count} states of the plant's entities recorded", flush=True)
    if count == 0:
        print("smoke check failed: nothing recorded in PostgreSQL", file=sys.stderr)
    return count > 0


# -- main -------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    from dcp_sim.__main__ import _duration

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default=str(DEMO_SCENARIO))
    parser.add_argument("--port", type=int, default=8123, help="Home Assistant's HTTP port")
    parser.add_argument("--sim-port", type=int, default=5020, help="the simulator's Modbus port")
    parser.add_argument("--speed", type=float, default=1.0, help="simulator speed (default 1)")
    parser.add_argument(
        "--from",
        dest="start_at",
        type=_duration,
        default=None,
        metavar="DURATION",
        help="scenario time at which the plant goes live (default: 7 minutes before the first "
        "wear failure; 0 without one)",
    )
    parser.add_argument("--config", default=None, help="configuration directory (default config/)")
    parser.add_argument("--fresh", action="store_true", help="start over with a new config")
    parser.add_argument(
        "--policy-mode",
        choices=("monitor", "approval", "automatic"),
        default="automatic",
        help="the plant's policy mode when it is added (a first start; default automatic)",
    )
    parser.add_argument(
        "--recorder",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="Home Assistant's recorder database: SQLite in the configuration directory "
        "(default) or a PostgreSQL server this script starts and stops (data under the cache)",
    )
    parser.add_argument(
        "--pg-port", type=int, default=None, help="PostgreSQL's port (default: a free one)"
    )
    parser.add_argument("--smoke", action="store_true", help="headless check, then exit")
    parser.add_argument(
        "--headless", action="store_true", help="no banner; print READY when set up (for checks)"
    )
    return parser


def main() -> int:
    args = _parser().parse_args()
    scenario = Path(args.scenario).resolve()
    default_dir = "config-smoke" if args.smoke else "config"
    config_dir = Path(args.config).resolve() if args.config else REPO / default_dir
    if (args.fresh or args.smoke) and config_dir.exists():
        shutil.rmtree(config_dir)
    write_config(config_dir, headless=args.smoke)
    set_http_port(config_dir, args.port)
    start_at = default_start_at(scenario) if args.start_at is None else args.start_at
    env = dict(os.environ, PYTHONPATH=str(REPO), SETUP_PORT=str(args.port))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    stop = False
    pg: PostgresServer | None = None

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # also when started in the background
    for what, port in (("Home Assistant", args.port), ("the simulator", args.sim_port)):
        if port_in_use(port):
            raise SystemExit(
                f"develop: port {port} for {what} is in use (another scripts/develop still "
                "running?); choose another with --port / --sim-port"
            )
    try:
        pg = start_recorder(config_dir, args)
        sim_log = open(config_dir / "simulator.log", "ab")  # noqa: SIM115
        sim = spawn(
            [
                sys.executable,
                "-m",
                "dcp_sim",
                str(scenario),
                "--port",
                str(args.sim_port),
                "--speed",
                str(args.speed),
                "--from",
                f"{start_at:g}",
            ],
            env=env,
            cwd=REPO,
            log=sim_log,
        )
        live_wall = time.time()
        procs["sim"] = sim
        hass_log = open(config_dir / "hass-console.log", "ab")  # noqa: SIM115
        hass = spawn(
            [sys.executable, "-m", "homeassistant", "-c", str(config_dir)],
            env=env,
            cwd=REPO,
            log=hass_log,
        )
        procs["hass"] = hass
        api = Api(f"http://127.0.0.1:{args.port}")
        api.wait_up(hass, timeout=300)
        first = api.onboard()
        api.core_config()
        if sim.poll() is not None:
            raise SystemExit(
                f"the simulator exited with code {sim.returncode}; see {config_dir}/simulator.log"
            )
        entry_id, added = api.setup_integration(args.sim_port, args.policy_mode)
        extra = range(args.sim_port + 1, args.sim_port + gateway_count(scenario))
        add_gateway_subentries(api, "127.0.0.1", list(extra))
        rows = history_rows(scenario, start_at, live_wall, args.speed, time.time())
        if len(rows) > 1:
            give_history(api, config_dir, entry_id, rows)
        want = expected_devices(scenario)
        if added and not args.smoke:
            ok, _ = wait_live(api, want, timeout=120)
            log(f"{api.arrange_areas(entry_id)} devices put in the area {POWER_ROOM!r}")
            log(f"dashboard: /{api.create_dashboard()}")
        if args.smoke:
            ok, line = wait_live(api, want, timeout=120 + want / 5)  # a hall takes longer
            print(line, flush=True)
            if not ok:
                print(
                    f"smoke check failed: expected {want} devices with live entities",
                    file=sys.stderr,
                )
            if ok and pg is not None:
                ok = smoke_recorder(api, pg)
            return 0 if ok else 1
        api.ignore_foreign_issues(timeout=120)
        if first:
            removed = api.remove_offline_defaults(timeout=60)
            if removed:
                log(f"removed {', '.join(removed)} (added by onboarding; they need the internet)")
        state = "first start: demo user created" if first else "logged in as the demo user"
        log(
            f"{state}; plant {'added' if added else 'kept'}; {len(rows)} history rows "
            f"(plant live from t={start_at:.0f} s)"
        )
        if args.headless:
            print("READY", flush=True)
        else:
            print(
                f"\nHome Assistant: http://localhost:{args.port}  user: {DEMO_USER[0]}  "
                f"password: {DEMO_USER[1]}\n"
                f"Simulator (pid {sim.pid}): Modbus TCP 127.0.0.1:{args.sim_port}  "
                f"log: {config_dir / 'simulator.log'}\n"
                f"Home Assistant log: {config_dir / 'home-assistant.log'}\n"
                f"{recorder_summary(config_dir, pg)}\n"
                "Ctrl-C stops both. Stopping the simulator alone (kill its pid) keeps Home "
                "Assistant up;\nstart a plant again with scripts/simulate SCENARIO "
                f"--port {args.sim_port}.",
                flush=True,
            )
        while hass.poll() is None:
            if "sim" in procs and sim.poll() is not None:
                del procs["sim"]
                log(
                    f"the simulator stopped (exit code {sim.returncode}); Home Assistant keeps "
                    f"running: scripts/simulate SCENARIO --port {args.sim_port} starts a plant"
                )
            time.sleep(1)
        log(f"Home Assistant exited with code {hass.returncode}")
        return 1
    except KeyboardInterrupt:
        stop = True
        return 0
    finally:
        # One SIGTERM each, then wait: the children are in process groups of their own, so the
        # terminal's Ctrl-C did not reach them, and a second signal would cut Home Assistant's
        # final write short (stack_procs). Home Assistant first, so that it does not log the
        # plant going away while it stops.
        ignore_further_stops()
        if stop:
            log("stopping Home Assistant (it saves its state; a second Ctrl-C is ignored)")
        codes = stop_all([p for name in ("hass", "sim") if (p := procs.get(name)) is not None])
        if pg is not None:  # last: Home Assistant's final commit goes to it
            codes.append(pg.stop())
        if stop:
            log(f"stopped (exit codes {codes})")


if __name__ == "__main__":
    sys.exit(main())
