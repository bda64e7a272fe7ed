"""The per-device listeners of a refresh (``device_listeners.py``) on their own: a device's
listeners are told only when its reading changed, all of them when the refresh's success
changed, a slice at a time with the event loop running in between."""

from __future__ import annotations

import pytest
from homeassistant.core import HomeAssistant

from custom_components.datacenter_power import const
from custom_components.datacenter_power.device.models import Reading
from custom_components.datacenter_power.device_listeners import DeviceListeners

A: Reading = object()  # type: ignore[assignment]  # a reading is compared, never read here
B: Reading = object()  # type: ignore[assignment]


async def test_only_the_devices_whose_reading_changed_are_told(hass: HomeAssistant) -> None:
    """A listener added after a refresh starts from that refresh's reading; the next refresh
    tells only the device whose reading changed; a failed refresh tells everyone (their
    availability changed), and so does the success after it."""
    listeners = DeviceListeners(hass)
    told: list[str] = []
    remove_c1 = listeners.async_add("c1", lambda: told.append("c1"), {"c1": A, "c2": A})
    listeners.async_add("c2", lambda: told.append("c2"), {"c1": A, "c2": A})

    listeners.async_refreshed({"c1": A, "c2": A}, True)  # success changed (none seen yet)
    assert told == ["c1", "c2"]
    told.clear()
    listeners.async_refreshed({"c1": A, "c2": B}, True)
    assert told == ["c2"]
    told.clear()
    listeners.async_refreshed({"c1": A, "c2": B}, True)
    assert told == []
    listeners.async_refreshed({"c1": A, "c2": B}, False)
    assert told == ["c1", "c2"]
    told.clear()
    remove_c1()
    listeners.async_refreshed({"c1": B, "c2": B}, True)
    assert told == ["c2"]


async def test_a_large_change_is_told_in_slices(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``DISPATCH_SLICE`` devices are told at once, the rest after the loop ran; a listener
    that raises is logged and the others are still told."""
    monkeypatch.setattr(const, "DISPATCH_SLICE", 2)
    listeners = DeviceListeners(hass)
    told: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    listeners.async_add("d0", broken, None)
    for pid in ("d1", "d2", "d3", "d4"):
        listeners.async_add(pid, lambda pid=pid: told.append(pid), None)
    listeners.async_refreshed(dict.fromkeys(("d0", "d1", "d2", "d3", "d4"), A), True)
    assert told == ["d1"]  # d0 (which raised) and d1: one slice
    await hass.async_block_till_done()
    assert told == ["d1", "d2", "d3", "d4"]

    listeners.async_refreshed(dict.fromkeys(("d0", "d1", "d2", "d3", "d4"), B), True)
    listeners.async_clear()  # unloading: what waits is not told
    await hass.async_block_till_done()
    assert told == ["d1", "d2", "d3", "d4", "d1"]
