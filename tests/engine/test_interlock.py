"""The command interlocks: every rule, refused and allowed, with the exact numbers it reports."""

from __future__ import annotations

from dataclasses import replace

import pytest

from custom_components.datacenter_power.engine.interlock import (
    AtsState,
    InterlockState,
    Reason,
    Verdict,
    check_ats_inhibit,
    check_ats_preferred_source,
    check_mpdu_output,
    check_sbm_output,
    check_sbm_path,
)
from custom_components.datacenter_power.engine.risk import refused_receivers
from custom_components.datacenter_power.engine.topology import (
    AtsNode,
    CircuitNode,
    MpduNode,
    Topology,
)

# ats1 (limit 32 A) feeds mpdu1 and mpdu3, ats2 (limit 80 A) feeds mpdu2, ats3 is a static
# transfer switch (4 ms) feeding mpdu4. Every MPDU has a 40 A continuous limit.
TOPO = Topology.build(
    [
        AtsNode("ats1", ("util_a", "util_b"), 40, transfer_time_ms=100),
        AtsNode("ats2", ("util_b", "util_a"), 100, transfer_time_ms=100),
        AtsNode("ats3", ("util_a", "util_b"), 100, transfer_time_ms=4),
    ],
    [
        MpduNode("mpdu1", "ats1", 50),
        MpduNode("mpdu2", "ats2", 50),
        MpduNode("mpdu3", "ats1", 50),
        MpduNode("mpdu4", "ats3", 50),
    ],
    [
        CircuitNode("c01", ("mpdu1", "mpdu2"), 16),
        CircuitNode("c02", ("mpdu2", "mpdu1"), 16),
        CircuitNode("c03", ("mpdu1", "mpdu2"), 16, critical=False),
        CircuitNode("c04", ("mpdu2", "mpdu1"), 32),
        CircuitNode("c05", ("mpdu3", "mpdu1"), 16, critical=False),
        CircuitNode("c08", ("mpdu2",), 50),
        CircuitNode("c09", ("mpdu4",), 16),
    ],
)
LIVE = AtsState(
    active_source="util_a",
    preferred_source="util_a",
    inhibit=False,
    available=frozenset({"util_a", "util_b"}),
    output_energized=True,
)
# Loads: mpdu1 18 A, mpdu2 32 A, mpdu3 6 A, mpdu4 5 A; ats1 24 A, ats2 32 A, ats3 5 A.
BASE = InterlockState(
    topology=TOPO,
    assignment={
        "c01": "mpdu1",
        "c02": "mpdu2",
        "c03": "mpdu1",
        "c04": "mpdu2",
        "c05": "mpdu3",
        "c08": None,
        "c09": "mpdu4",
    },
    circuit_a={"c01": 10, "c02": 12, "c03": 8, "c04": 20, "c05": 6, "c08": 0, "c09": 5},
    energized_mpdus=frozenset({"mpdu1", "mpdu2", "mpdu3", "mpdu4"}),
    ats={
        "ats1": LIVE,
        "ats2": replace(LIVE, active_source="util_b", preferred_source="util_b"),
        "ats3": LIVE,
    },
    selected_path={"c08": "mpdu2"},
    demand_a={"c08": 0.0},
)


def _off(state: InterlockState, circuit: str) -> InterlockState:
    """The same plant with ``circuit`` switched off (it draws nothing)."""
    return replace(
        state,
        assignment={**state.assignment, circuit: None},
        circuit_a={**state.circuit_a, circuit: 0.0},
        selected_path={**state.selected_path, circuit: TOPO.circuits[circuit].normal_path},
    )


def _over(element: str, amps: float, load: float, limit: float, target: str) -> Verdict:
    return Verdict(
        allowed=False,
        reason=Reason.OVER_LIMIT,
        element=element,
        amps=amps,
        load_a=load,
        limit_a=limit,
        target=target,
    )


ALLOWED = Verdict(allowed=True)

# -- SBM path select -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "circuit", "path", "expected"),
    [
        # 32 + 10 = 42 A on mpdu2, 2 A above its 40 A limit.
        (BASE, "c01", "mpdu2", _over("mpdu2", 2.0, 42.0, 40.0, "c01")),
        # mpdu1 18 + 20 = 38 A is fine, but ats1 24 + 20 = 44 A is 12 A above its 32 A limit.
        (BASE, "c04", "mpdu1", _over("ats1", 12.0, 44.0, 32.0, "c04")),
        # Exactly at the limit is allowed: mpdu2 32 + 8 = 40 A.
        (BASE, "c03", "mpdu2", ALLOWED),
        # Inside one ATS: ats1 is unchanged, mpdu1 18 + 6 = 24 A.
        (BASE, "c05", "mpdu1", ALLOWED),
        # The present path: nothing to do.
        (BASE, "c01", "mpdu1", ALLOWED),
        # ats1 is already above its limit (20 + 8 + 6 = 34 A > 32 A); a move inside it does not
        # add to it, so it is allowed (mpdu1 ends at 34 A < 40 A).
        (replace(BASE, circuit_a={**BASE.circuit_a, "c01": 20}), "c05", "mpdu1", ALLOWED),
        # An off circuit counts with its demand when known (8 A: mpdu2 at 40 A, allowed) ...
        (replace(_off(BASE, "c03"), demand_a={"c03": 8}), "c03", "mpdu2", ALLOWED),
        # ... else with its 16 A rating: 48 A on mpdu2, 8 A over.
        (_off(BASE, "c03"), "c03", "mpdu2", _over("mpdu2", 8.0, 48.0, 40.0, "c03")),
    ],
    ids=[
        "mpdu-over",
        "ats-over",
        "at-limit",
        "same-ats",
        "no-op",
        "already-over-not-worse",
        "off-demand",
        "off-rating",
    ],
)
def test_sbm_path_limits(state: InterlockState, circuit: str, path: str, expected: Verdict) -> None:
    assert check_sbm_path(state, circuit, path) == expected


def test_sbm_path_to_dead_mpdu_is_refused() -> None:
    state = replace(BASE, energized_mpdus=frozenset({"mpdu1", "mpdu3", "mpdu4"}))
    verdict = check_sbm_path(state, "c01", "mpdu2")
    assert verdict == Verdict(
        allowed=False,
        reason=Reason.PATH_NOT_ENERGIZED,
        element="mpdu2",
        amps=10.0,
        circuits=("c01",),
        target="c01",
    )
    assert verdict.message == "mpdu2 is not energised; c01 would lose power"
    # A non-critical circuit is refused too (the device would refuse it), naming no critical one.
    assert check_sbm_path(state, "c03", "mpdu2").circuits == ()


@pytest.mark.parametrize(
    ("circuit", "path", "element"),
    [("zz", "mpdu1", "zz"), ("c01", "mpdu3", "mpdu3"), ("c01", "nope", "nope")],
)
def test_sbm_path_unknown(circuit: str, path: str, element: str) -> None:
    verdict = check_sbm_path(BASE, circuit, path)
    assert (verdict.allowed, verdict.reason, verdict.element) == (
        False,
        Reason.UNKNOWN_ELEMENT,
        element,
    )
    assert verdict.target == circuit
    assert verdict.message == f"{element} is not an option for {circuit}"


# -- SBM output ------------------------------------------------------------------------------


def test_sbm_output_off_on_critical_circuit_is_refused() -> None:
    verdict = check_sbm_output(BASE, "c04", False)
    assert verdict == Verdict(
        allowed=False,
        reason=Reason.CRITICAL_CIRCUIT_OFF,
        element="c04",
        amps=20.0,
        circuits=("c04",),
    )
    assert verdict.message == "critical circuit c04 (20.0 A) would lose power"


@pytest.mark.parametrize(
    ("state", "circuit", "on", "expected"),
    [
        (BASE, "c03", False, ALLOWED),  # not critical
        (_off(BASE, "c01"), "c01", False, ALLOWED),  # already off
        (BASE, "c01", True, ALLOWED),  # already on
        # On again: mpdu2 32 + 8 = 40 A with its known demand ...
        (replace(_off(BASE, "c03"), selected_path={"c03": "mpdu2"}, demand_a={"c03": 8}), "c03",
         True, ALLOWED),
        # ... 32 + 16 = 48 A with its rating when the demand is unknown.
        (replace(_off(BASE, "c03"), selected_path={"c03": "mpdu2"}), "c03", True,
         _over("mpdu2", 8.0, 48.0, 40.0, "c03")),
        # Its selected path is dead: nothing flows.
        (replace(_off(BASE, "c03"), selected_path={"c03": "mpdu2"},
                 energized_mpdus=frozenset({"mpdu1"})), "c03", True, ALLOWED),
        # The selected path is unknown: nothing to check against.
        (replace(_off(BASE, "c03"), selected_path={}), "c03", True, ALLOWED),
    ],
    ids=["non-critical", "already-off", "already-on", "on-demand", "on-rating", "on-dead",
         "on-unknown-path"],
)  # fmt: skip
def test_sbm_output(state: InterlockState, circuit: str, on: bool, expected: Verdict) -> None:
    assert check_sbm_output(state, circuit, on) == expected


def test_sbm_output_unknown_circuit() -> None:
    assert check_sbm_output(BASE, "zz", False).reason is Reason.UNKNOWN_ELEMENT


# -- MPDU output -----------------------------------------------------------------------------


def test_mpdu_off_with_critical_load_is_refused() -> None:
    """The SBMs would bypass, but after their bypass delay: longer than the ride-through."""
    verdict = check_mpdu_output(BASE, "mpdu2", False)
    assert verdict == Verdict(
        allowed=False,
        reason=Reason.CRITICAL_LOAD_ON_MPDU,
        element="mpdu2",
        amps=32.0,
        circuits=("c02", "c04"),
    )
    assert verdict.message == (
        "mpdu2 feeds critical circuits c02, c04 (32.0 A); switching it off would interrupt them"
    )


def test_mpdu_off_is_refused_while_critical_circuits_wait_on_it() -> None:
    """mpdu2 is dead (its source is out) and critical c08 still selects it: switching its output
    off would keep c08 off when power returns (the 48 h soak, seed 4: an isolate of a dead
    MPDU left its critical circuits off after the outage)."""
    dead = replace(BASE, energized_mpdus=frozenset({"mpdu1", "mpdu3"}))
    verdict = check_mpdu_output(dead, "mpdu2", False)
    assert verdict.reason is Reason.CRITICAL_LOAD_ON_MPDU
    assert "c08" in verdict.circuits


def test_mpdu_off_is_judged_as_live_when_it_did_not_answer() -> None:
    """mpdu2's own reading is missing (so it is not among the energised MPDUs), but its
    circuits report drawing from it: an off command is refused as for a live one (it was
    allowed as "already off", and switched critical circuits off in the soak)."""
    silent = replace(BASE, energized_mpdus=BASE.energized_mpdus - {"mpdu2"}, selected_path={})
    assert check_mpdu_output(silent, "mpdu2", False) == ALLOWED  # known dead: nothing changes
    unknown = replace(silent, unknown=frozenset({"mpdu2"}))
    verdict = check_mpdu_output(unknown, "mpdu2", False)
    assert verdict.reason is Reason.CRITICAL_LOAD_ON_MPDU
    assert verdict.circuits == ("c02", "c04")


@pytest.mark.parametrize(
    ("state", "mpdu", "on", "expected"),
    [
        # Only non-critical c05 (6 A) on mpdu3; it bypasses to mpdu1: 24 A there, fine.
        (BASE, "mpdu3", False, ALLOWED),
        # With c05 at 25 A, its bypass would put mpdu1 at 10 + 8 + 25 = 43 A: 3 A over.
        (replace(BASE, circuit_a={**BASE.circuit_a, "c05": 25}), "mpdu3", False,
         _over("mpdu1", 3.0, 43.0, 40.0, "mpdu3")),
        # c05 has no other live path: it loses power, which is allowed for a non-critical one.
        (replace(BASE, energized_mpdus=frozenset({"mpdu2", "mpdu3"}),
                 assignment={"c05": "mpdu3"}), "mpdu3", False, ALLOWED),
        # Already off, nothing waiting on it.
        (replace(BASE, energized_mpdus=frozenset({"mpdu1"}), selected_path={}), "mpdu2", False,
         ALLOWED),
        # Already on.
        (BASE, "mpdu2", True, ALLOWED),
    ],
    ids=["bypass-fits", "bypass-overloads", "bypass-nowhere", "already-off", "already-on"],
)  # fmt: skip
def test_mpdu_output(state: InterlockState, mpdu: str, on: bool, expected: Verdict) -> None:
    assert check_mpdu_output(state, mpdu, on) == expected


# mpdu2 is off; its circuits c02 and c04 bypassed to mpdu1; c08 (only path mpdu2) waits on it.
MPDU2_OFF = replace(
    BASE,
    assignment={**BASE.assignment, "c02": "mpdu1", "c04": "mpdu1"},
    energized_mpdus=frozenset({"mpdu1", "mpdu3", "mpdu4"}),
    selected_path={"c08": "mpdu2"},
    demand_a={},
)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        # c08's demand is unknown: its 50 A rating is 10 A over mpdu2's 40 A limit.
        (MPDU2_OFF, _over("mpdu2", 10.0, 50.0, 40.0, "mpdu2")),
        # With a known demand of 30 A it fits (ats2 at 30 A too).
        (replace(MPDU2_OFF, demand_a={"c08": 30}), ALLOWED),
        # Its ATS is dead: switching the MPDU on energises nothing.
        (replace(MPDU2_OFF, ats={"ats2": replace(LIVE, output_energized=False)}), ALLOWED),
    ],
    ids=["waiting-rating", "waiting-demand", "ats-dead"],
)
def test_mpdu_on_counts_waiting_circuits(state: InterlockState, expected: Verdict) -> None:
    assert check_mpdu_output(state, "mpdu2", True) == expected


def test_mpdu_output_unknown() -> None:
    assert check_mpdu_output(BASE, "mpdu9", True).reason is Reason.UNKNOWN_ELEMENT


# -- ATS preferred source and inhibit ------------------------------------------------------


def _transfer(ats: str, amps: float, circuits: tuple[str, ...], ms: float) -> Verdict:
    return Verdict(
        allowed=False,
        reason=Reason.TRANSFER_INTERRUPTS,
        element=ats,
        amps=amps,
        circuits=circuits,
        transfer_ms=ms,
        ride_through_ms=20.0,
    )


def test_preferred_source_change_that_transfers_is_refused() -> None:
    verdict = check_ats_preferred_source(BASE, "ats1", "util_b")
    assert verdict == _transfer("ats1", 10.0, ("c01",), 100.0)
    assert verdict.message == (
        "ats1 would transfer, interrupting its output for about 100 ms (ride-through 20 ms) "
        "while critical circuits c01 draw 10.0 A through it"
    )


@pytest.mark.parametrize(
    ("state", "ats", "source", "expected"),
    [
        # A worn ATS: its last self-test measured 160 ms, which is what a transfer would cost.
        (replace(BASE, ats={"ats1": replace(LIVE, measured_transfer_ms=160)}), "ats1", "util_b",
         _transfer("ats1", 10.0, ("c01",), 160.0)),
        # ats2 carries critical c02 + c04 = 32 A.
        (BASE, "ats2", "util_a", _transfer("ats2", 32.0, ("c02", "c04"), 100.0)),
        # A static transfer switch (4 ms) is within the 20 ms ride-through.
        (BASE, "ats3", "util_b", ALLOWED),
        # ... but not beyond a (hypothetical) 3 ms ride-through.
        (replace(BASE, ride_through_ms=3.0), "ats3", "util_b",
         replace(_transfer("ats3", 5.0, ("c09",), 4.0), ride_through_ms=3.0)),
        # Already on that source: no transfer.
        (BASE, "ats1", "util_a", ALLOWED),
        # Inhibited: the preference is stored, no transfer now.
        (replace(BASE, ats={"ats1": replace(LIVE, inhibit=True)}), "ats1", "util_b", ALLOWED),
        # The new preferred source is not available: no transfer.
        (replace(BASE, ats={"ats1": replace(LIVE, available=frozenset({"util_a"}))}), "ats1",
         "util_b", ALLOWED),
        # The ATS has no live output: nothing to interrupt.
        (replace(BASE, ats={"ats1": replace(LIVE, output_energized=False)}), "ats1", "util_b",
         ALLOWED),
        # No critical circuit through ats1 (c01 moved away): allowed.
        (replace(BASE, assignment={**BASE.assignment, "c01": "mpdu2"}), "ats1", "util_b",
         ALLOWED),
        # No reading of the ATS: assume it would transfer.
        (replace(BASE, ats={}), "ats1", "util_b", _transfer("ats1", 10.0, ("c01",), 100.0)),
    ],
    ids=["worn", "ats2", "sts", "short-ride-through", "same", "inhibited", "unavailable",
         "dead", "no-critical", "no-reading"],
)  # fmt: skip
def test_preferred_source(state: InterlockState, ats: str, source: str, expected: Verdict) -> None:
    assert check_ats_preferred_source(state, ats, source) == expected


@pytest.mark.parametrize(("ats", "source"), [("ats9", "util_a"), ("ats1", "util_z")])
def test_preferred_source_unknown(ats: str, source: str) -> None:
    verdict = check_ats_preferred_source(BASE, ats, source)
    assert verdict.reason is Reason.UNKNOWN_ELEMENT
    assert (verdict.element, verdict.target) == (source if ats == "ats1" else ats, ats)


# ats1 sits on util_b (it transferred during an outage of util_a, now back) with the inhibit on.
ON_B = replace(LIVE, active_source="util_b", inhibit=True)


@pytest.mark.parametrize(
    ("ats_state", "inhibit", "expected"),
    [
        # Inhibiting is always allowed, even where lifting it would not be.
        (ON_B, True, ALLOWED),
        (LIVE, True, ALLOWED),
        # Lifting it makes ats1 retransfer to util_a at once: refused.
        (ON_B, False, _transfer("ats1", 10.0, ("c01",), 100.0)),
        # On its preferred source already: nothing happens.
        (replace(LIVE, inhibit=True), False, ALLOWED),
        # The preferred source is still down: no retransfer.
        (replace(ON_B, available=frozenset({"util_b"})), False, ALLOWED),
        # Not inhibited now: nothing changes.
        (replace(ON_B, inhibit=False), False, ALLOWED),
        # No source connected (both down): nothing to interrupt.
        (replace(ON_B, active_source=None, available=frozenset()), False, ALLOWED),
    ],
    ids=["on", "on-idle", "off-retransfers", "off-on-preferred", "off-preferred-down",
         "off-not-inhibited", "off-no-source"],
)  # fmt: skip
def test_ats_inhibit(ats_state: AtsState, inhibit: bool, expected: Verdict) -> None:
    state = replace(BASE, ats={"ats1": ats_state})
    assert check_ats_inhibit(state, "ats1", inhibit) == expected


def test_ats_inhibit_unknown_and_unread() -> None:
    assert check_ats_inhibit(BASE, "ats9", False).reason is Reason.UNKNOWN_ELEMENT
    # Without a reading the inhibit cannot be on as far as we know: lifting it changes nothing.
    assert check_ats_inhibit(replace(BASE, ats={}), "ats1", False) == ALLOWED


# -- units at risk (issue 20) ----------------------------------------------------------------


def test_sbm_path_onto_a_unit_at_risk_needs_the_override() -> None:
    """mpdu3 sits under ats1, which is predicted to fail: c05 may not move onto it, unless the
    caller accepts that deliberately (then the other rules still apply); a circuit already
    there, or a path not at risk, is unaffected."""
    at_risk = refused_receivers(TOPO, alerts={"ats1"})
    assert at_risk == {
        "mpdu1": "ats1 is predicted to fail (failure-risk alert on)",
        "mpdu3": "ats1 is predicted to fail (failure-risk alert on)",
    }
    state = replace(BASE, at_risk=at_risk)
    verdict = check_sbm_path(state, "c02", "mpdu1")
    assert verdict.reason is Reason.TARGET_AT_RISK
    assert verdict.element == "mpdu1"
    assert verdict.target == "c02"
    assert verdict.message == (
        "c02 would move onto mpdu1: ats1 is predicted to fail (failure-risk alert on)"
    )
    assert verdict.placeholders()["detail"] == "ats1 is predicted to fail (failure-risk alert on)"
    # Accepted: every other rule still applies (12 A more would take ats1 above 32 A) ...
    assert check_sbm_path(state, "c02", "mpdu1", accept_risk=True).reason is Reason.OVER_LIMIT
    # ... and 4 A fit.
    light = replace(state, circuit_a={**BASE.circuit_a, "c02": 4})
    assert check_sbm_path(light, "c02", "mpdu1").reason is Reason.TARGET_AT_RISK
    assert check_sbm_path(light, "c02", "mpdu1", accept_risk=True) == ALLOWED
    assert check_sbm_path(state, "c01", "mpdu1") == ALLOWED  # already there
    assert check_sbm_path(state, "c03", "mpdu2") == ALLOWED  # mpdu2 is not at risk


def test_refused_receivers_says_why_failed_first() -> None:
    refused = refused_receivers(TOPO, alerts={"mpdu2"}, failed={"ats3"}, silent={"mpdu1"})
    assert refused == {
        "mpdu1": "mpdu1 did not answer the last poll (no fresh telemetry)",
        "mpdu2": "mpdu2 is predicted to fail (failure-risk alert on)",
        "mpdu4": "ats3 has failed",
    }


# -- messages --------------------------------------------------------------------------------


def test_over_limit_message_and_placeholders() -> None:
    verdict = check_sbm_path(BASE, "c04", "mpdu1")
    assert verdict.message == "ats1 would carry 44.0 A, 12.0 A above its continuous limit of 32.0 A"
    assert verdict.placeholders() == {
        "element": "ats1",
        "target": "c04",
        "amps": "12.0",
        "load": "44.0",
        "limit": "32.0",
        "circuits": "",
        "transfer_ms": "0",
        "ride_through_ms": "20",
        "detail": "",
    }


def test_allowed_message_and_transfer_placeholders() -> None:
    assert ALLOWED.message == "allowed"
    placeholders = check_ats_preferred_source(BASE, "ats2", "util_a").placeholders()
    assert placeholders["circuits"] == "c02, c04"
    assert placeholders["target"] == "ats2"
    assert (placeholders["amps"], placeholders["transfer_ms"]) == ("32.0", "100")


# -- circuits whose SBM did not answer -------------------------------------------------------

# c01's SBM is silent: it may draw from mpdu1 or mpdu2; its last known current was 10 A.
C01_UNKNOWN = replace(
    BASE,
    assignment={**BASE.assignment, "c01": None},
    circuit_a={k: v for k, v in BASE.circuit_a.items() if k != "c01"},
    unknown=frozenset({"c01"}),
    demand_a={"c01": 10.0},
)


def test_unknown_critical_circuit_is_assumed_on() -> None:
    assert check_sbm_output(C01_UNKNOWN, "c01", False) == Verdict(
        allowed=False,
        reason=Reason.CRITICAL_CIRCUIT_OFF,
        element="c01",
        amps=10.0,
        circuits=("c01",),
    )
    # mpdu1 has no known critical load now, but c01 may be on it (its demand, else its rating).
    assert check_mpdu_output(C01_UNKNOWN, "mpdu1", False) == Verdict(
        allowed=False,
        reason=Reason.CRITICAL_LOAD_ON_MPDU,
        element="mpdu1",
        amps=10.0,
        circuits=("c01",),
    )
    no_demand = replace(C01_UNKNOWN, demand_a={})
    assert check_mpdu_output(no_demand, "mpdu1", False).amps == 16.0
    # ... and through ats1 (and ats2, next to the critical c02 and c04 there).
    assert check_ats_preferred_source(C01_UNKNOWN, "ats1", "util_b") == _transfer(
        "ats1", 10.0, ("c01",), 100.0
    )
    assert check_ats_preferred_source(C01_UNKNOWN, "ats2", "util_a") == _transfer(
        "ats2", 42.0, ("c01", "c02", "c04"), 100.0
    )
    # A non-critical silent circuit does not hold anything up.
    c03 = replace(BASE, assignment={**BASE.assignment, "c03": None}, unknown=frozenset({"c03"}))
    assert check_sbm_output(c03, "c03", False) == ALLOWED
