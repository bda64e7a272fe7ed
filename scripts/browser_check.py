"""The first-contact check: ``scripts/develop`` as a new user meets it, in a real browser.

Run by ``scripts/browser-check`` (CI: ``.ci/run``), inside the project environment. It starts
``scripts/develop`` headless on its own configuration directory (``config-check/``, fresh), and
with Chromium (Debian's package) driven by Playwright:

1. logs in as the demo user, opens the integration's page and checks that it lists every device
   of the plant, opens the ATS-1 device page and checks that health, failure risk and load are
   shown with values; saves screenshots under ``docs/images/``;
2. stops ``scripts/develop`` (as Ctrl-C does), starts it again on the same configuration, and
   checks the same pages again (a second start must log in, not onboard);
3. unless ``--no-demo``: during the demo's predicted failure (the plant is switched to
   *approval* mode before the second start, so nothing moves until a person says so) opens
   Settings > Repairs, checks that ATS-1's repair is there, opens it and checks that its fix
   flow shows the recommendation and the staged plan, and submits it (the migration starts);
   then the plant dashboard (the migration in progress; the ATS-1 lineup with its forecast
   band), ATS-1's device page with the failure prediction and the migration in its Activity,
   and the logbook with the circuits moved. Each page must show that content, not only load;
   screenshots go to ``docs/images/demo-*.png``;
4. follows the demo until ATS-1 has failed with its load already migrated (migration
   completed, and ATS-1's forecast P50 within 1 A of empty within 90 s of it: the band follows
   the new lineup) and the simulator has logged no circuit interruption, within
   ``--demo-minutes`` of the second start; a last screenshot shows ATS-1 after its failure;
5. the sudden-failure plant (``--failure-only``: only this part), then the phone
   (``--phone-only``: only this part): a phone registered through ``mobile_app`` approves the
   demo's proposal from its webhook and must get the outcome on its push channel;
6. a plant where no plan is safe (``--decision-only``: only this part;
   ``scenarios/decision-needed.yaml``, approval mode): Settings > Repairs shows the critical
   *Decision needed at ats1*; its fix flow is a menu of the choices in numbers; choosing the
   shed of the non-critical b03 there switches b03 off and runs the drain as a staged migration,
   which completes; the repair then goes.

Exit status 0 when everything holds; otherwise 1 with what failed.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dev_stack import DEMO_USER, Api, expected_devices  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: Final[ViewportSize] = {"width": 1280, "height": 860}
ATS = "ats1"
PREDICTION_WAIT_S: Final = 300.0
"""How long the second start may take to raise ATS-1's fixable repair (its first decisions)."""


class CheckFailed(Exception):
    """What the user would see go wrong."""


def say(msg: str) -> None:
    print(f"browser-check: {msg}", flush=True)


class Develop:
    """``scripts/develop`` (its Python part) as a child process."""

    def __init__(
        self,
        args: argparse.Namespace,
        fresh: bool,
        scenario: Path | None = None,
        config: Path | None = None,
        start_at: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        cmd = [
            sys.executable,
            str(REPO / "scripts" / "dev_stack.py"),
            *([str(scenario)] if scenario is not None else []),
            "--headless",
            "--config",
            str(config or args.config),
            "--port",
            str(args.port),
            "--sim-port",
            str(args.sim_port),
            *(["--from", start_at] if start_at is not None else []),
            *extra,
        ]
        if fresh:
            cmd.append("--fresh")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.output: list[str] = []

    def wait_ready(self, timeout: float) -> float:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:
            self.output.append(line.rstrip())
            print(f"  develop> {line.rstrip()}", flush=True)
            if line.strip() == "READY":
                return time.monotonic() - self.started
            if time.monotonic() > deadline:
                break
        raise CheckFailed(
            f"scripts/develop did not get ready (exit code {self.proc.poll()}): "
            + " | ".join(self.output[-5:])
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise CheckFailed("scripts/develop did not stop within 90 s of Ctrl-C") from None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            print(f"  develop> {line.rstrip()}", flush=True)


def plant_devices(api: Api) -> dict[str, tuple[str, str | None]]:
    """The plant's devices as Home Assistant registered them: name -> (device id, area)."""
    (devices,) = api.ws({"type": "config/device_registry/list"})
    return {
        d["name"]: (d["id"], d["area_id"])
        for d in devices
        if any(e[0] == "datacenter_power" for e in d["identifiers"])
    }


def check_kept_across_stop(
    args: argparse.Namespace,
    before: dict[str, tuple[str, str | None]],
    after: dict[str, tuple[str, str | None]],
) -> None:
    """A Ctrl-C stop lets Home Assistant save: same device ids and areas, a clean database."""
    changed = sorted(n for n in before if after.get(n) != before[n])
    if changed or not before:
        raise CheckFailed(
            f"device ids or areas changed across the Ctrl-C restart: {', '.join(changed)} "
            "(Home Assistant was stopped before saving its registries)"
        )
    log = Path(args.config) / "home-assistant.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    # The recorder warns "could not validate that the sqlite3 database ... was shutdown cleanly".
    if "was shutdown cleanly" in text:
        raise CheckFailed(f"the recorder reports an unclean shutdown in {log}")
    say(f"start 2: {len(after)} devices kept their ids and areas; the database closed cleanly")


FAILURE_SCENARIO: Final = REPO / "scenarios" / "sudden-failure-no-room.yaml"
FAILURE_LEAD_S: Final = 90.0
"""The failure plant goes live this long before MPDU-1 dies (at 14 h)."""
ALERT_WITHIN_S: Final = 30.0
"""A failure must be alerted within one poll (5 s) of the poll that shows it; the bypass and the
poll's own timing leave room, and a loaded CI machine more."""


class Subscription:
    """A websocket client of Home Assistant in a thread, subscribed with ``request`` (as an
    automation, an app or the Companion app's push channel would be), collecting the events."""

    def __init__(self, api: Api, request: dict[str, Any]) -> None:
        import threading

        self.api, self.request = api, request
        self.events: list[dict[str, Any]] = []
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise CheckFailed(f"could not subscribe with {request}: {self._error}")

    def _run(self) -> None:
        import asyncio

        asyncio.run(self._listen())

    async def _listen(self) -> None:
        import aiohttp

        url = self.api.base.replace("http", "ws", 1) + "/api/websocket"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.receive_json()
            await ws.send_json({"type": "auth", "access_token": self.api.token})
            await ws.receive_json()
            await ws.send_json({"id": 1, **self.request})
            answer = await ws.receive_json()
            if not answer.get("success"):
                self._error = str(answer)
                return
            self._ready.set()
            while not self._stop.is_set():
                try:
                    msg = await ws.receive_json(timeout=1)
                except TimeoutError:
                    continue
                if msg.get("type") == "event":
                    self.events.append({**msg["event"], "received": time.time()})

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class EventListener(Subscription):
    """Subscribed to one event type, as any automation or app would be."""

    def __init__(self, api: Api, event_type: str) -> None:
        super().__init__(api, {"type": "subscribe_events", "event_type": event_type})


def sudden_failure(args: argparse.Namespace) -> None:
    """Issue 20, item 2, from outside: a sudden MPDU failure that no rebalance can fix. Within a
    poll of the failure a client subscribed to ``datacenter_power_failover`` gets the event
    naming the failed unit and the element over its limit, Settings -> Repairs lists both
    critical repairs, and the plant's risk entities count the failed unit."""

    config = Path(str(args.config) + "-failure")
    start_at = f"{14 * 3600 - FAILURE_LEAD_S:.0f}"
    dev = Develop(args, fresh=True, scenario=FAILURE_SCENARIO, config=config, start_at=start_at)
    try:
        ready = dev.wait_ready(timeout=600)
        say(f"failure plant: scripts/develop ready after {ready:.0f} s")
        api = api_for(args.port)
        listener = EventListener(api, "datacenter_power_failover")
        try:
            deadline = time.monotonic() + FAILURE_LEAD_S + 120 + ALERT_WITHIN_S
            event = None
            while event is None and time.monotonic() < deadline:
                event = next(
                    (e for e in listener.events if "mpdu1" in e["data"].get("failed", [])), None
                )
                time.sleep(1)
        finally:
            listener.close()
        if event is None:
            raise CheckFailed("no datacenter_power_failover event named the failed mpdu1")
        data = event["data"]
        over = {o["element"]: o for o in data.get("over_limit", [])}
        if "mpdu2" not in over:
            raise CheckFailed(f"the failover event does not say mpdu2 is over its limit: {data}")
        fired = dt_parse(data["at"])
        failed_wall = _failure_wall(config)
        late = fired - failed_wall if failed_wall is not None else None
        if late is not None and late > ALERT_WITHIN_S:
            raise CheckFailed(f"the failover event came {late:.0f} s after the failure")
        say(
            "failure plant: failover event for mpdu1 "
            + (f"{late:.1f} s after the failure " if late is not None else "")
            + f"(mpdu2 at {over['mpdu2']['load_a']} A, {over['mpdu2']['pct']} % of its limit): "
            + data.get("title", "")
        )
        (issues,) = api.ws({"type": "repairs/list_issues"})
        ours = {
            i["translation_key"]: i
            for i in issues["issues"]
            if i["domain"] == "datacenter_power" and i["severity"] == "critical"
        }
        for key in ("unit_failed", "over_limit"):
            if key not in ours:
                raise CheckFailed(f"no critical {key} repair after the failure: {sorted(ours)}")
        at_risk = api.template(
            "{{ states.sensor | selectattr('entity_id', 'search', 'components_at_risk') "
            "| map(attribute='state') | first }}"
        )
        if not at_risk.isdigit() or int(at_risk) < 1:
            raise CheckFailed(f"Components at risk says {at_risk!r} with mpdu1 failed")
        base = f"http://127.0.0.1:{args.port}"
        shots = Path(args.screenshots)
        with logged_in(base) as page:
            page.goto(base + "/config/repairs")
            wait_texts(
                page,
                [re.compile(r"mpdu1", re.I), re.compile(r"mpdu2", re.I)],
                "Settings -> Repairs after the sudden failure",
                shots / "sudden-failure-repairs.png",
            )
            page.wait_for_timeout(1500)
            page.screenshot(path=str(shots / "sudden-failure-repairs.png"), full_page=True)
            # The over-limit repair says what is over, by how much, and that nothing moves.
            page.get_by_text(re.compile(r"mpdu2 is above", re.I)).first.click()
            wait_texts(
                page,
                [re.compile(r"Nothing can be moved", re.I)],
                "the over-limit repair",
                shots / "sudden-failure-over-limit.png",
            )
            page.wait_for_timeout(1000)
            page.screenshot(path=str(shots / "sudden-failure-over-limit.png"))
        say(
            f"failure plant: Repairs lists unit_failed and over_limit (critical); components at "
            f"risk {at_risk}"
        )
    finally:
        dev.stop()


PHONE_NAME: Final = "Browser check phone"
PHONE_WAIT_S: Final = 300.0
"""How long the proposal may take to reach the phone after approval mode is set, and the
outcome after the phone approves (the demo's one stage, verified)."""


class PushChannel(Subscription):
    """The Companion app's local push channel: subscribed through
    ``mobile_app/push_notification_channel``, collecting what ``notify.mobile_app_*`` sends."""

    def __init__(self, api: Api, webhook_id: str) -> None:
        request = {"type": "mobile_app/push_notification_channel", "webhook_id": webhook_id}
        super().__init__(api, request)

    @property
    def notes(self) -> list[dict[str, Any]]:
        """The notifications received so far."""
        return self.events

    def wait_for(self, check: Any, what: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            note = next((n for n in self.notes if check(n)), None)
            if note is not None:
                return note
            time.sleep(0.5)
        raise CheckFailed(f"the phone never got {what}; it got {self.notes}")


def install_phone_automation(api: Api, config: Path, notify_service: str) -> None:
    """The approval blueprint imported (copied where an import puts it) and an automation made
    from it through the automation editor's API (written to automations.yaml)."""
    import shutil

    shutil.copytree(REPO / "blueprints", config / "blueprints", dirs_exist_ok=True)
    api.call("POST", "/api/services/automation/reload", {})
    api.call(
        "POST",
        "/api/config/automation/config/dcp_phone_approval",
        {
            "alias": "Approve migrations on the phone",
            "description": "made by the browser check",
            "use_blueprint": {
                "path": "datacenter_power/approve_migration_on_phone.yaml",
                "input": {"notify_service": notify_service},
            },
        },
    )
    deadline = time.monotonic() + 60
    while api.template("{{ states('automation.approve_migrations_on_the_phone') }}") != "on":
        if time.monotonic() > deadline:
            raise CheckFailed("the automation made from the approval blueprint is not on")
        time.sleep(1)


def phone(args: argparse.Namespace) -> None:
    """Issue 23, item 5, from outside: a phone registered through Home Assistant's
    ``mobile_app`` (the Companion app's registration API and push channel) gets the proposal
    of the demo's predicted failure from the approval blueprint, approves it through its
    webhook as the app does, and gets the outcome under the same tag."""
    config = Path(str(args.config) + "-phone")
    # monitor first: nothing is proposed or moved until the phone and its automation are there
    dev = Develop(args, fresh=True, config=config, extra=("--policy-mode", "monitor"))
    channel: PushChannel | None = None
    try:
        ready = dev.wait_ready(timeout=600)
        say(f"phone: scripts/develop ready after {ready:.0f} s")
        api = api_for(args.port)
        registration = api.call(
            "POST",
            "/api/mobile_app/registrations",
            {
                "app_id": "io.homeassistant.companion.android",
                "app_name": "Home Assistant",
                "app_version": "2026.10.1-full",
                "device_name": PHONE_NAME,
                "device_id": "browser-check-phone",
                "manufacturer": "Google",
                "model": "Pixel 8",
                "os_name": "Android",
                "os_version": "16",
                "supports_encryption": False,
                "app_data": {"push_websocket_channel": True},
            },
        )
        webhook_id = registration["webhook_id"]
        notify_service = "notify.mobile_app_" + PHONE_NAME.lower().replace(" ", "_")
        channel = PushChannel(api, webhook_id)
        say(f"phone: registered through mobile_app ({notify_service}); push channel open")
        install_phone_automation(api, config, notify_service)
        set_policy_mode(api, "approval")
        t_mode = time.time()
        note = channel.wait_for(
            lambda n: ATS in n.get("title", "") and n.get("data", {}).get("actions"),
            "the proposal with its buttons",
            PHONE_WAIT_S,
        )
        say(f"phone: {note['received'] - t_mode:.1f} s after approval mode: {note['title']!r}")
        if "may fail within" not in note["title"]:
            raise CheckFailed(f"the proposal does not say when {ATS} may fail: {note['title']}")
        tag = note["data"]["tag"]
        approve = next(a["action"] for a in note["data"]["actions"] if "Approve" in a["title"])
        t_press = time.time()
        api.call(
            "POST",
            f"/api/webhook/{webhook_id}",
            {
                "type": "fire_event",
                "data": {
                    "event_type": "mobile_app_notification_action",
                    "event_data": {"action": approve},
                },
            },
        )
        outcome = channel.wait_for(
            lambda n: (
                n.get("data", {}).get("tag") == tag and n.get("title", "").startswith("Migration ")
            ),
            "the migration's outcome",
            PHONE_WAIT_S,
        )
        say(
            f"phone: approved; outcome {outcome['received'] - t_press:.1f} s later under the "
            f"same tag: {outcome['title']!r}: {outcome['message']!r}"
        )
        if not outcome["title"].startswith("Migration completed"):
            raise CheckFailed(f"the approved migration did not complete: {outcome}")
        if any(
            n.get("data", {}).get("actions")
            for n in channel.notes
            if n is not note and n.get("data", {}).get("tag") == tag
        ):
            raise CheckFailed("a later notification under the proposal's tag carries buttons")
    finally:
        if channel is not None:
            channel.close()
        dev.stop()


def _failure_wall(config: Path) -> float | None:
    """Wall-clock time at which the simulator's circuits lost power (MPDU-1's failure: the
    bypass transfer is longer than the ride-through), from its log's first interruption line."""
    from datetime import datetime

    log = config / "simulator.log"
    if not log.exists():
        return None
    for line in log.read_text(errors="replace").splitlines():
        if "circuit interruption" in line:
            try:  # logging's asctime, in the simulator's local time like time.time() here
                return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            except ValueError:
                return None
    return None


def dt_parse(text: str) -> float:
    """An ISO 8601 time as Unix seconds."""
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def api_for(port: int) -> Api:
    api = Api(f"http://127.0.0.1:{port}")
    api.onboard()  # onboarding is done: this logs in as the demo user
    return api


def entity_ids(api: Api) -> dict[str, str]:
    """The ATS's health, failure-risk and load entities, found by their unique ids' suffixes."""
    ents = api.template(
        "{{ integration_entities('datacenter_power') | select('search', '_" + ATS + "_') "
        "| join(' ') }}"
    ).split()
    found: dict[str, str] = {}
    for key, pattern in (
        ("health", r"^sensor\..*_health$"),
        ("risk", r"^binary_sensor\..*_failure_risk$"),
        ("load", r"^sensor\..*_load_current$"),
    ):
        match = [e for e in ents if re.match(pattern, e)]
        if not match:
            raise CheckFailed(f"no {key} entity for {ATS}: {ents}")
        found[key] = match[0]
    return found


def dashboard_path(api: Api) -> str:
    """URL path of the plant dashboard the integration's ``create_dashboard`` added."""
    (dashboards,) = api.ws({"type": "lovelace/dashboards/list"})
    paths = [d["url_path"] for d in dashboards if str(d["url_path"]).startswith("dcp-")]
    if not paths:
        raise CheckFailed(f"no plant dashboard in the sidebar: {dashboards}")
    return str(paths[0])


def set_policy_mode(api: Api, mode: str) -> None:
    """Change the plant's policy mode through its options flow (every other option kept)."""
    entries = api.call("GET", "/api/config/config_entries/entry")
    entry_id = next(e["entry_id"] for e in entries if e["domain"] == "datacenter_power")
    flow = api.call("POST", "/api/config/config_entries/options/flow", {"handler": entry_id})
    current = {
        f["name"]: f.get("description", {}).get("suggested_value")
        for f in flow.get("data_schema", [])
    }
    values = {k: v for k, v in current.items() if v is not None} | {"policy_mode": mode}
    done = api.call("POST", f"/api/config/config_entries/options/flow/{flow['flow_id']}", values)
    if done.get("type") != "create_entry":
        raise CheckFailed(f"options flow did not take policy mode {mode}: {done}")


def browse(args: argparse.Namespace, api: Api, want_devices: int, tag: str) -> None:
    """Log in, check the integration page and the ATS page; screenshots named by ``tag``."""

    base = f"http://127.0.0.1:{args.port}"
    # The README shows the first start and the plant after the failure; the second start's
    # pictures (the same pages) stay with its configuration.
    shots = Path(args.config) / "screenshots" if tag == "second-start" else Path(args.screenshots)
    shots.mkdir(parents=True, exist_ok=True)
    ids = entity_ids(api)
    device_id = api.template("{{ device_id('" + ids["health"] + "') }}")
    (Path(args.config) / "screenshots").mkdir(parents=True, exist_ok=True)
    # (Before the browser: Playwright's sync API runs its own event loop.)
    board = dashboard_path(api)
    (issues,) = api.ws({"type": "repairs/list_issues"})
    foreign = [
        f"{i['domain']}.{i['issue_id']}"
        for i in issues["issues"]
        if i["domain"] != "datacenter_power" and not i.get("ignored")
    ]
    if foreign:
        raise CheckFailed(f"{tag}: repairs that are not the integration's: {foreign}")
    with logged_in(base) as page:
        say(f"{tag}: logged in as {DEMO_USER[0]}")
        page.wait_for_timeout(3000)
        page.screenshot(path=str(Path(args.config) / "screenshots" / f"{tag}-overview.png"))

        page.goto(base + "/config/repairs")
        page.wait_for_timeout(2000)
        page.screenshot(path=str(Path(args.config) / "screenshots" / f"{tag}-repairs.png"))

        page.goto(base + "/config/integrations/integration/datacenter_power")
        count = page.get_by_text(re.compile(rf"\b{want_devices} devices\b")).first
        try:
            count.wait_for(timeout=90_000)
        except Exception as err:
            page.screenshot(path=str(shots / f"failed-{tag}-integration.png"))
            raise CheckFailed(
                f"{tag}: the integration page does not show {want_devices} devices"
            ) from err
        page.wait_for_timeout(1000)
        page.screenshot(path=str(shots / f"{tag}-integration.png"))
        say(f"{tag}: integration page lists {want_devices} devices")

        page.goto(f"{base}/{board}/plant")
        try:
            page.get_by_text("Load migration").first.wait_for(timeout=60_000)
            page.get_by_text("Components at risk").first.wait_for(timeout=60_000)
        except Exception as err:
            page.screenshot(path=str(shots / f"failed-{tag}-dashboard.png"))
            raise CheckFailed(f"{tag}: the plant dashboard does not show the plant") from err
        page.wait_for_timeout(3000)  # the history graph
        page.screenshot(path=str(shots / f"{tag}-dashboard.png"), full_page=True)
        say(f"{tag}: the plant dashboard shows the plant")
        if tag == "after-failure":
            # the failed ATS's lineup: output lost, its circuits on the other path
            page.goto(f"{base}/{board}/lineup-{ATS}")
            wait_texts(
                page,
                ["Output lost"],
                f"{tag}: the {ATS} lineup view",
                shots / f"{tag}-lineup.png",
            )
            page.wait_for_timeout(3000)
            row = page.evaluate(ROWS_JS, ["Output lost"]).get("Output lost", "")
            if not row.endswith("Problem"):
                page.screenshot(path=str(shots / f"failed-{tag}-lineup.png"), full_page=True)
                raise CheckFailed(f"{tag}: the {ATS} lineup shows {row!r}, not its output lost")
            page.screenshot(path=str(shots / f"{tag}-lineup.png"), full_page=True)
            say(f"{tag}: the {ATS} lineup shows its output lost")

        page.goto(f"{base}/config/devices/device/{device_id}")
        shown = check_device_page(page, api, ids, tag, shots)
        page.screenshot(path=str(shots / f"{tag}-ats.png"), full_page=True)
        say(f"{tag}: {ATS} page shows " + ", ".join(f"{k} {v!r}" for k, v in shown.items()))


@contextmanager
def logged_in(base: str) -> Iterator[Any]:
    """A page of a fresh headless Chromium (Debian's, a throw-away profile), logged in as the
    demo user; the browser is closed afterwards."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="dcp-chromium-") as profile, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, viewport=VIEWPORT
        )
        try:
            yield login(ctx, base)
        finally:
            ctx.close()


def login(ctx: Any, base: str) -> Any:
    """A new page, logged in as the demo user (on the default dashboard)."""
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.goto(base + "/")
    page.locator("input[name=username]").fill(DEMO_USER[0])
    page.locator("input[name=password]").fill(DEMO_USER[1])
    page.get_by_role("button", name=re.compile("log in", re.I)).click()
    page.wait_for_url(re.compile(r"/(lovelace|home)"), timeout=90_000)
    return page


def wait_texts(page: Any, texts: list[str | re.Pattern[str]], what: str, shot: Path) -> None:
    """Each text visible on the page (shadow roots pierced), else a screenshot and a failure."""
    for text in texts:
        try:
            page.get_by_text(text).first.wait_for(state="visible", timeout=60_000)
        except Exception as err:
            page.screenshot(path=str(shot.with_name("failed-" + shot.name)), full_page=True)
            raise CheckFailed(f"{what} does not show {text!r}") from err


def scroll_until_text(
    page: Any, container: str, text: str | re.Pattern[str], what: str, shot: Path
) -> None:
    """``text`` visible after scrolling inside ``container`` (a virtualised list draws only the
    rows in view), else a screenshot and a failure."""
    box = page.locator(container).first
    box.wait_for(state="visible", timeout=60_000)
    box.hover()
    for _ in range(40):
        found = page.get_by_text(text).first
        if found.count() and found.is_visible():
            return
        page.mouse.wheel(0, 150)
        page.wait_for_timeout(250)
    page.screenshot(path=str(shot.with_name("failed-" + shot.name)), full_page=True)
    raise CheckFailed(f"{what} does not show {text!r}, also when scrolled")


def fixable_repair(
    api: Api, timeout: float, kind: str = "failure_predicted", what: str = "predicted failure"
) -> dict[str, Any]:
    """ATS-1's repair of ``kind`` (its issue id's prefix) once it is fixable (the plan is
    ready, or the choices are)."""
    deadline = time.monotonic() + timeout
    while True:
        (issues,) = api.ws({"type": "repairs/list_issues"})
        for issue in issues["issues"]:
            if (
                issue["domain"] == "datacenter_power"
                and issue["issue_id"].startswith(f"{kind}_{ATS}_")
                and issue["is_fixable"]
            ):
                return dict(issue)
        if time.monotonic() > deadline:
            raise CheckFailed(
                f"no fixable repair for {ATS}'s {what} within {timeout:.0f} s: "
                + ", ".join(i["issue_id"] for i in issues["issues"])
            )
        time.sleep(5)


def during_prediction(args: argparse.Namespace, api: Api) -> str:
    """What a person sees while ATS-1 is predicted to fail (approval mode: nothing moved yet):
    the repair with its recommendation and plan, confirmed in the browser; the dashboard with
    the migration; ATS-1's Activity and the logbook. Returns the started migration's id."""

    base = f"http://127.0.0.1:{args.port}"
    shots = Path(args.screenshots)
    shots.mkdir(parents=True, exist_ok=True)
    issue = fixable_repair(api, PREDICTION_WAIT_S)
    say(f"demo: repair {issue['issue_id']} ({issue['severity']}) is fixable")
    _state, attrs = migration_state(api)
    before = attrs.get("migration_id")
    ids = entity_ids(api)
    device_id = api.template("{{ device_id('" + ids["health"] + "') }}")
    board = dashboard_path(api)
    with logged_in(base) as page:
        # Settings > Repairs: the issue in the list, then its fix flow with the plan.
        page.goto(base + "/config/repairs")
        title = f"{ATS} is predicted to fail"
        wait_texts(page, [title], "Settings > Repairs", shots / "demo-repairs.png")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(shots / "demo-repairs.png"))
        page.get_by_text(title).first.click()
        dialog = page.locator("dialog-data-entry-flow")
        wait_texts(
            page,
            [
                f"Migrate the load off {ATS}",
                "Recommended action:",
                re.compile(r"inspect the transfer switch", re.I),
                "Stage 1",
                "At the forecast peak afterwards",
            ],
            "the repair's fix flow",
            shots / "demo-repair-plan.png",
        )
        page.wait_for_timeout(1000)
        page.screenshot(path=str(shots / "demo-repair-plan.png"))
        say("demo: the repair's fix flow shows the recommendation and the staged plan")
        dialog.get_by_role("button", name=re.compile("submit", re.I)).click()
        started = wait_migration(api, before, timeout=60)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(Path(args.config) / "screenshots" / "demo-repair-done.png"))
        say(f"demo: submitted in the repair: migration {started} started")

        # The plant dashboard: the migration in progress, then the ATS-1 lineup.
        page.goto(f"{base}/{board}/plant")
        wait_texts(
            page,
            ["Load migration", re.compile(r"Running|Verifying|Completed")],
            "the plant dashboard",
            shots / "demo-dashboard.png",
        )
        page.wait_for_timeout(2500)
        page.screenshot(path=str(shots / "demo-dashboard.png"), full_page=True)
        page.goto(f"{base}/{board}/lineup-{ATS}")
        wait_texts(
            page,
            [f"ATS {ATS}", "Time to failure", f"{ATS}: load and forecast band (P10-P90)"],
            f"the {ATS} lineup view",
            shots / "demo-lineup.png",
        )
        page.wait_for_timeout(4000)  # the history graphs
        page.screenshot(path=str(shots / "demo-lineup.png"), full_page=True)
        say("demo: the dashboard shows the migration and the lineup")

        # ATS-1's device page: the migration at the top of its Activity, the prediction
        # further down (the card is a scrolled list that draws only what is in view: a
        # person scrolls it, and so does the check).
        page.goto(f"{base}/config/devices/device/{device_id}")
        wait_texts(
            page, [re.compile(f"migration {started}")], f"{ATS}'s Activity",
            shots / "demo-activity.png",
        )  # fmt: skip
        scroll_until_text(
            page, "ha-logbook", re.compile("failure predicted"), f"{ATS}'s Activity",
            shots / "demo-activity.png",
        )  # fmt: skip
        page.mouse.wheel(0, -5000)  # back to the top for the screenshot
        page.wait_for_timeout(1500)
        page.screenshot(path=str(shots / "demo-activity.png"))
        say(f"demo: {ATS}'s Activity shows the prediction and migration {started}")

        # The logbook: the same, and the circuits moving stage by stage.
        wait_migration_done(api, started, timeout=240)
        page.goto(base + "/logbook")
        wait_texts(
            page,
            [
                re.compile("confirmed in its repair"),
                re.compile(r"moved from mpdu1 to mpdu2 .* verified"),
                re.compile(f"migration {started} .*finished"),
            ],
            "the logbook",
            shots / "demo-logbook.png",
        )
        page.wait_for_timeout(1500)
        page.screenshot(path=str(shots / "demo-logbook.png"))
        say("demo: the logbook shows who confirmed it and each circuit moved, verified")
    return started


def wait_migration(api: Api, before: str | None, timeout: float) -> str:
    """The id of a migration of ATS-1 started after ``before``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _state, attrs = migration_state(api)
        mid = attrs.get("migration_id")
        if mid and mid != before and attrs.get("component") == ATS:
            return str(mid)
        time.sleep(1)
    raise CheckFailed(f"no migration of {ATS} started within {timeout:.0f} s of submitting")


def wait_migration_done(api: Api, migration_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state, attrs = migration_state(api)
        if attrs.get("migration_id") == migration_id and state == "completed":
            return
        if attrs.get("migration_id") == migration_id and state in ("aborted", "rolled_back"):
            raise CheckFailed(f"migration {migration_id} {state}: {attrs}")
        time.sleep(2)
    raise CheckFailed(f"migration {migration_id} not completed within {timeout:.0f} s")


ROWS_JS = """
(names) => {
  // Text of an element as rendered: its shadow tree and its light children, recursively.
  const text = (node) => {
    if (node.nodeType === Node.TEXT_NODE) return node.textContent;
    if (node.nodeType !== Node.ELEMENT_NODE) return "";
    if (["STYLE", "SCRIPT", "TEMPLATE"].includes(node.tagName)) return "";
    let out = "";
    if (node.shadowRoot) for (const c of node.shadowRoot.childNodes) out += " " + text(c);
    for (const c of node.childNodes) out += " " + text(c);
    return out;
  };
  const rows = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll("*")) {
      if (/-entity-row$/.test(el.tagName.toLowerCase())) rows.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  const found = {};
  for (const name of names) {
    for (const row of rows) {
      const t = text(row).replace(/\\s+/g, " ").trim();
      if (t.startsWith(name + " ")) { found[name] = t; break; }
    }
  }
  return found;
}
"""


def check_device_page(
    page: Any, api: Api, ids: dict[str, str], tag: str, shots: Path
) -> dict[str, str]:
    """Health, failure risk and load rows, each with a value that is not "Unavailable"."""
    names = {"health": "Health", "risk": "Failure risk", "load": "Load current"}
    deadline = time.monotonic() + 90
    while True:
        rows: dict[str, str] = page.evaluate(ROWS_JS, list(names.values()))
        problems: list[str] = []
        shown: dict[str, str] = {}
        for key, name in names.items():
            text = rows.get(name, "")
            value = text[len(name) :].strip()
            state = api.template("{{ states('" + ids[key] + "') }}")
            if not value:
                problems.append(f"no {name!r} row with a value")
            elif value.lower() in ("unavailable", "unknown") or state in ("unavailable", "unknown"):
                problems.append(f"{name!r} is {value} ({state})")
            else:
                shown[key] = value
        if not problems:
            return shown
        if time.monotonic() > deadline:
            page.screenshot(path=str(shots / f"failed-{tag}-ats.png"), full_page=True)
            raise CheckFailed(f"{tag}: the {ATS} page: " + "; ".join(problems))
        page.wait_for_timeout(2000)


def migration_state(api: Api) -> tuple[str, dict[str, Any]]:
    """The plant's load-migration sensor: state and attributes."""
    entity = api.template(
        "{{ integration_entities('datacenter_power') | select('search', 'load_migration') "
        "| first }}"
    )
    state = api.call("GET", f"/api/states/{entity}")
    return str(state["state"]), dict(state["attributes"])


def follow_demo(args: argparse.Namespace, api: Api, dev: Develop, earlier: str | None) -> float:
    """Wait until a migration of this start (not ``earlier``, the id of the previous start's)
    has completed, the plant shows its circuits moved, ATS-1 has failed, and no circuit was
    interrupted. Returns the minutes from start to the failure."""
    lost = api.template(
        "{{ integration_entities('datacenter_power') "
        "| select('search', '_" + ATS + "_output_lost') | first }}"
    )
    band = api.template(
        "{{ integration_entities('datacenter_power') "
        "| select('search', '_" + ATS + "_load_forecast_p50') | first }}"
    )
    sim_log = Path(args.config) / "simulator.log"
    offset = _last_start(sim_log)
    completed_at = failed_at = band_at = None
    deadline = dev.started + 60 * args.demo_minutes
    while time.monotonic() < deadline:
        if dev.proc.poll() is not None:
            raise CheckFailed(f"scripts/develop exited during the demo ({dev.proc.returncode})")
        now = time.monotonic()
        log = sim_log.read_text(errors="replace")[offset:].splitlines()
        if completed_at is None:
            state, attrs = migration_state(api)
            moved = [line for line in log if "active_path=" in line]
            if (
                state == "completed"
                and attrs.get("migration_id") != earlier
                and attrs.get("component") == ATS
                and len(moved) >= len(attrs.get("circuits", [])) > 0
            ):
                completed_at = now
                say(
                    f"demo: migration {attrs['migration_id']} completed after "
                    f"{(now - dev.started) / 60:.1f} min: {', '.join(attrs['circuits'])} moved "
                    f"off {ATS} ({len(moved)} path changes in the simulator's log)"
                )
        if completed_at is not None and band_at is None:
            # The forecast band follows the new lineup at the next decision (the first poll
            # after the migration), not minutes later: nothing is left on ATS-1 to forecast.
            p50 = api.template("{{ states('" + band + "') }}")
            if (amps := _amps(p50)) is not None and amps <= 1.0:
                band_at = now
                say(
                    f"demo: {ATS}'s forecast P50 is {p50} A {now - completed_at:.0f} s after "
                    "the migration (the band follows the new lineup)"
                )
            elif now - completed_at > 90:
                raise CheckFailed(
                    f"{ATS}'s forecast P50 is still {p50} A 90 s after the migration emptied it"
                )
        if failed_at is None and api.template("{{ states('" + lost + "') }}") == "on":
            failed_at = now
            say(f"demo: {ATS} failed (output lost) after {(now - dev.started) / 60:.1f} min")
            if completed_at is None:
                raise CheckFailed(f"{ATS} failed before its load was migrated")
        interruptions = [line for line in log if "circuit interruption" in line]
        if interruptions:
            raise CheckFailed(f"the simulator logged an interruption: {interruptions[0]}")
        if completed_at is not None and failed_at is not None and band_at is not None:
            return (failed_at - dev.started) / 60
        time.sleep(5)
    raise CheckFailed(
        f"demo: within {args.demo_minutes} min: migration completed={completed_at is not None}, "
        f"{ATS} failed={failed_at is not None}, band followed={band_at is not None}"
    )


def _amps(state: str) -> float | None:
    """A sensor state as amps, or None (unknown, unavailable)."""
    try:
        return float(state)
    except ValueError:
        return None


def _last_start(sim_log: Path) -> int:
    """Offset of the simulator's latest start in its (appended) log."""
    text = sim_log.read_text(errors="replace")
    return max(0, text.rfind("serving from"))


DECISION_SCENARIO: Final = REPO / "scenarios" / "decision-needed.yaml"
DECISION_FROM: Final = "12h"
"""The decision plant goes live 11 h into ATS-1's wear (as the integration tests stand)."""


def decision(args: argparse.Namespace) -> None:
    """Issue 24, "a person asked when no plan is safe", from outside: the repair, the choice in
    the fix flow's dialog, the staged plan run."""

    config = Path(str(args.config) + "-decision")
    dev = Develop(
        args,
        fresh=True,
        scenario=DECISION_SCENARIO,
        config=config,
        start_at=DECISION_FROM,
        extra=("--policy-mode", "approval"),
    )
    try:
        ready = dev.wait_ready(timeout=600)
        say(f"decision plant: scripts/develop ready after {ready:.0f} s")
        api = api_for(args.port)
        issue = fixable_repair(api, PREDICTION_WAIT_S, "decision_needed", "decision needed")
        if issue["severity"] != "critical":
            raise CheckFailed(f"the decision-needed repair is not critical: {issue}")
        say(f"decision plant: repair {issue['issue_id']} (critical) is fixable")
        _state, attrs = migration_state(api)
        before = attrs.get("migration_id")
        base = f"http://127.0.0.1:{args.port}"
        shots = Path(args.screenshots)
        shots.mkdir(parents=True, exist_ok=True)
        with logged_in(base) as page:
            page.goto(base + "/config/repairs")
            title = f"Decision needed at {ATS}"
            wait_texts(page, [title], "Settings > Repairs", shots / "decision-repairs.png")
            page.wait_for_timeout(1000)
            page.screenshot(path=str(shots / "decision-repairs.png"))
            page.get_by_text(title).first.click()
            dialog = page.locator("dialog-data-entry-flow")
            # The menu: every choice with its numbers (the placeholders rendered).
            wait_texts(
                page,
                [
                    # the description: each choice in full
                    re.compile(r"Drain now: all 3 circuits move off ats1; at the P90 mpdu2"),
                    re.compile(r"Keep the load: nothing moves; 3 circuits"),
                    re.compile(r"If nobody answers"),
                    # the menu: each choice in a few words with its key number
                    re.compile(r"Drain now: mpdu2 up to \d+ % over its limit for [\d.]+ h"),
                    re.compile(r"Keep the load: [\d.]+ A on 3 circuits at risk"),
                    re.compile(r"Partial drain: \d move, \d left"),
                    re.compile(r"Shed b03 \([\d.]+ A\), then drain everything"),
                ],
                "the decision's fix flow",
                shots / "decision-choices.png",
            )
            page.wait_for_timeout(1000)
            page.screenshot(path=str(shots / "decision-choices.png"))
            say("decision plant: the fix flow offers drain now, keep, partial drain, shed b03")
            dialog.get_by_text(re.compile(r"Shed b03 \([\d.]+ A\), then")).first.click()
            started = wait_migration(api, before, timeout=60)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(shots / "decision-done.png"))
            say(f"decision plant: shed b03 chosen in the dialog: migration {started} started")
            wait_migration_done(api, started, timeout=240)
        b03 = api.template(
            "{{ integration_entities('datacenter_power') | select('search', 'b03_output') "
            "| map('states') | first }}"
        )
        if b03 != "off":
            raise CheckFailed(f"b03's output is {b03!r} after the shed was chosen")
        (issues,) = api.ws({"type": "repairs/list_issues"})
        if any(i["issue_id"] == issue["issue_id"] for i in issues["issues"]):
            raise CheckFailed("the decision-needed repair is still there after the answer")
        say(f"decision plant: migration {started} completed; b03 off; the repair is gone")
    finally:
        dev.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--sim-port", type=int, default=5020)
    parser.add_argument("--config", default=str(REPO / "config-check"))
    parser.add_argument("--screenshots", default=str(REPO / "docs" / "images"))
    parser.add_argument("--demo-minutes", type=float, default=15.0)
    parser.add_argument("--no-demo", action="store_true", help="skip following the demo")
    parser.add_argument("--failure-only", action="store_true", help="only the sudden-failure plant")
    parser.add_argument(
        "--phone-only", action="store_true", help="only the phone (mobile_app) approval"
    )
    parser.add_argument(
        "--decision-only", action="store_true", help="only the decision-needed plant"
    )
    args = parser.parse_args()
    if args.failure_only or args.phone_only or args.decision_only:
        only = sudden_failure if args.failure_only else phone if args.phone_only else decision
        try:
            only(args)
        except CheckFailed as err:
            print(f"browser-check: FAILED: {err}", file=sys.stderr)
            return 1
        return 0
    # Every device the simulator serves, plus the plant itself (the hub device that carries the
    # load-migration sensor).
    want = expected_devices(REPO / "scenarios" / "demo.yaml") + 1
    t0 = time.monotonic()
    dev: Develop | None = None
    earlier: str | None = None
    first_devices: dict[str, tuple[str, str | None]] = {}
    try:
        for run, fresh in ((1, True), (2, False)):
            dev = Develop(args, fresh=fresh)
            ready = dev.wait_ready(timeout=600)
            say(f"start {run}: scripts/develop ready after {ready:.0f} s")
            api = api_for(args.port)
            browse(args, api, want, tag="first-start" if run == 1 else "second-start")
            devices = plant_devices(api)
            if run == 2:
                check_kept_across_stop(args, first_devices, devices)
            if run == 1:
                first_devices = devices
                earlier = migration_state(api)[1].get("migration_id")
                if not args.no_demo:
                    # The second start waits for a person: the repair shows the plan to approve.
                    set_policy_mode(api, "approval")
                    say("start 1: policy mode set to approval (options flow)")
                dev.stop()
                say("start 1: stopped with Ctrl-C")
        assert dev is not None
        if not args.no_demo:
            during_prediction(args, api)
            minutes = follow_demo(args, api, dev, earlier)
            say(
                f"demo: {ATS} failed after {minutes:.1f} min with its load already migrated, "
                "no circuit interrupted"
            )
            browse(args, api, want, tag="after-failure")
        dev.stop()
        dev = None
        sudden_failure(args)
        phone(args)
        decision(args)
    except CheckFailed as err:
        print(f"browser-check: FAILED: {err}", file=sys.stderr)
        return 1
    finally:
        if dev is not None:
            dev.stop()
    say(f"passed in {(time.monotonic() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
