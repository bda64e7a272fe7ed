"""Ctrl-C on ``scripts/develop`` signals Home Assistant once and waits for its final write.

Issue 20, item 4: Ctrl-C reached Home Assistant through the terminal's process group and the
stack's clean-up then sent SIGTERM on top, so Home Assistant was cut short before saving its
registries. Here a stand-in child (it cannot be Home Assistant: this must run in seconds) takes
the first signal as the start of a one-second "final write" and a second signal as a kill, and
the stack's own ``stack_procs`` start and stop it, driven the way ``dev_stack.py`` drives them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent(
    """
    import pathlib, signal, sys, time
    out, ready = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    got = []
    def on_signal(sig, frame):
        got.append(sig)
        if len(got) > 1:
            out.write_text(f"cut short by signal {sig} after {got[0]}")
            sys.exit(1)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    ready.touch()
    while not got:
        time.sleep(0.02)
    time.sleep(1.0)  # the final write
    out.write_text(f"saved after signal {got[0]}")
    """
)

DRIVER = textwrap.dedent(
    """
    import signal, sys, time
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    from stack_procs import ignore_further_stops, spawn, stop_all
    def on_term(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    with open(sys.argv[5], "ab") as log:
        child = spawn([sys.executable, sys.argv[2], sys.argv[3], sys.argv[4]],
                      env={}, cwd=Path("."), log=log)
    try:
        while True:
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    finally:
        ignore_further_stops()
        print(stop_all([child], timeout_s=20), flush=True)
    """
)


def _wait_for(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} did not appear"
        time.sleep(0.02)


def _run_stack(tmp_path: Path, presses: int) -> tuple[str, str]:
    child, driver = tmp_path / "child.py", tmp_path / "driver.py"
    child.write_text(CHILD)
    driver.write_text(DRIVER)
    out, ready = tmp_path / "out", tmp_path / "ready"
    # A process group of its own, as a job in a terminal: Ctrl-C goes to the whole group.
    stack = subprocess.Popen(
        [sys.executable, driver, REPO / "scripts", child, out, ready, tmp_path / "log"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for(ready, 20)
        for _ in range(presses):
            os.killpg(stack.pid, signal.SIGINT)
            time.sleep(0.2)
        stdout, _ = stack.communicate(timeout=30)
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)
    return out.read_text(), stdout.strip()


def test_ctrl_c_signals_home_assistant_once_and_waits_for_its_final_write(
    tmp_path: Path,
) -> None:
    result, codes = _run_stack(tmp_path, presses=1)
    assert result == f"saved after signal {int(signal.SIGTERM)}"
    assert codes == "[0]"


def test_a_second_ctrl_c_does_not_cut_the_stop_short(tmp_path: Path) -> None:
    result, codes = _run_stack(tmp_path, presses=2)
    assert result == f"saved after signal {int(signal.SIGTERM)}"
    assert codes == "[0]"


def test_a_child_stops_when_the_stack_dies_without_cleaning_up(tmp_path: Path) -> None:
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    out, ready = tmp_path / "out", tmp_path / "ready"
    code = textwrap.dedent(
        """
        import sys, time
        sys.path.insert(0, sys.argv[1])
        from pathlib import Path
        from stack_procs import spawn
        with open(sys.argv[5], "ab") as log:
            spawn([sys.executable, sys.argv[2], sys.argv[3], sys.argv[4]],
                  env={}, cwd=Path("."), log=log)
        time.sleep(60)
        """
    )
    stack = subprocess.Popen(
        [sys.executable, "-c", code, REPO / "scripts", child, out, ready, tmp_path / "log"],
        start_new_session=True,
    )
    try:
        _wait_for(ready, 20)
        stack.kill()  # SIGKILL: no clean-up runs
        stack.wait(timeout=10)
        _wait_for(out, 10)
    finally:
        if stack.poll() is None:
            stack.kill()
    assert out.read_text() == f"saved after signal {int(signal.SIGTERM)}"
