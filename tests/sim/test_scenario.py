"""Scenario loading: the shared files, durations, group expansion, draws and every rejection."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dcp_sim.scenario import (
    LoadTrendEvent,
    Scenario,
    ScenarioError,
    WearEvent,
    load_scenario,
    parse_duration,
    parse_scenario,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
type Doc = dict[str, Any]


@pytest.mark.parametrize("name", ["ats-contact-wear", "mpdu-overload-trend", "quiet-week", "demo"])
def test_project_scenarios_load(name: str) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    assert scenario.name == name
    assert scenario.step_s == 60.0
    assert scenario.start.tzinfo is not None
    assert scenario.path == str(SCENARIOS / f"{name}.yaml")


def test_ats_contact_wear_file_contents() -> None:
    s = load_scenario(SCENARIOS / "ats-contact-wear.yaml")
    assert s.start == datetime(2026, 3, 2, tzinfo=UTC)
    assert (s.history_s, s.duration_s) == (14 * 86400.0, 2 * 86400.0)
    assert (s.ride_through_s, s.bypass_delay_s) == pytest.approx((0.02, 0.03))
    assert len(s.circuits) == 25
    assert [c.id for c in s.circuits[:3]] == ["c01", "a01", "a02"]
    assert s.circuits[-1].id == "b12"
    assert s.ats[0].transfer_time_s == pytest.approx(0.1)
    (wear,) = s.wear_events
    assert wear == WearEvent("ats_contact_wear", "ats1", 6 * 3600.0, 30 * 3600.0, 4 * 3600.0)
    assert s.element_kind("mpdu2") == "mpdu"
    assert s.element_kind("nope") is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("45s", 45.0),
        ("30m", 1800.0),
        ("6h", 21600.0),
        ("2d", 172800.0),
        ("1.5h", 5400.0),
        (90, 90.0),
        (0.25, 0.25),
        ("120", 120.0),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["5 parsecs", "-3s", "h", "", True, None, [1], -1])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_defaults(doc: Doc) -> None:
    s = parse_scenario(doc)
    assert s.ride_through_s == pytest.approx(0.02)
    assert s.bypass_delay_s == pytest.approx(0.03)
    assert all(c.critical for c in s.circuits)
    assert s.circuits[0].load.trend_per_day == 0.0
    assert s.schedule == ()
    assert s.events == ()


def test_group_expansion_and_padding(doc: Doc) -> None:
    doc["circuit_groups"] = [
        {"prefix": "x", "count": 3, "paths": ["mpdu1"], "rating_a": 10, "load": {"mean_a": 1}},
        {
            "prefix": "y",
            "count": 120,
            "paths": ["mpdu2", "mpdu1"],
            "rating_a": 10,
            "critical": False,
            "load": {"mean_a": 1},
        },
    ]
    ids = [c.id for c in parse_scenario(doc).circuits]
    assert ids[3:6] == ["x01", "x02", "x03"]
    assert ids[6] == "y001"
    assert ids[-1] == "y120"
    assert not parse_scenario(doc).circuits[-1].critical


def test_ranges_are_seeded_uniform_draws(doc: Doc) -> None:
    doc["circuit_groups"] = [
        {
            "prefix": "g",
            "count": 200,
            "paths": ["mpdu1"],
            "rating_a": 10,
            "load": {"mean_a": [2, 4], "daily": [0.1, 0.3]},
        }
    ]
    first = parse_scenario(doc)
    again = parse_scenario(doc)
    means = [c.load.mean_a for c in first.circuits[3:]]
    assert means == [c.load.mean_a for c in again.circuits[3:]]
    assert all(2 <= m <= 4 for m in means)
    assert 2.8 < sum(means) / len(means) < 3.2
    assert len(set(means)) == len(means)
    assert all(0.1 <= c.load.daily <= 0.3 for c in first.circuits[3:])
    doc["seed"] = 6
    assert [c.load.mean_a for c in parse_scenario(doc).circuits[3:]] != means


def test_events_parse(doc: Doc) -> None:
    doc["schedule"] = [{"start": "1h", "duration": "2h", "circuits": ["c01"], "extra_a": 2}]
    doc["events"] = [
        {
            "kind": "mpdu_breaker_wear",
            "target": "mpdu1",
            "onset": "1h",
            "failure": "5h",
            "precursor_scale": 0.5,
        },
        {
            "kind": "load_trend",
            "targets": ["c01", "c02"],
            "onset": "1h",
            "growth_a_per_h": 0.5,
            "end": "3h",
        },
        {"kind": "source_outage", "target": "util_a", "at": "2h", "duration": "30m"},
        {"kind": "sudden_failure", "target": "ats2", "at": "3h"},
        {"kind": "ambient_excursion", "at": "4h", "duration": "1h", "delta_c": 5},
        {"kind": "load_surge", "targets": ["c03"], "at": "4h", "duration": "1h", "extra_a": 1},
        {"kind": "sensor_stuck", "target": "env1", "at": "6h", "duration": "10m"},
        {"kind": "comms_loss", "target": "c02", "at": "6h", "duration": "10m"},
    ]
    s = parse_scenario(doc)
    assert s.schedule[0].announced is False
    wear = s.events[0]
    assert isinstance(wear, WearEvent)
    assert wear.repair_after_s is None
    assert wear.severity(3 * 3600.0) == pytest.approx(0.5 * 0.25)
    assert wear.severity(0.0) == 0.0
    assert wear.severity(9 * 3600.0) == pytest.approx(0.5)
    trend = s.events[1]
    assert isinstance(trend, LoadTrendEvent)
    assert trend.end_s == 3 * 3600.0
    assert [e.kind for e in s.events][2:] == [
        "source_outage",
        "sudden_failure",
        "ambient_excursion",
        "load_surge",
        "sensor_stuck",
        "comms_loss",
    ]


def _set(doc: Doc, path: str, value: Any) -> None:
    """Set doc[a][0][b] for path 'a.0.b'; value DELETE removes the key."""
    *head, last = path.split(".")
    node: Any = doc
    for part in head:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value


DELETE = object()
WEAR = {"kind": "ats_contact_wear", "target": "ats1", "onset": "1h", "failure": "5h"}

INVALID: list[tuple[str, Callable[[Doc], None], str]] = [
    ("unknown top key", lambda d: _set(d, "colour", 1), "colour: unknown key"),
    (
        "unknown nested key",
        lambda d: _set(d, "circuits.0.load.peak", 1),
        "circuits[0].load.peak: unknown key",
    ),
    (
        "dangling path",
        lambda d: _set(d, "circuits.1.paths.1", "mpdu9"),
        "circuits[1].paths[1]: names an MPDU 'mpdu9', which does not exist",
    ),
    (
        "mpdu names missing ats",
        lambda d: _set(d, "mpdus.1.ats", "ats7"),
        "mpdus[1].ats: names an ATS 'ats7'",
    ),
    (
        "ats names missing source",
        lambda d: _set(d, "ats.0.sources.1", "gen1"),
        "ats[0].sources[1]: names a source 'gen1'",
    ),
    (
        "event target missing",
        lambda d: _set(d, "events", [{**WEAR, "target": "ats9"}]),
        "events[0].target: names an ATS 'ats9'",
    ),
    (
        "event targets missing",
        lambda d: _set(
            d,
            "events",
            [
                {
                    "kind": "load_surge",
                    "targets": ["c01", "c99"],
                    "at": "1h",
                    "duration": "1h",
                    "extra_a": 1,
                }
            ],
        ),
        "events[0].targets[1]: names a circuit 'c99'",
    ),
    (
        "schedule circuit missing",
        lambda d: _set(
            d, "schedule", [{"start": "1h", "duration": "1h", "circuits": ["zz"], "extra_a": 1}]
        ),
        "schedule[0].circuits[0]: names a circuit 'zz'",
    ),
    (
        "event target of wrong kind",
        lambda d: _set(d, "events", [{**WEAR, "target": "mpdu1"}]),
        "events[0].target: 'mpdu1' is an MPDU, expected an ATS",
    ),
    (
        "duplicate id across kinds",
        lambda d: _set(d, "mpdus.1.id", "ats1"),
        "mpdus[1].id: duplicate id 'ats1' (already used by ats at ats[0].id)",
    ),
    (
        "duplicate id from a group",
        lambda d: _set(
            d,
            "circuit_groups",
            [
                {
                    "prefix": "c",
                    "count": 2,
                    "paths": ["mpdu1"],
                    "rating_a": 10,
                    "load": {"mean_a": 1},
                }
            ],
        ),
        "circuit_groups[0] (expands to 'c01'): duplicate id 'c01'",
    ),
    ("reserved env id", lambda d: _set(d, "circuits.0.id", "env1"), "duplicate id 'env1'"),
    (
        "cycle through ATSs",
        lambda d: _set(d, "ats.1.sources", ["ats1"]),
        "ats[1].sources[0]: 'ats1' is an ATS, expected a source",
    ),
    (
        "path listed twice",
        lambda d: _set(d, "circuits.0.paths", ["mpdu1", "mpdu1"]),
        "circuits[0].paths[1]: 'mpdu1' is listed twice",
    ),
    (
        "wrong type",
        lambda d: _set(d, "circuits.2.rating_a", "lots"),
        "circuits[2].rating_a: expected a number, got str 'lots'",
    ),
    (
        "bool is not a number",
        lambda d: _set(d, "mpdus.0.rating_a", True),
        "mpdus[0].rating_a: expected a number",
    ),
    ("list expected", lambda d: _set(d, "sources", {"id": "x"}), "sources: expected a list"),
    ("negative rating", lambda d: _set(d, "ats.0.rating_a", -5), "ats[0].rating_a: must be > 0"),
    (
        "zero rating",
        lambda d: _set(d, "circuits.0.rating_a", 0),
        "circuits[0].rating_a: must be > 0",
    ),
    ("zero voltage", lambda d: _set(d, "sources.0.nominal_v", 0), "sources[0].nominal_v"),
    ("negative load", lambda d: _set(d, "circuits.0.load.mean_a", -1), "must be >= 0"),
    (
        "zero operations",
        lambda d: _set(d, "ats.0.rated_operations", 0),
        "ats[0].rated_operations: must be >= 1",
    ),
    (
        "unknown event kind",
        lambda d: _set(d, "events", [{"kind": "meteor", "at": "1h"}]),
        "events[0].kind: unknown event kind 'meteor'",
    ),
    ("missing top key", lambda d: _set(d, "seed", DELETE), "seed: missing required key"),
    (
        "missing event field",
        lambda d: _set(d, "events", [{k: v for k, v in WEAR.items() if k != "failure"}]),
        "events[0].failure: missing required key",
    ),
    (
        "missing load",
        lambda d: _set(d, "circuits.0.load", DELETE),
        "circuits[0].load: missing required key",
    ),
    ("no circuits", lambda d: _set(d, "circuits", []), "circuits: the plant needs at least one"),
    (
        "failure before onset",
        lambda d: _set(d, "events", [{**WEAR, "failure": "1h"}]),
        "events[0].failure: must be after onset",
    ),
    ("bad duration", lambda d: _set(d, "step", "5 parsecs"), "step: expected a duration"),
    ("zero step", lambda d: _set(d, "step", 0), "step: must be > 0"),
    (
        "history off the step grid",
        lambda d: _set(d, "history", "90s"),
        "history: must be a whole number of steps",
    ),
    ("version", lambda d: _set(d, "version", 2), "version: unsupported version 2"),
    ("naive start", lambda d: _set(d, "start", "2026-03-02T00:00:00"), "start: needs a time zone"),
    ("bad start", lambda d: _set(d, "start", "yesterday"), "start: expected an ISO 8601"),
    (
        "inverted range",
        lambda d: _set(d, "circuits.0.load.mean_a", [5, 2]),
        "circuits[0].load.mean_a: range [lo, hi] needs lo <= hi",
    ),
    (
        "range of three",
        lambda d: _set(d, "circuits.0.load.mean_a", [1, 2, 3]),
        "a range must be [lo, hi]",
    ),
    (
        "trend end before onset",
        lambda d: _set(
            d,
            "events",
            [
                {
                    "kind": "load_trend",
                    "targets": ["c01"],
                    "onset": "2h",
                    "growth_a_per_h": 1,
                    "end": "1h",
                }
            ],
        ),
        "events[0].end: must be after onset",
    ),
    ("not a mapping", lambda d: _set(d, "ats.0", "ats1"), "ats[0]: expected a mapping"),
]


@pytest.mark.parametrize(
    ("mutate", "message"), [(m, msg) for _, m, msg in INVALID], ids=[n for n, _, _ in INVALID]
)
def test_invalid_scenarios(doc: Doc, mutate: Callable[[Doc], None], message: str) -> None:
    mutate(doc)
    with pytest.raises(ScenarioError) as err:
        parse_scenario(doc, source="bad.yaml")
    assert str(err.value).startswith("bad.yaml: ")
    assert message in str(err.value)


def test_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text((SCENARIOS / "demo.yaml").read_text().replace("rating_a: 63", "rating_a: -63"))
    with pytest.raises(ScenarioError, match=r"broken\.yaml: mpdus\[0\]\.rating_a: must be > 0"):
        load_scenario(path)


def test_duplicate_yaml_key_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="duplicate key 'seed'"):
        parse_scenario("version: 1\nseed: 1\nseed: 2\n", source="dup.yaml")
    with pytest.raises(ScenarioError, match=r"dup\.yaml: invalid YAML"):
        parse_scenario("version: [1\n", source="dup.yaml")
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")


def test_scenario_is_frozen(doc: Doc) -> None:
    s: Scenario = parse_scenario(doc)
    with pytest.raises(AttributeError):
        s.name = "other"  # type: ignore[misc]
