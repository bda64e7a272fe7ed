"""ATS transfers, SBM bypass and make-before-break, failures, commands and their rejection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dcp_sim.plant import CommandRejected, Plant

type Doc = dict[str, Any]
H = 3600.0
V = 230.0


def _outage(doc: Doc, transfer_time: str = "100ms") -> None:
    for ats in doc["ats"]:
        ats["transfer_time"] = transfer_time
    doc["events"] = [{"kind": "source_outage", "target": "util_a", "at": "1h", "duration": "30m"}]


def test_source_outage_transfer_interrupts_beyond_ride_through(
    doc: Doc, make_plant: Callable[..., Plant]
) -> None:
    _outage(doc)
    plant = make_plant(doc)
    plant.advance_to(1 * H)
    tel = plant.telemetry()
    ats1 = tel.ats["ats1"]
    assert ats1.active_source == 1
    assert ats1.output_energized
    assert ats1.source_available == (False, True)
    assert ats1.source_voltage_v == (0.0, 230.0)
    assert (ats1.transfers_total, ats1.transfers_failure) == (1, 1)
    assert ats1.last_transfer_ms == pytest.approx(100.0)
    # A transfer is a gap, not a dead path: both circuits wait out the 100 ms on mpdu1.
    for cid in ("c01", "c03"):
        assert tel.circuits[cid].energized
        assert tel.circuits[cid].active_path == 0
        assert tel.circuits[cid].bypass_transfers == 0
    m = plant.metrics
    assert m.interruptions == 2
    assert m.switch_operations == 0
    assert m.unserved_energy_wh == pytest.approx((5 * V * 0.1 + 3 * V * 0.1) / 3600)
    plant.advance_to(2 * H)  # outage over: retransfer to the preferred source
    ats1 = plant.telemetry().ats["ats1"]
    assert ats1.active_source == 0
    assert (ats1.transfers_total, ats1.transfers_failure) == (2, 1)
    assert plant.metrics.interruptions == 4  # both circuits again on the way back
    assert plant.telemetry().circuits["c01"].active_path == 0
    assert ats1.time_on_source_s == pytest.approx((1.5 * H, 0.5 * H))


def test_fast_transfer_rides_through(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    _outage(doc, transfer_time="15ms")
    plant = make_plant(doc)
    plant.advance_to(2 * H)
    assert plant.telemetry().ats["ats1"].transfers_total == 2
    assert plant.metrics.interruptions == 0
    assert plant.metrics.switch_operations == 0
    assert plant.metrics.unserved_energy_wh == 0.0


@pytest.mark.parametrize(("bypass_delay", "interruptions"), [("10ms", 1), ("30ms", 2)])
def test_sbm_local_bypass_on_mpdu_failure(
    doc: Doc, make_plant: Callable[..., Plant], bypass_delay: str, interruptions: int
) -> None:
    doc["bypass_delay"] = bypass_delay
    doc["events"] = [
        {"kind": "sudden_failure", "target": "mpdu1", "at": "1h", "repair_after": "1h"}
    ]
    plant = make_plant(doc)
    plant.advance_to(1 * H)
    tel = plant.telemetry()
    assert not tel.mpdus["mpdu1"].energized
    assert tel.circuits["c01"].active_path == 1
    assert tel.circuits["c01"].energized
    assert tel.circuits["c01"].path_energized == (False, True)
    assert tel.circuits["c01"].bypass_transfers == 1
    assert not tel.circuits["c03"].energized
    assert tel.circuits["c03"].current_a == 0.0
    assert tel.mpdus["mpdu2"].current_a == pytest.approx(9.0)
    assert plant.metrics.interruptions == interruptions
    plant.advance_to(3 * H)
    tel = plant.telemetry()
    assert tel.mpdus["mpdu1"].energized
    assert tel.circuits["c03"].energized
    assert tel.circuits["c01"].active_path == 1  # the SBM does not move back by itself
    bypass_wh = 5 * V * 0.03 / 3600 if interruptions == 2 else 0.0
    assert plant.metrics.unserved_energy_wh == pytest.approx(3 * V * 1.0 + bypass_wh)


@pytest.mark.parametrize(
    ("target", "check"),
    [
        ("util_a", lambda t: not t.ats["ats1"].source_available[0]),
        ("ats2", lambda t: not t.ats["ats2"].output_energized and t.ats["ats2"].alarm_output_lost),
        ("c02", lambda t: not t.circuits["c02"].energized and t.circuits["c02"].active_path == 0),
    ],
)
def test_sudden_failures(
    doc: Doc, make_plant: Callable[..., Plant], target: str, check: Callable[[Any], bool]
) -> None:
    doc["events"] = [{"kind": "sudden_failure", "target": target, "at": "1h"}]
    plant = make_plant(doc)
    plant.advance_to(1 * H - 60)
    assert not check(plant.telemetry())
    plant.advance_to(1 * H)
    assert check(plant.telemetry())
    plant.advance_to(10 * H)
    assert check(plant.telemetry())  # no repair_after: never repaired


def test_make_before_break_command(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    plant = make_plant(doc)
    plant.step()
    plant.command_sbm_path("c01", "mpdu2")
    tel = plant.telemetry()  # effective at once
    assert tel.circuits["c01"].active_path == 1
    assert tel.circuits["c01"].energized
    assert tel.circuits["c01"].switch_operations == 1
    assert tel.circuits["c01"].bypass_transfers == 0
    assert tel.mpdus["mpdu1"].current_a == pytest.approx(3.0)
    assert tel.mpdus["mpdu2"].current_a == pytest.approx(9.0)
    plant.command_sbm_path("c01", 1)  # already there: no operation
    plant.command_sbm_path("c01", 0)
    assert plant.telemetry().circuits["c01"].active_path == 0
    assert plant.metrics.switch_operations == 2
    assert plant.metrics.interruptions == 0


def test_output_commands(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    plant = make_plant(doc)
    plant.command_mpdu_output("mpdu1", False)
    tel = plant.telemetry()
    assert not tel.mpdus["mpdu1"].output_on
    assert not tel.mpdus["mpdu1"].energized
    assert tel.circuits["c01"].active_path == 1  # its SBM bypassed
    assert not tel.circuits["c03"].energized
    plant.command_mpdu_output("mpdu1", True)
    plant.command_sbm_output("c02", False)  # critical: allowed at plant level
    tel = plant.telemetry()
    assert not tel.circuits["c02"].output_on
    assert tel.circuits["c02"].current_a == 0.0
    assert tel.circuits["c03"].energized
    assert plant.metrics.interruptions == 3


def test_ats_commands(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["circuits"][0]["paths"] = ["mpdu1"]
    plant = make_plant(doc)
    plant.command_ats_transfer("ats1", "util_b")
    ats1 = plant.telemetry().ats["ats1"]
    assert (ats1.active_source, ats1.preferred_source) == (1, 1)
    assert (ats1.transfers_total, ats1.transfers_failure) == (1, 0)
    assert plant.metrics.interruptions == 2  # open transition, 100 ms, c01 and c03
    plant.command_ats_inhibit("ats1", True)
    plant.command_ats_preferred_source("ats1", "util_a")
    ats1 = plant.telemetry().ats["ats1"]
    assert ats1.inhibit
    assert ats1.preferred_source == 0
    assert ats1.active_source == 1
    with pytest.raises(CommandRejected, match="inhibited"):
        plant.command_ats_transfer("ats1", 0)
    plant.command_ats_inhibit("ats1", False)  # now it retransfers to the preferred source
    assert plant.telemetry().ats["ats1"].active_source == 0
    tests = plant.telemetry().ats["ats1"].self_tests
    plant.command_ats_self_test("ats1")
    ats1 = plant.telemetry().ats["ats1"]
    assert ats1.self_tests == tests + 1
    assert ats1.last_self_test_ms == pytest.approx(100.0, rel=0.15)
    assert ats1.operations == ats1.transfers_total + ats1.self_tests
    assert plant.metrics.interruptions == 4  # the self-test interrupted nothing


def test_inhibit_does_not_block_failure_transfer(
    doc: Doc, make_plant: Callable[..., Plant]
) -> None:
    _outage(doc)
    plant = make_plant(doc)
    plant.command_ats_inhibit("ats1", True)
    plant.advance_to(1 * H)
    assert plant.telemetry().ats["ats1"].active_source == 1
    plant.advance_to(2 * H)
    assert plant.telemetry().ats["ats1"].active_source == 1  # no retransfer while inhibited
    plant.command_ats_inhibit("ats1", False)
    assert plant.telemetry().ats["ats1"].active_source == 0


def test_alarm_latch_and_reset(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["events"] = [{"kind": "sudden_failure", "target": "ats1", "at": "1h", "repair_after": "1h"}]
    plant = make_plant(doc)
    assert not plant.telemetry().ats["ats1"].alarm_output_lost
    plant.advance_to(1 * H)
    plant.command_ats_reset_alarms("ats1")
    assert plant.telemetry().ats["ats1"].alarm_output_lost  # condition still present
    plant.advance_to(2 * H)
    assert plant.telemetry().ats["ats1"].alarm_output_lost  # latched
    plant.command_ats_reset_alarms("ats1")
    assert not plant.telemetry().ats["ats1"].alarm_output_lost


def test_command_rejections(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    doc["events"] = [
        {"kind": "source_outage", "target": "util_b", "at": "1h", "duration": "1h"},
        {"kind": "sudden_failure", "target": "ats2", "at": "3h"},
        {"kind": "comms_loss", "target": "c02", "at": "1h", "duration": "5h"},
    ]
    plant = make_plant(doc)
    plant.advance_to(1 * H)
    cases: list[tuple[Callable[[], None], str]] = [
        (lambda: plant.command_sbm_path("c99", "mpdu1"), "unknown circuit 'c99'"),
        (lambda: plant.command_sbm_path("c01", 2), "path index 2 out of range"),
        (lambda: plant.command_sbm_path("c01", -1), "out of range"),
        (lambda: plant.command_sbm_path("c03", "mpdu2"), "'mpdu2' is not a path of c03"),
        (lambda: plant.command_sbm_path("c02", "mpdu1"), "unreachable"),
        (lambda: plant.command_sbm_output("nope", True), "unknown circuit"),
        (lambda: plant.command_ats_transfer("ats1", "util_b"), "'util_b' is not available"),
        (lambda: plant.command_ats_transfer("ats1", "util_c"), "is not a source of ats1"),
        (lambda: plant.command_ats_preferred_source("ats1", 7), "source index 7 out of range"),
        (lambda: plant.command_ats_inhibit("ats9", True), "unknown ATS 'ats9'"),
        (lambda: plant.command_mpdu_output("mpdu7", False), "unknown MPDU 'mpdu7'"),
        (lambda: plant.command_sbm_path("c01", True), "must be an id or an index"),
    ]
    for call, message in cases:
        with pytest.raises(CommandRejected, match=message):
            call()
    plant.advance_to(3 * H)
    plant.command_mpdu_output("mpdu1", False)
    with pytest.raises(
        CommandRejected, match="target path 'mpdu1' of circuit 'c01' is not energised"
    ):
        plant.command_sbm_path("c01", "mpdu1")
    with pytest.raises(CommandRejected, match="cannot self-test"):
        plant.command_ats_self_test("ats2")
    with pytest.raises(CommandRejected, match="cannot transfer"):
        plant.command_ats_transfer("ats2", "util_a")


def test_advance_to_lands_on_the_step_grid(doc: Doc, make_plant: Callable[..., Plant]) -> None:
    plant = make_plant(doc)
    plant.advance_to(90.0)
    assert plant.t_s == 60.0
    plant.advance_to(60.0)
    assert plant.t_s == 60.0
    plant.advance_to(180.0)
    assert plant.t_s == 180.0
    assert plant.telemetry().timestamp.isoformat() == "2026-03-02T00:03:00+00:00"
