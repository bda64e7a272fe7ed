"""The decision rules: what to do about alerts, predicted overloads, failures and repairs.

In order of precedence at each tick:

1. **urgent** (``relieve`` or ``rebalance``): an element is above its continuous limit now (a
   dead one means the SBMs' bypass dumped load somewhere); short stages, best effort (the plan
   margin shared by every element first, see ``plan_retries``);
2. **migrate**: drain an ATS/MPDU whose monitor alerts (predicted failure) onto healthy paths;
   complete if the result stays within limits for at least ``drain_min_horizon_s``, otherwise
   only what fits; at the drain's deadline, circuits whose every way out lies behind one
   surviving ATS move on their expected (P50) load when that is the last resort (see
   :meth:`DecisionRules._expected_drain`);
3. **relieve**: move circuits off an element whose forecast P90 load crosses its continuous limit
   soon, confirmed at consecutive forecast refreshes; when no relief fits within the plan
   margin and the crossing is on a drained unit's receivers, a best-effort re-split among one
   ATS's MPDUs, at most once per forecast refresh (:meth:`DecisionRules._resplit`);
4. **restore**: circuits away from their normal path go back once that path has been healthy and
   stable for a while and the forecast says it is safe with margin.

Between 1 and 2, **source risk**: load moved onto an ATS that now runs on its alternate source
(its preferred one lost) leaves it before the retransfer interrupts it a second time, back to
the unit it was drained from while that unit is unlikely to fail before the source returns
(:meth:`DecisionRules._evacuate`); drains and restores put no load there meanwhile.

:class:`DecisionRules` also keeps the bookkeeping that stops plans from being retried too often
(failed plans held back, non-urgent planning at most every ``replan_interval_s``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from .asking import Question, ask
from .decisions import Action, ActionKind, DecisionNeeded, OverloadPrediction
from .degradation import HealthAssessment, failure_within
from .element_forecast import ElementForecasts
from .plan import Infeasible, Plan
from .plan_retries import SHARE_STEPS, PlanRequest, drop_moves_off, plan_with_retries
from .planner import restore_plan
from .plant_state import PlantState
from .policy_config import PolicyConfig
from .relief_asking import ReliefQuestions
from .resplit import split_topology, stages_within_limits, staging_topology, worst_util
from .topology import Topology

__all__ = ["Candidates", "DecisionRules", "find_overloads"]

_EPS: Final = 1e-9


@dataclass(frozen=True, slots=True)
class Candidates:
    """What one pass of the rules found."""

    actions: tuple[Action, ...] = ()
    """The action to take now (at most one), before the mode decides to execute or propose it."""
    infeasible: tuple[Infeasible, ...] = ()
    """Plans the rules wanted and could not make, and why."""
    notes: tuple[str, ...] = ()
    """What the rules want a reader of the tick to know (a drain held back, a restore waiting)."""
    decisions_needed: tuple[DecisionNeeded, ...] = ()
    """Open questions to a person (no plan is safe through a drain's deadline)."""


def find_overloads(
    topology: Topology, state: PlantState, forecasts: ElementForecasts, now_s: float
) -> list[OverloadPrediction]:
    """Elements above their limit now (urgent) or whose forecast P90 crosses it."""
    out: list[OverloadPrediction] = []
    for e in topology.elements:
        limit = topology.limit_a(e)
        st = state.elements[e]
        measured = st.load_a if st.reachable else math.nan
        fc = forecasts.element_fc.get(e)
        crossing = None
        peak_s, peak_a = now_s, measured if math.isfinite(measured) else 0.0
        if fc is not None and len(fc.p90):
            crossing = fc.first_crossing(limit)
            peak_s, peak_a = fc.peak("p90")
        urgent = math.isfinite(measured) and measured > limit
        if urgent or crossing is not None:
            out.append(
                OverloadPrediction(
                    element=e,
                    limit_a=limit,
                    crossing_s=now_s if urgent else crossing,
                    peak_s=peak_s,
                    peak_a=max(peak_a, measured if urgent else 0.0),
                    measured_a=measured,
                    urgent=urgent,
                )
            )
    return out


def _best_effort(plan: Plan) -> bool:
    """Whether a plan only reached relaxed limits (urgent relief)."""
    return any(n.startswith("best effort") for n in plan.notes)


class DecisionRules:
    """Turns what the policy knows into at most one action per tick."""

    def __init__(
        self,
        topology: Topology,
        config: PolicyConfig,
        state: PlantState,
        forecasts: ElementForecasts,
    ) -> None:
        self.topology = topology
        self.config = config
        self.state = state
        self.forecasts = forecasts
        self.active: Action | None = None
        self.approved: set[tuple[ActionKind, str | None]] = set()
        self.failed_plans: dict[tuple[ActionKind, str | None], float] = {}
        self.errors: list[str] = []
        self.streak: dict[str, int] = dict.fromkeys(topology.elements, 0)
        self.plan_t = -math.inf
        self.plan_sig: tuple[object, ...] = ()
        self.urgent_t = -math.inf
        self.urgent_sig: tuple[object, ...] = ()
        self.ttf_seen: dict[str, tuple[float, float]] = {}
        self.drain_deadline: dict[str, float] = {}
        """Per alerting unit: the earliest drain deadline of its alert so far."""
        self.evac_sig: tuple[object, ...] = ()
        self.evac_t = -math.inf
        """What the last plan to move load off an ATS on its alternate source saw, and when."""
        self.returned_for_source: set[str] = set()
        """Units predicted to fail that took drained load back from an ATS on its alternate
        source: their next drain runs at the urgent pace."""
        self.returned_s: dict[str, float] = {}
        """When relief last handed load back to an alerting (still working) ATS."""
        self.asked: dict[str, DecisionNeeded] = {}
        """Per alerting unit: the open question to a person (no plan is safe), kept between
        plans until a plan fits, the unit is drained, or its alert ends."""
        self._ask_deadline: dict[str, float] = {}
        """The deadline of a question about a unit without a time-to-failure estimate."""
        self.relief_questions = ReliefQuestions()
        """Open questions about elements no relief keeps within their limit (``relief_asking``)."""
        self.resplit_refresh = -math.inf
        """The forecast refresh the last best-effort re-split was tried on (once per refresh)."""
        self.resplit_done: set[str] = set()
        """Alerting units whose receivers were re-split (once per alert)."""

    # ------------------------------------------------------------------------ bookkeeping
    def count_confirmations(self, now_s: float, overloads: list[OverloadPrediction]) -> None:
        """After a forecast refresh: count consecutive refreshes predicting a near crossing."""
        near = {
            o.element
            for o in overloads
            if o.crossing_s is not None and o.crossing_s - now_s <= self.config.relieve_lead_s
        }
        for e in self.streak:
            self.streak[e] = self.streak[e] + 1 if e in near else 0

    def finished(self, action: Action, *, ok: bool, now_s: float) -> None:
        """The caller finished (or abandoned) ``action``."""
        if self.active is action:
            self.active = None
        self.plan_t = -math.inf
        # A failed action is held back (no retry loop), except a proposal in approval mode: a
        # person approves every run, so the remainder is proposed again at once.
        if not ok and (action.urgent or self.config.mode != "approval"):
            self.failed_plans[(action.kind, action.target)] = now_s
        if action.kind in ("relieve", "rebalance"):
            els = self.state.elements
            for mv in action.plan.moves:
                els[mv.from_mpdu].relieved_s = now_s
                els[self.topology.ats_of(mv.from_mpdu)].relieved_s = now_s

    def _candidates(
        self, out: list[Action], infeasible: list[Infeasible], notes: list[str]
    ) -> Candidates:
        return Candidates(
            tuple(out),
            tuple(infeasible),
            tuple(notes),
            (
                *(self.asked[e] for e in sorted(self.asked)),
                *self.relief_questions.open(besides=self.asked),
            ),
        )

    def _blocked(self, kind: ActionKind, target: str | None, now_s: float) -> bool:
        held = now_s - self.failed_plans.get((kind, target), -math.inf)
        return held < self.config.failed_plan_hold_s

    # ---------------------------------------------------------------------------- planning
    def _relief(
        self,
        assignment: Mapping[str, str | None],
        circuit_a: Mapping[str, float],
        req: PlanRequest,
        *,
        alerts: frozenset[str],
        hand_back: bool,
    ) -> Plan | Infeasible:
        """A relief plan; with ``hand_back`` (an element is far above its limit now) and none
        without them, one that hands load back to units that alert but still work (a drain
        sized for an early failure the unit outlived): a healthy element above its limit is
        the surer harm, and the note says so. A forecast crossing alone never hands load back."""
        recent = self._recently_relieved(req.now_s)
        res: Plan | Infeasible | None = None
        for attempt in (replace(req, no_receive=recent), req) if recent else (req,):
            # Elements relieved lately take no load first (hysteresis: no circuit goes back
            # and forth); an overload beats that rule when nothing else fits.
            res = self._plan(assignment, circuit_a, attempt)
            if isinstance(res, Plan) and not _best_effort(res):
                return res
        assert res is not None
        alive = set(req.unavailable) - self.state.unavailable(frozenset())
        if not alive or not hand_back:
            return res
        back = self._plan(
            assignment,
            circuit_a,
            replace(req, unavailable=set(req.unavailable) - alive, goal=f"{req.goal} (return)"),
        )
        if not isinstance(back, Plan) or not back.moves:
            return res
        if _best_effort(back) and isinstance(res, Plan) and res.moves:
            return res
        topo = self.topology
        onto = sorted({x for m in back.moves for x in (m.to_mpdu, topo.ats_of(m.to_mpdu))} & alerts)
        if onto:
            self.returned_s.update(dict.fromkeys(onto, req.now_s))
            back = replace(
                back,
                notes=(
                    *back.notes,
                    f"no room elsewhere: load handed back to {', '.join(onto)}, which alerts "
                    "but still works",
                ),
            )
        return back

    def _recently_relieved(self, now_s: float) -> set[str]:
        """Elements load was moved off less than ``relief_hold_s`` ago."""
        hold = self.config.relief_hold_s
        return {e for e, st in self.state.elements.items() if now_s - st.relieved_s < hold}

    def _plan(
        self,
        assignment: Mapping[str, str | None],
        circuit_a: Mapping[str, float],
        req: PlanRequest,
        *,
        spread: float = 1.0,
        margin: float | None = None,
        from_s: float | None = None,
        topology: Topology | None = None,
    ) -> Plan | Infeasible:
        """Plan on the circuits' P50 plus ``spread`` of their P50-P90 spread (1: the effective
        P90, 0: the expected load), inflated by ``margin`` (default: the plan margin);
        ``from_s``: a plan to be executed then, on the forecast from then on."""
        cfg = self.config
        fcs = self.forecasts
        if margin is None:
            margin = cfg.plan_margin
        return plan_with_retries(
            topology or self.topology,
            assignment,
            lambda until: fcs.loads(
                req.now_s, circuit_a, until_s=until, from_s=from_s, margin=margin, spread=spread
            ),
            req,
            silent=self.state.silent(),
            time_limit_s=cfg.plan_time_limit_s,
            errors=self.errors,
        )

    def _drain_request(
        self,
        e: str,
        now_s: float,
        unavailable: set[str],
        horizons: tuple[float | None, ...],
        variant: str = "",
        *,
        no_receive: Collection[str] = (),
        balance: bool = False,
    ) -> PlanRequest:
        """A complete drain of ``e`` (``variant`` names it in the goal: "expected load", ...)."""
        again = e in self.returned_for_source
        return PlanRequest(
            now_s,
            drain=e,
            unavailable=unavailable,
            goal=f"drain {e} ({variant})" if variant else f"drain {e}",
            max_step_amps=self.config.urgent_max_step_amps if again else self.config.max_step_amps,
            horizons=horizons,
            no_receive=no_receive,
            balance=balance,
        )

    # ----------------------------------------------------------------------------- the rules
    def candidates(
        self,
        now_s: float,
        *,
        assignment: Mapping[str, str | None],
        circuit_a: Mapping[str, float],
        circuit_reachable: Mapping[str, bool],
        assessments: Mapping[str, HealthAssessment],
        alerts: frozenset[str],
        unavailable: set[str],
        overloads: list[OverloadPrediction],
        history_s: float,
    ) -> Candidates:
        """The rules in order of precedence: the action to take now (at most one) and what the
        rules found on the way (plans that could not be made, notes)."""
        infeasible: list[Infeasible] = []
        notes: list[str] = []
        cfg = self.config
        topo = self.topology
        els = self.state.elements
        out: list[Action] = []
        active = self.active

        # 1. Urgent: something is above its continuous limit now.
        urgent = [o for o in overloads if o.urgent]
        dead = self.state.dead()
        kind: ActionKind = "rebalance" if dead else "relieve"
        urgent_sig = (frozenset(o.element for o in urgent), frozenset(dead))
        retry = (
            urgent_sig != self.urgent_sig
            or now_s - self.urgent_t >= cfg.urgent_retry_s - _EPS
            or (kind, None) in self.approved
        )
        if (
            urgent
            and retry
            and (active is None or not active.urgent)
            and now_s - self.failed_plans.get((kind, None), -math.inf) >= cfg.urgent_retry_s
        ):
            goal = "rebalance after failure" if dead else "relieve overload"
            self.urgent_t = now_s
            self.urgent_sig = urgent_sig
            res = self._relief(
                assignment,
                circuit_a,
                PlanRequest(
                    now_s,
                    drain=None,
                    unavailable=unavailable,
                    goal=goal,
                    max_step_amps=cfg.urgent_max_step_amps,
                    horizons=(now_s + 3600.0, now_s),
                    best_effort=True,
                    over_now=[e for e in topo.elements if els[e].load_a > topo.limit_a(e)],
                    margin=cfg.plan_margin,
                ),
                alerts=alerts,
                hand_back=any(
                    els[e].load_a > cfg.hand_back_util * topo.rating_a(e) for e in topo.elements
                ),
            )
            if isinstance(res, Plan) and res.moves:
                out.append(self._action(kind, None, res, urgent=True, now_s=now_s, why=goal))
                return self._candidates(out, infeasible, notes)
            if isinstance(res, Infeasible):
                infeasible.append(res)
        if active is not None:
            return self._candidates(out, infeasible, notes)
        # 1b. An ATS on its alternate source: the load that can leave it goes before the
        # retransfer interrupts it again (a source event, not a forecast: no replan wait).
        on_alt = self.state.on_alternate()
        evacuate = self._evacuate(
            now_s, assignment, circuit_a, unavailable, alerts, on_alt, assessments
        )
        if evacuate is not None:
            out.append(evacuate)
            return self._candidates(out, infeasible, notes)
        # A changed lineup (a circuit moved by hand, a stage of a person's migration) plans
        # again at once: a plan made for the old one is stale.
        sig = (
            alerts,
            frozenset(dead),
            frozenset(self.failed_plans.items()),
            frozenset(assignment.items()),
            frozenset(on_alt),
        )
        if (
            now_s - self.plan_t < cfg.replan_interval_s - _EPS
            and sig == self.plan_sig
            and not self.approved
        ):
            return self._candidates(out, infeasible, notes)
        self.plan_t = now_s
        self.plan_sig = sig
        # 2. Drain components predicted to fail (a deadline lasts as long as its alert).
        for e in set(self.drain_deadline) - alerts:
            del self.drain_deadline[e]
        self.returned_for_source &= alerts
        for e in set(self._ask_deadline) - alerts:
            del self._ask_deadline[e]
        for e in list(self.asked):
            st = els[e]
            if (
                e not in alerts
                or st.failed
                or not st.energized
                or not [c for c in topo.circuits_through(e, assignment) if circuit_a.get(c)]
            ):
                del self.asked[e]
        for e in sorted(alerts):
            if not topo.circuits_through(e, assignment):
                self.returned_for_source.discard(e)
                continue
            if self._blocked("migrate", e, now_s):
                continue
            st = els[e]
            if st.failed or not st.energized:
                continue
            act = self._drain(
                e,
                assessments[e],
                now_s,
                assignment,
                circuit_a,
                unavailable,
                infeasible,
                notes,
                avoid=on_alt,
            )
            if act is not None:
                out.append(act)
                return self._candidates(out, infeasible, notes)
        # 3. Relieve predicted overloads (enough history only: a young forecast is not trusted).
        soon = [
            o
            for o in overloads
            if not o.urgent
            and o.crossing_s is not None
            and o.crossing_s - now_s <= cfg.relieve_lead_s
            and self.streak[o.element] >= cfg.relieve_confirmations
        ]
        self.relief_questions.keep(
            (o.element for o in overloads if o.crossing_s is not None),
            now_s,
            cfg.forecast_interval_s,
        )
        relief = PlanRequest(
            now_s,
            drain=None,
            unavailable=unavailable,
            goal="relieve overload",
            max_step_amps=cfg.max_step_amps,
            horizons=(None, now_s + 2 * cfg.relieve_lead_s, now_s + cfg.relieve_lead_s),
        )
        trusted = history_s >= cfg.min_history_s and not self._blocked("relieve", None, now_s)
        if soon and trusted:
            res = self._relief(assignment, circuit_a, relief, alerts=alerts, hand_back=False)
            resplit = None
            if isinstance(res, Infeasible):
                resplit = self._resplit(now_s, assignment, circuit_a, unavailable, alerts, soon)
            self.relief_questions.ask(  # no relief fits: a person is asked (relief_asking.py)
                topo,
                self.forecasts,
                cfg,
                lambda topology, lineup, req: self._plan(lineup, circuit_a, req, topology=topology),
                now_s=now_s,
                soon=soon,
                relief=res if resplit is None else resplit.plan,  # the plan the engine runs
                assignment=assignment,
                circuit_a=circuit_a,
                unavailable=unavailable,
            )
            names = ", ".join(o.element for o in soon)
            if isinstance(res, Plan) and res.moves:
                out.append(
                    self._action(
                        "relieve",
                        None,
                        res,
                        urgent=False,
                        now_s=now_s,
                        why=f"forecast P90 load of {names} reaches the continuous limit",
                    )
                )
                return self._candidates(out, infeasible, notes)
            if isinstance(res, Infeasible):
                infeasible.append(res)
                if resplit is not None:
                    out.append(resplit)
                    return self._candidates(out, infeasible, notes)
        ahead = [o for o in overloads if not o.urgent and o.crossing_s is not None]
        if ahead and not soon and trusted:
            # A crossing on a drained unit's receivers, not yet near or confirmed: a re-split
            # among one ATS's MPDUs needs measured room to swap circuits, which the peak it is
            # for takes away; so it is tried early, if no relief within the margin fits.
            resplit = self._resplit(
                now_s, assignment, circuit_a, unavailable, alerts, ahead, relief=relief
            )
            if resplit is not None:
                out.append(resplit)
                return self._candidates(out, infeasible, notes)
        # 4. Restore circuits to their normal paths when that is healthy, stable and safe.
        if self._restorable(assignment, circuit_reachable, alerts, unavailable | on_alt) and not (
            self._blocked("restore", None, now_s)
        ):
            restore = self._restore(now_s, assignment, circuit_a, unavailable | on_alt, notes)
            if restore is not None:
                out.append(restore)
        return self._candidates(out, infeasible, notes)

    def _resplit(
        self,
        now_s: float,
        assignment: Mapping[str, str | None],
        circuit_a: Mapping[str, float],
        unavailable: set[str],
        alerts: frozenset[str],
        soon: list[OverloadPrediction],
        *,
        relief: PlanRequest | None = None,
    ) -> Action | None:
        """A best-effort re-split among the receivers of a drained unit: their forecast P90
        crosses a limit and no relief keeps them within the plan margin (every split is too
        close to call on P90 plus margin), so the balanced lineup (the lowest worst P90
        utilisation over the relief's window) is taken when it lowers the worst utilisation of
        the elements it touches by at least ``resplit_min_gain``; below that the forecast
        cannot rank the splits. Only circuits on live elements not behind an alerting unit
        move, and only among such elements; once per alert (tried at most once per forecast
        refresh until it is taken); every stage keeps each element that takes load within its
        limit on the measured load (the executor's interlock and stage verification check it
        again). It moves circuits only among the MPDUs of one ATS, so no ATS's load changes.
        ``relief``: the crossing is not yet near or confirmed (a swap between two full MPDUs
        needs measured room, which the peak takes away); tried only if that relief finds no
        plan within the margin either.

        Hysteresis: the relief keeps load off elements relieved lately (``relief_hold_s``),
        which would block a second re-split between the same two MPDUs. The re-split does not
        consult that hold (its moves stay behind one ATS) and is instead taken once per alert.
        Measured against the other choice (exempt moves among one ATS's MPDUs, re-split at
        every refresh with a gain): hard-drain_trend_surge-14 re-split its receivers at every
        hourly refresh for seven hours (17 more switch operations, peak 76 % -> 80 % of
        rating; a trend moves the forecast by more than the threshold every hour), and
        hard-tight-8 needed only its first re-split."""
        cfg = self.config
        topo = self.topology
        fcs = self.forecasts
        if fcs.refreshed_s == self.resplit_refresh:
            return None
        self.resplit_done &= alerts
        crossing = {o.element for o in soon}
        # The alerting units whose drained circuits sit on a crossing element.
        units = {
            x
            for c, node in topo.circuits.items()
            for x in alerts
            if topo.depends_on(node.normal_path, x)
            and assignment.get(c) is not None
            and not any(topo.depends_on(str(assignment[c]), y) for y in alerts)
            and crossing & set(topo.upstream(str(assignment[c])))
        }
        if not units - self.resplit_done:  # no drained unit's receivers, or re-split already
            return None
        self.resplit_refresh = fcs.refreshed_s
        if relief is not None and isinstance(
            self._relief(assignment, circuit_a, relief, alerts=alerts, hand_back=False), Plan
        ):
            return None  # a relief within the margin fits: it runs when the crossing is near
        off = (
            set(unavailable)
            | set(alerts)
            | {m for x in alerts if x in topo.ats for m in topo.mpdus_of(x)}
            | self.state.silent()
        )
        # Moves only among the MPDUs of one ATS, on live elements not behind an alerting unit.
        split = split_topology(topo, assignment, off)
        until = now_s + 2 * cfg.relieve_lead_s
        res = self._plan(
            assignment,
            circuit_a,
            PlanRequest(
                now_s,
                drain=None,
                unavailable=off,
                goal="re-split receivers",
                max_step_amps=cfg.max_step_amps,
                horizons=(until,),
                balance=True,
            ),
            margin=0.0,
            topology=split,
        )
        if not isinstance(res, Plan) or not res.moves:
            return None
        plan = res
        profiles, _ = fcs.loads(now_s, circuit_a, until_s=until, margin=0.0)
        touched = {p for m in plan.moves for p in (m.from_mpdu, m.to_mpdu)}
        before = worst_util(topo, assignment, profiles, touched)
        after = worst_util(topo, plan.final_assignment, profiles, touched)
        if before - after < cfg.resplit_min_gain - _EPS:
            return None
        # The stages: the balanced split's moves ordered and cut on the measured load now,
        # every MPDU within its true limit (the planner's staging rule: an element above its
        # limit takes no load), each circuit either staying or going to its target.
        target = {m.circuit: m.to_mpdu for m in plan.moves}
        staged = self._plan(
            assignment,
            circuit_a,
            PlanRequest(
                now_s,
                drain=None,
                unavailable=off,
                goal="re-split receivers (stages)",
                max_step_amps=cfg.max_step_amps,
                horizons=(now_s,),
                leave=sorted(target),
            ),
            margin=0.0,
            topology=staging_topology(topo, assignment, target),
        )
        if not isinstance(staged, Plan) or {(m.circuit, m.to_mpdu) for m in staged.moves} != set(
            target.items()
        ):
            return None
        plan = staged
        if not stages_within_limits(topo, assignment, plan, circuit_a):
            return None
        names = ", ".join(sorted(crossing))
        why = (
            f"forecast P90 load of {names} reaches the continuous limit and no relief fits "
            f"within the plan margin: best-effort re-split of {len(plan.moves)} circuits "
            f"lowers the worst forecast utilisation from {before:.1%} to {after:.1%} of the "
            "limit"
        )
        self.resplit_done |= units
        return self._action("relieve", None, plan, urgent=False, now_s=now_s, why=why)

    def _hand_back_ok(self, a: HealthAssessment) -> bool:
        """Whether load may wait on (or go back to) a unit predicted to fail rather than sit
        on an ATS running on its alternate source. Left there, a circuit is interrupted again
        for certain (the retransfer); on the unit, only if the unit fails before the source
        returns and the drain runs again: once or twice (the failure, and the retransfer of
        the receiver its bypass lands on). So the unit takes it while the chance that it
        fails within ``source_return_s`` (the present estimate: P10, median, P90) is at most
        ``hand_back_risk``."""
        cfg = self.config
        return failure_within(a, cfg.source_return_s) <= cfg.hand_back_risk

    def _evacuate(
        self,
        now_s: float,
        assignment: Mapping[str, str | None],
        circuit_a: Mapping[str, float],
        unavailable: set[str],
        alerts: frozenset[str],
        on_alt: set[str],
        assessments: Mapping[str, HealthAssessment],
    ) -> Action | None:
        """Move load off an ATS that runs on an alternate source, before it retransfers.

        Its preferred source is lost: the transfer away has already interrupted every circuit
        on it, and the retransfer when the source returns (an open transition) will interrupt
        them all again. A circuit that leaves it now, make-before-break, is spared the second
        one. Only load moved there leaves (its own circuits stay: a source event does not
        make a quiet plant switch). Circuits whose normal path is a unit that alerts but
        still works may go back there while that unit is unlikely to fail before the source
        returns (:meth:`_hand_back_ok`): the drain waits for the source and runs again after
        the retransfer (at the urgent pace); otherwise the failure is the surer harm and they
        stay. Every element stays within its limit over the next hours, and nothing moves
        onto an ATS on its alternate.
        """
        cfg = self.config
        topo = self.topology
        els = self.state.elements
        # Once per plan interval (the lineup it leaves is not a reason to plan again: a
        # second plan a minute later would only shuffle a circuit or two more).
        sig = (frozenset(on_alt), alerts)
        if not on_alt or (sig == self.evac_sig and now_s - self.evac_t < cfg.replan_interval_s):
            return None
        self.evac_sig, self.evac_t = sig, now_s
        for x in sorted(a for a in on_alt if a in topo.ats):
            # Only load moved there (drained, relieved): the ATS's own circuits stay (moving
            # them for a source event would be switching a quiet plant).
            away = [
                c
                for c in topo.circuits_through(x, assignment)
                if not topo.depends_on(topo.circuits[c].normal_path, x)
            ]
            if not away or self._blocked("migrate", x, now_s):
                continue
            back = {
                e
                for e in alerts
                if not els[e].failed
                and els[e].energized
                and e not in on_alt
                and self._hand_back_ok(assessments[e])
            }
            back |= {m for e in back if e in topo.ats for m in topo.mpdus_of(e)}
            res = self._plan(
                assignment,
                circuit_a,
                PlanRequest(
                    now_s,
                    drain=None,
                    unavailable=unavailable,
                    goal=f"move load off {x} before it returns to its preferred source",
                    max_step_amps=cfg.urgent_max_step_amps,
                    horizons=(now_s + cfg.relieve_lead_s, now_s + 3600.0, now_s),
                    no_receive=on_alt,
                    may_return=back,
                    leave=away,
                ),
            )
            if not isinstance(res, Plan) or not res.moves:
                continue
            onto = sorted({topo.ats_of(m.to_mpdu) for m in res.moves} & back)
            # Their drain runs again at the urgent pace once the source is back: the load
            # was drained before and went back only to spare it the retransfer.
            self.returned_for_source.update(
                e
                for e in alerts
                if e in back and any(topo.depends_on(m.to_mpdu, e) for m in res.moves)
            )
            why = (
                f"{x} runs on an alternate source (its preferred one is lost): "
                f"{len(res.moves)} circuits leave it before it retransfers, which would "
                "interrupt them again"
                + (
                    f"; drained load goes back to {', '.join(onto)}, which alerts but still "
                    "works and is unlikely to fail before the source returns"
                    if onto
                    else ""
                )
            )
            return self._action("migrate", x, res, urgent=True, now_s=now_s, why=why)
        return None

    def _drain(
        self,
        e: str,
        a: HealthAssessment,
        now_s: float,
        assignment: Mapping[str, str | None],
        circuit_a: Mapping[str, float],
        unavailable: set[str],
        infeasible: list[Infeasible],
        notes: list[str],
        *,
        avoid: Collection[str] = (),
    ) -> Action | None:
        """Drain ``e``, predicted to fail: complete when a plan keeps every element within its
        limit over the window the receivers must carry the load, at the best time.

        With a time to failure: the window runs from the drain to ``drain_hold_after_failure_s``
        after the predicted failure. With hours of warning the drain waits for the start that
        gives the lowest plant peak over that window (a drain before an afternoon peak is
        carried through it; after it, not), but finishes at the latest a margin before the
        predicted failure; a short warning or a fast-rising risk drains at once. When no
        complete drain fits, what fits moves (at the best start), and the note says how much
        is left to be interrupted; but in the low-load hours a complete drain that holds until
        the early failure estimate (without the hold after it) goes first.

        The deadline (the early estimate less a margin) never moves later while the alert
        lasts: when the wear's end is unknown the early estimate can stay about as far ahead
        at every plan, and a deadline recomputed each time would never come.

        ``avoid`` (elements behind an ATS running on its alternate source) takes no drained
        load while waiting is the smaller risk: a circuit drained there is interrupted when that ATS
        retransfers, and again if it stays until the unit fails, where left alone it would be
        interrupted once, by the failure. While the unit is unlikely to fail before the source
        returns (:meth:`_hand_back_ok`) the drain goes elsewhere or waits for the source;
        otherwise the failure is the surer harm.
        """
        cfg = self.config
        topo = self.topology
        # Relief had to hand load back to ``e``: the receivers it relieved take no drained load
        # again for a while (no circuit goes back and forth).
        no_receive = (
            self._recently_relieved(now_s)
            if now_s - self.returned_s.get(e, -math.inf) < cfg.relief_hold_s
            else set()
        )
        ttf = a.time_to_failure_s
        low = a.time_to_failure_low_s
        # The early estimate first, as the time-to-failure sensor and the repair say it.
        why = f"{e} is predicted to fail" + (
            ""
            if ttf is None
            else f" within {ttf / 3600:.1f} h"
            if low is None or low >= ttf
            else f" possibly within {low / 3600:.1f} h (most likely {ttf / 3600:.1f} h)"
        )
        horizons: tuple[float | None, ...]
        start = now_s
        last_call = False
        deadline = math.inf
        if ttf is None:
            horizons = (None, now_s + cfg.drain_min_horizon_s)
        else:
            # The detector's time to failure is uncertain: the drain is done before its early
            # estimate.
            low = min(ttf, a.time_to_failure_low_s if a.time_to_failure_low_s is not None else ttf)
            fail_s = now_s + ttf
            end = fail_s + cfg.drain_hold_after_failure_s
            horizons = (end, fail_s + cfg.drain_hold_after_failure_s / 4)
            # The failure may come as early as the estimate's low end: a complete drain that
            # carries the load through that early failure and its hold beats a partial one
            # sized for a late failure (if the unit outlives it, relief may hand load back).
            early_end = now_s + low + cfg.drain_hold_after_failure_s
            if early_end < horizons[-1] - _EPS:
                horizons = (*horizons, early_end)
            # In the low-load hours, a complete drain that holds until the earliest failure the
            # estimate allows beats leaving circuits to be interrupted when the hold windows
            # reach into the next load rise: the failure itself would put the rest on those
            # receivers anyway, and no later hour before it is any lighter.
            if self._low_load(now_s, now_s + low, circuit_a):
                horizons = (*horizons, now_s + low)
            deadline = (
                now_s + low - max(cfg.drain_deadline_margin_s, cfg.drain_deadline_fraction * low)
            )
            # The deadline never recedes while the alert lasts: an early estimate that stays
            # about as far ahead from one plan to the next (it does when the wear's end is
            # unknown) would otherwise put the last call off for ever.
            deadline = min(deadline, self.drain_deadline.get(e, math.inf))
            self.drain_deadline[e] = deadline
            # The risk rises fast when the predicted failure moved earlier, since the last plan,
            # by much more than the estimate's own jitter (which the deadline margin covers).
            prev = self.ttf_seen.get(e)
            self.ttf_seen[e] = (now_s, fail_s)
            fast = prev is not None and prev[1] - fail_s > max(
                cfg.ttf_fast_fall * cfg.drain_deadline_margin_s, cfg.drain_deadline_fraction * ttf
            )
            if not fast and deadline > now_s + cfg.replan_interval_s:
                start = self._best_start(now_s, deadline, end, circuit_a)
            # The last plan before the drain's deadline (or a fast-rising risk).
            last_call = fast or deadline <= now_s + cfg.replan_interval_s
        if e in self.returned_for_source:
            # Load parked back on ``e`` during a source outage goes where it was: that lineup
            # held until the outage, so the windows are the next hour and now (later crossings
            # are the relief's, as before the outage), and it goes at once.
            horizons = (now_s + 3600.0, now_s)
            start = now_s
            last_call = True
        if set(avoid) - unavailable and self._hand_back_ok(a):
            unavailable = unavailable | set(avoid)
        else:
            avoid = ()
        res = self._plan(
            assignment,
            circuit_a,
            self._drain_request(e, now_s, unavailable, horizons, no_receive=no_receive),
        )
        if avoid and isinstance(res, Infeasible):
            notes.append(
                f"drain of {e} waits: its receivers behind {', '.join(sorted(avoid))} run on "
                "an alternate source and would interrupt the drained circuits when they "
                "retransfer"
            )
            return None
        if start > now_s + cfg.replan_interval_s - _EPS and not (
            # A drain that leaves every receiver comfortable through the whole window does
            # not wait: waiting only pays where the load is hard to place.
            isinstance(res, Plan)
            and max(res.peak_utilization.values(), default=0.0) <= cfg.drain_comfort_util
        ):
            when = start - now_s
            notes.append(
                f"drain of {e} waits {when / 3600:.1f} h for lower load "
                f"(predicted failure in {(ttf or 0.0) / 3600:.1f} h)"
            )
            return None
        if isinstance(res, Plan):
            self.asked.pop(e, None)  # a complete drain fits: nothing to ask
        if isinstance(res, Infeasible):
            # No complete drain keeps every element within its limit over the window: move
            # what fits (never pushing anything over its limit), report the rest, and leave
            # the trade-off to a person.
            infeasible.append(res)
            drain = self._drain_request(e, now_s, unavailable, horizons, no_receive=no_receive)
            if last_call and ttf is not None:
                act = self._expected_drain(
                    e,
                    a,
                    now_s,
                    deadline,
                    assignment,
                    circuit_a,
                    unavailable,
                    horizons,
                    notes,
                )
                if act is not None:
                    self.asked.pop(e, None)  # within the limits on the expected load
                    return act
            res = self._plan(
                assignment,
                circuit_a,
                PlanRequest(
                    now_s,
                    drain=None,
                    unavailable=unavailable | {e, *topo.mpdus_of(e)},
                    goal=f"partial drain {e}",
                    max_step_amps=(
                        cfg.urgent_max_step_amps
                        if e in self.returned_for_source
                        else cfg.max_step_amps
                    ),
                    horizons=horizons[:1],
                    no_receive=no_receive,
                ),
            )
            if isinstance(res, Plan):
                left = [
                    c for c in topo.circuits_through(e, res.final_assignment) if circuit_a.get(c)
                ]
                amps = sum(circuit_a.get(c, 0.0) for c in left)
                why += (
                    f" (partial: the rest has no room within the limits; {len(left)} circuits, "
                    f"{amps:.1f} A, would be interrupted if it fails)"
                )
                notes.append(why)
            if ttf is None:
                deadline = self._ask_deadline.setdefault(e, now_s + cfg.drain_min_horizon_s)
            self._ask(
                Question(
                    element=e,
                    now_s=now_s,
                    deadline_s=deadline,
                    end_s=float(horizons[0]) if horizons[0] is not None else deadline,
                    reason=why,
                    failure_s=None if ttf is None else now_s + ttf,
                    failure_low_s=None
                    if ttf is None
                    else now_s + min(ttf, a.time_to_failure_low_s or ttf),
                ),
                assignment,
                circuit_a,
                drain,
                res if isinstance(res, Plan) else None,
            )
        if isinstance(res, Plan) and res.moves:
            return self._action(
                "migrate", e, res, urgent=e in self.returned_for_source, now_s=now_s, why=why
            )
        return None

    def _ask(
        self,
        q: Question,
        assignment: Mapping[str, str | None],
        circuit_a: Mapping[str, float],
        drain: PlanRequest,
        partial: Plan | None,
    ) -> None:
        """Put the question to a person (``asking.py``): the same question keeps the time it
        was first raised."""
        before = self.asked.get(q.element)
        self.asked[q.element] = ask(
            self.topology,
            self.forecasts,
            self.config,
            lambda topology, lineup, req: self._plan(lineup, circuit_a, req, topology=topology),
            q,
            assignment=assignment,
            circuit_a=circuit_a,
            drain=drain,
            partial=partial,
            raised_s=lambda rid: (
                before.raised_s if before is not None and before.id == rid else q.now_s
            ),
        )

    def _expected_drain(
        self,
        e: str,
        a: HealthAssessment,
        now_s: float,
        deadline_s: float,
        assignment: Mapping[str, str | None],
        circuit_a: Mapping[str, float],
        unavailable: set[str],
        horizons: tuple[float | None, ...],
        notes: list[str],
    ) -> Action | None:
        """At the drain's deadline, when no complete drain fits with the P90 margin: a complete
        drain that keeps every element within its continuous limit on the *expected* (P50)
        load over the same windows. Only when every way out of every circuit left on ``e``
        lies behind one and the same surviving ATS: the failure would interrupt it and the
        SBMs' bypass put it behind that ATS anyway, unmanaged, so moving it there now (and
        making room for it) loses nothing at the failure; only the split among that ATS's
        MPDUs is open, and the relief's best-effort re-split (:meth:`_resplit`) revisits it
        as the forecasts are refreshed. (A circuit with ways through different ATSs keeps
        them: after the failure the rebalance chooses among them on the loads then measured.)
        It is the smaller expected harm as long as no element is expected above its limit,
        and as long as the time some element is expected to spend above its limit while the
        unit still works (each forecast point weighted by the chance, read off the failure
        estimate, that the unit has not failed by then: the moved load sits there only then;
        after the failure the bypass would put it there anyway) grows by at most
        ``expected_drain_over_budget_s``: otherwise what fits moves as before and this is
        tried again at the next plan. (Counted only up to the *median* failure, a receiver
        peak just after it went unseen, though the failure comes later half of the time.)
        Nor while a complete drain within
        the P90 margin is forecast to fit from a later start no later than ``deadline_s``
        (waiting beyond the deadline would bet on a late failure). The reason says so; the
        executor verifies every stage as usual.

        The plan is balanced (lowest worst utilisation, not fewest moves) on the P50 plus the
        largest share of each circuit's P50-P90 spread that still has a plan: what is left of
        the uncertainty margin goes where the uncertainty is, so no element runs right at its
        limit where another need not."""
        cfg = self.config
        topo = self.topology
        left = [c for c in topo.circuits_through(e, assignment) if circuit_a.get(c)]
        for c in left:
            ways = [
                p
                for p in topo.circuits[c].paths
                if not topo.depends_on(p, e) and not set(topo.upstream(p)) & unavailable
            ]
            if len({topo.ats_of(p) for p in ways}) != 1:
                return None
        res: Plan | Infeasible | None = None
        for share in reversed((0.0, *SHARE_STEPS[:-1])):
            res = self._plan(
                assignment,
                circuit_a,
                self._drain_request(e, now_s, unavailable, horizons, "expected load", balance=True),
                spread=share,
                margin=0.0,
            )
            if isinstance(res, Plan):
                break
        if not isinstance(res, Plan) or not res.moves:
            return None
        later = self._later_drain(
            e, now_s, deadline_s, assignment, circuit_a, unavailable, horizons
        )
        if later is not None:
            notes.append(
                f"no drain of {e} on the expected load: a complete drain within the P90 margin "
                f"is forecast to fit from {(later - now_s) / 3600:.1f} h on, before the "
                "drain's deadline"
            )
            return None
        fcs = self.forecasts

        def working(times: np.ndarray) -> np.ndarray:
            """The chance that ``e`` still works at each of ``times``."""
            return np.array([1.0 - failure_within(a, float(t) - now_s) for t in times])

        risk = fcs.expected_over_s(res.final_assignment, weight=working) - fcs.expected_over_s(
            assignment, weight=working
        )
        if risk > cfg.expected_drain_over_budget_s:
            notes.append(
                f"no drain of {e} on the expected load yet: its receivers would be expected "
                f"above a limit for {risk / 60:.0f} min while {e} still works"
            )
            return None
        amps = sum(circuit_a.get(c, 0.0) for c in left)
        why = (
            f"{e} is predicted to fail before the next plan is due and no complete drain fits "
            f"with the P90 margin: its {len(left)} circuits ({amps:.1f} A) move now on the "
            "expected (P50) load, which keeps every element within its continuous limit, "
            "rather than being interrupted and put behind the only ATS left to them by the "
            "failure's bypass"
        )
        return self._action(
            "migrate", e, res, urgent=e in self.returned_for_source, now_s=now_s, why=why
        )

    def _later_drain(
        self,
        e: str,
        now_s: float,
        deadline_s: float,
        assignment: Mapping[str, str | None],
        circuit_a: Mapping[str, float],
        unavailable: set[str],
        horizons: tuple[float | None, ...],
    ) -> float | None:
        """The first of a few later starts (no later than the drain's deadline) from which a
        complete drain within the P90 margin is forecast to fit over the first window, if any:
        the expected-load drain is no last resort then. A start after the deadline does not
        count: waiting for it is a bet that the failure comes later than its early estimate."""
        cfg = self.config
        fcs = self.forecasts
        starts = [t for t in fcs.times if now_s + cfg.replan_interval_s <= t <= deadline_s]
        if not starts:
            return None
        picks = sorted({starts[round(i * (len(starts) - 1) / 3)] for i in range(4)})
        for start in picks:
            res = self._plan(
                assignment,
                circuit_a,
                self._drain_request(e, now_s, unavailable, horizons[:1], "later"),
                from_s=float(start),
            )
            if isinstance(res, Plan):
                return float(start)
        return None

    def _best_start(
        self, now_s: float, deadline_s: float, end_s: float, circuit_a: Mapping[str, float]
    ) -> float:
        """The earliest drain start (on the forecast grid, at most ``deadline_s``) whose window
        up to ``end_s`` has a plant peak within ``drain_start_tolerance`` of the lowest."""
        fcs = self.forecasts
        total = fcs.total_profile(circuit_a)
        times = np.concatenate(([now_s], fcs.times))
        if len(times) != len(total) or len(times) < 2:
            return now_s
        inside = times <= end_s
        starts = [i for i in range(len(times)) if times[i] <= deadline_s]
        if not starts:
            return now_s
        peaks = np.array([float(np.max(total[i:][inside[i:]], initial=0.0)) for i in starts])
        best = float(peaks.min())
        for i, pk in zip(starts, peaks, strict=True):
            if pk <= best * (1.0 + self.config.drain_start_tolerance):
                return float(times[i])
        return now_s

    def _low_load(self, now_s: float, until_s: float, circuit_a: Mapping[str, float]) -> bool:
        """Whether the plant's forecast load over [now, until] stays within
        ``drain_low_load_tolerance`` of its lowest over the rest of the forecast horizon."""
        fcs = self.forecasts
        total = fcs.total_profile(circuit_a)
        times = np.concatenate(([now_s], fcs.times))
        if len(times) != len(total) or len(times) < 2:
            return False
        ahead = times >= now_s - _EPS
        window = ahead & (times <= until_s + _EPS)
        lowest = float(np.min(total[ahead]))
        return float(np.max(total[window])) <= lowest * (1.0 + self.config.drain_low_load_tolerance)

    def _restore(
        self,
        now_s: float,
        assignment: Mapping[str, str | None],
        circuit_a: Mapping[str, float],
        unavailable: set[str],
        notes: list[str],
    ) -> Action | None:
        cfg = self.config
        loads, grid = self.forecasts.loads(
            now_s, circuit_a, margin=cfg.restore_margin / (1 - cfg.restore_margin)
        )
        hold = {
            e
            for e, st in self.state.elements.items()
            if now_s - st.relieved_s < cfg.relief_hold_s
            or now_s - st.alive_since_s < cfg.restore_stable_s
            or (st.repaired_s is not None and now_s - st.repaired_s < cfg.restore_stable_s)
            or now_s - st.alert_cleared_s < cfg.restore_stable_s
        }
        try:
            res = restore_plan(
                self.topology,
                assignment,
                loads,
                grid,
                unavailable=sorted(unavailable | hold),
                max_step_amps=cfg.max_step_amps,
                time_limit_s=cfg.plan_time_limit_s,
            )
        except (ValueError, ArithmeticError, RuntimeError) as err:
            self.errors.append(f"planner failed (restore): {type(err).__name__}: {err}")
            return None
        if isinstance(res, Plan):
            res = drop_moves_off(res, self.state.silent(), None)
            if res.moves:
                return self._action(
                    "restore",
                    None,
                    res,
                    urgent=False,
                    now_s=now_s,
                    why="normal paths are healthy and stable again",
                )
            return None
        notes.append(f"restore not possible yet: {res.reason}")
        return None

    def _restorable(
        self,
        assignment: Mapping[str, str | None],
        circuit_reachable: Mapping[str, bool],
        alerts: frozenset[str],
        unavailable: set[str],
    ) -> bool:
        """Some circuit is off its normal path and that path could take it back."""
        topo = self.topology
        for cid, node in topo.circuits.items():
            path = assignment.get(cid)
            if path is None or path == node.normal_path or not circuit_reachable[cid]:
                continue
            normal = node.normal_path
            if normal in unavailable or topo.ats_of(normal) in unavailable:
                continue
            if normal in alerts or topo.ats_of(normal) in alerts:
                continue
            return True
        return False

    def _action(
        self,
        kind: ActionKind,
        target: str | None,
        plan: Plan,
        *,
        urgent: bool,
        now_s: float,
        why: str,
    ) -> Action:
        cfg = self.config
        if len(plan.moves) > cfg.max_moves_per_tick:
            steps = []
            count = 0
            for step in plan.steps:
                if count + len(step.moves) > cfg.max_moves_per_tick:
                    break
                steps.append(step)
                count += len(step.moves)
            plan = replace(plan, steps=tuple(steps), notes=(*plan.notes, "truncated"))
        return Action(
            kind=kind,
            target=target,
            plan=plan,
            reason=why,
            urgent=urgent,
            step_interval_s=cfg.poll_s if urgent else cfg.step_interval_s,
            created_s=now_s,
        )
