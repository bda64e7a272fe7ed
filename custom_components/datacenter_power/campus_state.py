"""What a hall shows the campus, read from Home Assistant's state machine.

The hall's campus documents are made from the states of this integration's own entities (found
through the entity registry by their unique ids), so the campus sees exactly what the hall's own
dashboard shows, and the campus modules need none of the integration's internals beyond the
continuous limits (the plant's topology) and the open decisions, which have no entity: those are
read from the plant's question book (``questions.QuestionBook``: its open questions described as
its event and repair describe them). One JSON document per ATS/MPDU, one for the hall, one for
its open decisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util

from .questions import QuestionBook
from .runtime import DataCenterPowerConfigEntry

ELEMENT_KEYS: Final = {
    "load_current": "load",  # an ATS's load
    "current": "load",  # an MPDU's
    "limit_utilization": "utilization",
    "forecast_peak": "forecast_peak",
    "health": "health",
    "failure_risk": "failure_risk",
    "time_to_failure": "time_to_failure",
}
"""Entity key (the last part of its unique id) -> its field in an element's document."""
PLANT_KEYS: Final = {
    "plant:plant_status": "status",
    "plant:plant_headroom": "headroom",
    "plant:components_at_risk": "at_risk",
    "plant:proposal": "proposal",
    "migration": "migration",
}
"""The plant-wide entities the hall's document reads (unique id without the entry's prefix)."""
_NONE: Final = (STATE_UNKNOWN, STATE_UNAVAILABLE)


@dataclass
class HallEntities:
    """The entity ids the campus documents read, by device."""

    elements: dict[str, dict[str, str]] = field(default_factory=dict)
    """ATS/MPDU plant id -> field -> entity id."""
    kinds: dict[str, str] = field(default_factory=dict)
    """ATS/MPDU plant id -> ``ATS`` or ``MPDU``."""
    names: dict[str, str] = field(default_factory=dict)
    """ATS/MPDU plant id -> its device's name in this Home Assistant."""
    plant: dict[str, str] = field(default_factory=dict)
    """Field -> entity id of the plant-wide entities."""

    def all_ids(self) -> dict[str, str]:
        """Entity id -> the device it belongs to (``None``-free: plant-wide ones to ``""``)."""
        out = dict.fromkeys(self.plant.values(), "")
        for pid, ids in self.elements.items():
            out.update(dict.fromkeys(ids.values(), pid))
        return out


def hall_entities(hass: HomeAssistant, entry: DataCenterPowerConfigEntry) -> HallEntities:
    """The entry's entities the campus reads (ATSs and MPDUs: the devices with a health)."""
    registry = er.async_get(hass)
    devices = dr.async_get(hass)
    prefix = f"{entry.unique_id}:"
    found = HallEntities()
    by_device: dict[str, dict[str, str]] = {}
    device_of: dict[str, str | None] = {}
    for reg in er.async_entries_for_config_entry(registry, entry.entry_id):
        if not reg.unique_id.startswith(prefix):
            continue
        rest = reg.unique_id.removeprefix(prefix)
        if rest in PLANT_KEYS:
            found.plant[PLANT_KEYS[rest]] = reg.entity_id
            continue
        pid, _, key = rest.rpartition(":")
        if pid and key in ELEMENT_KEYS:
            by_device.setdefault(pid, {})[key] = reg.entity_id
            device_of[pid] = reg.device_id
    for pid, keys in by_device.items():
        if "health" not in keys:
            continue  # not an ATS or MPDU
        found.elements[pid] = {ELEMENT_KEYS[k]: eid for k, eid in keys.items()}
        found.kinds[pid] = "ATS" if "load_current" in keys else "MPDU"
        device = devices.async_get(device_of[pid] or "")
        found.names[pid] = (device.name_by_user or device.name or pid) if device else pid
    return found


def _number(state: State | None, digits: int = 1) -> float | None:
    if state is None or state.state in _NONE:
        return None
    try:
        return round(float(state.state), digits)
    except ValueError:
        return None


def _attrs(state: State | None) -> Mapping[str, Any]:
    return {} if state is None else state.attributes


def element_document(
    hass: HomeAssistant,
    ids: Mapping[str, str],
    limit_a: float | None,
    headroom: Mapping[str, Any],
    pid: str,
) -> dict[str, Any]:
    """One ATS's or MPDU's document (``None`` for what is unknown now)."""
    states = {name: hass.states.get(eid) for name, eid in ids.items()}
    load = states.get("load")
    risk = states.get("failure_risk")
    ttf = states.get("time_to_failure")
    room = headroom.get(pid)
    return {
        "available": load is not None and load.state != STATE_UNAVAILABLE,
        "load_a": _number(load),
        "limit_a": None if limit_a is None else round(limit_a, 1),
        "utilization_pct": _number(states.get("utilization")),
        "forecast_peak_a": _number(states.get("forecast_peak")),
        "headroom_a": round(float(room), 1) if isinstance(room, (int, float)) else None,
        "health_pct": _number(states.get("health"), 0),
        "failure_risk": None if risk is None or risk.state in _NONE else risk.state.upper(),
        "failure_probability": _attrs(risk).get("failure_probability"),
        "failed": bool(_attrs(risk).get("failed", False)),
        "time_to_failure_h": _number(ttf),
        "ttf_estimate": _attrs(ttf).get("estimate"),
    }


def hall_document(
    hass: HomeAssistant, plant: Mapping[str, str], elements: int, run: str
) -> dict[str, Any]:
    """The hall's own document: status, headroom, risk, migration, the open proposal and the
    hall's ``run`` (a command names the proposal by its id and the run it was shown in)."""
    states = {name: hass.states.get(eid) for name, eid in plant.items()}
    status = states.get("status")
    headroom = states.get("headroom")
    at_risk = states.get("at_risk")
    migration = states.get("migration")
    proposal = states.get("proposal")
    p_attrs = _attrs(proposal)
    open_proposal = None
    if p_attrs.get("proposal_id"):
        open_proposal = {
            "id": p_attrs["proposal_id"],
            "kind": p_attrs.get("kind"),
            "component": p_attrs.get("component"),
            "reason": p_attrs.get("reason"),
            "plan": p_attrs.get("plan"),
        }
    s_attrs = _attrs(status)
    return {
        "elements": elements,
        "status": None if status is None else status.state,
        "status_detail": {k: s_attrs.get(k) for k in ("severity", "summary", "what_to_do")},
        "headroom_a": _number(headroom),
        "tightest": _attrs(headroom).get("tightest"),
        "at_risk": None if at_risk is None or at_risk.state in _NONE else int(float(at_risk.state)),
        "at_risk_detail": {
            k: _attrs(at_risk).get(k) for k in ("components", "failed", "overload_forecast")
        },
        "migration": None if migration is None else migration.state,
        "migration_detail": dict(_attrs(migration)),
        "proposal_text": None if proposal is None else proposal.state,
        "proposal": open_proposal,
        "run": run,
        "approval_mode": bool(p_attrs.get("approval_mode", False)),
    }


def _iso(ts: Any) -> str | None:
    """An epoch time as ISO 8601 UTC (the campus may be in another time zone)."""
    if not isinstance(ts, (int, float)):
        return None
    return dt_util.utc_from_timestamp(ts).isoformat(timespec="seconds")


def decision_document(entry: DataCenterPowerConfigEntry, run: str) -> dict[str, Any]:
    """The hall's open decisions: ``decision``, the one the campus answers (the longest open),
    with what names it (id, unit, the choices offered, the fallback and the time it is taken
    without an answer); ``detail``, the same with its numbers (reason, deadline, each choice's
    summary; refreshed at every plan: a measurement); ``open``, every open decision; the plant's
    policy ``mode`` and the hall's ``run`` (an answer names the decision and the run)."""
    runtime = getattr(entry, "runtime_data", None)
    book: QuestionBook | None = None if runtime is None else runtime.questions
    doc: dict[str, Any] = {
        "run": run,
        "mode": None if book is None else book.mode,
        "decision": None,
        "detail": {},
        "open": [],
    }
    if book is None or not book.current:
        return doc
    first_seen = book.first_seen
    asked = sorted(
        book.current.values(),
        key=lambda q: (first_seen.get(q.id, float("inf")), q.element, q.id),
    )
    described = [book.describe(q) for q in asked]
    doc["open"] = [{"id": d["decision_id"], "element": d["component"]} for d in described]
    d = described[0]
    answer_by = _iso(d.get("answer_by_s"))
    doc["decision"] = {
        "id": d["decision_id"],
        "element": d["component"],
        "title": d["title"],
        "fallback": d["fallback"],
        "answer_by": answer_by,
        "choice_keys": list(d["choice_keys"]),
        "choices": [{"key": c["key"], "title": c["title"]} for c in d["choices"]],
    }
    doc["detail"] = {
        "decision_id": d["decision_id"],
        "element": d["component"],
        "reason": d["reason"],
        "deadline": _iso(d.get("deadline_s")),
        "answer_by": answer_by,
        "fallback": d["fallback"],
        "rule": d["rule"],
        "choices": [
            {"key": c["key"], "title": c["title"], "summary": c["summary"]} for c in d["choices"]
        ],
    }
    return doc
