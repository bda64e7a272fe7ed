"""Which MPDUs may take no load now, and why: the receiver rule every switching path shares.

The policy never plans load onto an element that is predicted to fail, has failed or does not
answer (``PlantState.unavailable``); but a plan is executed over minutes and may outlive the
decision it was made on (a restart, a new alert between two stages). The migration executor's
stage check and the SBM path interlock therefore ask this module, at the moment they act, with
the latest decision's alerts and failures and the latest poll: a move onto an MPDU listed here
is refused (an operator can override it deliberately; the engine's urgent hand-back names the
units it accepts, see ``rules.DecisionRules._relief``). Pure: no Home Assistant, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection

from .decisions import Action, Decisions
from .topology import Topology

__all__ = ["accepted_risk", "refused_receivers", "risk_of"]


def risk_of(decisions: Decisions | None) -> tuple[frozenset[str], frozenset[str]]:
    """``(alerting, failed)`` ATS/MPDUs of a decision (nothing before the first one)."""
    if decisions is None:
        return frozenset(), frozenset()
    failed = frozenset(e for e, st in decisions.status.items() if st.failed)
    return decisions.alerts, failed


def refused_receivers(
    topology: Topology,
    *,
    alerts: Collection[str] = (),
    failed: Collection[str] = (),
    silent: Collection[str] = (),
) -> dict[str, str]:
    """MPDU -> why no load may move onto it: it or its ATS has failed, is predicted to fail
    (failure-risk alert on) or did not answer the last poll (no fresh telemetry)."""
    out: dict[str, str] = {}
    for element in topology.elements:
        if element in failed:
            why = f"{element} has failed"
        elif element in alerts:
            why = f"{element} is predicted to fail (failure-risk alert on)"
        elif element in silent:
            why = f"{element} did not answer the last poll (no fresh telemetry)"
        else:
            continue
        below = (element,) if element in topology.mpdus else topology.mpdus_of(element)
        for mpdu in below:
            out.setdefault(mpdu, why)
    return out


def accepted_risk(action: Action, alerts: Collection[str], topology: Topology) -> frozenset[str]:
    """The MPDUs an action loads although they (or their ATS) alert: only an urgent action does,
    as the rules' hand-backs (an element far above its limit now and no room elsewhere; drained
    load leaving an ATS on its alternate source before it retransfers: the reason says so). A
    non-urgent action accepts no unit at risk."""
    if not action.urgent:
        return frozenset()
    return frozenset(
        m.to_mpdu
        for m in action.plan.moves
        if m.to_mpdu in alerts or topology.ats_of(m.to_mpdu) in alerts
    )
