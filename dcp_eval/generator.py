"""Varied random scenarios, for testing the engine on plants and faults nobody tuned it on.

``generate_scenario(seed, case)`` builds a plant of 2-4 ATSs, 2-6 MPDUs and 20-80 circuits with
randomised ratings, loads and alternate paths, one fault of the requested ``case`` and a random
set of distractions (ambient excursions, unannounced surges within the limits, stuck sensors,
communications drops, utility outages). Plants are sized so that the fault has a safe answer:
the load of any one ATS fits on the others at peak (so a drain is physically possible), and a
load trend really would trip its MPDU if nothing moved.

Loads have real-world structure (``realistic_loads``, the default; issue 21): per-weekday levels
around a site-wide pattern, holidays, Monday-morning ramps, nightly batch peaks, servers added or
removed, slow growth, autocorrelated noise with louder bursts. Their parameters come from their
own random stream, so a seed keeps its plant and faults; plants are sized on the noise-free load
the simulator itself computes (``LoadModel.expected``), structure included.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, Final, Literal

import numpy as np

from dcp_sim.loads import LoadModel
from dcp_sim.scenario import Scenario, parse_scenario

__all__ = [
    "CASES",
    "WEAR_CLASSES",
    "Case",
    "WearClass",
    "generate_scenario",
    "generate_spec",
    "generate_wear_scenario",
    "generate_wear_spec",
]

type Case = Literal["quiet", "ats_wear", "mpdu_wear", "trend", "sudden"]
CASES: Final[tuple[Case, ...]] = ("quiet", "ats_wear", "mpdu_wear", "trend", "sudden")
PEAK_FACTOR: Final = 1.35
"""Peak / mean of a circuit's load (daily and weekly shape), for sizing."""


def _h(hours: float) -> str:
    return f"{round(hours * 60)}m"


# --------------------------------------------------------------------------------------------
# Real-world load structure (issue 21, item 4)
# --------------------------------------------------------------------------------------------

HOLIDAY_SETS: Final[tuple[tuple[str, ...], ...]] = (
    (),
    ("2026-04-03", "2026-04-06"),  # Good Friday and Easter Monday (UK, DE, ...)
    ("2026-04-03",),  # Good Friday only
)
"""Holiday calendars a generated site may keep (the generated windows fall around Easter 2026)."""


def random_holidays(rng: np.random.Generator) -> list[str]:
    """One of :data:`HOLIDAY_SETS` (none 40 %, Easter 40 %, Good Friday 20 %)."""
    return list(HOLIDAY_SETS[int(rng.choice(3, p=[0.4, 0.4, 0.2]))])


def site_week(rng: np.random.Generator) -> list[float]:
    """A site's weekday pattern, Monday..Sunday: working days near 1, a lighter weekend."""
    weekdays = [float(rng.uniform(0.97, 1.04)) for _ in range(5)]
    saturday = float(rng.uniform(0.78, 0.95))
    return [*weekdays, saturday, saturday * float(rng.uniform(0.92, 1.0))]


def random_structure(
    rng: np.random.Generator,
    load: dict[str, Any],
    week: Sequence[float],
    *,
    window_h: tuple[float, float],
) -> None:
    """Add varied, plausible structure to one circuit's ``load`` (in place).

    Every circuit: its own peak hour, weekday levels scattered around the site's ``week``, a
    flatter daily cycle on non-working days, AR(1) noise (10-40 min) at 2-4 %. Some circuits:
    a Monday-morning ramp (office-hours load, 50 %), a nightly batch peak (35 %), slow growth
    (40 %), noise bursts (30 %), one step of servers added (70 %) or removed somewhere in
    ``window_h`` (scenario hours; 15 %; ``delta_rel`` relative to the mean until sizing ends).
    """
    daily = float(load.get("daily", 0.2))
    load["noise"] = round(float(rng.uniform(0.02, 0.04)), 3)
    load["peak_hour"] = round(float(rng.uniform(13.0, 17.0)), 2)
    load["weekday_profile"] = [round(w * float(rng.uniform(0.97, 1.03)), 3) for w in week]
    load["weekend_daily"] = round(daily * float(rng.uniform(0.3, 0.8)), 3)
    load["noise_correlation"] = f"{int(rng.integers(10, 41))}m"
    if rng.random() < 0.5:
        load["monday_ramp"] = {
            "depth": round(float(rng.uniform(0.05, 0.15)), 3),
            "start": f"{int(rng.integers(5, 9)):02d}:{int(rng.choice([0, 30])):02d}",
            "duration": f"{int(rng.integers(90, 241))}m",
        }
    if rng.random() < 0.35:
        load["batch"] = {
            "start": f"{int(rng.integers(0, 4)):02d}:{int(rng.choice([0, 15, 30, 45])):02d}",
            "duration": f"{int(rng.integers(45, 181))}m",
            "extra": round(float(rng.uniform(0.15, 0.4)), 3),
            "jitter": f"{int(rng.integers(0, 31))}m",
        }
    if rng.random() < 0.4:
        load["trend_per_day"] = round(float(rng.uniform(0.001, 0.008)), 4)
    if rng.random() < 0.3:
        load["noise_bursts"] = {
            "per_day": round(float(rng.uniform(0.2, 1.0)), 2),
            "duration": f"{int(rng.integers(30, 181))}m",
            "factor": round(float(rng.uniform(2.0, 4.0)), 2),
        }
    if rng.random() < 0.15:
        sign = 1.0 if rng.random() < 0.7 else -1.0
        load["steps"] = [
            {
                "at": _h(float(rng.uniform(*window_h))),
                "delta_rel": round(sign * float(rng.uniform(0.1, 0.3)), 3),
            }
        ]


def _absolute_steps(load: dict[str, Any]) -> None:
    """``delta_rel`` (relative to the mean, while sizing) to the format's ``delta_a``."""
    for step in load.get("steps", []):
        if "delta_rel" in step:
            step["delta_a"] = round(step.pop("delta_rel") * load["mean_a"], 3)


def noise_free_loads(
    circuits: list[dict[str, Any]],
    *,
    seed: int,
    start: str,
    holidays: Sequence[str],
    t0_h: float,
    t1_h: float,
    step_h: float = 0.25,
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The simulator's noise-free demand (times x circuits, file order) over [t0, t1] hours,
    structure included and no events, for sizing a plant before it is complete."""
    mpdus = sorted({p for c in circuits for p in c["paths"]})
    loads = []
    for c in circuits:
        load = copy.deepcopy(c["load"])
        _absolute_steps(load)
        loads.append({"id": c["id"], "paths": [c["paths"][0]], "rating_a": 1e6, "load": load})
    doc = {
        "version": 1,
        "name": "sizing",
        "seed": int(seed),
        "start": start,
        "history": "0s",
        "duration": "60s",
        "step": "60s",
        "sources": [{"id": "s", "nominal_v": 230}],
        "ats": [
            {
                "id": "a",
                "sources": ["s"],
                "rating_a": 1e6,
                "transfer_time": "100ms",
                "rated_operations": 1,
            }
        ],
        "mpdus": [{"id": m, "ats": "a", "rating_a": 1e6} for m in mpdus],
        "circuits": loads,
        "holidays": list(holidays),
    }
    model = LoadModel(parse_scenario(doc, source="<sizing>"), np.random.default_rng(0))
    times = np.arange(t0_h, t1_h + step_h / 2, step_h) * 3600.0
    return np.array([model.expected(float(t)) for t in times])


def generate_spec(
    seed: int,
    case: Case = "quiet",
    *,
    history_h: float = 96.0,
    duration_h: float = 36.0,
    n_ats: int | None = None,
    n_mpdus: int | None = None,
    n_circuits: int | None = None,
    distractions: bool = True,
    realistic_loads: bool = True,
) -> dict[str, Any]:
    """The scenario as a mapping (``parse_scenario`` input); ``realistic_loads=False`` gives the
    plain loads (daily cosine, weekday step, white noise) of the generator before issue 21."""
    rng = np.random.default_rng([seed, 0xD15C])
    rng_loads = np.random.default_rng([seed, 0x10AD5])
    start = "2026-04-06T00:00:00Z"
    week = site_week(rng_loads)
    holidays = random_holidays(rng_loads) if realistic_loads else []
    na = int(n_ats if n_ats is not None else rng.integers(2, 5))
    nm = int(n_mpdus if n_mpdus is not None else rng.integers(max(2, na), 7))
    nm = max(nm, na)
    nc = int(n_circuits if n_circuits is not None else rng.integers(20, 81))
    ats_ids = [f"ats{i + 1}" for i in range(na)]
    sources = ["util_a", "util_b"] + (["gen1"] if na > 2 else [])
    # MPDUs: every ATS feeds at least one.
    feed = [ats_ids[i % na] for i in range(nm)]
    mpdu_ids = [f"mpdu{i + 1}" for i in range(nm)]
    m_rating = {m: float(rng.choice([80, 100, 125])) for m in mpdu_ids}
    ats_specs = []
    for i, a in enumerate(ats_ids):
        own = sum(m_rating[m] for m, f in zip(mpdu_ids, feed, strict=True) if f == a)
        srcs = [sources[i % len(sources)], *[s for s in sources if s != sources[i % len(sources)]]]
        ats_specs.append(
            {
                "id": a,
                "sources": srcs,
                "rating_a": float(max(own * 1.6, 200.0)),
                "transfer_time": f"{int(rng.integers(60, 150))}ms",
                "rated_operations": 6000,
            }
        )
    # Utilisation at peak on the normal paths: low enough that one ATS's load fits elsewhere.
    u = float(rng.uniform(0.3, 0.42) if na == 2 else rng.uniform(0.35, 0.5))
    if case == "sudden":
        # Fuller plants: the SBMs' bypass then overloads the path it dumps the load on.
        u = float(rng.uniform(0.55, 0.7))
    normal = [mpdu_ids[i % nm] for i in range(nc)]
    rng.shuffle(normal)
    circuits: list[dict[str, Any]] = []
    count = {m: normal.count(m) for m in mpdu_ids}
    for i, m in enumerate(normal):
        other = [x for x in mpdu_ids if feed[mpdu_ids.index(x)] != feed[mpdu_ids.index(m)]]
        k = min(len(other), int(rng.integers(1, 3)))
        alts = list(rng.choice(other, size=k, replace=False))
        mean = u * 0.8 * m_rating[m] / (PEAK_FACTOR * count[m]) * float(rng.uniform(0.7, 1.3))
        circuits.append(
            {
                "id": f"c{i + 1:02d}",
                "paths": [m, *alts],
                "rating_a": 32 if mean > 8 else 16,
                "load": {
                    "mean_a": round(mean, 3),
                    "daily": round(float(rng.uniform(0.1, 0.3)), 3),
                    "weekly": 0.05,
                    "noise": 0.03,
                },
            }
        )
    if realistic_loads:
        for c in circuits:
            random_structure(rng_loads, c["load"], week, window_h=(-history_h, duration_h))

    def peaks() -> Any:
        """Noise-free demand over the whole scenario (None: the plain PEAK_FACTOR estimate)."""
        if not realistic_loads:
            return None
        return noise_free_loads(
            circuits, seed=seed, start=start, holidays=holidays, t0_h=-history_h, t1_h=duration_h
        )

    def peak(nf: Any, members: Sequence[dict[str, Any]]) -> float:
        """Highest total of ``members``' loads (all at their own peak without the model)."""
        if nf is None:
            return float(sum(c["load"]["mean_a"] for c in members) * PEAK_FACTOR)
        cols = [circuits.index(c) for c in members]
        return float(nf[:, cols].sum(axis=1).max()) if cols else 0.0

    # Without any one ATS, the rest must carry the whole peak with room to spare (otherwise no
    # drain is possible and the case would test physics, not the engine): scale loads down.
    limit = {m: 0.8 * r for m, r in m_rating.items()}
    peak_total = peak(peaks(), circuits)
    room = min(
        sum(limit[m] for m, f in zip(mpdu_ids, feed, strict=True) if f != a) for a in ats_ids
    )
    scale = min(1.0, 0.8 * room / peak_total)
    for c in circuits:
        c["load"]["mean_a"] = round(c["load"]["mean_a"] * scale, 3)
    dur = duration_h
    events: list[dict[str, Any]] = []
    if case in ("ats_wear", "mpdu_wear"):
        target = str(rng.choice(ats_ids if case == "ats_wear" else mpdu_ids))
        onset = float(rng.uniform(1.0, 4.0))
        failure = min(dur - 4.0, onset + float(rng.uniform(18.0, 26.0)))
        events.append(
            {
                "kind": "ats_contact_wear" if case == "ats_wear" else "mpdu_breaker_wear",
                "target": target,
                "onset": _h(onset),
                "failure": _h(failure),
                "repair_after": _h(float(rng.uniform(2.0, 4.0))),
                "precursor_scale": round(float(rng.uniform(0.5, 1.0)), 2),
            }
        )
    elif case == "trend":
        m = str(rng.choice(mpdu_ids))
        on_m = [c for c in circuits if c["paths"][0] == m]
        k = min(len(on_m), int(rng.integers(3, 7)))
        picks = [on_m[int(j)] for j in rng.choice(len(on_m), size=k, replace=False)]
        for c in picks:  # trending circuits need rating headroom
            c["rating_a"] = 32
        onset = float(rng.uniform(2.0, 8.0))
        span = dur - onset - 2.0
        nf = peaks()
        peak_now = peak(nf, on_m)
        # Enough growth to trip the MPDU if nothing moves, but no more than the other MPDUs
        # can absorb (a plant that cannot carry its load anywhere tests physics, not the engine).
        reachable = {x for c in picks for x in c["paths"][1:]}
        free = sum(
            limit[x] - peak(nf, [c for c in circuits if c["paths"][0] == x]) for x in reachable
        )
        goal = min(1.4 * m_rating[m], limit[m] + 0.6 * free)
        growth = max(goal - peak_now, 0.2 * m_rating[m]) / (k * span)
        events.append(
            {
                "kind": "load_trend",
                "targets": [c["id"] for c in picks],
                "onset": _h(onset),
                "growth_a_per_h": round(growth, 3),
            }
        )
    elif case == "sudden":
        target = str(rng.choice(mpdu_ids + ats_ids))
        events.append(
            {
                "kind": "sudden_failure",
                "target": target,
                "at": _h(float(rng.uniform(4.0, dur - 8.0))),
                "repair_after": _h(float(rng.uniform(2.0, 4.0))),
            }
        )
    if distractions:
        for _ in range(int(rng.integers(1, 4))):
            kind = str(
                rng.choice(
                    ["ambient", "surge", "stuck", "comms", "outage"], p=[0.3, 0.2, 0.2, 0.2, 0.1]
                )
            )
            at = _h(float(rng.uniform(1.0, dur - 2.0)))
            if kind == "ambient":
                events.append(
                    {
                        "kind": "ambient_excursion",
                        "at": at,
                        "duration": _h(float(rng.uniform(1.0, 4.0))),
                        "delta_c": round(float(rng.uniform(3.0, 7.0)), 1),
                    }
                )
            elif kind == "surge":
                chosen = rng.choice(len(circuits), size=min(4, len(circuits)), replace=False)
                events.append(
                    {
                        "kind": "load_surge",
                        "targets": [circuits[int(j)]["id"] for j in chosen],
                        "at": at,
                        "duration": _h(float(rng.uniform(0.5, 2.0))),
                        "extra_a": round(float(rng.uniform(1.0, 2.5)), 2),
                    }
                )
            elif kind in ("stuck", "comms"):
                pool = [*ats_ids, *mpdu_ids, circuits[0]["id"]] + (
                    ["env1"] if kind == "stuck" else []
                )
                events.append(
                    {
                        "kind": "sensor_stuck" if kind == "stuck" else "comms_loss",
                        "target": str(rng.choice(pool)),
                        "at": at,
                        "duration": _h(float(rng.uniform(0.15, 0.7))),
                    }
                )
            else:
                events.append(
                    {
                        "kind": "source_outage",
                        "target": str(rng.choice(sources)),
                        "at": at,
                        "duration": _h(float(rng.uniform(0.25, 0.5))),
                    }
                )
    for c in circuits:
        _absolute_steps(c["load"])
    return {
        "version": 1,
        "name": f"gen-{case}-{seed}",
        "description": f"generated: {na} ATS, {nm} MPDU, {nc} circuits, case {case}",
        "seed": int(seed),
        "start": start,
        "history": _h(history_h),
        "duration": _h(duration_h),
        "step": "60s",
        "ride_through": "20ms",
        "bypass_delay": "30ms",
        "environment": {"ambient_c": round(float(rng.uniform(20, 26)), 1), "humidity_pct": 45},
        "sources": [{"id": s, "nominal_v": 230} for s in sources],
        "ats": ats_specs,
        "mpdus": [
            {"id": m, "ats": f, "rating_a": m_rating[m]}
            for m, f in zip(mpdu_ids, feed, strict=True)
        ],
        "circuits": circuits,
        "events": events,
        **({"holidays": holidays} if holidays else {}),
    }


def generate_scenario(seed: int, case: Case = "quiet", **kwargs: Any) -> Scenario:
    """A validated random scenario (see :func:`generate_spec` for the knobs)."""
    return parse_scenario(generate_spec(seed, case, **kwargs), source=f"<generated {case} {seed}>")


# --------------------------------------------------------------------------------------------
# Wear of unknown shape, units with unusual normals, long room excursions (issue 10, item 3)
# --------------------------------------------------------------------------------------------

type WearClass = Literal["ats_wear", "mpdu_wear", "healthy_unusual", "ambient"]
WEAR_CLASSES: Final[tuple[WearClass, ...]] = ("ats_wear", "mpdu_wear", "healthy_unusual", "ambient")
EXPONENT_RANGE: Final = (0.7, 3.5)
GAIN_RANGE: Final = (0.0, 2.0)
VISIBLE_GAIN: Final = 0.5
"""A continuously sampled signal (temperature, ripple) at this gain or more makes a wear visible;
self-tests (four a day) and nuisance trips alone are too sparse to warn a quarter-window ahead."""


def randomize_normals(spec: dict[str, Any], rng: np.random.Generator) -> None:
    """Give every ATS and MPDU its own healthy ``thermal_rise_c`` (10-60) and ``ripple_pct``
    (0.1-2), in place."""
    for unit in (*spec["ats"], *spec["mpdus"]):
        unit["thermal_rise_c"] = round(float(rng.uniform(10.0, 60.0)), 1)
        unit["ripple_pct"] = round(float(rng.uniform(0.1, 2.0)), 2)


def random_precursors(rng: np.random.Generator, kind: str) -> dict[str, Any]:
    """A random wear shape: exponent 0.7-3.5, gains 0-2 per signal, at least one visible."""
    gains = {
        k: round(float(rng.uniform(*GAIN_RANGE)), 2)
        for k in ("temperature", "ripple", "transfer", "nuisance")
    }
    if kind == "mpdu_breaker_wear":
        gains.pop("transfer")  # an MPDU has no transfer mechanism
    visible = ("temperature", "ripple")
    if max(gains[k] for k in visible) < VISIBLE_GAIN:
        gains[str(rng.choice(visible))] = round(float(rng.uniform(VISIBLE_GAIN, 2.0)), 2)
    return {
        "precursor_exponent": round(float(rng.uniform(*EXPONENT_RANGE)), 2),
        "precursor_gains": gains,
    }


def generate_wear_spec(
    seed: int,
    wear_class: WearClass,
    *,
    history_h: float = 14 * 24.0,
    duration_h: float = 60.0,
    **kwargs: Any,
) -> dict[str, Any]:
    """A plant whose units have random normals, with one of the wear classes:

    * ``ats_wear`` / ``mpdu_wear``: one wear event of random shape, gains, scale (0.5-1) and
      window (12-40 h), plus the usual distractions;
    * ``healthy_unusual``: no fault, only the distractions;
    * ``ambient``: no fault; the room runs 5-8 degC warm for 14-22 h.
    """
    rng = np.random.default_rng([seed, 0x5AA9E])
    case: Case = (
        "ats_wear"
        if wear_class == "ats_wear"
        else "mpdu_wear"
        if wear_class == "mpdu_wear"
        else "quiet"
    )
    spec = generate_spec(seed, case, history_h=history_h, duration_h=duration_h, **kwargs)
    randomize_normals(spec, rng)
    spec["name"] = f"gen-{wear_class}-{seed}"
    spec["description"] = spec["description"].replace(f"case {case}", f"class {wear_class}")
    events: list[dict[str, Any]] = spec["events"]
    wear = [e for e in events if str(e["kind"]).endswith("_wear")]
    for event in wear:
        onset = float(rng.uniform(2.0, 16.0))
        window = float(rng.uniform(12.0, 40.0))
        failure = min(duration_h - 6.0, onset + window)
        event["onset"], event["failure"] = _h(onset), _h(failure)
        event.update(random_precursors(rng, str(event["kind"])))
    if wear_class == "ambient":
        events.append(
            {
                "kind": "ambient_excursion",
                "at": _h(float(rng.uniform(2.0, max(3.0, duration_h - 24.0)))),
                "duration": _h(float(rng.uniform(14.0, 22.0))),
                "delta_c": round(float(rng.uniform(5.0, 8.0)), 1),
            }
        )
    return spec


def generate_wear_scenario(seed: int, wear_class: WearClass, **kwargs: Any) -> Scenario:
    """A validated :func:`generate_wear_spec` scenario."""
    return parse_scenario(
        generate_wear_spec(seed, wear_class, **kwargs), source=f"<generated {wear_class} {seed}>"
    )


# ------------------------------------------------------------------------------------------
# Hard classes for the oracle study (issue 10): tight plants, 3-way topologies, drains that
# overlap trends and surges, outages during drains; and the shared scenarios with heavier loads.
# ------------------------------------------------------------------------------------------

type HardClass = Literal["tight", "three_way", "drain_trend_surge", "outage_during_drain"]
HARD_CLASSES: Final[tuple[HardClass, ...]] = (
    "tight",
    "three_way",
    "drain_trend_surge",
    "outage_during_drain",
)


def _smooth_peak(
    circuits: list[dict[str, Any]], ids: set[str], t0_h: float, t1_h: float, start_h: int
) -> float:
    """Highest noise-free total demand of ``ids`` over [t0, t1] hours (weekday)."""
    hours = np.arange(t0_h, t1_h + 0.25, 0.25) + start_h
    shape = np.cos(2.0 * np.pi * (hours % 24.0 - 15.0) / 24.0)
    total = np.zeros_like(hours)
    for c in circuits:
        if c["id"] in ids:
            ld = c["load"]
            total += ld["mean_a"] * (1.0 + ld["daily"] * shape + ld["weekly"])
    return float(total.max())


def generate_hard_spec(
    seed: int,
    cls: HardClass,
    *,
    history_h: float = 72.0,
    duration_h: float = 30.0,
    realistic_loads: bool = True,
) -> dict[str, Any]:
    """A plant where a drain is hard but possible (``parse_scenario`` input).

    * ``tight``: two or three ATSs; after the best complete drain of the wearing ATS the
      worst receiver peaks at 75-80 % of its rating (noise-free, fluid estimate) during the
      failure window;
    * ``three_way``: three ATSs on three sources, every circuit with paths on three ATSs;
    * ``drain_trend_surge``: a drain whose receivers also see a load trend and surges;
    * ``outage_during_drain``: a receiving ATS's preferred source is lost before the failure.

    The failure falls at a random hour of the day (near the daily minimum or maximum alike).
    Utilisations are of the noise-free load, structure included (``realistic_loads=False``: the
    plain loads of the generator before issue 21).
    """
    rng = np.random.default_rng([seed, 0x10AC, HARD_CLASSES.index(cls)])
    rng_loads = np.random.default_rng([seed, 0x10AD5, HARD_CLASSES.index(cls)])
    week = site_week(rng_loads)
    holidays = random_holidays(rng_loads) if realistic_loads else []
    na = 3 if cls == "three_way" else int(rng.integers(2, 4))
    ats_ids = [f"ats{i + 1}" for i in range(na)]
    sources = ["util_a", "util_b", "gen1"][: max(2, na)]
    per = [int(rng.integers(1, 3)) for _ in ats_ids]
    feed = [a for a, k in zip(ats_ids, per, strict=True) for _ in range(k)]
    mpdu_ids = [f"mpdu{i + 1}" for i in range(len(feed))]
    m_ats = dict(zip(mpdu_ids, feed, strict=True))
    m_rating = {m: float(rng.choice([80, 100, 125])) for m in mpdu_ids}
    nc = int(rng.integers(18, 40))
    circuits: list[dict[str, Any]] = []
    for i in range(nc):
        m = mpdu_ids[i % len(mpdu_ids)] if i < len(mpdu_ids) else str(rng.choice(mpdu_ids))
        other_ats = [a for a in ats_ids if a != m_ats[m]]
        if cls == "three_way":
            alts = [str(rng.choice([x for x in mpdu_ids if m_ats[x] == a])) for a in other_ats]
        else:
            pool = [x for x in mpdu_ids if m_ats[x] != m_ats[m]]
            k = min(len(pool), int(rng.integers(1, 3)))
            alts = [str(x) for x in rng.choice(pool, size=k, replace=False)]
        circuits.append(
            {
                "id": f"c{i + 1:02d}",
                "paths": [m, *alts],
                "rating_a": 32,
                "load": {
                    "mean_a": float(rng.uniform(2.0, 8.0)),
                    "daily": round(float(rng.uniform(0.15, 0.35)), 3),
                    "weekly": 0.05,
                    "noise": 0.03,
                },
            }
        )
    start_h = int(rng.integers(0, 24))
    start = f"2026-04-07T{start_h:02d}:00:00Z"
    if realistic_loads:
        for c in circuits:
            random_structure(rng_loads, c["load"], week, window_h=(-history_h, duration_h))

    def smooth_peak(ids: set[str], t0_h: float, t1_h: float, own: bool = False) -> float:
        """Highest noise-free total of ``ids`` over [t0, t1] scenario hours."""
        if not realistic_loads:
            return _smooth_peak(circuits, ids, t0_h, t1_h, 0 if own else start_h)
        nf = noise_free_loads(
            circuits, seed=seed, start=start, holidays=holidays, t0_h=t0_h, t1_h=t1_h
        )
        cols = [i for i, c in enumerate(circuits) if c["id"] in ids]
        return float(nf[:, cols].sum(axis=1).max())

    target = str(rng.choice(ats_ids))
    onset = float(rng.uniform(1.0, 3.0))
    failure = float(rng.uniform(onset + 12.0, duration_h - 5.0))
    repair = float(rng.uniform(2.0, 4.0))
    # Scale the loads: after draining ``target`` the receivers (every MPDU of another ATS) carry
    # everything; aim their fluid worst utilisation over the failure window at ``u``.
    u = float(rng.uniform(0.75, 0.80)) if cls == "tight" else float(rng.uniform(0.6, 0.74))
    receivers = [m for m in mpdu_ids if m_ats[m] != target]
    cap = sum(m_rating[m] for m in receivers)
    peak = smooth_peak({c["id"] for c in circuits}, failure - 0.5, failure + repair)
    scale = u * cap / peak
    for c in circuits:
        c["load"]["mean_a"] = round(c["load"]["mean_a"] * scale, 3)
        c["rating_a"] = 32 if c["load"]["mean_a"] * 1.5 > 14 else 16
    # Normal paths must be fine by themselves (nobody starts above a limit): spread MPDU
    # ratings up where the normal load alone would peak above 70 %.
    for m in mpdu_ids:
        own_ids = {c["id"] for c in circuits if c["paths"][0] == m}
        own = (
            smooth_peak(own_ids, 0, 48, own=True)
            if not realistic_loads
            else smooth_peak(own_ids, -history_h, duration_h)
        )
        m_rating[m] = max(m_rating[m], float(math.ceil(own / 0.7 / 5.0) * 5.0))
    events: list[dict[str, Any]] = [
        {
            "kind": "ats_contact_wear",
            "target": target,
            "onset": _h(onset),
            "failure": _h(failure),
            "repair_after": _h(repair),
            "precursor_scale": round(float(rng.uniform(0.6, 1.0)), 2),
        }
    ]
    if cls == "drain_trend_surge":
        recv = [c for c in circuits if m_ats[c["paths"][0]] != target]
        k = min(len(recv), int(rng.integers(2, 5)))
        picks = [recv[int(j)] for j in rng.choice(len(recv), size=k, replace=False)]
        t_on = float(rng.uniform(onset + 2.0, failure - 4.0))
        events.append(
            {
                "kind": "load_trend",
                "targets": [c["id"] for c in picks],
                "onset": _h(t_on),
                "end": _h(failure + repair),
                "growth_a_per_h": round(float(rng.uniform(0.05, 0.15)), 3),
            }
        )
        for _ in range(int(rng.integers(1, 3))):
            chosen = rng.choice(len(recv), size=min(3, len(recv)), replace=False)
            events.append(
                {
                    "kind": "load_surge",
                    "targets": [recv[int(j)]["id"] for j in chosen],
                    "at": _h(float(rng.uniform(failure - 6.0, failure + 1.0))),
                    "duration": _h(float(rng.uniform(0.5, 1.5))),
                    "extra_a": round(float(rng.uniform(0.5, 1.5)), 2),
                }
            )
    elif cls == "outage_during_drain":
        other = [a for a in ats_ids if a != target]
        victim = str(rng.choice(other))
        src = sources[ats_ids.index(victim) % len(sources)]
        events.append(
            {
                "kind": "source_outage",
                "target": src,
                "at": _h(float(rng.uniform(max(onset + 6.0, failure - 8.0), failure - 0.5))),
                "duration": _h(float(rng.uniform(0.25, 0.75))),
            }
        )
    ats_specs = []
    for i, a in enumerate(ats_ids):
        own = sum(m_rating[m] for m in mpdu_ids if m_ats[m] == a)
        first = sources[i % len(sources)]
        ats_specs.append(
            {
                "id": a,
                "sources": [first, *[s for s in sources if s != first]],
                "rating_a": float(max(own * 1.6, 200.0)),
                "transfer_time": f"{int(rng.integers(60, 150))}ms",
                "rated_operations": 6000,
            }
        )
    for c in circuits:
        _absolute_steps(c["load"])
    return {
        "version": 1,
        "name": f"hard-{cls}-{seed}",
        "description": f"generated hard class {cls}: {na} ATS, {len(mpdu_ids)} MPDU, {nc} circuits",
        "seed": int(seed),
        "start": start,
        "history": _h(history_h),
        "duration": _h(duration_h),
        "step": "60s",
        "ride_through": "20ms",
        "bypass_delay": "30ms",
        "environment": {"ambient_c": round(float(rng.uniform(20, 26)), 1), "humidity_pct": 45},
        "sources": [{"id": s, "nominal_v": 230} for s in sources],
        "ats": ats_specs,
        "mpdus": [{"id": m, "ats": m_ats[m], "rating_a": m_rating[m]} for m in mpdu_ids],
        "circuits": circuits,
        "events": events,
        **({"holidays": holidays} if holidays else {}),
    }


def generate_hard_scenario(seed: int, cls: HardClass, **kwargs: Any) -> Scenario:
    """A validated scenario of a hard class (see :func:`generate_hard_spec`)."""
    return parse_scenario(generate_hard_spec(seed, cls, **kwargs), source=f"<hard {cls} {seed}>")


def scale_loads(doc: dict[str, Any], factor: float, *, suffix: str | None = None) -> dict[str, Any]:
    """A scenario document with every circuit's mean load multiplied by ``factor`` (the issue's
    "same file with bigger numbers"); ``[lo, hi]`` ranges scale both ends."""
    out = copy.deepcopy(doc)

    def times(value: Any) -> Any:
        return [v * factor for v in value] if isinstance(value, list) else value * factor

    def scaled(load: dict[str, Any]) -> None:
        load["mean_a"] = times(load["mean_a"])
        for step in load.get("steps", []):  # servers added or removed scale with the rest
            step["delta_a"] = times(step["delta_a"])

    for c in out.get("circuits", []):
        scaled(c["load"])
    for g in out.get("circuit_groups", []):
        scaled(g["load"])
    out["name"] = f"{doc['name']}-x{factor:g}" if suffix is None else f"{doc['name']}{suffix}"
    return out
