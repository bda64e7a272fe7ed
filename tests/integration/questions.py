"""The open question of a plant and an answer to it: for the decision-needed tests (drain and
relief questions), which read and answer questions the same way."""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.const import DOMAIN


def only_question(entry: MockConfigEntry) -> tuple[str, Any]:
    """The id and the question of the one decision the plant asks (fails if not exactly one)."""
    ((did, q),) = entry.runtime_data.questions.current.items()
    return did, q


async def answer_decision(hass: HomeAssistant, did: str, choice: str) -> dict[str, Any]:
    """``datacenter_power.answer_decision`` with ``choice``; its response."""
    response = await hass.services.async_call(
        DOMAIN,
        "answer_decision",
        {"decision_id": did, "choice": choice},
        blocking=True,
        return_response=True,
    )
    assert isinstance(response, dict)
    return response


def decision_repair(hass: HomeAssistant, entry: MockConfigEntry, element: str) -> dict[str, str]:
    """The placeholders of the repair "Decision needed at ``element``", which must be open,
    critical and fixable (its fix flow offers the choices)."""
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, f"decision_needed_{element}_{entry.entry_id}"
    )
    assert issue is not None, f"no decision-needed repair for {element}"
    assert issue.severity is ir.IssueSeverity.CRITICAL
    assert issue.is_fixable
    return dict(issue.translation_placeholders or {})
