"""The blueprints in ``blueprints/automation/datacenter_power/``, loaded into Home Assistant's
automation integration, driven by the real integration against the simulator, notifying a phone
through Home Assistant's real ``mobile_app`` integration.

The only thing mocked is the phone itself (``companion.Phone``): it registers through the
Companion app's registration API, receives notifications on the websocket push channel and
presses buttons by posting ``mobile_app_notification_action`` to its webhook, as the app does.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components import automation
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.const import DOMAIN
from custom_components.datacenter_power.executor import MigrationState
from custom_components.datacenter_power.presentation import (
    conservative_ttf_s,
    duration_text,
    ttf_text,
)
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer
from tests.plants import tight_wear_plant

from .companion import Phone
from .test_migration import FAILOVER_PLANT
from .wear import setup_worn, wear_plant

BLUEPRINTS = Path(__file__).parents[2] / "blueprints"
EN_DASH = "\u2013"
A1_3 = f"a01{EN_DASH}a03"
"""The circuits on ATS-1 (the drain moves all three)."""

type Client = Callable[[], Awaitable[Any]]
type WsClient = Callable[[HomeAssistant], Awaitable[Any]]

pytestmark = pytest.mark.usefixtures("fast_verification")


@pytest.fixture(autouse=True)
def installed_blueprints(hass: HomeAssistant) -> None:
    """The project's blueprints where Home Assistant looks for them (as an import puts them)."""
    shutil.copytree(BLUEPRINTS, hass.config.path("blueprints"), dirs_exist_ok=True)


@pytest.fixture(autouse=True)
async def stop_automations(hass: HomeAssistant) -> AsyncIterator[None]:
    """Stop every automation run still waiting for a phone when the test ends (a failed test
    would otherwise leave one waiting for hours and hang Home Assistant's shutdown)."""
    yield
    if hass.services.has_service(automation.DOMAIN, "turn_off"):
        await hass.services.async_call(
            automation.DOMAIN, "turn_off", {"entity_id": "all"}, blocking=True
        )


async def use_blueprints(hass: HomeAssistant, *uses: tuple[str, str, dict[str, Any]]) -> None:
    """Set up the automation integration with automations made from blueprints."""
    assert await async_setup_component(
        hass,
        automation.DOMAIN,
        {
            automation.DOMAIN: [
                {
                    "alias": alias,
                    "use_blueprint": {"path": f"datacenter_power/{path}", "input": inputs},
                }
                for alias, path, inputs in uses
            ]
        },
    )
    await hass.async_block_till_done()


@pytest.fixture
def plant(request: pytest.FixtureRequest, scenario_doc: dict[str, Any]) -> Plant:
    """The worn plant (default here), or ``scenario_doc`` when parametrized with "doc"."""
    if getattr(request, "param", "worn") == "doc":
        return Plant(parse_scenario(scenario_doc), start_s=0.0)
    if getattr(request, "param", "worn") == "tight":  # no complete drain is safe
        return Plant(parse_scenario(tight_wear_plant()), start_s=None)
    return Plant(parse_scenario(wear_plant(repair_after="1h")), start_s=None)


async def _setup_approval(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    hass_client: Client,
    hass_ws_client: WsClient,
    step_interval: float = 0,
    options: dict[str, Any] | None = None,
) -> tuple[MockConfigEntry, Phone, dict[str, Any]]:
    """A phone registered, the approval blueprint aimed at it, the worn plant set up in
    approval mode; returns the entry, the phone and the proposal's notification."""
    phone = await Phone.register(hass, hass_client, hass_ws_client)
    await use_blueprints(
        hass,
        ("approve", "approve_migration_on_phone.yaml", {"notify_service": phone.notify_service}),
    )
    entry = await setup_worn(
        hass,
        hass_storage,
        sim_server[0],
        sim_server[1],
        "approval",
        step_interval,
        settle=False,
        options=options,
    )
    return entry, phone, await phone.next_notification()


async def until(check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    """Let Home Assistant run until ``check()`` holds (not ``async_block_till_done``: an
    automation waiting for a phone's answer would hold that up until its timeout)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def _buttons(note: dict[str, Any]) -> dict[str, str]:
    return {b["title"]: b["action"] for b in note["data"].get("actions", [])}


async def test_predicted_failure_is_approved_on_the_phone(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    hass_client: Client,
    hass_ws_client: WsClient,
) -> None:
    """ATS-1 predicted to fail (approval mode): the phone gets the unit, the time to failure's
    P10 (as the sensor says it), the circuits and from -> to, urgent when under an hour, and
    two buttons; "Approve migration" (through the app's webhook) runs the proposed plan, the
    phone hears that it started and then that it completed, under the same tag, with no
    buttons left; approving it a second time is refused with the reason."""
    entry, phone, note = await _setup_approval(
        hass, hass_storage, sim_server, hass_client, hass_ws_client
    )
    ats1 = entry.runtime_data.decisions.data.assessments["ats1"]
    low = conservative_ttf_s(ats1)  # the P10: what the sensor and the repair say first
    within = duration_text(low)
    assert note["title"] == f"ats1 may fail within {within} \u2014 move {A1_3} to mpdu2?"
    assert note["message"].startswith(f"Move {A1_3} (")
    assert "from mpdu1 to mpdu2 in 1 verified stage" in note["message"]
    assert f"time to failure {ttf_text(ats1)}" in note["message"]
    tag = note["data"]["tag"]
    assert tag.startswith("datacenter_power_")
    if low < 3600:
        assert note["data"]["priority"] == "high"
        assert note["data"]["ttl"] == 0
        assert note["data"]["push"] == {"interruption-level": "time-sensitive"}
    else:
        assert note["data"]["priority"] == "normal"
    buttons = _buttons(note)
    assert list(buttons) == ["Approve migration", "Dismiss"]
    assert sim_server[0].plant.telemetry().ats["ats1"].load_current_a > 0  # nothing moved yet

    await phone.press(buttons["Approve migration"])
    started = await phone.next_notification()
    assert started["title"] == f"Approved: moving {A1_3}"
    assert started["data"] == {"tag": tag}
    outcome = await phone.next_notification()
    assert outcome["title"] == f"Migration completed: drain of ats1 ({A1_3})"
    assert outcome["message"] == f"{A1_3} moved to mpdu2; its stage verified."
    assert outcome["data"] == {"tag": tag}  # replaces it: no buttons left
    manager = entry.runtime_data.migrations
    record = await manager.async_wait(manager.latest.migration_id)  # type: ignore[union-attr]
    assert record.state is MigrationState.COMPLETED
    assert record.component == "ats1"
    assert sim_server[0].plant.telemetry().ats["ats1"].load_current_a == 0.0
    proposal_id = buttons["Approve migration"].removeprefix("DCP_APPROVE_")
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "approve_proposal", {"proposal_id": proposal_id}, blocking=True
        )
    assert err.value.translation_key == "proposal_stale"
    assert "already approved" in str(err.value.translation_placeholders)


@pytest.mark.parametrize("expected_lingering_timers", [True])  # the remainder's proposal waits
async def test_an_approved_migration_cancelled_part_way_tells_the_phone_why(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    hass_client: Client,
    hass_ws_client: WsClient,
) -> None:
    """Approved on the phone, the drain (one circuit a stage, 30 s apart) is cancelled after
    its first stage: the phone hears "aborted" with the stage count and the reason, under the
    proposal's tag."""
    entry, phone, note = await _setup_approval(
        hass,
        hass_storage,
        sim_server,
        hass_client,
        hass_ws_client,
        step_interval=30,
        options={"max_step_amps": 7},
    )
    tag = note["data"]["tag"]
    await phone.press(_buttons(note)["Approve migration"])
    started = await phone.next_notification()
    assert started["data"] == {"tag": tag}
    manager = entry.runtime_data.migrations
    await until(
        lambda: manager.active is not None and manager.active.completed_stages == 1,
        "the first stage",
    )
    await hass.services.async_call(DOMAIN, "cancel_migration", {}, blocking=True)
    outcome = await phone.next_notification()
    if outcome["data"].get("tag") != tag:  # the remainder's new proposal may come first
        outcome = await phone.next_notification()
    assert outcome["title"] == f"Migration aborted: drain of ats1 ({A1_3})"
    assert outcome["message"] == "Aborted after 1 of 3 stages: cancelled."
    assert outcome["data"] == {"tag": tag}


async def test_a_stale_proposal_is_refused_and_the_phone_told_why(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    hass_client: Client,
    hass_ws_client: WsClient,
) -> None:
    """Someone drains ATS-1 another way before the phone answers: the approval moves nothing
    and the phone is told why, under the proposal's tag."""
    entry, phone, note = await _setup_approval(
        hass, hass_storage, sim_server, hass_client, hass_ws_client
    )
    response = await hass.services.async_call(
        DOMAIN, "migrate_load", {"component": "ats1"}, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    manager = entry.runtime_data.migrations
    await manager.async_wait(response["migration_id"])
    count = len(manager.records)
    await phone.press(_buttons(note)["Approve migration"])
    answer = await phone.next_notification()
    assert answer["title"] == "Not approved"
    assert "can no longer be approved" in answer["message"]
    assert "no longer on mpdu1" in answer["message"]
    assert answer["data"] == {"tag": note["data"]["tag"]}
    assert len(manager.records) == count


async def test_a_proposal_gone_stale_replaces_the_notification(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    hass_client: Client,
    hass_ws_client: WsClient,
) -> None:
    """ATS-1 drained another way and the plant polled: the proposal is no longer current and
    the phone's notification is replaced at once (same tag, no buttons) saying why."""
    entry, phone, note = await _setup_approval(
        hass, hass_storage, sim_server, hass_client, hass_ws_client
    )
    response = await hass.services.async_call(
        DOMAIN, "migrate_load", {"component": "ats1"}, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    await entry.runtime_data.migrations.async_wait(response["migration_id"])
    await entry.runtime_data.telemetry.async_refresh()
    await entry.runtime_data.decisions.async_refresh()
    replaced = await phone.next_notification()
    assert replaced["title"] == "ats1: proposal stale"
    assert "no longer on mpdu1" in replaced["message"]
    assert replaced["data"] == {"tag": note["data"]["tag"]}


async def test_dismiss_on_the_phone_drops_the_proposal(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    hass_client: Client,
    hass_ws_client: WsClient,
) -> None:
    """ "Dismiss" drops the proposal: nothing moves, the notification is replaced (same tag,
    no buttons) and a later approval is refused."""
    entry, phone, note = await _setup_approval(
        hass, hass_storage, sim_server, hass_client, hass_ws_client
    )
    dismiss = _buttons(note)["Dismiss"]
    await phone.press(dismiss)
    answer = await phone.next_notification()
    assert answer["title"] == "Dismissed: ats1 proposal"
    assert answer["data"] == {"tag": note["data"]["tag"]}
    book = entry.runtime_data.proposals
    assert not book.current
    assert not entry.runtime_data.migrations.records
    proposal_id = dismiss.removeprefix("DCP_DISMISS_")
    response = await hass.services.async_call(
        DOMAIN, "get_proposal", {"proposal_id": proposal_id}, blocking=True, return_response=True
    )
    assert response == {"proposal_id": proposal_id, "current": False, "reason": "dismissed"}
    await phone.nothing_more()


@pytest.mark.parametrize("scenario_doc", [FAILOVER_PLANT])
@pytest.mark.parametrize("plant", ["doc"], indirect=True)
async def test_failover_sends_a_critical_alert_to_every_phone(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    hass_client: Client,
    hass_ws_client: WsClient,
) -> None:
    """MPDU-1 dies without warning with load on it: both phones of the group get a critical
    notification naming it at the first poll that shows it (with MPDU-2 over its limit), and
    another when the integration rebalances."""
    phones = [await Phone.register(hass, hass_client, hass_ws_client, n) for n in ("A", "B")]
    await use_blueprints(
        hass,
        (
            "failover",
            "failover_critical_alert.yaml",
            {"notify_services": [p.notify_service for p in phones]},
        ),
    )
    sim_server[0].advance(600)
    await init_integration.runtime_data.telemetry.async_refresh()
    await init_integration.runtime_data.decisions.async_refresh()
    for phone in phones:
        alert, rebalance = await phone.next_notification(), await phone.next_notification()
        assert alert["title"] == "FAILURE: mpdu1 failed, mpdu2 over its limit"
        assert "mpdu2 carries 40.0 A, 8.0 A above its continuous limit" in alert["message"]
        assert alert["data"]["tag"].startswith("datacenter_power_alert_")
        assert rebalance["title"] == "FAILOVER: mpdu1 failed"
        assert "Rebalancing 2 circuit(s) automatically" in rebalance["message"]
        for data in (alert, rebalance):
            assert data["data"]["push"]["sound"]["critical"] == 1
            assert data["data"]["channel"] == "alarm_stream"
            assert data["data"]["priority"] == "high"
            assert data["data"]["ttl"] == 0


async def test_a_predicted_failure_left_with_load_alerts_the_phone_when_it_comes(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    hass_client: Client,
    hass_ws_client: WsClient,
) -> None:
    """Approval mode, nobody approves: ATS-1 fails with its circuits still on it. The failover
    blueprint's phone gets a critical notification naming ATS-1 (failed as predicted) at the
    first poll that shows the failure."""
    phone = await Phone.register(hass, hass_client, hass_ws_client)
    await use_blueprints(
        hass,
        ("failover", "failover_critical_alert.yaml", {"notify_services": [phone.notify_service]}),
    )
    server, port = sim_server
    entry = await setup_worn(hass, hass_storage, server, port, "approval")
    assert server.plant.telemetry().ats["ats1"].load_current_a > 0
    server.advance(16.2 * 3600 - server.plant.t_s)  # fails at 16 h
    await entry.runtime_data.telemetry.async_refresh()
    alert = await phone.next_notification()
    assert alert["title"].startswith("FAILURE: ats1 failed")
    assert "ats1 failed as predicted" in alert["message"]
    assert alert["data"]["priority"] == "high"
    assert alert["data"]["push"]["interruption-level"] == "critical"


@pytest.mark.parametrize("expected_lingering_timers", [True])  # the windows' time triggers
async def test_repaired_component_is_restored_inside_the_window_only(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """ATS-1 drained, failed and repaired: its failure risk clears; the automation whose
    maintenance window is open restores its circuits in verified stages, the one whose window
    is closed does nothing. (Forced: in Home Assistant's time the repair is seconds old, and
    the test does not wait for the soak time; ``test_restore_guards.py`` covers that.)"""
    server, port = sim_server
    entry = await setup_worn(hass, hass_storage, server, port, "monitor")
    telemetry, forecast = entry.runtime_data.telemetry, entry.runtime_data.decisions
    ats1 = telemetry.device_id("ats1")
    now = dt_util.now()

    def window(start_h: float, end_h: float) -> dict[str, str]:
        return {
            "window_start": (now + timedelta(hours=start_h)).strftime("%H:%M:%S"),
            "window_end": (now + timedelta(hours=end_h)).strftime("%H:%M:%S"),
        }

    common = {"component": ats1, "min_health": 0, "max_step_amps": 10, "force": True}
    await use_blueprints(
        hass,
        ("open", "restore_in_maintenance_window.yaml", {**common, **window(-1, 1)}),
        ("closed", "restore_in_maintenance_window.yaml", {**common, **window(2, 3)}),
    )
    response = await hass.services.async_call(
        DOMAIN, "migrate_load", {"component": "ats1"}, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    manager = entry.runtime_data.migrations
    await manager.async_wait(response["migration_id"])
    assert server.plant.telemetry().ats["ats1"].load_current_a == 0.0

    server.advance(16.5 * 3600 - server.plant.t_s)  # fails at 16 h
    await telemetry.async_refresh()
    await forecast.async_refresh()
    server.advance(3600)  # repaired 1 h later
    await telemetry.async_refresh()
    await forecast.async_refresh()
    await hass.async_block_till_done()
    assert not forecast.data.assessments["ats1"].alert
    restore = manager.latest
    assert restore is not None
    assert restore.migration_id != response["migration_id"]
    record = await manager.async_wait(restore.migration_id)
    assert record.state is MigrationState.COMPLETED
    assert len(record.stages) > 1  # staged: at most 10 A per stage
    assert server.plant.telemetry().ats["ats1"].load_current_a > 0
    states = {a: hass.states.get(f"automation.{a}") for a in ("open", "closed")}
    assert states["open"] is not None
    assert states["open"].attributes["last_triggered"] is not None
    assert states["closed"] is not None
    assert states["closed"].attributes["last_triggered"] is None
    assert server.plant.metrics.interruptions == 0


@pytest.mark.parametrize("plant", ["tight"], indirect=True)
async def test_a_decision_is_answered_on_the_phone(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    hass_client: Client,
    hass_ws_client: WsClient,
) -> None:
    """No complete drain of ATS-1 is safe (approval mode): the phone gets "Decision needed at
    ats1", urgent, with the choices in numbers and one button each; "Partial drain" answers
    through datacenter_power.answer_decision, the partial drain runs as a verified migration and
    the phone hears so under the same tag; pressing a button of the answered decision again is
    refused and the phone is told, with nothing moved."""
    phone = await Phone.register(hass, hass_client, hass_ws_client)
    await use_blueprints(
        hass, ("decide", "decide_on_phone.yaml", {"notify_service": phone.notify_service})
    )
    entry = await setup_worn(
        hass, hass_storage, sim_server[0], sim_server[1], "approval", settle=False
    )
    note = await phone.next_notification()
    assert note["title"] == "Decision needed at ats1"
    assert "mpdu2 up to" in note["message"]  # drain now: how far above the limit
    assert "are interrupted if ats1 fails before" in note["message"]  # keep the load
    assert "Nothing moves beyond what fits" in note["message"]  # approval mode waits
    assert note["data"]["priority"] == "high"
    buttons = _buttons(note)
    assert list(buttons) == ["Drain now", "Keep the load", "Partial drain", "Shed b03"]
    ((did, question),) = entry.runtime_data.questions.current.items()
    assert note["data"]["tag"] == f"datacenter_power_decision_{did}"
    manager = entry.runtime_data.migrations
    assert not manager.records

    await phone.press(buttons["Partial drain"])
    answer = await phone.next_notification()
    assert answer["title"] == "Answered: partial_drain"
    assert answer["message"].startswith("Migration ")
    assert answer["data"] == {"tag": note["data"]["tag"]}  # replaces it: no buttons left
    record = await manager.async_wait(manager.latest.migration_id)  # type: ignore[union-attr]
    assert record.state is MigrationState.COMPLETED, record.reason
    moved = question.choice("partial_drain").moved
    assignment = entry.runtime_data.telemetry.data.assignment
    assert all(assignment[c] == "mpdu2" for c in moved)

    await phone.press(buttons["Drain now"])
    refused = await phone.next_notification()
    assert refused["title"] == "Not answered: drain_now"
    assert "can no longer be answered" in refused["message"]
    assert len(manager.records) == 1  # nothing more moved


@pytest.mark.parametrize("plant", ["tight"], indirect=True)
async def test_one_question_on_the_phone_when_a_decision_offers_the_proposal(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    hass_client: Client,
    hass_ws_client: WsClient,
) -> None:
    """Approval mode, both phone blueprints in use: no complete drain of ATS-1 is safe, so the
    engine proposes the partial drain and asks about the rest. The phone gets one question, the
    decision (whose "Partial drain" button is that proposal's plan), not the proposal as well;
    the proposal stays current and approvable by its id."""
    phone = await Phone.register(hass, hass_client, hass_ws_client)
    await use_blueprints(
        hass,
        ("approve", "approve_migration_on_phone.yaml", {"notify_service": phone.notify_service}),
        ("decide", "decide_on_phone.yaml", {"notify_service": phone.notify_service}),
    )
    entry = await setup_worn(
        hass, hass_storage, sim_server[0], sim_server[1], "approval", settle=False
    )
    note = await phone.next_notification()
    assert note["title"] == "Decision needed at ats1"
    await phone.nothing_more(1.0)
    ((did, question),) = entry.runtime_data.questions.current.items()
    book = entry.runtime_data.proposals
    ((pid, proposal),) = book.current.items()
    partial = question.choice("partial_drain")
    assert {m.circuit for m in proposal.plan.moves} == set(partial.moved)
    assert book.held == {pid: did}
    response = await hass.services.async_call(
        DOMAIN, "get_proposal", {"proposal_id": pid}, blocking=True, return_response=True
    )
    assert response is not None
    assert response["current"] is True
