"""Defects found by trying the integration as a skeptical operator would (issue 12): each test
fails without its fix. Real Home Assistant, real simulator over Modbus TCP."""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

import probatio as vol
import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import ServiceValidationError
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.datacenter_power import const, migration
from custom_components.datacenter_power.const import (
    CONF_HOST,
    CONF_MAX_STEP_AMPS,
    CONF_PORT,
    CONF_STEP_INTERVAL,
    DEFAULT_MAX_STEP_AMPS,
    DOMAIN,
)
from custom_components.datacenter_power.executor import MigrationState
from dcp_sim.server import PlantServer

from .conftest import plant_entry, set_up


@pytest.fixture(autouse=True)
def fast_verification(monkeypatch: pytest.MonkeyPatch, short_modbus_timeouts: None) -> None:
    """A stage that does not verify is rolled back after 3 refreshes 50 ms apart. Polls get 1 s
    per request (not the suite's 0.2 s): on a loaded machine a slow answer would otherwise
    make an MPDU look dead and the interlock (rightly) refuse the moves these tests make."""
    monkeypatch.setattr(migration, "VERIFY_DELAY_S", 0.05)
    monkeypatch.setattr(const, "REQUEST_TIMEOUT", 1.0)


async def _entry(hass: HomeAssistant, base: MockConfigEntry, **options: Any) -> MockConfigEntry:
    entry = plant_entry(base=base, options=options, title=base.title)
    assert await set_up(hass, entry)
    return entry


async def _call(hass: HomeAssistant, service: str, data: dict[str, Any]) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN, service, data, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    return response


async def _refused(hass: HomeAssistant, service: str, data: dict[str, Any]) -> str:
    """The translation key of the ServiceValidationError the call raises (and its text)."""
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, service, data)
    assert str(err.value)
    assert err.value.translation_key is not None
    return err.value.translation_key


def _paths(server: PlantServer) -> dict[str, str]:
    tel = server.plant.telemetry()
    return {c: t.paths[t.active_path] for c, t in tel.circuits.items()}


# -- 1. opposite drains --------------------------------------------------------------------------


async def test_a_drain_into_a_running_drain_is_refused(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """While mpdu1 is being drained onto mpdu2, draining mpdu2 (onto mpdu1) is refused: the two
    would swap circuits and both "complete" with nothing drained."""
    entry = await _entry(hass, mock_config_entry, **{CONF_STEP_INTERVAL: 600})
    manager = entry.runtime_data.migrations
    first = await _call(hass, "migrate_load", {"component": "mpdu1", "max_step_amps": 6})
    record = manager.records[first["migration_id"]]
    while record.completed_stages < 1:
        await manager.async_wait_progress()
    before = _paths(sim_server[0])
    assert await _refused(hass, "migrate_load", {"component": "mpdu2"}) == "migration_opposite"
    assert await _refused(hass, "migrate_load", {"component": "ats2"}) == "migration_opposite"
    assert _paths(sim_server[0]) == before
    manager.cancel()
    await manager.async_wait(first["migration_id"])


async def test_completed_means_the_drained_part_is_empty(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every stage verifies, but meanwhile c03 was put on mpdu1 (by hand, at the device): the
    drain of mpdu1 does not end ``completed``; it says which circuit is left, and logs it."""
    caplog.set_level(logging.INFO, logger="custom_components.datacenter_power")
    entry = await _entry(hass, mock_config_entry, **{CONF_STEP_INTERVAL: 1})
    manager = entry.runtime_data.migrations
    server = sim_server[0]
    started = await _call(hass, "migrate_load", {"component": "mpdu1", "max_step_amps": 6})
    record = manager.records[started["migration_id"]]
    while record.completed_stages < 1:
        await manager.async_wait_progress()
    server.plant.command_sbm_path("c03", "mpdu1")
    record = await manager.async_wait(started["migration_id"])
    assert record.completed_stages == len(record.stages)
    assert record.state is MigrationState.ABORTED
    assert record.reason is not None
    assert "c03" in record.reason
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(started["migration_id"] in r.getMessage() for r in warnings)


async def test_a_rollback_is_logged(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stage that does not verify is rolled back, and a warning says so and why."""
    caplog.set_level(logging.INFO, logger="custom_components.datacenter_power")
    from dcp_sim.plant import Plant

    real = Plant.command_sbm_path

    def stuck(plant: Plant, circuit_id: str, path: str | int) -> None:
        if circuit_id != "c02":
            real(plant, circuit_id, path)

    monkeypatch.setattr(Plant, "command_sbm_path", stuck)
    started = await _call(hass, "migrate_load", {"component": "mpdu1", "max_step_amps": 20})
    record = await init_integration.runtime_data.migrations.async_wait(started["migration_id"])
    assert record.state is MigrationState.ROLLED_BACK
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("rolled back" in line and "c02" in line for line in lines), lines


# -- 2. stale data -------------------------------------------------------------------------------


def _entity(hass: HomeAssistant, domain: str, suffix: str) -> str:
    ids = [s.entity_id for s in hass.states.async_all(domain) if s.entity_id.endswith(suffix)]
    assert len(ids) == 1, (suffix, ids)
    return ids[0]


async def test_no_action_and_no_health_without_current_telemetry(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """The gateway goes down: planning and migrating are refused, and health / failure risk go
    unavailable instead of showing the last judgement as if it were current."""
    server, port = sim_server
    health = _entity(hass, "sensor", "mpdu1_health")
    risk = _entity(hass, "binary_sensor", "mpdu1_failure_risk")
    assert hass.states.get(health).state != STATE_UNAVAILABLE  # type: ignore[union-attr]
    await server.stop()
    await init_integration.runtime_data.telemetry.async_refresh()
    await hass.async_block_till_done()
    assert hass.states.get(health).state == STATE_UNAVAILABLE  # type: ignore[union-attr]
    assert hass.states.get(risk).state == STATE_UNAVAILABLE  # type: ignore[union-attr]
    for service in ("plan_migration", "migrate_load"):
        assert await _refused(hass, service, {"component": "mpdu1"}) == "telemetry_stale"
    assert not init_integration.runtime_data.migrations.records
    await server.start("127.0.0.1", port)
    await init_integration.runtime_data.telemetry.async_refresh()
    await hass.async_block_till_done()
    assert hass.states.get(health).state != STATE_UNAVAILABLE  # type: ignore[union-attr]
    plan = await _call(hass, "plan_migration", {"component": "mpdu1"})
    assert plan["feasible"] is True


async def test_a_silent_component_is_not_planned(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """mpdu2 stops answering (comms loss): draining it, or targeting it, is refused."""
    sim_server[0].advance(31 * 60)
    await init_integration.runtime_data.telemetry.async_refresh()
    await hass.async_block_till_done()
    assert await _refused(hass, "migrate_load", {"component": "mpdu2"}) == "component_unavailable"
    assert (
        await _refused(hass, "plan_migration", {"component": "mpdu1", "target": "mpdu2"})
        == "component_unavailable"
    )
    health = _entity(hass, "sensor", "mpdu2_health")
    assert hass.states.get(health).state == STATE_UNAVAILABLE  # type: ignore[union-attr]


# -- 3. nan in the options -------------------------------------------------------------------------


async def test_options_flow_refuses_nan_and_a_fixed_field_loses_its_error(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """``nan`` and out-of-step values get a field-level error; fixing them clears it."""
    entry = init_integration
    result = await hass.config_entries.options.async_init(entry.entry_id)
    values = {
        "scan_interval": 5,
        "policy_mode": "monitor",
        "max_step_amps": "nan",
        "step_interval": 120,
        "forecast_horizon": 24,
    }
    result = await hass.config_entries.options.async_configure(result["flow_id"], values)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"max_step_amps": "invalid_max_step_amps"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**values, "max_step_amps": 12, "scan_interval": 2.5}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"scan_interval": "invalid_scan_interval"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**values, "max_step_amps": 12}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options[CONF_MAX_STEP_AMPS] == 12
    assert entry.state is ConfigEntryState.LOADED


@pytest.mark.parametrize("stored", [None, math.nan, "nan", math.inf])
async def test_setup_survives_a_stored_invalid_option(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, stored: Any
) -> None:
    """An entry whose stored ``max_step_amps`` is null (an older version's ``nan``) starts with
    the default, repairs its options and unloads cleanly."""
    entry = await _entry(hass, mock_config_entry, **{CONF_MAX_STEP_AMPS: stored})
    assert entry.state is ConfigEntryState.LOADED
    assert entry.options[CONF_MAX_STEP_AMPS] == DEFAULT_MAX_STEP_AMPS
    assert entry.runtime_data.decisions.policy.config.max_step_amps == DEFAULT_MAX_STEP_AMPS
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED


# -- 4. action fields ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_step_amps", math.nan),
        ("max_step_amps", "nan"),
        ("max_step_amps", math.inf),
        ("max_step_amps", 0.001),
        ("max_step_amps", -3),
        ("max_step_amps", 5000),
        ("max_step_amps", "lots"),
        ("step_interval", math.nan),
        ("step_interval", "inf"),
        ("step_interval", -1),
        ("step_interval", 4),
        ("step_interval", 4000),
        ("step_interval", True),
    ],
)
async def test_action_numbers_must_be_finite_and_in_range(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    field: str,
    value: Any,
) -> None:
    """NaN, infinity, and values outside services.yaml's ranges (1-1000 A; 10-3600 s, the
    options' minimum pause) are refused naming the field; nothing starts."""
    before = _paths(sim_server[0])
    for service in ("migrate_load", "isolate", "restore"):
        with pytest.raises(vol.Invalid) as err:
            await _call(hass, service, {"component": "mpdu1", field: value})
        assert field in str(err.value)
    assert not init_integration.runtime_data.migrations.records
    assert _paths(sim_server[0]) == before


# -- 5. step limit ---------------------------------------------------------------------------------


async def test_a_step_smaller_than_a_circuit_is_refused_not_exceeded(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """c01 draws ~5 A: a largest step of 2 A cannot be kept; both actions say so, naming it."""
    for service in ("plan_migration", "migrate_load"):
        with pytest.raises(ServiceValidationError) as err:
            await _call(hass, service, {"component": "mpdu1", "max_step_amps": 2})
        assert err.value.translation_key == "step_below_circuit"
        assert "c0" in str(err.value)
    assert not init_integration.runtime_data.migrations.records


# -- 6. misleading infeasibility -------------------------------------------------------------------


async def test_a_target_fed_by_the_drained_component_is_a_validation_error(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """mpdu1 is fed by ats1: it cannot take ats1's load, and the error says so."""
    for service in ("plan_migration", "migrate_load"):
        key = await _refused(hass, service, {"component": "ats1", "target": "mpdu1"})
        assert key == "target_under_component"


# -- 7. user errors are 400, not 500 ---------------------------------------------------------------


async def test_user_errors_are_bad_requests_without_error_logs(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Through the REST API: an interlock refusal (mpdu1 off while it feeds critical c01/c02)
    and an invalid migration are 400s, and nothing is logged at ERROR."""
    assert await async_setup_component(hass, "api", {})
    client = await hass_client()
    output = _entity(hass, "switch", "mpdu1_output")
    response = await client.post("/api/services/switch/turn_off", json={"entity_id": output})
    assert response.status == HTTPStatus.BAD_REQUEST
    assert "c01" in (await response.json())["message"]
    response = await client.post(
        "/api/services/datacenter_power/migrate_load?return_response",
        json={"component": "ats1", "target": "mpdu1"},
    )
    assert response.status == HTTPStatus.BAD_REQUEST
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert hass.states.get(output).state == "on"  # type: ignore[union-attr]


# -- 8. diagnostics after a failure ------------------------------------------------------------------


async def test_diagnostics_show_why_with_the_gateway_down(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
) -> None:
    """Gateway down: every device has an error, the telemetry is marked stale, and the
    migration history is there."""
    started = await _call(hass, "migrate_load", {"component": "mpdu1", "max_step_amps": 20})
    await init_integration.runtime_data.migrations.async_wait(started["migration_id"])
    await sim_server[0].stop()
    await init_integration.runtime_data.telemetry.async_refresh()
    result = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    assert result["telemetry"]["stale"] is True
    assert result["telemetry"]["last_exception"]
    assert set(result["errors"]) >= {"ats1", "mpdu1", "c01"}
    assert [m["migration_id"] for m in result["migrations"]] == [started["migration_id"]]
    assert result["migrations"][0]["history"]
    assert "127.0.0.1" not in str(result)


# -- 9. smaller ones ---------------------------------------------------------------------------------


async def test_forecast_of_the_environment_sensor_is_refused(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """env1 has no load: no forecast is promised for it."""
    assert await _refused(hass, "get_forecast", {"component": "env1"}) == "not_forecastable"


async def test_names_are_trimmed_case_folded_and_bounded(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """`` MPDU1 `` is mpdu1; an unknown 200-character name is echoed shortened; a
    100,000-character one is refused by the schema without being echoed."""
    plan = await _call(hass, "plan_migration", {"component": " MPDU1 ", "target": "Mpdu2"})
    assert plan["feasible"] is True
    long_name = "x" * 200
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "plan_migration", {"component": long_name})
    assert err.value.translation_key == "unknown_component"
    assert long_name not in str(err.value)
    assert len(str(err.value)) < 300
    with pytest.raises(vol.Invalid) as invalid:
        await _call(hass, "plan_migration", {"component": "y" * 100_000})
    assert len(str(invalid.value)) < 300


@pytest.mark.usefixtures("no_platforms")
@pytest.mark.parametrize("port", ["nan", 25020.5, 0, 70000])
async def test_config_flow_port_must_be_a_whole_port_number(hass: HomeAssistant, port: Any) -> None:
    """``nan`` (was a 500) and ``25020.5`` (was truncated) get a field-level error."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    try:
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: port}
        )
    except vol.Invalid:
        assert port in (0, 70000)  # the selector's own range check: also a field-level error
        return
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_PORT: "invalid_port"}


# -- flapping guard -------------------------------------------------------------------------------


async def test_flapping_guard_bounds_path_changes_and_shows_them(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a limit of 2 path changes per circuit per hour: mpdu1 drained, then mpdu2 drained
    (c01/c02 move back), then mpdu1 again is refused; the migration sensor shows the counts."""
    monkeypatch.setattr(migration, "MAX_PATH_CHANGES_PER_HOUR", 2)
    manager = init_integration.runtime_data.migrations
    for component in ("mpdu1", "mpdu2"):
        started = await _call(hass, "migrate_load", {"component": component, "max_step_amps": 20})
        record = await manager.async_wait(started["migration_id"])
        assert record.state is MigrationState.COMPLETED, record
    before = _paths(sim_server[0])
    assert await _refused(hass, "migrate_load", {"component": "mpdu1"}) == "flapping_guard"
    assert _paths(sim_server[0]) == before
    await hass.async_block_till_done()
    sensor = hass.states.get(_entity(hass, "sensor", "load_migration"))
    assert sensor is not None
    assert sensor.attributes["path_changes_last_hour"] == {"c01": 2, "c02": 2, "c03": 1}
    assert sensor.attributes["path_changes_limit_per_hour"] == 2  # the limit the guard applies


async def test_flapping_guard_remembers_path_changes_across_a_reload(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 20, item 5: a reload (an options save, a restart) used to forget every path change,
    and a circuit was switched five times in an hour. After two drains and a reload the third
    drain is still refused."""
    monkeypatch.setattr(migration, "MAX_PATH_CHANGES_PER_HOUR", 2)
    manager = init_integration.runtime_data.migrations
    for component in ("mpdu1", "mpdu2"):
        started = await _call(hass, "migrate_load", {"component": component, "max_step_amps": 20})
        record = await manager.async_wait(started["migration_id"])
        assert record.state is MigrationState.COMPLETED, record
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    reloaded = init_integration.runtime_data.migrations
    assert reloaded is not manager
    assert reloaded.path_changes_last_hour() == {"c01": 2, "c02": 2, "c03": 1}
    before = _paths(sim_server[0])
    assert await _refused(hass, "migrate_load", {"component": "mpdu1"}) == "flapping_guard"
    assert _paths(sim_server[0]) == before


# -- damaged storage -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("migrations", "history"),
    [
        ({"migrations": [{"migration_id": 3}, "x", None]}, None),
        (["not", "a", "mapping"], None),
        (None, {"history": [[1.0], {"a": 1}, [None, None, None, None]]}),
        (None, "truncated"),
    ],
)
async def test_setup_survives_damaged_storage_and_says_so(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    migrations: Any,
    history: Any,
) -> None:
    """Damaged stored migration records or load history (a crash while writing): the entry
    still starts, nothing is switched, and damaged records raise a repair issue."""
    from homeassistant.helpers import issue_registry as ir

    entry_id = mock_config_entry.entry_id
    for key, data in ((".migrations", migrations), (".history", history)):
        if data is not None:
            hass_storage[f"{DOMAIN}.{entry_id}{key}"] = {"version": 1, "key": key, "data": data}
    before = _paths(sim_server[0])
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.LOADED
    assert _paths(sim_server[0]) == before
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"storage_damaged_{entry_id}_migrations")
    assert (issue is not None) == (migrations is not None)


async def test_devices_outside_the_plant_graph_do_not_break_planning(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, proxy: Any
) -> None:
    """mpdu2 is silent during discovery: the circuits with a path through it are outside the
    graph until a rescan finds it. Planning mpdu1 then answers (it raised ValueError, a 500),
    and mpdu2 itself is refused as unavailable."""
    proxy.faults[11] = "silent"  # mpdu2's unit id
    entry = plant_entry(proxy.port, base=mock_config_entry)
    assert await set_up(hass, entry)
    assert "mpdu2" not in entry.runtime_data.telemetry.data.topology.mpdus
    plan = await _call(hass, "plan_migration", {"component": "mpdu1"})
    assert "feasible" in plan
    assert await _refused(hass, "plan_migration", {"component": "mpdu2"}) in (
        "unknown_component",
        "component_unavailable",
    )
