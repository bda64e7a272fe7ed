"""Each SBM counts its own interruptions (the register map's ``interruptions`` and
``last_interruption_ts``): the same events the plant's metrics count, per circuit, with the time
of the last, including the ones during history (a device counts since power-up)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dcp_sim.plant import Plant

H = 3600.0
type Doc = dict[str, Any]


def _outage(doc: Doc, transfer_time: str = "100ms") -> None:
    doc["ats"][0]["transfer_time"] = transfer_time
    doc["events"] = [{"kind": "source_outage", "target": "util_a", "at": "1h", "duration": "30m"}]


def test_counts_per_circuit_match_the_metrics(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    """ATS-1's 100 ms transfers (at 1 h and back at 1.5 h) interrupt c01 and c03 (on mpdu1)
    twice each; c02 (on ats2) never. Every count is a metric too, and the time is the last one."""
    _outage(doc)
    plant = make_plant(doc)
    start = int(plant.timestamp.timestamp())
    tel = plant.telemetry().circuits
    assert {c: (t.interruptions, t.last_interruption_ts) for c, t in tel.items()} == {
        "c01": (0, 0),
        "c02": (0, 0),
        "c03": (0, 0),
    }
    plant.advance_to(1 * H)
    tel = plant.telemetry().circuits
    assert (tel["c01"].interruptions, tel["c03"].interruptions, tel["c02"].interruptions) == (
        1,
        1,
        0,
    )
    assert tel["c01"].last_interruption_ts == start + int(H)
    assert tel["c01"].energized  # the gap is over: only the counter shows it
    plant.advance_to(2 * H)
    tel = plant.telemetry().circuits
    assert (tel["c01"].interruptions, tel["c03"].interruptions, tel["c02"].interruptions) == (
        2,
        2,
        0,
    )
    assert tel["c03"].last_interruption_ts == start + int(1.5 * H)
    assert plant.metrics.interruptions == sum(t.interruptions for t in tel.values())


def test_a_gap_within_ride_through_is_not_counted(
    doc: Doc, make_plant: Callable[..., Plant]
) -> None:
    _outage(doc, transfer_time="15ms")
    plant = make_plant(doc)
    plant.advance_to(2 * H)
    assert plant.telemetry().ats["ats1"].transfers_total == 2
    assert all(t.interruptions == 0 for t in plant.telemetry().circuits.values())


def test_history_counts_on_the_device_not_in_the_metrics(
    doc: Doc, make_plant: Callable[..., Plant]
) -> None:
    """An output switched off (and on) during the history: the SBM counts it (a device counts
    since power-up), the run's metrics (t >= 0) do not; the same after t=0 is in both."""
    doc["history"] = "2h"
    plant = make_plant(doc, -2 * H)
    plant.advance_to(-1 * H)
    plant.command_sbm_output("c02", False)
    plant.command_sbm_output("c02", True)
    assert plant.telemetry().circuits["c02"].interruptions == 1
    plant.advance_to(1 * H)
    plant.command_sbm_output("c02", False)
    assert plant.telemetry().circuits["c02"].interruptions == 2
    assert plant.metrics.interruptions == 1
