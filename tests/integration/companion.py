"""A phone, as the Home Assistant Companion app talks to Home Assistant's real ``mobile_app``.

THE one mock of the blueprint tests: there is no phone here, so this object does what the app
does over Home Assistant's public APIs, nothing more: it registers through
``POST /api/mobile_app/registrations`` (with ``app_data: {push_websocket_channel: true}``, as
the app does when it keeps a websocket open), opens the local push channel
(``mobile_app/push_notification_channel`` on the websocket API) and receives what
``notify.mobile_app_<name>`` sends on it, and presses a notification's button by posting the
``mobile_app_notification_action`` event to its registered webhook (``fire_event``, as the
Android and iOS apps send it). Everything between them is Home Assistant's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import slugify

NOTIFICATION_ACTION = "mobile_app_notification_action"


class Phone:
    """A registered phone with its push channel open."""

    def __init__(
        self, hass: HomeAssistant, name: str, client: Any, ws: Any, webhook_id: str
    ) -> None:
        """Use :meth:`register`."""
        self.hass = hass
        self.name = name
        self.client = client
        self.ws = ws
        self.webhook_id = webhook_id
        self.received: list[dict[str, Any]] = []

    @property
    def notify_service(self) -> str:
        """The legacy notify action ``mobile_app`` registers for it (what blueprints take)."""
        return f"notify.mobile_app_{slugify(self.name)}"

    @classmethod
    async def register(
        cls,
        hass: HomeAssistant,
        hass_client: Callable[[], Awaitable[Any]],
        hass_ws_client: Callable[[HomeAssistant], Awaitable[Any]],
        name: str = "Pixel",
    ) -> Phone:
        """Register through the app's registration API and open the push channel."""
        # Everything that registers HTTP views first: the test client freezes the router
        # (notify, which mobile_app loads once a phone registers, needs repairs' views).
        for domain in ("repairs", "notify", "mobile_app"):
            assert await async_setup_component(hass, domain, {})
        client = await hass_client()
        resp = await client.post(
            "/api/mobile_app/registrations",
            json={
                "app_id": "io.homeassistant.companion.android",
                "app_name": "Home Assistant",
                "app_version": "2026.10.1-full",
                "device_name": name,
                "device_id": f"test-{slugify(name)}",
                "manufacturer": "Google",
                "model": "Pixel 8",
                "os_name": "Android",
                "os_version": "16",
                "supports_encryption": False,
                "app_data": {"push_websocket_channel": True},
            },
        )
        assert resp.status == 201, await resp.text()
        webhook_id = (await resp.json())["webhook_id"]
        ws = await hass_ws_client(hass)
        await ws.send_json(
            {"id": 1, "type": "mobile_app/push_notification_channel", "webhook_id": webhook_id}
        )
        answer = await ws.receive_json()
        assert answer["success"], answer
        phone = cls(hass, name, client, ws, webhook_id)
        service = phone.notify_service.removeprefix("notify.")
        for _ in range(100):
            if hass.services.has_service("notify", service):
                break
            await asyncio.sleep(0.02)
        assert hass.services.has_service("notify", service)
        return phone

    async def next_notification(self, timeout_s: float = 20.0) -> dict[str, Any]:
        """The next notification pushed to the phone (title, message, data)."""
        msg = await asyncio.wait_for(self.ws.receive_json(), timeout_s)
        assert msg["type"] == "event", msg
        note: dict[str, Any] = msg["event"]
        self.received.append(note)
        return note

    async def nothing_more(self, wait_s: float = 0.5) -> None:
        """No further notification arrives within ``wait_s``."""
        try:
            msg = await asyncio.wait_for(self.ws.receive_json(), wait_s)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected notification: {msg}")

    async def press(self, action: str) -> None:
        """Tap a notification button: the app posts the event to its webhook."""
        resp = await self.client.post(
            f"/api/webhook/{self.webhook_id}",
            json={
                "type": "fire_event",
                "data": {"event_type": NOTIFICATION_ACTION, "event_data": {"action": action}},
            },
        )
        assert resp.status == 200, await resp.text()
