"""Which of the policy's actions to run now, given what is already running.

One rule for every caller: Home Assistant's forecasting coordinator and the evaluation harness
both ask :func:`dispatch`, so the controller that is evaluated starts, queues and preempts actions
exactly as the one that ships.

The rule:

* The candidates are the decision's ``actions`` (in the policy's order of priority) followed by
  any ``rebalance`` in its ``proposals``: a rebalance after a sudden failure runs in every mode,
  because the plant is already in trouble and the SBMs' own bypass has moved load.
* Only the first candidate is considered; only one action runs at a time.
* Nothing running: start it.
* A non-urgent policy action running and the candidate urgent (something is above its
  continuous limit now, or load must be rebalanced after a failure): preempt. The running action
  is asked to stop at its next safe point (after its stage in progress is verified or rolled
  back, never in the middle of one) and the urgent one starts as soon as it has stopped. A
  person's migration is never preempted.
* Anything else running: start nothing (the policy proposes again on a later tick).
"""

from __future__ import annotations

from dataclasses import dataclass

from .policy import Action, Decisions

__all__ = ["Dispatch", "candidates", "dispatch"]


@dataclass(frozen=True, slots=True)
class Dispatch:
    """What the caller should do now."""

    start: Action | None = None
    """The action to start (None: nothing)."""
    preempt: bool = False
    """Stop the running action at its next safe point first, then start ``start``."""


def candidates(decisions: Decisions) -> tuple[Action, ...]:
    """The actions that may run, in order: the policy's orders, then rebalance proposals."""
    return (*decisions.actions, *(a for a in decisions.proposals if a.kind == "rebalance"))


def dispatch(
    decisions: Decisions, running: Action | None, *, manual_running: bool = False
) -> Dispatch:
    """Apply the rule of this module.

    ``running`` is the policy action being executed (None when none is); ``manual_running`` says
    that a migration a person started is in progress (it is never preempted).
    """
    chosen = candidates(decisions)
    if not chosen:
        return Dispatch()
    first = chosen[0]
    if manual_running:
        return Dispatch()
    if running is None:
        return Dispatch(start=first)
    if first.urgent and not running.urgent:
        return Dispatch(start=first, preempt=True)
    return Dispatch()
