"""A plant served over several Modbus TCP gateways: the scenario's ``gateways`` section, the
automatic split of a plant larger than one gateway, and the gateways on the wire."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from custom_components.datacenter_power.device.registers import MAX_UNIT_ID, SBM_MAP
from dcp_sim.plant import Plant
from dcp_sim.scenario import ScenarioError, load_scenario, parse_scenario
from dcp_sim.server import PlantServer, assign_gateways

ROOT = Path(__file__).resolve().parents[2]


def _doc(per_group: int = 3) -> dict[str, Any]:
    ats = [
        {
            "id": f"ats{i}",
            "sources": ["util_a", "util_b"],
            "rating_a": 400,
            "transfer_time": "100ms",
            "rated_operations": 6000,
        }
        for i in (1, 2, 3)
    ]
    return {
        "version": 1,
        "name": "gateways",
        "seed": 1,
        "start": "2026-03-02T00:00:00Z",
        "history": "0s",
        "duration": "1d",
        "step": "60s",
        "sources": [{"id": "util_a", "nominal_v": 230}, {"id": "util_b", "nominal_v": 230}],
        "ats": ats,
        "mpdus": [{"id": f"mpdu{i}", "ats": f"ats{i}", "rating_a": 400} for i in (1, 2, 3)],
        "circuit_groups": [
            {
                "prefix": f"r{i}c",
                "count": per_group,
                "paths": [f"mpdu{i}", f"mpdu{i % 3 + 1}"],
                "rating_a": 16,
                "load": {"mean_a": 1},
            }
            for i in (1, 2, 3)
        ],
    }


def _ids(units: list[Any]) -> list[str]:
    return [u.plant_id for u in units]


def test_the_1000_circuit_hall_is_split_by_lineup() -> None:
    sc = load_scenario(ROOT / "scenarios" / "hall-1000.yaml")
    gateways = assign_gateways(Plant(sc, start_s=0.0))
    assert len(sc.circuits) == 1000
    assert len(gateways) == 8
    assert all(len(g) <= MAX_UNIT_ID for g in gateways)
    every = Counter(pid for g in gateways for pid in _ids(g))
    assert len(every) == 1049
    assert set(every.values()) == {1}
    assert _ids(gateways[0])[:2] == ["env1", "ats1"]
    mpdu_ats = {m.id: m.ats for m in sc.mpdus}
    for i, units in enumerate(gateways):
        ats = {u.plant_id for u in units if u.plant_id.startswith("ats")}
        assert ats == {f"ats{i + 1}"}  # one whole lineup per gateway
        circuits = [c for c in sc.circuits if c.id in set(_ids(units))]
        assert all(mpdu_ats[c.paths[0]] in ats for c in circuits)
        assert [u.unit_id for u in units] == sorted({u.unit_id for u in units})


def test_a_lineup_larger_than_a_gateway_continues_on_the_next() -> None:
    doc = _doc(per_group=3)
    doc["circuit_groups"][0]["count"] = 300
    gateways = assign_gateways(Plant(parse_scenario(doc), start_s=0.0))
    assert [len(g) for g in gateways] == [247, 66]
    # The rest of lineup 1 (56 circuits) and both small lineups share the second gateway.
    assert _ids(gateways[1])[:4] == ["ats2", "ats3", "mpdu2", "mpdu3"]
    assert "r1c245" in _ids(gateways[1])
    assert "r1c244" in _ids(gateways[0])


def test_small_plant_has_one_gateway() -> None:
    gateways = assign_gateways(Plant(parse_scenario(_doc()), start_s=0.0))
    assert len(gateways) == 1
    assert [u.unit_id for u in gateways[0]][:4] == [1, 2, 3, 4]


def test_gateways_section() -> None:
    doc = _doc()
    doc["gateways"] = [{"ats": ["ats2"]}, {"ats": ["ats1", "ats3"]}]
    sc = parse_scenario(doc)
    assert sc.gateways == (("ats2",), ("ats1", "ats3"))
    first, second = assign_gateways(Plant(sc, start_s=0.0))
    assert _ids(first) == ["env1", "ats2", "mpdu2", "r2c01", "r2c02", "r2c03"]
    assert _ids(second)[:4] == ["ats1", "ats3", "mpdu1", "mpdu3"]
    assert [u.unit_id for u in second][:2] == [2, 3]  # each gateway numbers its own units


@pytest.mark.parametrize(
    ("gateways", "message"),
    [
        ([{"ats": ["ats1"]}, {"ats": ["ats2"]}], r"gateways: no gateway serves 'ats3'"),
        (
            [{"ats": ["ats1", "ats2"]}, {"ats": ["ats2", "ats3"]}],
            r"gateways\[1\]\.ats: 'ats2' is already served by gateways\[0\]",
        ),
        ([{"ats": ["mpdu1"]}], r"gateways\[0\]\.ats\[0\]: 'mpdu1' is an MPDU, expected an ATS"),
        ([{"ats": ["ats1", "ats2", "ats3"], "port": 1}], r"gateways\[0\]\.port: unknown key"),
    ],
)
def test_gateways_section_errors(gateways: list[dict[str, Any]], message: str) -> None:
    doc = _doc()
    doc["gateways"] = gateways
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(doc)


def test_listed_gateway_too_large() -> None:
    doc = _doc(per_group=100)
    doc["gateways"] = [{"ats": ["ats1", "ats2", "ats3"]}]
    with pytest.raises(ValueError, match=r"gateways\[0\] \(ats1, ats2, ats3\): 307 devices"):
        assign_gateways(Plant(parse_scenario(doc), start_s=0.0))


async def test_each_gateway_serves_its_own_devices(socket_enabled: None) -> None:
    doc = _doc()
    doc["gateways"] = [{"ats": ["ats1"]}, {"ats": ["ats2", "ats3"]}]
    server = PlantServer(Plant(parse_scenario(copy.deepcopy(doc)), start_s=0.0), speed=0)
    port = await server.start("127.0.0.1", 0)
    try:
        assert port == server.ports[0]
        assert len(server.ports) == 2
        assert server.gateway_of["r2c01"] == 1
        assert server.gateway_of["r1c01"] == 0
        unit = server.unit_ids["r2c01"]
        client = AsyncModbusTcpClient("127.0.0.1", port=server.ports[1], timeout=1, retries=0)
        assert await client.connect()
        try:
            assert server.plant.telemetry().circuits["r2c01"].active_path == 0
            rr = await client.write_register(
                SBM_MAP.commands.field("active_path").address, 1, device_id=unit
            )
            assert not rr.isError()
            assert server.plant.telemetry().circuits["r2c01"].active_path == 1
            missing = max(server.gateways[1]) + 1
            rr = await client.read_input_registers(0, count=1, device_id=missing)
            assert rr.isError()
            assert rr.exception_code == 0x0A
        finally:
            client.close()
    finally:
        await server.stop()
    assert server.ports  # the ports stay readable after stop
