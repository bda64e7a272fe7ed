"""The device layer's client against the simulator over real Modbus TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import fields
from typing import Any

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from custom_components.datacenter_power.device.client import PlantClient
from custom_components.datacenter_power.device.errors import (
    BadResponse,
    DeviceError,
    DeviceUnavailable,
    ExceptionCode,
    GatewayUnavailable,
)
from custom_components.datacenter_power.device.models import (
    AtsReading,
    DeviceIdentity,
    DeviceType,
    EnvReading,
    MpduReading,
    Reading,
    SbmReading,
)
from custom_components.datacenter_power.device.registers import IDENTIFICATION, MAPS
from dcp_sim.plant import Plant
from dcp_sim.server import PlantServer
from dcp_sim.telemetry import PlantTelemetry
from dcp_sim.units import Unit


def _telemetry_of(tel: PlantTelemetry, identity: DeviceIdentity) -> object:
    match identity.device_type:
        case DeviceType.ATS:
            return tel.ats[identity.plant_id]
        case DeviceType.MPDU:
            return tel.mpdus[identity.plant_id]
        case DeviceType.SBM:
            return tel.circuits[identity.plant_id]
        case _:
            return tel.env


def _assert_matches(reading: Reading, identity: DeviceIdentity, expected: object) -> int:
    """Every field of the reading equals the telemetry within half the register's resolution;
    returns the number of values compared."""
    block = MAPS[identity.device_type].measurements
    compared = 0
    for f in fields(reading):
        got, want = getattr(reading, f.name), getattr(expected, f.name)
        try:
            spec = block.field(f.name)
        except KeyError:
            try:
                spec = IDENTIFICATION.field(f.name)
            except KeyError:
                spec = None
        tolerance = spec.scale / 2 + 1e-9 if spec is not None and spec.is_float else 0.0
        gots = got if isinstance(got, tuple) else (got,)
        wants = want if isinstance(want, tuple) else (want,)
        assert len(gots) == len(wants), f.name
        for g, w in zip(gots, wants, strict=True):
            if isinstance(w, float) and tolerance:
                assert math.isclose(g, w, abs_tol=tolerance), (identity.plant_id, f.name, g, w)
            else:
                assert g == w, (identity.plant_id, f.name, g, w)
            compared += 1
    return compared


async def test_scan_identifies_every_device(server: PlantServer, client: PlantClient) -> None:
    progress: list[tuple[int, int]] = []
    found = await client.scan(
        range(1, 61), per_unit_timeout=0.2, progress=lambda d, t: progress.append((d, t))
    )
    by_id = {d.plant_id: d for d in found}
    assert [d.unit_id for d in found] == [1, 2, 3, 10, 11, 40, 41, 42]
    assert {d.plant_id: d.unit_id for d in found} == server.unit_ids
    assert progress[-1] == (60, 60)
    assert len(progress) == 60

    ats2 = by_id["ats2"]
    assert ats2.device_type is DeviceType.ATS
    assert ats2.sources == ("util_b", "util_a")
    assert (ats2.rating_a, ats2.transfer_time_ms, ats2.rated_operations) == (120.0, 12.0, 10000)
    assert ats2.model == "DCP-ATS"
    assert ats2.firmware == "sim-1.0"
    assert ats2.map_version == 1

    mpdu2 = by_id["mpdu2"]
    assert (mpdu2.device_type, mpdu2.ats, mpdu2.rating_a) == (DeviceType.MPDU, "ats2", 60.0)
    assert mpdu2.transfer_time_ms == 0.0

    c03, c02 = by_id["c03"], by_id["c02"]
    assert (c03.device_type, c03.paths, c03.critical) == (DeviceType.SBM, ("mpdu1",), False)
    assert (c02.paths, c02.critical, c02.rating_a) == (("mpdu2", "mpdu1"), True, 20.0)
    assert c02.sources == ()
    assert c02.ats is None

    env = by_id["env1"]
    assert (env.device_type, env.upstream, env.rating_a) == (DeviceType.ENV, (), 0.0)


async def test_scan_finds_every_device_while_the_event_loop_stalls(
    plant: Plant, socket_enabled: None
) -> None:
    """Home Assistant setting up another gateway's hundreds of entities blocks the event loop
    for long stretches. Here the loop is blocked while the first answer of every unit id is on
    its way, so the request's timer fires late, with the answer: the scan must ask again rather
    than take the unit id for empty."""
    server = PlantServer(plant, speed=0)
    answer = server._action
    stalled: set[int] = set()

    async def answer_after_a_stall(unit: Unit, *args: Any) -> Any:
        if unit.unit_id not in stalled:
            stalled.add(unit.unit_id)
            time.sleep(0.3)  # noqa: ASYNC251 - the point of the test: a blocked event loop
        return await answer(unit, *args)

    server._action = answer_after_a_stall  # type: ignore[method-assign]
    await server.start("127.0.0.1", 0)
    client = PlantClient("127.0.0.1", server.port, timeout=0.2)
    try:
        found = await client.scan(sorted(server.units), per_unit_timeout=0.2, concurrency=4)
    finally:
        await client.close()
        await server.stop()
    assert stalled == set(server.units)
    assert {d.plant_id: d.unit_id for d in found} == server.unit_ids


async def test_every_measurement_matches_plant_telemetry(
    server: PlantServer, plant: Plant, client: PlantClient, devices: dict[str, DeviceIdentity]
) -> None:
    server.advance(3 * 3600)  # past the ats2 failure and repair: counters are non-zero
    results = await client.read_all(list(devices.values()))
    tel = plant.telemetry()
    compared = 0
    for plant_id, identity in devices.items():
        reading = results[plant_id]
        assert not isinstance(reading, Exception), reading
        compared += _assert_matches(reading, identity, _telemetry_of(tel, identity))
    assert compared > 100
    ats2 = results["ats2"]
    assert isinstance(ats2, AtsReading)
    assert ats2.alarm_output_lost  # latched by the failure
    assert ats2.energy_kwh > 0
    assert ats2.time_on_source_s[0] > 0
    assert isinstance(results["mpdu1"], MpduReading)
    assert isinstance(results["c01"], SbmReading)
    assert isinstance(results["env1"], EnvReading)


async def test_one_request_per_device_per_poll(
    client: PlantClient, devices: dict[str, DeviceIdentity]
) -> None:
    before = client.request_count
    await client.read_all(list(devices.values()), concurrency=1)
    assert client.request_count - before == len(devices)
    before = client.request_count
    await client.read_device(devices["ats1"])
    assert client.request_count - before == 1


async def test_sbm_path_and_output_commands_change_the_plant(
    client: PlantClient, plant: Plant, devices: dict[str, DeviceIdentity]
) -> None:
    c01 = devices["c01"]
    await client.set_sbm_path(c01, "mpdu2")
    tel = plant.telemetry().circuits["c01"]
    assert (tel.active_path, tel.switch_operations) == (1, 1)
    reading = await client.read_device(c01)
    assert isinstance(reading, SbmReading)
    assert (reading.active_path, reading.switch_operations) == (1, 1)

    await client.set_sbm_path(c01, 0)
    assert plant.telemetry().circuits["c01"].active_path == 0

    await client.set_sbm_output(c01, False)
    reading = await client.read_device(c01)
    assert isinstance(reading, SbmReading)
    assert not reading.output_on
    assert not reading.energized
    await client.set_sbm_output(c01, True)
    assert plant.telemetry().circuits["c01"].energized


async def test_ats_commands_change_the_plant(
    server: PlantServer, client: PlantClient, plant: Plant, devices: dict[str, DeviceIdentity]
) -> None:
    ats1 = devices["ats1"]
    await client.ats_transfer(ats1, "util_b")
    tel = plant.telemetry().ats["ats1"]
    assert (tel.active_source, tel.preferred_source, tel.transfers_total) == (1, 1, 1)

    await client.set_ats_preferred_source(ats1, 0)
    server.advance(60)
    assert plant.telemetry().ats["ats1"].active_source == 0  # retransferred to preferred

    await client.set_ats_inhibit(ats1, True)
    reading = await client.read_device(ats1)
    assert isinstance(reading, AtsReading)
    assert reading.inhibit
    assert plant.telemetry().ats["ats1"].inhibit
    await client.set_ats_inhibit(ats1, False)
    assert not plant.telemetry().ats["ats1"].inhibit

    await client.ats_self_test(ats1)
    tel = plant.telemetry().ats["ats1"]
    assert tel.self_tests == 1
    assert tel.last_self_test_ms > 90

    ats2 = devices["ats2"]
    server.advance(2 * 3600 + 20 * 60)  # ats2 failed at 2h and was repaired at 2h10
    assert plant.telemetry().ats["ats2"].alarm_output_lost
    await client.ats_reset_alarms(ats2)
    reading = await client.read_device(ats2)
    assert isinstance(reading, AtsReading)
    assert not reading.alarm_output_lost


async def test_mpdu_output_command_changes_the_plant(
    client: PlantClient, plant: Plant, devices: dict[str, DeviceIdentity]
) -> None:
    await client.set_mpdu_output(devices["mpdu2"], False)
    tel = plant.telemetry()
    assert not tel.mpdus["mpdu2"].output_on
    assert not tel.mpdus["mpdu2"].energized
    assert tel.circuits["c02"].path_energized == (False, True)
    await client.set_mpdu_output(devices["mpdu2"], True)
    assert plant.telemetry().mpdus["mpdu2"].energized


async def test_illegal_commands_raise_device_error(
    client: PlantClient, plant: Plant, devices: dict[str, DeviceIdentity]
) -> None:
    c01, ats1 = devices["c01"], devices["ats1"]
    with pytest.raises(DeviceError) as err:
        await client.set_sbm_path(c01, 2)  # c01 has two paths
    assert err.value.code == ExceptionCode.ILLEGAL_DATA_VALUE
    assert err.value.code_name == "ILLEGAL_DATA_VALUE"

    await client.set_mpdu_output(devices["mpdu2"], False)
    with pytest.raises(DeviceError) as err:
        await client.set_sbm_path(c01, "mpdu2")  # target path not energised
    assert err.value.code == ExceptionCode.SERVER_DEVICE_FAILURE
    assert plant.telemetry().circuits["c01"].active_path == 0

    await client.set_ats_inhibit(ats1, True)
    with pytest.raises(DeviceError) as err:
        await client.ats_transfer(ats1, "util_b")
    assert err.value.code == ExceptionCode.SERVER_DEVICE_FAILURE
    assert plant.telemetry().ats["ats1"].active_source == 0

    with pytest.raises(DeviceError) as err:
        await client.set_ats_preferred_source(ats1, -1)
    assert err.value.code == ExceptionCode.ILLEGAL_DATA_VALUE

    with pytest.raises(ValueError, match="not a path"):
        await client.set_sbm_path(c01, "mpdu9")
    with pytest.raises(ValueError, match="not an ATS"):
        await client.ats_self_test(c01)


async def test_comms_loss_is_a_timeout_and_spares_the_others(
    server: PlantServer, client: PlantClient, devices: dict[str, DeviceIdentity]
) -> None:
    server.advance(31 * 60)  # mpdu2 silent from 30 min to 40 min
    t0 = time.perf_counter()
    with pytest.raises(DeviceUnavailable) as err:
        await client.read_device(devices["mpdu2"])
    assert err.value.code is None  # a timeout, not a gateway exception
    assert time.perf_counter() - t0 < 1.0

    with pytest.raises(TimeoutError):  # the caller's own deadline wins over the client's
        async with asyncio.timeout(0.05):
            await client.read_device(devices["mpdu2"])

    results = await client.read_all(list(devices.values()), concurrency=3)
    assert isinstance(results["mpdu2"], DeviceUnavailable)
    assert all(not isinstance(r, Exception) for k, r in results.items() if k != "mpdu2")
    with pytest.raises(DeviceUnavailable):
        await client.set_mpdu_output(devices["mpdu2"], False)

    server.advance(10 * 60)
    reading = await client.read_device(devices["mpdu2"])
    assert isinstance(reading, MpduReading)
    assert reading.output_on  # the command sent while silent was never executed


async def test_unknown_unit_is_unavailable(client: PlantClient) -> None:
    with pytest.raises(DeviceUnavailable) as err:
        await client.read_identity(200)
    assert err.value.code == ExceptionCode.GATEWAY_PATH_UNAVAILABLE
    assert err.value.unit_id == 200


async def test_no_gateway_is_gateway_unavailable(
    socket_enabled: None, unused_tcp_port: int
) -> None:
    client = PlantClient("127.0.0.1", unused_tcp_port, timeout=0.2)
    with pytest.raises(GatewayUnavailable):
        await client.connect()
    with pytest.raises(GatewayUnavailable):
        await client.scan(range(1, 5))
    await client.close()


async def test_foreign_device_is_bad_response_and_skipped_by_scan(socket_enabled: None) -> None:
    """A device that is not this register map (type code 99) is not taken for one."""
    words = [99, 1] + [0] * 60
    device = SimDevice(
        id=5,
        simdata=[
            SimData(0, values=words, datatype=DataType.UINT16),
            SimData(200, values=[0], datatype=DataType.UINT16),
        ],
    )
    server = ModbusTcpServer([device], address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    port = server.transport.sockets[0].getsockname()[1]
    client = PlantClient("127.0.0.1", port, timeout=0.2)
    try:
        with pytest.raises(BadResponse, match="unknown device type 99"):
            await client.read_identity(5)
        assert await client.scan([5], per_unit_timeout=0.2) == []
    finally:
        await client.close()
        await server.shutdown()


async def test_sbm_counts_interruptions_shorter_than_a_poll(
    client: PlantClient, plant: Plant, devices: dict[str, DeviceIdentity]
) -> None:
    """A 100 ms open transition of ats1 is over long before any poll: the circuits below it
    read energised before and after, yet their SBMs count one interruption each, with its time;
    a circuit on the other ATS counts none. A commanded output off is one more."""
    before = await client.read_all(list(devices.values()))
    for cid in ("c01", "c02", "c03"):
        reading = before[cid]
        assert isinstance(reading, SbmReading)
        assert (reading.interruptions, reading.last_interruption_ts) == (0, 0)
    await client.ats_transfer(devices["ats1"], "util_b")  # open transition, 100 ms gap
    after = await client.read_all(list(devices.values()))
    when = int(plant.timestamp.timestamp())
    for cid, expected in (("c01", 1), ("c02", 0), ("c03", 1)):
        reading = after[cid]
        assert isinstance(reading, SbmReading)
        assert reading.energized  # the gap is already over: only the counter shows it
        assert reading.interruptions == expected, cid
        assert reading.last_interruption_ts == (when if expected else 0), cid
    await client.set_sbm_output(devices["c02"], False)
    reading = await client.read_device(devices["c02"])
    assert isinstance(reading, SbmReading)
    assert reading.interruptions == 1
    assert plant.telemetry().circuits["c02"].interruptions == 1
