"""A unit replaced while Home Assistant runs (its identification changes at the same Modbus
address): the integration notices, holds the device unavailable, raises a repair saying it was
replaced, and never commands it on the old identity, also in the middle of a migration. A reload
identifies the new unit and withdraws the repair. Real Home Assistant, real simulator behind the
fault-injecting gateway (``replaced``: identification replies carry another model)."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power import migration, replaced
from custom_components.datacenter_power.const import (
    CONF_STEP_INTERVAL,
    DOMAIN,
)
from custom_components.datacenter_power.engine.interlock import Verdict
from custom_components.datacenter_power.executor import MigrationState
from dcp_sim.server import PlantServer

from .conftest import plant_entry, set_up
from .modbus_proxy import REPLACED_MODEL, ModbusProxy


@pytest.fixture(autouse=True)
def fast_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migration, "VERIFY_DELAY_S", 0.05)


async def _entry(
    hass: HomeAssistant, base: MockConfigEntry, proxy: ModbusProxy, **options: Any
) -> MockConfigEntry:
    entry = plant_entry(proxy.port, base=base, options=options)
    assert await set_up(hass, entry)
    return entry


def _issue(hass: HomeAssistant, entry: MockConfigEntry, plant_id: str) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, replaced.issue_id(entry.entry_id, plant_id))


def _path(server: PlantServer, circuit: str) -> str:
    tel = server.plant.telemetry().circuits[circuit]
    return tel.paths[tel.active_path]


async def test_a_unit_replaced_mid_migration_is_not_commanded(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    proxy: ModbusProxy,
    sim_server: tuple[PlantServer, int],
) -> None:
    """The drain of mpdu1 runs in two stages; after the first, the unit of the circuit the
    second one moves is swapped. The second stage's command is not sent: the circuit stays
    where it is, the migration ends without completing, and a repair names the change."""
    entry = await _entry(hass, mock_config_entry, proxy, **{CONF_STEP_INTERVAL: 1})
    telemetry = entry.runtime_data.telemetry
    manager = entry.runtime_data.migrations
    server = sim_server[0]
    started = await hass.services.async_call(
        DOMAIN,
        "migrate_load",
        {"component": "mpdu1", "max_step_amps": 6},
        blocking=True,
        return_response=True,
    )
    assert started is not None
    record = manager.records[str(started["migration_id"])]
    assert len(record.stages) == 2
    second = record.stages[1][0].circuit
    while record.completed_stages < 1:
        await manager.async_wait_progress()
    proxy.faults[telemetry.identities[second].unit_id] = "replaced"
    record = await manager.async_wait(record.migration_id)

    assert record.state is not MigrationState.COMPLETED
    assert _path(server, second) == "mpdu1"  # never switched on the old identity
    issue = _issue(hass, entry, second)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders is not None
    assert REPLACED_MODEL in issue.translation_placeholders["change"]
    await telemetry.async_refresh()
    assert not telemetry.data.available(second)
    assert "replaced" in telemetry.data.errors[second]
    # Every command to it is refused from now on, with the reason.
    with pytest.raises(HomeAssistantError) as err:
        await entry.runtime_data.commands.async_command(
            second,
            lambda _state: Verdict(True),  # the interlock has nothing against it
            lambda client, identity: client.set_sbm_path(identity, "mpdu2"),
            "path mpdu2",
        )
    assert err.value.translation_key == "unit_replaced"
    assert _path(server, second) == "mpdu1"


async def test_a_replaced_unit_is_found_by_polling_and_adopted_after_a_reload(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    proxy: ModbusProxy,
) -> None:
    """No command needed. mpdu2 goes silent and comes back as another unit: found when it
    answers again. c04 is swapped without a pause: found by the next rescan (every 10 minutes).
    Their entities go unavailable; a reload identifies the new units (their model in the device
    registry) and withdraws the repairs."""
    entry = await _entry(hass, mock_config_entry, proxy)
    telemetry = entry.runtime_data.telemetry
    proxy.faults[telemetry.identities["mpdu2"].unit_id] = "silent"
    await telemetry.async_refresh()
    assert not telemetry.data.available("mpdu2")
    proxy.faults[telemetry.identities["mpdu2"].unit_id] = "replaced"
    await telemetry.async_refresh()
    assert _issue(hass, entry, "mpdu2") is not None
    assert not telemetry.data.available("mpdu2")

    proxy.faults[telemetry.identities["c04"].unit_id] = "replaced"
    await telemetry.async_refresh()
    assert _issue(hass, entry, "c04") is None  # a poll reads measurements only
    await telemetry.async_rescan()
    await telemetry.async_refresh()
    assert _issue(hass, entry, "c04") is not None
    await hass.async_block_till_done()
    current = hass.states.get("sensor.mpdu_mpdu2_current")
    assert current is not None
    assert current.state == "unavailable"
    flagged = {p for p in telemetry.identities if _issue(hass, entry, p)}
    assert flagged == {"mpdu2", "c04"}

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert not {p for p in telemetry.identities if _issue(hass, entry, p)}
    fresh = entry.runtime_data.telemetry
    assert fresh.identities["mpdu2"].model == REPLACED_MODEL
    assert fresh.identities["c04"].model == REPLACED_MODEL
    assert fresh.data.available("mpdu2")
