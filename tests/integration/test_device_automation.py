"""Device triggers and conditions in Home Assistant's automation integration: offered on ATS, MPDU
and circuit devices (not on the environment sensor), firing on a real migration run against the
simulator, and conditions judged on the engine's assessments."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.components import automation
from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import translation
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_get_device_automations,
    async_mock_service,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.datacenter_power.const import CONF_STEP_INTERVAL, DOMAIN

TRIGGERS = {
    "failure_predicted",
    "failure_risk_cleared",
    "migration_finished",
    "migration_failed",
    "failover",
    "overload_forecast",
    "decision_needed",
}

pytestmark = pytest.mark.usefixtures("fast_verification")


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """Migration steps back to back."""
    return {CONF_STEP_INTERVAL: 0}


async def test_triggers_and_conditions_are_offered_on_plant_devices(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Every ATS, MPDU and circuit device offers the six triggers and two conditions."""
    telemetry = init_integration.runtime_data.telemetry
    for pid in ("ats1", "mpdu2", "c03"):
        device_id = telemetry.device_id(pid)
        assert device_id is not None
        triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, device_id)
        assert {t["type"] for t in triggers if t["domain"] == DOMAIN} == TRIGGERS
        conditions = await async_get_device_automations(
            hass, DeviceAutomationType.CONDITION, device_id
        )
        assert {c["type"] for c in conditions if c["domain"] == DOMAIN} == {
            "health_below",
            "failure_risk",
        }
    env = telemetry.device_id("env1")
    assert env is not None
    triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, env)
    assert not [t for t in triggers if t["domain"] == DOMAIN]


async def test_every_trigger_condition_and_field_has_a_name(
    hass: HomeAssistant, init_integration: MockConfigEntry, hass_ws_client: WebSocketGenerator
) -> None:
    """The automation editor (Add trigger -> Device) shows names, not keys: every trigger and
    condition type a device offers has an English name in Home Assistant's translations, every
    extra field a label, and the threshold is a number field in %."""
    strings = await translation.async_get_translations(hass, "en", "device_automation", [DOMAIN])
    base = f"component.{DOMAIN}.device_automation"
    telemetry = init_integration.runtime_data.telemetry
    assert await async_setup_component(hass, "device_automation", {})
    client = await hass_ws_client(hass)
    for pid in ("ats1", "mpdu2", "c03"):
        device_id = telemetry.device_id(pid)
        assert device_id is not None
        triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, device_id)
        conditions = await async_get_device_automations(
            hass, DeviceAutomationType.CONDITION, device_id
        )
        ours = [t for t in triggers if t["domain"] == DOMAIN]
        assert ours
        for trigger in ours:
            assert strings.get(f"{base}.trigger_type.{trigger['type']}"), trigger["type"]
        ours = [c for c in conditions if c["domain"] == DOMAIN]
        assert ours
        for cond in ours:
            assert strings.get(f"{base}.condition_type.{cond['type']}"), cond["type"]
            await client.send_json_auto_id(
                {"type": "device_automation/condition/capabilities", "condition": cond}
            )
            answer = await client.receive_json()
            assert answer["success"], answer
            for field in answer["result"].get("extra_fields", []):
                assert strings.get(f"{base}.extra_fields.{field['name']}"), field["name"]
                if cond["type"] == "health_below":
                    number = field["selector"]["number"]
                    assert number["unit_of_measurement"] == "%"
                    assert (number["min"], number["max"]) == (0, 100)
            if cond["type"] == "health_below":
                assert [f["name"] for f in answer["result"]["extra_fields"]] == ["below"]


def _automation(
    alias: str, device_id: str, kind: str, condition: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "alias": alias,
        "triggers": [{"trigger": "device", "domain": DOMAIN, "device_id": device_id, "type": kind}],
        "conditions": [condition] if condition else [],
        "actions": [
            {
                "action": "test.automation",
                "data": {"alias": alias, "message": "{{ trigger.message }}"},
            }
        ],
    }


async def test_migration_finished_triggers_the_source_and_its_circuits(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Draining MPDU-1 (a real staged migration): the trigger fires on MPDU-1 and on circuit
    c01 (moved), not on c03 (not moved); a failure-risk condition (nothing is at risk) holds
    one automation back, so does health below 50 %; "not at risk" lets another run."""
    calls: list[ServiceCall] = async_mock_service(hass, "test", "automation")
    telemetry = init_integration.runtime_data.telemetry
    dev = {pid: telemetry.device_id(pid) or "" for pid in ("mpdu1", "c01", "c03")}
    risk = {
        "condition": "device",
        "domain": DOMAIN,
        "device_id": dev["mpdu1"],
        "type": "failure_risk",
    }
    health = {
        "condition": "device", "domain": DOMAIN, "device_id": dev["mpdu1"],
        "type": "health_below", "below": 50,
    }  # fmt: skip
    assert await async_setup_component(
        hass,
        automation.DOMAIN,
        {
            automation.DOMAIN: [
                _automation("mpdu1 done", dev["mpdu1"], "migration_finished", None),
                _automation("c01 moved", dev["c01"], "migration_finished", None),
                _automation("c03 moved", dev["c03"], "migration_finished", None),
                _automation("mpdu1 at risk", dev["mpdu1"], "migration_finished", risk),
                _automation("mpdu1 unhealthy", dev["mpdu1"], "migration_finished", health),
                _automation(
                    "mpdu1 not at risk",
                    dev["mpdu1"],
                    "migration_finished",
                    {"condition": "not", "conditions": [risk]},
                ),
                _automation("mpdu1 failed", dev["mpdu1"], "migration_failed", None),
            ]
        },
    )
    response = await hass.services.async_call(
        DOMAIN, "migrate_load", {"component": "mpdu1"}, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    await init_integration.runtime_data.migrations.async_wait(response["migration_id"])
    await hass.async_block_till_done()
    ran = sorted(c.data["alias"] for c in calls)
    assert ran == ["c01 moved", "mpdu1 done", "mpdu1 not at risk"]
    assert all("finished: its stage verified" in c.data["message"] for c in calls)
