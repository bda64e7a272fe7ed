"""What one loaded plant owns: every per-plant object, reached through ``entry.runtime_data``.

A config entry is one plant. Its objects are made by ``async_setup_entry`` (``__init__.py``),
kept here for as long as the entry is loaded, and dropped with it: the coordinators, the
command path, the migration manager, the decision follower, the fault watch, the activity
recorder, the proposal book, the repair keeper and the plant's notices. No module keeps a plant's object in a module-level dictionary; each
reaches the others through the entry (``entry.runtime_data.proposals``, ...).

This module imports none of them at run time (only for type checking), so every module of the
integration may import it: it sits at the bottom of the layering of ``tests/test_layering.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant, callback

from .const import DOMAIN

if TYPE_CHECKING:
    from .activity import ActivityRecorder
    from .commands import CommandPath
    from .coordinator import TelemetryCoordinator
    from .decision_follower import DecisionFollower
    from .decisions import DecisionCoordinator
    from .faults import FaultWatch
    from .migration import MigrationManager
    from .notices import Notices
    from .proposals import ProposalBook
    from .questions import QuestionBook
    from .repairs import RepairKeeper

__all__ = ["DataCenterPowerConfigEntry", "DataCenterPowerData", "async_plants"]


@dataclass
class DataCenterPowerData:
    """Runtime data of a config entry: the plant's objects (see the module docstring)."""

    telemetry: TelemetryCoordinator
    commands: CommandPath
    """The one way anything is sent to a device."""
    migrations: MigrationManager
    decisions: DecisionCoordinator
    """The engine's decisions (its data), with every element's and circuit's latest forecast."""
    follower: DecisionFollower
    """Acts on the decisions: alerts announced, the engine's actions run as migrations."""
    notices: Notices
    """What the plant has announced in this run (kept across reloads: ``notices.py``)."""
    faults: FaultWatch
    activity: ActivityRecorder
    proposals: ProposalBook
    questions: QuestionBook
    """Decisions a person must take (no plan is safe): open, answered, the no-answer rule."""
    repairs: RepairKeeper
    drain_plans: dict[str, tuple[object, str]] = field(default_factory=dict)
    """Unit -> (what the answer was computed from, whether and how it can be drained): the
    plant status makes a plan only when the decision, the lineup or the proposals change."""


type DataCenterPowerConfigEntry = ConfigEntry[DataCenterPowerData]


@callback
def async_plants(hass: HomeAssistant) -> list[DataCenterPowerConfigEntry]:
    """The plants that have their objects: loaded, or still being set up (an automation may
    act on a plant's first proposal meanwhile)."""
    return [
        e
        for e in hass.config_entries.async_entries(DOMAIN)
        if e.state in (ConfigEntryState.LOADED, ConfigEntryState.SETUP_IN_PROGRESS)
        and hasattr(e, "runtime_data")
    ]
