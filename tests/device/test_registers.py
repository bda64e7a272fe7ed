"""The register map as data: encoding rules, layout, and the documentation that describes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from custom_components.datacenter_power.device.registers import (
    IDENTIFICATION,
    MAPS,
    MAX_UPSTREAM,
    Block,
    DeviceMap,
    Field,
    Kind,
    Table,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "register-map.md"


def _one(kind: Kind, scale: float = 1.0, unit: str = "", **extra: object) -> Field:
    return Field("x", 0, kind, scale, unit, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "scale", "unit", "value", "words", "decoded"),
    [
        (Kind.U16, 0.1, "V", 230.04, [2300], 230.0),
        (Kind.S16, 0.1, "degC", -12.34, [0x10000 - 123], -12.3),
        (Kind.S16, 1.0, "", -1, [0xFFFF], -1),
        (Kind.U32, 0.01, "A", 123456.78, [0x00BC, 0x614E], 123456.78),
        (Kind.S32, 1.0, "", -2, [0xFFFF, 0xFFFE], -2),
        (Kind.U16, 0.1, "V", 99999.0, [0xFFFF], 6553.5),  # saturates, never wraps
        (Kind.U16, 0.1, "V", -5.0, [0], 0.0),
        (Kind.U32, 1.0, "", 7, [0, 7], 7),
    ],
)
def test_numbers_round_trip_scaled(
    kind: Kind, scale: float, unit: str, value: float, words: list[int], decoded: float
) -> None:
    field = _one(kind, scale, unit)
    assert field.encode({"x": value}) == words
    result = field.decode(words)["x"]
    assert result == decoded
    assert isinstance(result, float) == bool(unit)


def test_strings_bits_and_arrays() -> None:
    text = _one(Kind.STRING, length=3)
    assert text.encode({"x": "ats1"}) == [0x6174, 0x7331, 0]
    assert text.decode([0x6174, 0x7331, 0])["x"] == "ats1"
    assert text.decode(text.encode({"x": "much-too-long"}))["x"] == "much-t"

    flags = Field("status", 0, Kind.BITS, bits=("a", "b", "c"))
    assert flags.encode({"a": True, "b": False, "c": True}) == [0b101]
    assert flags.decode([0b010]) == {"a": False, "b": True, "c": False}

    array = _one(Kind.BITS)
    assert array.encode({"x": (False, True)}) == [0b10]
    assert array.decode([0b10])["x"][:3] == (False, True, False)

    volts = _one(Kind.U16, 0.1, "V", count=4)
    assert volts.encode({"x": (230.0, 0.0)}) == [2300, 0, 0, 0]
    assert volts.decode([2300, 10, 0, 0])["x"] == (230.0, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="room for 4"):
        volts.encode({"x": (1.0,) * 5})


def test_blocks_are_contiguous_and_fit_one_request() -> None:
    with pytest.raises(ValueError, match="no gaps"):
        Block(Table.INPUT, 0, (Field("a", 0, Kind.U16), Field("b", 2, Kind.U16)))
    assert IDENTIFICATION.count == 62
    for dmap in MAPS.values():
        assert dmap.identification is IDENTIFICATION
        assert dmap.measurements.table is Table.INPUT
        assert dmap.measurements.start == 0
        assert dmap.measurements.count <= 125  # one Modbus read
        assert len({c.address for c in dmap.coils}) == len(dmap.coils)
        if dmap.commands is not None:
            assert all(f.writable for f in dmap.commands.fields)
    assert IDENTIFICATION.field("upstream").count == MAX_UPSTREAM
    with pytest.raises(KeyError):
        IDENTIFICATION.field("nope")


def test_block_decode_rejects_short_replies() -> None:
    with pytest.raises(ValueError, match="62"):
        IDENTIFICATION.decode([0] * 61)


def _row(field: Field) -> str:
    end = field.address + field.words - 1
    address = str(field.address) if end == field.address else f"{field.address}-{end}"
    kind = f"string({2 * field.length})" if field.kind is Kind.STRING else field.kind.value
    if field.count > 1:
        kind += f" x{field.count}"
    scale = "" if field.kind in (Kind.STRING, Kind.BITS) else f"{field.scale:g}"
    access = "R/W" if field.writable else "R"
    return f"| {address} | {field.name} | {kind} | {scale} | {field.unit} | {access} |"


def _section(doc: str, dmap: DeviceMap) -> str:
    heading = f"\n## {dmap.device_type.name} ("
    start = doc.index(heading)
    end = doc.find("\n## ", start + 1)
    return doc[start:end]


def test_documentation_matches_the_map() -> None:
    """docs/register-map.md lists every field where the map puts it, and nothing else."""
    doc = DOC.read_text(encoding="utf-8")
    for field in IDENTIFICATION.fields:
        assert _row(field) in doc, field.name
    for dmap in MAPS.values():
        section = _section(doc, dmap)
        blocks = [dmap.measurements] + ([dmap.commands] if dmap.commands else [])
        expected = {_row(f) for b in blocks for f in b.fields}
        documented = {
            line[: line.rindex("|", 0, line.rindex("|")) + 1]
            for line in section.splitlines()
            if line.startswith("| ")
            and line.count("|") == 8
            and not line.startswith(("| Addr", "| ---"))
        }
        assert documented == expected, dmap.device_type.name
        for coil in dmap.coils:
            kind = "trigger" if coil.trigger else "state"
            assert f"| {coil.address} | {coil.name} | {kind} |" in section
