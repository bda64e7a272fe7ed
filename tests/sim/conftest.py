"""Fixtures for the simulator tests: a small scenario document to mutate, and plant builders."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from dcp_sim.plant import Plant
from dcp_sim.scenario import parse_scenario

_BASE: dict[str, Any] = {
    "version": 1,
    "name": "unit",
    "seed": 5,
    "start": "2026-03-02T00:00:00Z",  # a Monday
    "history": "0s",
    "duration": "2d",
    "step": "60s",
    "environment": {"ambient_c": 24, "humidity_pct": 40},
    "sources": [{"id": "util_a", "nominal_v": 230}, {"id": "util_b", "nominal_v": 230}],
    "ats": [
        {
            "id": "ats1",
            "sources": ["util_a", "util_b"],
            "rating_a": 100,
            "transfer_time": "100ms",
            "rated_operations": 6000,
        },
        {
            "id": "ats2",
            "sources": ["util_b", "util_a"],
            "rating_a": 100,
            "transfer_time": "100ms",
            "rated_operations": 6000,
        },
    ],
    "mpdus": [
        {"id": "mpdu1", "ats": "ats1", "rating_a": 50},
        {"id": "mpdu2", "ats": "ats2", "rating_a": 50},
    ],
    "circuits": [
        {"id": "c01", "paths": ["mpdu1", "mpdu2"], "rating_a": 16, "load": {"mean_a": 5}},
        {"id": "c02", "paths": ["mpdu2", "mpdu1"], "rating_a": 16, "load": {"mean_a": 4}},
        {"id": "c03", "paths": ["mpdu1"], "rating_a": 16, "load": {"mean_a": 3}},
    ],
}

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
