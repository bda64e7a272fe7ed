"""``scripts/forecast-check``: the shipped forecaster, rolling-origin, on anyone's load series.

Everything before the last ``--test-weeks`` is history; from there, every ``--origin-every``, the
forecaster (the integration's defaults, fed reading by reading and asked ``forecast(now)`` as the
integration does) forecasts ``--horizon`` ahead, next to two baselines on the same origins: the
same value a week earlier and statsmodels MSTL (daily + weekly) with ETS(A,Ad,N) on the adjusted
series. Input: a CSV with a header (``#`` comment lines allowed), a time column in ISO 8601 local
time or Home Assistant's history download (``entity_id,state,last_changed``, detected; UTC times
are shown in this machine's time zone) and a value column; optionally a 0/1 workday column.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

import numpy as np
import numpy.typing as npt

from custom_components.datacenter_power.engine.forecast import LoadForecaster
from custom_components.datacenter_power.engine.policy_config import PolicyConfig

type FloatArray = npt.NDArray[np.float64]

REPORT_HOURS: Final = (0.5, 1.0, 3.0, 6.0, 12.0, 24.0)
HA_COLUMNS: Final = ("entity_id", "state", "last_changed")
GRID_MIN_S: Final = 900.0
"""Finer readings are scored (and given to the baselines) as 15-minute means."""


class ForecastCheckError(ValueError):
    """A malformed input file or argument; the message names file, line and column."""


@dataclass(slots=True)
class Series:
    """The readings of one file: epoch seconds of local wall time, values, non-working dates."""

    t: FloatArray
    y: FloatArray
    non_working: frozenset[dt.date] = field(default_factory=frozenset)
    ha_format: bool = False


def parse_duration(text: str) -> float:
    """``6h``, ``30min``, ``1d``, ``2w`` or seconds -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|min|m|h|d|w)?\s*", text)
    if not m:
        raise ForecastCheckError(f"not a duration: {text!r} (try 6h, 30min, 1d)")
    unit = {"s": 1, None: 1, "min": 60, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    return float(m.group(1)) * unit


def _local_epoch(text: str) -> float:
    """ISO 8601 time -> seconds of its local wall-clock time counted as if it were UTC (the
    forecaster then runs with ``utc_offset_s=0``). Times with a zone are shown in this
    machine's zone first."""
    when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if when.tzinfo is not None:
        when = when.astimezone().replace(tzinfo=None)
    return when.replace(tzinfo=dt.UTC).timestamp()


def read_series(
    path: Path,
    *,
    time_column: str | None = None,
    value_column: str | None = None,
    workday_column: str | None = None,
    shown_as: str | None = None,
) -> Series:
    """Parse the CSV; raise :class:`ForecastCheckError` naming file, line and column."""
    name = shown_as or str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ForecastCheckError(f"{name}: cannot read: {err}") from err
    lines = text.splitlines()
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#")]
    if not numbered:
        raise ForecastCheckError(f"{name}:1:1: empty file (a header and rows expected)")
    rows = list(csv.reader([ln for _, ln in numbered]))
    header = [h.strip() for h in rows[0]]
    header_line = numbered[0][0]
    ha = all(c in header for c in HA_COLUMNS) and time_column is None and value_column is None
    tcol = time_column or ("last_changed" if ha else ("time" if "time" in header else header[0]))
    vcol = value_column or ("state" if ha else ("value" if "value" in header else None))
    if vcol is None:
        if len(header) < 2:
            raise ForecastCheckError(
                f"{name}:{header_line}:1: one column only; a time and a value column expected"
            )
        vcol = header[1]
    cols: dict[str, int] = {}
    for role, col in (("time", tcol), ("value", vcol), ("workday", workday_column)):
        if col is None:
            continue
        if col not in header:
            raise ForecastCheckError(
                f"{name}:{header_line}:1: no {role} column {col!r} in the header {header}"
            )
        cols[role] = header.index(col)
    times: list[float] = []
    values: list[float] = []
    off_days: set[dt.date] = set()
    for (line_no, _), row in zip(numbered[1:], rows[1:], strict=True):
        if len(row) != len(header):
            raise ForecastCheckError(
                f"{name}:{line_no}:{min(len(row), len(header)) + 1}: {len(row)} fields, "
                f"the header has {len(header)}"
            )
        tc = cols["time"]
        try:
            t_s = _local_epoch(row[tc])
        except ValueError as err:
            raise ForecastCheckError(
                f"{name}:{line_no}:{tc + 1}: not an ISO 8601 time: {row[tc]!r}"
            ) from err
        vc = cols["value"]
        raw = row[vc].strip()
        try:
            value = float(raw)
        except ValueError as err:
            if ha and raw.lower() in {"unavailable", "unknown", ""}:
                value = math.nan  # Home Assistant's states for "no reading"
            else:
                raise ForecastCheckError(
                    f"{name}:{line_no}:{vc + 1}: not a number: {row[vc]!r}"
                ) from err
        if "workday" in cols:
            wc = cols["workday"]
            flag = row[wc].strip().lower()
            if flag not in {"0", "1", "true", "false", "on", "off"}:
                raise ForecastCheckError(f"{name}:{line_no}:{wc + 1}: not 0/1: {row[wc]!r}")
            day = dt.datetime.fromtimestamp(t_s, dt.UTC).date()
            if flag in {"0", "false", "off"} and day.weekday() < 5:
                off_days.add(day)
        times.append(t_s)
        values.append(value)
    if len(times) < 2:
        raise ForecastCheckError(f"{name}: fewer than two readings")
    t = np.asarray(times)
    order = np.argsort(t, kind="stable")
    return Series(t[order], np.asarray(values)[order], frozenset(off_days), ha)


@dataclass(slots=True)
class Scores:
    """Errors of one method over all origins."""

    err: list[FloatArray] = field(default_factory=list)
    """Signed relative error per origin and lead step (forecast - actual) / actual."""
    inside: list[FloatArray] = field(default_factory=list)
    below: list[FloatArray] = field(default_factory=list)
    fit_s: list[float] = field(default_factory=list)
    forecast_s: list[float] = field(default_factory=list)

    def summary(self, step_s: float) -> dict[str, Any]:
        e = np.abs(np.vstack(self.err)) * 100.0 if self.err else np.zeros((0, 0))
        mape: dict[str, float | None] = {}
        for h in REPORT_HOURS:
            k = round(h * 3600.0 / step_s) - 1
            ok = abs((k + 1) * step_s - h * 3600.0) < 1e-6 and 0 <= k < e.shape[1]
            mape[f"h{h:g}"] = _r(float(np.nanmean(e[:, k]))) if ok else None
        mape["mean"] = _r(float(np.nanmean(e))) if e.size else None
        inside = np.vstack(self.inside) if self.inside else None
        below = np.vstack(self.below) if self.below else None
        return {
            "mape_pct": mape,
            "coverage_p10_p90_pct": _r(100 * float(np.nanmean(inside)))
            if inside is not None
            else None,
            "below_p90_pct": _r(100 * float(np.nanmean(below))) if below is not None else None,
            "bias_pct": _r(100 * float(np.nanmean(np.vstack(self.err)))) if self.err else None,
            "fit_s": _r(float(np.median(self.fit_s)), 4) if self.fit_s else None,
            "forecast_s": _r(float(np.median(self.forecast_s)), 5) if self.forecast_s else None,
        }


def _r(x: float, nd: int = 2) -> float | None:
    return round(x, nd) if math.isfinite(x) else None


def _grid(series: Series) -> tuple[float, FloatArray, FloatArray]:
    """(step, grid times, grid values): the readings' own cadence, or 15-minute means of
    finer ones (standing at the middle of their quarter)."""
    diffs = np.diff(series.t)
    diffs = diffs[diffs > 0]
    step = float(np.median(diffs)) if len(diffs) else GRID_MIN_S
    ok = np.isfinite(series.y)
    if step >= GRID_MIN_S:
        step = float(round(step))
        idx = np.round((series.t - series.t[0]) / step).astype(np.int64)
        grid = np.full(int(idx[-1]) + 1, np.nan)
        grid[idx[ok]] = series.y[ok]
        return step, series.t[0] + step * np.arange(len(grid)), grid
    step = GRID_MIN_S
    b = np.floor(series.t / step).astype(np.int64)
    b0 = int(b[0])
    n = int(b[-1]) - b0 + 1
    s = np.bincount(b[ok] - b0, weights=series.y[ok], minlength=n)
    c = np.bincount(b[ok] - b0, minlength=n)
    means: FloatArray = np.where(c > 0, s / np.maximum(c, 1), np.nan).astype(np.float64)
    times: FloatArray = ((b0 + np.arange(n) + 0.5) * step).astype(np.float64)
    return step, times, means


def _fill(y: FloatArray) -> FloatArray:
    ok = np.isfinite(y)
    if bool(ok.all()) or not ok.any():
        return np.nan_to_num(y)
    idx = np.arange(len(y))
    out: FloatArray = np.interp(idx, idx[ok], y[ok])
    return out


def _mstl_ets(
    history: FloatArray, step_s: float, steps: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """statsmodels MSTL (daily + weekly where two weeks are held) and ETS(A,Ad,N) on the
    seasonally adjusted series: (P50, P10, P90)."""
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    from statsmodels.tsa.seasonal import MSTL

    day = round(86400.0 / step_s)
    y = _fill(history)
    periods = [p for p in (day, 7 * day) if len(y) >= 2 * p]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if periods:
            res = MSTL(y, periods=periods).fit()
            seasonal = np.asarray(res.seasonal).reshape(len(y), -1)
        else:
            seasonal = np.zeros((len(y), 1))
        adjusted = y - seasonal.sum(axis=1)
        # A pandas series: statsmodels' ETS prediction intervals need its index.
        ets = ETSModel(pd.Series(adjusted), error="add", trend="add", damped_trend=True).fit(
            disp=False
        )
        pred = ets.get_prediction(start=len(y), end=len(y) + steps - 1).summary_frame(alpha=0.2)
    future = np.zeros(steps)
    for j, p in enumerate(periods):
        last = seasonal[-p:, j]
        future += np.resize(last, steps)
    mean = np.asarray(pred["mean"], dtype=np.float64) + future
    lo = np.asarray(pred["pi_lower"], dtype=np.float64) + future
    hi = np.asarray(pred["pi_upper"], dtype=np.float64) + future
    return mean, lo, hi


def _progress(out: TextIO | None, done: int, total: int, started: float) -> None:
    if out is None:
        return
    width = 30
    filled = round(width * done / max(total, 1))
    elapsed = time.monotonic() - started
    eta = elapsed / done * (total - done) if done else 0.0
    out.write(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} origins, {eta:.0f} s left "
    )
    if done == total:
        out.write("\n")
    out.flush()


def run_check(
    series: Series,
    *,
    test_weeks: float = 4.0,
    origin_every_s: float = 6 * 3600.0,
    horizon_s: float = 86400.0,
    baselines: bool = True,
    progress: TextIO | None = None,
) -> dict[str, Any]:
    """Rolling-origin scores of the forecaster and the baselines (the ``--json`` object)."""
    step, gt, gy = _grid(series)
    steps = max(1, round(horizon_s / step))
    split_t = float(series.t[-1]) - test_weeks * 7 * 86400.0
    first = int(np.searchsorted(gt, split_t, side="right")) - 1
    every = max(1, round(origin_every_s / step))
    origins = list(range(max(first, 1), len(gt) - steps, every))
    if not origins:
        raise ForecastCheckError("no origin: the file is shorter than the test weeks + horizon")
    cfg = PolicyConfig()
    fc = LoadForecaster(
        resample_s=cfg.resample_s,
        horizon_s=cfg.horizon_s,
        refit_interval_s=cfg.refit_interval_s,
        non_working_days=series.non_working or None,
    )
    ours, naive, mstl = Scores(), Scores(), Scores()
    week = round(7 * 86400.0 / step)
    fed = 0
    started = time.monotonic()
    for done, o in enumerate(origins):
        now = float(gt[o])
        upto = int(np.searchsorted(series.t, now, side="right"))
        fc.observe_many(series.t[fed:upto], series.y[fed:upto])
        fed = upto
        before = fc.fitted_s
        t0 = time.perf_counter()
        f = fc.forecast(now)
        spent = time.perf_counter() - t0
        (ours.fit_s if fc.fitted_s != before else ours.forecast_s).append(spent)
        targets = gt[o + 1 : o + 1 + steps]
        actual = gy[o + 1 : o + 1 + steps]
        valid = np.isfinite(actual) & (actual != 0)
        act = np.where(valid, actual, np.nan)
        p50 = np.asarray([f.value_at(float(x)) for x in targets])
        p10 = np.asarray([f.value_at(float(x), "p10") for x in targets])
        p90 = np.asarray([f.value_at(float(x), "p90") for x in targets])
        _score(ours, p50, p10, p90, act)
        if o - week + steps < len(gy) and o + 1 - week >= 0:
            t1 = time.perf_counter()
            last_week = gy[o + 1 - week : o + 1 - week + steps]
            naive.forecast_s.append(time.perf_counter() - t1)
            _score(naive, last_week, None, None, act)
        if baselines:
            t1 = time.perf_counter()
            m50, m10, m90 = _mstl_ets(gy[max(0, o + 1 - 8 * week) : o + 1], step, steps)
            mstl.fit_s.append(time.perf_counter() - t1)
            _score(mstl, m50, m10, m90, act)
        _progress(progress, done + 1, len(origins), started)
    return {
        "points": len(series.t),
        "step_s": step,
        "origins": len(origins),
        "forecaster": ours.summary(step),
        "baselines": {
            "seasonal_naive_week": naive.summary(step),
            "mstl_ets": mstl.summary(step) if baselines else None,
        },
    }


def _score(
    s: Scores, p50: FloatArray, p10: FloatArray | None, p90: FloatArray | None, act: FloatArray
) -> None:
    s.err.append((p50 - act) / act)
    if p10 is not None and p90 is not None:
        known = np.isfinite(act)
        s.inside.append(np.where(known, (p10 <= act) & (act <= p90), np.nan))
        s.below.append(np.where(known, act <= p90, np.nan))


def format_table(result: dict[str, Any]) -> str:
    """The side-by-side text table."""
    keys = [f"h{h:g}" for h in REPORT_HOURS] + ["mean"]
    head = ["method", *(k[1:] + " h" if k != "mean" else "mean" for k in keys)]
    head += ["in P10-P90", "<= P90", "bias", "fit s", "forecast s"]
    rows = [head]
    methods = [("forecaster (defaults)", result["forecaster"])]
    methods += [
        (label, result["baselines"][k])
        for k, label in (("seasonal_naive_week", "same value last week"), ("mstl_ets", "MSTL+ETS"))
        if result["baselines"].get(k)
    ]
    for label, m in methods:

        def fmt(v: float | None, unit: str = "") -> str:
            return "-" if v is None else f"{v:g}{unit}"

        rows.append(
            [label]
            + [fmt(m["mape_pct"][k]) for k in keys]
            + [
                fmt(m["coverage_p10_p90_pct"], " %"),
                fmt(m["below_p90_pct"], " %"),
                fmt(m["bias_pct"], " %"),
                fmt(m["fit_s"]),
                fmt(m["forecast_s"]),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        f"{result['points']} readings, step {result['step_s']:g} s, {result['origins']} origins; "
        "MAPE in %"
    ]
    for r in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, stdout: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="scripts/forecast-check", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--time-column")
    parser.add_argument("--value-column")
    parser.add_argument("--workday-column")
    parser.add_argument("--test-weeks", type=float, default=4.0)
    parser.add_argument("--origin-every", default="6h")
    parser.add_argument("--horizon", default="24h")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    tty: Callable[[], bool] = getattr(sys.stderr, "isatty", lambda: False)
    try:
        series = read_series(
            args.file,
            time_column=args.time_column,
            value_column=args.value_column,
            workday_column=args.workday_column,
            shown_as=os.environ.get("DCP_FORECAST_CHECK_SHOWN_AS"),
        )
        result = run_check(
            series,
            test_weeks=args.test_weeks,
            origin_every_s=parse_duration(args.origin_every),
            horizon_s=parse_duration(args.horizon),
            progress=sys.stderr if tty() else None,
        )
    except ForecastCheckError as err:
        print(f"forecast-check: {err}", file=sys.stderr)
        return 2
    stdout.write(json.dumps(result) + "\n" if args.json else format_table(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
