"""The simulator's Modbus TCP server, seen by a plain pymodbus client, and ``python -m dcp_sim``."""

from __future__ import annotations

import asyncio
import copy
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from custom_components.datacenter_power.device.registers import ATS_MAP, IDENTIFICATION, SBM_MAP
from dcp_sim.__main__ import main
from dcp_sim.plant import Plant
from dcp_sim.scenario import load_scenario, parse_scenario
from dcp_sim.server import PlantServer, assign_gateways, assign_unit_ids

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))

DOC: dict[str, Any] = {
    "version": 1,
    "name": "server",
    "seed": 3,
    "start": "2026-03-02T00:00:00Z",
    "history": "0s",
    "duration": "1d",
    "step": "60s",
    "sources": [{"id": "util_a", "nominal_v": 230}, {"id": "util_b", "nominal_v": 230}],
    "ats": [
        {
            "id": "ats1",
            "sources": ["util_a", "util_b"],
            "rating_a": 100,
            "transfer_time": "100ms",
            "rated_operations": 6000,
        }
    ],
    "mpdus": [{"id": "mpdu1", "ats": "ats1", "rating_a": 50}],
    "circuits": [{"id": "c01", "paths": ["mpdu1"], "rating_a": 16, "load": {"mean_a": 5}}],
    "events": [{"kind": "comms_loss", "target": "c01", "at": "10m", "duration": "5m"}],
}
ENV, ATS, MPDU, SBM = 1, 2, 10, 40


@pytest.fixture
def plant() -> Plant:
    return Plant(parse_scenario(copy.deepcopy(DOC)), start_s=0.0)


@pytest.fixture
async def server(plant: Plant, socket_enabled: None) -> AsyncIterator[PlantServer]:
    srv = PlantServer(plant, speed=0)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def modbus(server: PlantServer) -> AsyncIterator[AsyncModbusTcpClient]:
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=0.2, retries=0)
    assert await client.connect()
    yield client
    client.close()


def _text(words: list[int]) -> str:
    return b"".join(w.to_bytes(2, "big") for w in words).rstrip(b"\0").decode()


async def test_units_follow_the_documented_plan(
    server: PlantServer, modbus: AsyncModbusTcpClient
) -> None:
    assert server.unit_ids == {"env1": ENV, "ats1": ATS, "mpdu1": MPDU, "c01": SBM}
    for unit_id, (code, plant_id) in {
        ENV: (4, "env1"),
        ATS: (1, "ats1"),
        MPDU: (2, "mpdu1"),
        SBM: (3, "c01"),
    }.items():
        rr = await modbus.read_holding_registers(0, count=62, device_id=unit_id)
        assert not rr.isError()
        assert rr.registers[0] == code
        assert rr.registers[1] == 1
        assert _text(rr.registers[2:10]) == plant_id
    rr = await modbus.read_holding_registers(0, count=62, device_id=ATS)
    values = IDENTIFICATION.decode(rr.registers)
    assert values["upstream"][:2] == ("util_a", "util_b")
    assert values["upstream_count"] == 2


async def test_exception_codes(server: PlantServer, modbus: AsyncModbusTcpClient) -> None:
    async def code(request: Any) -> int:
        rr = await request
        assert rr.isError()
        return int(rr.exception_code)

    assert await code(modbus.read_holding_registers(0, count=62, device_id=99)) == 0x0A
    assert await code(modbus.write_coil(0, True, device_id=7)) == 0x0A
    assert await code(modbus.read_discrete_inputs(0, count=1, device_id=ATS)) == 0x02
    assert await code(modbus.read_input_registers(0, count=44, device_id=ATS)) == 0x02
    assert await code(modbus.write_register(0, 9, device_id=ATS)) == 0x02  # identification
    assert await code(modbus.write_register(100, 0, device_id=MPDU)) == 0x02  # no commands
    assert await code(modbus.write_coil(5, True, device_id=ATS)) == 0x02
    assert await code(modbus.write_coil(0, True, device_id=ENV)) == 0x02
    self_test = next(c.address for c in ATS_MAP.coils if c.name == "self_test")
    assert await code(modbus.write_coil(self_test, False, device_id=ATS)) == 0x03
    assert await code(modbus.write_register(100, 1, device_id=SBM)) == 0x03  # one path only
    assert server.plant.telemetry().ats["ats1"].self_tests == 0


async def test_writes_execute_commands_and_read_back(
    server: PlantServer, plant: Plant, modbus: AsyncModbusTcpClient
) -> None:
    # preferred source 1 and transfer to source 1, in one request
    rr = await modbus.write_registers(100, [1, 1], device_id=ATS)
    assert not rr.isError()
    tel = plant.telemetry().ats["ats1"]
    assert (tel.preferred_source, tel.active_source) == (1, 1)
    rr = await modbus.read_holding_registers(100, count=2, device_id=ATS)
    assert rr.registers == [1, 1]
    rr = await modbus.read_input_registers(0, count=ATS_MAP.measurements.count, device_id=ATS)
    assert ATS_MAP.measurements.decode(rr.registers)["active_source"] == 1

    rr = await modbus.write_coil(0, True, device_id=ATS)  # inhibit
    assert not rr.isError()
    rr = await modbus.read_coils(0, count=3, device_id=ATS)
    assert rr.bits[:3] == [True, False, False]
    assert plant.telemetry().ats["ats1"].inhibit

    rr = await modbus.write_coil(0, False, device_id=SBM)  # output off
    assert not rr.isError()
    rr = await modbus.read_input_registers(0, count=SBM_MAP.measurements.count, device_id=SBM)
    assert not SBM_MAP.measurements.decode(rr.registers)["output_on"]
    assert not plant.telemetry().circuits["c01"].energized


async def test_registers_follow_the_plant(
    server: PlantServer, modbus: AsyncModbusTcpClient
) -> None:
    block = ATS_MAP.measurements

    async def energy() -> float:
        rr = await modbus.read_input_registers(0, count=block.count, device_id=ATS)
        return float(block.decode(rr.registers)["energy_kwh"])

    assert await energy() == 0.0
    server.advance(600)
    first = await energy()
    assert first == pytest.approx(server.plant.telemetry().ats["ats1"].energy_kwh, abs=1e-3)
    assert first > 0
    server.advance(60)
    assert await energy() > first


async def test_comms_loss_unit_does_not_answer(
    server: PlantServer, modbus: AsyncModbusTcpClient
) -> None:
    server.advance(11 * 60)
    with pytest.raises(ModbusIOException):
        await modbus.read_input_registers(0, count=1, device_id=SBM)
    rr = await modbus.read_input_registers(0, count=1, device_id=MPDU)  # the others still do
    assert not rr.isError()
    server.advance(5 * 60)
    rr = await modbus.read_input_registers(0, count=1, device_id=SBM)
    assert not rr.isError()


async def test_clock_runs_the_plant_at_speed(plant: Plant, socket_enabled: None) -> None:
    server = PlantServer(plant, speed=60 * 200)  # 200 steps of 60 s per second
    await server.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=0.5, retries=0)
    try:
        assert await client.connect()
        await asyncio.sleep(0.15)
        assert plant.t_s >= 60 * 10
        rr = await client.read_input_registers(0, count=ATS_MAP.measurements.count, device_id=ATS)
        assert ATS_MAP.measurements.decode(rr.registers)["time_on_source_s"][0] >= 600
    finally:
        client.close()
        await server.stop()
    stopped_at = plant.t_s
    await asyncio.sleep(0.05)
    assert plant.t_s == stopped_at


def test_unit_plan_limits() -> None:
    doc = copy.deepcopy(DOC)
    doc["ats"] = [dict(DOC["ats"][0], id=f"ats{i}") for i in range(1, 10)]  # 2-9 hold 8
    units = assign_unit_ids(Plant(parse_scenario(doc), start_s=0.0))
    assert [u.unit_id for u in units] == list(range(1, 13))  # sequential instead
    assert [u.plant_id for u in units][:3] == ["env1", "ats1", "ats2"]
    assert units[-1].plant_id == "c01"
    doc["circuit_groups"] = [
        {"prefix": "x", "count": 236, "paths": ["mpdu1"], "rating_a": 16, "load": {"mean_a": 1}}
    ]
    with pytest.raises(ValueError, match="248 devices do not fit one gateway"):
        assign_unit_ids(Plant(parse_scenario(doc), start_s=0.0))
    doc = copy.deepcopy(DOC)
    doc["circuits"][0]["id"] = "c" * 17
    doc["events"] = []
    with pytest.raises(ValueError, match="longer than 16"):
        PlantServer(Plant(parse_scenario(doc), start_s=0.0))
    with pytest.raises(ValueError, match="speed"):
        PlantServer(Plant(parse_scenario(copy.deepcopy(DOC)), start_s=0.0), speed=-1)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_shipped_scenario_can_be_served(path: Path) -> None:
    sc = load_scenario(path)
    gateways = assign_gateways(Plant(sc, start_s=0.0))
    assert sum(map(len, gateways)) == len(sc.ats) + len(sc.mpdus) + len(sc.circuits) + 1


def test_cli_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\nbogus: 1\n")
    assert main([str(bad)]) == 2
    assert "bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([str(SCENARIOS[0]), "--speed", "-2"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main([str(SCENARIOS[0]), "--port", "http"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


async def test_cli_serves_a_scenario(socket_enabled: None) -> None:
    """``python -m dcp_sim`` logs its unit table, serves, and stops cleanly on SIGTERM."""
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "dcp_sim", str(ROOT / "scenarios" / "demo.yaml"), "--port", "0"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        lines: list[str] = []
        port = 0
        while not port:
            line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
            assert line, "".join(lines)
            lines.append(line)
            if match := re.search(r"serving on 127\.0\.0\.1:(\d+)", line):
                port = int(match[1])
        assert any(re.search(r"unit +2 +ATS +ats1", line) for line in lines)
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
        assert await client.connect()
        rr = await client.read_holding_registers(0, count=10, device_id=ATS)
        client.close()
        assert _text(rr.registers[2:10]) == "ats1"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
