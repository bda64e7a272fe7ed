"""The plant's one command path: everything sent to a device goes through :class:`CommandPath`.

Entities, the migration executor (``migration.HaPlantPort``) and every action send commands
through it, one at a time per plant (its command lock), each judged by ``engine/interlock.py``
against the latest snapshot, the circuits' remembered demand and the latest decision's alerts and
failures (no load onto a unit at risk), sent only to the unit identified at start-up (a replaced
one is refused), and followed by a re-read of the devices it can change. Nothing is commanded on
telemetry that did not come from the last poll: after a failed refresh every command is refused
until a poll succeeds again. A refusal (interlock, stale telemetry, the device itself) is written
to the plant's activity with who asked and why.

What the device layer raises while a command is sent is translated once, by
:func:`translate_device_errors` (as Home Assistant's Modbus integrations do).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Concatenate, Final

from homeassistant.auth.permissions.const import POLICY_CONTROL
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError, Unauthorized

from .activity import async_record_refusal
from .const import DOMAIN, LOGGER
from .coordinator import TelemetryCoordinator
from .device.client import PlantClient
from .device.errors import DeviceError, DeviceLayerError
from .device.models import AtsReading, DeviceIdentity, DeviceType, SbmReading
from .engine.interlock import AtsState, InterlockState, Verdict
from .engine.risk import refused_receivers, risk_of
from .snapshot import PlantSnapshot

if TYPE_CHECKING:
    from .engine.decisions import Decisions

__all__ = [
    "CommandCheck",
    "CommandPath",
    "CommandSend",
    "at_risk",
    "interlock_state",
    "neighbours",
    "translate_device_errors",
]

type CommandCheck = Callable[[InterlockState], Verdict]
"""An interlock rule applied to the plant as it is now (``engine/interlock.py``)."""
type CommandSend = Callable[[PlantClient, DeviceIdentity], Awaitable[None]]
"""What a command sends, given the device's gateway client and identity."""

REJECTED: Final = "command_rejected"
"""Translation key of a command the device itself refused (a refusal for the activity)."""


def translate_device_errors[**P](
    func: Callable[Concatenate[CommandPath, str, P], Coroutine[Any, Any, None]],
) -> Callable[Concatenate[CommandPath, str, P], Coroutine[Any, Any, None]]:
    """Decorate a send to a device (its plant id the first argument) so that what the device
    layer raises reaches the caller as a translated ``HomeAssistantError``: the device refused
    it (``command_rejected``, with its exception code), or did not answer (``command_failed``)."""

    async def handler(
        self: CommandPath, plant_id: str, /, *args: P.args, **kwargs: P.kwargs
    ) -> None:
        try:
            await func(self, plant_id, *args, **kwargs)
        except DeviceError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key=REJECTED,
                translation_placeholders={"element": plant_id, "error": err.code_name},
            ) from err
        except DeviceLayerError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="command_failed",
                translation_placeholders={"element": plant_id, "error": str(err)},
            ) from err

    return handler


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


def neighbours(identities: Mapping[str, DeviceIdentity], plant_id: str) -> list[str]:
    """A device and the devices a command on it can change the readings of: what feeds it
    (an MPDU's ATS, a circuit's MPDUs) and what it feeds (an ATS's MPDUs, an MPDU's
    circuits)."""
    identity = identities.get(plant_id)
    if identity is None:
        return []
    out = [plant_id, *(u for u in identity.upstream if u in identities)]
    out += [
        pid
        for pid, other in identities.items()
        if plant_id in other.upstream and other.device_type is not DeviceType.ATS
    ]
    return list(dict.fromkeys(out))


class CommandPath:
    """The one way anything is sent to a device of one plant."""

    def __init__(self, hass: HomeAssistant, telemetry: TelemetryCoordinator) -> None:
        """Commands judged on ``telemetry``'s snapshots (and, once followed, the decisions)."""
        self.hass = hass
        self.telemetry = telemetry
        self.lock = asyncio.Lock()
        """One command at a time per plant, across entities, migrations and actions: each is
        judged on the snapshot refreshed after the previous one, so two commands that fit alone
        cannot overload together."""
        self._decisions: Callable[[], Decisions | None] = lambda: None
        """The latest decision of the engine (set once the decision coordinator runs)."""

    def follow_decisions(self, latest: Callable[[], Decisions | None]) -> None:
        """Judge commands with the engine's latest decision too (``latest()`` returns it)."""
        self._decisions = latest

    def at_risk(self) -> dict[str, str]:
        """MPDU -> why no load may move onto it now (latest snapshot and decision)."""
        return at_risk(self.telemetry.data, self._decisions())

    def interlock_state(self) -> InterlockState:
        """The interlocks' view of the latest snapshot, with remembered demands and the units
        at risk."""
        telemetry = self.telemetry
        return interlock_state(telemetry.data, telemetry.demand_a, self._decisions())

    async def async_command(
        self,
        plant_id: str,
        check: CommandCheck,
        send: CommandSend,
        what: str,
        context: Context | None = None,
    ) -> None:
        """Send one command to a device if the interlock allows it, then refresh.

        ``context`` is the caller's (a user who is not an administrator is refused;
        automations, migrations and scripts run without a user and pass). The command lock is
        held from the interlock check until the refresh after the command. Raises a translated
        ``HomeAssistantError`` when the interlock refuses (naming the element and the amps) and
        when the device layer fails (the device refused, or did not answer).
        """
        await self._async_check_admin(context)
        telemetry = self.telemetry
        async with self.lock:
            if not telemetry.last_update_success:
                # The snapshot is what the last successful poll saw, not the plant now.
                why = "the last refresh failed: no fresh telemetry to judge it on"
                LOGGER.warning("Refused %s on %s: %s", what, plant_id, why)
                self._refused(plant_id, what, why, context)
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key="command_telemetry_stale",
                    translation_placeholders={"element": plant_id},
                )
            verdict = check(self.interlock_state())
            if not verdict.allowed:
                LOGGER.info("Refused %s on %s: %s", what, plant_id, verdict.message)
                self._refused(plant_id, what, verdict.message, context)
                raise ServiceValidationError(  # the caller's request, not a fault: HTTP 400
                    translation_domain=DOMAIN,
                    translation_key=f"interlock_{verdict.reason}",
                    translation_placeholders=verdict.placeholders(),
                )
            change = await telemetry.async_replacement(plant_id)
            if change is not None:
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key="unit_replaced",
                    translation_placeholders={"element": plant_id, "change": change},
                )
            LOGGER.info("Sending %s to %s", what, plant_id)
            try:
                await self._async_send(plant_id, send)
            except HomeAssistantError as err:
                if err.translation_key == REJECTED and isinstance(err.__cause__, DeviceError):
                    why = f"the device refused it ({err.__cause__.code_name})"
                    self._refused(plant_id, what, why, context)
                raise
            finally:
                # Not the debounced request: the states must show what the command did (or did
                # not do) as soon as it returns, and the next command is judged on it. Only the
                # devices the command can change are read, ahead of any poll in progress: at
                # 1,000 devices a whole refresh would make every command wait for it.
                await telemetry.async_refresh_devices(neighbours(telemetry.identities, plant_id))

    @translate_device_errors
    async def _async_send(self, plant_id: str, send: CommandSend) -> None:
        await send(self.telemetry.client_for(plant_id), self.telemetry.identity(plant_id))

    def _refused(self, plant_id: str, what: str, why: str, context: Context | None) -> None:
        async_record_refusal(self.hass, self.telemetry.config_entry, plant_id, what, why, context)

    async def _async_check_admin(self, context: Context | None) -> None:
        """Changing the power path is for administrators (design: admin-only actions)."""
        if context is None or context.user_id is None:
            return
        user = await self.hass.auth.async_get_user(context.user_id)
        if user is not None and not user.is_admin:
            raise Unauthorized(context=context, permission=POLICY_CONTROL)
