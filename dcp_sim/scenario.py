"""Scenario files (version 1): loading, validation and the frozen model the plant runs.

The format is fixed in ``docs/scenario-format.md``. Loading is strict: an unknown key, a wrong
type, a dangling reference or an impossible value raises :class:`ScenarioError` whose message
names the file, the key path (e.g. ``circuits[2].paths[1]``) and the problem. ``[lo, hi]`` ranges
in load specs are drawn uniformly from the scenario's seed, so a file always expands to the same
plant.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import yaml

__all__ = [
    "EVENT_KINDS",
    "WEAR_KINDS",
    "AmbientExcursionEvent",
    "Ats",
    "BatchPeak",
    "Circuit",
    "CommsLossEvent",
    "Environment",
    "Event",
    "LoadSpec",
    "LoadStep",
    "LoadSurgeEvent",
    "LoadTrendEvent",
    "MondayRamp",
    "Mpdu",
    "NoiseBursts",
    "PrecursorGains",
    "Scenario",
    "ScenarioError",
    "ScheduledWork",
    "SensorStuckEvent",
    "Source",
    "SourceOutageEvent",
    "SuddenFailureEvent",
    "WearEvent",
    "load_scenario",
    "parse_duration",
    "parse_scenario",
]

ENV_ID: Final = "env1"
DAY_S: Final = 86400.0
DEFAULT_THERMAL_RISE_C: Final = 30.0
THERMAL_RISE_RANGE_C: Final = (10.0, 60.0)
DEFAULT_RIPPLE_PCT: Final = 0.4
RIPPLE_RANGE_PCT: Final = (0.1, 2.0)
PRECURSOR_EXPONENT_RANGE: Final = (0.5, 4.0)
PRECURSOR_GAIN_RANGE: Final = (0.0, 3.0)
PRECURSOR_SIGNALS: Final = ("temperature", "ripple", "transfer", "nuisance")
WEAR_KINDS: Final = ("ats_contact_wear", "mpdu_breaker_wear")
EVENT_KINDS: Final = (
    *WEAR_KINDS,
    "load_trend",
    "source_outage",
    "sudden_failure",
    "ambient_excursion",
    "load_surge",
    "sensor_stuck",
    "comms_loss",
)


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message says where and why."""


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Environment:
    """The room the plant stands in."""

    ambient_c: float = 24.0
    humidity_pct: float = 40.0


@dataclass(frozen=True, slots=True)
class Source:
    """A utility, generator or UPS output."""

    id: str
    nominal_v: float


@dataclass(frozen=True, slots=True)
class Ats:
    """An automatic transfer switch; picks the first available source of ``sources``."""

    id: str
    sources: tuple[str, ...]
    rating_a: float
    transfer_time_s: float
    rated_operations: int
    thermal_rise_c: float = DEFAULT_THERMAL_RISE_C
    """Healthy contact temperature rise above ambient at full rating."""
    ripple_pct: float = DEFAULT_RIPPLE_PCT
    """Healthy output voltage ripple (RMS, % of nominal)."""


@dataclass(frozen=True, slots=True)
class Mpdu:
    """A modular PDU fed by one ATS."""

    id: str
    ats: str
    rating_a: float
    thermal_rise_c: float = DEFAULT_THERMAL_RISE_C
    """Healthy terminal temperature rise above ambient at full rating."""
    ripple_pct: float = DEFAULT_RIPPLE_PCT
    """Healthy output voltage ripple (RMS, % of nominal)."""


@dataclass(frozen=True, slots=True)
class LoadStep:
    """From ``at_s`` on (scenario seconds, negative in the history) the mean changes by
    ``delta_a`` (servers added or removed)."""

    at_s: float
    delta_a: float


@dataclass(frozen=True, slots=True)
class MondayRamp:
    """On the first working day after a non-working day the load is ``depth`` lower until
    ``start_h`` (local hour) and builds up linearly to normal over ``duration_s``."""

    depth: float
    start_h: float = 6.0
    duration_s: float = 3 * 3600.0


@dataclass(frozen=True, slots=True)
class BatchPeak:
    """Every night from ``start_h`` (local hour, delayed by up to ``jitter_s``, drawn per night)
    the load rises by ``extra`` x the mean for ``duration_s``."""

    start_h: float
    duration_s: float
    extra: float
    jitter_s: float = 0.0


@dataclass(frozen=True, slots=True)
class NoiseBursts:
    """Periods of ``factor`` x the usual noise, ``per_day`` of them a day on average (Poisson),
    each ``duration_s`` long."""

    per_day: float
    duration_s: float
    factor: float


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """A circuit's load model, with ranges already drawn (the defaults reproduce the original
    model: a daily cosine, a weekday/weekend step, white noise)."""

    mean_a: float
    daily: float = 0.0
    weekly: float = 0.0
    noise: float = 0.0
    trend_per_day: float = 0.0
    peak_hour: float = 15.0
    weekday_profile: tuple[float, ...] = (1.0,) * 7
    """Relative level Monday..Sunday (a holiday takes Sunday's)."""
    weekend_daily: float | None = None
    """Daily amplitude on non-working days (None: ``daily``)."""
    monday_ramp: MondayRamp | None = None
    steps: tuple[LoadStep, ...] = ()
    batch: BatchPeak | None = None
    noise_correlation_s: float = 0.0
    """Correlation time of the noise (AR(1)); 0 is white noise."""
    noise_bursts: NoiseBursts | None = None


@dataclass(frozen=True, slots=True)
class Circuit:
    """A critical circuit with its smart bypass module; ``paths[0]`` is the normal MPDU."""

    id: str
    paths: tuple[str, ...]
    rating_a: float
    critical: bool
    load: LoadSpec


@dataclass(frozen=True, slots=True)
class ScheduledWork:
    """Known future work adding ``extra_a`` to each listed circuit."""

    start_s: float
    duration_s: float
    circuits: tuple[str, ...]
    extra_a: float
    announced: bool


@dataclass(frozen=True, slots=True)
class PrecursorGains:
    """Per-signal multipliers of a wear event's precursors (0 = the signal shows nothing)."""

    temperature: float = 1.0
    ripple: float = 1.0
    transfer: float = 1.0
    nuisance: float = 1.0


@dataclass(frozen=True, slots=True)
class WearEvent:
    """``ats_contact_wear`` or ``mpdu_breaker_wear``: degrades from onset, fails at failure."""

    kind: str
    target: str
    onset_s: float
    failure_s: float
    repair_after_s: float | None = None
    precursor_scale: float = 1.0
    precursor_exponent: float = 2.0
    precursor_gains: PrecursorGains = PrecursorGains()

    def severity(self, t_s: float) -> float:
        """Precursor severity s(t) = x^p x scale, x the elapsed fraction of onset..failure."""
        if t_s <= self.onset_s:
            return 0.0
        x = min(1.0, (t_s - self.onset_s) / (self.failure_s - self.onset_s))
        return float(x**self.precursor_exponent) * self.precursor_scale


@dataclass(frozen=True, slots=True)
class LoadTrendEvent:
    """Each target circuit draws ``growth_a_per_h`` more every hour from onset until end."""

    kind: str
    targets: tuple[str, ...]
    onset_s: float
    growth_a_per_h: float
    end_s: float | None = None


@dataclass(frozen=True, slots=True)
class SourceOutageEvent:
    """A source is lost for a while."""

    kind: str
    target: str
    at_s: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class SuddenFailureEvent:
    """The target's output is lost without warning (until repaired, if ever)."""

    kind: str
    target: str
    at_s: float
    repair_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class AmbientExcursionEvent:
    """Room temperature rises by ``delta_c`` for a while."""

    kind: str
    at_s: float
    duration_s: float
    delta_c: float


@dataclass(frozen=True, slots=True)
class LoadSurgeEvent:
    """Unannounced extra load on the target circuits for a while."""

    kind: str
    targets: tuple[str, ...]
    at_s: float
    duration_s: float
    extra_a: float


@dataclass(frozen=True, slots=True)
class SensorStuckEvent:
    """The target's measurements freeze for a while."""

    kind: str
    target: str
    at_s: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class CommsLossEvent:
    """The target answers no request for a while."""

    kind: str
    target: str
    at_s: float
    duration_s: float


type Event = (
    WearEvent
    | LoadTrendEvent
    | SourceOutageEvent
    | SuddenFailureEvent
    | AmbientExcursionEvent
    | LoadSurgeEvent
    | SensorStuckEvent
    | CommsLossEvent
)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario. Times are seconds from t=0 (the end of the history period)."""

    name: str
    description: str
    seed: int
    start: datetime
    """Wall-clock time of t=0 (aware; its UTC offset is the plant's local time)."""
    history_s: float
    duration_s: float
    step_s: float
    ride_through_s: float
    bypass_delay_s: float
    environment: Environment
    sources: tuple[Source, ...]
    ats: tuple[Ats, ...]
    mpdus: tuple[Mpdu, ...]
    circuits: tuple[Circuit, ...]
    schedule: tuple[ScheduledWork, ...] = ()
    events: tuple[Event, ...] = ()
    path: str | None = field(default=None, compare=False)
    gateways: tuple[tuple[str, ...], ...] = ()
    """ATS ids served by each Modbus TCP gateway (empty: the simulator decides)."""
    holidays: tuple[date, ...] = ()
    """Local dates on which the load is drawn like a Sunday."""

    @property
    def wear_events(self) -> tuple[WearEvent, ...]:
        """The ``*_wear`` events, in file order."""
        return tuple(e for e in self.events if isinstance(e, WearEvent))

    def element_kind(self, element_id: str) -> str | None:
        """``source``, ``ats``, ``mpdu``, ``circuit``, ``env`` or None for an unknown id."""
        return _element_kinds(self).get(element_id)


def _element_kinds(scenario: Scenario) -> dict[str, str]:
    kinds = {ENV_ID: "env"}
    kinds.update({s.id: "source" for s in scenario.sources})
    kinds.update({a.id: "ats" for a in scenario.ats})
    kinds.update({m.id: "mpdu" for m in scenario.mpdus})
    kinds.update({c.id: "circuit" for c in scenario.circuits})
    return kinds


# --------------------------------------------------------------------------------------------
# Durations
# --------------------------------------------------------------------------------------------

_DURATION_RE: Final = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from ``500ms``, ``45s``, ``30m``, ``6h``, ``2d`` or a plain number of seconds.

    Raises ValueError for anything else, including negative values.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match is None:
            raise ValueError(
                f"expected a duration like '500ms', '45s', '30m', '6h', '2d' or seconds, "
                f"got {value!r}"
            )
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    else:
        raise ValueError(f"expected a duration, got {type(value).__name__} {value!r}")
    if not np.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be finite and >= 0, got {value!r}")
    return seconds


# --------------------------------------------------------------------------------------------
# YAML with duplicate-key detection
# --------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node)
    return result


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError(f"{p}: cannot read: {err}") from err
    return parse_scenario(text, source=str(p))


def parse_scenario(data: str | Mapping[str, Any], *, source: str = "<scenario>") -> Scenario:
    """Validate a scenario given as YAML text or an already-parsed mapping."""
    if isinstance(data, str):
        try:
            data = yaml.load(data, Loader=_StrictLoader)  # SafeLoader subclass
        except yaml.YAMLError as err:
            raise ScenarioError(f"{source}: invalid YAML: {err}") from err
    return _Parser(source).scenario(data)


type _Path = str


def _join(path: _Path, key: str | int) -> _Path:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


_TOP_REQUIRED: Final = (
    "version",
    "name",
    "seed",
    "start",
    "history",
    "duration",
    "step",
    "sources",
    "ats",
    "mpdus",
)
_TOP_OPTIONAL: Final = (
    "description",
    "ride_through",
    "bypass_delay",
    "environment",
    "circuits",
    "circuit_groups",
    "schedule",
    "events",
    "gateways",
    "holidays",
)
_UNIT_OPTIONAL: Final = ("thermal_rise_c", "ripple_pct")
_WEAR_OPTIONAL: Final = (
    "repair_after",
    "precursor_scale",
    "precursor_exponent",
    "precursor_gains",
)
_LOAD_KEYS: Final = (
    "mean_a",
    "daily",
    "weekly",
    "noise",
    "trend_per_day",
    "peak_hour",
    "weekday_profile",
    "weekend_daily",
    "monday_ramp",
    "steps",
    "batch",
    "noise_correlation",
    "noise_bursts",
)
_CLOCK_RE: Final = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")
_DATE_RE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EVENT_FIELDS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    # kind: (required, optional)
    "ats_contact_wear": (("target", "onset", "failure"), _WEAR_OPTIONAL),
    "mpdu_breaker_wear": (("target", "onset", "failure"), _WEAR_OPTIONAL),
    "load_trend": (("targets", "onset", "growth_a_per_h"), ("end",)),
    "source_outage": (("target", "at", "duration"), ()),
    "sudden_failure": (("target", "at"), ("repair_after",)),
    "ambient_excursion": (("at", "duration", "delta_c"), ()),
    "load_surge": (("targets", "at", "duration", "extra_a"), ()),
    "sensor_stuck": (("target", "at", "duration"), ()),
    "comms_loss": (("target", "at", "duration"), ()),
}
# Which element kinds each event may target.
_EVENT_TARGETS: Final[dict[str, tuple[str, ...]]] = {
    "ats_contact_wear": ("ats",),
    "mpdu_breaker_wear": ("mpdu",),
    "load_trend": ("circuit",),
    "source_outage": ("source",),
    "sudden_failure": ("source", "ats", "mpdu", "circuit"),
    "load_surge": ("circuit",),
    "sensor_stuck": ("ats", "mpdu", "circuit", "env"),
    "comms_loss": ("ats", "mpdu", "circuit", "env"),
}


class _Parser:
    """One validation pass over a parsed YAML document."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.rng = np.random.default_rng(0)  # replaced once the seed is known
        self.ids: dict[str, tuple[str, _Path]] = {ENV_ID: ("env", "(reserved)")}

    def fail(self, path: _Path, problem: str) -> ScenarioError:
        where = f"{self.source}: {path}: " if path else f"{self.source}: "
        return ScenarioError(where + problem)

    # -- primitive checks ----------------------------------------------------------------

    def mapping(
        self, value: object, path: _Path, required: Sequence[str], optional: Sequence[str]
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {_describe(value)}")
        for key in value:
            if not isinstance(key, str) or (key not in required and key not in optional):
                allowed = ", ".join([*required, *optional])
                raise self.fail(_join(path, str(key)), f"unknown key (allowed: {allowed})")
        for key in required:
            if key not in value:
                raise self.fail(_join(path, key), "missing required key")
        return value

    def sequence(self, value: object, path: _Path, *, nonempty: bool = False) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {_describe(value)}")
        if nonempty and not value:
            raise self.fail(path, "must not be empty")
        return value

    def string(self, value: object, path: _Path) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"expected a non-empty string, got {_describe(value)}")
        return value

    def identifier(self, value: object, path: _Path) -> str:
        text = self.string(value, path)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", text):
            raise self.fail(path, f"id {text!r} may only hold letters, digits, '_', '.', '-'")
        return text

    def number(
        self,
        value: object,
        path: _Path,
        *,
        positive: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"expected a number, got {_describe(value)}")
        x = float(value)
        if not np.isfinite(x):
            raise self.fail(path, f"must be finite, got {value!r}")
        if positive and x <= 0:
            raise self.fail(path, f"must be > 0, got {value!r}")
        if minimum is not None and x < minimum:
            raise self.fail(path, f"must be >= {minimum:g}, got {value!r}")
        if maximum is not None and x > maximum:
            raise self.fail(path, f"must be <= {maximum:g}, got {value!r}")
        return x

    def integer(self, value: object, path: _Path, *, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {_describe(value)}")
        if minimum is not None and value < minimum:
            raise self.fail(path, f"must be >= {minimum}, got {value!r}")
        return value

    def boolean(self, value: object, path: _Path) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {_describe(value)}")
        return value

    def duration(self, value: object, path: _Path, *, positive: bool = False) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as err:
            raise self.fail(path, str(err)) from None
        if positive and seconds <= 0:
            raise self.fail(path, f"must be > 0, got {value!r}")
        return seconds

    def drawn(
        self, value: object, path: _Path, *, minimum: float, maximum: float | None = None
    ) -> float:
        """A number, or ``[lo, hi]`` drawn uniformly from the seed."""
        if isinstance(value, list):
            if len(value) != 2:
                raise self.fail(path, f"a range must be [lo, hi], got {len(value)} items")
            lo = self.number(value[0], _join(path, 0), minimum=minimum, maximum=maximum)
            hi = self.number(value[1], _join(path, 1), minimum=minimum, maximum=maximum)
            if hi < lo:
                raise self.fail(path, f"range [lo, hi] needs lo <= hi, got [{lo:g}, {hi:g}]")
            return float(self.rng.uniform(lo, hi))
        return self.number(value, path, minimum=minimum, maximum=maximum)

    def drawn_duration(
        self,
        value: object,
        path: _Path,
        *,
        positive: bool = False,
        maximum: float | None = None,
    ) -> float:
        """A duration, or ``[lo, hi]`` durations drawn uniformly from the seed."""
        if isinstance(value, list):
            if len(value) != 2:
                raise self.fail(path, f"a range must be [lo, hi], got {len(value)} items")
            lo = self.duration(value[0], _join(path, 0), positive=positive)
            hi = self.duration(value[1], _join(path, 1), positive=positive)
            if hi < lo:
                raise self.fail(path, f"range [lo, hi] needs lo <= hi, got [{lo:g} s, {hi:g} s]")
            seconds = float(self.rng.uniform(lo, hi))
        else:
            seconds = self.duration(value, path, positive=positive)
        if maximum is not None and seconds > maximum:
            raise self.fail(path, f"must be at most {maximum:g} s, got {value!r}")
        return seconds

    def signed_duration(self, value: object, path: _Path) -> float:
        """A duration that may be negative (``-2d``: two days before t=0, in the history)."""
        if isinstance(value, str) and value.strip().startswith("-"):
            return -self.duration(value.strip()[1:], path)
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            return -self.duration(-value, path)
        return self.duration(value, path)

    def clock(self, value: object, path: _Path) -> float:
        """A local time of day ``HH:MM`` (or ``[HH:MM, HH:MM]`` drawn) as hours."""
        if isinstance(value, list):
            if len(value) != 2:
                raise self.fail(path, f"a range must be [lo, hi], got {len(value)} items")
            lo = self.clock(value[0], _join(path, 0))
            hi = self.clock(value[1], _join(path, 1))
            if hi < lo:
                raise self.fail(path, "range [lo, hi] needs lo <= hi")
            return float(self.rng.uniform(lo, hi))
        match = _CLOCK_RE.match(value) if isinstance(value, str) else None
        if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
            hint = " (quote it: YAML reads an unquoted 22:00 as a number)"
            raise self.fail(
                path,
                f"expected a time of day like '01:30', got {_describe(value)}"
                + (hint if isinstance(value, int) else ""),
            )
        return int(match.group(1)) + int(match.group(2)) / 60.0

    def register(self, element_id: str, kind: str, path: _Path) -> None:
        if element_id in self.ids:
            other_kind, other_path = self.ids[element_id]
            raise self.fail(
                path, f"duplicate id {element_id!r} (already used by {other_kind} at {other_path})"
            )
        self.ids[element_id] = (kind, path)

    def reference(self, value: object, path: _Path, kinds: Sequence[str]) -> str:
        ref = self.string(value, path)
        if ref not in self.ids:
            raise self.fail(path, f"names {_kinds_text(kinds)} {ref!r}, which does not exist")
        kind = self.ids[ref][0]
        if kind not in kinds:
            raise self.fail(
                path, f"{ref!r} is {_kinds_text([kind])}, expected {_kinds_text(kinds)}"
            )
        return ref

    def references(
        self, value: object, path: _Path, kinds: Sequence[str], *, unique: bool = True
    ) -> tuple[str, ...]:
        items = self.sequence(value, path, nonempty=True)
        refs = tuple(self.reference(v, _join(path, i), kinds) for i, v in enumerate(items))
        if unique:
            for i, ref in enumerate(refs):
                if ref in refs[:i]:
                    raise self.fail(_join(path, i), f"{ref!r} is listed twice")
        return refs

    # -- document ----------------------------------------------------------------------

    def scenario(self, data: object) -> Scenario:
        doc = self.mapping(data, "", _TOP_REQUIRED, _TOP_OPTIONAL)
        version = doc["version"]
        if version != 1 or isinstance(version, bool):
            raise self.fail("version", f"unsupported version {version!r} (expected 1)")
        name = self.identifier(doc["name"], "name")
        description = doc.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", f"expected a string, got {_describe(description)}")
        seed = self.integer(doc["seed"], "seed", minimum=0)
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5CE7A210]))
        start = self.start(doc["start"])
        step_s = self.duration(doc["step"], "step", positive=True)
        history_s = self.duration(doc["history"], "history")
        duration_s = self.duration(doc["duration"], "duration", positive=True)
        for key, value in (("history", history_s), ("duration", duration_s)):
            ratio = value / step_s
            if abs(ratio - round(ratio)) > 1e-9:
                raise self.fail(key, f"must be a whole number of steps ({step_s:g} s)")
        ride_through_s = self.duration(doc.get("ride_through", 0.02), "ride_through")
        bypass_delay_s = self.duration(doc.get("bypass_delay", 0.03), "bypass_delay")
        environment = self.environment(doc.get("environment", {}))

        sources = tuple(
            self.source_item(v, _join("sources", i))
            for i, v in enumerate(self.sequence(doc["sources"], "sources", nonempty=True))
        )
        ats = tuple(
            self.ats_item(v, _join("ats", i))
            for i, v in enumerate(self.sequence(doc["ats"], "ats", nonempty=True))
        )
        mpdus = tuple(
            self.mpdu_item(v, _join("mpdus", i))
            for i, v in enumerate(self.sequence(doc["mpdus"], "mpdus", nonempty=True))
        )
        circuits = self.circuits(doc)
        schedule = tuple(
            self.schedule_item(v, _join("schedule", i))
            for i, v in enumerate(self.sequence(doc.get("schedule", []), "schedule"))
        )
        events = tuple(
            self.event(v, _join("events", i))
            for i, v in enumerate(self.sequence(doc.get("events", []), "events"))
        )
        gateways = self.gateways(doc.get("gateways", []), ats)
        holidays = self.holidays(doc.get("holidays", []))
        return Scenario(
            name=name,
            description=description.strip(),
            seed=seed,
            start=start,
            history_s=history_s,
            duration_s=duration_s,
            step_s=step_s,
            ride_through_s=ride_through_s,
            bypass_delay_s=bypass_delay_s,
            environment=environment,
            sources=sources,
            ats=ats,
            mpdus=mpdus,
            circuits=circuits,
            schedule=schedule,
            events=events,
            path=None if self.source.startswith("<") else self.source,
            gateways=gateways,
            holidays=holidays,
        )

    def gateways(self, value: object, ats: Sequence[Ats]) -> tuple[tuple[str, ...], ...]:
        """``gateways``: each lists the ATSs whose lineup (ATS, its MPDUs, the circuits whose
        normal path is one of them) it serves; every ATS exactly once."""
        result: list[tuple[str, ...]] = []
        seen: dict[str, str] = {}
        for i, item in enumerate(self.sequence(value, "gateways")):
            path = _join("gateways", i)
            body = self.mapping(item, path, ("ats",), ())
            ids = self.references(body["ats"], _join(path, "ats"), ("ats",))
            for ats_id in ids:
                if ats_id in seen:
                    raise self.fail(
                        _join(path, "ats"), f"{ats_id!r} is already served by {seen[ats_id]}"
                    )
                seen[ats_id] = path
            result.append(ids)
        missing = [a.id for a in ats if a.id not in seen]
        if result and missing:
            raise self.fail("gateways", f"no gateway serves {', '.join(map(repr, missing))}")
        return tuple(result)

    def start(self, value: object) -> datetime:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise self.fail("start", f"expected an ISO 8601 date-time, got {value!r}") from None
        if not isinstance(value, datetime):
            raise self.fail("start", f"expected an ISO 8601 date-time, got {_describe(value)}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise self.fail("start", "needs a time zone (e.g. 2026-03-02T00:00:00Z)")
        if value.utcoffset() == UTC.utcoffset(None):
            return value.astimezone(UTC)
        return value

    def environment(self, value: object) -> Environment:
        env = self.mapping(value, "environment", (), ("ambient_c", "humidity_pct"))
        return Environment(
            ambient_c=self.number(
                env.get("ambient_c", 24.0), "environment.ambient_c", minimum=-40, maximum=80
            ),
            humidity_pct=self.number(
                env.get("humidity_pct", 40.0), "environment.humidity_pct", minimum=0, maximum=100
            ),
        )

    def source_item(self, value: object, path: _Path) -> Source:
        item = self.mapping(value, path, ("id", "nominal_v"), ())
        source_id = self.identifier(item["id"], _join(path, "id"))
        self.register(source_id, "source", _join(path, "id"))
        return Source(
            source_id, self.number(item["nominal_v"], _join(path, "nominal_v"), positive=True)
        )

    def ats_item(self, value: object, path: _Path) -> Ats:
        item = self.mapping(
            value,
            path,
            ("id", "sources", "rating_a", "transfer_time", "rated_operations"),
            _UNIT_OPTIONAL,
        )
        ats_id = self.identifier(item["id"], _join(path, "id"))
        self.register(ats_id, "ats", _join(path, "id"))
        # ATSs are fed by sources only; naming an ATS here (a cascade or a cycle) is rejected.
        sources = self.references(item["sources"], _join(path, "sources"), ("source",))
        return Ats(
            id=ats_id,
            sources=sources,
            rating_a=self.number(item["rating_a"], _join(path, "rating_a"), positive=True),
            transfer_time_s=self.duration(
                item["transfer_time"], _join(path, "transfer_time"), positive=True
            ),
            rated_operations=self.integer(
                item["rated_operations"], _join(path, "rated_operations"), minimum=1
            ),
            **self.unit_normals(item, path),
        )

    def unit_normals(self, item: dict[str, Any], path: _Path) -> dict[str, float]:
        """An ATS's or MPDU's optional healthy ``thermal_rise_c`` and ``ripple_pct``."""
        lo_t, hi_t = THERMAL_RISE_RANGE_C
        lo_r, hi_r = RIPPLE_RANGE_PCT
        return {
            "thermal_rise_c": self.number(
                item.get("thermal_rise_c", DEFAULT_THERMAL_RISE_C),
                _join(path, "thermal_rise_c"),
                minimum=lo_t,
                maximum=hi_t,
            ),
            "ripple_pct": self.number(
                item.get("ripple_pct", DEFAULT_RIPPLE_PCT),
                _join(path, "ripple_pct"),
                minimum=lo_r,
                maximum=hi_r,
            ),
        }

    def mpdu_item(self, value: object, path: _Path) -> Mpdu:
        item = self.mapping(value, path, ("id", "ats", "rating_a"), _UNIT_OPTIONAL)
        mpdu_id = self.identifier(item["id"], _join(path, "id"))
        self.register(mpdu_id, "mpdu", _join(path, "id"))
        return Mpdu(
            id=mpdu_id,
            ats=self.reference(item["ats"], _join(path, "ats"), ("ats",)),
            rating_a=self.number(item["rating_a"], _join(path, "rating_a"), positive=True),
            **self.unit_normals(item, path),
        )

    def circuits(self, doc: dict[str, Any]) -> tuple[Circuit, ...]:
        result: list[Circuit] = []
        for i, value in enumerate(self.sequence(doc.get("circuits", []), "circuits")):
            path = _join("circuits", i)
            item = self.mapping(value, path, ("id", "paths", "rating_a", "load"), ("critical",))
            circuit_id = self.identifier(item["id"], _join(path, "id"))
            self.register(circuit_id, "circuit", _join(path, "id"))
            result.append(self.circuit_body(circuit_id, item, path))
        groups = self.sequence(doc.get("circuit_groups", []), "circuit_groups")
        for i, value in enumerate(groups):
            path = _join("circuit_groups", i)
            item = self.mapping(
                value, path, ("prefix", "count", "paths", "rating_a", "load"), ("critical",)
            )
            prefix = self.identifier(item["prefix"], _join(path, "prefix"))
            count = self.integer(item["count"], _join(path, "count"), minimum=1)
            width = max(2, len(str(count)))
            for n in range(1, count + 1):
                circuit_id = f"{prefix}{n:0{width}d}"
                self.register(circuit_id, "circuit", f"{path} (expands to {circuit_id!r})")
                result.append(self.circuit_body(circuit_id, item, path))
        if not result:
            raise self.fail("circuits", "the plant needs at least one circuit or circuit group")
        return tuple(result)

    def circuit_body(self, circuit_id: str, item: dict[str, Any], path: _Path) -> Circuit:
        paths = self.references(item["paths"], _join(path, "paths"), ("mpdu",))
        rating = self.number(item["rating_a"], _join(path, "rating_a"), positive=True)
        critical = self.boolean(item.get("critical", True), _join(path, "critical"))
        spec = self.load_spec(item["load"], _join(path, "load"))
        return Circuit(circuit_id, paths, rating, critical, spec)

    def load_spec(self, value: object, path: _Path) -> LoadSpec:
        """A circuit's ``load``: the original keys first (their draws keep their order), then
        the optional structures, each drawn only when present."""
        load = self.mapping(value, path, ("mean_a",), _LOAD_KEYS[1:])

        def num(key: str, default: float, minimum: float, maximum: float | None = None) -> float:
            return self.drawn(
                load.get(key, default), _join(path, key), minimum=minimum, maximum=maximum
            )

        mean_a = num("mean_a", 0.0, minimum=0)
        spec = LoadSpec(
            mean_a=mean_a,
            daily=num("daily", 0.0, minimum=0, maximum=0.95),
            weekly=num("weekly", 0.0, minimum=0, maximum=0.95),
            noise=num("noise", 0.0, minimum=0, maximum=0.5),
            trend_per_day=num("trend_per_day", 0.0, minimum=-0.5),
        )
        extra: dict[str, Any] = {}
        if "peak_hour" in load:
            extra["peak_hour"] = num("peak_hour", 15.0, minimum=0, maximum=24)
        if "weekday_profile" in load:
            extra["weekday_profile"] = self.weekday_profile(
                load["weekday_profile"], _join(path, "weekday_profile")
            )
        if "weekend_daily" in load:
            extra["weekend_daily"] = num("weekend_daily", 0.0, minimum=0, maximum=0.95)
        if "monday_ramp" in load:
            extra["monday_ramp"] = self.monday_ramp(load["monday_ramp"], _join(path, "monday_ramp"))
        if "steps" in load:
            extra["steps"] = self.load_steps(load["steps"], _join(path, "steps"), mean_a)
        if "batch" in load:
            extra["batch"] = self.batch(load["batch"], _join(path, "batch"))
        if "noise_correlation" in load:
            extra["noise_correlation_s"] = self.drawn_duration(
                load["noise_correlation"], _join(path, "noise_correlation"), maximum=DAY_S
            )
        if "noise_bursts" in load:
            extra["noise_bursts"] = self.noise_bursts(
                load["noise_bursts"], _join(path, "noise_bursts")
            )
        return replace(spec, **extra) if extra else spec

    def weekday_profile(self, value: object, path: _Path) -> tuple[float, ...]:
        items = self.sequence(value, path)
        if len(items) != 7:
            raise self.fail(path, f"needs 7 factors, Monday..Sunday, got {len(items)}")
        factors = tuple(
            self.drawn(v, _join(path, i), minimum=0, maximum=5) for i, v in enumerate(items)
        )
        if not any(factors):
            raise self.fail(path, "needs at least one factor > 0")
        return factors

    def monday_ramp(self, value: object, path: _Path) -> MondayRamp:
        item = self.mapping(value, path, ("depth",), ("start", "duration"))
        depth = self.drawn(item["depth"], _join(path, "depth"), minimum=0, maximum=0.9)
        start_h = self.clock(item.get("start", "06:00"), _join(path, "start"))
        duration = self.drawn_duration(
            item.get("duration", "3h"), _join(path, "duration"), positive=True, maximum=DAY_S
        )
        return MondayRamp(depth, start_h, duration)

    def load_steps(self, value: object, path: _Path, mean_a: float) -> tuple[LoadStep, ...]:
        steps: list[LoadStep] = []
        for i, v in enumerate(self.sequence(value, path)):
            item_path = _join(path, i)
            item = self.mapping(v, item_path, ("at", "delta_a"), ())
            at = self.signed_duration(item["at"], _join(item_path, "at"))
            delta = self.drawn(item["delta_a"], _join(item_path, "delta_a"), minimum=-1e6)
            steps.append(LoadStep(at, delta))
        level = mean_a
        for i, step in sorted(enumerate(steps), key=lambda p: p[1].at_s):
            level += step.delta_a
            if level < -1e-9:
                raise self.fail(
                    _join(_join(path, i), "delta_a"),
                    f"takes the mean below 0 A ({level:g} A from {step.at_s:g} s)",
                )
        return tuple(sorted(steps, key=lambda s: s.at_s))

    def batch(self, value: object, path: _Path) -> BatchPeak:
        item = self.mapping(value, path, ("start", "duration", "extra"), ("jitter",))
        start_h = self.clock(item["start"], _join(path, "start"))
        duration = self.drawn_duration(
            item["duration"], _join(path, "duration"), positive=True, maximum=DAY_S
        )
        extra = self.drawn(item["extra"], _join(path, "extra"), minimum=0, maximum=3)
        jitter = self.drawn_duration(item.get("jitter", 0), _join(path, "jitter"))
        if duration + jitter > DAY_S:
            raise self.fail(path, "duration + jitter must be at most 24 h")
        return BatchPeak(start_h, duration, extra, jitter)

    def noise_bursts(self, value: object, path: _Path) -> NoiseBursts:
        item = self.mapping(value, path, ("per_day", "duration", "factor"), ())
        return NoiseBursts(
            per_day=self.drawn(item["per_day"], _join(path, "per_day"), minimum=0, maximum=24),
            duration_s=self.drawn_duration(
                item["duration"], _join(path, "duration"), positive=True, maximum=DAY_S
            ),
            factor=self.drawn(item["factor"], _join(path, "factor"), minimum=1, maximum=10),
        )

    def holidays(self, value: object) -> tuple[date, ...]:
        """``holidays``: local dates (``YYYY-MM-DD``), each once."""
        result: list[date] = []
        for i, v in enumerate(self.sequence(value, "holidays")):
            path = _join("holidays", i)
            day: date | None = None
            if isinstance(v, date) and not isinstance(v, datetime):
                day = v
            elif isinstance(v, str) and _DATE_RE.match(v.strip()):
                try:
                    day = date.fromisoformat(v.strip())
                except ValueError:
                    day = None
            if day is None:
                raise self.fail(path, f"expected a date like 2026-12-25, got {_describe(v)}")
            if day in result:
                raise self.fail(path, f"{day.isoformat()} is listed twice")
            result.append(day)
        return tuple(sorted(result))

    def schedule_item(self, value: object, path: _Path) -> ScheduledWork:
        item = self.mapping(
            value, path, ("start", "duration", "circuits", "extra_a"), ("announced",)
        )
        return ScheduledWork(
            start_s=self.duration(item["start"], _join(path, "start")),
            duration_s=self.duration(item["duration"], _join(path, "duration"), positive=True),
            circuits=self.references(item["circuits"], _join(path, "circuits"), ("circuit",)),
            extra_a=self.number(item["extra_a"], _join(path, "extra_a")),
            announced=self.boolean(item.get("announced", False), _join(path, "announced")),
        )

    def event(self, value: object, path: _Path) -> Event:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {_describe(value)}")
        if "kind" not in value:
            raise self.fail(_join(path, "kind"), "missing required key")
        kind = value["kind"]
        if not isinstance(kind, str) or kind not in _EVENT_FIELDS:
            raise self.fail(
                _join(path, "kind"),
                f"unknown event kind {kind!r} (known: {', '.join(EVENT_KINDS)})",
            )
        required, optional = _EVENT_FIELDS[kind]
        item = self.mapping(value, path, ("kind", *required), optional)
        targets = _EVENT_TARGETS.get(kind, ())

        def dur(key: str, *, positive: bool = False) -> float:
            return self.duration(item[key], _join(path, key), positive=positive)

        def opt_dur(key: str) -> float | None:
            return dur(key, positive=True) if key in item else None

        def target() -> str:
            return self.reference(item["target"], _join(path, "target"), targets)

        def target_list() -> tuple[str, ...]:
            return self.references(item["targets"], _join(path, "targets"), targets)

        builders: dict[str, Callable[[], Event]] = {
            "load_trend": lambda: LoadTrendEvent(
                kind,
                target_list(),
                dur("onset"),
                self.number(item["growth_a_per_h"], _join(path, "growth_a_per_h")),
                opt_dur("end"),
            ),
            "source_outage": lambda: SourceOutageEvent(
                kind, target(), dur("at"), dur("duration", positive=True)
            ),
            "sudden_failure": lambda: SuddenFailureEvent(
                kind, target(), dur("at"), opt_dur("repair_after")
            ),
            "ambient_excursion": lambda: AmbientExcursionEvent(
                kind,
                dur("at"),
                dur("duration", positive=True),
                self.number(item["delta_c"], _join(path, "delta_c")),
            ),
            "load_surge": lambda: LoadSurgeEvent(
                kind,
                target_list(),
                dur("at"),
                dur("duration", positive=True),
                self.number(item["extra_a"], _join(path, "extra_a")),
            ),
            "sensor_stuck": lambda: SensorStuckEvent(
                kind, target(), dur("at"), dur("duration", positive=True)
            ),
            "comms_loss": lambda: CommsLossEvent(
                kind, target(), dur("at"), dur("duration", positive=True)
            ),
        }
        if kind in WEAR_KINDS:
            onset, failure = dur("onset"), dur("failure")
            if failure <= onset:
                raise self.fail(
                    _join(path, "failure"),
                    f"must be after onset ({failure:g} s <= {onset:g} s)",
                )
            scale = (
                self.number(item["precursor_scale"], _join(path, "precursor_scale"), minimum=0)
                if "precursor_scale" in item
                else 1.0
            )
            lo_p, hi_p = PRECURSOR_EXPONENT_RANGE
            exponent = (
                self.number(
                    item["precursor_exponent"],
                    _join(path, "precursor_exponent"),
                    minimum=lo_p,
                    maximum=hi_p,
                )
                if "precursor_exponent" in item
                else 2.0
            )
            gains = (
                self.gains(item["precursor_gains"], _join(path, "precursor_gains"))
                if "precursor_gains" in item
                else PrecursorGains()
            )
            return WearEvent(
                kind, target(), onset, failure, opt_dur("repair_after"), scale, exponent, gains
            )
        event = builders[kind]()
        if (
            isinstance(event, LoadTrendEvent)
            and event.end_s is not None
            and event.end_s <= event.onset_s
        ):
            raise self.fail(_join(path, "end"), "must be after onset")
        return event

    def gains(self, value: object, path: _Path) -> PrecursorGains:
        """``precursor_gains``: any of the four signals, each 0-3 (default 1)."""
        item = self.mapping(value, path, (), PRECURSOR_SIGNALS)
        lo, hi = PRECURSOR_GAIN_RANGE
        return PrecursorGains(
            **{
                k: self.number(item[k], _join(path, k), minimum=lo, maximum=hi)
                for k in PRECURSOR_SIGNALS
                if k in item
            }
        )


def _describe(value: object) -> str:
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"


def _kinds_text(kinds: Sequence[str]) -> str:
    names = {"ats": "an ATS", "mpdu": "an MPDU", "circuit": "a circuit", "source": "a source"}
    names["env"] = "the environment sensor"
    return " or ".join(names[k] for k in kinds)
