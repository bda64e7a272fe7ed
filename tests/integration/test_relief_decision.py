"""A person asked when no relief fits, against the real simulator: a tight hall whose mpdu1 is
forecast above its continuous limit while mpdu2 has room for a small circuit only
(``tests/plants.tight_hall_plant``). The critical repair *Decision needed at mpdu1* and the
``datacenter_power_decision_needed`` event offer keep the load, the partial relief and shedding
the non-critical a05 in numbers; the chosen one runs (a staged, verified migration; the shed
through the command path); automatic mode's no-answer rule keeps the load and sheds nothing.

The integration decides once at set-up (one forecast refresh); the relief rule wants the
crossing confirmed at two, so the policy here asks for one confirmation (``policy_config``
with ``relieve_confirmations=1``): everything else is the integration's own configuration."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.datacenter_power import decisions as decisions_module
from custom_components.datacenter_power.const import (
    CONF_DECISION_TIMEOUT,
    CONF_POLICY_MODE,
    CONF_STEP_INTERVAL,
    DOMAIN,
)
from custom_components.datacenter_power.events import (
    DECISION_ANSWERED,
    EVENT_ACTIVITY,
    EVENT_DECISION_NEEDED,
)
from custom_components.datacenter_power.executor import MigrationState
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer
from tests.plants import tight_hall_plant

from .conftest import history_rows, plant_entry, store_history
from .questions import answer_decision, decision_repair, only_question

pytestmark = pytest.mark.usefixtures("fast_verification")

NOW_T_S = 11 * 3600.0
"""Where the served plant stands when Home Assistant starts: mpdu1's P90 crosses its limit
within the relief's lead; its measured load is still within it."""


@pytest.fixture
def plant() -> Plant:
    """The tight hall from the start of its history (the test steps it to 11 h)."""
    return Plant(parse_scenario(tight_hall_plant()), start_s=None)


@pytest.fixture(autouse=True)
def one_confirmation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The relief acts on the crossing of the first forecast refresh (see the module)."""
    configured = decisions_module.policy_config
    monkeypatch.setattr(
        decisions_module,
        "policy_config",
        lambda entry: replace(configured(entry), relieve_confirmations=1),
    )


async def _setup(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    mode: str,
    **options: Any,
) -> MockConfigEntry:
    assert await async_setup_component(hass, "repairs", {})
    server, port = sim_server
    rows = history_rows(server, NOW_T_S)
    entry = plant_entry(
        port,
        options={CONF_STEP_INTERVAL: 0, CONF_POLICY_MODE: mode, **options},
        title="Tight hall",
    )
    store_history(hass_storage, entry, rows)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def test_repair_offers_the_relief_choices_and_runs_the_partial_relief(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    hass_client: ClientSessionGenerator,
    sim_server: tuple[PlantServer, int],
) -> None:
    """Approval mode: one ``decision_needed`` event about mpdu1 (kind relief) with the choices
    in numbers; the critical, fixable repair "Decision needed at mpdu1" whose fix flow is a menu
    of them; choosing the partial relief moves a01 onto mpdu2 in verified stages, mpdu2 stays
    within its limit; the repair goes and the answered decision is refused as stale."""
    needed = async_capture_events(hass, EVENT_DECISION_NEEDED)
    entry = await _setup(hass, hass_storage, sim_server, "approval")
    did, q = only_question(entry)
    assert q.kind == "relief"
    assert len(needed) == 1
    data = needed[0].data
    assert data["decision_id"] == did
    assert data["kind"] == "relief"
    assert data["component"] == "mpdu1"
    assert data["title"] == "Decision needed at mpdu1"
    assert data["choice_keys"] == ["keep_load", "partial_relief", "shed:a05"]
    assert data["message"].startswith("mpdu1: forecast above its continuous limit from ")
    keep = data["choices"][0]
    assert keep["excursions"][0]["element"] == "mpdu1"
    assert keep["excursions"][0]["over_a"] > 0
    assert data["choices"][1]["moved"] == ["a01"]
    assert [c["title"] for c in data["choices"]] == ["Keep the load", "Partial relief", "Shed a05"]
    await entry.runtime_data.decisions.async_refresh()
    await hass.async_block_till_done()
    assert len(needed) == 1  # once per decision, not every tick

    issue_id = f"decision_needed_mpdu1_{entry.entry_id}"
    placeholders = decision_repair(hass, entry, "mpdu1")
    assert placeholders["situation"].startswith("mpdu1: forecast above its continuous limit")
    assert placeholders["keep_load"].startswith("Keep the load: mpdu1 ")
    assert placeholders["partial_relief"].startswith("Partial relief: 1 circuit (")
    assert placeholders["shed"].startswith("Shed a05 (")
    assert placeholders["drain_now"] == "not offered"

    client = await hass_client()
    resp = await client.post(
        "/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": issue_id}
    )
    assert resp.status == 200, await resp.text()
    shown = await resp.json()
    assert shown["type"] == "menu"
    assert shown["menu_options"] == ["keep_load", "partial_relief", "shed"]
    resp = await client.post(
        f"/api/repairs/issues/fix/{shown['flow_id']}", json={"next_step_id": "partial_relief"}
    )
    assert resp.status == 200, await resp.text()
    done = await resp.json()
    assert done["type"] == "create_entry", done
    manager = entry.runtime_data.migrations
    record = await manager.async_wait(manager.latest.migration_id)  # type: ignore[union-attr]
    assert record.state is MigrationState.COMPLETED, record.reason
    telemetry = sim_server[0].plant.telemetry()
    a01 = telemetry.circuits["a01"]
    assert a01.paths[a01.active_path] == "mpdu2"
    assert all(c.output_on for c in telemetry.circuits.values())
    assert telemetry.mpdus["mpdu2"].current_a <= 0.8 * 50
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert did in entry.runtime_data.questions.closed


async def test_answer_shed_switches_the_named_circuit_off(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
) -> None:
    """``answer_decision`` with ``shed:a05``: the non-critical a05 is switched off through the
    command path (nothing else needs to move: no migration), mpdu1's load falls by its amps,
    every other circuit stays on, and the decision is closed."""
    entry = await _setup(hass, hass_storage, sim_server, "approval")
    did, _ = only_question(entry)
    before = sim_server[0].plant.telemetry()
    response = await answer_decision(hass, did, "shed:a05")
    assert response["migration_id"] is None
    after = sim_server[0].plant.telemetry()
    assert not after.circuits["a05"].output_on
    assert all(c.output_on for cid, c in after.circuits.items() if cid != "a05")
    assert after.mpdus["mpdu1"].current_a < before.mpdus["mpdu1"].current_a - 5
    assert did in entry.runtime_data.questions.closed
    assert not entry.runtime_data.migrations.records


async def test_automatic_no_answer_rule_keeps_the_load_and_sheds_nothing(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
) -> None:
    """Automatic mode (answer deadline 5 min): no relief fits, so nothing runs; nobody answers
    by the deadline and the rule's fallback (keep the load: the engine runs no partial relief
    itself) stands; nothing is shed, nothing moves, mpdu2 stays within its limit."""
    entry = await _setup(hass, hass_storage, sim_server, "automatic", **{CONF_DECISION_TIMEOUT: 5})
    activity = async_capture_events(hass, EVENT_ACTIVITY)
    book = entry.runtime_data.questions
    did, q = only_question(entry)
    assert q.fallback == "keep_load"
    assert book.answer_by(did) == book.first_seen[did] + 300
    book.first_seen[did] -= 301  # the answer deadline has passed (the stored clock)
    await entry.runtime_data.decisions.async_refresh()
    await hass.async_block_till_done()
    assert did not in book.current
    assert "no-answer rule" in book.closed[did]
    answered = [e.data for e in activity if e.data["type"] == DECISION_ANSWERED]
    assert [a["choice"] for a in answered] == ["keep_load"]
    assert not entry.runtime_data.migrations.records
    telemetry = sim_server[0].plant.telemetry()
    assert all(c.output_on for c in telemetry.circuits.values())
    a01 = telemetry.circuits["a01"]
    assert a01.paths[a01.active_path] == "mpdu1"
    assert telemetry.mpdus["mpdu2"].current_a <= 0.8 * 50
