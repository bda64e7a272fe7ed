"""The oracle with the failure's time taken away (``dcp_eval.drain_by``): on ``hard-tight-8``
meeting both floors needs the unit emptied within the last hour before its failure."""

from __future__ import annotations

import pytest

from dcp_eval.drain_by import drained_by, main
from dcp_eval.generator import generate_hard_scenario
from dcp_eval.oracle import demand_matrix, solve_oracle
from dcp_eval.study import TARGET_OVER_S

H = 3600.0


def test_draining_by_the_true_failure_is_the_oracle_and_earlier_costs_time_over_a_limit() -> None:
    sc = generate_hard_scenario(8, "tight", realistic_loads=False)  # the plant of this story
    (wear,) = sc.wear_events
    # Per unit (a mapping), on the demand the caller already has (the wear does not change it).
    at_failure = drained_by(sc, {wear.target: wear.failure_s}, demand=demand_matrix(sc)).metrics
    assert at_failure["over_limit_s"] == solve_oracle(sc).metrics["over_limit_s"] == 0.0
    # Emptied by 12 h (3 h before the failure, before the afternoon peak): the receivers carry
    # everything through the peak, and no schedule stays within the floor.
    early = drained_by(sc, 12 * H).metrics
    assert early["over_limit_s"] > TARGET_OVER_S
    assert early["load_on_failing_at_failure_a"] == 0.0
    assert early["interruptions"] == 0


def test_a_drain_deadline_before_the_onset_is_refused_and_the_cli_prints_one_row_per_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sc = generate_hard_scenario(8, "tight", realistic_loads=False)
    with pytest.raises(ValueError, match="not after its wear's onset"):
        drained_by(sc, 0.0)
    assert main(["tight", "8", "--at-h", "14", "15.07"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("hard-tight-8: ats1 at 15.07 h")
    assert [line.split(":")[0] for line in out[1:]] == ["empty by 14.00 h", "empty by 15.07 h"]
