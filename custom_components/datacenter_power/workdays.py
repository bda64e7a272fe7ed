"""Non-working days from Home Assistant's own ``workday`` integration, for the load forecasts.

A data hall's load follows the business around it: on a public holiday it looks like a
Sunday, and a forecaster that does not know the day is a holiday is wrong all of that day and
learns a false weekday shape from it afterwards. Rather than a holiday table of our own, the
options name a workday binary sensor; its ``workday.check_date`` action answers for any date
(past ones for the history the forecaster learns from, future ones for the horizon) with the
country, province, extra and removed holidays and working days the user set up there.

Answers are kept per date: a date's answer only changes when the workday entry is edited, so
the cache is dropped when the chosen entity changes or once a day.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util import dt as dt_util

from .const import LOGGER

WORKDAY_DOMAIN: Final = "workday"
CHECK_DATE: Final = "check_date"


class WorkdayCalendar:
    """Which local dates are not working days, as one workday binary sensor says."""

    def __init__(self, hass: HomeAssistant, entity_id: str) -> None:
        self.hass = hass
        self.entity_id = entity_id
        self._answers: dict[date, bool] = {}
        self._filled_on: date | None = None
        self._failing = False

    async def async_non_working(self, first: date, last: date) -> frozenset[date] | None:
        """The dates in ``first``..``last`` that are not working days, or None when the
        workday entity cannot answer (removed, not loaded): the caller keeps what it had."""
        today = dt_util.now().date()
        if self._filled_on != today:
            self._answers.clear()  # edits of the workday entry show within a day
            self._filled_on = today
        day = first
        while day <= last:
            if day not in self._answers:
                answer = await self._async_check(day)
                if answer is None:
                    return None
                self._answers[day] = answer
            day += timedelta(days=1)
        return frozenset(
            d for d, works in self._answers.items() if first <= d <= last and not works
        )

    async def _async_check(self, day: date) -> bool | None:
        try:
            response = await self.hass.services.async_call(
                WORKDAY_DOMAIN,
                CHECK_DATE,
                {"entity_id": self.entity_id, CHECK_DATE: day},
                blocking=True,
                return_response=True,
            )
            answer = (response or {}).get(self.entity_id)
            works = answer.get("workday") if isinstance(answer, dict) else None
        except HomeAssistantError as err:
            works, reason = None, str(err) or type(err).__name__
        else:
            reason = "no answer for the date"
        if isinstance(works, bool):
            if self._failing:
                LOGGER.info("Working days are read from %s again", self.entity_id)
            self._failing = False
            return works
        if not self._failing:
            LOGGER.warning(
                "Cannot read working days from %s (%s); the forecasts keep the non-working "
                "days they had until it answers",
                self.entity_id,
                reason,
            )
        self._failing = True
        return None
