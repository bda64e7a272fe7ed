"""Constants of the Home Assistant layer: the domain, config/option keys and their defaults.

Kept in one module so that the config flow, the coordinator, the entity platforms and the tests
agree on every key without importing each other.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Final

from .engine.policy import PolicyConfig

DOMAIN: Final = "datacenter_power"
LOGGER: Final = logging.getLogger(__package__)

MANUFACTURER: Final = "Data Center Power"

# -- config entry data (one plant; its first gateway) and subentries (further gateways) ---------
CONF_HOST: Final = "host"
CONF_PORT: Final = "port"
SUBENTRY_GATEWAY: Final = "gateway"
"""Subentry type of a further Modbus TCP gateway of the same plant."""

DEFAULT_PORT: Final = 502

# -- options ------------------------------------------------------------------------------------
CONF_SCAN_INTERVAL: Final = "scan_interval"
CONF_POLICY_MODE: Final = "policy_mode"
CONF_MAX_STEP_AMPS: Final = "max_step_amps"
CONF_STEP_INTERVAL: Final = "step_interval"
CONF_FORECAST_HORIZON: Final = "forecast_horizon"
CONF_CALENDAR_ENTITY: Final = "calendar_entity"
CONF_WORKDAY_ENTITY: Final = "workday_entity"
"""Option: a workday binary sensor whose non-working days the load forecasts model."""
CONF_LINEUP_AREAS: Final = "lineup_areas"
"""Option (and options-form section): ATS id -> the area its lineup's devices go to."""
CONF_SOURCE_NAMES: Final = "source_names"
"""Option (and options-form section): source id -> the name its entities use."""
CONF_CAMPUS_HALL: Final = "campus_hall"
"""Option: this plant's hall id on the campus MQTT broker (empty: not published; ``campus.py``)."""
CONF_DECISION_TIMEOUT: Final = "decision_timeout_min"
"""Option: minutes a decision (no plan is safe) waits for a person in automatic mode before
its fallback is taken (``questions.py``)."""
CONF_SUGGEST_AREAS: Final = "suggest_areas"
"""Option: put devices seen for the first time in a "Lineup <ats>" area (default on)."""

POLICY_MONITOR: Final = "monitor"
POLICY_APPROVAL: Final = "approval"
POLICY_AUTOMATIC: Final = "automatic"
POLICY_MODES: Final = (POLICY_MONITOR, POLICY_APPROVAL, POLICY_AUTOMATIC)

DEFAULT_SCAN_INTERVAL: Final = 5
"""Seconds between telemetry polls."""
MIN_SCAN_INTERVAL: Final = 1
MAX_SCAN_INTERVAL: Final = 300
DEFAULT_POLICY_MODE: Final = POLICY_MONITOR
_ENGINE_DEFAULTS: Final = PolicyConfig()
DEFAULT_MAX_STEP_AMPS: Final = _ENGINE_DEFAULTS.max_step_amps
"""Most current a single migration step may move (A): the engine's default, defined once in
``PolicyConfig``."""
DEFAULT_STEP_INTERVAL: Final = round(_ENGINE_DEFAULTS.step_interval_s)
"""Seconds between migration steps (time to verify each one): ``PolicyConfig``'s default."""
DEFAULT_FORECAST_HORIZON: Final = 24
"""Hours the load forecast looks ahead."""
DEFAULT_DECISION_TIMEOUT: Final = round(_ENGINE_DEFAULTS.decision_timeout_s / 60)
"""Minutes a decision waits for an answer in automatic mode: ``PolicyConfig``'s default."""

DEFAULT_OPTIONS: Final[dict[str, object]] = {
    CONF_SCAN_INTERVAL: DEFAULT_SCAN_INTERVAL,
    CONF_POLICY_MODE: DEFAULT_POLICY_MODE,
    CONF_MAX_STEP_AMPS: DEFAULT_MAX_STEP_AMPS,
    CONF_STEP_INTERVAL: DEFAULT_STEP_INTERVAL,
    CONF_FORECAST_HORIZON: DEFAULT_FORECAST_HORIZON,
    CONF_DECISION_TIMEOUT: DEFAULT_DECISION_TIMEOUT,
}

# -- Modbus timing --------------------------------------------------------------------------------
REQUEST_TIMEOUT: Final = 1.0
"""Seconds a poll request may take before its device counts as silent."""
SCAN_UNIT_TIMEOUT: Final = 0.5
"""Seconds a unit id may take to answer during discovery (unknown ids answer at once)."""
SCAN_CONCURRENCY: Final = 8
"""Connections used by a discovery scan: 247 silent ids take at most ~16 s."""
POLL_CONCURRENCY: Final = 4
"""Connections per gateway used by a poll, so that one silent device holds up only one."""
HALL_CIRCUITS: Final = 200
"""Above this many circuits a plant is a hall: the circuit entities in ``HALL_OPTIONAL`` start
disabled (docs/scaling.md: memory, state writes and the recorder grow with enabled entities)."""
HALL_OPTIONAL: Final = frozenset({"power", "off_normal_path", "interruptions", "last_interruption"})
"""A circuit's power (its current times its MPDU's voltage), its off-normal-path flag (the
path select shows the path) and its interruption counter and time (each new interruption is in
its Activity and the log anyway): redundant at hall size, each can be enabled per circuit."""
GC_FREEZE_QUIET: Final = 30.0
"""Seconds a hall's devices and entities must stay unchanged before its objects are frozen out
of the garbage collector's full collections (``gc_freeze.py``)."""
HEAP_TRIM_INTERVAL: Final = timedelta(minutes=10)
"""How often a frozen hall gives the C heap's free pages back to the system (``gc_freeze.py``):
at 1,000 circuits state writes, recorder batches and forecast refreshes leave ~50 MB free in
glibc's heap between trims, which it would otherwise keep."""
DISPATCH_SLICE: Final = 10
"""Devices whose entities are updated before the event loop runs again (``coordinator.py``): a
device's entities and their state writes take about a millisecond, so each turn of the loop
stays short against the 50 ms lag target (docs/scaling.md)."""
RESCAN_INTERVAL: Final = timedelta(minutes=10)
"""How often the gateways are scanned again for devices added to (or gone from) the plant."""
