"""When no relief fits: the question put to a person about an element forecast over its limit.

The relief rule (``rules.py``, step 3) moves circuits off an element whose P90 load forecast
crosses its continuous limit soon. In a tight hall no relief keeps every element within its
limit: the engine must then neither leave the element silently above its limit nor push the
excess onto a receiver. It asks, as the drain rule does (``asking.py``), with a
:class:`DecisionNeeded` of ``kind="relief"`` about the element (*Decision needed at mpdu3*):

* ``keep_load``: nothing moves; how far (A and % of the limit) and how long the element runs
  above its limit at the P90;
* ``partial_relief``: what moves within every other element's limit, and what it leaves over.
  It is the relief plan the engine itself runs when that plan leaves the element over its limit
  (a best-effort relief); else the smallest share of the excess the element must keep for a
  plan to exist (the rest moves, every other element within its limit), not run without an
  answer;
* ``shed:<circuit>``: a non-critical circuit on the element switched off, after which a relief
  (possibly none) keeps every element within its limit. Offered only when one such circuit does.

The no-answer rule (automatic mode): the partial relief when the engine already runs it and it
keeps every other element within its limit, else keep the load: never a shed, never a plan that
pushes an element above its limit.

A question lasts while its cause does: it is asked again (the same id, the same first-raised
time) at every relief plan while the element is still forecast over its limit within the
relief's lead and no relief fits; it goes when a relief fits, or when the element's P90 has
not crossed its limit within the forecast horizon for a whole forecast interval
(``ReliefQuestions.keep``): one refresh whose forecast dips under the limit does not close it
(and announce it again at the next).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace

from .asking import SHED_TRIED, Planner, excursions
from .decisions import DecisionChoice, DecisionNeeded, Excursion, OverloadPrediction
from .element_forecast import ElementForecasts
from .plan import Infeasible, Plan
from .plan_problem import fmt_time
from .plan_retries import EXCESS_KEPT, RELAX_STEPS, PlanRequest, relaxed_each
from .policy_config import PolicyConfig
from .topology import Topology

__all__ = ["ReliefQuestions"]


def _over(x: Excursion, within: str) -> str:
    return (
        f"{x.element} runs up to {x.over_a:.1f} A ({x.over_pct:.0f} %) above its "
        f"{x.limit_a:.1f} A limit for {x.over_s / 3600:.1f} h {within}"
    )


def _circuits(n: int) -> str:
    return f"{n} circuit" if n == 1 else f"{n} circuits"


@dataclass(frozen=True, slots=True)
class _Basis:
    """What every relief question of one plan shares."""

    topology: Topology
    forecasts: ElementForecasts
    config: PolicyConfig
    planner: Planner
    now_s: float
    assignment: Mapping[str, str | None]
    circuit_a: Mapping[str, float]
    unavailable: Collection[str]

    @property
    def near_s(self) -> float:
        """The relief's lead: an element still over its limit before then asks."""
        return self.now_s + self.config.relieve_lead_s

    @property
    def end_s(self) -> float:
        """The window the numbers are given over (the relief's longer horizon)."""
        return self.now_s + 2 * self.config.relieve_lead_s

    @property
    def within(self) -> str:
        return f"within the next {(self.end_s - self.now_s) / 3600:.0f} h"

    def request(self, goal: str, horizons: tuple[float | None, ...]) -> PlanRequest:
        return PlanRequest(
            self.now_s,
            drain=None,
            unavailable=self.unavailable,
            goal=goal,
            max_step_amps=self.config.max_step_amps,
            horizons=horizons,
        )

    def over(self, assignment: Mapping[str, str | None], until_s: float) -> dict[str, Excursion]:
        return {
            x.element: x for x in excursions(self.topology, self.forecasts, assignment, until_s)
        }


@dataclass
class ReliefQuestions:
    """The open relief questions, one per element, kept between plans."""

    asked: dict[str, DecisionNeeded] = field(default_factory=dict)
    clear_since: dict[str, float] = field(default_factory=dict)
    """Element -> since when it has not been forecast over its limit (its question waits)."""

    def open(self, besides: Collection[str] = ()) -> tuple[DecisionNeeded, ...]:
        """The open questions, but none about an element in ``besides`` (a drain question
        about it is open: draining it relieves it too, and one question per element)."""
        return tuple(self.asked[e] for e in sorted(self.asked) if e not in besides)

    def keep(self, over: Iterable[str], now_s: float, hold_s: float) -> None:
        """Questions about elements forecast over their limit (``over``) stay; one about an
        element that has not been for ``hold_s`` goes."""
        kept = set(over)
        for e in list(self.asked):
            if e in kept:
                self.clear_since.pop(e, None)
            elif now_s - self.clear_since.setdefault(e, now_s) >= hold_s:
                del self.asked[e]
                del self.clear_since[e]

    def ask(
        self,
        topology: Topology,
        forecasts: ElementForecasts,
        config: PolicyConfig,
        planner: Planner,
        *,
        now_s: float,
        soon: Iterable[OverloadPrediction],
        relief: Plan | Infeasible,
        assignment: Mapping[str, str | None],
        circuit_a: Mapping[str, float],
        unavailable: Collection[str],
    ) -> None:
        """After the relief rule planned (``relief``: its plan, or why there is none): ask
        about every element of ``soon`` the relief leaves over its limit at the P90 before the
        relief's lead, or about all of them when the relief pushes another element above its
        limit (or longer above it); forget the question about one it relieves."""
        b = _Basis(topology, forecasts, config, planner, now_s, assignment, circuit_a, unavailable)
        run = relief if isinstance(relief, Plan) and relief.moves else None
        left = b.over(run.final_assignment if run is not None else assignment, b.near_s)
        was = b.over(assignment, b.near_s)
        # A relief that pushes another element above its limit (longer) does not fit either.
        pushed = any(
            x.element not in was or x.over_s > was[x.element].over_s for x in left.values()
        )
        before = b.over(assignment, b.end_s)
        partial: Plan | None = None
        tried = False
        for o in soon:
            e = o.element
            if (e not in left and not pushed) or e not in before:
                self.asked.pop(e, None)
                self.clear_since.pop(e, None)
                continue
            own = run
            if own is None and not tried:
                tried = True
                partial = _partial(b, set(left))
            choices = [_keep(b, e, before[e])]
            plan = own if own is not None else partial
            safe = False
            if plan is not None:
                choice = _partial_choice(b, e, plan, before)
                safe = choice.within_limits and own is not None
                choices.append(choice)
            shed = _shed(b, e)
            if shed is not None:
                choices.append(shed)
            rec = DecisionNeeded(
                element=e,
                raised_s=now_s,
                deadline_s=o.crossing_s if o.crossing_s is not None else now_s,
                choices=tuple(choices),
                at_stake=tuple(
                    sorted(c for c in topology.circuits_through(e, assignment) if circuit_a.get(c))
                ),
                reason=(
                    f"the forecast P90 load of {e} reaches its {before[e].limit_a:.1f} A "
                    f"continuous limit at {fmt_time(o.crossing_s or now_s)} and no relief keeps "
                    "every element within its limit"
                ),
                fallback="partial_relief" if safe else "keep_load",
                kind="relief",
            )
            prev = self.asked.get(e)
            first = prev.raised_s if prev is not None and prev.id == rec.id else now_s
            self.asked[e] = replace(
                rec,
                raised_s=first,
                answer_by_s=first + config.decision_timeout_s
                if config.mode == "automatic"
                else None,
            )


def _keep(b: _Basis, e: str, x: Excursion) -> DecisionChoice:
    on = [c for c in b.topology.circuits_through(e, b.assignment) if b.circuit_a.get(c)]
    return DecisionChoice(
        key="keep_load",
        plan=None,
        summary=f"Keep the load: nothing moves; at the P90 {_over(x, b.within)}.",
        excursions=(x,),
        left=tuple(sorted(on)),
        left_a=sum(b.circuit_a.get(c, 0.0) for c in on),
        left_critical=sum(1 for c in on if b.topology.circuits[c].critical),
    )


def _partial(b: _Basis, over: set[str]) -> Plan | None:
    """The relief that keeps the smallest share of every over element's excess (the rest
    moves; every other element stays within its limit, the over ones take no load), or None."""
    peaks = b.over(b.assignment, b.near_s)
    margin = 1.0 + b.config.plan_margin
    excess = {
        e: max(peaks[e].peak_a * margin - peaks[e].limit_a, 0.0) / peaks[e].limit_a
        for e in over
        if e in peaks
    }
    fracs = [{e: kept * x for e, x in excess.items()} for kept in EXCESS_KEPT]
    fracs += [dict.fromkeys(excess, f) for f in RELAX_STEPS]
    req = replace(b.request("partial relief", (b.near_s,)), no_receive=sorted(excess))
    for frac in fracs:
        res = b.planner(relaxed_each(b.topology, frac), b.assignment, req)
        if isinstance(res, Plan):
            return res if res.moves else None
    return None


def _partial_choice(
    b: _Basis, e: str, plan: Plan, before: Mapping[str, Excursion]
) -> DecisionChoice:
    after = b.over(plan.final_assignment, b.end_s)
    # Within limits: no other element runs above its limit longer than it did without it.
    worse = tuple(
        x
        for x in after.values()
        if x.element != e and (x.element not in before or x.over_s > before[x.element].over_s)
    )
    moved = sorted(
        c
        for c in plan.circuits
        if any(m.circuit == c and b.topology.depends_on(m.from_mpdu, e) for m in plan.moves)
    )
    moved_a = sum(b.circuit_a.get(c, 0.0) for c in moved)
    left = [c for c in b.topology.circuits_through(e, plan.final_assignment) if b.circuit_a.get(c)]
    rest = after.get(e)
    return DecisionChoice(
        key="partial_relief",
        plan=plan,
        summary=(
            f"Partial relief: {_circuits(len(moved))} ({moved_a:.1f} A) "
            + ("moves" if len(moved) == 1 else "move")
            + f" off {e}"
            + (" within every other limit" if not worse else "")
            + "; at the P90 "
            + (_over(rest, b.within) if rest is not None else f"{e} then stays within its limit")
            + "".join(f"; and {_over(x, b.within)}" for x in worse)
            + "."
        ),
        within_limits=not worse,
        excursions=(*(() if rest is None else (rest,)), *worse),
        moved=tuple(moved),
        moved_a=moved_a,
        left=tuple(sorted(left)),
        left_a=sum(b.circuit_a.get(c, 0.0) for c in left),
        left_critical=sum(1 for c in left if b.topology.circuits[c].critical),
    )


def _shed(b: _Basis, e: str) -> DecisionChoice | None:
    """A non-critical circuit on ``e`` whose switching off lets a relief keep every element
    within its limit (the largest of the first few that does), or None."""
    topo = b.topology
    candidates = sorted(
        (
            c
            for c in topo.circuits_through(e, b.assignment)
            if not topo.circuits[c].critical and b.circuit_a.get(c, 0.0) > 0
        ),
        key=lambda c: -b.circuit_a.get(c, 0.0),
    )[:SHED_TRIED]
    for c in candidates:
        lineup = {**b.assignment, c: None}
        res = b.planner(
            topo, lineup, b.request(f"relieve {e} ({c} shed)", (None, b.end_s, b.near_s))
        )
        if not isinstance(res, Plan) or e in b.over(res.final_assignment, b.near_s):
            continue
        amps = b.circuit_a.get(c, 0.0)
        moves = len(res.moves)
        return DecisionChoice(
            key=f"shed:{c}",
            plan=res,
            summary=(
                f"Shed {c} (non-critical, {amps:.1f} A): it is switched off"
                + (
                    f", then {_circuits(moves)} move within every limit"
                    if moves
                    else ", and nothing else moves"
                )
                + f"; {e} stays within its limit."
            ),
            moved=tuple(sorted(res.circuits)),
            moved_a=sum(b.circuit_a.get(m, 0.0) for m in res.circuits),
            shed=c,
            shed_a=amps,
        )
    return None
