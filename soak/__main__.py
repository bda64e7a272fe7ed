"""``python -m soak [--hours N] [--seed S]``: run the soak and print its summary as the last line.

Exits 1 when an invariant was violated (each violation is printed with what happened before
it), 2 when the run itself broke (the soak test failed or did not finish).
"""

from __future__ import annotations

import argparse
import os
import sys

import pytest

from .report import REPORT


def main(argv: list[str] | None = None) -> int:
    """Run the soak test in this process and report."""
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__)
    parser.add_argument("--hours", type=float, default=48.0, help="simulated hours (default 48)")
    parser.add_argument("--seed", type=int, default=20261123, help="random seed")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every event")
    args = parser.parse_args(argv)
    if not args.hours > 0:
        parser.error("--hours must be positive")
    os.environ["SOAK_HOURS"] = repr(args.hours)
    os.environ["SOAK_SEED"] = str(args.seed)
    os.environ["SOAK_VERBOSE"] = "1" if args.verbose else ""
    here = os.path.dirname(os.path.abspath(__file__))
    code = pytest.main(
        [
            os.path.join(here, "test_soak.py"),
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:logging",
            "--no-cov",
            "--timeout=0",
            "-s",
            "-W",
            "ignore::DeprecationWarning",
        ]
    )
    for note in REPORT.notes:
        print(note)
    print("faults injected:", dict(sorted(REPORT.faults.items())))
    print("actions taken:", dict(sorted(REPORT.actions.items())))
    for number, violation in enumerate(REPORT.violations, 1):
        print(f"violation {number}: {violation}")
    if not REPORT.finished or code not in (0, pytest.ExitCode.OK):
        print(f"the soak did not finish cleanly (pytest exit code {int(code)})")
    print(REPORT.summary())
    sys.stdout.flush()
    if REPORT.violations:
        return 1
    return 0 if REPORT.finished and code == 0 else 2


if __name__ == "__main__":
    sys.exit(main())
