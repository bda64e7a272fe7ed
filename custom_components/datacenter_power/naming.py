"""Friendly names for the ids the plant's devices report.

A source (a utility feed, a generator) has no device of its own in Home Assistant, so the
entities that describe it on each ATS are named after it: by the name set in the options
(``source_names``), else by its id made readable (``util_a`` -> "Utility A", ``gen1`` ->
"Generator 1"). Entity names use it through their translation placeholders, as Home Assistant
does; the states keep the ids (automations and the select options use them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from .const import CONF_SOURCE_NAMES

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


def source_name(options: Mapping[str, Any], source: str) -> str:
    """The name entities use for ``source``: the options' name, else the readable id."""
    names = options.get(CONF_SOURCE_NAMES) or {}
    name = names.get(source) if isinstance(names, Mapping) else None
    return str(name).strip() if name and str(name).strip() else readable(source)
