"""A hall's objects are frozen out of the garbage collector's full collections once it is set
up: once per size of the plant, never for a small plant, and unfrozen when it is unloaded.
Real simulator, real Home Assistant, the real ``gc`` (its ``freeze`` counted, not replaced)."""

from __future__ import annotations

import gc
from datetime import timedelta

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.datacenter_power import const, gc_freeze

from .conftest import set_up


@pytest.fixture
def freezes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every ``gc.freeze()`` call, with the number of objects frozen after it; and -1 for every
    trim of the C heap that followed (the real one: this is glibc)."""
    calls: list[int] = []
    real = gc.freeze
    real_trim = gc_freeze._trim_heap

    def counted() -> None:
        real()
        calls.append(gc.get_freeze_count())

    def trimmed() -> bool:
        assert real_trim()
        calls.append(-1)
        return True

    monkeypatch.setattr(gc, "freeze", counted)
    monkeypatch.setattr(gc_freeze, "_trim_heap", trimmed)
    return calls


async def _poll_then_wait(hass: HomeAssistant, entry: MockConfigEntry, seconds: float) -> None:
    await entry.runtime_data.telemetry.async_refresh()
    await hass.async_block_till_done()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=seconds))
    await hass.async_block_till_done()


async def test_a_hall_is_frozen_once_when_set_up_and_unfrozen_on_unload(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    sim_server: object,
    monkeypatch: pytest.MonkeyPatch,
    freezes: list[int],
) -> None:
    monkeypatch.setattr(const, "HALL_CIRCUITS", 3)  # the test plant has 4 circuits
    assert await set_up(hass, mock_config_entry)
    assert freezes == []
    await _poll_then_wait(hass, mock_config_entry, const.GC_FREEZE_QUIET / 2)
    assert freezes == []  # not before the plant has stayed the same for the quiet period
    await _poll_then_wait(hass, mock_config_entry, const.GC_FREEZE_QUIET + 1)
    assert len(freezes) == 2
    assert freezes[0] > 1000  # Home Assistant's and the plant's objects
    assert freezes[1] == -1  # then the C heap trimmed
    for _ in range(3):  # unchanged plant: never again
        await _poll_then_wait(hass, mock_config_entry, const.GC_FREEZE_QUIET + 1)
    assert len(freezes) == 2
    # While it runs, the heap is trimmed again at every interval (no new freeze).
    await _poll_then_wait(hass, mock_config_entry, const.HEAP_TRIM_INTERVAL.total_seconds() + 1)
    assert freezes[2:] == [-1]
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert gc.get_freeze_count() == 0
    async_fire_time_changed(hass, dt_util.utcnow() + 2 * const.HEAP_TRIM_INTERVAL)
    await hass.async_block_till_done()
    assert freezes[3:] == []  # unloaded: no more trims


async def test_a_small_plant_is_never_frozen(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    sim_server: object,
    freezes: list[int],
) -> None:
    assert await set_up(hass, mock_config_entry)
    for seconds in (const.GC_FREEZE_QUIET + 1,) * 3 + (
        const.HEAP_TRIM_INTERVAL.total_seconds() + 1,
    ):
        await _poll_then_wait(hass, mock_config_entry, seconds)
    assert freezes == []  # neither frozen nor trimmed
    assert gc.get_freeze_count() == 0
