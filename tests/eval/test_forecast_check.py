"""``scripts/forecast-check`` (dcp_eval/forecast_check.py): input formats, the JSON it prints,
the progress bar, and clear errors (file, line, column) for malformed files."""

from __future__ import annotations

import datetime as dt
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from dcp_eval.forecast_check import ForecastCheckError, _progress, main, read_series

START = dt.datetime(2026, 1, 5)  # a Monday


def _load(n: int, step_min: int) -> list[tuple[dt.datetime, float]]:
    rng = np.random.default_rng(5)
    out = []
    for i in range(n):
        when = START + dt.timedelta(minutes=step_min * i)
        hour = when.hour + when.minute / 60
        weekend = when.weekday() >= 5
        value = 20 + 6 * math.cos((hour - 15) / 24 * 2 * math.pi) - 4 * weekend
        out.append((when, value + float(rng.normal(0, 0.3))))
    return out


def _csv(tmp_path: Path, text: str, name: str = "load.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_json_report_on_a_plain_csv(tmp_path: Path) -> None:
    rows = _load(4 * 7 * 48, 30)  # four weeks, half-hourly
    lines = ["# a comment line", "time,value"] + [f"{t.isoformat()},{v:.3f}" for t, v in rows]
    path = _csv(tmp_path, "\n".join(lines) + "\n")
    out = io.StringIO()
    assert (
        main([str(path), "--test-weeks", "1", "--origin-every", "24h", "--json"], stdout=out) == 0
    )
    result = json.loads(out.getvalue())
    assert set(result) == {"points", "step_s", "origins", "forecaster", "baselines"}
    assert result["points"] == len(rows)
    assert result["step_s"] == 1800
    assert result["origins"] == 7  # daily origins from the last reading before the test week
    keys = {"h0.5", "h1", "h3", "h6", "h12", "h24", "mean"}
    method_keys = {
        "mape_pct",
        "coverage_p10_p90_pct",
        "below_p90_pct",
        "bias_pct",
        "fit_s",
        "forecast_s",
    }
    assert set(result["baselines"]) == {"seasonal_naive_week", "mstl_ets"}
    for m in (result["forecaster"], *result["baselines"].values()):
        assert set(m) == method_keys
        assert set(m["mape_pct"]) == keys
    ours = result["forecaster"]
    # A clean daily cycle: well under 3 % at every lead, the bands holding most actuals.
    assert all(v is not None and v < 3.0 for v in ours["mape_pct"].values())
    assert ours["coverage_p10_p90_pct"] > 60
    assert ours["fit_s"] is not None


def test_text_table_and_home_assistant_history_format(tmp_path: Path) -> None:
    """HA's history download (entity_id,state,last_changed; UTC; 'unavailable' rows) is
    detected without any flag, and finer readings are scored as 15-minute means."""
    rows = _load(22 * 24 * 6, 10)  # 22 days every 10 min
    lines = ["entity_id,state,last_changed"]
    for i, (t, v) in enumerate(rows):
        state = "unavailable" if i % 97 == 0 else f"{v:.2f}"
        utc = t.replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")
        lines.append(f"sensor.mpdu_1_current,{state},{utc}")
    path = _csv(tmp_path, "\n".join(lines) + "\n")
    series = read_series(path)
    assert series.ha_format
    assert int(np.isnan(series.y).sum()) == len(range(0, len(rows), 97))
    out = io.StringIO()
    assert main([str(path), "--test-weeks", "1", "--origin-every", "24h"], stdout=out) == 0
    text = out.getvalue()
    assert "step 900 s" in text
    for label in ("forecaster (defaults)", "same value last week", "MSTL+ETS"):
        assert label in text


def test_workday_column_marks_holidays(tmp_path: Path) -> None:
    rows = _load(48 * 3, 30)
    lines = ["when,amps,workday"]
    for t, v in rows:
        holiday = t.date() == dt.date(2026, 1, 6)  # a Tuesday off
        lines.append(f"{t.isoformat()},{v:.2f},{0 if holiday or t.weekday() >= 5 else 1}")
    path = _csv(tmp_path, "\n".join(lines) + "\n")
    series = read_series(path, time_column="when", value_column="amps", workday_column="workday")
    assert series.non_working == frozenset({dt.date(2026, 1, 6)})


@pytest.mark.parametrize(
    ("body", "where", "what"),
    [
        ("time,value\n2026-01-05T00:00:00,1.0\nyesterday,2.0\n", ":3:1:", "ISO 8601"),
        ("time,value\n2026-01-05T00:00:00,1.0\n2026-01-05T00:30:00,abc\n", ":3:2:", "number"),
        ("time,value\n2026-01-05T00:00:00,1.0,7\n", ":2:3:", "fields"),
        ("# about\n\ntime,value\n2026-01-05T00:00:00\n", ":4:2:", "fields"),
        ("stamp,reading\n2026-01-05T00:00:00,1\n", ":1:1:", "time column"),
        ("", ":1:1:", "empty"),
    ],
)
def test_malformed_files_name_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, where: str, what: str
) -> None:
    path = _csv(tmp_path, body, "bad.csv")
    if what == "time column":
        with pytest.raises(ForecastCheckError, match="no time column"):
            read_series(path, time_column="time")
        assert main([str(path), "--time-column", "time"]) == 2
    else:
        assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert f"bad.csv{where}" in err, err
    assert what in err
    assert "Traceback" not in err


def test_too_short_for_the_test_weeks_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _load(30, 30)
    path = _csv(tmp_path, "time,value\n" + "\n".join(f"{t.isoformat()},{v}" for t, v in rows))
    assert main([str(path), "--horizon", "24h"]) == 2
    assert "shorter than" in capsys.readouterr().err


def test_progress_bar() -> None:
    out = io.StringIO()
    _progress(out, 5, 10, 0.0)
    _progress(out, 10, 10, 0.0)
    text = out.getvalue()
    assert "5/10 origins" in text
    assert text.endswith("\n")
    _progress(None, 1, 10, 0.0)  # not a terminal: nothing written
