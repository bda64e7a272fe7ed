"""A person asked when no plan is safe, against the real simulator: ATS-1 wears out and mpdu2
cannot take all of its load at the P90 (``tests/plants.tight_wear_plant``). The critical repair
*Decision needed at ats1* offers the choices in numbers and runs the chosen one as a staged,
verified migration; the event comes once; the device trigger fires; ``answer_decision`` runs
an answer or refuses it with the reason; monitor mode only reports; automatic mode's no-answer
rule never goes above a limit; an answer survives a restart."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.components import automation
from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_get_device_automations,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.datacenter_power.const import CONF_DECISION_TIMEOUT, DOMAIN
from custom_components.datacenter_power.events import (
    DECISION_ANSWERED,
    EVENT_ACTIVITY,
    EVENT_DECISION_NEEDED,
)
from custom_components.datacenter_power.executor import MigrationState
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer
from tests.plants import tight_wear_plant

from .questions import answer_decision, decision_repair, only_question
from .wear import setup_worn

pytestmark = pytest.mark.usefixtures("fast_verification")


@pytest.fixture
def plant() -> Plant:
    """The tight wear plant from the start of its history (the test steps it to 12 h)."""
    return Plant(parse_scenario(tight_wear_plant()), start_s=None)


async def _setup(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    mode: str,
    **options: Any,
) -> MockConfigEntry:
    assert await async_setup_component(hass, "repairs", {})
    return await setup_worn(hass, hass_storage, *sim_server, mode, options=options)


async def test_repair_offers_the_choices_and_runs_the_chosen_staged_plan(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    hass_client: ClientSessionGenerator,
    sim_server: tuple[PlantServer, int],
) -> None:
    """Approval mode: one ``decision_needed`` event with every choice in numbers (fired once,
    not at every tick); a critical, fixable repair "Decision needed at ats1" whose fix flow is a
    menu of the choices; choosing "shed" switches the non-critical b03 off and drains ATS-1 in
    verified stages; the repair goes and the answered decision is refused as stale."""
    needed = async_capture_events(hass, EVENT_DECISION_NEEDED)
    entry = await _setup(hass, hass_storage, sim_server, "approval")
    did, _ = only_question(entry)
    assert len(needed) == 1
    data = needed[0].data
    assert data["decision_id"] == did
    assert data["component"] == "ats1"
    assert data["title"] == "Decision needed at ats1"
    assert data["choice_keys"] == ["drain_now", "keep_load", "partial_drain", "shed:b03"]
    drain_now = data["choices"][0]
    assert drain_now["within_limits"] is False
    assert drain_now["excursions"][0]["element"] == "mpdu2"
    assert drain_now["excursions"][0]["over_a"] > 0
    assert data["choices"][1]["left_a"] > 15  # keep_load: the amps at risk
    assert data["answer_by_s"] is None  # approval mode waits
    await entry.runtime_data.decisions.async_refresh()
    await hass.async_block_till_done()
    assert len(needed) == 1  # once per decision, not every tick

    issue_id = f"decision_needed_ats1_{entry.entry_id}"
    placeholders = decision_repair(hass, entry, "ats1")
    assert placeholders["component"] == "ats1"
    assert placeholders["situation"].startswith(
        "ats1: no plan keeps every receiver within its continuous limit before the drain deadline ("
    )
    assert placeholders["drain_now"].startswith("Drain now: mpdu2 up to ")  # the menu's words
    assert placeholders["shed"].startswith("Shed b03 (")
    assert "- Drain now: all 3 circuits move off ats1; at the P90 mpdu2" in placeholders["choices"]

    client = await hass_client()
    resp = await client.post(
        "/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": issue_id}
    )
    assert resp.status == 200, await resp.text()
    shown = await resp.json()
    assert shown["type"] == "menu"
    assert shown["menu_options"] == ["drain_now", "keep_load", "partial_drain", "shed"]
    resp = await client.post(
        f"/api/repairs/issues/fix/{shown['flow_id']}", json={"next_step_id": "shed"}
    )
    assert resp.status == 200, await resp.text()
    done = await resp.json()
    assert done["type"] == "create_entry", done
    manager = entry.runtime_data.migrations
    record = await manager.async_wait(manager.latest.migration_id)  # type: ignore[union-attr]
    assert record.state is MigrationState.COMPLETED, record.reason
    telemetry = sim_server[0].plant.telemetry()
    assert telemetry.ats["ats1"].load_current_a == 0.0
    assert not telemetry.circuits["b03"].output_on
    assert all(telemetry.circuits[c].output_on for c in ("a01", "a02", "a03", "b01", "b02"))
    assert telemetry.mpdus["mpdu2"].current_a <= 0.8 * 42  # within its limit
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    with pytest.raises(ServiceValidationError) as err:
        await answer_decision(hass, did, "keep_load")
    assert err.value.translation_key == "decision_stale"
    assert "answered by a person" in str(err.value.translation_placeholders)


async def test_answer_action_runs_the_partial_drain_and_refuses_what_is_not_offered(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
) -> None:
    """``answer_decision``: an unknown decision and a choice the decision does not offer are
    refused (translated, nothing moves); "partial_drain" runs what fits within every limit as a
    verified migration and is written to the activity; the decision is then closed."""
    entry = await _setup(hass, hass_storage, sim_server, "approval")
    did, q = only_question(entry)
    activity = async_capture_events(hass, EVENT_ACTIVITY)
    with pytest.raises(ServiceValidationError) as err:
        await answer_decision(hass, "0000000000", "keep_load")
    assert err.value.translation_key == "decision_unknown"
    with pytest.raises(ServiceValidationError) as err:
        await answer_decision(hass, did, "shed:a01")
    assert err.value.translation_key == "decision_unknown_choice"
    assert "partial_drain" in str(err.value.translation_placeholders)
    manager = entry.runtime_data.migrations
    assert not manager.records

    response = await answer_decision(hass, did, "partial_drain")
    record = await manager.async_wait(response["migration_id"])
    assert record.state is MigrationState.COMPLETED, record.reason
    partial = q.choice("partial_drain")
    assignment = entry.runtime_data.telemetry.data.assignment
    assert all(assignment[c] == "mpdu2" for c in partial.moved)
    assert all(assignment[c] == "mpdu1" for c in partial.left)
    answered = [e.data for e in activity if e.data["type"] == DECISION_ANSWERED]
    assert [a["choice"] for a in answered] == ["partial_drain"]
    assert answered[0]["migration_id"] == response["migration_id"]
    with pytest.raises(ServiceValidationError) as err:
        await answer_decision(hass, did, "partial_drain")
    assert err.value.translation_key == "decision_stale"


async def test_device_trigger_fires_when_a_decision_is_needed(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
) -> None:
    """ATS-1's device offers the "decision needed" trigger; an automation on it runs when the
    decision is announced."""
    entry = await _setup(hass, hass_storage, sim_server, "approval")
    device_id = entry.runtime_data.telemetry.device_id("ats1")
    assert device_id is not None
    triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, device_id)
    assert any(t["type"] == "decision_needed" for t in triggers)
    assert await async_setup_component(
        hass,
        automation.DOMAIN,
        {
            automation.DOMAIN: {
                "trigger": {
                    "platform": "device",
                    "domain": DOMAIN,
                    "device_id": device_id,
                    "type": "decision_needed",
                },
                "action": {
                    "event": "decision_seen",
                    "event_data": {"component": "{{ trigger.component }}"},
                },
            }
        },
    )
    seen = async_capture_events(hass, "decision_seen")
    book = entry.runtime_data.questions
    did, _ = only_question(entry)
    # The plant's question announced again as a new one would be (a restart announces what
    # is still open once more): released and forgotten, then the next tick.
    book.notices.release(f"decision:{did}")
    book.current.clear()
    await entry.runtime_data.decisions.async_refresh()
    await hass.async_block_till_done()
    assert [e.data["component"] for e in seen] == ["ats1"]


async def test_monitor_mode_only_reports(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
) -> None:
    """Monitor mode: the repair is raised (not fixable) and the event fired; an answer is
    refused; nothing moves."""
    needed = async_capture_events(hass, EVENT_DECISION_NEEDED)
    entry = await _setup(hass, hass_storage, sim_server, "monitor")
    did, _ = only_question(entry)
    assert len(needed) == 1
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"decision_needed_ats1_{entry.entry_id}")
    assert issue is not None
    assert not issue.is_fixable
    with pytest.raises(ServiceValidationError) as err:
        await answer_decision(hass, did, "partial_drain")
    assert err.value.translation_key == "decision_monitor_mode"
    assert not entry.runtime_data.migrations.records


async def test_automatic_no_answer_rule_never_goes_above_a_limit(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
) -> None:
    """Automatic mode (answer deadline 5 min): the engine runs the partial drain that fits at
    once, as before; nobody answers the question about the rest by its deadline, so the rule's
    fallback (keep the load: no partial drain is left) stands; drain_now never runs, nothing
    is shed, mpdu2 stays within its limit."""
    entry = await _setup(hass, hass_storage, sim_server, "automatic", **{CONF_DECISION_TIMEOUT: 5})
    activity = async_capture_events(hass, EVENT_ACTIVITY)
    manager = entry.runtime_data.migrations
    first = await manager.async_wait(manager.latest.migration_id)  # type: ignore[union-attr]
    assert first.state is MigrationState.COMPLETED  # the partial drain, within the limits
    await entry.runtime_data.telemetry.async_refresh()
    await entry.runtime_data.decisions.async_refresh()
    await hass.async_block_till_done()
    book = entry.runtime_data.questions
    did, q = only_question(entry)
    assert [c.key for c in q.choices][:2] == ["drain_now", "keep_load"]
    assert q.fallback == "keep_load"
    by = book.answer_by(did)
    assert by is not None
    assert by == book.first_seen[did] + 300
    book.first_seen[did] -= 301  # the answer deadline has passed (the stored clock)
    await entry.runtime_data.decisions.async_refresh()
    await hass.async_block_till_done()
    assert did not in book.current
    assert "no-answer rule" in book.closed[did]
    answered = [e.data for e in activity if e.data["type"] == DECISION_ANSWERED]
    assert [a["choice"] for a in answered] == ["keep_load"]
    assert answered[0]["migration_id"] is None
    assert len(manager.records) == 1  # nothing ran for it
    telemetry = sim_server[0].plant.telemetry()
    assert telemetry.circuits["b03"].output_on
    assert telemetry.mpdus["mpdu2"].current_a <= 0.8 * 42


async def test_an_answer_survives_a_restart(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
) -> None:
    """Keep the load, then the plant restarts (its entry set up again from storage): the same
    question is not raised again (no repair) and answering it again is refused as stale."""
    entry = await _setup(hass, hass_storage, sim_server, "approval")
    did, _ = only_question(entry)
    assert (await answer_decision(hass, did, "keep_load"))["migration_id"] is None
    await hass.async_block_till_done()
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    book = entry.runtime_data.questions
    assert did in book.closed
    assert did not in book.current
    assert (
        ir.async_get(hass).async_get_issue(DOMAIN, f"decision_needed_ats1_{entry.entry_id}") is None
    )
    with pytest.raises(ServiceValidationError) as err:
        await answer_decision(hass, did, "partial_drain")
    assert err.value.translation_key == "decision_stale"


async def test_a_question_no_longer_asked_after_a_restart_is_refused_as_stale(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
) -> None:
    """a01 moved by hand, then the plant restarts (its entry set up again from storage): the
    engine asks another question (another id); an answer to the one asked before the restart
    is refused as stale, with why, and nothing moves."""
    entry = await _setup(hass, hass_storage, sim_server, "approval")
    did, _ = only_question(entry)
    await hass.services.async_call(
        DOMAIN, "set_path", {"circuit": "a01", "path": "mpdu2"}, blocking=True
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    now, _ = only_question(entry)
    assert now != did
    count = len(entry.runtime_data.migrations.records)
    with pytest.raises(ServiceValidationError) as err:
        await answer_decision(hass, did, "keep_load")
    assert err.value.translation_key == "decision_stale"
    assert "no longer asked" in str(err.value.translation_placeholders)
    assert len(entry.runtime_data.migrations.records) == count
