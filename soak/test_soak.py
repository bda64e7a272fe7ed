"""The soak run: Home Assistant with the integration in ``automatic`` mode, a generated plant
served by the simulator behind a fault-injecting Modbus gateway, and simulated time moved in
5-minute steps (plant and Home Assistant clocks together).

Every step may inject faults (Modbus faults per unit, a gateway restart or outage, a restart of
the integration with or without damaged stored data, a switch to approval mode across a
restart), a burst of action calls (valid and invalid, admin and non-admin), then advances time,
polls, lets the engine decide every 15 simulated minutes, lets migrations run, and checks the
invariants. Source outages, sudden failures, wear, surges, stuck sensors and communication
losses come from the generated scenario. Run it with ``python -m soak`` (``scripts/soak``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import probatio as vol
import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import Context, Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError, Unauthorized
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power import (
    const,
    coordinator,
    decisions,
    diagnostics,
    migration,
    services,
)
from custom_components.datacenter_power.const import (
    CONF_HOST,
    CONF_MAX_STEP_AMPS,
    CONF_POLICY_MODE,
    CONF_PORT,
    CONF_STEP_INTERVAL,
    DEFAULT_OPTIONS,
    DOMAIN,
)
from custom_components.datacenter_power.events import EVENT_FAILOVER, EVENT_MIGRATION_FINISHED
from custom_components.datacenter_power.executor import FINAL_STATES, MigrationState
from custom_components.datacenter_power.faults import CLEAR_FRACTION
from custom_components.datacenter_power.migration import KEEP_FINISHED
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer
from tests.integration.modbus_proxy import ModbusProxy

from .report import REPORT

STEP_S = 300
DECIDE_EVERY = 3
"""Steps between two runs of the decision policy (15 simulated minutes)."""
LIMIT = 0.8
MODBUS_FAULTS = (
    "illegal_function",
    "illegal_address",
    "illegal_value",
    "device_failure",
    "busy",
    "gateway_path",
    "gateway_target",
    "short",
    "garbage",
    "stray",
    "silent",
    "reset",
    "wrong_unit",
    "slow",
)
MAX_RSS_GROWTH_MB = 400.0
NO_ANSWER = frozenset(
    {"silent", "gateway_target", "gateway_path", "device_failure", "garbage", "short", "wrong_unit"}
)
"""Faults under which a unit gives no valid reading: it has no fresh telemetry."""


def scenario(seed: int, hours: float) -> dict[str, Any]:
    """A plant of 2 ATSs, 3 MPDUs and 9 circuits with random loads and random faults."""
    rng = random.Random(seed)
    mpdus = ["mpdu1", "mpdu2", "mpdu3"]
    circuits = []
    for i in range(1, 10):
        paths = rng.sample(mpdus, k=rng.choice((2, 2, 3)))
        circuits.append(
            {
                "id": f"c{i:02d}",
                "paths": paths,
                "rating_a": 16,
                "critical": i != 9,
                "load": {
                    "mean_a": round(rng.uniform(2.0, 4.5), 2),
                    "daily": round(rng.uniform(0.1, 0.3), 2),
                    "noise": 0.03,
                },
            }
        )
    events: list[dict[str, Any]] = []
    span = max(hours, 1.0) * 3600.0
    for k in range(max(1, int(hours // 12) + 1)):
        base = k * 12 * 3600.0

        def at(lo: float = 0.0, hi: float = 12 * 3600.0, base: float = base) -> float:
            return min(span - 60.0, base + rng.uniform(lo, hi))

        events += [
            {
                "kind": "source_outage",
                "target": rng.choice(["util_a", "util_b"]),
                "at": f"{at():.0f}",
                "duration": f"{rng.uniform(300, 1800):.0f}",
            },
            {
                "kind": "sudden_failure",
                "target": rng.choice(mpdus),
                "at": f"{at():.0f}",
                "repair_after": f"{rng.uniform(1800, 3 * 3600):.0f}",
            },
            {
                "kind": "load_surge",
                "targets": rng.sample([c["id"] for c in circuits], k=2),
                "at": f"{at():.0f}",
                "duration": f"{rng.uniform(600, 3600):.0f}",
                "extra_a": round(rng.uniform(1, 4), 1),
            },
            {
                "kind": "comms_loss",
                "target": rng.choice([*mpdus, "c01", "ats1"]),
                "at": f"{at():.0f}",
                "duration": f"{rng.uniform(120, 900):.0f}",
            },
            {
                "kind": "sensor_stuck",
                "target": rng.choice(mpdus),
                "at": f"{at():.0f}",
                "duration": f"{rng.uniform(300, 1800):.0f}",
            },
        ]
        if k % 2 == 1:
            # A sudden failure under a surge that the survivors cannot carry within their
            # limits: no rebalance can fix it, and it must still be alerted within one poll.
            hit = at(3600.0, 11 * 3600.0)
            events += [
                {
                    "kind": "load_surge",
                    "targets": rng.sample([c["id"] for c in circuits], k=7),
                    "at": f"{max(0.0, hit - 1800):.0f}",
                    "duration": "5400",
                    "extra_a": round(rng.uniform(4.0, 5.0), 1),
                },
                {
                    "kind": "sudden_failure",
                    "target": rng.choice(mpdus),
                    "at": f"{hit:.0f}",
                    "repair_after": f"{rng.uniform(1800, 3600):.0f}",
                },
            ]
        if k % 2 == 0:
            onset = at(0, 4 * 3600.0)
            events.append(
                {
                    "kind": "ats_contact_wear",
                    "target": rng.choice(["ats1", "ats2"]),
                    "onset": f"{onset:.0f}",
                    "failure": f"{min(span, onset + rng.uniform(6, 10) * 3600):.0f}",
                    "repair_after": "7200",
                }
            )
    return {
        "version": 1,
        "name": f"soak-{seed}",
        "seed": seed,
        "start": "2026-03-02T00:00:00Z",
        "history": "0s",
        "duration": f"{span:.0f}",
        "step": "60s",
        "environment": {"ambient_c": 24, "humidity_pct": 40},
        "sources": [{"id": "util_a", "nominal_v": 230}, {"id": "util_b", "nominal_v": 230}],
        "ats": [
            {
                "id": "ats1",
                "sources": ["util_a", "util_b"],
                "rating_a": 100,
                "transfer_time": "12ms",
                "rated_operations": 6000,
            },
            {
                "id": "ats2",
                "sources": ["util_b", "util_a"],
                "rating_a": 100,
                "transfer_time": "12ms",
                "rated_operations": 6000,
            },
        ],
        "mpdus": [
            {"id": "mpdu1", "ats": "ats1", "rating_a": 32},
            {"id": "mpdu2", "ats": "ats2", "rating_a": 32},
            {"id": "mpdu3", "ats": "ats2", "rating_a": 32},
        ],
        "circuits": circuits,
        "events": events,
    }


def _seconds(value: str) -> float:
    return float(value)  # the soak's scenario writes every time as a number of seconds


def failure_windows(doc: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(unit, from, until) of every failure the scenario makes: what the plant truly does,
    independent of anything the integration reads or decides. A failure that begins while the
    same unit is still down from another extends that outage (nothing new to alert)."""
    raw: list[tuple[str, float, float]] = []
    for ev in doc["events"]:
        if ev["kind"] == "sudden_failure":
            at = _seconds(ev["at"])
        elif ev["kind"].endswith("_wear"):
            at = _seconds(ev["failure"])
        else:
            continue
        raw.append((ev["target"], at, at + _seconds(ev.get("repair_after", "1e12"))))
    out: list[tuple[str, float, float]] = []
    for unit, began, ended in sorted(raw):
        if out and out[-1][0] == unit and began <= out[-1][2]:
            out[-1] = (unit, out[-1][1], max(ended, out[-1][2]))
        else:
            out.append((unit, began, ended))
    return out


def blind_windows(doc: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(unit, from, until) of the scenario's communication losses and frozen sensors: a poll
    then cannot show what the unit does."""
    return [
        (ev["target"], _seconds(ev["at"]), _seconds(ev["at"]) + _seconds(ev["duration"]))
        for ev in doc["events"]
        if ev["kind"] in ("comms_loss", "sensor_stuck")
    ]


def _load(reading: Any) -> float:
    """An ATS's or MPDU's current as the plant reports it."""
    load = getattr(reading, "load_current_a", None)
    return float(reading.current_a if load is None else load)


class SimClock:
    """The integration's clock in the soak: simulated time, moved with the plant's.

    Home Assistant's own clock keeps running (its timers and timeouts need it); the
    integration's modules see this one as ``dt_util`` and ``time`` instead, so its telemetry
    timestamps, staleness checks and the engine's forecasts follow the simulated hours.
    """

    def __init__(self) -> None:
        self.now = dt_util.utcnow()

    def utcnow(self) -> datetime:
        return self.now

    def time(self) -> float:
        return self.now.timestamp()

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(dt_util, name)


class _ErrorLog(logging.Handler):
    """Counts ERROR records (tracebacks included) of Home Assistant, asyncio and the integration."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []
        self.outages = 0
        self.alerts = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Error fetching") and not record.exc_info:
            # The coordinator's one line when the whole gateway is gone (a fault, rightly an
            # ERROR, and logged once per outage); counted, not a violation.
            self.outages += 1
            return
        if message.startswith(("FAILURE: ", "OVER LIMIT: ")) and not record.exc_info:
            # The integration's alert of a failure or an element over its limit (faults.py):
            # what it must do, counted.
            self.alerts += 1
            return
        if record.name.startswith(("custom_components", "homeassistant", "asyncio")):
            self.records.append(f"{record.name}: {message[:300]}")


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Soak:
    """One run: the plant, the gateway, Home Assistant's entry, the random source, the checks."""

    def __init__(
        self,
        hass: HomeAssistant,
        storage: dict[str, Any],
        non_admin: str,
        seed: int,
    ) -> None:
        self.hass = hass
        self.clock = SimClock()
        self.storage = storage
        self.non_admin = non_admin
        self.rng = random.Random(seed * 7919 + 1)
        self.verbose = bool(os.environ.get("SOAK_VERBOSE"))
        self.server: PlantServer
        self.proxy: ModbusProxy
        self.entry: MockConfigEntry
        self.fault_until: dict[int, int] = {}
        self.outage_until = -1
        self.finished: list[dict[str, Any]] = []
        self.errors = _ErrorLog()
        self.switch_times: dict[str, list[float]] = {}
        self.switch_counts: dict[str, int] = {}
        self.bypass_counts: dict[str, int] = {}
        self.step = 0
        self.failures: list[tuple[str, float, float]] = []
        self.blind: list[tuple[str, float, float]] = []
        self.alerted_at: dict[str, float] = {}
        """Unit -> plant time of the latest failover event that named it (failed or over)."""
        self.polled: Any = None
        """The plant as the last successful poll read it (before any command of the step)."""
        self.polled_faulty: set[int] = set()
        self.over_since: dict[str, float] = {}
        self.live_seen: dict[str, list[float]] = {}
        """Unit -> plant times of the polls that read it live."""
        self.silent_at_start: set[int] = set()
        """Units whose Modbus answers were faulted when the step's commands began."""
        self.commands_base: dict[str, int] = {}
        self.stale: tuple[str, int] | None = None
        """(unit, step) of a proposal made stale by a hand move, until the next decision."""
        """Circuit -> commands it had received then."""
        self.marked = False

    # -- plumbing ----------------------------------------------------------------------------------

    def say(self, line: str) -> None:
        if self.verbose:
            print(f"[{self.step * STEP_S / 3600:7.2f} h] {line}", flush=True)

    def fault(self, kind: str, line: str) -> None:
        REPORT.fault(kind, line)
        self.say(f"fault {kind}: {line}")

    def action(self, kind: str, line: str) -> None:
        REPORT.action(kind, line)
        self.say(f"action {kind}: {line}")

    @property
    def loaded(self) -> bool:
        return self.entry.state is ConfigEntryState.LOADED

    def paths(self) -> dict[str, str]:
        tel = self.server.plant.telemetry()
        return {c: t.paths[t.active_path] for c, t in tel.circuits.items()}

    def switched(self) -> dict[str, tuple[str, bool]]:
        """What commands change: each circuit's path and output, each MPDU's output."""
        tel = self.server.plant.telemetry()
        out = {c: (t.paths[t.active_path], t.output_on) for c, t in tel.circuits.items()}
        out |= {m: ("", t.output_on) for m, t in tel.mpdus.items()}
        return out

    async def start(self, doc: dict[str, Any]) -> None:
        self.failures, self.blind = failure_windows(doc), blind_windows(doc)
        plant = Plant(parse_scenario(doc), start_s=0.0)
        self.server = PlantServer(plant, speed=0)
        self.port = await self.server.start("127.0.0.1", 0)
        self.proxy = ModbusProxy(self.port)
        await self.proxy.start()
        self.entry = MockConfigEntry(
            domain=DOMAIN,
            title="Plant ats1+ats2",
            unique_id="ats1+ats2",
            data={CONF_HOST: "127.0.0.1", CONF_PORT: self.proxy.port},
            options={
                **DEFAULT_OPTIONS,
                CONF_POLICY_MODE: "automatic",
                CONF_STEP_INTERVAL: 0,
                CONF_MAX_STEP_AMPS: 20.0,
            },
        )
        self.entry.add_to_hass(self.hass)
        await self.hass.config_entries.async_setup(self.entry.entry_id)
        await self.hass.async_block_till_done()
        for _ in range(5):  # a loaded machine can time the first scan out: retry, as HA does
            if self.loaded:
                break
            await self.hass.config_entries.async_reload(self.entry.entry_id)
            await self.hass.async_block_till_done()
        assert self.loaded, f"the entry did not load: {self.entry.state}"
        self.units = {
            pid: ident.unit_id
            for pid, ident in self.entry.runtime_data.telemetry.identities.items()
        }
        self.hass.bus.async_listen(EVENT_MIGRATION_FINISHED, self._on_finished)
        self.hass.bus.async_listen(EVENT_FAILOVER, self._on_failover)
        logging.getLogger().addHandler(self.errors)

    async def stop(self) -> None:
        logging.getLogger().removeHandler(self.errors)
        if self.loaded:
            await self.hass.config_entries.async_unload(self.entry.entry_id)
        await self.hass.async_block_till_done()
        await self.proxy.stop()
        await self.server.stop()

    @callback
    def _on_finished(self, event: Event[dict[str, Any]]) -> None:
        """A migration ended: what the plant reports at that moment, for the checks."""
        data = dict(event.data)
        manager = self.entry.runtime_data.migrations if self.loaded else None
        record = manager.records.get(data["migration_id"]) if manager else None
        data["stages_moves"] = (
            [[(m.circuit, m.from_mpdu, m.to_mpdu) for m in s] for s in record.stages]
            if record
            else []
        )
        data["paths"] = self.paths()
        self.finished.append(data)

    @callback
    def _on_failover(self, event: Event[dict[str, Any]]) -> None:
        named = [
            *event.data.get("failed", []),
            *(o["element"] for o in event.data.get("over_limit", [])),
        ]
        for unit in named:
            self.alerted_at[unit] = self.server.plant.t_s

    # -- faults --------------------------------------------------------------------------------------

    def inject_modbus_fault(self) -> None:
        pid = self.rng.choice(sorted(self.units))
        unit = self.units[pid]
        kind = self.rng.choice(MODBUS_FAULTS)
        self.proxy.faults[unit] = kind  # type: ignore[assignment]
        self.fault_until[unit] = self.step + self.rng.randint(1, 4)
        self.fault(kind, f"{pid} (unit {unit})")

    def clear_faults(self) -> None:
        for unit, until in list(self.fault_until.items()):
            if until <= self.step:
                self.proxy.faults.pop(unit, None)
                del self.fault_until[unit]

    async def gateway_restart(self) -> None:
        self.proxy.drop_connections()
        self.fault("gateway_restart", "every connection dropped")

    async def gateway_outage(self) -> None:
        await self.server.stop()
        self.outage_until = self.step + self.rng.randint(1, 3)
        self.fault("gateway_outage", f"until step {self.outage_until}")

    async def end_outage(self) -> None:
        if 0 <= self.outage_until <= self.step:
            await self.server.start("127.0.0.1", self.port)
            self.outage_until = -1

    async def restart_mid_migration(self) -> None:
        """Issue 20, item 1: a migration is stopped between its stages by a restart while a
        unit it was filling stops answering (no fresh telemetry, as much at risk as a unit
        predicted to fail). The checks then hold that nothing is commanded onto that unit."""
        manager = self.entry.runtime_data.migrations
        self.say("  restart mid-migration: trying")
        if manager.active is not None:
            return
        component = self.rng.choice(["mpdu1", "mpdu2", "mpdu3"])
        try:
            started = await self.hass.services.async_call(
                DOMAIN,
                "migrate_load",
                {"component": component, "max_step_amps": 5, "step_interval": 10},
                blocking=True,
                return_response=True,
            )
        except (ServiceValidationError, HomeAssistantError, vol.Invalid) as err:
            self.say(f"  restart mid-migration: no migration of {component} ({err})")
            return
        assert started is not None
        record = manager.records[str(started["migration_id"])]
        later = sorted({m.to_mpdu for stage in record.stages[1:] for m in stage})
        if not later:
            self.say(f"  restart mid-migration: {component}'s plan has one stage")
            await self.settle()
            return
        async with asyncio.timeout(60):
            while record.completed_stages < 1 and record.state not in FINAL_STATES:
                await manager.async_wait_progress()
        if record.state in FINAL_STATES:
            self.say(f"  restart mid-migration: {record.migration_id} ended {record.state}")
            return
        receiver = self.rng.choice(later)
        unit = self.units[receiver]
        self.proxy.faults[unit] = "silent"  # type: ignore[assignment]
        self.fault_until[unit] = self.step + 2
        self.mark_commands()
        self.marked = True
        self.fault(
            "restart_mid_migration",
            f"{record.migration_id} ({component}): stage 1 of {len(record.stages)} done, "
            f"{receiver} stops answering, restart",
        )
        await self.restart(mode="automatic")

    async def stale_proposal(self) -> None:
        """Issue 20, item 3: in approval mode, a person moves one circuit of the open proposal
        by hand, which makes it stale. While the unit stays at risk with load on it, the
        remainder must be proposed at the next decision (checked in ``check_stale``)."""
        book = self.entry.runtime_data.proposals
        first = book.first() if book is not None and book.approval_mode else None
        if first is None:
            return
        _pid, action = first
        move = self.rng.choice(list(action.plan.moves))
        try:
            await self.hass.services.async_call(
                DOMAIN,
                "set_path",
                {"circuit": move.circuit, "path": move.to_mpdu},
                blocking=True,
            )
        except (ServiceValidationError, HomeAssistantError, vol.Invalid) as err:
            self.say(f"  hand move refused: {err}")
            return
        self.stale = (str(action.target), self.step)
        self.fault(
            "stale_proposal",
            f"{move.circuit} moved by hand to {move.to_mpdu} out of the proposal for "
            f"{action.target}",
        )

    def check_stale(self) -> None:
        """After a proposal went stale: at the next decision, while its unit is still at risk
        and carries load, a proposal (or a running migration, or the engine's word that no safe
        plan exists) is there."""
        if self.stale is None or not self.loaded:
            return
        target, since = self.stale
        decisions = self.entry.runtime_data.decisions.data
        if decisions is None or decisions.t_s < self.clock.time() - STEP_S / 2:
            return  # no decision since the hand move yet
        if self.step == since:
            return
        self.stale = None
        book = self.entry.runtime_data.proposals
        if book is None or not book.approval_mode or target not in decisions.alerts:
            return
        tel = self.server.plant.telemetry()
        topology = self.entry.runtime_data.telemetry.data.topology
        loaded = [
            c
            for c, t in tel.circuits.items()
            if topology.depends_on(t.paths[t.active_path], target) and t.current_a > 0
        ]
        if not loaded:
            return
        proposed = any(a.target == target for a in book.current.values())
        running = self.entry.runtime_data.migrations.active is not None
        refused = any(target in (i.goal, i.element) for i in decisions.infeasible)
        REPORT.check(
            proposed or running or refused,
            f"proposal for {target} went stale at {since * STEP_S / 3600:.2f} h; at the next "
            f"decision {target} is still at risk carrying {', '.join(loaded)} and nothing is "
            "proposed",
        )

    def mark_commands(self) -> None:
        """From here on, a command onto a unit that answers no poll is a violation."""
        self.silent_at_start = {u for u, k in self.proxy.faults.items() if k in NO_ANSWER}
        tel = self.server.plant.telemetry()
        self.commands_base = {
            c: t.switch_operations - t.bypass_transfers for c, t in tel.circuits.items()
        }

    async def restart(self, mode: str | None = None) -> None:
        """Restart the integration (as a Home Assistant restart does), sometimes with damaged
        stored data, sometimes in approval mode so a running migration is held."""
        hass, entry = self.hass, self.entry
        running = self.loaded and entry.runtime_data.migrations.active is not None
        if entry.state is not ConfigEntryState.NOT_LOADED:
            # Loaded, or waiting to retry its setup (the gateway was down at the last try).
            await hass.config_entries.async_unload(entry.entry_id)
        damage = self.rng.random()
        what = "clean"
        mig_key = f"{DOMAIN}.{entry.entry_id}.migrations"
        hist_key = f"{DOMAIN}.{entry.entry_id}.history"
        if damage < 0.15 and mig_key in self.storage:
            self.storage[mig_key]["data"] = {"migrations": [{"migration_id": 3}, "x", None]}
            what = "damaged migration records"
        elif damage < 0.25 and hist_key in self.storage:
            rows = self.storage[hist_key]["data"].get("history", [])
            self.storage[hist_key]["data"] = {"history": [*rows[:5], [1.0], {"a": 1}, [None] * 4]}
            what = "truncated history"
        elif damage < 0.3 and mig_key in self.storage:
            self.storage[mig_key]["data"] = ["not", "a", "mapping"]
            what = "migration store not a mapping"
        if mode is None:
            mode = "approval" if self.rng.random() < 0.3 else "automatic"
        hass.config_entries.async_update_entry(
            entry, options={**entry.options, CONF_POLICY_MODE: mode}
        )
        self.fault("ha_restart", f"{what}, {mode} mode, migration running: {running}")
        await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        REPORT.check(
            self.loaded or self.entry.state is ConfigEntryState.SETUP_RETRY,
            f"after a restart ({what}) the entry is {self.entry.state}",
        )

    async def reload(self) -> None:
        """Reload the entry right after migrations moved circuits (an options save does the
        same): the flapping guard must still count those path changes (issue 20, item 5)."""
        self.fault("reload_in_flapping_window", "config entry reloaded after a migration")
        await self.hass.config_entries.async_reload(self.entry.entry_id)
        await self.hass.async_block_till_done()

    async def ensure_loaded(self) -> None:
        if self.entry.state is ConfigEntryState.SETUP_RETRY:
            await self.hass.config_entries.async_reload(self.entry.entry_id)
            await self.hass.async_block_till_done()

    # -- action calls ----------------------------------------------------------------------------------

    def _calls(self) -> list[tuple[str, dict[str, Any], str]]:
        """(service, data, expectation): ``valid``, ``invalid`` or ``denied``."""
        rng = self.rng
        elements = ["ats1", "ats2", "mpdu1", "mpdu2", "mpdu3"]
        comp = rng.choice(elements)
        return [
            ("plan_migration", {"component": comp}, "valid"),
            ("migrate_load", {"component": rng.choice(elements[2:])}, "valid"),
            ("migrate_load", {"component": comp, "max_step_amps": 10}, "valid"),
            ("cancel_migration", {}, "valid"),
            ("isolate", {"component": rng.choice(elements[2:])}, "valid"),
            ("restore", {"component": rng.choice(elements[2:])}, "valid"),
            ("get_forecast", {"component": rng.choice(["c01", "mpdu1", "ats2"])}, "valid"),
            ("migrate_load", {"component": comp, "max_step_amps": float("nan")}, "invalid"),
            ("migrate_load", {"component": comp, "step_interval": float("inf")}, "invalid"),
            ("migrate_load", {"component": comp, "step_interval": 2}, "invalid"),
            ("isolate", {"component": comp, "max_step_amps": -1}, "invalid"),
            ("migrate_load", {"component": "c01"}, "invalid"),
            ("migrate_load", {"component": "ats1", "target": "mpdu1"}, "invalid"),
            ("migrate_load", {"component": "mpdu1", "target": "mpdu1"}, "invalid"),
            ("plan_migration", {"component": "z" * 5000}, "invalid"),
            ("plan_migration", {"component": "nope"}, "invalid"),
            ("get_forecast", {"component": "env1"}, "invalid"),
            ("cancel_migration", {"migration_id": "nope"}, "invalid"),
            ("migrate_load", {"component": comp, "max_step_amps": 1}, "valid"),
            ("migrate_load", {"component": comp}, "denied"),
            ("isolate", {"component": comp}, "denied"),
            ("cancel_migration", {}, "denied"),
        ]

    async def burst(self) -> None:
        for _ in range(self.rng.randint(1, 5)):
            service, data, expect = self.rng.choice(self._calls())
            await self.call(service, data, expect)

    async def call(self, service: str, data: dict[str, Any], expect: str) -> None:
        before = self.switched()
        context = Context(user_id=self.non_admin) if expect == "denied" else None
        shown = {
            k: (v if not isinstance(v, str) or len(v) < 20 else f"{v[:8]}…")
            for k, v in data.items()
        }
        self.action(service, f"{shown} ({expect})")
        outcome = "ok"
        try:
            call = self.hass.services.async_call(
                DOMAIN, service, data, blocking=True, return_response=True, context=context
            )
            if service == "isolate":
                # isolate waits for its migration: let time pass meanwhile.
                task = self.hass.async_create_task(call)
                await asyncio.wait_for(asyncio.shield(task), timeout=60)
            else:
                await call
        except Unauthorized:
            outcome = "unauthorized"
        except (ServiceValidationError, vol.Invalid) as err:
            outcome = f"refused: {str(err)[:160]}"
        except HomeAssistantError as err:
            outcome = f"failed: {str(err)[:160]}"
        except TimeoutError:
            outcome = "isolate still running after 60 s"
        self.say(f"  -> {outcome}")
        REPORT.log(f"  -> {outcome}")
        if expect == "denied":
            REPORT.check(
                outcome == "unauthorized", f"non-admin {service} was not refused: {outcome}"
            )
            REPORT.check(self.switched() == before, f"non-admin {service} changed the plant")
        elif expect == "invalid":
            REPORT.check(outcome.startswith("refused"), f"invalid {service} {data} was {outcome}")
            REPORT.check(self.switched() == before, f"invalid {service} changed the plant")
        elif expect == "valid":
            REPORT.check(not outcome.startswith("isolate still"), outcome)

    # -- time ----------------------------------------------------------------------------------------

    async def advance(self) -> None:
        self.server.advance(STEP_S)
        self.clock.tick(STEP_S)
        self.polled = None
        if not self.loaded:
            return
        telemetry = self.entry.runtime_data.telemetry
        t0 = os.times().elapsed
        await telemetry.async_refresh()
        if telemetry.last_update_success:
            self.polled = self.server.plant.telemetry()
            self.polled_faulty = set(self.proxy.faults)
        else:
            self.polled = None
        t1 = os.times().elapsed
        if self.step % DECIDE_EVERY == 0:
            await self.entry.runtime_data.decisions.async_refresh()
        t2 = os.times().elapsed
        await self.settle()
        self.say(
            f"poll {t1 - t0:.2f} s decide {t2 - t1:.2f} s settle {os.times().elapsed - t2:.2f} s"
        )

    async def settle(self) -> None:
        """Let running migrations reach a final state (steps are back to back)."""
        if not self.loaded:
            return
        manager = self.entry.runtime_data.migrations
        for _ in range(3):
            tasks = list(manager._tasks.values())
            if not tasks:
                break
            await asyncio.wait(tasks, timeout=30)
            await self.hass.async_block_till_done()

    # -- invariants ----------------------------------------------------------------------------------

    def check(self, moved_onto: Callable[[str], bool]) -> None:
        tel = self.server.plant.telemetry()
        for cid, c in tel.circuits.items():
            if not c.critical or c.energized:
                continue
            path = c.paths[c.active_path]
            ours = (not c.output_on) or (not tel.mpdus[path].output_on)
            REPORT.check(not ours, f"critical {cid} de-energised by a switched-off output")
        # Circuits the SBMs' bypass moved during this step (a failure, not our command): the
        # load they brought onto an element is not ours; the element is still held to its
        # limit for everything else on it.
        bypassed = {
            cid
            for cid, c in tel.circuits.items()
            if c.bypass_transfers > self.bypass_counts.get(cid, c.bypass_transfers)
        }
        self.bypass_counts = {cid: c.bypass_transfers for cid, c in tel.circuits.items()}
        for mid, m in tel.mpdus.items():
            brought = sum(
                t.current_a
                for c, t in tel.circuits.items()
                if c in bypassed and t.paths[t.active_path] == mid
            )
            over = m.current_a > LIMIT * m.rating_a + 0.05
            if over and m.current_a - brought <= LIMIT * m.rating_a + 0.05:
                REPORT.check(True, "")
                REPORT.notes.append(
                    f"[{self.step * STEP_S / 3600:.2f} h] {mid} at {m.current_a:.1f} A after the "
                    f"bypass moved {', '.join(sorted(bypassed))} onto it ({brought:.1f} A): a "
                    "failure's transfer, not a migration's"
                )
            elif over and moved_onto(mid):
                on = ", ".join(
                    f"{c} {t.current_a:.2f} A"
                    for c, t in sorted(tel.circuits.items())
                    if t.paths[t.active_path] == mid
                )
                REPORT.check(
                    False,
                    f"{mid} carries {m.current_a:.1f} A (limit {LIMIT * m.rating_a:.1f} A) right "
                    f"after a migration that completed moving load onto it (on it: {on})",
                )
            else:
                REPORT.check(True, "")
        silent = {
            pid
            for pid, unit in self.units.items()
            if self.proxy.faults.get(unit) in NO_ANSWER and unit in self.silent_at_start
        }
        for cid, c in tel.circuits.items():
            commanded = c.switch_operations - c.bypass_transfers
            if commanded > self.commands_base.get(cid, commanded):
                onto = c.paths[c.active_path]
                REPORT.check(
                    onto not in silent,
                    f"{cid} was commanded onto {onto} while {onto} answered no poll",
                )
        now = self.server.plant.t_s
        for cid, c in tel.circuits.items():
            commanded = c.switch_operations - c.bypass_transfers
            times = self.switch_times.setdefault(cid, [])
            last = self.switch_counts.get(cid, commanded)
            times += [now] * max(0, commanded - last)
            self.switch_counts[cid] = commanded
            times[:] = [t for t in times if t > now - 3600]
            REPORT.check(
                len(times) <= migration.MAX_PATH_CHANGES_PER_HOUR + 1,
                f"{cid} changed path {len(times)} times within an hour",
            )
        REPORT.check(not self.errors.records, f"error log: {self.errors.records[:3]}")
        self.errors.records.clear()
        if self.loaded:
            self.check_loaded()
        rss = _rss_mb()
        self.rss0 = getattr(self, "rss0", rss) if self.step > 20 else rss
        REPORT.check(rss - self.rss0 < MAX_RSS_GROWTH_MB, f"memory grew to {rss:.0f} MB")
        for key, value in self.storage.items():
            if key.startswith(DOMAIN):
                size = len(json.dumps(value, default=str))
                REPORT.check(size < 8_000_000, f"stored {key} is {size} bytes")

    def _unseen(self, unit: str, since: float, now: float) -> bool:
        """Whether the last poll could not show what ``unit`` does: its Modbus answers were
        faulted, or the scenario cut its communication or froze its sensors meanwhile."""
        if self.units.get(unit) in self.polled_faulty:
            return True
        return any(u == unit and a <= now and b >= since - STEP_S for u, a, b in self.blind)

    def check_alerts(self) -> None:
        """Issue 20, item 2: every ATS/MPDU failure and every element above its continuous
        limit that the last successful poll read has a critical repair and a failover event
        (what the failover blueprint listens to) by the end of that poll's step."""
        if not self.loaded or self.polled is None:
            return
        polled, t = self.polled, self.polled.t_s
        open_ = {
            (i.translation_key, (i.translation_placeholders or {}).get("component"))
            for i in ir.async_get(self.hass).issues.values()
            if i.domain == DOMAIN and i.active
        }
        for uid, r in polled.mpdus.items():
            if r.energized and r.output_on and not r.breaker_open:
                self.live_seen.setdefault(uid, []).append(t)
        for uid, r in polled.ats.items():
            if r.output_energized:
                self.live_seen.setdefault(uid, []).append(t)
        failed_now = {u for u, a, b in self.failures if a < t < b}
        # What the last poll got an answer from (a request can time out on a loaded machine).
        read = self.entry.runtime_data.telemetry.data.readings
        for unit, began, ended in self.failures:
            if not began < t < ended or self._unseen(unit, began, t):
                continue
            m = polled.mpdus.get(unit)
            if unit not in read or (m is not None and m.ats not in read):
                continue  # the poll had no answer from it (or from its ATS): nothing to judge
            if m is not None and (
                not m.output_on or m.ats in failed_now or not polled.ats[m.ats].output_energized
            ):
                continue  # switched off, or its ATS is down: nothing of its own to alert
            REPORT.check(
                ("unit_failed", unit) in open_,
                f"{unit} failed at {began / 3600:.2f} h; the poll at {t / 3600:.2f} h read it "
                "and no unit_failed repair is open",
            )
            # Alerted since a poll last read it live (it may have been down already, e.g. its
            # breaker tripped on an overload, and been alerted then).
            since = max((x for x in self.live_seen.get(unit, []) if x < began), default=-1.0)
            REPORT.check(
                self.alerted_at.get(unit, -2.0) >= since,
                f"{unit} failed at {began / 3600:.2f} h; no failover event named it since a "
                f"poll last read it live ({since / 3600:.2f} h) by {t / 3600:.2f} h",
            )
        now = self.server.plant.telemetry()
        for eid, reading in [*polled.ats.items(), *polled.mpdus.items()]:
            limit, load = LIMIT * reading.rating_a, _load(reading)
            if load < CLEAR_FRACTION * limit:
                self.over_since.pop(eid, None)  # an episode ends well below the limit
            if load > limit:
                self.over_since.setdefault(eid, t)
            if load <= 1.02 * limit or self._unseen(eid, t - STEP_S, t) or eid not in read:
                continue  # at the limit itself (rounding), or the poll could not show it
            since = self.over_since[eid]
            REPORT.check(
                self.alerted_at.get(eid, -1.0) >= since,
                f"{eid} at {_load(reading):.1f} A above its limit of {limit:.1f} A at the poll "
                f"at {t / 3600:.2f} h (over since {since / 3600:.2f} h); no failover event "
                "named it",
            )
            # Relief may have brought it back within its limit since the poll; else the repair.
            still = _load({**now.ats, **now.mpdus}[eid]) > limit
            REPORT.check(
                not still or ("over_limit", eid) in open_,
                f"{eid} at {_load(reading):.1f} A above its limit of {limit:.1f} A at the poll "
                f"at {t / 3600:.2f} h, still over, and no over_limit repair is open",
            )

    def check_loaded(self) -> None:
        runtime = self.entry.runtime_data
        manager = runtime.migrations
        issues = ir.async_get(self.hass)
        for rec in manager.records.values():
            if rec.state not in FINAL_STATES:
                REPORT.check(
                    rec.migration_id in manager._tasks,
                    f"migration {rec.migration_id} is {rec.state} with nothing running it",
                )
            elif rec.reason and "restart" in rec.reason:
                REPORT.check(
                    issues.async_get_issue(DOMAIN, f"migration_held_{rec.migration_id}")
                    is not None,
                    f"migration {rec.migration_id} held after a restart without a repair",
                )
        finished = [r for r in manager.records.values() if r.state in FINAL_STATES]
        REPORT.check(len(finished) <= KEEP_FINISHED, f"{len(finished)} finished records kept")
        history = runtime.decisions.history
        REPORT.check(len(history) <= history.max_rows, "history unbounded")

    def check_finished(self) -> set[str]:
        """Every migration that ended since the last step: verified, or rolled back / aborted
        with a reason; returns the MPDUs completed migrations moved load onto."""
        onto: set[str] = set()
        for data in self.finished:
            state = data["state"]
            if state == MigrationState.COMPLETED.value:
                landed = all(
                    data["paths"].get(c) == to
                    for stage in data["stages_moves"]
                    for c, _f, to in stage
                )
                REPORT.check(landed, f"migration {data['migration_id']} completed, not landed")
                onto |= {to for stage in data["stages_moves"] for _c, _f, to in stage}
            else:
                REPORT.check(
                    state in (MigrationState.ROLLED_BACK.value, MigrationState.ABORTED.value)
                    and bool(data.get("reason")),
                    f"migration {data['migration_id']} ended {state} without a reason",
                )
            moved = ", ".join(
                f"{c} {f}->{t}" for stage in data["stages_moves"] for c, f, t in stage
            )
            self.action(
                f"migration_{state}", f"{data['component']}: {data.get('reason')} ({moved})"
            )
        self.finished.clear()
        return onto

    # -- the run -------------------------------------------------------------------------------------

    async def run(self, hours: float) -> None:
        steps = round(hours * 3600 / STEP_S)
        for self.step in range(1, steps + 1):
            self.clear_faults()
            await self.end_outage()
            await self.ensure_loaded()
            roll = self.rng.random()
            if roll < 0.12:
                self.inject_modbus_fault()
            elif roll < 0.135:
                await self.gateway_restart()
            elif roll < 0.145 and self.outage_until < 0:
                await self.gateway_outage()
            elif roll < 0.165:
                await self.restart()
            elif roll < 0.175 and self.loaded:
                await self.restart_mid_migration()
            if not self.marked:
                self.mark_commands()
            self.marked = False
            if self.loaded and self.stale is None and self.rng.random() < 0.5:
                await self.stale_proposal()
            if self.loaded and self.rng.random() < 0.2:
                await self.burst()
                if self.rng.random() < 0.3:
                    self.inject_modbus_fault()  # mid-migration
            t0 = os.times().elapsed
            await self.advance()
            self.say(f"step took {os.times().elapsed - t0:.2f} s")
            onto = self.check_finished()
            self.check(lambda mpdu, onto=onto: mpdu in onto)  # type: ignore[misc]
            self.check_alerts()
            self.check_stale()
            if onto and self.loaded and self.rng.random() < 0.3:
                await self.reload()
        await self.settle()
        self.check_finished()
        REPORT.notes.append(
            f"plant: {self.server.plant.metrics.interruptions} interruption(s), "
            f"{self.server.plant.metrics.breaker_trips} breaker trip(s), "
            f"{self.server.plant.metrics.switch_operations} switch operation(s); "
            f"{self.proxy.requests} Modbus requests through the gateway; "
            f"{self.errors.outages} gateway outage(s) logged once each; "
            f"{self.errors.alerts} failure / over-limit alert(s) logged"
        )


async def test_soak(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    hass_read_only_user: Any,
    socket_enabled: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run the soak for ``SOAK_HOURS`` simulated hours with ``SOAK_SEED``."""
    hours = float(os.environ.get("SOAK_HOURS", "2"))
    seed = int(os.environ.get("SOAK_SEED", "1"))
    REPORT.hours, REPORT.seed = hours, seed
    monkeypatch.setattr(const, "REQUEST_TIMEOUT", 0.3)
    monkeypatch.setattr(const, "SCAN_UNIT_TIMEOUT", 0.3)
    monkeypatch.setattr(migration, "VERIFY_DELAY_S", 0.05)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("homeassistant").setLevel(logging.WARNING)
    soak = Soak(hass, hass_storage, hass_read_only_user.id, seed)
    for module in (coordinator, services, diagnostics, decisions, migration):
        monkeypatch.setattr(module, "dt_util", soak.clock)
    monkeypatch.setattr(decisions, "time", soak.clock)
    await soak.start(scenario(seed, hours))
    try:
        await soak.run(hours)
    finally:
        await soak.stop()
    REPORT.finished = True
