"""The decision coordinator's history in memory and on disk as columns, not as dicts.

At 1,000 circuits one typed row (``history.HistoryRow``) is 44 kB of JSON and ~1,000 dicts in
memory; 14 days of them (4,032 rows) were 177 MB on disk, ~1 GB in memory, and 2.7 s of
serialisation on the event loop at every save. Here a row is five small arrays (circuit
currents in integer milliamps, a flag byte and a path index per circuit, and the elements'
numbers), rows with the same circuits and elements form a chunk, and a chunk never spans a UTC
day, so that a save rewrites only the day that changed (``history_store.py``), encoded as
zlib-compressed little-endian arrays in base64.

The values are those of the typed rows (currents to 3 decimals, the same fields): converting a
typed row in and out gives the same row back (``HistoryLog.from_rows`` / ``HistoryLog.rows``).
This module has no Home Assistant imports.
"""

from __future__ import annotations

import base64
import binascii
import math
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from .engine.observation import CircuitObs, ElementObs, PlantObservation
from .history import HistoryRow, pack_observation, unpack_observation

__all__ = ["DAY_S", "HistoryLog", "decode_day", "encode_day"]

DAY_S: Final = 86400
NO_CURRENT: Final = np.iinfo(np.int32).min
"""Milliamps of a circuit whose current was not measured (NaN)."""
_REACHABLE, _ENERGIZED, _OUTPUT_ON = 1, 2, 4
_SOURCES = 4
"""Element flag: at least one source available (ATS)."""
_EL_FLOATS: Final = (
    "current_a",
    "temperature_c",
    "ripple_pct",
    "self_test_ms",
    "nominal_transfer_ms",
)
_EL_INTS: Final = ("self_tests", "operations", "rated_operations", "nuisance_trips")

type Kind = Literal["ats", "mpdu"]
type I32 = npt.NDArray[np.int32]
type U8 = npt.NDArray[np.uint8]
type U16 = npt.NDArray[np.uint16]
type F64 = npt.NDArray[np.float64]
type I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class _Row:
    """One poll, packed; never changed once made (a save encodes rows in another thread)."""

    t_s: float
    ambient_c: float
    current_ma: I32
    flags: U8
    path: U16
    """0: no active path; i + 1: the chunk's ``paths[i]``."""
    el_float: F64
    """Elements x ``_EL_FLOATS`` (NaN: not measured)."""
    el_int: I64
    el_flags: U8


@dataclass(slots=True)
class _Chunk:
    """Consecutive rows of one UTC day with the same circuits and elements."""

    day: int
    circuits: tuple[str, ...]
    elements: tuple[str, ...]
    kinds: tuple[Kind, ...]
    paths: list[str] = field(default_factory=list)
    rows: list[_Row] = field(default_factory=list)
    _path_index: dict[str, int] = field(default_factory=dict)

    def path_code(self, path: str | None) -> int:
        if path is None:
            return 0
        code = self._path_index.get(path)
        if code is None:
            self.paths.append(path)
            code = self._path_index[path] = len(self.paths)
        return code

    def fits(self, obs: PlantObservation, day: int) -> bool:
        return (
            day == self.day
            and tuple(obs.circuits) == self.circuits
            and tuple(obs.elements) == self.elements
            and tuple(e.kind for e in obs.elements.values()) == self.kinds
        )

    def pack(self, obs: PlantObservation) -> _Row:
        circuits = obs.circuits.values()
        elements = obs.elements.values()
        return _Row(
            t_s=round(obs.t_s, 1),
            ambient_c=_round(obs.ambient_c, 2),
            current_ma=np.fromiter(
                (_milli(c.current_a) for c in circuits), np.int32, len(self.circuits)
            ),
            flags=np.fromiter(
                (
                    (_REACHABLE if c.reachable else 0)
                    | (_ENERGIZED if c.energized else 0)
                    | (_OUTPUT_ON if c.output_on else 0)
                    for c in circuits
                ),
                np.uint8,
                len(self.circuits),
            ),
            path=np.fromiter(
                (self.path_code(c.active_path) for c in circuits), np.uint16, len(self.circuits)
            ),
            el_float=np.array(
                [
                    [
                        _round(e.current_a, 3),
                        _round(e.temperature_c, 3),
                        _round(e.ripple_pct, 3),
                        e.self_test_ms,
                        e.nominal_transfer_ms,
                    ]
                    for e in elements
                ],
                np.float64,
            ).reshape(len(self.elements), len(_EL_FLOATS)),
            el_int=np.array(
                [
                    [e.self_tests, e.operations, e.rated_operations, e.nuisance_trips]
                    for e in elements
                ],
                np.int64,
            ).reshape(len(self.elements), len(_EL_INTS)),
            el_flags=np.fromiter(
                (
                    (_REACHABLE if e.reachable else 0)
                    | (_ENERGIZED if e.energized else 0)
                    | (_SOURCES if e.sources_available else 0)
                    for e in elements
                ),
                np.uint8,
                len(self.elements),
            ),
        )

    def unpack(self, row: _Row) -> PlantObservation:
        paths = (None, *self.paths)
        currents = row.current_ma.tolist()
        flags = row.flags.tolist()
        codes = row.path.tolist()
        circuits = {
            cid: CircuitObs(
                id=cid,
                reachable=bool(flag & _REACHABLE),
                active_path=paths[code],
                energized=bool(flag & _ENERGIZED),
                current_a=math.nan if milli == NO_CURRENT else milli / 1000.0,
                output_on=bool(flag & _OUTPUT_ON),
            )
            for cid, milli, flag, code in zip(self.circuits, currents, flags, codes, strict=True)
        }
        floats = row.el_float.tolist()
        ints = row.el_int.tolist()
        el_flags = row.el_flags.tolist()
        elements = {
            eid: ElementObs(
                id=eid,
                kind=kind,
                reachable=bool(flag & _REACHABLE),
                energized=bool(flag & _ENERGIZED),
                current_a=f[0],
                temperature_c=f[1],
                ripple_pct=f[2],
                self_tests=i[0],
                self_test_ms=f[3],
                nominal_transfer_ms=f[4],
                operations=i[1],
                rated_operations=i[2],
                nuisance_trips=i[3],
                sources_available=bool(flag & _SOURCES),
            )
            for eid, kind, f, i, flag in zip(
                self.elements, self.kinds, floats, ints, el_flags, strict=True
            )
        }
        return PlantObservation(
            t_s=row.t_s, ambient_c=row.ambient_c, circuits=circuits, elements=elements
        )


def _round(value: float, digits: int) -> float:
    return value if math.isnan(value) else round(value, digits)


def _milli(current_a: float) -> int:
    if math.isnan(current_a):
        return int(NO_CURRENT)
    return round(current_a * 1000.0)


class HistoryLog:
    """The last ``max_s`` of history, one row per ``bucket_s`` (the last poll of each bucket).

    Called on the event loop (``record``); ``snapshot_days`` hands immutable rows to a save in
    another thread, and the lock makes that hand-over safe.
    """

    def __init__(self, bucket_s: float, max_s: float) -> None:
        """An empty history keeping ``max_s`` seconds, one row per ``bucket_s``."""
        self.bucket_s = bucket_s
        self.max_s = max_s
        self.max_rows = int(max_s / bucket_s) + 1
        self._chunks: list[_Chunk] = []
        self._latest: PlantObservation | None = None
        """The newest poll of the newest bucket, packed only when its bucket closes (or on a
        save): at a 5 s poll that is one packing in sixty polls."""
        self._dirty: set[int] = set()
        self._cold: set[int] = set()
        """Days kept on disk only (``release_days_before``): at 1,000 circuits a day of rows is
        ~3 MB in memory, 42 days ~130 MB, and only a replay reads the old ones."""
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Rows kept in memory, the open bucket included (not those of released days)."""
        return sum(len(c.rows) for c in self._chunks) + (self._latest is not None)

    @property
    def days(self) -> list[int]:
        """The UTC days (days since the epoch) history is kept for, on disk only included."""
        return sorted(self.hot_days | self._cold)

    @property
    def hot_days(self) -> set[int]:
        """The days whose rows are in memory."""
        return {c.day for c in self._chunks} | self._latest_day()

    def release_days_before(self, day: int) -> None:
        """Drop from memory the rows of the days before ``day`` that are saved (not changed
        since the last save): they stay kept, on disk only, until they leave the window."""
        with self._lock:
            kept: list[_Chunk] = []
            for chunk in self._chunks:
                if chunk.day < day and chunk.day not in self._dirty:
                    self._cold.add(chunk.day)
                else:
                    kept.append(chunk)
            self._chunks = kept

    def _latest_day(self) -> set[int]:
        return set() if self._latest is None else {int(self._latest.t_s // DAY_S)}

    @property
    def last_t_s(self) -> float | None:
        """Time of the newest row."""
        if self._latest is not None:
            return self._latest.t_s
        return self._chunks[-1].rows[-1].t_s if self._chunks else None

    def record(self, obs: PlantObservation) -> bool:
        """Keep ``obs`` as its bucket's row (replacing an earlier poll of the same bucket);
        returns whether it opened a new bucket. Older polls than the newest are ignored."""
        latest = self._latest
        if latest is not None and obs.t_s // self.bucket_s == latest.t_s // self.bucket_s:
            if obs.t_s >= latest.t_s:
                self._latest = obs
            return False
        last = self.last_t_s
        if last is not None and obs.t_s < last:
            return False
        with self._lock:
            if latest is not None:
                self._append(latest)
            self._latest = obs
            self._dirty.add(int(obs.t_s // DAY_S))
            self._trim(obs.t_s)
        return True

    def extend(self, observations: Iterable[PlantObservation]) -> None:
        """Keep observations in time order (a replayed or handed-over history)."""
        for obs in observations:
            self.record(obs)

    def _append(self, obs: PlantObservation) -> None:
        day = int(obs.t_s // DAY_S)
        chunk = self._chunks[-1] if self._chunks else None
        if chunk is None or not chunk.fits(obs, day):
            chunk = _Chunk(
                day=day,
                circuits=tuple(obs.circuits),
                elements=tuple(obs.elements),
                kinds=tuple(e.kind for e in obs.elements.values()),
            )
            self._chunks.append(chunk)
        chunk.rows.append(chunk.pack(obs))
        self._dirty.add(day)

    def _trim(self, now_s: float) -> None:
        oldest = now_s - self.max_s
        self._cold = {d for d in self._cold if (d + 1) * DAY_S > oldest}
        while self._chunks:
            chunk = self._chunks[0]
            keep = [r for r in chunk.rows if r.t_s >= oldest]
            if len(keep) == len(chunk.rows):
                break
            self._dirty.add(chunk.day)
            if keep:
                chunk.rows = keep
                break
            self._chunks.pop(0)

    def observations(self) -> Iterator[PlantObservation]:
        """Every kept row as the observation it was packed from, oldest first (call it off the
        event loop for a large plant: it builds every row's objects)."""
        with self._lock:
            chunks = [(c, list(c.rows)) for c in self._chunks]
            latest = self._latest
        for chunk, rows in chunks:
            for row in rows:
                yield chunk.unpack(row)
        if latest is not None:
            yield unpack_observation(pack_observation(latest))

    def rows(self) -> Iterator[HistoryRow]:
        """Every kept row as a typed row (``history.HistoryRow``)."""
        for obs in self.observations():
            yield pack_observation(obs)

    @classmethod
    def from_rows(
        cls, rows: Iterable[Any], bucket_s: float, max_s: float
    ) -> tuple[HistoryLog, int]:
        """A history of typed rows (sorted by time); returns it and how many rows were
        damaged (dropped)."""
        log = cls(bucket_s, max_s)
        damaged = 0
        observations = []
        for row in rows:
            try:
                observations.append(unpack_observation(row))
            except ValueError, TypeError, KeyError, IndexError, AttributeError:
                damaged += 1
        observations.sort(key=lambda o: o.t_s)
        log.extend(observations)
        return log, damaged

    def take_dirty(self) -> set[int]:
        """The days changed since the last call (what a save must write)."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def snapshot_days(self, days: Iterable[int]) -> dict[int, list[tuple[_Chunk, list[_Row]]]]:
        """The rows of ``days`` (the open bucket packed in), safe to encode in another thread."""
        wanted = set(days)
        with self._lock:
            out: dict[int, list[tuple[_Chunk, list[_Row]]]] = {d: [] for d in wanted}
            for chunk in self._chunks:
                if chunk.day in wanted:
                    out[chunk.day].append((_frozen(chunk), list(chunk.rows)))
            latest = self._latest
            if latest is not None and int(latest.t_s // DAY_S) in wanted:
                day = int(latest.t_s // DAY_S)
                last = out[day][-1][0] if out[day] else None
                if last is None or not last.fits(latest, day):
                    last = _Chunk(
                        day=day,
                        circuits=tuple(latest.circuits),
                        elements=tuple(latest.elements),
                        kinds=tuple(e.kind for e in latest.elements.values()),
                    )
                    out[day].append((last, []))
                else:
                    # The open bucket may add a path name: pack it on a copy of the vocabulary.
                    last = _frozen(last)
                    out[day][-1] = (last, out[day][-1][1])
                out[day][-1][1].append(last.pack(latest))
        return out

    def add_chunks(self, chunks: Iterable[_Chunk]) -> None:
        """Put a stored day's chunks in place (rows outside the kept window go at the next
        ``record``)."""
        with self._lock:
            self._chunks.extend(c for c in chunks if c.rows)
            self._chunks.sort(key=lambda c: (c.day, c.rows[0].t_s))

    def merge(self, other: HistoryLog) -> None:
        """Take in another history's rows (e.g. converted from typed rows); changed days are
        marked for the next save."""
        if not len(self):
            with self._lock:
                self._chunks, self._latest = other._chunks, other._latest
                self._dirty |= other._dirty
            return
        observations = sorted([*self.observations(), *other.observations()], key=lambda o: o.t_s)
        with self._lock:
            self._chunks, self._latest = [], None
        self.extend(observations)


def _frozen(chunk: _Chunk) -> _Chunk:
    """A copy whose path vocabulary later packing cannot change."""
    return _Chunk(
        day=chunk.day,
        circuits=chunk.circuits,
        elements=chunk.elements,
        kinds=chunk.kinds,
        paths=list(chunk.paths),
        _path_index=dict(chunk._path_index),
    )


# -- encoding ----------------------------------------------------------------------------------


def _encode(array: npt.NDArray[Any]) -> str:
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return base64.b64encode(zlib.compress(data, 1)).decode("ascii")


def _decode(text: object, dtype: type[np.generic], shape: tuple[int, ...]) -> npt.NDArray[Any]:
    if not isinstance(text, str):
        raise TypeError("not an encoded array")
    try:
        data = zlib.decompress(base64.b64decode(text, validate=True))
    except (binascii.Error, zlib.error) as err:
        raise ValueError(f"damaged array: {err}") from err
    want = np.dtype(dtype).newbyteorder("<")
    if len(data) != want.itemsize * math.prod(shape):
        raise ValueError("array of the wrong size")
    return np.frombuffer(data, want).astype(dtype).reshape(shape)


def encode_day(chunks: list[tuple[_Chunk, list[_Row]]]) -> dict[str, Any]:
    """One day's rows as JSON-safe columns (done in an executor job)."""
    out = []
    for chunk, rows in chunks:
        if not rows:
            continue
        n, m, k = len(chunk.circuits), len(chunk.elements), len(rows)
        out.append(
            {
                "circuits": list(chunk.circuits),
                "elements": list(chunk.elements),
                "kinds": list(chunk.kinds),
                "paths": list(chunk.paths),
                "rows": len(rows),
                "t_s": _encode(np.array([r.t_s for r in rows], np.float64)),
                "ambient_c": _encode(np.array([r.ambient_c for r in rows], np.float64)),
                "current_ma": _encode(np.stack([r.current_ma for r in rows]).reshape(k, n)),
                "flags": _encode(np.stack([r.flags for r in rows]).reshape(k, n)),
                "path": _encode(np.stack([r.path for r in rows]).reshape(k, n)),
                "el_float": _encode(
                    np.stack([r.el_float for r in rows]).reshape(k, m, len(_EL_FLOATS))
                ),
                "el_int": _encode(np.stack([r.el_int for r in rows]).reshape(k, m, len(_EL_INTS))),
                "el_flags": _encode(np.stack([r.el_flags for r in rows]).reshape(k, m)),
            }
        )
    return {"chunks": out}


def decode_day(day: int, data: Mapping[str, Any]) -> list[_Chunk]:
    """The chunks of one stored day (raises ValueError, TypeError or KeyError when damaged)."""
    chunks = []
    for raw in data["chunks"]:
        circuits = tuple(str(c) for c in raw["circuits"])
        elements = tuple(str(e) for e in raw["elements"])
        kinds = tuple(_kind(k) for k in raw["kinds"])
        if len(kinds) != len(elements):
            raise ValueError("element kinds do not match the elements")
        paths = [str(p) for p in raw["paths"]]
        count = int(raw["rows"])
        n, m = len(circuits), len(elements)
        t_s = _decode(raw["t_s"], np.float64, (count,))
        ambient = _decode(raw["ambient_c"], np.float64, (count,))
        current = _decode(raw["current_ma"], np.int32, (count, n))
        flags = _decode(raw["flags"], np.uint8, (count, n))
        path = _decode(raw["path"], np.uint16, (count, n))
        el_float = _decode(raw["el_float"], np.float64, (count, m, len(_EL_FLOATS)))
        el_int = _decode(raw["el_int"], np.int64, (count, m, len(_EL_INTS)))
        el_flags = _decode(raw["el_flags"], np.uint8, (count, m))
        if count and int(path.max(initial=0)) > len(paths):
            raise ValueError("path index outside the stored path names")
        chunk = _Chunk(day=day, circuits=circuits, elements=elements, kinds=kinds, paths=paths)
        chunk._path_index = {p: i + 1 for i, p in enumerate(paths)}
        chunk.rows = [
            _Row(
                t_s=float(t_s[i]),
                ambient_c=float(ambient[i]),
                current_ma=current[i].copy(),
                flags=flags[i].copy(),
                path=path[i].copy(),
                el_float=el_float[i].copy(),
                el_int=el_int[i].copy(),
                el_flags=el_flags[i].copy(),
            )
            for i in range(count)
        ]
        if any(int(r.t_s // DAY_S) != day for r in chunk.rows):
            raise ValueError(f"rows outside day {day}")
        chunks.append(chunk)
    return chunks


def _kind(kind: object) -> Kind:
    if kind == "ats":
        return "ats"
    if kind == "mpdu":
        return "mpdu"
    raise ValueError(f"unknown element kind {kind!r}")
