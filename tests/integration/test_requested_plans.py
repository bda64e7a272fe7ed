"""A migration a person requests is planned on what the plant really carries (issue 12, the soak
seed-1 case): a circuit that does not answer still loads the MPDU it sits on, and the MPDU's own
meter says so. Real Home Assistant, real simulator behind the fault-injecting gateway."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.const import DOMAIN
from dcp_sim.server import PlantServer

from .conftest import PLANT, plant_entry, set_up
from .modbus_proxy import ModbusProxy


@pytest.fixture
def scenario_doc() -> dict[str, Any]:
    """mpdu1 and mpdu2 (limit 32 A each): c01 and c02 (9 A) on mpdu1 may move to mpdu2, which
    carries c03 (6 A) and c04 (8 A, on mpdu2 only). Draining mpdu1 would put 32 A x margin on
    mpdu2."""
    doc = copy.deepcopy(PLANT)
    doc["events"] = []
    doc["circuits"] = [
        {"id": "c01", "paths": ["mpdu1", "mpdu2"], "rating_a": 16, "load": {"mean_a": 9}},
        {"id": "c02", "paths": ["mpdu1", "mpdu2"], "rating_a": 16, "load": {"mean_a": 9}},
        {"id": "c03", "paths": ["mpdu2", "mpdu1"], "rating_a": 16, "load": {"mean_a": 6}},
        {
            "id": "c04",
            "paths": ["mpdu2"],
            "rating_a": 16,
            "critical": False,
            "load": {"mean_a": 8},
        },
    ]
    return doc


async def test_a_silent_circuit_still_counts_on_its_receiver(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    proxy: ModbusProxy,
    sim_server: tuple[PlantServer, int],
) -> None:
    """c04 stops answering: the planner no longer knows its path or current. Planning on the
    circuits alone saw mpdu2 at 6 A and drained mpdu1 onto it (35 A on a 32 A limit); mpdu2's
    meter still reads 14 A, so the drain is refused, naming mpdu2, and nothing moves."""
    entry = plant_entry(proxy.port, base=mock_config_entry)
    assert await set_up(hass, entry)
    telemetry = entry.runtime_data.telemetry
    proxy.faults[telemetry.identities["c04"].unit_id] = "illegal_address"
    await telemetry.async_refresh()
    assert not telemetry.data.available("c04")
    assert telemetry.data.available("mpdu2")

    plan = await hass.services.async_call(
        DOMAIN, "plan_migration", {"component": "mpdu1"}, blocking=True, return_response=True
    )
    assert plan is not None
    assert plan["feasible"] is False, plan
    assert plan["element"] == "mpdu2"
    # A drain of mpdu2 itself is refused outright: c04 may still draw through it.
    plan = await hass.services.async_call(
        DOMAIN, "plan_migration", {"component": "mpdu2"}, blocking=True, return_response=True
    )
    assert plan is not None
    assert plan["feasible"] is False
    assert "c04" in plan["reason"]
    before = {c: t.active_path for c, t in sim_server[0].plant.telemetry().circuits.items()}
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "migrate_load", {"component": "mpdu1"}, blocking=True, return_response=True
        )
    assert err.value.translation_key == "infeasible"
    assert "mpdu2" in str(err.value)
    after = {c: t.active_path for c, t in sim_server[0].plant.telemetry().circuits.items()}
    assert after == before

    # Once c04 answers again the planner sees it directly: still refused, for the same reason.
    proxy.faults.clear()
    await telemetry.async_refresh()
    plan = await hass.services.async_call(
        DOMAIN, "plan_migration", {"component": "mpdu1"}, blocking=True, return_response=True
    )
    assert plan is not None
    assert plan["feasible"] is False
    assert plan["element"] == "mpdu2"
