"""The campus MQTT contract of a hall: its topics, and what a campus command may say.

A hall (one plant on one Home Assistant) publishes under ``dcp/<hall>/``: ``availability``
(``online``/``offline``, retained; also the Home Assistant MQTT client's birth and last will),
``state/<device>`` (one JSON document per ATS, MPDU and the hall itself, retained) and
``result`` (how the last command went); its open decisions (a person asked to choose) are one
more retained document, ``state/hall/decision`` (under ``state/``: the same ACL; a device slug
never holds a ``/``). Its discovery configs are under
``homeassistant/device/<hall>/<device>/config``. It reads one topic, ``dcp/<hall>/command``,
where the only commands are ``approve`` and ``dismiss`` of a proposal by its id, and ``answer``
of a decision by its id with one of its choices, each with the hall's run in which it was shown
(a proposal or decision id is a hash of what it is about: after a restart the hall may raise the
same id again, and an answer to what was shown before must not act on it). The broker's ACL
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
ACTIONS: Final = ("approve", "dismiss", "answer")
"""Everything a campus can command: no switch, no path, no raw command."""
ANSWER: Final = "answer"
"""The action on an open decision (``decision_id`` and ``choice``)."""
PROPOSAL_ID: Final = re.compile(r"^[0-9a-f]{10}$")
"""A proposal id (``proposals.proposal_id``: ten hex digits)."""
DECISION_ID: Final = re.compile(r"^[0-9a-f]{10}$")
"""A decision id (``engine.decisions.decision_id``: ten hex digits)."""
CHOICE: Final = re.compile(r"^[a-z_]{1,32}(?::[^\x00-\x1f\"'\\{}]{1,64})?$")
"""The form of a decision's choice key (``keep_load``, ``shed:<circuit>``): whether the decision
offers it is the ``answer_decision`` action's to say. No quote, backslash or brace: the campus
configs carry the key inside their templates."""
DECISION_SLUG: Final = "hall/decision"
"""The hall's decision document, ``state/hall/decision`` (a device slug never holds ``/``)."""
RUN: Final = re.compile(r"^[0-9a-f]{8}$")
"""A hall's run: a token made each time its campus publisher starts (``secrets.token_hex(4)``)."""
_COMMON: Final = frozenset({"hall", "action", "run", "request_id"})
_PROPOSAL: Final = frozenset({"proposal_id"})
_DECISION: Final = frozenset({"decision_id", "choice"})
"""A command's fields: every action's, a proposal's, an answer's."""
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
        """The one topic the hall reads: approve or dismiss a proposal, answer a decision."""
        return f"{self.base}/command"

    @property
    def result(self) -> str:
        """What became of the last command (JSON, retained)."""
        return f"{self.base}/result"

    def state(self, slug: str) -> str:
        """One device's state document (JSON, retained); ``hall`` for the hall itself."""
        return f"{self.base}/state/{slug}"

    @property
    def decision(self) -> str:
        """The hall's open decisions (JSON, retained)."""
        return self.state(DECISION_SLUG)

    def discovery(self, slug: str) -> str:
        """One device's MQTT discovery config (device-based, retained)."""
        return f"{DISCOVERY_PREFIX}/device/{self.hall}/{slug}/config"


@dataclass(frozen=True, slots=True)
class Command:
    """A campus command that passed every check of its form."""

    action: str
    proposal_id: str | None
    """The proposal approved or dismissed (``None`` for an answer)."""
    run: str | None
    """The hall's run in which the proposal or decision was shown (``check_run``: must be the
    current)."""
    request_id: str | None
    decision_id: str | None = None
    """The decision answered (``None`` for approve and dismiss)."""
    choice: str | None = None
    """The answer: one of the decision's choice keys."""

    @property
    def subject(self) -> str:
        """What the command is about, in words: ``proposal <id>`` or ``decision <id>``."""
        if self.decision_id is not None:
            return f"decision {self.decision_id}"
        return f"proposal {self.proposal_id}"


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
    unknown = sorted(set(doc) - {*_COMMON, *_PROPOSAL, *_DECISION})
    if unknown:
        raise CommandRefused(f"unknown field(s) {', '.join(map(str, unknown))}")
    if doc.get("hall") != hall:
        raise CommandRefused(f"addressed to hall {doc.get('hall')!r}, not to {hall!r}")
    action = doc.get("action")
    if action not in ACTIONS:
        raise CommandRefused(
            f"action {action!r} cannot be commanded over MQTT (only approve or dismiss a "
            "proposal, or answer a decision)"
        )
    others = sorted(set(doc) & (_PROPOSAL if action == ANSWER else _DECISION))
    if others:
        raise CommandRefused(f"unknown field(s) {', '.join(others)} for {action}")
    pid: str | None = None
    did: str | None = None
    choice: str | None = None
    if action == ANSWER:
        did, choice = doc.get("decision_id"), doc.get("choice")
        if not isinstance(did, str) or not DECISION_ID.match(did):
            raise CommandRefused(f"decision_id {did!r} is not a decision id")
        if not isinstance(choice, str) or not CHOICE.match(choice):
            raise CommandRefused(f"choice {choice!r} is not a choice key (e.g. keep_load)")
    else:
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
    return Command(str(action), pid, run, request_id, did, choice)


def check_run(command: Command, run: str) -> None:
    """``CommandRefused`` unless ``command`` names the hall's current ``run``: a proposal or
    decision shown before the hall restarted may have the same id as one open now (ids are
    hashes of what they are about), and acting on what the campus saw then must not act on what
    the hall raised since."""
    answer = command.decision_id is not None
    shown = "the decision" if answer else "the proposal"
    if command.run is None:
        raise CommandRefused(
            f"no run: the command does not say in which run of the hall {command.subject} "
            "was shown, so it may have been shown before the hall restarted; send the run the "
            f"hall publishes with {shown}"
        )
    if command.run != run:
        redo = "answer it" if answer else "approve or dismiss it"
        raise CommandRefused(
            f"the hall restarted since {command.subject} was shown (in run "
            f"{command.run}); {redo} as the hall shows it now"
        )


def _payload(
    hall: str, action: str, subject: dict[str, str], run: str, request_id: str | None
) -> str:
    doc = {"hall": hall, "action": action, **subject, "run": run}
    if request_id is not None:
        doc["request_id"] = request_id
    return json.dumps(doc, separators=(",", ":"))


def command_payload(
    hall: str, action: str, proposal_id: str, run: str, request_id: str | None = None
) -> str:
    """The JSON a campus sends (the discovery buttons carry it as their press payload): the
    proposal as the hall showed it, its id and the hall's run."""
    return _payload(hall, action, {"proposal_id": proposal_id}, run, request_id)


def answer_payload(
    hall: str, decision_id: str, choice: str, run: str, request_id: str | None = None
) -> str:
    """The JSON of an answer (the campus's answer buttons carry it as their press payload): the
    decision as the hall showed it, its id, one of its choice keys and the hall's run."""
    return _payload(hall, ANSWER, {"decision_id": decision_id, "choice": choice}, run, request_id)
