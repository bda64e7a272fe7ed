"""Telemetry coordinator: one poll of the whole plant per refresh, as one typed snapshot.

One config entry is one plant; its devices sit behind one or more Modbus TCP gateways (the
entry's own and one per ``gateway`` subentry). The coordinator owns one ``PlantClient`` per
gateway, discovers the devices behind each (``scan``, again every ``RESCAN_INTERVAL``), registers
them in the device registry, and polls them all with ``read_all`` (one request per device,
bounded concurrency). A device that does not answer is simply absent from that refresh's
readings (its entities go unavailable, logged once each way); only when nothing at all answers
does the refresh fail.

The coordinator also owns the plant's command path (:meth:`TelemetryCoordinator.async_command`):
entities, the migration executor and every action send commands through it, one at a time per
plant (its command lock), each judged by ``engine/interlock.py`` against the latest snapshot, the
circuits' remembered demand (updated here with every snapshot) and the latest decision's alerts
and failures (no load onto a unit at risk), and followed by a refresh. Nothing is commanded, and
nothing is published as current, on telemetry that did not come from the last poll: after a
failed refresh every command is refused until a poll succeeds again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, override

from homeassistant.auth.permissions.const import POLICY_CONTROL
from homeassistant.core import CALLBACK_TYPE, Context, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError, Unauthorized
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from . import const, replaced
from .activity import async_record_refusal
from .const import (
    CONF_HOST,
    CONF_PORT,
    CONF_SCAN_INTERVAL,
    DEFAULT_SCAN_INTERVAL,
    DOMAIN,
    LOGGER,
    MANUFACTURER,
    SUBENTRY_GATEWAY,
)
from .device.client import PlantClient
from .device.errors import DeviceError, DeviceLayerError, GatewayUnavailable
from .device.models import (
    AtsReading,
    DeviceIdentity,
    DeviceType,
    MpduReading,
    Reading,
    SbmReading,
)
from .engine.interlock import AtsState, InterlockState, Verdict
from .engine.readings import topology_from_identities
from .engine.risk import refused_receivers, risk_of
from .engine.topology import Topology
from .naming import shown_name
from .runtime import DataCenterPowerConfigEntry

if TYPE_CHECKING:
    from .engine.decisions import Decisions

__all__ = [
    "CommandCheck",
    "CommandSend",
    "Gateway",
    "PlantSnapshot",
    "TelemetryCoordinator",
    "device_name",
    "interlock_state",
]

type CommandCheck = Callable[[InterlockState], Verdict]
"""An interlock rule applied to the plant as it is now (``engine/interlock.py``)."""
type CommandSend = Callable[[PlantClient, DeviceIdentity], Awaitable[None]]
"""What a command sends, given the device's gateway client and identity."""

MAIN_GATEWAY: Final = "main"
"""Key of the config entry's own gateway (subentry gateways are keyed by subentry id)."""

_TYPE_ORDER: Final = (DeviceType.ATS, DeviceType.MPDU, DeviceType.SBM, DeviceType.ENV)
_NAME_PREFIX: Final = {
    DeviceType.ATS: "ATS",
    DeviceType.MPDU: "MPDU",
    DeviceType.SBM: "Circuit",
    DeviceType.ENV: "Environment",
}


def device_name(identity: DeviceIdentity) -> str:
    """Name of a plant device in Home Assistant, e.g. ``ATS ats1`` or ``Circuit c01`` (what the
    device reports, printable: ``naming.shown_name``)."""
    plant_id = shown_name(identity.plant_id, f"The id unit {identity.unit_id} reports")
    return f"{_NAME_PREFIX[identity.device_type]} {plant_id}"


@dataclass(frozen=True, slots=True)
class Gateway:
    """One Modbus TCP gateway of the plant."""

    key: str
    """``main`` for the config entry's own gateway, else the subentry id."""
    host: str
    port: int

    @property
    def subentry_id(self) -> str | None:
        """The gateway's config subentry (None for the entry's own gateway)."""
        return None if self.key == MAIN_GATEWAY else self.key


@dataclass(frozen=True, slots=True)
class PlantSnapshot:
    """Everything one refresh learned about the plant."""

    identities: Mapping[str, DeviceIdentity]
    """Plant id -> identity, every known device (answering or not)."""
    readings: Mapping[str, Reading]
    """Plant id -> reading of THIS refresh; absent = unavailable now."""
    errors: Mapping[str, str]
    """Plant id -> why it is unavailable."""
    topology: Topology
    """The plant graph built from the identities."""
    assignment: Mapping[str, str | None]
    """Circuit id -> MPDU it draws from (None: off, dead or not answering)."""
    circuit_a: Mapping[str, float]
    """Circuit id -> current (answering circuits only)."""
    energized_mpdus: frozenset[str]
    """MPDUs with live output (energised, output on, breaker closed)."""
    updated_at: datetime
    gateways: Mapping[str, str] = field(default_factory=dict)
    """Plant id -> key of the gateway it sits behind."""

    def available(self, plant_id: str) -> bool:
        """Whether the device answered in this refresh."""
        return plant_id in self.readings


def _assignment(
    identities: Mapping[str, DeviceIdentity], readings: Mapping[str, Reading]
) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for pid, identity in identities.items():
        if identity.device_type is not DeviceType.SBM:
            continue
        reading = readings.get(pid)
        if (
            isinstance(reading, SbmReading)
            and reading.output_on
            and reading.energized
            and 0 <= reading.active_path < len(reading.paths)
        ):
            out[pid] = reading.paths[reading.active_path]
        else:
            out[pid] = None
    return out


def _same(new: Reading | None, old: Reading | None) -> bool:
    return new is old or new == old


def at_risk(snapshot: PlantSnapshot, decisions: Decisions | None) -> dict[str, str]:
    """MPDU -> why no load may move onto it now: the decision's alerts and failures, and the
    elements that did not answer this snapshot (``engine/risk.py``)."""
    alerts, failed = risk_of(decisions)
    topology = snapshot.topology
    silent = [e for e in topology.elements if not snapshot.available(e)]
    # A decision is up to a few minutes old: a unit it saw failed that this poll shows live
    # again (repaired, switched back on) is judged by this poll (a dead one is refused anyway).
    live = set(snapshot.energized_mpdus) | {
        a for a, r in snapshot.readings.items() if isinstance(r, AtsReading) and r.output_energized
    }
    failed = frozenset(failed - live)
    return refused_receivers(topology, alerts=alerts, failed=failed, silent=silent)


def interlock_state(
    snapshot: PlantSnapshot,
    demand_a: Mapping[str, float],
    decisions: Decisions | None = None,
) -> InterlockState:
    """The interlocks' view of a snapshot, with the circuits' remembered demand and the units
    at risk by the latest decision."""
    ats: dict[str, AtsState] = {}
    selected: dict[str, str] = {}
    for pid, reading in snapshot.readings.items():
        if isinstance(reading, AtsReading):
            ats[pid] = _ats_state(reading)
        elif isinstance(reading, SbmReading) and 0 <= reading.active_path < len(reading.paths):
            selected[pid] = reading.paths[reading.active_path]
    return InterlockState(
        topology=snapshot.topology,
        assignment=snapshot.assignment,
        circuit_a=snapshot.circuit_a,
        energized_mpdus=snapshot.energized_mpdus,
        ats=ats,
        selected_path=selected,
        demand_a=dict(demand_a),
        unknown=frozenset(
            e
            for e in (*snapshot.topology.circuits, *snapshot.topology.mpdus)
            if not snapshot.available(e)
        ),
        at_risk=at_risk(snapshot, decisions),
    )


def _ats_state(reading: AtsReading) -> AtsState:
    sources = reading.sources

    def source(index: int) -> str | None:
        return sources[index] if 0 <= index < len(sources) else None

    return AtsState(
        active_source=source(reading.active_source),
        preferred_source=source(reading.preferred_source) or "",
        inhibit=reading.inhibit,
        available=frozenset(
            s for s, ok in zip(sources, reading.source_available, strict=False) if ok
        ),
        output_energized=reading.output_energized,
        measured_transfer_ms=reading.last_self_test_ms,
    )


class TelemetryCoordinator(DataUpdateCoordinator[PlantSnapshot]):
    """Polls every device of one plant, across all of its gateways."""

    config_entry: DataCenterPowerConfigEntry

    def __init__(self, hass: HomeAssistant, entry: DataCenterPowerConfigEntry) -> None:
        """Set up the coordinator for a plant (nothing is read before the first refresh)."""
        interval = int(entry.options.get(CONF_SCAN_INTERVAL, DEFAULT_SCAN_INTERVAL))
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.title}",
            update_interval=timedelta(seconds=interval),
            always_update=True,
        )
        self._gateways: dict[str, Gateway] = {}
        self._clients: dict[str, PlantClient] = {}
        self._identities: dict[str, DeviceIdentity] = {}
        self._gateway_of: dict[str, str] = {}
        self._found: dict[str, set[str]] = {}
        """Gateway key -> plant ids its last successful scan found."""
        self._device_ids: dict[str, str] = {}
        self._silent: set[str] = set()
        self._duplicates: set[str] = set()
        self._replaced: dict[str, str] = {}
        """Plant id -> what changed in its identification (held unavailable; replaced.py)."""
        self._topology: Topology = topology_from_identities(())
        self._rescan_lock = asyncio.Lock()
        self._unsub_rescan: list[CALLBACK_TYPE] = []
        self.command_lock = asyncio.Lock()
        """One command at a time per plant, across entities, migrations and actions: each is
        judged on the snapshot refreshed after the previous one, so two commands that fit alone
        cannot overload together."""
        self._demand_a: dict[str, float] = {}
        """What each circuit drew when last seen drawing. A circuit that is off (or on a dead
        path) reads 0 A, but the interlocks need to know what it would draw once powered again;
        its last non-zero reading is the best estimate there is."""
        self._priority_reads: dict[str, tuple[float, Reading]] = {}
        """Plant id -> (monotonic time, reading) of devices read out of turn (after a
        command), newer than what a poll that started before them saw."""
        self._device_listeners: dict[str, list[CALLBACK_TYPE]] = {}
        self._told: dict[str, Reading | None] = {}
        """Plant id -> the reading its listeners were last called with."""
        self._told_ok = False
        self._to_tell: dict[str, None] = {}
        """Devices whose listeners are still to be called (an ordered set)."""
        self._telling: asyncio.Task[None] | None = None
        self._decisions: Callable[[], Decisions | None] = lambda: None
        """The latest decision of the engine (set once the forecasting coordinator runs)."""

    # -- public API --------------------------------------------------------------------------

    @property
    def gateways(self) -> Mapping[str, Gateway]:
        """The plant's gateways by key."""
        return dict(self._gateways)

    @property
    def identities(self) -> Mapping[str, DeviceIdentity]:
        """Every known device by plant id."""
        return dict(self._identities)

    def identity(self, plant_id: str) -> DeviceIdentity:
        """Identity of a known device (``KeyError`` for an unknown id)."""
        return self._identities[plant_id]

    def client_for(self, plant_id: str) -> PlantClient:
        """The client of the gateway the device sits behind."""
        return self._client(self._gateway_of[plant_id])

    def subentry_id(self, plant_id: str) -> str | None:
        """Config subentry of the gateway the device sits behind (None: the entry's own).

        Entity platforms pass it to ``async_add_entities(..., config_subentry_id=...)``, or
        Home Assistant moves the device out of its gateway's subentry.
        """
        return self._gateways[self._gateway_of[plant_id]].subentry_id

    def device_id(self, plant_id: str) -> str | None:
        """Home Assistant device registry id of a plant device."""
        return self._device_ids.get(plant_id)

    def plant_id_of_device(self, device_id: str) -> str | None:
        """The plant id of a Home Assistant device registry id (None if not ours)."""
        return next((p for p, d in self._device_ids.items() if d == device_id), None)

    def client_request_count(self, gateway_key: str) -> int:
        """Requests sent to a gateway by this coordinator's client (0 if none is open)."""
        client = self._clients.get(gateway_key)
        return 0 if client is None else client.request_count

    def identifier(self, plant_id: str) -> tuple[str, str]:
        """Device registry identifier of a plant device."""
        return (DOMAIN, f"{self.config_entry.unique_id}:{plant_id}")

    def can_remove(self, plant_id: str) -> bool:
        """Whether the plant no longer reports the device: its gateway's last scan did not find
        it and it does not answer polls now."""
        gateway = self._gateway_of.get(plant_id)
        if gateway is None:
            return True
        if plant_id in self._found.get(gateway, set()):
            return False
        return self.data is None or not self.data.available(plant_id)

    def forget(self, plant_id: str) -> None:
        """Stop polling a device the plant no longer reports (its registry entry is removed)."""
        self._identities.pop(plant_id, None)
        self._gateway_of.pop(plant_id, None)
        self._device_ids.pop(plant_id, None)
        self._silent.discard(plant_id)
        self._replaced.pop(plant_id, None)
        self._topology = topology_from_identities(self._identities.values())

    @property
    def demand_a(self) -> Mapping[str, float]:
        """What each circuit drew when last seen drawing (updated with every snapshot)."""
        return dict(self._demand_a)

    def follow_decisions(self, latest: Callable[[], Decisions | None]) -> None:
        """Judge commands with the engine's latest decision too (``latest()`` returns it)."""
        self._decisions = latest

    def latest_decisions(self) -> Decisions | None:
        """The engine's latest decision (None before the first one)."""
        return self._decisions()

    def at_risk(self) -> dict[str, str]:
        """MPDU -> why no load may move onto it now (latest snapshot and decision)."""
        return at_risk(self.data, self._decisions())

    def interlock_state(self) -> InterlockState:
        """The interlocks' view of the latest snapshot, with remembered demands and the units
        at risk."""
        return interlock_state(self.data, self._demand_a, self._decisions())

    async def async_command(
        self,
        plant_id: str,
        check: CommandCheck,
        send: CommandSend,
        what: str,
        context: Context | None = None,
    ) -> None:
        """Send one command to a device if the interlock allows it, then refresh.

        The one command path of the plant: entities, the migration executor and every action
        use it. ``context`` is the caller's (a user who is not an administrator is refused;
        automations, migrations and scripts run without a user and pass). The command lock is
        held from the interlock check until the refresh after the command. Raises a translated
        ``HomeAssistantError`` when the interlock refuses (naming the element and the amps) and
        when the device layer fails (the device refused, or did not answer).
        """
        await self._async_check_admin(context)
        async with self.command_lock:
            if not self.last_update_success:
                # The snapshot is what the last successful poll saw, not the plant now.
                why = "the last refresh failed: no fresh telemetry to judge it on"
                LOGGER.warning("Refused %s on %s: %s", what, plant_id, why)
                async_record_refusal(self.hass, self.config_entry, plant_id, what, why, context)
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key="command_telemetry_stale",
                    translation_placeholders={"element": plant_id},
                )
            verdict = check(self.interlock_state())
            if not verdict.allowed:
                LOGGER.info("Refused %s on %s: %s", what, plant_id, verdict.message)
                async_record_refusal(
                    self.hass, self.config_entry, plant_id, what, verdict.message, context
                )
                raise ServiceValidationError(  # the caller's request, not a fault: HTTP 400
                    translation_domain=DOMAIN,
                    translation_key=f"interlock_{verdict.reason}",
                    translation_placeholders=verdict.placeholders(),
                )
            await self._async_verify_identity(plant_id)
            LOGGER.info("Sending %s to %s", what, plant_id)
            try:
                await send(self.client_for(plant_id), self.identity(plant_id))
            except DeviceError as err:
                async_record_refusal(
                    self.hass,
                    self.config_entry,
                    plant_id,
                    what,
                    f"the device refused it ({err.code_name})",
                    context,
                )
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key="command_rejected",
                    translation_placeholders={"element": plant_id, "error": err.code_name},
                ) from err
            except DeviceLayerError as err:
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key="command_failed",
                    translation_placeholders={"element": plant_id, "error": str(err)},
                ) from err
            finally:
                # Not the debounced request: the states must show what the command did (or did
                # not do) as soon as it returns, and the next command is judged on it. Only the
                # devices the command can change are read, ahead of any poll in progress: at
                # 1,000 devices a whole refresh would make every command wait for it.
                await self.async_refresh_devices(self.neighbours(plant_id))

    async def _async_verify_identity(self, plant_id: str) -> None:
        """Before a command: the unit at that address is still the one identified (a replaced
        unit is never commanded on the old identity, e.g. in the middle of a migration)."""
        if plant_id not in self._replaced and plant_id in self._identities:
            known = self._identities[plant_id]
            try:
                now = await self.client_for(plant_id).read_identity(known.unit_id, priority=True)
            except DeviceLayerError:
                now = known  # it did not answer: the command itself will say so
            if now != known:
                self._note_replaced(plant_id, known, now)
        if plant_id in self._replaced:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="unit_replaced",
                translation_placeholders={
                    "element": plant_id,
                    "change": self._replaced[plant_id],
                },
            )

    def _note_replaced(self, plant_id: str, old: DeviceIdentity, new: DeviceIdentity) -> None:
        if plant_id in self._replaced:
            return
        change = replaced.describe_change(old, new)
        self._replaced[plant_id] = change
        LOGGER.warning(
            "%s was replaced (%s): it is held unavailable and not commanded until the "
            "integration is reloaded",
            plant_id,
            change,
        )
        replaced.async_raise(self.hass, self.config_entry.entry_id, plant_id, change)

    async def _async_check_identities(self, readings: Mapping[str, Reading]) -> None:
        """Re-read the identification of devices that came back after being silent (a swap
        takes a unit off the bus for a while; rescans re-read every device's as well)."""
        for pid in sorted(p for p in readings if p in self._silent and p not in self._replaced):
            identity = self._identities[pid]
            try:
                now = await self.client_for(pid).read_identity(identity.unit_id)
            except DeviceLayerError:
                continue
            if now != identity:
                self._note_replaced(pid, identity, now)

    async def _async_check_admin(self, context: Context | None) -> None:
        """Changing the power path is for administrators (design: admin-only actions)."""
        if context is None or context.user_id is None:
            return
        user = await self.hass.auth.async_get_user(context.user_id)
        if user is not None and not user.is_admin:
            raise Unauthorized(context=context, permission=POLICY_CONTROL)

    def neighbours(self, plant_id: str) -> list[str]:
        """A device and the devices a command on it can change the readings of: what feeds it
        (an MPDU's ATS, a circuit's MPDUs) and what it feeds (an ATS's MPDUs, an MPDU's
        circuits)."""
        identity = self._identities.get(plant_id)
        if identity is None:
            return []
        out = [plant_id, *(u for u in identity.upstream if u in self._identities)]
        out += [
            pid
            for pid, other in self._identities.items()
            if plant_id in other.upstream and other.device_type is not DeviceType.ATS
        ]
        return list(dict.fromkeys(out))

    async def async_refresh_devices(self, plant_ids: Iterable[str]) -> None:
        """Read a few devices now, over their gateways' command connections (ahead of a poll
        in progress), and publish them in a new snapshot: what a command did shows at once,
        without waiting for a poll of the whole plant. After a failed refresh nothing is
        published: the rest of the snapshot would be old telemetry republished as current."""
        wanted = [p for p in plant_ids if p in self._identities]
        if not wanted or self.data is None or not self.last_update_success:
            return
        results = await asyncio.gather(
            *(
                self.client_for(pid).read_device(self._identities[pid], priority=True)
                for pid in wanted
            ),
            return_exceptions=True,
        )
        now = time.monotonic()
        readings = dict(self.data.readings)
        errors = dict(self.data.errors)
        for pid, outcome in zip(wanted, results, strict=True):
            if isinstance(outcome, DeviceLayerError):
                readings.pop(pid, None)
                errors[pid] = f"{type(outcome).__name__}: {outcome}"
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                readings[pid] = outcome
                errors.pop(pid, None)
                self._priority_reads[pid] = (now, outcome)
        self._log_transitions(
            {p: r for p, r in readings.items() if p in wanted},
            {p: e for p, e in errors.items() if p in wanted},
        )
        self.async_set_updated_data(self._snapshot(readings, errors))

    async def async_rescan(self) -> None:
        """Scan every gateway again; devices found for the first time get registered and show
        up in the next snapshot (the entity platforms add their entities then)."""
        async with self._rescan_lock:
            new = False
            for gateway in list(self._gateways.values()):
                try:
                    new |= await self._scan_gateway(gateway)
                except GatewayUnavailable as err:
                    LOGGER.debug("Rescan of %s:%s failed: %s", gateway.host, gateway.port, err)
        if new:
            await self.async_refresh()

    @callback
    def async_add_device_listener(self, plant_id: str, update: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call ``update`` after a refresh only when the device's reading (or its availability,
        or the coordinator's success) changed; returns the function that removes it.

        The entities of a device listen here instead of to every refresh: at 1,000 circuits
        ~9,000 entity callbacks per poll, most of them for devices whose reading did not change,
        were a large part of the event loop's work. One comparison per device replaces them.
        """
        listeners = self._device_listeners.setdefault(plant_id, [])
        listeners.append(update)
        if plant_id not in self._told and self.data is not None:
            # What a listener added now starts from (an entity writes its state when added).
            self._told[plant_id] = self.data.readings.get(plant_id)

        @callback
        def remove() -> None:
            listeners.remove(update)

        return remove

    @callback
    @override
    def async_update_listeners(self) -> None:
        """Tell the coordinator's listeners, then the listeners of each device that changed:
        ``DISPATCH_SLICE`` devices at a time, letting the event loop run in between (when the
        simulator or a real plant steps, ~1,000 circuits change in the same poll; their ~3,000
        state writes in one go held the loop for over a second)."""
        super().async_update_listeners()
        readings = self.data.readings if self.data is not None else {}
        ok = self.last_update_success
        everyone = ok != self._told_ok
        self._told_ok = ok
        for pid in self._device_listeners:
            new = readings.get(pid)
            if everyone or not _same(new, self._told.get(pid)):
                self._to_tell[pid] = None
        self._tell_slice()
        if self._to_tell and self._telling is None:
            self._telling = self.hass.async_create_task(
                self._async_tell_rest(), f"{DOMAIN} entity updates", eager_start=False
            )

    @callback
    def _tell_slice(self) -> None:
        readings = self.data.readings if self.data is not None else {}
        for _ in range(min(const.DISPATCH_SLICE, len(self._to_tell))):
            pid = next(iter(self._to_tell))
            del self._to_tell[pid]
            self._told[pid] = readings.get(pid)
            for update in list(self._device_listeners.get(pid, ())):
                try:
                    update()
                except Exception:
                    LOGGER.exception("Unexpected error updating the entities of %s", pid)

    async def _async_tell_rest(self) -> None:
        try:
            while self._to_tell:
                await asyncio.sleep(0)
                self._tell_slice()
        finally:
            self._telling = None

    # -- lifecycle -----------------------------------------------------------------------------

    @override
    async def _async_setup(self) -> None:
        """Open the gateways and discover the plant; any gateway unreachable = not ready."""
        self._sync_gateways()
        replaced.async_clear(self.hass, self.config_entry.entry_id)  # identified afresh now
        for gateway in self._gateways.values():
            try:
                await self._scan_gateway(gateway)
            except GatewayUnavailable as err:
                raise UpdateFailed(
                    translation_domain=DOMAIN,
                    translation_key="gateway_unreachable",
                    translation_placeholders={"host": gateway.host, "port": str(gateway.port)},
                ) from err
        if not self._identities:
            raise UpdateFailed(translation_domain=DOMAIN, translation_key="no_devices")
        self._unsub_rescan.append(
            async_track_time_interval(
                self.hass, self._scheduled_rescan, const.RESCAN_INTERVAL, cancel_on_shutdown=True
            )
        )

    @callback
    def _scheduled_rescan(self, _now: datetime) -> None:
        self.config_entry.async_create_background_task(
            self.hass, self.async_rescan(), f"{DOMAIN} rescan"
        )

    @override
    async def async_shutdown(self) -> None:
        """Stop polling and close every gateway connection."""
        await super().async_shutdown()
        self._to_tell.clear()
        for unsub in self._unsub_rescan:
            unsub()
        self._unsub_rescan.clear()
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    # -- refresh -------------------------------------------------------------------------------

    @override
    async def _async_update_data(self) -> PlantSnapshot:
        self._sync_gateways()
        for key in [k for k in self._gateways if k not in self._found]:
            # A gateway added at runtime (or unreachable when it was): discover it now.
            try:
                await self._scan_gateway(self._gateways[key])
            except GatewayUnavailable as err:
                LOGGER.debug("Gateway %s is unreachable: %s", self._gateways[key].host, err)
        started = time.monotonic()
        # Every gateway at once (each over its own connections): a hall's refresh takes as long
        # as its largest gateway, not the sum of them.
        results = await asyncio.gather(
            *(self._poll_gateway(key) for key in self._gateways), return_exceptions=False
        )
        readings: dict[str, Reading] = {}
        errors: dict[str, str] = {}
        for gateway_readings, gateway_errors in results:
            readings.update(gateway_readings)
            errors.update(gateway_errors)
        # A device read out of turn after this poll began (a command) is newer than this poll's.
        for pid, (at, reading) in list(self._priority_reads.items()):
            if at <= started:
                del self._priority_reads[pid]
            elif pid in self._identities:
                readings[pid] = reading
                errors.pop(pid, None)
        if self._identities and not readings:
            # DataUpdateCoordinator logs this once (and its recovery once); logging every
            # device as well would only repeat it.
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="no_response",
                translation_placeholders={"count": str(len(self._identities))},
            )
        await self._async_check_identities(readings)
        self._log_transitions(readings, errors)
        return self._snapshot(readings, errors)

    async def _poll_gateway(self, key: str) -> tuple[dict[str, Reading], dict[str, str]]:
        identities = [i for pid, i in self._identities.items() if self._gateway_of[pid] == key]
        if not identities:
            return {}, {}
        try:
            result = await self._client(key).read_all(
                identities, concurrency=const.POLL_CONCURRENCY
            )
        except DeviceLayerError as err:  # the gateway itself is gone
            return {}, {i.plant_id: f"gateway unreachable: {err}" for i in identities}
        readings: dict[str, Reading] = {}
        errors: dict[str, str] = {}
        for pid, outcome in result.items():
            if isinstance(outcome, DeviceLayerError):
                errors[pid] = f"{type(outcome).__name__}: {outcome}"
            else:
                readings[pid] = outcome
        return readings, errors

    def _log_transitions(self, readings: Mapping[str, Reading], errors: Mapping[str, str]) -> None:
        for pid, why in errors.items():
            if pid not in self._silent:
                self._silent.add(pid)
                LOGGER.warning("%s is unavailable: %s", pid, why)
        for pid in readings:
            if pid in self._silent:
                self._silent.discard(pid)
                LOGGER.info("%s is available again", pid)

    def _snapshot(self, readings: dict[str, Reading], errors: dict[str, str]) -> PlantSnapshot:
        identities = dict(self._identities)
        if self._replaced:
            readings = {p: r for p, r in readings.items() if p not in self._replaced}
            errors = dict(errors) | {
                p: f"unit replaced ({change}); reload the integration to adopt it"
                for p, change in self._replaced.items()
            }
        snapshot = PlantSnapshot(
            identities=identities,
            readings=readings,
            errors=errors,
            topology=self._topology,
            assignment=_assignment(identities, readings),
            circuit_a={
                pid: r.current_a for pid, r in readings.items() if isinstance(r, SbmReading)
            },
            energized_mpdus=frozenset(
                pid
                for pid, r in readings.items()
                if isinstance(r, MpduReading) and r.energized and r.output_on and not r.breaker_open
            ),
            updated_at=dt_util.utcnow(),
            gateways=dict(self._gateway_of),
        )
        self._demand_a.update({c: a for c, a in snapshot.circuit_a.items() if a > 0.0})
        return snapshot

    # -- gateways and discovery ----------------------------------------------------------------

    def _client(self, key: str) -> PlantClient:
        client = self._clients.get(key)
        if client is None:
            gateway = self._gateways[key]
            client = PlantClient(gateway.host, gateway.port, timeout=const.REQUEST_TIMEOUT)
            self._clients[key] = client
        return client

    def _sync_gateways(self) -> None:
        """Follow the entry's gateways (subentries come and go at runtime)."""
        entry = self.config_entry
        wanted = {MAIN_GATEWAY: Gateway(MAIN_GATEWAY, entry.data[CONF_HOST], entry.data[CONF_PORT])}
        for subentry_id, subentry in entry.subentries.items():
            if subentry.subentry_type == SUBENTRY_GATEWAY:
                wanted[subentry_id] = Gateway(
                    subentry_id, subentry.data[CONF_HOST], subentry.data[CONF_PORT]
                )
        added = [k for k in wanted if k not in self._gateways]
        removed = [k for k in self._gateways if k not in wanted]
        for key in removed:
            LOGGER.info("Gateway %s removed from the plant", self._gateways[key].host)
            client = self._clients.pop(key, None)
            if client is not None:
                self.config_entry.async_create_task(self.hass, client.close())
            registry = dr.async_get(self.hass)
            for pid in [p for p, g in self._gateway_of.items() if g == key]:
                device_id = self._device_ids.get(pid)
                if device_id is not None and registry.async_get(device_id) is not None:
                    registry.async_remove_device(device_id)
                self.forget(pid)
            self._found.pop(key, None)
            del self._gateways[key]
        for key in added:
            self._gateways[key] = wanted[key]

    async def _scan_gateway(self, gateway: Gateway) -> bool:
        """Discover the devices behind a gateway; returns whether any was new."""
        found = await self._client(gateway.key).scan(
            per_unit_timeout=const.SCAN_UNIT_TIMEOUT, concurrency=const.SCAN_CONCURRENCY
        )
        self._found[gateway.key] = {i.plant_id for i in found}
        new: list[DeviceIdentity] = []
        for identity in found:
            owner = self._gateway_of.get(identity.plant_id)
            if owner is not None and owner != gateway.key:
                if identity.plant_id not in self._duplicates:  # once, not at every rescan
                    self._duplicates.add(identity.plant_id)
                    LOGGER.warning(
                        "%s is reported by two gateways; keeping the first", identity.plant_id
                    )
                continue
            old = self._identities.get(identity.plant_id)
            if old is not None and old != identity:
                self._note_replaced(identity.plant_id, old, identity)  # not adopted silently
                continue
            if old is None:
                new.append(identity)
            self._identities[identity.plant_id] = identity
            self._gateway_of[identity.plant_id] = gateway.key
        if new:
            self._topology = topology_from_identities(self._identities.values())
            self._register_devices(new, gateway)
            LOGGER.debug(
                "Found %d new device(s) behind %s: %s",
                len(new),
                gateway.host,
                ", ".join(i.plant_id for i in new),
            )
        return bool(new)

    def _register_devices(self, identities: Iterable[DeviceIdentity], gateway: Gateway) -> None:
        """Register devices parents first: ATS, then MPDU (via its ATS), then SBM (via its
        normal-path MPDU), environment sensors standalone."""
        registry = dr.async_get(self.hass)
        ordered = sorted(identities, key=lambda i: (_TYPE_ORDER.index(i.device_type), i.unit_id))
        for identity in ordered:
            via: str | None = None
            if identity.device_type is DeviceType.MPDU and identity.ats is not None:
                via = self._device_ids.get(identity.ats)
            elif identity.device_type is DeviceType.SBM and identity.paths:
                via = self._device_ids.get(identity.paths[0])
            device = registry.async_get_or_create(
                config_entry_id=self.config_entry.entry_id,
                config_subentry_id=gateway.subentry_id,
                identifiers={self.identifier(identity.plant_id)},
                manufacturer=MANUFACTURER,
                model=shown_name(identity.model, f"The model unit {identity.unit_id} reports"),
                name=device_name(identity),
                sw_version=shown_name(
                    identity.firmware, f"The firmware version unit {identity.unit_id} reports"
                ),
                serial_number=shown_name(
                    identity.plant_id, f"The id unit {identity.unit_id} reports"
                ),
                via_device_id=via,
            )
            self._device_ids[identity.plant_id] = device.id
