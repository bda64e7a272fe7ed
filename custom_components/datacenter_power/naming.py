"""Friendly names for the ids the plant's devices report.

A source (a utility feed, a generator) has no device of its own in Home Assistant, so the
entities that describe it on each ATS are named after it: by the name set in the options
(``source_names``), else by its id made readable (``util_a`` -> "Utility A", ``gen1`` ->
"Generator 1"). Entity names use it through their translation placeholders, as Home Assistant
does; the states keep the ids (automations and the select options use them).

Names come from outside: the options form takes any text, a device reports up to 16 bytes of
ASCII that may hold control characters. :func:`clean_name` keeps what a name can show: printable
characters on one line (control, format and direction-override characters removed, runs of
white space made one space), at most :data:`MAX_NAME_LENGTH` characters; so a name cannot carry
an entity's name past the 255 characters the recorder and statistics take. What was changed is
logged once per name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from .const import CONF_SOURCE_NAMES, LOGGER

MAX_NAME_LENGTH: Final = 64
"""Characters of a name (a source's, a device's): an entity name built from it stays short."""
_WHITESPACE: Final = re.compile(r"\s+")
_SAID: set[tuple[str, str]] = set()
"""Names whose cleaning was logged (what, original), so each is said once."""
_SAID_MAX: Final = 1000

WORDS: Final[Mapping[str, str]] = {
    "util": "Utility",
    "utility": "Utility",
    "gen": "Generator",
    "genset": "Generator",
    "grid": "Grid",
    "mains": "Mains",
    "ups": "UPS",
    "pv": "PV",
    "bat": "Battery",
    "batt": "Battery",
}
"""Abbreviations common in source ids, spelled out."""


def readable(plant_id: str) -> str:
    """``plant_id`` as words: separators become spaces, known abbreviations are spelled out,
    short parts (a letter, a number) are upper case, the rest capitalised."""
    words: list[str] = []
    for part in (p for p in re.split(r"[_\-\s.]+", plant_id) if p):
        match = re.fullmatch(r"([A-Za-z]+?)(\d+)", part)
        stem, number = (match.group(1), match.group(2)) if match else (part, "")
        if stem.lower() in WORDS:
            words.append(WORDS[stem.lower()])
            if number:
                words.append(number)
        elif len(part) <= 2:
            words.append(part.upper())
        else:
            words.append(part[:1].upper() + part[1:])
    return " ".join(words) or plant_id


def clean_name(text: str, limit: int = MAX_NAME_LENGTH) -> str:
    """``text`` as a name: printable characters on one line, at most ``limit`` of them."""
    kept = "".join(
        ch if ch.isprintable() else " " if ch.isspace() else "" for ch in text[: 16 * limit]
    )
    return _WHITESPACE.sub(" ", kept).strip()[:limit].rstrip()


def shown_name(text: str, what: str) -> str:
    """:func:`clean_name`, logging once (per ``what`` and text) what was changed."""
    name = clean_name(text)
    if name != text.strip() and (what, text) not in _SAID:
        if len(_SAID) < _SAID_MAX:
            _SAID.add((what, text))
        removed = sum(1 for ch in text if not ch.isprintable() and not ch.isspace())
        changes = [f"{removed} control or direction character(s) removed"] if removed else []
        if len(_WHITESPACE.sub(" ", text).strip()) > MAX_NAME_LENGTH:
            changes.append(f"cut from {len(text)} to {len(name)} characters")
        if not changes:
            changes.append("line breaks and tabs made spaces")
        LOGGER.warning("%s %r is shown as %r (%s)", what, text[:40], name, "; ".join(changes))
    return name


def source_name(options: Mapping[str, Any], source: str) -> str:
    """The name entities use for ``source``: the options' name, else the readable id (either
    cleaned: :func:`clean_name`)."""
    names = options.get(CONF_SOURCE_NAMES) or {}
    name = names.get(source) if isinstance(names, Mapping) else None
    if name and (shown := shown_name(str(name), f"The name of source {source!r}")):
        return shown
    return shown_name(readable(source), f"The id of source {source!r}") or "?"
