"""The time-to-failure study's scoring: errors, band coverage and the P10's lateness, per
fraction of the wear window, over the estimates that exist (the alert is on)."""

from __future__ import annotations

from typing import Any

import pytest

from dcp_eval.ttf_study import score


def _e(truth: float, p10: float | None, p50: float | None, p90: float | None) -> dict[str, Any]:
    return {"truth_h": truth, "alert": p50 is not None, "p10_h": p10, "p50_h": p50, "p90_h": p90}


def test_score_counts_only_estimates_and_measures_error_and_coverage() -> None:
    rows = [
        {
            0.25: _e(30.0, None, None, None),
            0.5: _e(20.0, 5.0, 18.0, 40.0),
            0.75: _e(10.0, 2.0, 12.0, 30.0),
        },
        {
            0.25: _e(12.0, 3.0, 6.0, 20.0),
            0.5: _e(8.0, 9.0, 12.0, 30.0),
            0.75: _e(4.0, 1.0, 2.0, 3.0),
        },
    ]
    out = score(rows)
    assert out["0.25"]["runs"] == 2
    assert out["0.25"]["estimates"] == 1
    assert out["0.25"]["mae_p50_h"] == pytest.approx(6.0)
    assert out["0.50"]["mae_p50_h"] == pytest.approx(3.0)  # median of |18-20|, |12-8|
    assert out["0.50"]["p10_not_late"] == pytest.approx(0.5)  # 9 h > 8 h: late
    assert out["0.50"]["coverage_p10_p90"] == pytest.approx(0.5)
    assert out["0.75"]["coverage_p10_p90"] == pytest.approx(0.5)  # 4 h above a 3 h P90
    assert out["0.75"]["p10_not_late"] == pytest.approx(1.0)
