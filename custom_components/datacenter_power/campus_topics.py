"""The campus MQTT contract of a hall: its topics, and what a campus command may say.

A hall (one plant on one Home Assistant) publishes under ``dcp/<hall>/``: ``availability``
(``online``/``offline``, retained; also the Home Assistant MQTT client's birth and last will),
``state/<device>`` (one JSON document per ATS, MPDU and the hall itself, retained) and
``result`` (how the last command went). Its discovery configs are under
``homeassistant/device/<hall>/<device>/config``. It reads one topic, ``dcp/<hall>/command``,
where the only commands are ``approve`` and ``dismiss`` of a proposal by its id and the hall's run
in which it was shown (a proposal id is a hash of the plan: after a restart the hall may raise the
same id again, and an approval of what was shown before must not approve it). The broker's ACL
(``dcp_campus/acl.py``) allows exactly these topics; this module checks every command's payload
before anything is called. No Home Assistant imports: the tests and the broker tools share it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final

TOPIC_ROOT: Final = "dcp"
DISCOVERY_PREFIX: Final = "homeassistant"
ONLINE: Final = "online"
OFFLINE: Final = "offline"
HALL_ID: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
"""A hall id: one topic level and the hall's broker user name."""
RESERVED_HALLS: Final = frozenset({"campus"})
"""Names a hall cannot take (the campus's broker user)."""
ACTIONS: Final = ("approve", "dismiss")
"""Everything a campus can command: no switch, no path, no raw command."""
PROPOSAL_ID: Final = re.compile(r"^[0-9a-f]{10}$")
"""A proposal id (``proposals.proposal_id``: ten hex digits)."""
RUN: Final = re.compile(r"^[0-9a-f]{8}$")
"""A hall's run: a token made each time its campus publisher starts (``secrets.token_hex(4)``)."""
MAX_COMMAND_BYTES: Final = 512
REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def valid_hall(hall: str) -> bool:
    """Whether ``hall`` can name a hall (topic level, broker user)."""
    return bool(HALL_ID.match(hall)) and hall not in RESERVED_HALLS


def device_slug(plant_id: str) -> str:
    """A plant id as one topic level and discovery object id (``[a-zA-Z0-9_-]``)."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", plant_id)


@dataclass(frozen=True, slots=True)
class HallTopics:
    """The topics of one hall."""

    hall: str

    @property
    def base(self) -> str:
        """Everything the hall publishes is under this prefix."""
        return f"{TOPIC_ROOT}/{self.hall}"

    @property
    def availability(self) -> str:
        """``online``/``offline`` (retained): the hall's birth and last will."""
        return f"{self.base}/availability"

    @property
    def command(self) -> str:
        """The one topic the hall reads: approve or dismiss a proposal."""
        return f"{self.base}/command"

    @property
    def result(self) -> str:
        """What became of the last command (JSON, retained)."""
        return f"{self.base}/result"

    def state(self, slug: str) -> str:
        """One device's state document (JSON, retained); ``hall`` for the hall itself."""
        return f"{self.base}/state/{slug}"

    def discovery(self, slug: str) -> str:
        """One device's MQTT discovery config (device-based, retained)."""
        return f"{DISCOVERY_PREFIX}/device/{self.hall}/{slug}/config"


@dataclass(frozen=True, slots=True)
class Command:
    """A campus command that passed every check of its form."""

    action: str
    proposal_id: str
    run: str | None
    """The hall's run in which the proposal was shown (``check_run``: must be the current)."""
    request_id: str | None


class CommandRefused(ValueError):
    """A command payload that is not acted on, with the reason in words."""


def parse_command(hall: str, payload: str | bytes | bytearray) -> Command:
    """The command in ``payload`` addressed to ``hall``; ``CommandRefused`` with the reason for
    anything else (not JSON, another hall, an action that cannot be commanded, unknown fields).
    Whether its run is the hall's current one is ``check_run``'s to say."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandRefused(f"payload larger than {MAX_COMMAND_BYTES} bytes")
    try:
        doc = json.loads(payload)
    except ValueError, UnicodeDecodeError:
        raise CommandRefused("payload is not JSON") from None
    if not isinstance(doc, dict):
        raise CommandRefused("payload is not a JSON object")
    unknown = sorted(set(doc) - {"hall", "action", "proposal_id", "run", "request_id"})
    if unknown:
        raise CommandRefused(f"unknown field(s) {', '.join(map(str, unknown))}")
    if doc.get("hall") != hall:
        raise CommandRefused(f"addressed to hall {doc.get('hall')!r}, not to {hall!r}")
    action = doc.get("action")
    if action not in ACTIONS:
        raise CommandRefused(
            f"action {action!r} cannot be commanded over MQTT (only approve or dismiss)"
        )
    pid = doc.get("proposal_id")
    if not isinstance(pid, str) or not PROPOSAL_ID.match(pid):
        raise CommandRefused(f"proposal_id {pid!r} is not a proposal id")
    run = doc.get("run")
    if run is not None and (not isinstance(run, str) or not RUN.match(run)):
        raise CommandRefused(f"run {run!r} is not a hall's run (eight hex digits)")
    request_id = doc.get("request_id")
    if request_id is not None and (
        not isinstance(request_id, str) or not REQUEST_ID.match(request_id)
    ):
        raise CommandRefused("request_id must be up to 64 letters, digits or _.:-")
    return Command(str(action), pid, run, request_id)


def check_run(command: Command, run: str) -> None:
    """``CommandRefused`` unless ``command`` names the hall's current ``run``: a proposal shown
    before the hall restarted may have the same id as one open now (ids are hashes of the plan),
    and approving what the campus saw then must not approve what the hall raised since."""
    if command.run is None:
        raise CommandRefused(
            f"no run: the command does not say in which run of the hall proposal "
            f"{command.proposal_id} was shown, so it may have been shown before the hall "
            "restarted; send the run the hall publishes with the proposal"
        )
    if command.run != run:
        raise CommandRefused(
            f"the hall restarted since proposal {command.proposal_id} was shown (in run "
            f"{command.run}); approve or dismiss it as the hall shows it now"
        )


def command_payload(
    hall: str, action: str, proposal_id: str, run: str, request_id: str | None = None
) -> str:
    """The JSON a campus sends (the discovery buttons carry it as their press payload): the
    proposal as the hall showed it, its id and the hall's run."""
    doc: dict[str, str] = {
        "hall": hall,
        "action": action,
        "proposal_id": proposal_id,
        "run": run,
    }
    if request_id is not None:
        doc["request_id"] = request_id
    return json.dumps(doc, separators=(",", ":"))
