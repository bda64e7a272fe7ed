"""What a soak run counted and found, shared by the soak test and the ``python -m soak`` runner.

The test fills one ``Report``; the runner prints it after pytest returns, so that the summary is
the last line of the output whatever pytest printed before it.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field


@dataclass
class Report:
    """Counts, the recent history (for context) and every violation with its context."""

    hours: float = 0.0
    seed: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    checks: int = 0
    violations: list[str] = field(default_factory=list)
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=25))
    notes: list[str] = field(default_factory=list)
    finished: bool = False

    def log(self, line: str) -> None:
        """Remember what happened (the last lines are written before each violation)."""
        self.recent.append(line)

    def fault(self, kind: str, line: str) -> None:
        """Count an injected fault."""
        self.faults[kind] += 1
        self.log(f"fault {kind}: {line}")

    def action(self, kind: str, line: str) -> None:
        """Count an action call (valid or not) or an automatic migration."""
        self.actions[kind] += 1
        self.log(f"action {kind}: {line}")

    def check(self, ok: bool, what: str) -> None:
        """Count an invariant check; record a violation with what happened before it."""
        self.checks += 1
        if not ok:
            context = "\n      ".join(self.recent)
            self.violations.append(f"{what}\n    before it:\n      {context}")

    def summary(self) -> str:
        """The last line of a run."""
        return (
            f"soak: hours {self.hours:g} seed {self.seed} faults {sum(self.faults.values())} "
            f"actions {sum(self.actions.values())} checks {self.checks} "
            f"violations {len(self.violations)}"
        )


REPORT = Report()
"""The run's report (one run per process)."""
