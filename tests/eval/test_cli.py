"""``python -m dcp_eval`` (scripts/evaluate): output formats and clean failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dcp_eval.__main__ import main

type Doc = dict[str, Any]


def _write(tmp_path: Path, doc: Doc) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return str(path)


def test_missing_file_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml" in err
    assert "Traceback" not in err


def test_invalid_scenario_names_the_key(
    tmp_path: Path, small: Doc, capsys: pytest.CaptureFixture[str]
) -> None:
    small["mpdus"][0]["colour"] = "red"
    assert main([_write(tmp_path, small)]) == 2
    err = capsys.readouterr().err
    assert "colour" in err
    assert "Traceback" not in err


def test_unknown_policy_is_rejected(small: Doc, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main([_write(tmp_path, small), "--policy", "psychic"])
    assert exc.value.code == 2


def test_json_and_plot(tmp_path: Path, small: Doc, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "out" / "timeline.png"
    assert (
        main([_write(tmp_path, small), "--policy", "reactive", "--json", "--plot", str(plot)]) == 0
    )
    m = json.loads(capsys.readouterr().out)
    assert m["scenario"] == "small"
    assert m["policy"] == "reactive"
    assert m["forecast_mape_1h"] is None
    assert m["switch_operations"] == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_output(tmp_path: Path, small: Doc, capsys: pytest.CaptureFixture[str]) -> None:
    small["duration"] = "30m"
    assert main([_write(tmp_path, small)]) == 0
    out = capsys.readouterr().out
    assert "policy proactive" in out
    assert "interruptions" in out
    assert "forecast_mape_1h" in out


def test_unwritable_plot_is_a_clean_error(
    tmp_path: Path, small: Doc, capsys: pytest.CaptureFixture[str]
) -> None:
    small["duration"] = "10m"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert (
        main([_write(tmp_path, small), "--policy", "reactive", "--plot", str(blocker / "p.png")])
        == 2
    )
    assert "Traceback" not in capsys.readouterr().err
