"""Every name the integration publishes, declared once: bus events, activity types, device
trigger types and repair issues.

Automations, blueprints, the logbook and the companion app's notifications depend on these
strings; they are part of the integration's interface and never change with the code's layout.
The modules that fire, record or raise them import them from here (``tests/test_events.py``
checks that none declares its own).
"""

from __future__ import annotations

from typing import Final

from .const import DOMAIN

# -- bus events ------------------------------------------------------------------------------

EVENT_ACTIVITY: Final = f"{DOMAIN}_activity"
"""One per action, refusal or decision, on the device it concerns (``activity.py``; the logbook
and the device triggers read it)."""
EVENT_FAILURE_PREDICTED: Final = f"{DOMAIN}_failure_predicted"
"""A component's failure is predicted (once per alert and run: ``decision_follower.py``)."""
EVENT_FAILURE_RISK_CLEARED: Final = f"{DOMAIN}_failure_risk_cleared"
EVENT_OVERLOAD_FORECAST: Final = f"{DOMAIN}_overload_forecast"
EVENT_FAILOVER: Final = f"{DOMAIN}_failover"
"""A unit failed or an element is above its limit (``faults.py``), or the rebalance after a
sudden failure started (``decision_follower.py``)."""
EVENT_MIGRATION_STEP: Final = f"{DOMAIN}_migration_step"
EVENT_MIGRATION_FINISHED: Final = f"{DOMAIN}_migration_finished"
EVENT_PROPOSAL: Final = f"{DOMAIN}_proposal"
EVENT_PROPOSAL_CLOSED: Final = f"{DOMAIN}_proposal_closed"
"""A proposal that was announced can no longer be approved: dismissed, gone stale, or approved
and its migration ended (with the outcome); the phone's notification is replaced (its tag)."""
EVENT_DECISION_NEEDED: Final = f"{DOMAIN}_decision_needed"
"""No plan is safe: a person is asked to choose (once per question and run: ``questions.py``)."""

# -- activity types (the ``type`` of an activity event) -------------------------------------------

FAILURE_PREDICTED: Final = "failure_predicted"
FAILURE_RISK_CLEARED: Final = "failure_risk_cleared"
OVERLOAD_FORECAST: Final = "overload_forecast"
FAILOVER: Final = "failover"
MIGRATION_STARTED: Final = "migration_started"
CIRCUIT_MOVED: Final = "circuit_moved"
MIGRATION_FINISHED: Final = "migration_finished"
MIGRATION_FAILED: Final = "migration_failed"
ACTION_DONE: Final = "action"
REFUSED: Final = "refused"
INTERRUPTION: Final = "interruption"
PROPOSAL: Final = "proposal"
PROPOSAL_APPROVED: Final = "proposal_approved"
PROPOSAL_DISMISSED: Final = "proposal_dismissed"
OVERRIDE: Final = "override"
DECISION_NEEDED: Final = "decision_needed"
DECISION_ANSWERED: Final = "decision_answered"
ACTIVITY_TYPES: Final = (
    FAILURE_PREDICTED,
    FAILURE_RISK_CLEARED,
    OVERLOAD_FORECAST,
    FAILOVER,
    MIGRATION_STARTED,
    CIRCUIT_MOVED,
    MIGRATION_FINISHED,
    MIGRATION_FAILED,
    ACTION_DONE,
    REFUSED,
    INTERRUPTION,
    PROPOSAL,
    PROPOSAL_APPROVED,
    PROPOSAL_DISMISSED,
    OVERRIDE,
    DECISION_NEEDED,
    DECISION_ANSWERED,
)

TRIGGER_TYPES: Final = (
    FAILURE_PREDICTED,
    FAILURE_RISK_CLEARED,
    MIGRATION_FINISHED,
    MIGRATION_FAILED,
    FAILOVER,
    OVERLOAD_FORECAST,
    DECISION_NEEDED,
)
"""The activity types a device trigger offers (``device_trigger.py``)."""

# -- repair issues (translation keys; an issue id adds the entry and the component) ----------

ISSUE_FAILURE_PREDICTED: Final = "failure_predicted"
ISSUE_DEGRADED: Final = "degraded"
ISSUE_MIGRATION_HELD: Final = "migration_held"
ISSUE_MIGRATION_FAILED: Final = "migration_failed"
ISSUE_INHIBIT_ON: Final = "inhibit_on"
ISSUE_UNIT_FAILED: Final = "unit_failed"
ISSUE_OVER_LIMIT: Final = "over_limit"
ISSUE_UNIT_REPLACED: Final = "unit_replaced"
ISSUE_MIGRATIONS_DAMAGED: Final = "migrations_damaged"
ISSUE_DECISION_NEEDED: Final = "decision_needed"


def held_issue_id(migration_id: str) -> str:
    """The repair issue of a migration a restart interrupted and held."""
    return f"{ISSUE_MIGRATION_HELD}_{migration_id}"
