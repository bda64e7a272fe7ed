"""The Modbus register map as data: one source of truth for the client and the simulator's server.

Every device type has

* an identification block at holding register 0 (the same layout for all types, read once at
  discovery),
* one contiguous block of input registers starting at 0 with its measurements, status and alarm
  bitfields and counters (one request per poll),
* commands: coils (``COILS``) and, for ATS and SBM, a holding-register command block at
  :data:`COMMAND_BASE`.

:class:`Block` encodes values (by field name) into register words and decodes words back, so the
server and the client cannot disagree on addresses, types or scales. The human-readable tables
are in docs/register-map.md (kept in sync by a test).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from enum import StrEnum
from typing import Any, Final

from .models import DeviceType

__all__ = [
    "ATS_MAP",
    "COMMAND_BASE",
    "ENV_MAP",
    "IDENTIFICATION",
    "ID_CHARS",
    "MAPS",
    "MAP_VERSION",
    "MAX_UNIT_ID",
    "MAX_UPSTREAM",
    "MPDU_MAP",
    "NO_SOURCE",
    "SBM_MAP",
    "Block",
    "Coil",
    "DeviceMap",
    "Field",
    "Kind",
    "Table",
]

MAP_VERSION: Final = 1
"""Holding register 1 of every device; bumped on any incompatible change of this map."""
MAX_UPSTREAM: Final = 4
"""Most sources per ATS and most paths per SBM the map has room for."""
ID_WORDS: Final = 8
ID_CHARS: Final = 2 * ID_WORDS
"""Longest plant id (ASCII) the identification block holds."""
COMMAND_BASE: Final = 100
"""First holding register of the command block (ATS, SBM)."""
MAX_UNIT_ID: Final = 247
"""Highest Modbus unit id a gateway can address."""
NO_SOURCE: Final = -1
"""``active_source`` when an ATS is connected to no source."""


class Table(StrEnum):
    """The four Modbus data tables."""

    HOLDING = "holding"
    INPUT = "input"
    COIL = "coil"
    DISCRETE = "discrete"


class Kind(StrEnum):
    """How a field is laid out in 16-bit words (32-bit values: high word first)."""

    U16 = "u16"
    S16 = "s16"
    U32 = "u32"
    S32 = "s32"
    STRING = "string"
    """ASCII, two characters per word (first character in the high byte), NUL padded."""
    BITS = "bits"
    """A 16-bit bitfield, bit 0 = least significant."""


_RANGES: Final[dict[Kind, tuple[int, int]]] = {
    Kind.U16: (0, 0xFFFF),
    Kind.S16: (-0x8000, 0x7FFF),
    Kind.U32: (0, 0xFFFFFFFF),
    Kind.S32: (-0x80000000, 0x7FFFFFFF),
}


@dataclass(frozen=True, slots=True)
class Field:
    """One named value in a register block.

    Numeric fields hold ``round(value / scale)``; fields with a ``unit`` decode to float, the
    others (counters, indices, codes) to int. ``count > 1`` makes an array of ``count`` elements
    (decoded as a tuple). A BITS field either names its bits (``bits``: bit 0 first; each name is
    its own bool value) or, with no names, is an array of 16 bools.
    """

    name: str
    address: int
    kind: Kind
    scale: float = 1.0
    unit: str = ""
    description: str = ""
    count: int = 1
    length: int = 1
    """Words per element of a STRING field."""
    bits: tuple[str, ...] = ()
    writable: bool = False
    # Derived once (a 1,000-device poll decodes some 30,000 fields a refresh).
    _element_words: int = dc_field(init=False, repr=False, compare=False)
    _is_float: bool = dc_field(init=False, repr=False, compare=False)
    _decimals: int = dc_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        words = (
            self.length
            if self.kind is Kind.STRING
            else 2
            if self.kind in (Kind.U32, Kind.S32)
            else 1
        )
        object.__setattr__(self, "_element_words", words)
        is_float = bool(self.unit) and self.kind not in (Kind.STRING, Kind.BITS)
        object.__setattr__(self, "_is_float", is_float)
        decimals = max(0, -math.floor(math.log10(self.scale) + 1e-9)) if self.scale > 0 else 0
        object.__setattr__(self, "_decimals", decimals)

    @property
    def element_words(self) -> int:
        """Words per element."""
        return self._element_words

    @property
    def words(self) -> int:
        """Words the whole field occupies."""
        return self._element_words * self.count

    @property
    def is_float(self) -> bool:
        """Whether the decoded value is a float (a physical quantity)."""
        return self._is_float

    @property
    def names(self) -> tuple[str, ...]:
        """The value names this field encodes (its bit names, or its own name)."""
        return self.bits if self.bits else (self.name,)

    # -- one element -------------------------------------------------------------------------

    def _encode_number(self, value: object) -> list[int]:
        if not isinstance(value, (int, float)):
            raise TypeError(f"{self.name}: expected a number, got {value!r}")
        lo, hi = _RANGES[self.kind]
        x = float(value) / self.scale
        if math.isnan(x):
            raw = 0
        elif math.isinf(x):
            raw = hi if x > 0 else lo
        else:
            raw = max(lo, min(hi, round(x)))  # a real device saturates, it does not wrap
        if self.kind in (Kind.U16, Kind.S16):
            return [raw & 0xFFFF]
        raw &= 0xFFFFFFFF
        return [raw >> 16, raw & 0xFFFF]

    def _decode_number(self, words: Sequence[int]) -> int | float:
        n = self._element_words
        raw = words[0] if n == 1 else (words[0] << 16) | words[1]
        bits = 16 * n
        if self.kind in (Kind.S16, Kind.S32) and raw >= 1 << (bits - 1):
            raw -= 1 << bits
        if not self._is_float:
            return raw if self.scale == 1 else round(raw * self.scale)
        return round(raw * self.scale, self._decimals)

    def _encode_string(self, value: object) -> list[int]:
        data = str(value).encode("ascii", errors="replace")[: 2 * self.length]
        data = data.ljust(2 * self.length, b"\0")
        return [(data[i] << 8) | data[i + 1] for i in range(0, len(data), 2)]

    def _decode_string(self, words: Sequence[int]) -> str:
        data = b"".join(w.to_bytes(2, "big") for w in words)
        return data.split(b"\0", 1)[0].decode("ascii", errors="replace").strip()

    # -- whole field -------------------------------------------------------------------------

    def encode(self, values: Mapping[str, object]) -> list[int]:
        """This field's words, from ``values`` (by name; missing array elements are 0)."""
        if self.kind is Kind.BITS:
            if self.bits:
                flags: Sequence[object] = [values[n] for n in self.bits]
            else:
                flags = _as_sequence(values[self.name], self.name)[:16]
            return [sum(1 << i for i, on in enumerate(flags) if on)]
        elements = (
            _as_sequence(values[self.name], self.name) if self.count > 1 else [values[self.name]]
        )
        if len(elements) > self.count:
            raise ValueError(f"{self.name}: {len(elements)} values, room for {self.count}")
        out: list[int] = []
        for element in elements:
            if self.kind is Kind.STRING:
                out += self._encode_string(element)
            else:
                out += self._encode_number(element)
        return out + [0] * (self.words - len(out))

    def decode(self, words: Sequence[int]) -> dict[str, Any]:
        """The values held in this field's ``words`` (exactly :attr:`words` of them)."""
        if self.kind is Kind.BITS:
            word = words[0]
            if self.bits:
                return {n: bool(word >> i & 1) for i, n in enumerate(self.bits)}
            return {self.name: tuple(bool(word >> i & 1) for i in range(16))}
        n = self.element_words
        elements = [
            self._decode_string(words[i : i + n])
            if self.kind is Kind.STRING
            else self._decode_number(words[i : i + n])
            for i in range(0, self.words, n)
        ]
        return {self.name: tuple(elements) if self.count > 1 else elements[0]}


def _as_sequence(value: object, name: str) -> Sequence[object]:
    if isinstance(value, (list, tuple)):
        return value
    raise TypeError(f"{name}: expected a sequence, got {value!r}")


@dataclass(frozen=True, slots=True)
class Block:
    """Contiguous registers of one table, read (or written) in one request."""

    table: Table
    start: int
    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        address = self.start
        for f in self.fields:
            if f.address != address:
                raise ValueError(f"{f.name} at {f.address}, expected {address} (no gaps)")
            address += f.words

    @property
    def count(self) -> int:
        """Number of registers in the block."""
        return sum(f.words for f in self.fields)

    def field(self, name: str) -> Field:
        """The field called ``name`` (or holding the bit called ``name``)."""
        for f in self.fields:
            if name in f.names or f.name == name:
                return f
        raise KeyError(name)

    def encode(self, values: Mapping[str, object]) -> list[int]:
        """All words of the block, from values by name."""
        out: list[int] = []
        for f in self.fields:
            out += f.encode(values)
        return out

    def decode(self, words: Sequence[int]) -> dict[str, Any]:
        """Values by name from the block's words; ``ValueError`` if there are too few."""
        if len(words) < self.count:
            raise ValueError(f"{len(words)} registers, the block has {self.count}")
        out: dict[str, Any] = {}
        for f in self.fields:
            i = f.address - self.start
            out.update(f.decode(words[i : i + f.words]))
        return out


@dataclass(frozen=True, slots=True)
class Coil:
    """A command coil. A state coil reads back its state; a trigger coil starts an action when
    written 1 (writing 0 is an illegal value) and always reads 0."""

    name: str
    address: int
    trigger: bool
    description: str


@dataclass(frozen=True, slots=True)
class DeviceMap:
    """Everything a device type exposes."""

    device_type: DeviceType
    model: str
    identification: Block
    measurements: Block
    commands: Block | None
    coils: tuple[Coil, ...]


def _layout(start: int, *fields: Field) -> tuple[Field, ...]:
    """Give ``fields`` consecutive addresses from ``start`` (their own addresses are ignored)."""
    out: list[Field] = []
    address = start
    for f in fields:
        out.append(
            Field(
                name=f.name,
                address=address,
                kind=f.kind,
                scale=f.scale,
                unit=f.unit,
                description=f.description,
                count=f.count,
                length=f.length,
                bits=f.bits,
                writable=f.writable,
            )
        )
        address += f.words
    return tuple(out)


def _f(
    name: str,
    kind: Kind,
    scale: float = 1.0,
    unit: str = "",
    description: str = "",
    *,
    count: int = 1,
    length: int = 1,
    bits: tuple[str, ...] = (),
    writable: bool = False,
) -> Field:
    return Field(name, 0, kind, scale, unit, description, count, length, bits, writable)


IDENTIFICATION: Final = Block(
    Table.HOLDING,
    0,
    _layout(
        0,
        _f("device_type", Kind.U16, description="1 = ATS, 2 = MPDU, 3 = SBM, 4 = ENV"),
        _f("map_version", Kind.U16, description=f"register map version ({MAP_VERSION})"),
        _f("plant_id", Kind.STRING, description="plant id, ASCII", length=ID_WORDS),
        _f("model", Kind.STRING, description="model name, ASCII", length=ID_WORDS),
        _f("firmware", Kind.STRING, description="firmware version, ASCII", length=4),
        _f("rating_a", Kind.U32, 0.01, "A", "rated current (ENV: 0)"),
        _f("critical", Kind.U16, description="SBM: 1 = critical circuit; others 0"),
        _f(
            "upstream_count",
            Kind.U16,
            description="ATS: number of sources; MPDU: 1; SBM: number of paths; ENV: 0",
        ),
        _f(
            "upstream",
            Kind.STRING,
            description="ATS: source ids (priority order); MPDU: its ATS id; "
            "SBM: path MPDU ids (first = normal); unused slots empty",
            count=MAX_UPSTREAM,
            length=ID_WORDS,
        ),
        _f("transfer_time_ms", Kind.U32, 0.01, "ms", "ATS: nominal transfer time; others 0"),
        _f("rated_operations", Kind.U32, description="ATS: rated mechanical operations; others 0"),
    ),
)

_ATS_STATUS = ("output_energized", "inhibit")
_ATS_ALARMS = (
    "alarm_over_temperature",
    "alarm_output_lost",
    "alarm_out_of_sync",
    "alarm_over_limit",
)

ATS_MAP: Final = DeviceMap(
    DeviceType.ATS,
    "DCP-ATS",
    IDENTIFICATION,
    Block(
        Table.INPUT,
        0,
        _layout(
            0,
            _f(
                "status",
                Kind.BITS,
                description="bit 0 output energised, 1 inhibit",
                bits=_ATS_STATUS,
            ),
            _f(
                "alarms",
                Kind.BITS,
                description="bit 0 over-temperature, 1 output lost, 2 out of sync, 3 over limit",
                bits=_ATS_ALARMS,
            ),
            _f("source_available", Kind.BITS, description="bit i: source i available"),
            _f("active_source", Kind.S16, description="index of the connected source, -1 none"),
            _f("preferred_source", Kind.U16, description="index of the preferred source"),
            _f("output_voltage_v", Kind.U16, 0.1, "V", "output voltage"),
            _f("load_current_a", Kind.U32, 0.01, "A", "load current"),
            _f("load_power_kw", Kind.U32, 0.001, "kW", "load power"),
            _f("energy_kwh", Kind.U32, 0.001, "kWh", "energy delivered"),
            _f("contact_temperature_c", Kind.S16, 0.1, "degC", "main contact temperature"),
            _f("ripple_pct", Kind.U16, 0.01, "%", "output voltage ripple (RMS, % of nominal)"),
            _f("phase_angle_deg", Kind.S16, 0.1, "deg", "phase angle between sources"),
            _f(
                "source_voltage_v",
                Kind.U16,
                0.1,
                "V",
                "voltage of source i",
                count=MAX_UPSTREAM,
            ),
            _f(
                "source_frequency_hz",
                Kind.U16,
                0.01,
                "Hz",
                "frequency of source i",
                count=MAX_UPSTREAM,
            ),
            _f("transfers_total", Kind.U32, description="transfers, all causes"),
            _f("transfers_failure", Kind.U32, description="transfers caused by a source failure"),
            _f("operations", Kind.U32, description="mechanism operations incl. self-tests"),
            _f("self_tests", Kind.U32, description="self-tests run"),
            _f("last_transfer_ms", Kind.U32, 0.01, "ms", "duration of the last real transfer"),
            _f(
                "last_self_test_ms",
                Kind.U32,
                0.01,
                "ms",
                "transfer time measured by the last self-test (0 before the first)",
            ),
            _f(
                "time_on_source_s",
                Kind.U32,
                1.0,
                "s",
                "time spent on source i",
                count=MAX_UPSTREAM,
            ),
        ),
    ),
    Block(
        Table.HOLDING,
        COMMAND_BASE,
        _layout(
            COMMAND_BASE,
            _f(
                "preferred_source",
                Kind.U16,
                description="read: preferred source index; write: set it",
                writable=True,
            ),
            _f(
                "transfer_to_source",
                Kind.S16,
                description="read: active source index (-1 none); write: transfer to source",
                writable=True,
            ),
        ),
    ),
    (
        Coil("inhibit", 0, False, "inhibit automatic (discretionary) transfers"),
        Coil("self_test", 1, True, "write 1: run a closed-transition self-test"),
        Coil("reset_alarms", 2, True, "write 1: clear latched alarms whose cause has gone"),
    ),
)

MPDU_MAP: Final = DeviceMap(
    DeviceType.MPDU,
    "DCP-MPDU",
    IDENTIFICATION,
    Block(
        Table.INPUT,
        0,
        _layout(
            0,
            _f(
                "status",
                Kind.BITS,
                description="bit 0 energised, 1 output on, 2 breaker open",
                bits=("energized", "output_on", "breaker_open"),
            ),
            _f(
                "alarms",
                Kind.BITS,
                description="bit 0 over limit, 1 breaker trip, 2 over-temperature",
                bits=("alarm_over_limit", "alarm_breaker_trip", "alarm_over_temperature"),
            ),
            _f("input_voltage_v", Kind.U16, 0.1, "V", "input voltage"),
            _f("current_a", Kind.U32, 0.01, "A", "load current"),
            _f("power_kw", Kind.U32, 0.001, "kW", "load power"),
            _f("energy_kwh", Kind.U32, 0.001, "kWh", "energy delivered"),
            _f("terminal_temperature_c", Kind.S16, 0.1, "degC", "breaker terminal temperature"),
            _f("ripple_pct", Kind.U16, 0.01, "%", "output voltage ripple (RMS, % of nominal)"),
            _f("nuisance_trips", Kind.U32, description="nuisance trips (breaker did not open)"),
            _f("breaker_trips", Kind.U32, description="breaker trips"),
        ),
    ),
    None,
    (Coil("output_on", 0, False, "output switched on"),),
)

SBM_MAP: Final = DeviceMap(
    DeviceType.SBM,
    "DCP-SBM",
    IDENTIFICATION,
    Block(
        Table.INPUT,
        0,
        _layout(
            0,
            _f(
                "status",
                Kind.BITS,
                description="bit 0 output on, 1 energised, 2 breaker open",
                bits=("output_on", "energized", "breaker_open"),
            ),
            _f("path_energized", Kind.BITS, description="bit i: path i energised"),
            _f("active_path", Kind.U16, description="index of the active path"),
            _f("voltage_v", Kind.U16, 0.1, "V", "circuit voltage"),
            _f("current_a", Kind.U32, 0.01, "A", "circuit current"),
            _f("power_kw", Kind.U32, 0.001, "kW", "circuit power"),
            _f("energy_kwh", Kind.U32, 0.001, "kWh", "energy delivered"),
            _f("bypass_transfers", Kind.U32, description="local automatic transfers"),
            _f("switch_operations", Kind.U32, description="path changes, all causes"),
            _f(
                "interruptions",
                Kind.U32,
                description="output interruptions (power gap beyond ride-through, or loss), "
                "however short, since power-up",
            ),
            _f(
                "last_interruption_ts",
                Kind.U32,
                description="Unix time (s, UTC) of the last interruption's start, 0 = none",
            ),
        ),
    ),
    Block(
        Table.HOLDING,
        COMMAND_BASE,
        _layout(
            COMMAND_BASE,
            _f(
                "active_path",
                Kind.U16,
                description="read: active path index; write: select a path (make-before-break)",
                writable=True,
            ),
        ),
    ),
    (Coil("output_on", 0, False, "output switched on"),),
)

ENV_MAP: Final = DeviceMap(
    DeviceType.ENV,
    "DCP-ENV",
    IDENTIFICATION,
    Block(
        Table.INPUT,
        0,
        _layout(
            0,
            _f("ambient_c", Kind.S16, 0.1, "degC", "room temperature"),
            _f("humidity_pct", Kind.U16, 0.1, "%", "relative humidity"),
        ),
    ),
    None,
    (),
)

MAPS: Final[dict[DeviceType, DeviceMap]] = {
    m.device_type: m for m in (ATS_MAP, MPDU_MAP, SBM_MAP, ENV_MAP)
}
