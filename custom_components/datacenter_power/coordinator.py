"""Telemetry coordinator: one poll of the whole plant per refresh, as one typed snapshot.

One config entry is one plant; its devices sit behind one or more Modbus TCP gateways (the
entry's own and one per ``gateway`` subentry). The coordinator owns one ``PlantClient`` per
gateway, discovers the devices behind each (``scan``, again every ``RESCAN_INTERVAL``), registers
them in the device registry, and polls them all with ``read_all`` (one request per device,
bounded concurrency). A device that does not answer is simply absent from that refresh's
readings (its entities go unavailable, logged once each way); only when nothing at all answers
does the refresh fail. A unit whose identification changed at the same address is held
unavailable as replaced (``replaced.py``) until the integration is reloaded.

That is its one job: polling. Commands go through the plant's command path (``commands.py``),
which reads the devices a command changes through :meth:`TelemetryCoordinator.async_refresh_devices`
and publishes them at once; the entities of a device are told only when its reading changed
(``device_listeners.py``). Nothing is published as current on telemetry that did not come from
the last poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, override

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from . import const, replaced
from .const import (
    CONF_HOST,
    CONF_PORT,
    CONF_SCAN_INTERVAL,
    DEFAULT_SCAN_INTERVAL,
    DOMAIN,
    LOGGER,
    SUBENTRY_GATEWAY,
)
from .device.client import PlantClient
from .device.errors import DeviceLayerError, GatewayUnavailable
from .device.models import DeviceIdentity, Reading
from .device_listeners import DeviceListeners
from .devices import async_register_devices
from .engine.readings import topology_from_identities
from .engine.topology import Topology
from .runtime import DataCenterPowerConfigEntry
from .snapshot import MAIN_GATEWAY, Gateway, PlantSnapshot, build_snapshot

__all__ = ["TelemetryCoordinator"]


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
        self._demand_a: dict[str, float] = {}
        """What each circuit drew when last seen drawing. A circuit that is off (or on a dead
        path) reads 0 A, but the interlocks need to know what it would draw once powered again;
        its last non-zero reading is the best estimate there is."""
        self._priority_reads: dict[str, tuple[float, Reading]] = {}
        """Plant id -> (monotonic time, reading) of devices read out of turn (after a
        command), newer than what a poll that started before them saw."""
        self._devices = DeviceListeners(hass)
        """The listeners of each device, told when its reading changed."""

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

    async def async_replacement(self, plant_id: str) -> str | None:
        """Before a command: what changed in the unit at that address since it was identified
        (None: it is the same unit; a replaced unit is never commanded on the old identity,
        e.g. in the middle of a migration). Its identification is read again now."""
        if plant_id not in self._replaced and plant_id in self._identities:
            known = self._identities[plant_id]
            try:
                now = await self.client_for(plant_id).read_identity(known.unit_id, priority=True)
            except DeviceLayerError:
                now = known  # it did not answer: the command itself will say so
            if now != known:
                self._note_replaced(plant_id, known, now)
        return self._replaced.get(plant_id)

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
    @override
    def async_add_listener(
        self, update_callback: CALLBACK_TYPE, context: Any = None
    ) -> Callable[[], None]:
        """Listen for refreshes; a listener whose context is a plant id (the entities of that
        device: ``CoordinatorEntity(coordinator, context=plant_id)``) is called only when that
        device's reading changed (``device_listeners.py``)."""
        if context is None:
            return super().async_add_listener(update_callback)
        readings = None if self.data is None else self.data.readings
        return self._devices.async_add(str(context), update_callback, readings)

    @callback
    @override
    def async_update_listeners(self) -> None:
        """Tell the coordinator's listeners, then the listeners of each device that changed."""
        super().async_update_listeners()
        readings = self.data.readings if self.data is not None else {}
        self._devices.async_refreshed(readings, self.last_update_success)

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
        self._devices.async_clear()
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
        snapshot = build_snapshot(
            identities,
            readings,
            errors,
            self._topology,
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
            async_register_devices(
                self.hass,
                self.config_entry.entry_id,
                gateway.subentry_id,
                new,
                identifier=self.identifier,
                device_ids=self._device_ids,
            )
            LOGGER.debug(
                "Found %d new device(s) behind %s: %s",
                len(new),
                gateway.host,
                ", ".join(i.plant_id for i in new),
            )
        return bool(new)
