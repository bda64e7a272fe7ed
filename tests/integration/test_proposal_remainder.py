"""Issue 20, item 3: in approval mode, while a unit is at risk, a proposal's outcome that leaves
load on it (stale after a hand move, dismissed, approved and stopped part way) is followed at
once by a proposal for the remainder; and a hand move onto a unit at risk is refused with the
reason unless the operator says ``force: true``. Real Home Assistant, real simulator over
Modbus TCP, ATS-1 wearing (``wear.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import ServiceValidationError
from pytest_homeassistant_custom_component.common import async_capture_events

from custom_components.datacenter_power.const import CONF_MAX_STEP_AMPS, DOMAIN
from custom_components.datacenter_power.events import EVENT_PROPOSAL
from custom_components.datacenter_power.executor import MigrationState
from custom_components.datacenter_power.migration import MigrationManager
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer

from .wear import setup_worn, wear_plant

pytestmark = pytest.mark.usefixtures("fast_verification")

PROPOSAL_TIMEOUT_S = 30.0
"""How long the remainder may take to be proposed (a poll or two; the policy's replan interval,
which held it back, is 15 minutes)."""


@pytest.fixture
def plant() -> Plant:
    """The worn plant: ATS-1 wears from 1 h and fails at 16 h."""
    return Plant(parse_scenario(wear_plant()), start_s=None)


def _path(server: PlantServer, circuit: str) -> str:
    c = server.plant.telemetry().circuits[circuit]
    return c.paths[c.active_path]


async def _next_proposal(hass: HomeAssistant, events: list[Event], after: int) -> Event:
    """The first proposal event beyond the first ``after`` ones (bounded wait)."""
    fired = asyncio.Event()
    remove = hass.bus.async_listen(EVENT_PROPOSAL, callback(lambda _event: fired.set()))
    try:
        async with asyncio.timeout(PROPOSAL_TIMEOUT_S):
            while len(events) <= after:
                fired.clear()
                await fired.wait()
    finally:
        remove()
    return events[after]


async def _select_path(hass: HomeAssistant, circuit: str, path: str) -> None:
    await hass.services.async_call(
        "select",
        "select_option",
        {"entity_id": f"select.circuit_{circuit}_active_path", "option": path},
        blocking=True,
    )


async def _first_proposal(hass: HomeAssistant, events: list[Event]) -> Event:
    first = await _next_proposal(hass, events, 0)
    assert first.data["component"] == "ats1"
    assert set(first.data["circuits"]) == {"a01", "a02", "a03"}
    return first


async def test_a_stale_proposal_is_followed_by_the_remainder_at_once(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """The proposal drains a01-a03 off ATS-1; a01 is moved by hand; approving the proposal is
    refused (stale), and the remainder (a02, a03) is proposed within a poll or two."""
    server, port = sim_server
    events = async_capture_events(hass, EVENT_PROPOSAL)
    await setup_worn(hass, hass_storage, server, port, "approval")
    first = await _first_proposal(hass, events)
    await _select_path(hass, "a01", "mpdu2")
    assert _path(server, "a01") == "mpdu2"
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "approve_proposal",
            {"proposal_id": first.data["proposal_id"]},
            blocking=True,
        )
    assert err.value.translation_key == "proposal_stale"
    rest = await _next_proposal(hass, events, 1)
    assert rest.data["component"] == "ats1"
    assert set(rest.data["circuits"]) == {"a02", "a03"}


async def test_after_a_dismissal_a_hand_move_brings_the_remainder_at_once(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """The proposal is dismissed (not offered again unchanged); a person then moves a01 by
    hand: the remainder is proposed at once while ATS-1 is still at risk."""
    server, port = sim_server
    events = async_capture_events(hass, EVENT_PROPOSAL)
    await setup_worn(hass, hass_storage, server, port, "approval")
    first = await _first_proposal(hass, events)
    await hass.services.async_call(
        DOMAIN, "dismiss_proposal", {"proposal_id": first.data["proposal_id"]}, blocking=True
    )
    await _select_path(hass, "a01", "mpdu2")
    rest = await _next_proposal(hass, events, 1)
    assert set(rest.data["circuits"]) == {"a02", "a03"}
    assert rest.data["proposal_id"] != first.data["proposal_id"]


async def test_a_proposal_stopped_part_way_is_followed_by_the_remainder_at_once(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Approved, the drain (one circuit a stage) is cancelled by a person after its first stage:
    the remainder is proposed at once (before: the failed plan was held back 30 minutes)."""
    server, port = sim_server
    events = async_capture_events(hass, EVENT_PROPOSAL)
    real = MigrationManager._on_progress

    async def on_progress(self: MigrationManager, rec: Any, note: str) -> None:
        await real(self, rec, note)
        if note == "stage 1 verified":
            self.cancel(rec.migration_id)  # a person cancels it there

    monkeypatch.setattr(MigrationManager, "_on_progress", on_progress)
    entry = await setup_worn(
        hass, hass_storage, server, port, "approval", options={CONF_MAX_STEP_AMPS: 7}
    )
    first = await _first_proposal(hass, events)
    assert first.data["stages"] == 3
    response = await hass.services.async_call(
        DOMAIN,
        "approve_proposal",
        {"proposal_id": first.data["proposal_id"]},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    manager = entry.runtime_data.migrations
    record = await manager.async_wait(str(response["migration_id"]))
    assert record.state is MigrationState.ABORTED
    assert record.completed_stages == 1
    rest = await _next_proposal(hass, events, 1)
    moved = {m.circuit for m in record.stages[0]}
    assert set(rest.data["circuits"]) == {"a01", "a02", "a03"} - moved


async def test_a_hand_move_onto_a_unit_at_risk_needs_force(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """b01 onto mpdu1 (ATS-1 predicted to fail): the select is refused with the reason; the
    set_path action refuses it too, and does it with ``force: true``; mpdu2 takes it back
    without any override."""
    server, port = sim_server
    await setup_worn(hass, hass_storage, server, port, "approval")
    with pytest.raises(ServiceValidationError) as err:
        await _select_path(hass, "b01", "mpdu1")
    assert err.value.translation_key == "interlock_target_at_risk"
    placeholders = err.value.translation_placeholders or {}
    assert placeholders["element"] == "mpdu1"
    assert placeholders["target"] == "b01"
    assert "ats1 is predicted to fail" in placeholders["detail"]
    assert "force: true" in str(err.value)
    assert _path(server, "b01") == "mpdu2"
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "set_path", {"circuit": "b01", "path": "mpdu1"}, blocking=True
        )
    assert err.value.translation_key == "interlock_target_at_risk"
    assert _path(server, "b01") == "mpdu2"
    response = await hass.services.async_call(
        DOMAIN,
        "set_path",
        {"circuit": "b01", "path": "mpdu1", "force": True},
        blocking=True,
        return_response=True,
    )
    assert response == {"circuit": "b01", "path": "mpdu1", "forced": True}
    assert _path(server, "b01") == "mpdu1"
    response = await hass.services.async_call(
        DOMAIN,
        "set_path",
        {"circuit": "b01", "path": "mpdu2"},
        blocking=True,
        return_response=True,
    )
    assert response == {"circuit": "b01", "path": "mpdu2", "forced": False}
    assert _path(server, "b01") == "mpdu2"
