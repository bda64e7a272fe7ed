"""The persisted history: typed rows; the columns they are kept and stored as (one file a day,
only changed days rewritten); storage versions 1 (positional lists) and 2 (typed rows)
converted on load; damaged rows and day files dropped with a log line. Real Home Assistant
store, real simulator."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.const import DOMAIN
from custom_components.datacenter_power.decisions import (
    HISTORY_BUCKET_S,
    HISTORY_MAX_S,
    STORAGE_VERSION,
)
from custom_components.datacenter_power.engine.observation import PlantObservation
from custom_components.datacenter_power.history import (
    HistoryRow,
    pack_observation,
    row_from_v1,
    unpack_observation,
)
from custom_components.datacenter_power.history_columns import (
    DAY_S,
    HistoryLog,
    decode_day,
    encode_day,
)
from custom_components.datacenter_power.history_store import HistoryStore
from dcp_eval.harness import observation_from_telemetry, topology_from_scenario
from dcp_sim.plant import Plant
from dcp_sim.server import PlantServer

from .conftest import history_rows, set_up, store_history


def _v1(obs: PlantObservation) -> list[Any]:
    """A row as storage version 1 wrote it (positional lists)."""

    def num(value: float) -> float | None:
        return None if math.isnan(value) else round(value, 3)

    return [
        round(obs.t_s, 1),
        None if math.isnan(obs.ambient_c) else round(obs.ambient_c, 2),
        {
            c.id: [c.reachable, c.active_path, c.energized, num(c.current_a), c.output_on]
            for c in obs.circuits.values()
        },
        {
            e.id: [
                e.kind,
                e.reachable,
                e.energized,
                num(e.current_a),
                num(e.temperature_c),
                num(e.ripple_pct),
                e.self_tests,
                e.self_test_ms,
                e.nominal_transfer_ms,
                e.operations,
                e.rated_operations,
                e.nuisance_trips,
                e.sources_available,
            ]
            for e in obs.elements.values()
        },
    ]


def _observations(plant: Plant, count: int, t0: float) -> list[PlantObservation]:
    topology = topology_from_scenario(plant.scenario)
    out = []
    for _ in range(count):
        plant.advance_to(plant.t_s + 300)
        out.append(observation_from_telemetry(plant.telemetry(), t0, topology))
    return out


def test_rows_are_named_and_round_trip(plant: Plant) -> None:
    """A typed row reads back as the observation it was packed from (to the stored rounding),
    and a version-1 row converts to exactly the typed row of the same observation."""
    for obs in _observations(plant, 3, 1.8e9):
        row = pack_observation(obs)
        assert set(row) == {"t_s", "ambient_c", "circuits", "elements"}
        assert row["elements"]["ats1"]["kind"] == "ats"
        back = unpack_observation(row)
        assert back.t_s == pytest.approx(obs.t_s)
        assert back.circuits["c01"].current_a == pytest.approx(obs.circuits["c01"].current_a, 1e-3)
        assert back.elements["ats1"].nominal_transfer_ms == obs.elements["ats1"].nominal_transfer_ms
        assert row_from_v1(_v1(obs)) == row
    with pytest.raises(ValueError, match="not a version-1 history row"):
        row_from_v1(["not", "a", "row"])


def _varied(observations: list[PlantObservation]) -> list[PlantObservation]:
    """The observations with the cases typed rows must keep: a circuit not answering (NaN,
    no path), one on its other path, one off, an element not answering and one with counters."""
    out = []
    for i, obs in enumerate(observations):
        circuits = dict(obs.circuits)
        elements = dict(obs.elements)
        c01 = circuits["c01"]
        if i % 3 == 1:
            circuits["c01"] = replace(
                c01, reachable=False, active_path=None, current_a=math.nan, energized=False
            )
        elif i % 3 == 2:
            other = "mpdu2" if c01.active_path != "mpdu2" else "mpdu1"
            circuits["c01"] = replace(c01, active_path=other, output_on=False)
        first = next(iter(elements))
        elements[first] = replace(
            elements[first],
            reachable=i % 2 == 0,
            current_a=math.nan if i % 2 else elements[first].current_a,
            operations=i,
            nuisance_trips=i // 2,
            sources_available=i % 4 != 3,
        )
        out.append(replace(obs, circuits=circuits, elements=elements))
    return out


def _log_rows(log: HistoryLog) -> list[HistoryRow]:
    return list(log.rows())


def test_columns_keep_exactly_the_typed_rows(plant: Plant) -> None:
    """Typed rows into columns and back, and columns through their stored encoding and back:
    the same rows, to the last field (NaN, no path, path changes, element counters)."""
    observations = _varied(_observations(plant, 12, 1.8e9))
    rows = [pack_observation(o) for o in observations]
    log, damaged = HistoryLog.from_rows([*rows[:6], {"t_s": 1}, *rows[6:]], 300.0, 86400.0)
    assert damaged == 1
    assert _log_rows(log) == rows
    days = log.days
    snapshot = log.snapshot_days(days)
    again = HistoryLog(300.0, 86400.0)
    for day in days:
        again.add_chunks(decode_day(day, encode_day(snapshot[day])))
    # The open bucket (the newest poll, not yet packed in memory) is saved as a row too.
    assert _log_rows(again) == rows


def test_one_row_per_bucket_and_a_bounded_window(plant: Plant) -> None:
    """The last poll of each bucket is kept; rows older than the window go, and the days they
    leave are marked for the next save."""
    observations = _observations(plant, 4, 1.8e9 - 300.0)  # at 0, 300, 600, 900 s of a bucket
    log = HistoryLog(600.0, 1800.0)
    for obs in observations:  # 300 s apart: two polls per 600 s bucket
        log.record(obs)
    assert len(log) == 2
    assert [r["t_s"] for r in log.rows()] == [
        round(observations[1].t_s, 1),
        round(observations[3].t_s, 1),
    ]
    log.take_dirty()
    later = replace(observations[3], t_s=observations[3].t_s + 86400.0)
    assert log.record(later)
    assert [r["t_s"] for r in log.rows()] == [round(later.t_s, 1)]
    assert log.take_dirty() == {int(o.t_s // DAY_S) for o in (observations[3], later)}
    day = log.days[0]
    (chunk,) = encode_day(log.snapshot_days([day])[day])["chunks"]
    assert len(decode_day(day, {"chunks": [chunk]})[0].rows) == 1
    with pytest.raises(ValueError, match="rows outside day"):
        decode_day(day - 1, {"chunks": [chunk]})
    with pytest.raises(ValueError, match="wrong size"):
        decode_day(day, {"chunks": [{**chunk, "rows": 2}]})


@pytest.mark.parametrize(
    "damage",
    [
        lambda chunk: {**chunk, "current_ma": chunk["current_ma"][:-8]},
        lambda chunk: {**chunk, "flags": "not base64 !"},
        lambda chunk: {**chunk, "kinds": ["ats"]},
        lambda chunk: {k: v for k, v in chunk.items() if k != "t_s"},
        lambda chunk: ["not", "a", "chunk"],
    ],
)
async def test_a_damaged_day_is_dropped_and_the_others_load(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    plant: Plant,
    caplog: pytest.LogCaptureFixture,
    damage: Any,
) -> None:
    """One damaged day file (a crash while writing, a bad disk) loses that day only."""
    t0 = 1.8e9 - 1.8e9 % DAY_S + DAY_S - 1500.0  # five rows before midnight, the rest after
    observations = _observations(plant, 10, t0)
    store = HistoryStore(hass, "entry")
    log = HistoryLog(HISTORY_BUCKET_S, HISTORY_MAX_S)
    log.extend(observations)
    await store.async_save(log)
    first, second = log.days
    assert f"{store.key}.{first}" in hass_storage
    day = hass_storage[f"{store.key}.{first}"]["data"]
    day["chunks"] = [damage(day["chunks"][0])]
    loaded = await HistoryStore(hass, "entry").async_load(HISTORY_BUCKET_S, HISTORY_MAX_S)
    assert f"The stored load history of day {first} was damaged" in caplog.text
    assert [r["t_s"] for r in loaded.rows()] == [
        round(o.t_s, 1) for o in observations if o.t_s // DAY_S == second
    ]


async def test_a_save_rewrites_only_the_days_that_changed(
    hass: HomeAssistant, hass_storage: dict[str, Any], plant: Plant
) -> None:
    """Yesterday's file is not written again when today's rows arrive; a day that leaves the
    window has its file removed; the index lists the days kept."""
    t0 = 1.8e9 - 1.8e9 % DAY_S + DAY_S - 600.0
    observations = _observations(plant, 6, t0)  # two before midnight, four after
    store = HistoryStore(hass, "entry")
    log = HistoryLog(HISTORY_BUCKET_S, 3 * DAY_S)
    log.extend(observations[:3])
    await store.async_save(log)
    first, second = log.days
    yesterday = hass_storage[f"{store.key}.{first}"]
    log.extend(observations[3:])
    await store.async_save(log)
    assert hass_storage[f"{store.key}.{first}"] is yesterday
    assert hass_storage[store.key]["version"] == STORAGE_VERSION == 3
    assert hass_storage[store.key]["data"] == {"days": [first, second]}
    log.record(replace(observations[-1], t_s=observations[-1].t_s + 3 * DAY_S + 300.0))
    await store.async_save(log)
    assert f"{store.key}.{first}" not in hass_storage
    assert f"{store.key}.{second}" not in hass_storage
    assert hass_storage[store.key]["data"] == {"days": [second + 3]}
    assert store.last_save_s is not None
    await HistoryStore(hass, "entry").async_remove()  # the plant was removed
    assert not [key for key in hass_storage if key.startswith(store.key)]


@pytest.mark.usefixtures("no_platforms")
@pytest.mark.parametrize("version", [1, 2])
async def test_older_history_loads_and_a_damaged_row_is_dropped(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    mock_config_entry: MockConfigEntry,
    plant: Plant,
    caplog: pytest.LogCaptureFixture,
    version: int,
) -> None:
    """Rows stored by version 1 (positional) or 2 (typed) are converted to columns, written
    as day files at once and replayed; one damaged row is dropped with a warning."""
    t0 = time.time() - 86400.0
    observations = _observations(Plant(plant.scenario, start_s=0.0), 12, t0)
    rows: list[Any] = [_v1(o) if version == 1 else pack_observation(o) for o in observations]
    rows.insert(5, [t0, None, {"c01": ["broken"]}, {}] if version == 1 else {"t_s": t0})
    store_history(hass_storage, mock_config_entry, rows, version)
    assert await set_up(hass, mock_config_entry)
    key = f"{DOMAIN}.{mock_config_entry.entry_id}.history"

    if version == 1:
        assert "Dropped 1 damaged history row(s) of storage version 1" in caplog.text
    else:
        assert "The stored load history was damaged; 1 row(s) discarded" in caplog.text
    # Converted and written at once, before any poll: the index lists the days of the rows.
    assert hass_storage[key]["version"] == STORAGE_VERSION
    days = sorted({int(round(o.t_s, 1) // DAY_S) for o in observations})
    assert hass_storage[key]["data"] == {"days": days}
    forecast = mock_config_entry.runtime_data.decisions
    assert len(forecast.history) == 13  # the 12 rows and this setup's first poll
    await forecast.async_persist()
    loaded = await HistoryStore(hass, mock_config_entry.entry_id).async_load(
        HISTORY_BUCKET_S, HISTORY_MAX_S
    )
    saved = list(loaded.rows())
    # The 12 converted rows, then the live poll of this setup (a later bucket).
    assert [row["t_s"] for row in saved[:12]] == [round(o.t_s, 1) for o in observations]
    assert len(saved) == 13
    assert saved[0]["circuits"]["c01"]["active_path"] == "mpdu1"


def test_rows_without_elements_or_circuits_are_kept_and_stored(plant: Plant) -> None:
    """A poll in which no element (or no circuit) answered at all still makes a row that is
    stored and read back (found by the soak: an empty column could not be encoded)."""
    observations = _observations(plant, 3, 1.8e9)
    observations[1] = replace(observations[1], elements={})
    observations[2] = replace(observations[2], circuits={}, elements={})
    rows = [pack_observation(o) for o in observations]
    log, damaged = HistoryLog.from_rows(rows, 300.0, 86400.0)
    assert damaged == 0
    again = HistoryLog(300.0, 86400.0)
    snapshot = log.snapshot_days(log.days)
    for day in log.days:
        again.add_chunks(decode_day(day, encode_day(snapshot[day])))
    assert _log_rows(again) == rows


async def test_released_days_stay_on_disk_and_load_back(
    hass: HomeAssistant, hass_storage: dict[str, Any], plant: Plant
) -> None:
    """Days released from memory (saved, then dropped: memory holds the last two days) are
    still kept: a later save neither rewrites nor removes their files, the index lists them,
    a load returns every row, and they leave only with the window."""
    t0 = 1.8e9 - 1.8e9 % DAY_S - 2 * DAY_S + 600.0  # three days, two rows each
    observations = [
        replace(o, t_s=t0 + day * DAY_S + i * 300.0)
        for day in range(3)
        for i, o in enumerate(_observations(plant, 2, t0))
    ]
    store = HistoryStore(hass, "entry")
    log = HistoryLog(HISTORY_BUCKET_S, 4 * DAY_S)
    log.extend(observations[:4])
    await store.async_save(log)
    first, second = log.days
    stored_first = hass_storage[f"{store.key}.{first}"]
    log.release_days_before(second)
    assert log.hot_days == {second}
    assert log.days == [first, second]
    assert len(log) == 2  # in memory: the second day's rows only
    log.extend(observations[4:])
    await store.async_save(log)
    assert hass_storage[f"{store.key}.{first}"] is stored_first  # kept, not rewritten
    assert hass_storage[store.key]["data"] == {"days": [first, second, second + 1]}
    loaded = await HistoryStore(hass, "entry").async_load(HISTORY_BUCKET_S, 4 * DAY_S)
    assert [r["t_s"] for r in loaded.rows()] == [round(o.t_s, 1) for o in observations]
    # A changed day is not released before it is saved.
    log.record(replace(observations[-1], t_s=observations[-1].t_s + 300.0))
    log.release_days_before(second + 2)
    assert second + 1 in log.hot_days
    # The window moves past the released day: its file goes at the next save.
    log.record(replace(observations[-1], t_s=first * DAY_S + 5 * DAY_S + 60.0))
    await store.async_save(log)
    assert f"{store.key}.{first}" not in hass_storage
    assert first not in log.days


async def test_the_coordinator_keeps_two_days_in_memory_and_replays_every_day(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sim_server: tuple[PlantServer, int],
    mock_config_entry: MockConfigEntry,
) -> None:
    """Four days handed over: all are replayed into the forecasters and kept on disk, only the
    last two stay in memory, and a policy rebuilt for a changed plant learns all four again
    (from disk)."""
    server, _port = sim_server
    rows = history_rows(server, 4 * DAY_S - 300, t0=time.time() - 4 * DAY_S)
    store_history(hass_storage, mock_config_entry, rows)
    assert await set_up(hass, mock_config_entry)
    coordinator = mock_config_entry.runtime_data.decisions
    history = coordinator.history
    assert len(history.days) >= 4
    assert len(history.hot_days) <= 2
    assert len(history) < len(rows) / 2 + 10

    def span_days(policy: Any) -> float:
        spans = [fc.history_s for fc in policy._fcs.forecasters.values()]
        return min(spans) / DAY_S

    assert span_days(coordinator.policy) > 3.9
    await coordinator._async_rebuild(coordinator.policy.topology)
    assert span_days(coordinator.policy) > 3.9
    assert len(coordinator.history.hot_days) <= 2
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)
    await hass.async_block_till_done()
