"""The pieces of a best-effort re-split among one ATS's MPDUs (``DecisionRules._resplit``).

When a drained unit's receivers are forecast over a limit and no relief fits within the plan
margin, the rules may re-split the circuits among the MPDUs of one ATS (no ATS's load changes).
This module holds what that needs besides the rules' own bookkeeping: the topology the balanced
split is planned on, the one its stages are planned on, the utilisation the gain is measured
by, and the check that every stage stays within the limits on the measured load.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Final

import numpy as np

from .plan import Plan
from .plan_retries import relaxed_each
from .topology import Topology

__all__ = ["split_topology", "stages_within_limits", "staging_topology", "worst_util"]

_EPS: Final = 1e-9
_MPDU_RELAX: Final = 0.25
"""Fraction by which every MPDU rating is raised for the balanced split."""
_ATS_RELAX: Final = 10.0
"""... and every ATS rating (a re-split changes no ATS's load)."""


def split_topology(
    topo: Topology, assignment: Mapping[str, str | None], off: Collection[str]
) -> Topology:
    """The plant as the balanced split sees it: a circuit on an MPDU may go only to another
    MPDU of the same ATS that is not ``off`` (nor behind one), every other circuit keeps its
    path. The ATSs' ratings are raised out of the way of the balance (only the MPDUs' split is
    open), and every MPDU rating by the same fraction (the balanced split does not depend on
    it; a wide one lets the planner stage swaps between two full MPDUs on the forecast; the
    stages are checked on the measured load by :func:`stages_within_limits`)."""
    circuits = []
    for c, node in topo.circuits.items():
        p = assignment.get(c)
        if p is None or p not in topo.mpdus:
            circuits.append(node)
            continue
        mine = topo.ats_of(p)
        ways = (
            ()
            if set(topo.upstream(p)) & set(off)
            else tuple(q for q in node.paths if q != p and topo.ats_of(q) == mine and q not in off)
        )
        circuits.append(replace(node, paths=(p, *ways)))
    fracs = {x: _ATS_RELAX if x in topo.ats else _MPDU_RELAX for x in topo.elements}
    return relaxed_each(Topology.build(topo.ats.values(), topo.mpdus.values(), circuits), fracs)


def staging_topology(
    topo: Topology, assignment: Mapping[str, str | None], target: Mapping[str, str]
) -> Topology:
    """The plant as the stages of a chosen split see it: each circuit of ``target`` either stays
    or goes to its target MPDU, every other circuit on an MPDU stays where it is."""
    return Topology.build(
        topo.ats.values(),
        topo.mpdus.values(),
        [
            replace(node, paths=(str(assignment[c]), target[c]))
            if c in target
            else node
            if assignment.get(c) not in topo.mpdus
            else replace(node, paths=(str(assignment[c]),))
            for c, node in topo.circuits.items()
        ],
    )


def worst_util(
    topo: Topology,
    assignment: Mapping[str, str | None],
    profiles: Mapping[str, np.ndarray],
    elements: Collection[str],
) -> float:
    """The highest load over the profiles' window as a fraction of its limit, of ``elements``
    under ``assignment``."""
    total: dict[str, np.ndarray] = {}
    for c, p in assignment.items():
        if p is None or p not in topo.mpdus or c not in profiles:
            continue
        for x in topo.upstream(p):
            if x in elements:
                total[x] = total.get(x, 0.0) + profiles[c]
    return max(
        (float(np.max(v, initial=0.0)) / topo.limit_a(x) for x, v in total.items()),
        default=0.0,
    )


def stages_within_limits(
    topo: Topology, assignment: Mapping[str, str | None], plan: Plan, circuit_a: Mapping[str, float]
) -> bool:
    """Whether every stage of ``plan``, its moves in any order, keeps each element that takes
    load within its continuous limit on the measured loads."""
    lineup = dict(assignment)
    for step in plan.steps:
        loads = topo.element_loads(lineup, circuit_a)
        gain = dict.fromkeys(topo.elements, 0.0)
        for mv in step.moves:
            for x in set(topo.upstream(mv.to_mpdu)) - set(topo.upstream(mv.from_mpdu)):
                gain[x] += circuit_a.get(mv.circuit, 0.0)
        if any(g > 0 and loads[x] + g > topo.limit_a(x) + _EPS for x, g in gain.items()):
            return False
        lineup.update({mv.circuit: mv.to_mpdu for mv in step.moves})
    return True
