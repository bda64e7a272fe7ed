"""Non-working days come from Home Assistant's real ``workday`` integration (issue 21)."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.const import (
    CONF_HOST,
    CONF_PORT,
    CONF_WORKDAY_ENTITY,
    DEFAULT_OPTIONS,
    DOMAIN,
)
from custom_components.datacenter_power.workdays import WorkdayCalendar
from dcp_sim.server import PlantServer


@pytest.fixture
async def workday_sensor(hass: HomeAssistant) -> str:
    """A workday sensor for Germany (Hesse), with one extra company holiday."""
    entry = MockConfigEntry(
        domain="workday",
        title="Frankfurt working days",
        options={
            "name": "Frankfurt working days",
            "country": "DE",
            "province": "HE",
            "excludes": ["sat", "sun", "holiday"],
            "days_offset": 0,
            "workdays": ["mon", "tue", "wed", "thu", "fri"],
            "add_holidays": ["2026-12-28"],
            "remove_holidays": [],
            "language": "de",
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    entity_id = er.async_get(hass).async_get_entity_id("binary_sensor", "workday", entry.entry_id)
    assert entity_id is not None
    return entity_id


async def test_holidays_and_weekends_are_non_working(
    hass: HomeAssistant, workday_sensor: str
) -> None:
    calendar = WorkdayCalendar(hass, workday_sensor)
    days = await calendar.async_non_working(date(2026, 12, 21), date(2027, 1, 3))
    assert days == {
        date(2026, 12, 25),  # Christmas Day (Friday)
        date(2026, 12, 26),  # Saturday, also a holiday
        date(2026, 12, 27),  # Sunday
        date(2026, 12, 28),  # the company's own holiday, added in the workday options
        date(2027, 1, 1),  # New Year (Friday)
        date(2027, 1, 2),
        date(2027, 1, 3),
    }
    # Past dates answer too: the history the forecaster learns from (Whit Monday 2026).
    assert await calendar.async_non_working(date(2026, 5, 25), date(2026, 5, 25)) == {
        date(2026, 5, 25)
    }


async def test_a_missing_sensor_answers_none_and_warns_once(
    hass: HomeAssistant, workday_sensor: str, caplog: pytest.LogCaptureFixture
) -> None:
    calendar = WorkdayCalendar(hass, "binary_sensor.gone")
    with caplog.at_level(logging.WARNING):
        assert await calendar.async_non_working(date(2026, 12, 21), date(2026, 12, 27)) is None
        assert await calendar.async_non_working(date(2026, 12, 21), date(2026, 12, 27)) is None
    warnings = [r for r in caplog.records if "Cannot read working days" in r.getMessage()]
    assert len(warnings) == 1


def _weekday_near(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


async def test_the_forecasts_learn_the_chosen_sensors_non_working_days(
    hass: HomeAssistant, sim_server: tuple[PlantServer, int]
) -> None:
    """The option names a workday sensor; at its next tick the decision coordinator hands
    the policy the non-working days of the kept history and of the horizon."""
    today = dt_util.now().date()
    ahead, past = (
        _weekday_near(today + timedelta(days=1)),
        _weekday_near(today - timedelta(days=30)),
    )
    workday = MockConfigEntry(
        domain="workday",
        title="Site working days",
        options={
            "name": "Site working days",
            "country": None,
            "excludes": ["sat", "sun", "holiday"],
            "days_offset": 0,
            "workdays": ["mon", "tue", "wed", "thu", "fri"],
            "add_holidays": [ahead.isoformat(), past.isoformat()],
            "remove_holidays": [],
        },
    )
    workday.add_to_hass(hass)
    assert await hass.config_entries.async_setup(workday.entry_id)
    await hass.async_block_till_done()
    sensor = er.async_get(hass).async_get_entity_id("binary_sensor", "workday", workday.entry_id)
    assert sensor is not None
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Plant",
        unique_id="plant-workdays",
        data={CONF_HOST: "127.0.0.1", CONF_PORT: sim_server[1]},
        options={**DEFAULT_OPTIONS, CONF_WORKDAY_ENTITY: sensor},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await entry.runtime_data.decisions.async_refresh()
    await hass.async_block_till_done()
    days = entry.runtime_data.decisions.policy.non_working_days
    assert {ahead, past} <= days  # a company holiday ahead and one in the history
    assert _weekday_near(today + timedelta(days=8)) not in days
    assert min(days) <= today - timedelta(days=40)  # the six weeks the history keeps
    assert await hass.config_entries.async_unload(entry.entry_id)
