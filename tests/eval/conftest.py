"""Fixtures for the evaluation tests: a small scenario document to vary."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.plants import two_ats_plant

SMALL: dict[str, Any] = two_ats_plant(
    "small",
    seed=4,
    ats_rating_a=200,
    mpdu_rating_a=50,
    mpdu3_on="ats2",
    history="1d",
    duration="3h",
    circuit_groups=[
        {"prefix": "a", "count": 4, "paths": ["mpdu1", "mpdu2", "mpdu3"], "rating_a": 16,
         "load": {"mean_a": 4, "daily": 0.2, "noise": 0.03}},
        {"prefix": "b", "count": 3, "paths": ["mpdu2", "mpdu1"], "rating_a": 16,
         "load": {"mean_a": 4, "daily": 0.2, "noise": 0.03}},
        {"prefix": "d", "count": 3, "paths": ["mpdu3", "mpdu1"], "rating_a": 16,
         "load": {"mean_a": 4, "daily": 0.2, "noise": 0.03}},
    ],
)  # fmt: skip


@pytest.fixture
def small() -> dict[str, Any]:
    """3 MPDUs (40 A limit each) with 10 circuits of ~4 A: a fresh copy per test."""
    return copy.deepcopy(SMALL)
