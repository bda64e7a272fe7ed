"""Every name the integration publishes is declared once, in ``events.py``: no other module
declares a bus event, the logbook has an icon for every activity type, and every device trigger
type and repair issue has its words in translations/en.json."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from custom_components.datacenter_power import events
from custom_components.datacenter_power.logbook import ICONS

INTEGRATION = Path(__file__).resolve().parent.parent / "custom_components" / "datacenter_power"


def _declares_an_event(node: ast.stmt) -> str | None:
    """The name a module-level statement declares when it is a bus event: an ``EVENT_`` name,
    or an f-string ``{DOMAIN}_...`` that is not a ``hass.data`` key."""
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        name, value = node.target.id, node.value
    elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
        name, value = node.targets[0].id, node.value
    else:
        return None
    if name.startswith("EVENT_"):
        return name
    text = "" if value is None else ast.unparse(value)
    if text.startswith("f'{DOMAIN}_") and "HassKey" not in ast.unparse(node):
        return name
    return None


def test_no_module_but_events_declares_a_bus_event() -> None:
    """A bus event's name is declared in ``events.py`` only (it was declared twice before)."""
    offenders = [
        f"{path.name}: {name}"
        for path in sorted(INTEGRATION.glob("*.py"))
        if path.name != "events.py"
        for node in ast.parse(path.read_text()).body
        if (name := _declares_an_event(node)) is not None and name != "CAUSES"
    ]
    assert not offenders, offenders


def test_each_kind_of_name_is_unique() -> None:
    """No two bus events, activity types or repair issues share a string."""
    values = vars(events)
    bus = [v for k, v in values.items() if k.startswith("EVENT_")]
    issues = [v for k, v in values.items() if k.startswith("ISSUE_")]
    assert len(bus) == len(set(bus))
    assert len(issues) == len(set(issues))
    assert len(events.ACTIVITY_TYPES) == len(set(events.ACTIVITY_TYPES))
    assert set(events.TRIGGER_TYPES) <= set(events.ACTIVITY_TYPES)


def test_every_activity_type_has_an_icon_and_every_trigger_and_issue_its_words() -> None:
    """The logbook tells every activity type apart; the automation editor names every trigger
    type; every repair issue has a title."""
    assert set(ICONS) == set(events.ACTIVITY_TYPES)
    strings = json.loads((INTEGRATION / "translations" / "en.json").read_text())
    assert set(events.TRIGGER_TYPES) <= set(strings["device_automation"]["trigger_type"])
    issues = {v for k, v in vars(events).items() if k.startswith("ISSUE_")}
    assert issues == set(strings["issues"])
