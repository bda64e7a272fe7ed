"""The blueprints in ``blueprints/automation/datacenter_power/``, loaded into Home Assistant's
automation integration, driven by the real integration against the simulator.

The only thing mocked is the phone: ``notify.mobile_app_*`` actions are registered here as fake
services that record what they are sent (a real one needs the mobile app and a phone), and a
button press on the phone is the ``mobile_app_notification_action`` event the mobile app fires.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components import automation
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.exceptions import ServiceValidationError
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.const import DOMAIN
from custom_components.datacenter_power.executor import MigrationState
from custom_components.datacenter_power.proposals import book_of
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer

from .test_migration import FAILOVER_PLANT
from .wear import setup_worn, wear_plant

BLUEPRINTS = Path(__file__).parents[2] / "blueprints"

pytestmark = pytest.mark.usefixtures("fast_verification")


@pytest.fixture(autouse=True)
def installed_blueprints(hass: HomeAssistant) -> None:
    """The project's blueprints where Home Assistant looks for them (as an import puts them)."""
    shutil.copytree(BLUEPRINTS, hass.config.path("blueprints"), dirs_exist_ok=True)


def fake_phone(hass: HomeAssistant, name: str) -> list[ServiceCall]:
    """A ``notify.<name>`` action that records its calls (THE mock: there is no phone here)."""
    calls: list[ServiceCall] = []

    async def record(call: ServiceCall) -> None:
        calls.append(call)

    hass.services.async_register("notify", name, record)
    return calls


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
    return Plant(parse_scenario(wear_plant(repair_after="1h")), start_s=None)


async def _setup_approval(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> tuple[MockConfigEntry, list[ServiceCall]]:
    phone = fake_phone(hass, "mobile_app_pixel")
    await use_blueprints(
        hass,
        (
            "approve",
            "approve_migration_on_phone.yaml",
            {"notify_service": "notify.mobile_app_pixel"},
        ),
    )
    entry = await setup_worn(
        hass, hass_storage, sim_server[0], sim_server[1], "approval", settle=False
    )
    await until(lambda: len(phone) == 1, "the notification")
    return entry, phone


async def until(check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    """Let Home Assistant run until ``check()`` holds (not ``async_block_till_done``: an
    automation waiting for a phone's answer would hold that up until its timeout)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def _press(hass: HomeAssistant, action: str) -> None:
    """What the mobile app fires when a notification button is pressed."""
    hass.bus.async_fire("mobile_app_notification_action", {"action": action})


async def test_predicted_failure_is_approved_on_the_phone(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """ATS-1 predicted to fail (approval mode): the phone gets the reason, the plan and two
    buttons; "Approve migration" runs the proposed plan, which drains ATS-1 in verified stages;
    approving it a second time is refused with the reason."""
    entry, phone = await _setup_approval(hass, hass_storage, sim_server)
    assert len(phone) == 1
    note = phone[0].data
    assert note["title"] == "ats1: migrate proposed"
    assert "circuits" in note["message"]
    assert "Plan:" in note["message"]
    buttons = note["data"]["actions"]
    assert [b["title"] for b in buttons] == ["Approve migration", "Dismiss"]
    assert sim_server[0].plant.telemetry().ats["ats1"].load_current_a > 0  # nothing moved yet

    _press(hass, buttons[0]["action"])
    await until(lambda: len(phone) == 2, "the answer")
    assert phone[1].data["title"] == "Migration started"
    manager = entry.runtime_data.migrations
    record = await manager.async_wait(manager.latest.migration_id)  # type: ignore[union-attr]
    assert record.state is MigrationState.COMPLETED
    assert record.component == "ats1"
    assert sim_server[0].plant.telemetry().ats["ats1"].load_current_a == 0.0
    proposal_id = buttons[0]["action"].removeprefix("DCP_APPROVE_")
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "approve_proposal", {"proposal_id": proposal_id}, blocking=True
        )
    assert err.value.translation_key == "proposal_stale"
    assert "already approved" in str(err.value.translation_placeholders)


async def test_a_stale_proposal_is_refused_and_the_phone_told_why(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """Someone drains ATS-1 another way before the phone answers: the approval moves nothing
    and the phone is told why."""
    entry, phone = await _setup_approval(hass, hass_storage, sim_server)
    approve = phone[0].data["data"]["actions"][0]["action"]
    response = await hass.services.async_call(
        DOMAIN, "migrate_load", {"component": "ats1"}, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    manager = entry.runtime_data.migrations
    await manager.async_wait(response["migration_id"])
    count = len(manager.records)
    _press(hass, approve)
    await until(lambda: len(phone) == 2, "the answer")
    assert phone[-1].data["title"] == "Not approved"
    assert "can no longer be approved" in phone[-1].data["message"]
    assert "no longer on mpdu1" in phone[-1].data["message"]
    assert len(manager.records) == count


async def test_dismiss_on_the_phone_drops_the_proposal(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """ "Dismiss" drops the proposal: nothing moves and a later approval is refused."""
    entry, phone = await _setup_approval(hass, hass_storage, sim_server)
    dismiss = phone[0].data["data"]["actions"][1]["action"]
    _press(hass, dismiss)
    book = book_of(entry)
    assert book is not None
    await until(lambda: not book.current, "the dismissal")
    assert not entry.runtime_data.migrations.records
    proposal_id = dismiss.removeprefix("DCP_DISMISS_")
    response = await hass.services.async_call(
        DOMAIN, "get_proposal", {"proposal_id": proposal_id}, blocking=True, return_response=True
    )
    assert response == {"proposal_id": proposal_id, "current": False, "reason": "dismissed"}


@pytest.mark.parametrize("scenario_doc", [FAILOVER_PLANT])
@pytest.mark.parametrize("plant", ["doc"], indirect=True)
async def test_failover_sends_a_critical_alert_to_every_phone(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """MPDU-1 dies without warning: both phones of the group get a critical notification naming
    it at the first poll that shows it (with MPDU-2 over its limit), and another when the
    integration rebalances."""
    phones = {name: fake_phone(hass, name) for name in ("mobile_app_a", "mobile_app_b")}
    await use_blueprints(
        hass,
        (
            "failover",
            "failover_critical_alert.yaml",
            {"notify_services": ["notify.mobile_app_a", "notify.mobile_app_b"]},
        ),
    )
    sim_server[0].advance(600)
    await init_integration.runtime_data.telemetry.async_refresh()
    await init_integration.runtime_data.forecast.async_refresh()
    await hass.async_block_till_done()
    for calls in phones.values():
        assert len(calls) == 2
        alert, rebalance = (c.data for c in calls)
        assert alert["title"] == "FAILURE: mpdu1 failed, mpdu2 over its limit"
        assert "mpdu2 carries 40.0 A, 8.0 A above its continuous limit" in alert["message"]
        assert alert["data"]["tag"].startswith("datacenter_power_alert_")
        assert rebalance["title"] == "FAILOVER: mpdu1 failed"
        assert "Rebalancing 2 circuit(s) automatically" in rebalance["message"]
        for data in (alert, rebalance):
            assert data["data"]["push"]["sound"]["critical"] == 1
            assert data["data"]["channel"] == "alarm_stream"


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
    telemetry, forecast = entry.runtime_data.telemetry, entry.runtime_data.forecast
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
