"""The integration's icon and logo are served by Home Assistant from the integration's own
``brand/`` folder (HA 2026.3+ brands proxy), so its tiles are not blank."""

from __future__ import annotations

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.datacenter_power.const import DOMAIN

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("image", ["icon.png", "icon@2x.png", "logo.png", "dark_icon.png"])
async def test_brand_images_are_served(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, image: str
) -> None:
    """GET /api/brands/integration/datacenter_power/<image> answers with our PNG."""
    assert await async_setup_component(hass, "brands", {})
    client = await hass_client()
    resp = await client.get(f"/api/brands/integration/{DOMAIN}/{image}")
    assert resp.status == 200
    assert (await resp.read()).startswith(PNG)
