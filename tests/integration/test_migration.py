"""Staged migration in Home Assistant: the actions, their validation, execution against the
simulator, rollback, cancel, concurrency, admin-only access, restart mid-migration, failover."""

from __future__ import annotations

from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError, Unauthorized
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.datacenter_power.const import (
    CONF_POLICY_MODE,
    CONF_STEP_INTERVAL,
    DOMAIN,
)
from custom_components.datacenter_power.events import (
    EVENT_ACTIVITY,
    EVENT_FAILOVER,
    EVENT_MIGRATION_FINISHED,
    EVENT_MIGRATION_STEP,
    REFUSED,
)
from custom_components.datacenter_power.executor import MigrationState
from dcp_sim.plant import Plant
from dcp_sim.server import PlantServer
from tests.plants import circuit, two_ats_plant

from .conftest import plant_entry, set_up

pytestmark = pytest.mark.usefixtures("fast_verification")


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """Migration steps back to back."""
    return {CONF_STEP_INTERVAL: 0}


async def _call(
    hass: HomeAssistant, service: str, data: dict[str, Any], context: Context | None = None
) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN, service, data, blocking=True, return_response=True, context=context
    )
    assert isinstance(response, dict)
    return response


def _paths(server: PlantServer) -> dict[str, str]:
    tel = server.plant.telemetry()
    return {c: t.paths[t.active_path] for c, t in tel.circuits.items()}


async def test_plan_migration_returns_the_staged_plan(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """A plan is returned and nothing is switched."""
    before = _paths(sim_server[0])
    plan = await _call(hass, "plan_migration", {"component": "mpdu1", "max_step_amps": 6})
    assert plan["feasible"] is True
    moved = {m["circuit"]: m["to_mpdu"] for step in plan["steps"] for m in step["moves"]}
    assert moved == {"c01": "mpdu2", "c02": "mpdu2"}
    assert len(plan["steps"]) == 2  # 5 A and 4 A (+10 % margin) do not fit one 6 A step
    assert _paths(sim_server[0]) == before


async def test_migrate_load_moves_the_circuits_in_verified_stages(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """Both circuits leave mpdu1 without an interruption; events and sensor follow."""
    steps = async_capture_events(hass, EVENT_MIGRATION_STEP)
    finished = async_capture_events(hass, EVENT_MIGRATION_FINISHED)
    server = sim_server[0]
    response = await _call(hass, "migrate_load", {"component": "mpdu1", "max_step_amps": 6})
    migration_id = response["migration_id"]
    manager = init_integration.runtime_data.migrations
    record = await manager.async_wait(migration_id)
    assert record.state is MigrationState.COMPLETED
    assert record.completed_stages == 2
    paths = _paths(server)
    assert (paths["c01"], paths["c02"]) == ("mpdu2", "mpdu2")
    assert server.plant.metrics.interruptions == 0
    assert server.plant.telemetry().mpdus["mpdu1"].current_a == 0.0
    await hass.async_block_till_done()
    assert steps[0].data["note"] == "stage 1/2"
    assert finished[-1].data["state"] == "completed"
    assert finished[-1].data["migration_id"] == migration_id
    sensor = [s for s in hass.states.async_all("sensor") if s.entity_id.endswith("load_migration")]
    assert sensor
    assert sensor[0].state == "completed"
    assert sensor[0].attributes["progress"] == 100


async def test_a_finished_migration_is_decided_on_at_the_next_poll(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Once a migration ends, the next telemetry poll is decided on at once (forecast bands re-
    summed for the new lineup, next plan), not at the forecast's slow interval (5 min, during
    which the bands kept the old lineup's sums beside the new readings). A poll without a
    finished migration decides nothing."""
    telemetry = init_integration.runtime_data.telemetry
    forecast = init_integration.runtime_data.decisions
    before = forecast.data
    await telemetry.async_refresh()
    await hass.async_block_till_done(wait_background_tasks=True)
    assert forecast.data is before
    response = await _call(hass, "migrate_load", {"component": "mpdu1", "max_step_amps": 10})
    record = await init_integration.runtime_data.migrations.async_wait(response["migration_id"])
    assert record.state is MigrationState.COMPLETED
    await hass.async_block_till_done(wait_background_tasks=True)
    assert forecast.data is before  # the new lineup is known to the policy only at a poll
    await telemetry.async_refresh()
    await hass.async_block_till_done(wait_background_tasks=True)
    after = forecast.data
    assert after is not before
    assert after.t_s > before.t_s
    assert forecast.policy.assignment["c01"] == forecast.policy.assignment["c02"] == "mpdu2"
    await telemetry.async_refresh()  # once only
    await hass.async_block_till_done(wait_background_tasks=True)
    assert forecast.data is after


async def test_dry_run_plans_without_switching(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """``dry_run`` returns the plan and no migration id."""
    before = _paths(sim_server[0])
    response = await _call(hass, "migrate_load", {"component": "ats1", "dry_run": True})
    assert response["migration_id"] is None
    assert response["plan"]["feasible"] is True
    assert _paths(sim_server[0]) == before


@pytest.mark.parametrize(
    ("service", "data", "key"),
    [
        ("plan_migration", {"component": "nope"}, "unknown_component"),
        ("migrate_load", {"component": "c01"}, "not_a_source"),
        ("migrate_load", {"component": "mpdu1", "target": "mpdu1"}, "target_is_source"),
        ("cancel_migration", {"migration_id": "nope"}, "unknown_migration"),
        ("get_forecast", {"component": "nope"}, "unknown_component"),
        ("restore", {"component": "c01"}, "not_a_source"),
    ],
)
async def test_invalid_calls_are_refused_with_a_translated_error(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    service: str,
    data: dict[str, Any],
    key: str,
) -> None:
    """Every invalid call raises ServiceValidationError before anything is commanded."""
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, service, data, blocking=True, return_response=True)
    assert err.value.translation_key == key
    assert str(err.value)  # the translated message exists and renders


@pytest.fixture
def critical_c04(scenario_doc: dict[str, Any]) -> None:
    """c04 (only path: mpdu2) is critical, so mpdu2 cannot be drained."""
    scenario_doc["circuits"][3]["critical"] = True


@pytest.mark.usefixtures("critical_c04")
async def test_infeasible_plan_says_which_circuit_and_migrate_refuses(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """plan_migration answers (feasible false, naming c04) where migrate_load refuses."""
    plan = await _call(hass, "plan_migration", {"component": "mpdu2"})
    assert plan["feasible"] is False
    assert "c04" in plan["reason"]
    before = _paths(sim_server[0])
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "migrate_load", {"component": "mpdu2"})
    assert err.value.translation_key == "infeasible"
    assert "c04" in str(err.value)
    assert _paths(sim_server[0]) == before


async def test_mutating_actions_are_admin_only(
    hass: HomeAssistant, init_integration: MockConfigEntry, hass_read_only_user: Any
) -> None:
    """A non-admin user may plan but not migrate, cancel, isolate or restore."""
    context = Context(user_id=hass_read_only_user.id)
    plan = await _call(hass, "plan_migration", {"component": "mpdu1"}, context)
    assert plan["feasible"] is True
    for service in ("migrate_load", "isolate", "restore"):
        with pytest.raises(Unauthorized):
            await _call(hass, service, {"component": "mpdu1"}, context)
    with pytest.raises(Unauthorized):
        await _call(hass, "cancel_migration", {}, context)


async def test_every_acting_action_refuses_a_non_admin_and_the_activity_says_so(
    hass: HomeAssistant, init_integration: MockConfigEntry, hass_read_only_user: Any
) -> None:
    """Each action that acts (``@recorded_action``) refuses a user who is not an administrator,
    before it does anything, and writes the refusal to the activity with that reason."""
    context = Context(user_id=hass_read_only_user.id)
    refused = async_capture_events(hass, EVENT_ACTIVITY)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("migrate_load", {"component": "mpdu1"}),
        ("cancel_migration", {}),
        ("isolate", {"component": "mpdu1"}),
        ("restore", {"component": "mpdu1"}),
        ("set_path", {"circuit": "c01", "path": "mpdu2"}),
        ("approve_proposal", {"proposal_id": "abc"}),
        ("dismiss_proposal", {"proposal_id": "abc"}),
        ("create_dashboard", {}),
    ]
    for service, data in calls:
        with pytest.raises(Unauthorized):
            await _call(hass, service, data, context)
    await hass.async_block_till_done()
    whys = {
        e.data["what"].split("(")[0]: e.data["why"] for e in refused if e.data["type"] == REFUSED
    }
    assert whys == {f"{DOMAIN}.{service}": "not an administrator" for service, _ in calls}
    assert not init_integration.runtime_data.migrations.records


async def test_a_stage_that_does_not_verify_is_rolled_back(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second stage's SBM accepts the command but does not move (a stuck relay, injected
    into the simulator); that stage is rolled back and the first, verified stage stays."""
    server = sim_server[0]
    plan = await _call(hass, "plan_migration", {"component": "mpdu1", "max_step_amps": 6})
    first, second = (step["moves"][0]["circuit"] for step in plan["steps"])
    real = Plant.command_sbm_path

    def stuck(plant: Plant, circuit_id: str, path: str | int) -> None:
        if circuit_id != second:
            real(plant, circuit_id, path)

    monkeypatch.setattr(Plant, "command_sbm_path", stuck)
    response = await _call(hass, "migrate_load", {"component": "mpdu1", "max_step_amps": 6})
    record = await init_integration.runtime_data.migrations.async_wait(response["migration_id"])
    assert record.state is MigrationState.ROLLED_BACK
    assert record.completed_stages == 1
    assert record.reason == f"{second} reports path mpdu1, expected mpdu2"
    paths = _paths(server)
    assert (paths[first], paths[second]) == ("mpdu2", "mpdu1")
    assert server.plant.metrics.interruptions == 0


async def test_cancel_stops_at_the_next_safe_point_and_overlaps_are_refused(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
) -> None:
    """With a long pause between stages: a second migration of the same circuits is refused,
    and cancel stops after the verified first stage."""
    entry = plant_entry(base=mock_config_entry, options={CONF_STEP_INTERVAL: 600})
    assert await set_up(hass, entry)
    manager = entry.runtime_data.migrations
    first = await _call(hass, "migrate_load", {"component": "mpdu1", "max_step_amps": 6})
    record = manager.records[first["migration_id"]]
    while record.completed_stages < 1:
        await hass.async_block_till_done()
        await manager.async_wait_progress()
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "migrate_load", {"component": "ats1", "max_step_amps": 6})
    assert err.value.translation_key == "migration_overlap"
    cancelled = await _call(hass, "cancel_migration", {})
    assert cancelled["cancelled"] == [first["migration_id"]]
    record = await manager.async_wait(first["migration_id"])
    assert record.state is MigrationState.ABORTED
    assert record.completed_stages == 1
    paths = _paths(sim_server[0])
    assert sorted((paths["c01"], paths["c02"])) == ["mpdu1", "mpdu2"]


@pytest.mark.parametrize("mode", ["monitor", "approval", "automatic"])
async def test_restart_mid_migration_holds_or_resumes(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    mode: str,
) -> None:
    """Unloading mid-migration persists it; on the next start it is reconciled with the real
    SBM positions and either held with a repair issue (monitor, approval) or resumed
    (automatic). The repair goes once a person decides: a new migration of the component
    (monitor) or cancelling the held one (approval)."""
    entry = plant_entry(
        base=mock_config_entry, options={CONF_STEP_INTERVAL: 600, CONF_POLICY_MODE: mode}
    )
    assert await set_up(hass, entry)
    manager = entry.runtime_data.migrations
    started = await _call(hass, "migrate_load", {"component": "mpdu1", "max_step_amps": 6})
    migration_id = started["migration_id"]
    while manager.records[migration_id].completed_stages < 1:
        await manager.async_wait_progress()
    assert await hass.config_entries.async_unload(entry.entry_id)  # "restart"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    hass.config_entries.async_update_entry(entry, options={**entry.options, CONF_STEP_INTERVAL: 0})
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    manager = entry.runtime_data.migrations
    record = manager.records[migration_id]
    tel = sim_server[0].plant.telemetry()
    assert all(c.energized for c in tel.circuits.values())
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"migration_held_{migration_id}")
    if mode != "automatic":
        assert record.state is MigrationState.ABORTED
        assert record.completed_stages == 1
        assert record.history[-1] == "reconciled"
        assert issue is not None
        assert issue.translation_placeholders == {
            "migration_id": migration_id,
            "component": "mpdu1",
            "done": "1",
            "stages": "2",
        }
        paths = _paths(sim_server[0])
        assert sorted((paths["c01"], paths["c02"])) == ["mpdu1", "mpdu2"]
        issues = ir.async_get(hass)
        if mode == "monitor":
            again = await _call(hass, "migrate_load", {"component": "mpdu1", "max_step_amps": 6})
            assert issues.async_get_issue(DOMAIN, f"migration_held_{migration_id}") is None
            assert "superseded" in (manager.records[migration_id].reason or "")
            done = await manager.async_wait(again["migration_id"])
            assert done.state is MigrationState.COMPLETED
        else:
            cancelled = await _call(hass, "cancel_migration", {"migration_id": migration_id})
            assert cancelled["cancelled"] == [migration_id]
            assert issues.async_get_issue(DOMAIN, f"migration_held_{migration_id}") is None
            assert "cancelled by a person" in (manager.records[migration_id].reason or "")
    else:
        record = await manager.async_wait(migration_id)
        assert record.state is MigrationState.COMPLETED
        assert issue is None
        paths = _paths(sim_server[0])
        assert (paths["c01"], paths["c02"]) == ("mpdu2", "mpdu2")


async def test_isolate_then_restore(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """isolate drains mpdu1 and switches it off; restore switches it on and moves the
    circuits back to their normal paths."""
    server = sim_server[0]
    isolated = await _call(hass, "isolate", {"component": "mpdu1", "max_step_amps": 20})
    assert isolated["isolated"] == ["mpdu1"]
    tel = server.plant.telemetry()
    assert not tel.mpdus["mpdu1"].output_on
    assert all(c.energized for c in tel.circuits.values())
    restored = await _call(hass, "restore", {"component": "mpdu1", "max_step_amps": 20})
    record = await init_integration.runtime_data.migrations.async_wait(restored["migration_id"])
    assert record.state is MigrationState.COMPLETED
    tel = server.plant.telemetry()
    assert tel.mpdus["mpdu1"].output_on
    assert _paths(server) == {"c01": "mpdu1", "c02": "mpdu1", "c03": "mpdu2", "c04": "mpdu2"}
    assert server.plant.metrics.interruptions == 0


async def test_get_forecast_returns_intervals(
    hass: HomeAssistant, init_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """At start-up there is no forecast yet (said so, not an all-zero series); once a
    few 15-minute bins of history are complete: P10 <= P50 <= P90 over the horizon, for an MPDU and
    a circuit."""
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "get_forecast", {"component": "mpdu1"})
    assert err.value.translation_key == "no_forecast"
    for _ in range(4):
        freezer.tick(15 * 60)
        await init_integration.runtime_data.telemetry.async_refresh()
    await init_integration.runtime_data.decisions.async_refresh()
    for component in ("mpdu1", "c01"):
        forecast = await _call(hass, "get_forecast", {"component": component})
        assert forecast["component"] == component
        p10, p50, p90 = forecast["p10"], forecast["p50"], forecast["p90"]
        assert len(p50) == len(p10) == len(p90) > 0
        assert all(a <= b <= c for a, b, c in zip(p10, p50, p90, strict=True))


FAILOVER_PLANT: dict[str, Any] = two_ats_plant(
    "failover",
    seed=3,
    ats_rating_a=200,
    mpdu_rating_a=40,
    mpdu3_on="ats2",
    circuits=[
        *(circuit(f"f{i}", ["mpdu1", "mpdu2", "mpdu3"], 8) for i in range(1, 4)),
        *(circuit(f"g{i}", ["mpdu2", "mpdu1"], 8) for i in range(1, 3)),
    ],
    events=[{"kind": "sudden_failure", "target": "mpdu1", "at": "10m"}],
)


@pytest.mark.parametrize("scenario_doc", [FAILOVER_PLANT])
async def test_sudden_failure_is_rebalanced_in_monitor_mode(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """mpdu1 dies; the SBMs' bypass dumps 24 A onto mpdu2 (40 A, over its 32 A limit); the
    integration rebalances onto mpdu3 at once and fires ``failover``."""
    failovers = async_capture_events(hass, EVENT_FAILOVER)
    server = sim_server[0]
    telemetry = init_integration.runtime_data.telemetry
    server.advance(600)
    await telemetry.async_refresh()
    await hass.async_block_till_done()
    tel = server.plant.telemetry()
    assert not tel.mpdus["mpdu1"].energized
    assert tel.mpdus["mpdu2"].current_a > 32
    forecast = init_integration.runtime_data.decisions
    await forecast.async_refresh()
    await hass.async_block_till_done(wait_background_tasks=True)
    assert failovers, "no failover event"
    event = failovers[-1].data
    assert "mpdu1" in event["failed"]
    record = await init_integration.runtime_data.migrations.async_wait(event["migration_id"])
    assert record.state is MigrationState.COMPLETED
    tel = server.plant.telemetry()
    assert tel.mpdus["mpdu2"].current_a <= 32
    assert tel.mpdus["mpdu3"].current_a <= 32
    assert all(c.energized for c in tel.circuits.values())


@pytest.mark.parametrize("scenario_doc", [FAILOVER_PLANT])
async def test_target_restricts_where_the_load_goes(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Draining mpdu1 (three 8 A circuits, paths to mpdu2 and mpdu3): with target mpdu3 all go
    there; mpdu2 (already 16 A of its 32 A limit) cannot take all 24 A alone, so with target
    mpdu2 there is no plan, and it is mpdu2 that would be over."""
    plan = await _call(hass, "plan_migration", {"component": "mpdu1", "target": "mpdu3"})
    assert plan["feasible"] is True
    moves = [m for step in plan["steps"] for m in step["moves"]]
    assert sorted(m["circuit"] for m in moves) == ["f1", "f2", "f3"]
    assert {m["to_mpdu"] for m in moves} == {"mpdu3"}
    plan = await _call(hass, "plan_migration", {"component": "mpdu1", "target": "mpdu2"})
    assert plan["feasible"] is False
    assert plan["element"] == "mpdu2"
    assert plan["excess_a"] > 0
