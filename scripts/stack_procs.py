"""Start and stop the processes of ``scripts/develop`` so that each is signalled exactly once.

Ctrl-C in a terminal sends SIGINT to the whole foreground process group. When Home Assistant
shared the group with ``dev_stack.py``, it began its graceful stop on that SIGINT, and the
stack's clean-up then sent a SIGTERM on top, which cut the stop short before the final write:
the registries of a first start were never saved and every device id changed (issue 20, item 4).

So the children run in process groups of their own (the terminal's Ctrl-C reaches only the
stack), the stack signals each child once and waits for it, and each child is told by the
kernel to stop if the stack itself dies without cleaning up (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1
"""``prctl`` option (linux/prctl.h): the signal a process receives when its parent exits."""
STOP_TIMEOUT_S = 240.0
"""How long a child may take to stop after its one SIGTERM. Home Assistant's own stop stages
allow up to 120 + 60 + 30 s before it gives up on tasks; a registry write takes milliseconds."""


def _own_group_and_parent_death() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def spawn(
    cmd: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a process group of its own, stopped by SIGTERM if the stack dies."""
    return subprocess.Popen(
        list(cmd),
        env=dict(env),
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        process_group=0,
        preexec_fn=_own_group_and_parent_death,  # noqa: PLW1509 (no threads run yet here)
    )


def stop_all(
    procs: Sequence[subprocess.Popen[bytes]], timeout_s: float = STOP_TIMEOUT_S
) -> list[int | None]:
    """Send each running process one SIGTERM, in order, and wait for it to exit.

    Returns the exit codes (None for one that had to be killed after ``timeout_s``).
    """
    codes: list[int | None] = []
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                codes.append(None)
                continue
        codes.append(p.returncode)
    return codes


def ignore_further_stops() -> None:
    """After the first Ctrl-C or SIGTERM: a second one must not cut the children's stop short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
