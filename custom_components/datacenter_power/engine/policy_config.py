"""The policy's tunables in one frozen dataclass (the integration exposes most as options).

Every number the decision rules use lives here, with why it has the value it has; nothing in the
rules is a bare constant.
"""

from __future__ import annotations

from dataclasses import dataclass

from .modes import Mode

__all__ = ["PolicyConfig"]


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Tunables of the policy (the integration exposes most of them as options)."""

    mode: Mode = "automatic"
    horizon_s: float = 86400.0
    """How far forecasts and failure predictions look ahead."""
    poll_s: float = 60.0
    resample_s: float = 900.0
    """Forecast grid step."""
    forecast_interval_s: float = 3600.0
    """How often the circuit forecasts are refreshed (cheap updates in between refits)."""
    refit_interval_s: float = 86400.0
    """How often each circuit's forecast model is refitted (the cheap update follows level and
    trend in between; a daily refit keeps 80 circuits affordable on a small machine)."""
    max_step_amps: float = 40.0
    """Amps moved per stage of a planned migration."""
    step_interval_s: float = 120.0
    """Pause between stages of a planned migration (verification happens in between)."""
    urgent_max_step_amps: float = 120.0
    """Amps moved per stage when an element is above its limit now."""
    failed_plan_hold_s: float = 1800.0
    """A non-urgent action that failed (rolled back, refused) is not planned again for this long:
    whatever made it fail (a stale forecast, a busy element) needs time to change."""
    urgent_retry_s: float = 300.0
    """An urgent relief that found (or executed) nothing useful is retried after this long,
    or at once when the set of overloaded or dead elements changes."""
    relieve_lead_s: float = 4 * 3600.0
    """Relieve a predicted overload when its P90 crossing is at most this far ahead."""
    relieve_confirmations: int = 2
    """...and it was predicted so at this many consecutive forecast refreshes (a forecast that
    briefly extrapolates a short surge is not acted on; a real trend persists)."""
    drain_min_horizon_s: float = 12 * 3600.0
    """Without a time-to-failure estimate, a drain must keep every element within its limit at
    least this far ahead (the whole horizon when it can); when none does, only what fits moves."""
    drain_hold_after_failure_s: float = 4 * 3600.0
    """With a time-to-failure estimate, a drain must keep every element within its limit from
    the drain until this long after the predicted failure (the failed unit's repair is unknown;
    load beyond that is the relief rule's job). Shorter windows are tried when this one fails."""
    drain_deadline_margin_s: float = 1800.0
    drain_deadline_fraction: float = 0.25
    """A timed drain finishes at the latest this long before the predicted failure: the larger
    of the margin and this fraction of the time to failure (its uncertainty grows with it)."""
    drain_comfort_util: float = 0.7
    """A drain that keeps every element at or below this share of its rating over the whole
    window goes at once (no waiting for lower load)."""
    drain_start_tolerance: float = 0.02
    """A drain waits for a later start only when that lowers the plant's peak load over the
    window the receivers must carry by more than this fraction."""
    drain_low_load_tolerance: float = 0.05
    """When no drain holds through a failure's hold window, a complete drain that holds only
    until the earliest failure estimate is taken while the plant's forecast load stays within
    this fraction of its lowest over the forecast horizon (the low-load hours: no later hour
    before the failure is lighter, and the failure would put the rest there anyway)."""
    expected_drain_over_budget_s: float = 600.0
    """At the drain's deadline, when no complete drain fits with the P90 margin, the rest may
    move on its expected (P50) load if that adds at most this many expected seconds with an
    element above its limit while the unit still works (each forecast point weighted by the
    chance that it has not failed yet; after the failure the bypass would move the load
    anyway, unmanaged and interrupting it): ten minutes, the issue's tolerance for seconds
    above a limit."""
    resplit_min_gain: float = 0.005
    """A best-effort re-split (a forecast P90 crossing that no relief within the plan margin
    fixes) is taken only when the balanced lineup lowers the worst forecast utilisation of the
    elements it touches by at least this fraction of their limits (below it the forecast cannot
    rank the splits, and moving would be churn). Measured on the study's rows whose receivers
    run within ~3 % of a limit after a drain: at 1 % hard-tight-8's one useful re-split (0.9 %)
    is not taken and mpdu3 runs 25 min over its limit; at 0.5 %, 9 min, no other row worse."""
    decision_timeout_s: float = 1800.0
    """Automatic mode: when nobody answers a decision (no plan is safe through a drain's
    deadline) within this long, its fallback is taken (the partial drain that fits, else the
    load stays: never a drain above a limit). The integration's option sets it."""
    ttf_fast_fall: float = 2.0
    """The risk is rising fast when the predicted failure moves earlier, between two plans, by
    more than this many deadline margins (and more than the deadline fraction of the time to
    failure): then drain at once."""
    plan_margin: float = 0.03
    """Planned loads are inflated by this fraction (measurement noise, model error)."""
    restore_margin: float = 0.12
    """A restore must leave this fraction of every limit free over the whole horizon."""
    restore_stable_s: float = 2 * 3600.0
    """A repaired or revived element must stay healthy and energised this long before restore."""
    relief_hold_s: float = 6 * 3600.0
    """No restore onto an element relieved less than this long ago, and no load from a relief
    or a hand-back drain onto it either while another place fits (no ping-pong)."""
    hand_back_util: float = 0.9
    """Only an element measured above this share of its rating (not merely above its
    continuous limit) makes an urgent relief hand load back to a unit predicted to fail but
    still working: a mild excess is the lesser harm next to dropping circuits at the failure."""
    source_return_s: float = 3600.0
    """When an ATS runs on its alternate source, how long its preferred source is assumed to
    take to return when weighing where drained load waits (re-weighed at every plan while it
    lasts): utility outages are mostly minutes to an hour."""
    hand_back_risk: float = 0.25
    """Drained load goes back to (or waits on) a unit predicted to fail, rather than sit on
    an ATS that will retransfer (a certain second interruption), while the chance that the
    unit fails within ``source_return_s`` is at most this (then an interruption, at worst
    two): a quarter keeps the expected interruptions well under the certain one."""
    error_correlation: float = 0.3
    """Assumed correlation of circuit forecast errors when summing them to element P90s (a
    prior: the calibration below rescales the resulting spread to what the outcomes show)."""
    band_target: float = 0.8
    """Share of outcomes the element P10-P90 band should hold; the spread is calibrated to it."""
    calibration_samples: int = 4000
    """Most recent forecast outcomes the calibration uses."""
    calibration_min_samples: int = 200
    """Below this many outcomes the spread is not rescaled."""
    calibration_bounds: tuple[float, float] = (0.25, 4.0)
    """Range of the calibration scale (a broken forecast must not collapse or explode it)."""
    calibration_lead_s: float = 6 * 3600.0
    """Forecast points this far ahead are compared with their outcomes."""
    min_history_s: float = 86400.0
    """Forecast-driven relief needs at least this much circuit history."""
    plan_time_limit_s: float = 2.0
    replan_interval_s: float = 900.0
    """Non-urgent planning runs at most this often, unless alerts or failures changed."""
    max_moves_per_tick: int = 200
    """Hard cap on the SBM moves of one plan (a runaway guard, well above real plans)."""
    utc_offset_s: float = 0.0
    """Local wall clock offset (weekday/weekend of the load forecasts)."""
