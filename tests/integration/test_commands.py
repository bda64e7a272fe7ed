"""The plant's one command path (``CommandPath.async_command``, commands.py): the actions' own
commands (``isolate``, ``restore``) are judged by the same interlocks as the entities', entity
commands and actions share one lock, and the circuits' demand is remembered with no platform
loaded. Real Home Assistant, real simulator over Modbus TCP."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.const import ATTR_ENTITY_ID, SERVICE_TURN_OFF
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.const import CONF_STEP_INTERVAL, DOMAIN
from custom_components.datacenter_power.executor import MigrationState
from dcp_sim.server import PlantServer
from tests.plants import circuit, two_ats_plant

from .conftest import PLANT

pytestmark = pytest.mark.usefixtures("fast_verification")


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """Migration steps back to back."""
    return {CONF_STEP_INTERVAL: 0}


async def _call(hass: HomeAssistant, service: str, data: dict[str, Any]) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN, service, data, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    return response


SILENT_C01 = copy.deepcopy(PLANT)
SILENT_C01["events"] = [{"kind": "comms_loss", "target": "c01", "at": "10m", "duration": "2h"}]
"""The test plant whose critical circuit c01 (paths mpdu1, mpdu2) stops answering at 10 min."""


@pytest.mark.parametrize("scenario_doc", [SILENT_C01])
async def test_isolate_is_refused_by_the_interlock_like_the_output_switch(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """c01 is critical and silent: it may be drawing through mpdu1. The isolate is refused
    before anything moves (a drain cannot know whether c01 is left behind), naming c01; the
    MPDU's output switch is refused by the interlock (c01 may draw through it, c02 does); mpdu1
    stays on and nothing moved."""
    server = sim_server[0]
    telemetry = init_integration.runtime_data.telemetry
    server.advance(600)
    await telemetry.async_refresh()
    assert not telemetry.data.available("c01")

    with pytest.raises(ServiceValidationError) as by_action:
        await _call(hass, "isolate", {"component": "mpdu1", "max_step_amps": 20})
    assert by_action.value.translation_key == "infeasible"
    assert "c01" in str(by_action.value)
    with pytest.raises(HomeAssistantError) as by_switch:
        await hass.services.async_call(
            SWITCH_DOMAIN,
            SERVICE_TURN_OFF,
            {ATTR_ENTITY_ID: "switch.mpdu_mpdu1_output"},
            blocking=True,
        )
    err = by_switch.value
    assert err.translation_key == "interlock_critical_load_on_mpdu"
    assert err.translation_placeholders is not None
    assert err.translation_placeholders["element"] == "mpdu1"
    assert err.translation_placeholders["circuits"] == "c01, c02"
    tel = server.plant.telemetry()
    assert tel.mpdus["mpdu1"].output_on
    assert tel.circuits["c02"].paths[tel.circuits["c02"].active_path] == "mpdu1"  # not moved
    assert server.plant.metrics.interruptions == 0


RESTORE_PLANT: dict[str, Any] = two_ats_plant(
    "restore-over-limit",
    seed=5,
    ats_rating_a=(50, 200),
    mpdu_rating_a=40,
    mpdu3_on="ats1",
    transfer_time="12ms",
    circuits=[
        circuit("x1", ["mpdu1"], 10, critical=False, daily=0, weekly=0, noise=0),
        *(circuit(f"f{i}", ["mpdu3", "mpdu2"], 6, daily=0, weekly=0, noise=0) for i in range(1, 5)),
    ],
    events=[
        {
            "kind": "load_surge",
            "targets": ["f1", "f2", "f3", "f4"],
            "at": "5m",
            "duration": "2h",
            "extra_a": 2,
        }
    ],
)
"""ats1 (limit 40 A) feeds x1 (10 A, non-critical, only path mpdu1) and four 6 A circuits on
mpdu3: 34 A. From 5 min the four draw 2 A more each."""


@pytest.mark.usefixtures("no_platforms")
@pytest.mark.parametrize("scenario_doc", [RESTORE_PLANT])
async def test_restore_is_refused_by_the_interlock_on_remembered_demand(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """mpdu1 is switched off at the panel (x1 loses power) and the mpdu3 load grows to 32 A.
    Switching mpdu1 back on would bring x1's remembered 10 A back onto ats1: 42 A, above its
    40 A limit. ``restore`` is refused by the MPDU-output interlock, with no entity platform
    loaded (the coordinator remembers the demand itself), and sends nothing."""
    server = sim_server[0]
    telemetry = init_integration.runtime_data.telemetry
    assert telemetry.demand_a["x1"] == pytest.approx(10.0, abs=0.1)
    server.plant.command_mpdu_output("mpdu1", False)
    server.advance(600)
    await telemetry.async_refresh()
    assert telemetry.data.circuit_a["x1"] == 0.0
    assert telemetry.demand_a["x1"] == pytest.approx(10.0, abs=0.1)

    with pytest.raises(HomeAssistantError) as refused:
        await _call(hass, "restore", {"component": "mpdu1"})
    err = refused.value
    assert err.translation_key == "interlock_over_limit"
    assert err.translation_placeholders is not None
    assert err.translation_placeholders["element"] == "ats1"
    assert err.translation_placeholders["target"] == "mpdu1"
    assert float(err.translation_placeholders["amps"]) == pytest.approx(2.0, abs=0.2)
    assert not server.plant.telemetry().mpdus["mpdu1"].output_on


async def test_entity_commands_and_actions_share_the_plant_command_lock(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    """While the plant's command lock is held, neither an entity's command nor a migration's
    move reaches the plant; released, both are carried out, one after the other."""
    server = sim_server[0]
    runtime = init_integration.runtime_data
    lock = runtime.commands.lock
    await lock.acquire()
    try:
        switched = asyncio.create_task(
            hass.services.async_call(
                SWITCH_DOMAIN,
                SERVICE_TURN_OFF,
                {ATTR_ENTITY_ID: "switch.circuit_c04_output"},
                blocking=True,
            )
        )
        started = await _call(hass, "migrate_load", {"component": "mpdu1", "max_step_amps": 20})
        migration_id = started["migration_id"]
        for _ in range(10):
            await asyncio.sleep(0.02)
        tel = server.plant.telemetry()
        assert tel.circuits["c04"].output_on
        assert {tel.circuits[c].paths[tel.circuits[c].active_path] for c in ("c01", "c02")} == {
            "mpdu1"
        }
        assert not switched.done()
        assert runtime.migrations.records[migration_id].completed_stages == 0
    finally:
        lock.release()
    await switched
    record = await runtime.migrations.async_wait(migration_id)
    assert record.state is MigrationState.COMPLETED
    tel = server.plant.telemetry()
    assert not tel.circuits["c04"].output_on
    assert {tel.circuits[c].paths[tel.circuits[c].active_path] for c in ("c01", "c02")} == {"mpdu2"}
