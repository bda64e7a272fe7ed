"""Data Center Power Grid: the Home Assistant integration's entry points.

One config entry is one plant. Setting it up discovers the plant's devices behind its gateways
(the telemetry coordinator), registers them, and forwards the entity platforms. Unloading closes
every gateway connection; a device the plant no longer reports can be removed by the user.
"""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .activity import ActivityRecorder
from .campus import async_setup_campus
from .commands import CommandPath
from .const import CONF_POLICY_MODE, DEFAULT_POLICY_MODE, DOMAIN, LOGGER, POLICY_AUTOMATIC
from .coordinator import TelemetryCoordinator
from .dashboard import async_assign_areas, async_setup_dashboard_service
from .decision_follower import DecisionFollower
from .decisions import DecisionCoordinator
from .faults import FaultWatch
from .gc_freeze import async_setup_gc_freeze
from .history_store import HistoryStore
from .interruptions import async_setup_interruptions
from .manual_path import async_setup_path_service
from .migration import MigrationManager
from .notices import forget_notices, notices_for
from .options import repaired_options
from .plant_ids import async_forget_plant_ids, async_remember_plant_ids
from .proposals import ProposalBook, async_setup_proposal_services
from .questions import QuestionBook, async_setup_question_services
from .recorded import async_track_causes
from .repairs import RepairKeeper, async_remove_repairs
from .runtime import DataCenterPowerConfigEntry, DataCenterPowerData
from .services import async_setup_services

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's actions (once, for every plant)."""
    async_setup_services(hass)
    async_setup_path_service(hass)
    async_setup_proposal_services(hass)
    async_setup_question_services(hass)
    async_setup_dashboard_service(hass)
    async_track_causes(hass)  # the activity says which automation or script acted
    return True


async def async_setup_entry(hass: HomeAssistant, entry: DataCenterPowerConfigEntry) -> bool:
    """Discover the plant, take a first reading, then set up the entity platforms.

    Raises ``ConfigEntryNotReady`` (through the coordinator's first refresh) while a gateway is
    unreachable or nothing answers; Home Assistant then retries by itself.
    """
    options, fixed = repaired_options(entry.options)
    if fixed:
        LOGGER.warning(
            "Stored option(s) %s were not valid numbers; using the defaults (save the options "
            "to choose others)",
            ", ".join(fixed),
        )
        hass.config_entries.async_update_entry(entry, options=options)
    coordinator = TelemetryCoordinator(hass, entry)
    await coordinator.async_config_entry_first_refresh()
    notices = notices_for(hass, entry.entry_id)
    commands = CommandPath(hass, coordinator)
    migrations = MigrationManager(hass, commands, notices)
    automatic = entry.options.get(CONF_POLICY_MODE, DEFAULT_POLICY_MODE) == POLICY_AUTOMATIC
    await migrations.async_load(resume=automatic)
    entry.async_on_unload(migrations.async_shutdown)
    decider = DecisionCoordinator(hass, entry, coordinator)
    # Commands (the SBM path interlock) refuse load onto units the latest decision says are at
    # risk; interrupted migrations resume at the first decision (MigrationManager.resume_interrupted).
    commands.follow_decisions(lambda: decider.data)
    decider.migrating = lambda: migrations.active is not None
    migrations.on_finished = decider.migration_finished  # it decides at the next poll then
    await decider.async_config_entry_first_refresh()
    follower = DecisionFollower(hass, migrations, decider, notices)
    entry.async_on_unload(follower.async_start())
    runtime = entry.runtime_data = DataCenterPowerData(
        telemetry=coordinator,
        commands=commands,
        migrations=migrations,
        decisions=decider,
        follower=follower,
        notices=notices,
        faults=FaultWatch(hass, entry),
        activity=ActivityRecorder(hass, entry),
        proposals=ProposalBook(hass, entry),
        questions=QuestionBook(hass, entry),
        repairs=RepairKeeper(hass, entry),
    )
    await runtime.questions.async_load()
    async_remember_plant_ids(hass, entry)  # the options form's fields during a reload
    runtime.faults.async_start()  # before the entities that count failed units at risk
    # The logbook's activity follows each decision before the proposals do: a prediction is
    # logged before the proposal it causes (listeners run in the order they were added).
    runtime.activity.async_start()
    runtime.proposals.async_start()  # before the entities that show proposals
    runtime.questions.async_start()
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    # repair issues follow the plant from here on (until it unloads: they stay in the registry
    # then, and are brought up to date at the next setup; removing the entry deletes them)
    runtime.repairs.async_start()
    async_setup_interruptions(hass, entry)
    await async_assign_areas(hass, entry)
    async_setup_gc_freeze(hass, entry)  # a hall's objects out of full collections, once set up
    await async_setup_campus(hass, entry)  # published over MQTT when a campus hall id is set
    return True


async def async_unload_entry(hass: HomeAssistant, entry: DataCenterPowerConfigEntry) -> bool:
    """Unload the platforms; the coordinator's shutdown (registered on unload) closes clients."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: DataCenterPowerConfigEntry) -> None:
    """A removed plant leaves no repair issue and no stored history behind."""
    async_remove_repairs(hass, entry.entry_id)
    async_forget_plant_ids(hass, entry.entry_id)
    forget_notices(hass, entry.entry_id)
    await HistoryStore(hass, entry.entry_id).async_remove()


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: DataCenterPowerConfigEntry, device_entry: dr.DeviceEntry
) -> bool:
    """Allow removing a device only when the plant no longer reports it."""
    prefix = f"{entry.unique_id}:"
    plant_ids = [
        ident.removeprefix(prefix)
        for domain, ident in device_entry.identifiers
        if domain == DOMAIN and ident.startswith(prefix)
    ]
    if not plant_ids:
        return False
    if entry.state is not ConfigEntryState.LOADED:
        return True  # nothing to ask; a device still there comes back at the next setup
    coordinator = entry.runtime_data.telemetry
    if not all(coordinator.can_remove(pid) for pid in plant_ids):
        return False
    for pid in plant_ids:
        coordinator.forget(pid)
    return True
