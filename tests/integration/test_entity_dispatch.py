"""Entity updates after a poll: only the entities of devices whose reading changed are called,
a few devices at a time with the event loop running in between, and every changed state is
written by the time the refresh settles. Real simulator, real Home Assistant."""

from __future__ import annotations

import pytest
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power import const
from dcp_sim.server import PlantServer

from .conftest import PLANT_IDS
from .entity_helpers import refresh, setup_platform, state

CURRENTS = [f"sensor.circuit_{c}_current" for c in PLANT_IDS if c.startswith("c")]


async def test_entities_are_updated_in_slices_with_the_loop_running_between(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With two devices per slice, a poll in which every device changed updates two devices'
    entities at once and the rest after the loop ran; all states are current afterwards. A
    poll in which nothing changed calls no entity at all."""
    server, _ = sim_server
    await setup_platform(hass, mock_config_entry, Platform.SENSOR)
    coordinator = mock_config_entry.runtime_data.telemetry
    before = {e: state(hass, e).last_reported for e in CURRENTS}

    calls: list[str] = []
    loop_ran: list[int] = []

    def called(pid: str) -> None:
        if not calls:  # the first device told: note how far it got when the loop runs next
            hass.loop.call_soon(lambda: loop_ran.append(len(calls)))
        calls.append(pid)

    for pid in PLANT_IDS:
        coordinator.async_add_listener(lambda pid=pid: called(pid), pid)
    await coordinator.async_refresh()  # nothing moved: no device's listeners are called
    await hass.async_block_till_done()
    assert calls == []

    monkeypatch.setattr(const, "DISPATCH_SLICE", 2)
    server.advance(3600)  # every circuit's current moves
    await coordinator.async_refresh()
    first = len(calls)
    assert first == 2  # one slice during the refresh...
    await hass.async_block_till_done()
    assert loop_ran == [2]  # ...the loop ran before the others
    assert len(calls) == len(set(calls)) > 2
    assert {c for c in PLANT_IDS if c.startswith("c")} <= set(calls)
    for entity_id in CURRENTS:
        assert state(hass, entity_id).last_reported > before[entity_id]


async def test_a_hall_starts_its_redundant_circuit_entities_disabled(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above HALL_CIRCUITS circuits, a circuit's power and off-normal-path entities start
    disabled (registered, can be enabled); its current and the MPDUs' power do not."""
    monkeypatch.setattr(const, "HALL_CIRCUITS", 3)  # the test plant has 4 circuits
    await setup_platform(hass, mock_config_entry, Platform.SENSOR)
    registry = er.async_get(hass)
    power = registry.async_get("sensor.circuit_c01_power")
    assert power is not None
    assert power.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    assert hass.states.get("sensor.circuit_c01_power") is None
    assert state(hass, "sensor.circuit_c01_current").state != "unavailable"
    mpdu = registry.async_get("sensor.mpdu_mpdu1_power")
    assert mpdu is not None
    assert mpdu.disabled_by is None


async def test_prediction_entities_are_written_when_their_device_changed_not_every_poll(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    sim_server: tuple[PlantServer, int],
) -> None:
    """An ATS's health and an MPDU's forecast band follow their own device's telemetry (for
    their availability), not every poll of the plant: at 1,000 circuits the ~340 prediction
    entities rewritten at every poll held the event loop ~40 ms in one go."""
    server, _ = sim_server
    await setup_platform(hass, mock_config_entry, Platform.SENSOR)
    watched = ["sensor.ats_ats1_health", "sensor.mpdu_mpdu1_load_forecast_p50"]
    before = {e: state(hass, e).last_reported for e in watched}
    assert all(state(hass, e).state != "unavailable" for e in watched)

    await refresh(hass, mock_config_entry)  # nothing moved: not written again
    assert {e: state(hass, e).last_reported for e in watched} == before

    server.advance(3600)  # every load moves, the ATS's and MPDU's readings with them
    await refresh(hass, mock_config_entry)
    for entity_id in watched:
        assert state(hass, entity_id).last_reported > before[entity_id]
