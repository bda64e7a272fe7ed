"""MQTT discovery configs of a hall's devices, for a campus Home Assistant with no extra code.

Device-based discovery (one retained message per device under
``homeassistant/device/<hall>/<device>/config``): the hall's own device (status, headroom,
components at risk, migration, the open proposal with its plan, the last command's result,
Approve / Dismiss buttons, the open decision with its choices and an Answer button per choice)
and one device per ATS and MPDU (load, continuous limit, utilization,
forecast peak P90, headroom, health, failure risk, time to failure). Every entity reads one
retained JSON state document per device (``campus_topics.HallTopics.state``) and is available
while the hall is ``online`` and its device reports. Entity ids are fixed
(``sensor.dcp_<hall>_...``) so that a campus dashboard can name them.

The buttons carry the id of the proposal open when the config was published and the hall's run
(made when its publisher starts): pressing one commands exactly that proposal as the hall showed
it, and the hall refuses it with the reason once it is stale or the hall has restarted since (the
same plan raised again has the same id). The hall publishes the config again when the open
proposal changes and when it starts.

The answer buttons work the same way: one per kind of choice (drain now, keep the load, partial
drain, shed a circuit), each carrying the id of the decision open when the config was published,
the exact choice key offered (``shed:<circuit>``) and the run, and available only while the hall
shows that decision in that run offering that choice (not in monitor mode, which refuses
answers). A button per choice rather than a ``select`` of the choices and one Answer button: an
MQTT button's press payload is fixed in its config and cannot read a select's state (the hall
would have to keep a pending choice between two commands), and a select that answers when its
option changes answers with one slip of a drop-down; a button is one deliberate press of a
command that names exactly what it answers, as Approve does, and its entity id is fixed for
dashboards and automations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from .campus_topics import CHOICE, DECISION_SLUG, HallTopics, answer_payload, command_payload

HALL_SLUG: Final = "hall"
"""The hall's own device in the topics (plant ids of ATSs and MPDUs never take this name)."""
NO_PROPOSAL: Final = "0000000000"
"""The buttons' proposal id while none is open (never a current proposal: refused)."""
NO_DECISION: Final = "0000000000"
"""The answer buttons' decision id while none is open (never a current decision: refused)."""
ANSWER_BUTTONS: Final = {
    "drain_now": "Answer: drain now",
    "keep_load": "Answer: keep the load",
    "partial_drain": "Answer: partial drain",
    "partial_relief": "Answer: partial relief",
    "shed": "Answer: shed a circuit",
}
"""An answer button per kind of choice (the key before ``:``), with its name on the campus."""
_ORIGIN: Final = {"name": "datacenter_power"}


def _availability(topics: HallTopics, slug: str, condition: str) -> dict[str, Any]:
    """Available while the hall is online and ``condition`` (Jinja over the state) holds."""
    return {
        "availability": [
            {"topic": topics.availability},
            {
                "topic": topics.state(slug),
                "value_template": f"{{{{ 'online' if {condition} else 'offline' }}}}",
            },
        ],
        "availability_mode": "all",
    }


def _sensor(unique: str, name: str, field: str, entity_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "platform": "sensor",
        "unique_id": unique,
        "name": name,
        "value_template": f"{{{{ value_json.{field} }}}}",
        "default_entity_id": entity_id,
        **extra,
    }


_AMPS: Final = {
    "device_class": "current",
    "unit_of_measurement": "A",
    "state_class": "measurement",
    "suggested_display_precision": 1,
}


def element_config(
    topics: HallTopics, slug: str, name: str, model: str, version: str
) -> dict[str, Any]:
    """The discovery config of one ATS or MPDU of the hall."""
    hall = topics.hall
    uid = f"dcp_{hall}_{slug}"

    def sensor(key: str, label: str, field: str, **extra: Any) -> dict[str, Any]:
        return _sensor(f"{uid}_{key}", label, field, f"sensor.{uid}_{key}", **extra)

    return {
        "device": {
            "identifiers": [uid],
            "name": f"{hall} {name}",
            "manufacturer": "Data Center Power",
            "model": model,
            "sw_version": version,
            "via_device": f"dcp_{hall}_{HALL_SLUG}",
        },
        "origin": {**_ORIGIN, "sw_version": version},
        "state_topic": topics.state(slug),
        "qos": 1,
        **_availability(topics, slug, "value_json.available"),
        "components": {
            "load": sensor("load", "Load", "load_a", **_AMPS),
            "limit": sensor("limit", "Continuous limit", "limit_a", **_AMPS),
            "utilization": sensor(
                "utilization",
                "Limit utilization",
                "utilization_pct",
                unit_of_measurement="%",
                state_class="measurement",
            ),
            "forecast_peak": sensor(
                "forecast_peak", "Forecast peak (P90)", "forecast_peak_a", **_AMPS
            ),
            "headroom": sensor("headroom", "Headroom", "headroom_a", **_AMPS),
            "health": sensor(
                "health",
                "Health",
                "health_pct",
                unit_of_measurement="%",
                state_class="measurement",
            ),
            "failure_risk": {
                "platform": "binary_sensor",
                "unique_id": f"{uid}_failure_risk",
                "name": "Failure risk",
                "device_class": "problem",
                "value_template": "{{ value_json.failure_risk }}",
                "payload_on": "ON",
                "payload_off": "OFF",
                "json_attributes_topic": topics.state(slug),
                "json_attributes_template": (
                    "{{ {'failure_probability': value_json.failure_probability, "
                    "'failed': value_json.failed} | tojson }}"
                ),
                "default_entity_id": f"binary_sensor.{uid}_failure_risk",
            },
            "time_to_failure": sensor(
                "time_to_failure",
                "Time to failure",
                "time_to_failure_h",
                device_class="duration",
                unit_of_measurement="h",
                json_attributes_topic=topics.state(slug),
                json_attributes_template="{{ {'estimate': value_json.ttf_estimate} | tojson }}",
            ),
        },
    }


def _offered(choices: Sequence[str]) -> dict[str, str]:
    """Answer button -> the choice key it sends (the offered one of its kind, else the kind)."""
    keys = {key.split(":", 1)[0]: key for key in choices if CHOICE.match(key)}
    return {kind: keys.get(kind, kind) for kind in ANSWER_BUTTONS}


def hall_config(
    topics: HallTopics,
    title: str,
    version: str,
    proposal_id: str | None,
    run: str,
    *,
    decision_id: str | None = None,
    choices: Sequence[str] = (),
) -> dict[str, Any]:
    """The discovery config of the hall's own device; its buttons command ``proposal_id`` as
    shown in the hall's ``run``, and answer ``decision_id`` with one of ``choices``."""
    hall = topics.hall
    uid = f"dcp_{hall}"
    state = topics.state(HALL_SLUG)
    pid = proposal_id or NO_PROPOSAL
    did = decision_id or NO_DECISION

    def sensor(key: str, label: str, field: str, **extra: Any) -> dict[str, Any]:
        return _sensor(f"{uid}_{key}", label, field, f"sensor.{uid}_{key}", **extra)

    def attributes(field: str) -> dict[str, str]:
        return {
            "json_attributes_topic": state,
            "json_attributes_template": f"{{{{ (value_json.{field} or {{}}) | tojson }}}}",
        }

    def button(action: str, label: str) -> dict[str, Any]:
        return {
            "platform": "button",
            "unique_id": f"{uid}_{action}",
            "name": label,
            "command_topic": topics.command,
            "payload_press": command_payload(hall, action, pid, run),
            "default_entity_id": f"button.{uid}_{action}_proposal",
            **_availability(
                topics,
                HALL_SLUG,
                f"value_json.proposal and value_json.proposal.id == '{pid}' "
                f"and value_json.run == '{run}'",
            ),
        }

    def answer(kind: str, key: str) -> dict[str, Any]:
        return {
            "platform": "button",
            "unique_id": f"{uid}_answer_{kind}",
            "name": ANSWER_BUTTONS[kind],
            "command_topic": topics.command,
            "payload_press": answer_payload(hall, did, key, run),
            "default_entity_id": f"button.{uid}_answer_{kind}",
            **_availability(
                topics,
                DECISION_SLUG,
                f"value_json.decision and value_json.decision.id == '{did}' "
                f"and value_json.run == '{run}' and value_json.mode != 'monitor' "
                f"and '{key}' in value_json.decision.choice_keys",
            ),
        }

    decision = topics.decision
    answers = {f"answer_{kind}": answer(kind, key) for kind, key in _offered(choices).items()}
    return {
        "device": {
            "identifiers": [f"{uid}_{HALL_SLUG}"],
            "name": f"Hall {hall}",
            "manufacturer": "Data Center Power",
            "model": "Hall",
            "sw_version": version,
        },
        "origin": {**_ORIGIN, "sw_version": version},
        "state_topic": state,
        "qos": 1,
        "availability": [{"topic": topics.availability}],  # the buttons have their own
        "components": {
            "status": sensor("status", "Status", "status", **attributes("status_detail")),
            "headroom": sensor("headroom", "Headroom", "headroom_a", **_AMPS),
            "at_risk": sensor(
                "at_risk",
                "Components at risk",
                "at_risk",
                state_class="measurement",
                **attributes("at_risk_detail"),
            ),
            "migration": sensor(
                "migration", "Migration", "migration", **attributes("migration_detail")
            ),
            "proposal": sensor("proposal", "Proposal", "proposal_text", **attributes("proposal")),
            "proposal_id": sensor(
                "proposal_id",
                "Proposal id",
                "proposal.id if value_json.proposal else 'none'",
            ),
            "last_command": {
                "platform": "sensor",
                "unique_id": f"{uid}_last_command",
                "name": "Last command",
                "state_topic": topics.result,
                "value_template": "{{ 'accepted' if value_json.ok else 'refused' }}",
                "json_attributes_topic": topics.result,
                "default_entity_id": f"sensor.{uid}_last_command",
            },
            "approve": button("approve", "Approve proposal"),
            "dismiss": button("dismiss", "Dismiss proposal"),
            "decision": {
                "platform": "sensor",
                "unique_id": f"{uid}_decision",
                "name": "Decision needed",
                "state_topic": decision,
                "value_template": (
                    "{{ value_json.decision.title if value_json.decision else 'none' }}"
                ),
                "json_attributes_topic": decision,
                "json_attributes_template": (
                    "{{ dict(value_json.detail or {}, open=value_json.open) | tojson }}"
                ),
                "default_entity_id": f"sensor.{uid}_decision",
            },
            "decision_id": {
                "platform": "sensor",
                "unique_id": f"{uid}_decision_id",
                "name": "Decision id",
                "state_topic": decision,
                "value_template": "{{ value_json.decision.id if value_json.decision else 'none' }}",
                "default_entity_id": f"sensor.{uid}_decision_id",
            },
            **answers,
        },
    }
