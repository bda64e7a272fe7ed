"""Events that reach automations: fired once, and only once Home Assistant has started.

A plant is set up during Home Assistant's start, before automations are armed (they arm in a
startup job just before ``EVENT_HOMEASSISTANT_STARTED``): a proposal or a prediction fired then
reached no phone. And an entry set up twice in one run (a reload after an options change, a
retried setup) announced the same open proposal and prediction twice. :class:`Notices` fixes
both for one plant:

* :meth:`Notices.fire` fires an event now when Home Assistant runs, else queues it (in order)
  until it has started;
* :meth:`Notices.claim` says whether an open condition (a proposal, a prediction, a failed unit)
  is new, so it is announced once; :meth:`Notices.release` forgets it when it closes, so it is
  announced again if it comes back.

The claims live in ``hass.data`` for the whole run, so a reload does not announce again what is
still open; a restart starts with none, so everything still open is announced again, once, after
the start. What waits for the start stays queued when the entry unloads before it (a retried or
reloaded setup finds its claims taken and adds nothing); a removed plant's is dropped.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from homeassistant.core import Context, CoreState, HomeAssistant, callback
from homeassistant.helpers.start import async_at_started
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN

_NOTICES: HassKey[dict[str, Notices]] = HassKey(f"{DOMAIN}_notices")


@dataclass
class _Queued:
    event_type: str
    data: Mapping[str, Any]
    context: Context | None
    key: str | None


@dataclass
class Notices:
    """What one plant has announced in this run, and what waits for the start."""

    hass: HomeAssistant
    claimed: set[str] = field(default_factory=set)
    queued: list[_Queued] = field(default_factory=list)
    _waiting: bool = False

    def claim(self, key: str) -> bool:
        """True when ``key`` is not announced yet in this run (it is from now on)."""
        if key in self.claimed:
            return False
        self.claimed.add(key)
        return True

    def release(self, key: str) -> bool:
        """``key`` closed: it is announced again if it opens again; True when its event was
        fired (one still waiting for the start is dropped: nothing was announced)."""
        if key not in self.claimed:
            return False
        self.claimed.discard(key)
        waiting = [q for q in self.queued if q.key == key]
        self.queued = [q for q in self.queued if q.key != key]
        return not waiting

    def release_closed(self, prefix: str, still_open: Collection[str]) -> None:
        """Release every claim ``prefix + name`` whose ``name`` is not in ``still_open`` (the
        conditions that closed, including while the entry was reloading)."""
        for key in self.claimed_with(prefix):
            if key.removeprefix(prefix) not in still_open:
                self.release(key)

    def claimed_with(self, prefix: str) -> set[str]:
        """The claimed keys that start with ``prefix``."""
        return {k for k in self.claimed if k.startswith(prefix)}

    @callback
    def fire(
        self,
        event_type: str,
        data: Mapping[str, Any],
        *,
        context: Context | None = None,
        key: str | None = None,
    ) -> None:
        """Fire now when Home Assistant runs, else once it has started (``key``: the claim
        the event announces; releasing it drops the event while it waits)."""
        if self.hass.state is CoreState.running and not self.queued:
            self.hass.bus.async_fire(event_type, data, context=context)
            return
        self.queued.append(_Queued(event_type, data, context, key))
        if not self._waiting:
            self._waiting = True
            async_at_started(self.hass, self._flush)  # (at once when already started)

    @callback
    def _flush(self, _hass: HomeAssistant) -> None:
        self._waiting = False
        queued, self.queued = self.queued, []
        for q in queued:
            self.hass.bus.async_fire(q.event_type, q.data, context=q.context)


def notices_for(hass: HomeAssistant, entry_id: str) -> Notices:
    """The notices of one plant (kept for the whole run of Home Assistant)."""
    every = hass.data.setdefault(_NOTICES, {})
    notices = every.get(entry_id)
    if notices is None:
        notices = every[entry_id] = Notices(hass)
    return notices


def forget_notices(hass: HomeAssistant, entry_id: str) -> None:
    """A removed plant: nothing of it is remembered, and nothing it queued is fired."""
    notices = hass.data.get(_NOTICES, {}).pop(entry_id, None)
    if notices is not None:
        notices.queued.clear()
