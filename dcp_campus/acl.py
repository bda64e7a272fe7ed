"""Broker users and access rules of a campus: what each hall and the campus may publish and read.

The topic layout is the integration's (``custom_components/datacenter_power/campus_topics.py``,
repeated here so that this package needs no Home Assistant): a hall publishes only under
``dcp/<hall>/`` (its availability, states and command results) and its discovery configs under
``homeassistant/device/<hall>/``, and reads only ``dcp/<hall>/command``. The campus reads
everything and writes only the halls' command topics. Mosquitto denies anything else: a hall
cannot publish as another hall, nor read another hall's commands.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

TOPIC_ROOT: Final = "dcp"
DISCOVERY_PREFIX: Final = "homeassistant"
CAMPUS_USER: Final = "campus"
HALL_ID: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
"""A hall id: one topic level and a broker user name (lower case, digits, ``_`` and ``-``)."""


def check_hall(hall: str) -> str:
    """``hall`` when it is a valid hall id other than the campus user; else ``ValueError``."""
    if not HALL_ID.match(hall) or hall == CAMPUS_USER:
        raise ValueError(f"not a valid hall id: {hall!r} (a-z, 0-9, _ and -, at most 32)")
    return hall


def hall_rules(hall: str) -> list[str]:
    """The ACL lines of one hall's user (named like the hall)."""
    check_hall(hall)
    base = f"{TOPIC_ROOT}/{hall}"
    return [
        f"user {hall}",
        f"topic write {base}/availability",
        f"topic write {base}/result",
        f"topic write {base}/state/#",
        f"topic write {DISCOVERY_PREFIX}/device/{hall}/#",
        f"topic read {base}/command",
    ]


def campus_rules(user: str = CAMPUS_USER) -> list[str]:
    """The campus user: reads everything, writes only the halls' command topics."""
    return [f"user {user}", "topic read #", f"topic write {TOPIC_ROOT}/+/command"]


def render_acl(halls: Iterable[str], campus_user: str = CAMPUS_USER) -> str:
    """A Mosquitto ``acl_file`` for the campus and every hall (anything not listed is denied)."""
    blocks = [campus_rules(campus_user), *(hall_rules(h) for h in sorted(set(halls)))]
    return "\n\n".join("\n".join(lines) for lines in blocks) + "\n"
