"""Announced work from a calendar: parsing event texts, and the forecast taking it in (with Home
Assistant's own local calendar as the calendar)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.announced import parse_work, scheduled_loads
from custom_components.datacenter_power.const import CONF_CALENDAR_ENTITY, DOMAIN
from custom_components.datacenter_power.engine.observation import ScheduledLoad
from dcp_sim.server import PlantServer

from .conftest import history_rows, store_history

CIRCUITS = ("c01", "c02", "c03", "a01")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Burn-in c01, c02 +4 A", (("c01", "c02"), 4.0)),
        ("Load test on c03\nextra 2.5A per circuit", (("c03",), 2.5)),
        ("a01: 6 amps for the new rack", (("a01",), 6.0)),
        ("c01 c01 c02 3 amperes", (("c01", "c02"), 3.0)),
        ("Meeting about c01", None),  # no amount
        ("Burn-in +4 A", None),  # no known circuit
        ("c099 +4 A", None),  # c099 is not c01..
        ("c01 costs 4 Amsterdam", None),
    ],
)
def test_parse_work(text: str, expected: tuple[tuple[str, ...], float] | None) -> None:
    """Circuits are whole plant ids; the amount is a number followed by A/amps."""
    assert parse_work(text, CIRCUITS) == expected


def test_scheduled_loads_from_calendar_events() -> None:
    """Timed and all-day events become scheduled loads; others are skipped."""
    events: list[dict[str, Any]] = [
        {
            "start": "2026-03-02T10:00:00+00:00",
            "end": "2026-03-02T12:00:00+00:00",
            "summary": "Burn-in c01 +4 A",
        },
        {"start": "2026-03-03", "end": "2026-03-04", "summary": "Soak", "description": "c02 2A"},
        {
            "start": "2026-03-02T12:00:00+00:00",
            "end": "2026-03-02T11:00:00+00:00",
            "summary": "c01 +4 A",
        },  # ends before it starts
        {"start": "soon", "end": "later", "summary": "c01 +4 A"},
        {
            "start": "2026-03-02T10:00:00+00:00",
            "end": "2026-03-02T12:00:00+00:00",
            "summary": "Lunch",
        },
    ]
    loads = scheduled_loads(events, CIRCUITS)
    start = dt_util.parse_datetime("2026-03-02T10:00:00+00:00")
    assert start is not None
    assert loads[0] == ScheduledLoad(start.timestamp(), start.timestamp() + 7200, ("c01",), 4.0)
    assert loads[1].circuits == ("c02",)
    assert loads[1].end_s - loads[1].start_s == 86400
    assert len(loads) == 2


@pytest.fixture
def flat_c01(scenario_doc: dict[str, Any]) -> None:
    """c01 draws a steady 5 A (no daily cycle), so announced work is all its forecast changes."""
    scenario_doc["circuits"][0]["load"] = {"mean_a": 5, "noise": 0.02}


async def test_calendar_work_enters_the_forecast(
    flat_c01: None,
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    mock_config_entry: MockConfigEntry,
    tmp_path: Path,
) -> None:
    """An event "Burn-in c01 +4 A" in 1-3 h on a local calendar raises c01's forecast by 4 A
    there and nowhere else."""
    server = sim_server[0]
    rows = history_rows(server, server.plant.t_s + 48 * 3600)
    store_history(hass_storage, mock_config_entry, rows)
    (tmp_path / ".storage").mkdir()
    hass.config.config_dir = str(tmp_path)  # the local calendar keeps its .ics file there
    calendar = MockConfigEntry(domain="local_calendar", data={"calendar_name": "Work"})
    calendar.add_to_hass(hass)
    assert await hass.config_entries.async_setup(calendar.entry_id)
    await hass.async_block_till_done()
    now = dt_util.utcnow()
    await hass.services.async_call(
        "calendar",
        "create_event",
        {
            "entity_id": "calendar.work",
            "summary": "Burn-in c01 +4 A",
            "start_date_time": now + timedelta(hours=1),
            "end_date_time": now + timedelta(hours=3),
        },
        blocking=True,
    )
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry,
        options={**mock_config_entry.options, CONF_CALENDAR_ENTITY: "calendar.work"},
    )
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    forecast = mock_config_entry.runtime_data.decisions
    assert [(w.circuits, w.extra_a) for w in forecast.policy.schedule] == [(("c01",), 4.0)]
    response = await hass.services.async_call(
        DOMAIN, "get_forecast", {"component": "c01"}, blocking=True, return_response=True
    )
    assert response is not None
    start, step = float(response["start_s"]), float(response["step_s"])
    p50 = response["p50"]

    def at(hours: float) -> float:
        return float(p50[int((now.timestamp() + hours * 3600 - start) // step)])

    assert at(2) - at(5) == pytest.approx(4.0, abs=0.5)
    assert at(5) == pytest.approx(at(0.1), abs=0.5)
