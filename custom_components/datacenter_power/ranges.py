"""Circuit lists in words: "a01-a04, b02" instead of "a01, a02, a03, a04, b02".

A person on duty reads the plant status, the logbook and the phone at a glance; a hall's circuits
are numbered in runs, so runs of three or more consecutive ids are written as a range.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def _key(circuit: str) -> tuple[str, int, int, str]:
    match = _NUMBERED.match(circuit)
    if match is None:
        return circuit, -1, 0, circuit
    return match.group(1), len(match.group(2)), int(match.group(2)), circuit


def circuit_span(circuits: Iterable[str]) -> str:
    """The circuits sorted, with runs of three or more consecutive ids (same prefix and digit
    count) as ``first-last``; ``none`` when there are none."""
    keys = sorted({_key(c) for c in circuits})
    if not keys:
        return "none"
    parts: list[str] = []
    run: list[tuple[str, int, int, str]] = []

    def flush() -> None:
        if len(run) >= 3:
            parts.append(f"{run[0][3]}-{run[-1][3]}")
        else:
            parts.extend(k[3] for k in run)
        run.clear()

    for key in keys:
        prev = run[-1] if run else None
        if (
            prev is not None
            and key[1] >= 0
            and (key[0], key[1]) == (prev[0], prev[1])
            and key[2] == prev[2] + 1
        ):
            run.append(key)
            continue
        flush()
        run.append(key)
    flush()
    return ", ".join(parts)
