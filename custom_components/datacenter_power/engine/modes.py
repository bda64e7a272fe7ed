"""What each policy mode does with what the policy wants done: alert, propose or execute.

The one place that maps the integration's modes to outcomes; ``DecisionPolicy.decide`` applies it
and Home Assistant runs what comes out as ``Decisions.actions`` (it adds no rule of its own).

| mode        | alerts | failover rebalance | everything else (drain, relieve, restore)  |
| ----------- | ------ | ------------------ | ------------------------------------------ |
| `monitor`   | yes    | executed           | nothing (alert only)                       |
| `approval`  | yes    | executed           | proposed; executed once approved           |
| `automatic` | yes    | executed           | executed                                   |

The failover rebalance (after a sudden failure, when the bypass modules' own transfer has left an
element above its continuous limit) is the software half of the hardware's protection: the load
is already moving and something is overloaded now, so waiting for a person risks a breaker trip.
It runs in every mode, bounded and verified like any migration.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Final, Literal, Protocol

__all__ = ["ALWAYS_EXECUTED", "Mode", "split_by_mode"]

type Mode = Literal["monitor", "approval", "automatic"]

ALWAYS_EXECUTED: Final = frozenset({"rebalance"})
"""Action kinds executed in every mode (the failover rebalance)."""


class _Candidate(Protocol):
    """What the split reads of an action (``decisions.Action``; this module stays below it)."""

    @property
    def kind(self) -> str: ...
    @property
    def target(self) -> str | None: ...


def split_by_mode[A: _Candidate](
    mode: Mode, candidates: Iterable[A], approved: Collection[tuple[str, str | None]]
) -> tuple[list[A], list[A]]:
    """``(to execute now, to propose)`` of the policy's candidate actions under ``mode``.

    ``approved`` holds the ``(kind, target)`` pairs a person approved (approval mode).
    """
    actions: list[A] = []
    proposals: list[A] = []
    for act in candidates:
        if (
            act.kind in ALWAYS_EXECUTED
            or mode == "automatic"
            or (mode == "approval" and (act.kind, act.target) in approved)
        ):
            actions.append(act)
        elif mode == "approval":
            proposals.append(act)
    return actions, proposals
