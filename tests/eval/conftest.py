"""Fixtures for the evaluation tests: a small scenario document to vary."""

from __future__ import annotations

import copy
from typing import Any

import pytest

SMALL: dict[str, Any] = {
    "version": 1,
    "name": "small",
    "seed": 4,
    "start": "2026-03-02T00:00:00Z",
    "history": "1d",
    "duration": "3h",
    "step": "60s",
    "sources": [{"id": "util_a", "nominal_v": 230}, {"id": "util_b", "nominal_v": 230}],
    "ats": [
        {"id": "ats1", "sources": ["util_a", "util_b"], "rating_a": 200, "transfer_time": "100ms",
         "rated_operations": 6000},
        {"id": "ats2", "sources": ["util_b", "util_a"], "rating_a": 200, "transfer_time": "100ms",
         "rated_operations": 6000},
    ],
    "mpdus": [
        {"id": "mpdu1", "ats": "ats1", "rating_a": 50},
        {"id": "mpdu2", "ats": "ats2", "rating_a": 50},
        {"id": "mpdu3", "ats": "ats2", "rating_a": 50},
    ],
    "circuit_groups": [
        {"prefix": "a", "count": 4, "paths": ["mpdu1", "mpdu2", "mpdu3"], "rating_a": 16,
         "load": {"mean_a": 4, "daily": 0.2, "noise": 0.03}},
        {"prefix": "b", "count": 3, "paths": ["mpdu2", "mpdu1"], "rating_a": 16,
         "load": {"mean_a": 4, "daily": 0.2, "noise": 0.03}},
        {"prefix": "d", "count": 3, "paths": ["mpdu3", "mpdu1"], "rating_a": 16,
         "load": {"mean_a": 4, "daily": 0.2, "noise": 0.03}},
    ],
}  # fmt: skip


@pytest.fixture
def small() -> dict[str, Any]:
    """3 MPDUs (40 A limit each) with 10 circuits of ~4 A: a fresh copy per test."""
    return copy.deepcopy(SMALL)
