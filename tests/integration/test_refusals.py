"""Issue 23, item 8 (first half): every refusal says its real reason, to the caller and in the
logbook; diagnostics leak no gateway address; a dismissal racing an approval loses (or wins)
cleanly; a held migration says so; ``create_dashboard`` with an unknown entry id is the caller's
error; an infeasible drain says which circuits have no other live path; a target feeding the
drained part is refused; ``dry_run`` refuses what the real call refuses. Real Home Assistant,
real simulator over Modbus TCP (the worn plant of ``wear.py`` for proposals)."""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
    get_diagnostics_for_device,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.datacenter_power import migration
from custom_components.datacenter_power.const import (
    CONF_POLICY_MODE,
    CONF_STEP_INTERVAL,
    DOMAIN,
)
from custom_components.datacenter_power.events import EVENT_ACTIVITY, EVENT_PROPOSAL, REFUSED
from custom_components.datacenter_power.executor import MigrationState
from custom_components.datacenter_power.migration import HaPlantPort
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer

from .conftest import plant_entry, set_up
from .modbus_proxy import ModbusProxy
from .wear import setup_worn, wear_plant

pytestmark = pytest.mark.usefixtures("fast_verification")

PROPOSAL_TIMEOUT_S = 30.0


async def _call(hass: HomeAssistant, service: str, data: dict[str, Any]) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN, service, data, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    return response


def _paths(server: PlantServer) -> dict[str, str]:
    tel = server.plant.telemetry()
    return {c: t.paths[t.active_path] for c, t in tel.circuits.items()}


async def _first_proposal(hass: HomeAssistant, events: list[Event]) -> Event:
    """The first proposal event (bounded wait)."""
    fired = asyncio.Event()
    remove = hass.bus.async_listen(EVENT_PROPOSAL, callback(lambda _event: fired.set()))
    try:
        async with asyncio.timeout(PROPOSAL_TIMEOUT_S):
            while not events:
                fired.clear()
                await fired.wait()
    finally:
        remove()
    return events[0]


@pytest.fixture
def plant(request: pytest.FixtureRequest, scenario_doc: dict[str, Any]) -> Plant:
    """The test plant (``scenario_doc``), or the worn one when parametrized with "worn"."""
    if getattr(request, "param", "doc") == "worn":
        return Plant(parse_scenario(wear_plant()), start_s=None)
    return Plant(parse_scenario(scenario_doc), start_s=0.0)


def _entity(hass: HomeAssistant, domain: str, suffix: str) -> str:
    ids = [s.entity_id for s in hass.states.async_all(domain) if s.entity_id.endswith(suffix)]
    assert len(ids) == 1, (suffix, ids)
    return ids[0]


# -- a. an approved proposal that cannot start says why ----------------------------------------


@pytest.mark.parametrize("plant", ["worn"], indirect=True)
async def test_an_approval_that_cannot_start_says_why_to_the_caller_and_the_logbook(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The flapping guard refuses the approved drain (its limit set to 0 here): the approval's
    error and the logbook's entry carry that reason (before: "see the logbook for the reason",
    and the logbook held only that sentence); nothing moved and the proposal is still
    current."""
    server, port = sim_server
    monkeypatch.setattr(migration, "MAX_PATH_CHANGES_PER_HOUR", 0)
    proposals = async_capture_events(hass, EVENT_PROPOSAL)
    activity = async_capture_events(hass, EVENT_ACTIVITY)
    await setup_worn(hass, hass_storage, server, port, "approval")
    first = await _first_proposal(hass, proposals)
    pid = first.data["proposal_id"]
    before = _paths(server)
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "approve_proposal", {"proposal_id": pid})
    assert err.value.translation_key == "proposal_not_started"
    reason = (err.value.translation_placeholders or {})["reason"]
    assert "flapping guard" in reason
    assert "flapping guard" in str(err.value)
    assert "logbook" not in str(err.value)
    await hass.async_block_till_done()
    refused = [e for e in activity if e.data["type"] == REFUSED]
    assert refused, [e.data["message"] for e in activity]
    assert "flapping guard" in refused[-1].data["message"]
    # The plant's approve button: the same refusal, the same reason in the logbook.
    (button,) = [s.entity_id for s in hass.states.async_all("button") if "approve" in s.entity_id]
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call("button", "press", {"entity_id": button}, blocking=True)
    assert err.value.translation_key == "proposal_not_started"
    assert "flapping guard" in str(err.value)
    await hass.async_block_till_done()
    refused = [e for e in activity if e.data["type"] == REFUSED]
    assert f"approve proposal {pid}" in refused[-1].data["message"]
    assert "flapping guard" in refused[-1].data["message"]
    assert _paths(server) == before
    status = await _call(hass, "get_proposal", {"proposal_id": pid})
    assert status["current"] is True, status


# -- c. dismiss racing approve ------------------------------------------------------------------


@pytest.mark.parametrize("plant", ["worn"], indirect=True)
async def test_dismiss_racing_approve_has_one_winner_and_the_other_says_why(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """Approve and dismiss sent at once (two taps): whichever takes the proposal first wins,
    the other is refused with the reason (before: the approved migration ran while the
    dismissal answered ``dismissed: true``). A later dismissal is refused too."""
    server, port = sim_server
    proposals = async_capture_events(hass, EVENT_PROPOSAL)
    entry = await setup_worn(hass, hass_storage, server, port, "approval")
    pid = (await _first_proposal(hass, proposals)).data["proposal_id"]
    approve, dismiss = await asyncio.gather(
        _call(hass, "approve_proposal", {"proposal_id": pid}),
        _call(hass, "dismiss_proposal", {"proposal_id": pid}),
        return_exceptions=True,
    )
    manager = entry.runtime_data.migrations
    if isinstance(approve, dict):  # the approval took it first
        assert isinstance(dismiss, ServiceValidationError), dismiss
        assert dismiss.translation_key == "proposal_not_dismissed"
        assert "already approved" in str(dismiss)
        await manager.async_wait(str(approve["migration_id"]))  # it ran, not dismissed
        with pytest.raises(ServiceValidationError) as again:
            await _call(hass, "dismiss_proposal", {"proposal_id": pid})
        assert f"migration {approve['migration_id']}" in str(again.value)
    else:  # the dismissal took it first
        assert isinstance(dismiss, dict), dismiss
        assert isinstance(approve, ServiceValidationError), approve
        assert "dismissed" in str(approve)
        assert not manager.records


# -- d. a held migration shows held -------------------------------------------------------------


async def test_a_held_migration_shows_held_on_the_migration_sensor(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """Interrupted by a restart in approval mode, a migration is held for a person: the sensor
    says ``held`` (before: ``aborted``, as if it were over); once cancelled, ``aborted``."""
    entry = plant_entry(
        base=mock_config_entry, options={CONF_STEP_INTERVAL: 600, CONF_POLICY_MODE: "approval"}
    )
    assert await set_up(hass, entry)
    manager = entry.runtime_data.migrations
    started = await _call(hass, "migrate_load", {"component": "mpdu1", "max_step_amps": 6})
    migration_id = started["migration_id"]
    while manager.records[migration_id].completed_stages < 1:
        await manager.async_wait_progress()
    assert await hass.config_entries.async_unload(entry.entry_id)  # "restart"
    await hass.async_block_till_done()
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    manager = entry.runtime_data.migrations
    assert [r.migration_id for r in manager.held()] == [migration_id]
    sensor = _entity(hass, "sensor", "load_migration")
    state = hass.states.get(sensor)
    assert state is not None
    assert state.state == "held"
    assert state.attributes["migration_id"] == migration_id
    assert "held" in state.attributes["options"]
    await _call(hass, "cancel_migration", {"migration_id": migration_id})
    await hass.async_block_till_done()
    state = hass.states.get(sensor)
    assert state is not None
    assert state.state == MigrationState.ABORTED.value
    # The person decided: the held repair goes and is not raised again.
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"migration_held_{migration_id}") is None


# -- b. diagnostics leak no address -------------------------------------------------------------


async def test_diagnostics_redact_addresses_inside_errors_and_reasons(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    split_server: PlantServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second gateway (a proxy on 127.0.0.1:PORT in front of the simulator) goes away just
    as a drain of mpdu2 sends its command: the migration's reason and its devices' errors name
    127.0.0.1:PORT. Neither the host nor host:port appears anywhere in the diagnostics (before:
    only the ``host`` fields were redacted)."""
    second = ModbusProxy(split_server.ports[1])
    port = await second.start()
    try:
        entry = plant_entry(
            split_server.ports[0], options={CONF_STEP_INTERVAL: 0}, more_gateways=[port]
        )
        assert await set_up(hass, entry)
        assert entry.state is ConfigEntryState.LOADED
        real = HaPlantPort.set_path

        async def gateway_lost(self: HaPlantPort, circuit_id: str, mpdu_id: str) -> None:
            await second.stop()  # the second gateway goes away just as the command is sent
            await real(self, circuit_id, mpdu_id)

        monkeypatch.setattr(HaPlantPort, "set_path", gateway_lost)
        started = await _call(hass, "migrate_load", {"component": "mpdu2"})
        record = await entry.runtime_data.migrations.async_wait(started["migration_id"])
        assert record.state is MigrationState.ROLLED_BACK, record
        address = f"127.0.0.1:{port}"
        assert address in (record.reason or ""), record.reason
        telemetry = entry.runtime_data.telemetry
        await telemetry.async_refresh()
        assert any(address in why for why in telemetry.data.errors.values()), telemetry.data
        result = await get_diagnostics_for_config_entry(hass, hass_client, entry)
        text = json.dumps(result)
        assert "127.0.0.1" not in text
        assert str(port) not in text.replace(f'"port": {port}', "")
        assert "**REDACTED**" in json.dumps(result["migrations"])
        assert "**REDACTED**" in json.dumps(result["errors"])
        device = telemetry.device_id("mpdu2")
        found = dr.async_get(hass).async_get(device or "")
        assert found is not None
        one = await get_diagnostics_for_device(hass, hass_client, entry, found)
        assert "127.0.0.1" not in json.dumps(one)
        assert "**REDACTED**" in str(one["error"])
    finally:
        await second.stop()


# -- e. create_dashboard with an unknown entry id -----------------------------------------------


async def test_create_dashboard_with_an_unknown_entry_is_refused_not_a_server_error(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Over the REST API an unknown ``config_entry_id`` answers 400 with the reason, and
    nothing is logged at ERROR (before: HTTP 500 and an ERROR in the log)."""
    assert await async_setup_component(hass, "api", {})
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "create_dashboard", {"config_entry_id": "no-such-entry"})
    assert err.value.translation_key == "unknown_plant"
    assert "no-such-entry" in str(err.value)
    client = await hass_client()
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        response = await client.post(
            f"/api/services/{DOMAIN}/create_dashboard", json={"config_entry_id": "no-such-entry"}
        )
    assert response.status == HTTPStatus.BAD_REQUEST, await response.text()
    assert "no-such-entry" in (await response.json())["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# -- f. no path, and a target feeding the drained part ------------------------------------------


@pytest.fixture
def critical_c04(scenario_doc: dict[str, Any]) -> None:
    """c04 (only path: mpdu2) is critical, so mpdu2 cannot be drained."""
    scenario_doc["circuits"][3]["critical"] = True


@pytest.mark.usefixtures("critical_c04")
async def test_a_drain_with_no_path_says_which_circuits_have_none(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """c04's only path is mpdu2: draining mpdu2 is refused because c04 has no other live path,
    not because "mpdu2 would be 3 A above its limit" (before)."""
    plan = await _call(hass, "plan_migration", {"component": "mpdu2"})
    assert plan["feasible"] is False
    assert plan["no_path"] == ["c04"]
    assert plan["element"] is None
    assert "above" not in plan["summary"]
    assert "c04" in plan["summary"]
    before = _paths(sim_server[0])
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "migrate_load", {"component": "mpdu2"})
    assert err.value.translation_key == "infeasible"
    message = str(err.value)
    assert "above its continuous limit" not in message
    assert "c04 has no other live path" in message
    assert "every path it has goes through mpdu2" in message
    assert _paths(sim_server[0]) == before


@pytest.mark.parametrize("plant", ["worn"], indirect=True)
async def test_a_drain_whose_other_paths_are_not_live_names_each_and_why(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """ATS-1 is predicted to fail: b01-b03 (paths mpdu2, mpdu1) cannot leave mpdu2, whose
    drain is refused naming them and why their other path is out (before: "mpdu2 would be
    15 A above its continuous limit")."""
    server, port = sim_server
    entry = await setup_worn(hass, hass_storage, server, port, "monitor")
    decisions = entry.runtime_data.decisions.data
    assert decisions is not None
    assert "ats1" in decisions.alerts
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "migrate_load", {"component": "mpdu2"})
    message = str(err.value)
    assert "above its continuous limit" not in message
    assert "b01, b02, b03 have no other live path" in message
    assert "b01: mpdu1 is fed by ats1, which is predicted to fail" in message
    plan = await _call(hass, "plan_migration", {"component": "mpdu2"})
    assert plan["no_path"] == ["b01", "b02", "b03"]


async def test_a_target_feeding_the_drained_part_is_refused_with_that_reason(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """Draining mpdu1 onto ats1 (which feeds mpdu1) is refused as such (before: "no safe plan:
    mpdu1 would be 9 A above its continuous limit")."""
    before = _paths(sim_server[0])
    for service in ("plan_migration", "migrate_load"):
        with pytest.raises(ServiceValidationError) as err:
            await _call(hass, service, {"component": "mpdu1", "target": "ats1"})
        assert err.value.translation_key == "target_feeds_component"
        assert "ats1 feeds mpdu1" in str(err.value)
        assert "above" not in str(err.value)
    assert _paths(sim_server[0]) == before


# -- g. dry_run refuses what the real call refuses ---------------------------------------------


async def test_dry_run_is_refused_by_the_flapping_guard_like_the_real_call(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the flapping guard's limit at 0 the real drain is refused, and so is its dry run
    (before: the dry run returned a plan the real call then refused)."""
    monkeypatch.setattr(migration, "MAX_PATH_CHANGES_PER_HOUR", 0)
    for dry_run in (True, False):
        with pytest.raises(ServiceValidationError) as err:
            await _call(hass, "migrate_load", {"component": "mpdu1", "dry_run": dry_run})
        assert err.value.translation_key == "flapping_guard"
    assert not init_integration.runtime_data.migrations.records


async def test_dry_run_is_refused_while_a_migration_moves_the_same_circuits(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A drain of mpdu1 runs (one stage, then 10 minutes between stages): a dry run of the
    same drain is refused as the real one would be (the circuits are moving)."""
    manager = init_integration.runtime_data.migrations
    started = await _call(
        hass, "migrate_load", {"component": "mpdu1", "max_step_amps": 6, "step_interval": 600}
    )
    migration_id = started["migration_id"]
    while manager.records[migration_id].completed_stages < 1:
        await manager.async_wait_progress()
    for dry_run in (True, False):
        with pytest.raises(ServiceValidationError) as err:
            await _call(hass, "migrate_load", {"component": "mpdu1", "dry_run": dry_run})
        assert err.value.translation_key in ("migration_overlap", "migration_opposite")
    manager.cancel(migration_id)
    await manager.async_wait(migration_id)
