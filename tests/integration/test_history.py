"""The persisted history: typed rows, and rows of storage version 1 (positional lists) converted
on load, a damaged one dropped with a log line. Real Home Assistant store, real simulator."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.datacenter_power.const import DOMAIN
from custom_components.datacenter_power.engine.observation import PlantObservation
from custom_components.datacenter_power.forecasting import STORAGE_VERSION
from custom_components.datacenter_power.history import (
    pack_observation,
    row_from_v1,
    unpack_observation,
)
from dcp_eval.harness import observation_from_telemetry, topology_from_scenario
from dcp_sim.plant import Plant


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


@pytest.mark.usefixtures("no_platforms")
async def test_version_1_history_loads_and_a_damaged_row_is_dropped(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    mock_config_entry: MockConfigEntry,
    plant: Plant,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Rows stored by version 1 are converted and replayed; one damaged row is dropped with a
    warning; what is saved afterwards is version 2 with named fields."""
    t0 = time.time() - 86400.0
    observations = _observations(Plant(plant.scenario, start_s=0.0), 12, t0)
    rows: list[Any] = [_v1(obs) for obs in observations]
    rows.insert(5, [t0, None, {"c01": ["broken"]}, {}])
    mock_config_entry.add_to_hass(hass)
    key = f"{DOMAIN}.{mock_config_entry.entry_id}.history"
    hass_storage[key] = {"version": 1, "minor_version": 1, "key": key, "data": {"history": rows}}
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()

    assert "Dropped 1 damaged history row(s) of storage version 1" in caplog.text
    forecast = mock_config_entry.runtime_data.forecast
    await forecast.async_persist()
    saved = hass_storage[key]
    assert saved["version"] == STORAGE_VERSION == 2
    history = saved["data"]["history"]
    # The 12 converted rows, then the live poll of this setup (a later bucket).
    assert [row["t_s"] for row in history[:12]] == [round(o.t_s, 1) for o in observations]
    assert len(history) == 13
    assert history[0]["circuits"]["c01"]["active_path"] == "mpdu1"
