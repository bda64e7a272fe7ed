"""Repairs against the real simulator: a predicted failure raises a repair with its evidence,
recommendation and staged plan, fixed through Home Assistant's repairs API (the plan runs); it
clears when the unit is repaired. A held or failed migration and an ATS's inhibit raise their
own; each clears when its condition goes and comes back when it returns."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.const import ATTR_ENTITY_ID, SERVICE_TURN_OFF, SERVICE_TURN_ON
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.datacenter_power.const import CONF_STEP_INTERVAL, DOMAIN
from custom_components.datacenter_power.executor import MigrationState
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer

from .wear import setup_worn, wear_plant

pytestmark = pytest.mark.usefixtures("fast_verification")


@pytest.fixture
def plant(request: pytest.FixtureRequest, scenario_doc: dict[str, Any]) -> Plant:
    """The small plant, or (marked ``worn``) ATS-1 wearing out and repaired 1 h after failing."""
    if getattr(request, "param", None) == "worn":
        return Plant(parse_scenario(wear_plant(repair_after="1h")), start_s=None)
    return Plant(parse_scenario(scenario_doc), start_s=0.0)


async def _fix(client: Any, issue_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Open the issue's fix flow as the frontend does, then confirm; returns both answers."""
    resp = await client.post(
        "/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": issue_id}
    )
    assert resp.status == 200, await resp.text()
    shown: dict[str, Any] = await resp.json()
    if shown["type"] != "form":
        return shown, shown
    resp = await client.post(f"/api/repairs/issues/fix/{shown['flow_id']}", json={})
    assert resp.status == 200, await resp.text()
    done: dict[str, Any] = await resp.json()
    return shown, done


@pytest.mark.parametrize("plant", ["worn"], indirect=True)
async def test_predicted_failure_repair_shows_evidence_and_runs_the_plan(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    hass_client: ClientSessionGenerator,
    sim_server: tuple[PlantServer, int],
) -> None:
    """Approval mode, 11 h into ATS-1's wear: a critical repair names the signals, the time to
    failure and what to do, and shows the staged plan; confirming it drains ATS-1 in verified
    stages. The repair stays (still worn, no longer fixable: nothing left to move) until ATS-1
    fails and is repaired, then it goes."""
    assert await async_setup_component(hass, "repairs", {})
    server, port = sim_server
    entry = await setup_worn(hass, hass_storage, server, port, "approval")
    registry = ir.async_get(hass)
    issue_id = f"failure_predicted_ats1_{entry.entry_id}"
    issue = registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.CRITICAL  # fails at 16 h, now 12 h
    assert issue.is_fixable
    ph = issue.translation_placeholders or {}
    assert "contact temperature" in ph["signals"]
    # The conservative figure first (what plans use), then the likely one.
    assert ph["time_to_failure"].startswith("possibly within ")
    assert "most likely about " in ph["time_to_failure"]
    assert ph["time_to_failure"].endswith("hours")
    assert "contacts" in ph["recommendation"]
    assert "Stage 1" in ph["plan"]
    assert "At the forecast peak afterwards: mpdu2" in ph["plan"]
    assert registry.async_get_issue(DOMAIN, f"failure_predicted_ats2_{entry.entry_id}") is None
    assert server.plant.telemetry().ats["ats1"].load_current_a > 0  # approval: nothing moved

    client = await hass_client()
    shown, done = await _fix(client, issue_id)
    assert shown["step_id"] == "confirm"
    assert "Stage 1" in shown["description_placeholders"]["plan"]
    # the form that asks for confirmation says why, not only what
    assert "contacts" in shown["description_placeholders"]["recommendation"]
    assert "contact temperature" in shown["description_placeholders"]["signals"]
    assert done["type"] == "create_entry"
    manager = entry.runtime_data.migrations
    record = await manager.async_wait(manager.latest.migration_id)  # type: ignore[union-attr]
    assert record.state is MigrationState.COMPLETED
    assert record.component == "ats1"
    await entry.runtime_data.telemetry.async_refresh()
    assert server.plant.telemetry().ats["ats1"].load_current_a == 0.0
    issue = registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None  # still predicted to fail
    assert not issue.is_fixable
    assert "drained" in (issue.translation_placeholders or {})["plan"]

    # ATS-1 fails at 16 h (nothing on it), is repaired 1 h later: the condition goes.
    forecast, telemetry = entry.runtime_data.decisions, entry.runtime_data.telemetry
    server.advance(16.5 * 3600 - server.plant.t_s)
    await telemetry.async_refresh()
    await forecast.async_refresh()
    assert not server.plant.telemetry().ats["ats1"].output_energized
    server.advance(3600)
    await telemetry.async_refresh()
    await forecast.async_refresh()
    await hass.async_block_till_done()
    assert server.plant.telemetry().ats["ats1"].output_energized
    assert not forecast.data.assessments["ats1"].alert
    assert registry.async_get_issue(DOMAIN, issue_id) is None
    assert server.plant.metrics.interruptions == 0


async def _inhibit(hass: HomeAssistant, on: bool) -> None:
    await hass.services.async_call(
        "switch",
        SERVICE_TURN_ON if on else SERVICE_TURN_OFF,
        {ATTR_ENTITY_ID: "switch.ats_ats1_auto_transfer_inhibit"},
        blocking=True,
    )


async def test_inhibit_warning_comes_and_goes_with_the_inhibit(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Inhibit on: a warning names the circuits left without a backup source; off: it goes;
    on again: it is back."""
    registry = ir.async_get(hass)
    issue_id = f"inhibit_on_ats1_{init_integration.entry_id}"
    assert registry.async_get_issue(DOMAIN, issue_id) is None
    await _inhibit(hass, True)
    issue = registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.WARNING
    ph = issue.translation_placeholders or {}
    assert ph["circuits"] == "c01, c02"
    assert ph["critical"] == "c01, c02"
    assert float(ph["amps"]) > 5.0
    await _inhibit(hass, False)
    assert registry.async_get_issue(DOMAIN, issue_id) is None
    await _inhibit(hass, True)
    assert registry.async_get_issue(DOMAIN, issue_id) is not None


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """Migration steps back to back."""
    return {CONF_STEP_INTERVAL: 0}


async def test_failed_verification_repair_replans_and_clears(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stage whose SBM does not move (a stuck relay in the simulator) is rolled back and a
    repair says so; once the relay works, the repair's flow plans the drain again and runs it,
    and the repair goes."""
    assert await async_setup_component(hass, "repairs", {})
    real = Plant.command_sbm_path

    def stuck(plant: Plant, circuit_id: str, path: str | int) -> None:
        if circuit_id != "c02":
            real(plant, circuit_id, path)

    monkeypatch.setattr(Plant, "command_sbm_path", stuck)
    response = await hass.services.async_call(
        DOMAIN, "migrate_load", {"component": "mpdu1", "max_step_amps": 6}, blocking=True,
        return_response=True,
    )  # fmt: skip
    assert isinstance(response, dict)
    manager = init_integration.runtime_data.migrations
    record = await manager.async_wait(response["migration_id"])
    assert record.state is MigrationState.ROLLED_BACK
    registry = ir.async_get(hass)
    issue_id = f"migration_failed_mpdu1_{init_integration.entry_id}"
    issue = registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.is_fixable
    assert "c02 reports path mpdu1" in (issue.translation_placeholders or {})["reason"]

    monkeypatch.setattr(Plant, "command_sbm_path", real)  # the relay is fixed
    shown, done = await _fix(await hass_client(), issue_id)
    assert "c02" in shown["description_placeholders"]["plan"]
    assert done["type"] == "create_entry"
    record = await manager.async_wait(manager.latest.migration_id)  # type: ignore[union-attr]
    assert record.state is MigrationState.COMPLETED
    await hass.async_block_till_done()
    assert registry.async_get_issue(DOMAIN, issue_id) is None
    tel = sim_server[0].plant.telemetry()
    assert tel.mpdus["mpdu1"].current_a == 0.0
