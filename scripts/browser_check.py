"""The first-contact check: ``scripts/develop`` as a new user meets it, in a real browser.

Run by ``scripts/browser-check`` (CI: ``.ci/run``), inside the project environment. It starts
``scripts/develop`` headless on its own configuration directory (``config-check/``, fresh), and
with Chromium (Debian's package) driven by Playwright:

1. logs in as the demo user, opens the integration's page and checks that it lists every device
   of the plant, opens the ATS-1 device page and checks that health, failure risk and load are
   shown with values; saves screenshots under ``docs/images/``;
2. stops ``scripts/develop`` (as Ctrl-C does), starts it again on the same configuration, and
   checks the same pages again (a second start must log in, not onboard);
3. unless ``--no-demo``: follows the demo until ATS-1 has failed with its load already migrated
   (migration completed) and the simulator has logged no circuit interruption, within
   ``--demo-minutes`` of the second start; a last screenshot shows ATS-1 after its failure.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dev_stack import DASHBOARD, DEMO_USER, Api, expected_devices  # noqa: E402

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


class CheckFailed(Exception):
    """What the user would see go wrong."""


def say(msg: str) -> None:
    print(f"browser-check: {msg}", flush=True)


class Develop:
    """``scripts/develop`` (its Python part) as a child process."""

    def __init__(self, args: argparse.Namespace, fresh: bool) -> None:
        cmd = [
            sys.executable,
            str(REPO / "scripts" / "dev_stack.py"),
            "--headless",
            "--config",
            str(args.config),
            "--port",
            str(args.port),
            "--sim-port",
            str(args.sim_port),
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


def browse(args: argparse.Namespace, api: Api, want_devices: int, tag: str) -> None:
    """Log in, check the integration page and the ATS page; screenshots named by ``tag``."""
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{args.port}"
    # The README shows the first start and the plant after the failure; the second start's
    # pictures (the same pages) stay with its configuration.
    shots = Path(args.config) / "screenshots" if tag == "second-start" else Path(args.screenshots)
    shots.mkdir(parents=True, exist_ok=True)
    ids = entity_ids(api)
    device_id = api.template("{{ device_id('" + ids["health"] + "') }}")
    (Path(args.config) / "screenshots").mkdir(parents=True, exist_ok=True)
    # (Before the browser: Playwright's sync API runs its own event loop.)
    (issues,) = api.ws({"type": "repairs/list_issues"})
    foreign = [
        f"{i['domain']}.{i['issue_id']}"
        for i in issues["issues"]
        if i["domain"] != "datacenter_power" and not i.get("ignored")
    ]
    if foreign:
        raise CheckFailed(f"{tag}: repairs that are not the integration's: {foreign}")
    with tempfile.TemporaryDirectory(prefix="dcp-chromium-") as profile, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport=VIEWPORT,
        )
        try:
            page = ctx.new_page()
            page.set_default_timeout(60_000)
            page.goto(base + "/")
            page.locator("input[name=username]").fill(DEMO_USER[0])
            page.locator("input[name=password]").fill(DEMO_USER[1])
            page.get_by_role("button", name=re.compile("log in", re.I)).click()
            page.wait_for_url(re.compile(r"/(lovelace|home)"), timeout=90_000)
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

            page.goto(f"{base}/{DASHBOARD}/plant")
            try:
                page.get_by_text("Load migration").first.wait_for(timeout=60_000)
                page.get_by_text("Failure risk").first.wait_for(timeout=60_000)
            except Exception as err:
                page.screenshot(path=str(shots / f"failed-{tag}-dashboard.png"))
                raise CheckFailed(
                    f"{tag}: the Data center dashboard does not show the plant"
                ) from err
            page.wait_for_timeout(3000)  # the history graph
            page.screenshot(path=str(shots / f"{tag}-dashboard.png"), full_page=True)
            say(f"{tag}: the Data center dashboard shows the plant")

            page.goto(f"{base}/config/devices/device/{device_id}")
            shown = check_device_page(page, api, ids, tag, shots)
            page.screenshot(path=str(shots / f"{tag}-ats.png"), full_page=True)
            say(f"{tag}: {ATS} page shows " + ", ".join(f"{k} {v!r}" for k, v in shown.items()))
        finally:
            ctx.close()


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
    sim_log = Path(args.config) / "simulator.log"
    offset = _last_start(sim_log)
    completed_at = failed_at = None
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
        if failed_at is None and api.template("{{ states('" + lost + "') }}") == "on":
            failed_at = now
            say(f"demo: {ATS} failed (output lost) after {(now - dev.started) / 60:.1f} min")
            if completed_at is None:
                raise CheckFailed(f"{ATS} failed before its load was migrated")
        interruptions = [line for line in log if "circuit interruption" in line]
        if interruptions:
            raise CheckFailed(f"the simulator logged an interruption: {interruptions[0]}")
        if completed_at is not None and failed_at is not None:
            return (failed_at - dev.started) / 60
        time.sleep(5)
    raise CheckFailed(
        f"demo: within {args.demo_minutes} min: migration completed={completed_at is not None}, "
        f"{ATS} failed={failed_at is not None}"
    )


def _last_start(sim_log: Path) -> int:
    """Offset of the simulator's latest start in its (appended) log."""
    text = sim_log.read_text(errors="replace")
    return max(0, text.rfind("serving from"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--sim-port", type=int, default=5020)
    parser.add_argument("--config", default=str(REPO / "config-check"))
    parser.add_argument("--screenshots", default=str(REPO / "docs" / "images"))
    parser.add_argument("--demo-minutes", type=float, default=15.0)
    parser.add_argument("--no-demo", action="store_true", help="skip following the demo")
    args = parser.parse_args()
    # Every device the simulator serves, plus the plant itself (the hub device that carries the
    # load-migration sensor).
    want = expected_devices(REPO / "scenarios" / "demo.yaml") + 1
    t0 = time.monotonic()
    dev: Develop | None = None
    earlier: str | None = None
    try:
        for run, fresh in ((1, True), (2, False)):
            dev = Develop(args, fresh=fresh)
            ready = dev.wait_ready(timeout=600)
            say(f"start {run}: scripts/develop ready after {ready:.0f} s")
            api = api_for(args.port)
            browse(args, api, want, tag="first-start" if run == 1 else "second-start")
            if run == 1:
                earlier = migration_state(api)[1].get("migration_id")
                dev.stop()
                say("start 1: stopped with Ctrl-C")
        assert dev is not None
        if not args.no_demo:
            minutes = follow_demo(args, api, dev, earlier)
            say(
                f"demo: {ATS} failed after {minutes:.1f} min with its load already migrated, "
                "no circuit interrupted"
            )
            browse(args, api, want, tag="after-failure")
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
