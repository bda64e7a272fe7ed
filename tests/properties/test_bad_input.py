"""Property-based tests (hypothesis) of bad input: scenario files, register words and the
actions' numeric fields. Whatever comes in is either accepted as valid or refused with the
module's own error naming where it is wrong; no other exception escapes."""

# Each property accepts either outcome and checks the one that happened: pytest.raises cannot
# say "may raise", so the assertions on the refusal sit in the except blocks.
# ruff: noqa: PT017

from __future__ import annotations

import copy
import math
from typing import Any

import probatio as vol
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custom_components.datacenter_power.device.registers import IDENTIFICATION, MAPS
from custom_components.datacenter_power.services import (
    COMPONENT_SCHEMA,
    MAX_STEP_AMPS_RANGE,
    MIGRATE_SCHEMA,
    STEP_INTERVAL_RANGE,
)
from dcp_sim.scenario import ScenarioError, parse_scenario
from tests.integration.conftest import PLANT

BLOCKS = [IDENTIFICATION, *(m.measurements for m in MAPS.values())]
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(st.data())
def test_register_words_decode_or_raise_value_error(data: st.DataObject) -> None:
    """Any 16-bit words: a block decodes them to every one of its names, or (too few words)
    raises ValueError, which the client turns into a BadResponse."""
    block = data.draw(st.sampled_from(BLOCKS))
    words = data.draw(
        st.lists(st.integers(0, 0xFFFF), min_size=0, max_size=block.count + 3), label="words"
    )
    try:
        values = block.decode(words)
    except ValueError:
        assert len(words) < block.count
        return
    assert len(words) >= block.count
    assert {f.name for f in block.fields if not f.bits} <= set(values)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every leaf's path in a scenario document."""
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in _paths(v, (*prefix, k))]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in _paths(v, (*prefix, i))]
    return [prefix]


LEAVES = _paths(PLANT)


@SLOW
@given(st.sampled_from(LEAVES), JUNK)
def test_a_scenario_with_any_bad_value_is_refused_naming_its_key(
    path: tuple[Any, ...], junk: Any
) -> None:
    """One leaf of a valid scenario replaced by junk: the scenario loads, or ScenarioError
    names the key path (its last key) - never another exception."""
    doc = copy.deepcopy(PLANT)
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = junk
    try:
        parse_scenario(doc)
    except ScenarioError as err:
        named = [k for k in path if isinstance(k, str)]
        assert any(k in str(err) for k in named) or str(path[-2]) in str(err), (path, err)


@SLOW
@given(st.sampled_from(LEAVES), st.sampled_from(["extra", "ids", "x"]))
def test_unknown_keys_are_refused(path: tuple[Any, ...], key: str) -> None:
    """An unknown key anywhere is an error naming it, never ignored."""
    doc = copy.deepcopy(PLANT)
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    if not isinstance(node, dict) or key in node:
        return
    node[key] = 1
    try:
        parse_scenario(doc)
    except ScenarioError as err:
        assert key in str(err)
    else:
        raise AssertionError(f"unknown key {key} at {path[:-1]} accepted")


NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "12", " 7 ", "", "abc", True, None]),
)


def _valid(value: Any, low: float, high: float) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    try:
        number = float(value)
    except ValueError:
        return False
    return math.isfinite(number) and low <= number <= high


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["max_step_amps", "step_interval"]), NUMBERS)
def test_action_numbers_are_accepted_exactly_when_finite_and_in_range(
    field: str, value: Any
) -> None:
    """The migrate/isolate/restore schemas take a number iff it is finite and within the
    ranges of services.yaml; a refusal names the field."""
    low, high = MAX_STEP_AMPS_RANGE if field == "max_step_amps" else STEP_INTERVAL_RANGE
    for schema in (MIGRATE_SCHEMA, COMPONENT_SCHEMA):
        try:
            out = schema({"component": "mpdu1", field: value})
        except vol.Invalid as err:
            assert not _valid(value, low, high), (value, err)
            assert field in str(err)
        else:
            assert _valid(value, low, high), value
            assert isinstance(out[field], float)
            assert low <= out[field] <= high


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=400), JUNK))
def test_component_names_are_bounded(name: Any) -> None:
    """A component is a non-empty name of at most 255 characters, or the call is refused."""
    try:
        out = COMPONENT_SCHEMA({"component": name})
    except vol.Invalid as err:
        assert "component" in str(err)
    else:
        assert 1 <= len(out["component"]) <= 255
