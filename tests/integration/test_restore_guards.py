"""``restore`` checks before it acts (issue 20, items 7 and 8), and the ATS's Reset alarms button.

Through the real simulator and Home Assistant: two concurrent restores of the same MPDU, one acts
and the other is refused with the reason, and only one "output on" reaches the device; after an
ATS failure and repair, restore is refused while *Output lost* is latched, then (after Reset
alarms) until the ATS has been healthy for the soak time, unless forced.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.const import GROUP_ID_USER
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import ServiceValidationError, Unauthorized
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    async_capture_events,
)

from custom_components.datacenter_power.const import CONF_STEP_INTERVAL, DOMAIN
from custom_components.datacenter_power.engine.policy_config import PolicyConfig
from custom_components.datacenter_power.events import EVENT_ACTIVITY
from dcp_sim.server import PlantServer

from .conftest import PLANT

pytestmark = pytest.mark.usefixtures("fast_verification")

ATS_FAILS: dict[str, Any] = {
    **copy.deepcopy(PLANT),
    "events": [{"kind": "sudden_failure", "target": "ats1", "at": "10m", "repair_after": "10m"}],
}
"""The small plant; ATS-1 fails at 10 min and is repaired at 20 min (Output lost stays latched)."""


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """Migration steps back to back."""
    return {CONF_STEP_INTERVAL: 0}


def _spy_outputs(server: PlantServer) -> list[tuple[str, bool]]:
    """Every MPDU output command that reaches the simulated device (passed on unchanged)."""
    sent: list[tuple[str, bool]] = []
    plant = server.plant
    original = plant.command_mpdu_output

    def spy(mpdu_id: str, on: bool) -> None:
        sent.append((mpdu_id, on))
        original(mpdu_id, on)

    plant.command_mpdu_output = spy  # type: ignore[method-assign]
    return sent


async def _restore(hass: HomeAssistant, **data: Any) -> Any:
    return await hass.services.async_call(
        DOMAIN, "restore", data, blocking=True, return_response=True
    )


async def test_concurrent_restores_one_acts_the_other_is_refused(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: tuple[PlantServer, int]
) -> None:
    server = sim_server[0]
    await _restore_ready(hass, server)
    sent = _spy_outputs(server)
    results = await asyncio.gather(
        _restore(hass, component="mpdu1", max_step_amps=20),
        _restore(hass, component="mpdu1", max_step_amps=20),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, ServiceValidationError)]
    done = [r for r in results if isinstance(r, dict)]
    assert len(refused) == 1, results
    assert len(done) == 1, results
    assert refused[0].translation_key == "restore_running"
    assert "Another restore is in progress" in str(refused[0])
    assert sent == [("mpdu1", True)]  # one command, from the restore that acted
    record = await init_integration.runtime_data.migrations.async_wait(done[0]["migration_id"])
    assert record.state.value == "completed"
    assert server.plant.telemetry().circuits["c01"].active_path == 0


async def _restore_ready(hass: HomeAssistant, server: PlantServer) -> None:
    """mpdu1 isolated (drained, output off) through the integration."""
    isolated = await hass.services.async_call(
        DOMAIN,
        "isolate",
        {"component": "mpdu1", "max_step_amps": 20},
        blocking=True,
        return_response=True,
    )
    assert isinstance(isolated, dict)
    assert isolated["isolated"] == ["mpdu1"]
    assert not server.plant.telemetry().mpdus["mpdu1"].output_on


@pytest.mark.parametrize("scenario_doc", [ATS_FAILS])
async def test_restore_waits_for_reset_alarms_and_soak_unless_forced(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    hass_admin_user: MockUser,
) -> None:
    server = sim_server[0]
    entry = init_integration
    telemetry = entry.runtime_data.telemetry
    activity = async_capture_events(hass, EVENT_ACTIVITY)
    server.advance(15 * 60)  # ats1 failed
    await telemetry.async_refresh()
    await hass.async_block_till_done()
    with pytest.raises(ServiceValidationError) as err:
        await _restore(hass, component="ats1", force=True)  # force never overrides a failure
    assert err.value.translation_key == "component_failed"

    server.advance(10 * 60)  # repaired at 20 min: live, but Output lost is latched
    await telemetry.async_refresh()
    await hass.async_block_till_done()
    tel = server.plant.telemetry().ats["ats1"]
    assert tel.output_energized
    assert tel.alarm_output_lost
    migrations = entry.runtime_data.migrations
    with pytest.raises(ServiceValidationError) as err:
        await _restore(hass, component="ats1")
    assert err.value.translation_key == "alarm_latched"
    assert "output lost" in str(err.value)
    assert "Reset alarms button" in str(err.value)
    assert migrations.latest is None  # nothing started

    button = er.async_get(hass).async_get_entity_id(
        "button", DOMAIN, f"{entry.unique_id}:ats1:reset_alarms"
    )
    assert button is not None
    operator = await hass.auth.async_create_user("operator", group_ids=[GROUP_ID_USER])
    with pytest.raises(Unauthorized):  # administrators only
        await hass.services.async_call(
            "button",
            "press",
            {"entity_id": button},
            blocking=True,
            context=Context(user_id=operator.id),
        )
    assert server.plant.telemetry().ats["ats1"].alarm_output_lost
    await hass.services.async_call("button", "press", {"entity_id": button}, blocking=True)
    assert not server.plant.telemetry().ats["ats1"].alarm_output_lost
    logged = [e.data for e in activity if e.data["component"] == "ats1"]
    assert any(e["message"] == "alarms reset: cleared output lost" for e in logged), logged

    with pytest.raises(ServiceValidationError) as err:
        await _restore(hass, component="ats1")
    assert err.value.translation_key == "not_soaked"
    assert "soak time of 120 min" in str(err.value)

    forced = await _restore(hass, component="ats1", force=True, max_step_amps=20)
    assert isinstance(forced, dict)
    if forced["migration_id"] is not None:
        await migrations.async_wait(forced["migration_id"])
    assert server.plant.telemetry().circuits["c01"].active_path == 0  # back on mpdu1 (ats1)


@pytest.mark.parametrize("scenario_doc", [ATS_FAILS])
async def test_restore_without_force_once_healthy_for_the_soak_time(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    freezer: FrozenDateTimeFactory,
) -> None:
    server = sim_server[0]
    entry = init_integration
    telemetry = entry.runtime_data.telemetry
    server.advance(15 * 60)
    await telemetry.async_refresh()
    server.advance(10 * 60)
    await telemetry.async_refresh()
    server.plant.command_ats_reset_alarms("ats1")
    server.invalidate()
    await telemetry.async_refresh()
    await hass.async_block_till_done()
    with pytest.raises(ServiceValidationError) as err:
        await _restore(hass, component="ats1")
    assert err.value.translation_key == "not_soaked"
    freezer.tick(timedelta(seconds=PolicyConfig().restore_stable_s + 60))
    await telemetry.async_refresh()
    await hass.async_block_till_done()
    response = await _restore(hass, component="ats1", max_step_amps=20)
    assert isinstance(response, dict)
    assert response["migration_id"] is not None
    await entry.runtime_data.migrations.async_wait(response["migration_id"])
    assert server.plant.telemetry().circuits["c01"].active_path == 0
