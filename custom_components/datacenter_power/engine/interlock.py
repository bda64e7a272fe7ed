"""Command interlocks: may this switching command run now without dropping or overloading anything?

Every command that changes the power path (from the UI, an automation or the planner) is checked
here against the latest snapshot of the plant before it reaches a device. The rules follow the
plant's physics (docs/scenario-format.md, "Topology and switching"):

* a critical circuit must never be de-energised: no SBM output off on a critical circuit, no MPDU
  output off while a critical circuit draws from it (the SBMs would bypass, but only after their
  bypass delay, longer than the ~20 ms the IT power supplies ride through), no path change to an
  MPDU that is not energised;
* no ATS or MPDU may be pushed above its continuous limit (80 % of rating) by the command, counted
  with the circuit's present current;
* an ATS source change is an open transition: its output is interrupted for its transfer time
  (50-200 ms for a mechanical ATS), so a command that makes the ATS transfer (a new preferred
  source, or lifting the inhibit while it sits on a non-preferred source) is refused while
  critical circuits draw through it, unless its transfer time is within the ride-through;
* no load onto an MPDU that may take none now (it or its ATS is predicted to fail, has failed,
  or did not answer the last poll: ``risk.py``), unless the caller overrides that deliberately.

The SBM path change itself is make-before-break (the device guarantees that), so only the target
is checked. Every refusal names the element, the amps, and the circuits concerned, so a human can
see why. Pure and deterministic: no Home Assistant, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from .topology import Assignment, Topology

__all__ = [
    "DEFAULT_RIDE_THROUGH_MS",
    "AtsState",
    "InterlockState",
    "Reason",
    "Verdict",
    "check_ats_inhibit",
    "check_ats_preferred_source",
    "check_mpdu_output",
    "check_sbm_output",
    "check_sbm_path",
]

DEFAULT_RIDE_THROUGH_MS = 20.0
"""IT power supplies ride through about 20 ms of lost input (ITIC curve)."""

_EPS = 1e-9


class Reason(StrEnum):
    """Why a command is refused; the values double as translation-key suffixes."""

    UNKNOWN_ELEMENT = "unknown_element"
    """The target id is not part of the plant (or the option is not one of the device's)."""
    OVER_LIMIT = "over_limit"
    """An ATS or MPDU would end above its continuous limit."""
    CRITICAL_CIRCUIT_OFF = "critical_circuit_off"
    """Switching off an SBM output would de-energise a critical circuit."""
    CRITICAL_LOAD_ON_MPDU = "critical_load_on_mpdu"
    """Switching off an MPDU would interrupt the critical circuits drawing from it."""
    PATH_NOT_ENERGIZED = "path_not_energized"
    """The selected path's MPDU has no live output."""
    TRANSFER_INTERRUPTS = "transfer_interrupts"
    """The ATS would transfer, an interruption longer than the ride-through."""
    TARGET_AT_RISK = "target_at_risk"
    """The selected path's MPDU (or its ATS) is predicted to fail, failed or is not answering."""


@dataclass(frozen=True, slots=True)
class AtsState:
    """What the interlock needs to know about an ATS beyond the topology (from its reading)."""

    active_source: str | None
    """The connected source; None when none is."""
    preferred_source: str
    inhibit: bool
    available: frozenset[str]
    """Sources that are available now."""
    output_energized: bool
    measured_transfer_ms: float = 0.0
    """The last self-test's measured transfer time (0 if none yet); a worn ATS transfers slower
    than its nameplate, so the longer of the two is what a transfer would cost."""


@dataclass(frozen=True, slots=True)
class InterlockState:
    """The plant as the interlocks see it: one consistent snapshot."""

    topology: Topology
    assignment: Assignment
    """Circuit id -> the MPDU it draws from (None when off or dead)."""
    circuit_a: Mapping[str, float]
    """Present current of each circuit."""
    energized_mpdus: frozenset[str]
    ats: Mapping[str, AtsState] = field(default_factory=dict)
    selected_path: Mapping[str, str] = field(default_factory=dict)
    """Circuit id -> the path its SBM has selected, also when that path is dead or the output is
    off (then ``assignment`` says None). Defaults to the assignment."""
    demand_a: Mapping[str, float] = field(default_factory=dict)
    """Expected current of circuits that draw nothing now (off, or on a dead path), e.g. what they
    drew when last seen on. A circuit with neither a present current nor a demand here is
    assumed to draw its rating: the most its breaker carries continuously."""
    ride_through_ms: float = DEFAULT_RIDE_THROUGH_MS
    unknown: frozenset[str] = frozenset()
    """Circuits whose SBM did not answer: they may be drawing from any of their paths, so the
    interlocks treat them as drawing their demand through every one of them (the safe side).
    Also MPDUs that did not answer: switching one off is judged as if it were live."""
    at_risk: Mapping[str, str] = field(default_factory=dict)
    """MPDU -> why no load may move onto it now (``risk.refused_receivers``)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The interlock's answer: allowed, or refused with the element and the numbers."""

    allowed: bool
    reason: Reason | None = None
    element: str | None = None
    """The element that would be harmed (overloaded, de-energised, transferring)."""
    amps: float = 0.0
    """OVER_LIMIT: the excess over the limit; otherwise the critical current that would be
    interrupted."""
    load_a: float = 0.0
    """OVER_LIMIT: the element's current after the command."""
    limit_a: float = 0.0
    """OVER_LIMIT: the element's continuous limit."""
    circuits: tuple[str, ...] = ()
    """Critical circuits that would lose power."""
    transfer_ms: float = 0.0
    """TRANSFER_INTERRUPTS: the expected interruption."""
    ride_through_ms: float = DEFAULT_RIDE_THROUGH_MS
    target: str | None = None
    """The command's target (circuit, MPDU, ATS) when it differs from ``element``."""
    detail: str = ""
    """TARGET_AT_RISK: why the element may take no load."""

    @property
    def message(self) -> str:
        """One English sentence for logs and the planner's explanations."""
        if self.allowed:
            return "allowed"
        circuits = ", ".join(self.circuits)
        match self.reason:
            case Reason.OVER_LIMIT:
                return (
                    f"{self.element} would carry {self.load_a:.1f} A, {self.amps:.1f} A above "
                    f"its continuous limit of {self.limit_a:.1f} A"
                )
            case Reason.CRITICAL_CIRCUIT_OFF:
                return f"critical circuit {self.element} ({self.amps:.1f} A) would lose power"
            case Reason.CRITICAL_LOAD_ON_MPDU:
                return (
                    f"{self.element} feeds critical circuits {circuits} ({self.amps:.1f} A); "
                    "switching it off would interrupt them"
                )
            case Reason.PATH_NOT_ENERGIZED:
                return f"{self.element} is not energised; {self.target} would lose power"
            case Reason.TARGET_AT_RISK:
                return f"{self.target} would move onto {self.element}: {self.detail}"
            case Reason.TRANSFER_INTERRUPTS:
                return (
                    f"{self.element} would transfer, interrupting its output for about "
                    f"{self.transfer_ms:.0f} ms (ride-through {self.ride_through_ms:.0f} ms) "
                    f"while critical circuits {circuits} draw {self.amps:.1f} A through it"
                )
            case _:
                return f"{self.element} is not an option for {self.target}"

    def placeholders(self) -> dict[str, str]:
        """Values for a translated message (Home Assistant's ``translation_placeholders``)."""
        return {
            "element": self.element or "",
            "target": self.target or self.element or "",
            "amps": f"{self.amps:.1f}",
            "load": f"{self.load_a:.1f}",
            "limit": f"{self.limit_a:.1f}",
            "circuits": ", ".join(self.circuits),
            "transfer_ms": f"{self.transfer_ms:.0f}",
            "ride_through_ms": f"{self.ride_through_ms:.0f}",
            "detail": self.detail,
        }


ALLOWED = Verdict(allowed=True)


def _demand(state: InterlockState, circuit_id: str) -> float:
    """What a circuit draws, or would draw once powered."""
    present = float(state.circuit_a.get(circuit_id, 0.0))
    if present > 0.0:
        return present
    if circuit_id in state.demand_a:
        return float(state.demand_a[circuit_id])
    return state.topology.rating_a(circuit_id)


def _critical_through(state: InterlockState, element_id: str) -> list[str]:
    """Critical circuits drawing through an ATS or MPDU now, or perhaps drawing through it
    (unknown state, with a path through it)."""
    topo = state.topology
    drawing = set(topo.circuits_through(element_id, state.assignment))
    return [
        c.id
        for c in topo.circuits.values()
        if c.critical
        and (
            c.id in drawing
            or (c.id in state.unknown and any(topo.depends_on(p, element_id) for p in c.paths))
        )
    ]


def _critical_amps(state: InterlockState, circuits: list[str]) -> float:
    """The current those circuits draw (their demand when their state is unknown)."""
    total = sum(
        _demand(state, c) if c in state.unknown else float(state.circuit_a.get(c, 0.0))
        for c in circuits
    )
    return round(total, 6)


def _overload(
    state: InterlockState,
    after: Assignment,
    circuit_a: Mapping[str, float],
    elements: list[str],
    *,
    target: str,
) -> Verdict | None:
    """The first of ``elements`` the change pushes above its limit (or further above it)."""
    topo = state.topology
    before = topo.element_loads(state.assignment, state.circuit_a)
    loads = topo.element_loads(after, circuit_a)
    for e in elements:
        limit = topo.limit_a(e)
        if loads[e] > limit + _EPS and loads[e] > before[e] + _EPS:
            return Verdict(
                allowed=False,
                reason=Reason.OVER_LIMIT,
                element=e,
                amps=round(loads[e] - limit, 6),
                load_a=round(loads[e], 6),
                limit_a=limit,
                target=target,
            )
    return None


def _unknown(element: str, target: str) -> Verdict:
    return Verdict(allowed=False, reason=Reason.UNKNOWN_ELEMENT, element=element, target=target)


def check_sbm_path(
    state: InterlockState, circuit_id: str, mpdu_id: str, *, accept_risk: bool = False
) -> Verdict:
    """Select ``mpdu_id`` as the active path of ``circuit_id`` (make-before-break).

    ``accept_risk``: the caller moves the circuit onto an MPDU at risk deliberately (an operator's
    explicit override, or the engine's urgent hand-back); the other rules still apply."""
    topo = state.topology
    circuit = topo.circuits.get(circuit_id)
    if circuit is None:
        return _unknown(circuit_id, circuit_id)
    if mpdu_id not in circuit.paths:
        return _unknown(mpdu_id, circuit_id)
    current = state.assignment.get(circuit_id)
    if current == mpdu_id:
        return ALLOWED
    if mpdu_id not in state.energized_mpdus:
        return Verdict(
            allowed=False,
            reason=Reason.PATH_NOT_ENERGIZED,
            element=mpdu_id,
            amps=_demand(state, circuit_id),
            circuits=(circuit_id,) if circuit.critical else (),
            target=circuit_id,
        )
    risk = state.at_risk.get(mpdu_id)
    if risk is not None and not accept_risk:
        return Verdict(
            allowed=False,
            reason=Reason.TARGET_AT_RISK,
            element=mpdu_id,
            amps=_demand(state, circuit_id),
            circuits=(circuit_id,) if circuit.critical else (),
            target=circuit_id,
            detail=risk,
        )
    # A circuit that draws nothing now (off, or on a dead path) may draw once there: count it
    # with its expected demand, on the safe side.
    circuit_a = state.circuit_a
    if current is None:
        circuit_a = {**state.circuit_a, circuit_id: _demand(state, circuit_id)}
    after = {**state.assignment, circuit_id: mpdu_id}
    elements = [mpdu_id, topo.ats_of(mpdu_id)]
    return _overload(state, after, circuit_a, elements, target=circuit_id) or ALLOWED


def check_sbm_output(state: InterlockState, circuit_id: str, on: bool) -> Verdict:
    """Switch a circuit's SBM output on or off."""
    topo = state.topology
    circuit = topo.circuits.get(circuit_id)
    if circuit is None:
        return _unknown(circuit_id, circuit_id)
    current = state.assignment.get(circuit_id)
    if not on:
        if not circuit.critical or (current is None and circuit_id not in state.unknown):
            return ALLOWED
        return Verdict(
            allowed=False,
            reason=Reason.CRITICAL_CIRCUIT_OFF,
            element=circuit_id,
            amps=_critical_amps(state, [circuit_id]),
            circuits=(circuit_id,),
        )
    if current is not None:
        return ALLOWED  # already on and drawing
    path = state.selected_path.get(circuit_id)
    if path is None or path not in state.energized_mpdus:
        return ALLOWED  # nothing will flow (the SBM bypasses later; that move is its own)
    amps = _demand(state, circuit_id)
    after = {**state.assignment, circuit_id: path}
    circuit_a = {**state.circuit_a, circuit_id: amps}
    elements = [path, topo.ats_of(path)]
    return _overload(state, after, circuit_a, elements, target=circuit_id) or ALLOWED


def _bypass_target(state: InterlockState, circuit_id: str, dead: str) -> str | None:
    """Where a circuit's SBM goes when its active path ``dead`` dies: the first other live path."""
    paths = state.topology.circuits[circuit_id].paths
    return next((p for p in paths if p != dead and p in state.energized_mpdus), None)


def check_mpdu_output(state: InterlockState, mpdu_id: str, on: bool) -> Verdict:
    """Switch an MPDU's output on or off."""
    topo = state.topology
    if mpdu_id not in topo.mpdus:
        return _unknown(mpdu_id, mpdu_id)
    if not on:
        live = mpdu_id in state.energized_mpdus or mpdu_id in state.unknown
        # Critical circuits whose SBM selected it while it is dead (e.g. its source is out):
        # they draw from it again when power returns, unless its output is switched off.
        waiting = [
            c
            for c, path in state.selected_path.items()
            if not live
            and path == mpdu_id
            and state.assignment.get(c) is None
            and c in topo.circuits
            and topo.circuits[c].critical
        ]
        if not live and not waiting:
            return ALLOWED  # known to be dead or off, nothing waits on it: nothing changes
        critical = list(dict.fromkeys([*_critical_through(state, mpdu_id), *waiting]))
        if critical:
            return Verdict(
                allowed=False,
                reason=Reason.CRITICAL_LOAD_ON_MPDU,
                element=mpdu_id,
                amps=_critical_amps(state, critical),
                circuits=tuple(critical),
            )
        # The non-critical circuits on it bypass to their next live path: may that overload?
        after = dict(state.assignment)
        moved: list[str] = []
        for c in topo.circuits_through(mpdu_id, state.assignment):
            target = _bypass_target(state, c, mpdu_id)
            after[c] = target
            if target is not None:
                moved.append(target)
        elements = list(dict.fromkeys(e for m in moved for e in topo.upstream(m)))
        return _overload(state, after, state.circuit_a, elements, target=mpdu_id) or ALLOWED
    # On: circuits whose SBM has selected this MPDU but draw nothing now start to draw.
    ats = state.ats.get(topo.ats_of(mpdu_id))
    if mpdu_id in state.energized_mpdus or (ats is not None and not ats.output_energized):
        return ALLOWED
    waiting = [
        c
        for c, path in state.selected_path.items()
        if path == mpdu_id and state.assignment.get(c) is None and c in topo.circuits
    ]
    after = {**state.assignment, **dict.fromkeys(waiting, mpdu_id)}
    circuit_a = {**state.circuit_a, **{c: _demand(state, c) for c in waiting}}
    elements = [mpdu_id, topo.ats_of(mpdu_id)]
    return _overload(state, after, circuit_a, elements, target=mpdu_id) or ALLOWED


def _transfer_verdict(state: InterlockState, ats_id: str, ats: AtsState) -> Verdict:
    """Refuse a transfer of ``ats_id`` that critical circuits would not ride through."""
    nominal = state.topology.ats[ats_id].transfer_time_ms
    transfer_ms = max(nominal, ats.measured_transfer_ms)
    critical = _critical_through(state, ats_id)
    if not critical or transfer_ms <= state.ride_through_ms:
        return ALLOWED
    return Verdict(
        allowed=False,
        reason=Reason.TRANSFER_INTERRUPTS,
        element=ats_id,
        amps=_critical_amps(state, critical),
        circuits=tuple(critical),
        transfer_ms=transfer_ms,
        ride_through_ms=state.ride_through_ms,
    )


def _would_transfer(ats: AtsState, preferred: str, inhibit: bool, sources: tuple[str, ...]) -> bool:
    """Whether an ATS in this state moves off its live source now (the plant's rule: take the
    preferred source when available, else the first available; inhibit blocks discretionary
    transfers but never the move away from a lost source)."""
    if not ats.output_energized or ats.active_source is None:
        return False  # nothing to interrupt
    best = (
        preferred
        if preferred in ats.available
        else next((s for s in sources if s in ats.available), None)
    )
    if best is None or best == ats.active_source:
        return False
    return not inhibit


def check_ats_inhibit(state: InterlockState, ats_id: str, inhibit: bool) -> Verdict:
    """Inhibit (or allow again) an ATS's discretionary transfers.

    Inhibiting is always safe. Lifting the inhibit is safe unless the ATS sits on a source other
    than its available preferred one: then it retransfers at once, an open transition.
    """
    node = state.topology.ats.get(ats_id)
    if node is None:
        return _unknown(ats_id, ats_id)
    ats = state.ats.get(ats_id)
    if inhibit or ats is None or not ats.inhibit:
        return ALLOWED
    if not _would_transfer(ats, ats.preferred_source, False, node.sources):
        return ALLOWED
    return _transfer_verdict(state, ats_id, ats)


def check_ats_preferred_source(state: InterlockState, ats_id: str, source_id: str) -> Verdict:
    """Make ``source_id`` an ATS's preferred source; it transfers to it at once when that source
    is available, differs from the present one and transfers are not inhibited."""
    node = state.topology.ats.get(ats_id)
    if node is None:
        return _unknown(ats_id, ats_id)
    if source_id not in node.sources:
        return _unknown(source_id, ats_id)
    ats = state.ats.get(ats_id)
    if ats is None:
        # Without a reading nothing says the ATS would not transfer: assume it would.
        return _transfer_verdict(state, ats_id, _UNKNOWN_ATS)
    if not _would_transfer(ats, source_id, ats.inhibit, node.sources):
        return ALLOWED
    return _transfer_verdict(state, ats_id, ats)


_UNKNOWN_ATS = AtsState(
    active_source=None,
    preferred_source="",
    inhibit=False,
    available=frozenset(),
    output_energized=False,
)
