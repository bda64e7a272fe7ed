"""Events that reach automations fire once, after Home Assistant has started (issue 23, item 2).

At a start the plant is set up before automations are armed: a proposal fired then never
reached the phone. A reload (an options change, a retried setup) announced the open proposal
and the prediction a second time. Here the real integration, in approval mode, on the worn
plant served by the simulator, with Home Assistant's real start sequence (``async_start``: the
automations arm in its startup jobs).
"""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.components import automation
from homeassistant.core import CoreState, Event, HomeAssistant, callback
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import async_capture_events

from custom_components.datacenter_power.events import (
    EVENT_ACTIVITY,
    EVENT_FAILURE_PREDICTED,
    EVENT_PROPOSAL,
)
from custom_components.datacenter_power.notices import _NOTICES
from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from dcp_sim.server import PlantServer

from .wear import setup_worn, wear_plant


@pytest.fixture
def plant() -> Plant:
    """ATS-1 wearing out (served from the start of its history; ``setup_worn`` steps it)."""
    return Plant(parse_scenario(wear_plant()), start_s=None)


def _capture(hass: HomeAssistant) -> list[Event]:
    """Proposals and predictions, in the order they are fired."""
    events: list[Event] = []

    @callback
    def record(event: Event) -> None:
        events.append(event)

    for kind in (EVENT_FAILURE_PREDICTED, EVENT_PROPOSAL):
        hass.bus.async_listen(kind, record)
    return events


async def test_an_automation_hears_the_proposal_of_a_plant_set_up_during_the_start(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """Home Assistant starting: automations loaded, the plant set up (it proposes at once),
    then the start completes. The automation hears the prediction and the proposal, once
    each, the prediction first (before: both were fired during the setup, before the
    automation was armed, and it heard nothing)."""
    hass.set_state(CoreState.not_running)
    assert await async_setup_component(
        hass,
        automation.DOMAIN,
        {
            automation.DOMAIN: [
                {
                    "alias": alias,
                    "triggers": [{"trigger": "event", "event_type": kind}],
                    "actions": [{"event": "heard", "event_data": {"kind": kind}}],
                }
                for alias, kind in (("p", EVENT_FAILURE_PREDICTED), ("q", EVENT_PROPOSAL))
            ]
        },
    )
    heard = async_capture_events(hass, "heard")
    events = _capture(hass)
    await setup_worn(hass, hass_storage, sim_server[0], sim_server[1], "approval")
    assert events == []  # nothing before the start
    await hass.async_start()
    await hass.async_block_till_done()
    assert [e.event_type for e in events] == [EVENT_FAILURE_PREDICTED, EVENT_PROPOSAL]
    assert [e.data["kind"] for e in heard] == [EVENT_FAILURE_PREDICTED, EVENT_PROPOSAL]


async def test_a_reload_does_not_announce_again_and_a_restart_does_once(
    hass: HomeAssistant, hass_storage: dict[str, Any], sim_server: tuple[PlantServer, int]
) -> None:
    """Reloading the entry (what an options change does) leaves the open proposal and the
    standing prediction announced once (before: each was fired again). A restart (Home
    Assistant's memory gone, the entry set up before the start) announces both again, once,
    after the start. The activity events device triggers and the
    logbook use are not repeated by the reload either."""
    events = _capture(hass)
    activity = async_capture_events(hass, EVENT_ACTIVITY)
    entry = await setup_worn(hass, hass_storage, sim_server[0], sim_server[1], "approval")
    assert [e.event_type for e in events] == [EVENT_FAILURE_PREDICTED, EVENT_PROPOSAL]

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await entry.runtime_data.decisions.async_refresh()
    await hass.async_block_till_done()
    assert len(events) == 2
    # nor do the device triggers' activity events (the logbook's entries)
    for kind in ("failure_predicted", "proposal"):
        assert sum(e.data["type"] == kind for e in activity) == 1, kind

    # A restart: a new Home Assistant remembers nothing and sets the plant up while starting.
    assert await hass.config_entries.async_unload(entry.entry_id)
    hass.data.pop(_NOTICES)
    hass.set_state(CoreState.not_running)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert len(events) == 2
    await hass.async_start()
    await hass.async_block_till_done()
    assert [e.event_type for e in events[2:]] == [EVENT_FAILURE_PREDICTED, EVENT_PROPOSAL]
    assert events[3].data["component"] == "ats1"  # (its plan, and so its id, may differ)
