"""``scripts/campus --measure``: the campus's figures and faults (issue 25), measured from outside.

Times come from the instances themselves: every Home Assistant reports a state change with the
time it fired (hall and campus run on this machine's one clock), the broker's messages are
counted by a campus client, CPU and memory are read from ``/proc``. What is measured:

* ``halls_visible_s``: from the command's start until the campus has every hall's devices, with
  the hall's status available;
* ``alert_to_campus_ms``: each change of a hall's status, migration or failure risk, to the same
  value on the campus's entity for it;
* ``approval_round_trip_ms``: the campus's *Approve* button pressed (its REST API, as a person's
  click) to the hall's result shown on the campus, one per hall; and campus commands sent over
  MQTT to their result (``command_round_trip_ms``), many per hall;
* ``mqtt_messages_per_s``, ``broker_cpu_pct`` and each instance's CPU and memory over the window;
* ``faults``: a broker restart, PostgreSQL restarting under one hall, one hall killed, and an
  approval from before a hall's restart arriving after it, each "ok" or what went wrong.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcp_campus.broker import Broker
from dcp_campus.client import Client

if TYPE_CHECKING:
    from campus_stack import Hall
    from dev_stack import Api

WINDOW_S = 180.0
"""The shortest measurement window (messages, CPU, alerts)."""
AFTER_FAILURE_S = 90.0
"""The window goes on this long after the last hall's failure (its alerts reach the campus)."""
COMMANDS_PER_HALL = 10
GRACE_S = 5.0
"""The alert target (issue 25: p99 < 5 s): a hall value held this long must reach the campus."""
BROKER_RESUME_S = 30.0
HALL_DOWN_S = 60.0
STARTED_HERE: list[Any] = []
"""PostgreSQL servers this module started again (``scripts/campus`` stops them at the end)."""


# -- what the instances say -----------------------------------------------------------------


@dataclass
class Change:
    entity_id: str
    state: str
    at: float
    initial: bool = False
    """Not a change: the state when the watch started (``at``)."""


@dataclass
class Watch:
    """State changes of some entities of one Home Assistant, as it fired them, from their
    states when the watch starts; an entity in ``attributes`` is followed by that attribute
    (``none`` without it) instead of its state."""

    api: Api
    entity_ids: set[str]
    attributes: dict[str, str] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)

    def _value(self, entity_id: str, state: dict[str, Any] | None) -> str | None:
        if state is None:
            return None
        if (name := self.attributes.get(entity_id)) is not None:
            return str(state.get("attributes", {}).get(name) or "none")
        return str(state["state"])

    async def run(self, stop: asyncio.Event) -> None:
        import aiohttp

        url = self.api.base.replace("http", "ws", 1) + "/api/websocket"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.receive_json()
            await ws.send_json({"type": "auth", "access_token": self.api.token})
            await ws.receive_json()
            await ws.send_json({"id": 1, "type": "subscribe_events", "event_type": "state_changed"})
            await ws.send_json({"id": 2, "type": "get_states"})
            while not stop.is_set():
                try:
                    msg = await ws.receive_json(timeout=0.5)
                except TimeoutError:
                    continue
                if msg.get("id") == 2 and msg.get("type") == "result":
                    # Where each entity stood before its first change here (events fired
                    # before this answer came before it).
                    now = time.time()
                    self.changes += [
                        Change(st["entity_id"], value, now, initial=True)
                        for st in msg.get("result") or []
                        if st["entity_id"] in self.entity_ids
                        and (value := self._value(st["entity_id"], st)) is not None
                    ]
                    continue
                if msg.get("type") != "event":
                    continue
                data = msg["event"]["data"]
                entity_id = data["entity_id"]
                if entity_id not in self.entity_ids:
                    continue
                new = self._value(entity_id, data.get("new_state"))
                old = self._value(entity_id, data.get("old_state"))
                # A change of what is followed, not of other attributes (those are not alerts).
                if new is not None and new != old:
                    fired = datetime.fromisoformat(msg["event"]["time_fired"]).timestamp()
                    self.changes.append(Change(entity_id, new, fired))


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": at(0.5), "p99": at(0.99)}


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (an exited child its parent has not reaped yet does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(p) for p in (task / "children").read_text().split()]
    return out


def hass_pid(stack_pid: int) -> int:
    """The Home Assistant a hall's ``dev_stack.py`` runs."""
    for child in _children(stack_pid):
        if b"homeassistant" in Path(f"/proc/{child}/cmdline").read_bytes():
            return child
    raise RuntimeError(f"no Home Assistant under pid {stack_pid}")


def _wait(check: Callable[[], bool], timeout_s: float, every_s: float = 0.5) -> float | None:
    """Seconds until ``check()`` holds, or None after ``timeout_s``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        try:
            if check():
                return time.monotonic() - start
        except Exception:
            pass
        time.sleep(every_s)
    return None


def _run(client: Client, hall: str) -> str:
    """The hall's run, from its retained state document."""
    for msg in reversed(client.received(f"dcp/{hall}/state/hall")):
        return str(json.loads(msg.payload)["run"])
    raise RuntimeError(f"no state document of {hall}")


def _state(api: Api, entity_id: str) -> str | None:
    try:
        return str(api.call("GET", f"/api/states/{entity_id}")["state"])
    except Exception:
        return None


# -- the hall's entities and the campus's entities for them ---------------------------------


def paired_entities(hall: Hall) -> dict[str, str]:
    """Hall entity id -> the campus entity showing it: status, components at risk, migration,
    the open proposal (by its id: ``PROPOSAL_ID``) and each failure risk."""
    (entries,) = hall.api.ws({"type": "config/entity_registry/list"})
    ours = [e for e in entries if e["platform"] == "datacenter_power"]
    pairs: dict[str, str] = {}
    for e in ours:
        uid = str(e.get("unique_id") or "")
        if uid.endswith(":plant:plant_status"):
            pairs[e["entity_id"]] = f"sensor.dcp_{hall.name}_status"
        elif uid.endswith(":plant:components_at_risk"):
            pairs[e["entity_id"]] = f"sensor.dcp_{hall.name}_at_risk"
        elif uid.endswith(":plant:proposal"):
            pairs[e["entity_id"]] = f"sensor.dcp_{hall.name}_proposal_id"
        elif uid.endswith(":migration"):
            pairs[e["entity_id"]] = f"sensor.dcp_{hall.name}_migration"
        elif uid.endswith(":failure_risk") and e["entity_id"].startswith("binary_sensor."):
            plant_id = uid.split(":")[-2]
            slug = "".join(c if c.isalnum() or c in "_-" else "_" for c in plant_id)
            pairs[e["entity_id"]] = f"binary_sensor.dcp_{hall.name}_{slug}_failure_risk"
    return pairs


PROPOSAL_ID = "proposal_id"
"""The hall's proposal sensor is followed by this attribute (its state is the proposal's text,
which changes with its figures): the campus shows it as the ``proposal_id`` sensor."""


def _followed_attributes(pairs: dict[str, str]) -> dict[str, str]:
    return {h: PROPOSAL_ID for h, c in pairs.items() if c.endswith("_proposal_id")}


NOT_SHOWN = frozenset({"unavailable", "unknown"})
"""Hall states that are no value to show (the campus says why in its own words)."""


@dataclass(frozen=True)
class Alert:
    """One hall alert as the campus saw it."""

    ms: float
    """Milliseconds from the hall's change to the campus showing the same value; if
    ``missed``, how long the campus went without showing it (a lower bound)."""
    entity: str
    state: str
    missed: bool = False


def _shown(campus: list[Change], entity_id: str, at: float) -> str | None:
    """What the campus's ``entity_id`` showed at ``at`` (its last change before)."""
    before = [c.state for c in campus if c.entity_id == entity_id and c.at <= at]
    return before[-1] if before else None


def alert_latencies(
    hall_changes: list[Change], campus: list[Change], pairs: dict[str, str], end: float
) -> list[Alert]:
    """Each hall change (until ``end``, the window's end) as the campus saw it: the time to the
    campus's first later change to the same value. Not counted: a flicker the hall undid within
    ``GRACE_S`` that the campus never showed (shorter than one publication), and a return to
    the value the campus shows anyway (after such a flicker: nothing to deliver; pairing it with
    the campus's next change to that value would time an unrelated later change). A value the
    hall held longer that the campus did not show by ``GRACE_S`` after the hall left it is
    missed, counted for as long as it went unseen (at least the grace: over the target)."""
    out: list[Alert] = []
    for i, ch in enumerate(hall_changes):
        target = pairs.get(ch.entity_id)
        if (
            target is None
            or ch.initial
            or ch.state in NOT_SHOWN
            or _shown(campus, target, ch.at) == ch.state
        ):
            continue
        undone = next((n.at for n in hall_changes[i + 1 :] if n.entity_id == ch.entity_id), end)
        match = next(
            (
                c
                for c in campus
                if c.entity_id == target and c.state == ch.state and ch.at <= c.at and not c.initial
            ),
            None,
        )
        if match is not None and match.at <= undone + GRACE_S:
            out.append(Alert(1000.0 * (match.at - ch.at), ch.entity_id, ch.state))
        elif undone - ch.at >= GRACE_S:
            unseen = min(undone + GRACE_S, end) - ch.at
            out.append(Alert(1000.0 * unseen, ch.entity_id, ch.state, missed=True))
    return out


# -- the measurement --------------------------------------------------------------------------


def halls_visible(campus: Api, halls: Sequence[Hall], timeout_s: float) -> bool:
    def every_hall() -> bool:
        return all(
            (_state(campus, f"sensor.dcp_{h.name}_status") or "unavailable")
            not in ("unavailable", "unknown")
            for h in halls
        )

    return _wait(every_hall, timeout_s, every_s=1.0) is not None


def measure(
    broker: Broker,
    halls: Sequence[Hall],
    campus: Api,
    campus_proc: subprocess.Popen[bytes],
    started: float,
    restart_hall: Callable[[Hall], None],
) -> dict[str, Any]:
    """Every figure of ``scripts/campus --measure`` (see the module's docstring)."""
    if not halls_visible(campus, halls, timeout_s=600):
        raise SystemExit("the campus did not show every hall within 10 minutes")
    visible_s = time.monotonic() - started
    pids = {h.name: hass_pid(h.proc.pid) for h in halls if h.proc is not None}
    pids["campus"] = campus_proc.pid
    assert broker.process is not None
    broker_pid = broker.process.pid
    pairs = {h.name: paired_entities(h) for h in halls}
    client = Client(broker, "campus")
    client.subscribe("#")
    hall_watches = [
        Watch(h.api, set(pairs[h.name]), _followed_attributes(pairs[h.name])) for h in halls
    ]
    campus_ids = {c for p in pairs.values() for c in p.values()}
    campus_ids |= {f"sensor.dcp_{h.name}_last_command" for h in halls}
    campus_watch = Watch(campus, campus_ids)
    cpu0 = {n: _cpu_s(p) for n, p in pids.items()}
    broker0 = _cpu_s(broker_pid)
    t0 = time.time()
    messages0 = len(client.messages)

    shown: dict[str, tuple[str, str]] = {}

    async def window() -> tuple[list[float], list[float], float]:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(w.run(stop)) for w in [*hall_watches, campus_watch]]
        await asyncio.sleep(2)  # subscribed
        approvals: list[float] = []
        for h in halls:
            if (open_now := client.shown_proposal(h.name)) is not None:
                shown[h.name] = open_now  # (id, run): what the campus's button approves
            pressed = time.time()
            await asyncio.to_thread(
                campus.call,
                "POST",
                "/api/services/button/press",
                {"entity_id": f"button.dcp_{h.name}_approve_proposal"},
            )
            result_id = f"sensor.dcp_{h.name}_last_command"
            for _ in range(200):
                hit = [
                    c for c in campus_watch.changes if c.entity_id == result_id and c.at >= pressed
                ]
                if hit:
                    approvals.append(1000.0 * (hit[0].at - pressed))
                    break
                await asyncio.sleep(0.05)
        commands: list[float] = []
        runs = {h.name: _run(client, h.name) for h in halls}
        for h in halls:
            client.subscribe(f"dcp/{h.name}/result")
            for _ in range(COMMANDS_PER_HALL):
                run = runs[h.name]  # no such proposal: refused, with its answer
                _result, rtt = await client.command(h.name, "dismiss", "0000000001", run)
                commands.append(1000.0 * rtt)
        # Until every hall's ATS has failed (its alerts) and at least WINDOW_S.
        end = max(t0 + WINDOW_S, max(h.failure_at for h in halls) + AFTER_FAILURE_S)
        await asyncio.sleep(max(0.0, end - time.time()))
        stop.set()
        await asyncio.gather(*tasks)
        return approvals, commands, time.time()

    approvals, commands, t_end = asyncio.run(window())
    wall = time.time() - t0
    instances = [
        {
            "name": n,
            "cpu_pct": round(100 * (_cpu_s(p) - cpu0[n]) / wall, 1),
            "rss_mb": _rss_mb(p),
        }
        for n, p in pids.items()
    ]
    live = [m for m in client.messages[messages0:] if not m.retain]
    alert_samples = [
        sample
        for h, w in zip(halls, hall_watches, strict=True)
        for sample in alert_latencies(w.changes, campus_watch.changes, pairs[h.name], end=t_end)
    ]
    alerts = [a.ms for a in alert_samples]
    result: dict[str, Any] = {
        "halls_visible_s": round(visible_s, 1),
        "alert_to_campus_ms": _percentiles(alerts),
        "approval_round_trip_ms": _percentiles(approvals),
        "mqtt_messages_per_s": round(len(live) / wall, 2),
        "broker_cpu_pct": round(100 * (_cpu_s(broker_pid) - broker0) / wall, 2),
        "instances": instances,
        "samples": {
            "alerts": len(alerts),
            "alerts_missed": sum(a.missed for a in alert_samples),
            "approvals": len(approvals),
            "commands": len(commands),
        },
        "command_round_trip_ms": _percentiles(commands),
        "window_s": round(wall, 1),
        "slowest_alerts": [
            {"ms": round(a.ms, 1), "entity": a.entity, "state": a.state, "missed": a.missed}
            for a in sorted(alert_samples, key=lambda a: a.ms, reverse=True)[:3]
        ],
    }
    client.close()
    print(f"campus: measured {json.dumps(result)}; now the faults", flush=True)
    result["faults"] = faults(broker, halls, campus, restart_hall, shown)
    return result


# -- faults -----------------------------------------------------------------------------------


def faults(
    broker: Broker,
    halls: Sequence[Hall],
    campus: Api,
    restart_hall: Callable[[Hall], None],
    shown: dict[str, tuple[str, str]],
) -> dict[str, str]:
    """Each fault's outcome: "ok", or what went wrong."""
    out: dict[str, str] = {}
    out["broker_restart"] = _broker_restart(broker, halls, campus)
    print(f"campus: broker restart: {out['broker_restart']}", flush=True)
    out["postgresql_restart"] = _postgresql_restart(halls[0])
    print(f"campus: PostgreSQL restart: {out['postgresql_restart']}", flush=True)
    last = halls[-1]
    out["hall_down"], out["stale_approval"] = _hall_down_and_stale(
        broker, last, campus, restart_hall, shown.get(last.name)
    )
    return out


def _broker_restart(broker: Broker, halls: Sequence[Hall], campus: Api) -> str:
    broker.restart()
    back = time.monotonic()
    client = Client(broker, "campus")
    try:
        client.subscribe("dcp/#")

        def retained_halls() -> set[str]:
            return {m.topic.split("/")[1] for m in client.messages if m.retain}

        _wait(lambda: all(h.name in retained_halls() for h in halls), 5.0, every_s=0.1)
        missing = [h.name for h in halls if h.name not in retained_halls()]
        if missing:
            return f"retained state of {', '.join(missing)} not back after the restart"

        def resumed() -> bool:
            fresh = {m.topic.split("/")[1] for m in client.messages if not m.retain}
            on_campus = all(
                (_state(campus, f"sensor.dcp_{h.name}_status") or "unavailable") != "unavailable"
                for h in halls
            )
            return on_campus and all(h.name in fresh for h in halls)

        took = _wait(resumed, BROKER_RESUME_S + 5)
        elapsed = time.monotonic() - back
        if took is None or elapsed > BROKER_RESUME_S:
            return f"halls not all publishing and shown {BROKER_RESUME_S:.0f} s after the restart"
        return "ok"
    finally:
        client.close()


def _postgresql_restart(hall: Hall) -> str:
    import psycopg2  # noqa: F401  (the server's connect uses it)
    from dev_recorder import server_for

    server = server_for(hall.config, hall.pg_port)
    log = hall.config / "home-assistant.log"
    before = log.read_text(errors="replace").count("\n") if log.exists() else 0
    # The hall's stack started this server: stop its postmaster as a service manager would
    # (SIGINT: fast shutdown), then start it again on the same data and port from here.
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster, signal.SIGINT)
    if _wait(lambda: not _running(postmaster), 60) is None:
        return "PostgreSQL did not stop within 60 s"
    time.sleep(5)
    server.start()
    STARTED_HERE.append(server)
    restarted = time.time()

    def recorded_since() -> bool:
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM states WHERE last_updated_ts > %s", (restarted,))
            return int(cur.fetchone()[0]) > 0

    if _wait(recorded_since, 120, every_s=2) is None:
        return "the recorder wrote nothing to PostgreSQL within 120 s of its restart"
    lines = log.read_text(errors="replace").splitlines()[before:] if log.exists() else []
    ours = [ln for ln in lines if "ERROR" in ln and "datacenter_power" in ln]
    if ours:
        return f"the integration logged errors: {ours[0][:200]}"
    status = [e for e in paired_entities(hall) if e.startswith("sensor.")]
    if any(_state(hall.api, e) in (None, "unavailable") for e in status):
        return "the hall's status became unavailable"
    return "ok"


def _hall_down_and_stale(
    broker: Broker,
    hall: Hall,
    campus: Api,
    restart_hall: Callable[[Hall], None],
    shown: tuple[str, str] | None,
) -> tuple[str, str]:
    client = Client(broker, "campus")
    try:
        client.subscribe(f"dcp/{hall.name}/#")
        assert hall.proc is not None
        os.kill(hass_pid(hall.proc.pid), signal.SIGKILL)
        status = f"sensor.dcp_{hall.name}_status"
        took = _wait(lambda: _state(campus, status) == "unavailable", HALL_DOWN_S)
        down = (
            "ok"
            if took is not None
            else f"campus still showed {hall.name} {HALL_DOWN_S:.0f} s later"
        )
        hall.proc.wait(timeout=300)
        restart_hall(hall)
        stale = _stale_approval(client, hall, shown)
        return down, stale
    finally:
        client.close()


def _stale_approval(client: Client, hall: Hall, shown: tuple[str, str] | None) -> str:
    """The approval of the proposal the campus showed before the restart, sent after it: it
    must be refused even though the restarted hall raises the same proposal (same id) again."""
    if shown is None:
        return "no proposal was shown before the restart (nothing to replay)"
    pid, old_run = shown
    try:
        asyncio.run(client.wait_for_proposal(hall.name, within=120))
    except TimeoutError:
        return "the restarted hall showed no proposal within 120 s (nothing to refuse)"
    result, _rtt = asyncio.run(client.command(hall.name, "approve", pid, old_run, within=30))
    if result.get("ok"):
        return "an approval from before the restart was accepted"
    return "ok"
