"""Scenario events as a sorted timeline of state transitions, plus wear severity.

The plant walks this timeline while stepping: every transition whose time falls in the step just
taken is applied before the physics of that step. Durations become a start and an end
transition; ends sort before starts at the same instant so back-to-back events chain cleanly.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .scenario import (
    AmbientExcursionEvent,
    CommsLossEvent,
    Scenario,
    SensorStuckEvent,
    SourceOutageEvent,
    SuddenFailureEvent,
    WearEvent,
)


class Action(IntEnum):
    """What a transition does to its target (end actions sort first)."""

    REPAIR = 0
    STUCK_END = 1
    COMMS_END = 2
    AMBIENT_END = 3
    FAIL = 10
    STUCK_START = 11
    COMMS_START = 12
    AMBIENT_START = 13


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of plant state at scenario time ``t_s``."""

    t_s: float
    action: Action
    target: str = ""
    value: float = 0.0
    """Degrees for ambient transitions."""
    wear: WearEvent | None = None
    """Set on the FAIL transition of a ``*_wear`` event (its failure is recorded in metrics)."""


def build_timeline(scenario: Scenario) -> list[Transition]:
    """All transitions of the scenario's events, sorted by time then by action."""
    out: list[Transition] = []

    def span(start: Transition, end_s: float | None, end: Action) -> None:
        out.append(start)
        if end_s is not None:
            out.append(Transition(end_s, end, start.target, -start.value))

    for event in scenario.events:
        match event:
            case WearEvent():
                end = (
                    None if event.repair_after_s is None else event.failure_s + event.repair_after_s
                )
                span(
                    Transition(event.failure_s, Action.FAIL, event.target, wear=event),
                    end,
                    Action.REPAIR,
                )
            case SuddenFailureEvent():
                end = None if event.repair_after_s is None else event.at_s + event.repair_after_s
                span(Transition(event.at_s, Action.FAIL, event.target), end, Action.REPAIR)
            case SourceOutageEvent():
                span(
                    Transition(event.at_s, Action.FAIL, event.target),
                    event.at_s + event.duration_s,
                    Action.REPAIR,
                )
            case AmbientExcursionEvent():
                span(
                    Transition(event.at_s, Action.AMBIENT_START, value=event.delta_c),
                    event.at_s + event.duration_s,
                    Action.AMBIENT_END,
                )
            case SensorStuckEvent():
                span(
                    Transition(event.at_s, Action.STUCK_START, event.target),
                    event.at_s + event.duration_s,
                    Action.STUCK_END,
                )
            case CommsLossEvent():
                span(
                    Transition(event.at_s, Action.COMMS_START, event.target),
                    event.at_s + event.duration_s,
                    Action.COMMS_END,
                )
            case _:  # load events are part of the load model
                pass
    out.sort(key=lambda tr: (tr.t_s, int(tr.action)))
    return out
