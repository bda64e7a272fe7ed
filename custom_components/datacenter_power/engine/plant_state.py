"""What the policy believes about every ATS/MPDU, kept up to date from observations.

Tracks per element: reachable, energised, failed (dead although fed: its own failure, not a lost
source upstream), the measured load, when it came back to life or was repaired, when load was last
relieved off it and when its alert cleared. The decision rules read these to decide what may
receive load and when a restore is stable enough.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .decisions import ElementStatus
from .observation import ElementObs
from .topology import Topology

__all__ = ["ElementState", "PlantState"]


@dataclass(slots=True)
class ElementState:
    """The policy's running view of one ATS/MPDU."""

    reachable: bool = True
    energized: bool = True
    failed: bool = False
    load_a: float = 0.0
    alive_since_s: float = -math.inf
    repaired_s: float | None = None
    relieved_s: float = -math.inf
    alert: bool = False
    alert_cleared_s: float = -math.inf


class PlantState:
    """Element states of one plant (no forecasting, no decisions)."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.elements = {e: ElementState() for e in topology.elements}
        self.ats_fed: dict[str, bool] = {}
        self.ats_on_alternate: dict[str, bool] = {}

    def observe_element(self, t: float, e: ElementObs) -> bool:
        """Update from one element reading; False when it was unreachable (nothing to learn)."""
        st = self.elements[e.id]
        st.reachable = e.reachable
        if not e.reachable:
            return False
        if e.energized and not st.energized:
            st.alive_since_s = t
        st.energized = e.energized
        if math.isfinite(e.current_a):
            st.load_a = e.current_a
        if e.kind == "ats":
            self.ats_fed[e.id] = e.sources_available
            self.ats_on_alternate[e.id] = e.on_alternate
        return True

    def update_failures(self) -> list[str]:
        """Mark elements failed when dead although fed; return those repaired (failed -> live)."""
        topo = self.topology
        repaired: list[str] = []
        for eid, st in self.elements.items():
            if not st.reachable:
                continue
            if eid in topo.ats:
                fed = self.ats_fed.get(eid, True)
            else:
                ats = self.elements[topo.ats_of(eid)]
                fed = ats.energized and ats.reachable
            was = st.failed
            st.failed = (not st.energized) and fed
            if was and not st.failed and st.energized:
                repaired.append(eid)
        return repaired

    def set_alerts(self, now_s: float, alerts: frozenset[str]) -> None:
        """Record which elements alert now (and when an alert cleared)."""
        for e, st in self.elements.items():
            if st.alert and e not in alerts:
                st.alert_cleared_s = now_s
            st.alert = e in alerts

    def dead(self) -> list[str]:
        """Elements that are failed or not energised."""
        return [e for e, st in self.elements.items() if st.failed or not st.energized]

    def unavailable(self, alerts: frozenset[str]) -> set[str]:
        """Elements that must not receive load: dead, alerting, unreachable (and below them)."""
        topo = self.topology
        bad: set[str] = set()
        for e, st in self.elements.items():
            if not st.reachable or not st.energized or st.failed or e in alerts:
                bad.add(e)
        for a in topo.ats:
            if a in bad:
                bad.update(topo.mpdus_of(a))
        return bad

    def on_alternate(self) -> set[str]:
        """ATSs running on an alternate source because their preferred one is lost, and their
        MPDUs: load placed there now is interrupted again when the ATS retransfers."""
        topo = self.topology
        out: set[str] = set()
        for a in topo.ats:
            st = self.elements[a]
            if self.ats_on_alternate.get(a, False) and st.reachable and st.energized:
                out.add(a)
                out.update(topo.mpdus_of(a))
        return out

    def silent(self) -> set[str]:
        """MPDUs that are only unreachable (comms), not failed: nobody needs to leave them."""
        topo = self.topology
        els = self.elements
        silent = {e for e, st in els.items() if not st.reachable and not st.failed}
        return {
            m for m in topo.mpdus if (m in silent or topo.ats_of(m) in silent) and not els[m].failed
        }

    def status(self, alerts: frozenset[str]) -> dict[str, ElementStatus]:
        """What the policy believes about every ATS/MPDU."""
        return {
            e: ElementStatus(
                reachable=st.reachable,
                energized=st.energized,
                failed=st.failed,
                alert=e in alerts,
                load_a=st.load_a,
                healthy_since_s=max(
                    -math.inf if st.repaired_s is None else st.repaired_s, st.alert_cleared_s
                ),
            )
            for e, st in self.elements.items()
        }
