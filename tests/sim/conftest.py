"""Fixtures for the simulator tests: a small scenario document to mutate, and plant builders."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario
from tests.plants import circuit, two_ats_plant

_BASE: dict[str, Any] = two_ats_plant(
    "unit",
    seed=5,
    ats_rating_a=100,
    mpdu_rating_a=50,
    ambient_c=24,
    duration="2d",
    circuits=[
        circuit("c01", ["mpdu1", "mpdu2"], 5),
        circuit("c02", ["mpdu2", "mpdu1"], 4),
        circuit("c03", ["mpdu1"], 3),
    ],
)

type Doc = dict[str, Any]


@pytest.fixture
def doc() -> Doc:
    """A fresh, valid scenario document: 2 sources, 2 ATSs, 2 MPDUs, 3 steady circuits."""
    return copy.deepcopy(_BASE)


@pytest.fixture
def make_plant() -> Callable[..., Plant]:
    """Build a plant from a document (t=0 after its history unless start_s is given)."""

    def build(document: Doc, start_s: float | None = None) -> Plant:
        return Plant(parse_scenario(document), start_s=start_s)

    return build
