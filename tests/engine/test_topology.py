"""The topology graph: validation of identification data and the load arithmetic on it."""

from __future__ import annotations

import pytest

from custom_components.datacenter_power.engine.topology import (
    AtsNode,
    CircuitNode,
    MpduNode,
    Topology,
    TopologyError,
)


def _plant() -> Topology:
    return Topology.build(
        [AtsNode("ats1", ("util_a", "util_b"), 250), AtsNode("ats2", ("util_b", "util_a"), 250)],
        [MpduNode("mpdu1", "ats1", 100), MpduNode("mpdu2", "ats2", 125)],
        [
            CircuitNode("c1", ("mpdu1", "mpdu2"), 32),
            CircuitNode("c2", ("mpdu2", "mpdu1"), 16),
            CircuitNode("c3", ("mpdu1",), 16, critical=False),
        ],
    )


def test_loads_limits_and_lookups() -> None:
    topo = _plant()
    amps = {"c1": 50.0, "c2": 20.0, "c3": 40.0}
    normal = topo.normal_assignment()
    assert normal == {"c1": "mpdu1", "c2": "mpdu2", "c3": "mpdu1"}
    assert topo.element_loads(normal, amps) == {
        "ats1": 90.0,
        "ats2": 20.0,
        "mpdu1": 90.0,
        "mpdu2": 20.0,
    }
    assert topo.limit_a("mpdu1") == pytest.approx(80.0)
    assert topo.overloads(normal, amps) == {"mpdu1": pytest.approx(10.0)}
    assert topo.utilization(normal, amps)["mpdu1"] == pytest.approx(0.9)
    moved = {**normal, "c1": "mpdu2", "c3": None}
    assert topo.element_loads(moved, amps) == {
        "ats1": 0.0,
        "ats2": 70.0,
        "mpdu1": 0.0,
        "mpdu2": 70.0,
    }
    assert topo.overloads(moved, amps) == {}
    assert topo.circuits_through("ats1", normal) == ["c1", "c3"]
    assert topo.circuits_through("mpdu2", moved) == ["c1", "c2"]
    assert topo.mpdus_of("ats2") == ("mpdu2",)
    assert topo.ats_of("mpdu1") == "ats1"
    assert topo.depends_on("mpdu2", "ats2")
    assert not topo.depends_on("mpdu2", "ats1")
    assert (topo.kind("ats1"), topo.kind("mpdu2"), topo.kind("c3"), topo.kind("x")) == (
        "ats",
        "mpdu",
        "circuit",
        None,
    )
    assert topo.elements == ("ats1", "ats2", "mpdu1", "mpdu2")
    assert topo.circuits["c1"].normal_path == "mpdu1"
    assert topo.rating_a("c2") == 16
    with pytest.raises(KeyError):
        topo.rating_a("nope")


@pytest.mark.parametrize(
    ("mpdus", "circuits", "message"),
    [
        ([MpduNode("m1", "ats9", 100)], [], "unknown ATS 'ats9'"),
        ([MpduNode("m1", "ats1", 100)], [CircuitNode("c1", ("m1", "m9"), 16)], "unknown MPDU 'm9'"),
        ([MpduNode("m1", "ats1", 100)], [CircuitNode("c1", (), 16)], "has no path"),
        ([MpduNode("m1", "ats1", 100)], [CircuitNode("c1", ("m1", "m1"), 16)], "path twice"),
        ([MpduNode("ats1", "ats1", 100)], [], "duplicate id 'ats1'"),
    ],
)
def test_invalid_plants_are_refused(
    mpdus: list[MpduNode], circuits: list[CircuitNode], message: str
) -> None:
    with pytest.raises(TopologyError, match=message):
        Topology.build([AtsNode("ats1", ("u",), 100)], mpdus, circuits)
