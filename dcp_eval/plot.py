"""``--plot FILE``: a PNG timeline of one evaluation (matplotlib, Agg backend, no display).

One panel per ATS/MPDU with its load and its 80 % continuous limit, alert episodes shaded,
failures and migration stages marked, so a reader sees at a glance what the engine saw and did.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt

from .harness import Evaluation
from .metrics import alert_episodes

__all__ = ["plot_evaluation"]


def plot_evaluation(ev: Evaluation, metrics: dict[str, Any], path: str | Path) -> Path:
    """Write the timeline PNG to ``path`` and return it."""
    out = Path(path)
    n = len(ev.elements)
    hours = ev.times_s / 3600.0
    fig, axes = plt.subplots(n, 1, figsize=(12, 1.9 * n + 1.2), sharex=True, squeeze=False)
    episodes = alert_episodes(ev.alerts)
    end_h = float(hours[-1]) if len(hours) else ev.scenario.duration_s / 3600.0
    failures = {
        f["target"]: f["failed_at_s"] for f in metrics["failures"] if f["failed_at_s"] is not None
    }
    for i, (element, ax) in enumerate(zip(ev.elements, axes[:, 0], strict=True)):
        ax.plot(hours, ev.loads_a[:, i], lw=0.8, color="tab:blue", label="load")
        ax.axhline(ev.limits_a[i], color="tab:red", ls="--", lw=0.8, label="80 % limit")
        for ep in episodes:
            if ep.component == element:
                stop = end_h if ep.end_s is None else ep.end_s / 3600.0
                ax.axvspan(ep.start_s / 3600.0, stop, color="orange", alpha=0.25, lw=0)
        if element in failures:
            ax.axvline(failures[element] / 3600.0, color="black", lw=1.5)
            ax.annotate(
                "failure",
                (failures[element] / 3600.0, ev.limits_a[i]),
                fontsize=7,
                xytext=(3, -10),
                textcoords="offset points",
            )
        ax.set_ylabel(f"{element}\nA", fontsize=8)
        ax.tick_params(labelsize=7)
        top = max(float(ev.limits_a[i]) * 1.3, 1.0)
        if len(ev.loads_a) and not all(math.isnan(v) for v in ev.loads_a[:, i]):
            top = max(top, float(max(v for v in ev.loads_a[:, i] if not math.isnan(v))) * 1.1)
        ax.set_ylim(0, top)
    for act in ev.actions:
        for t, _stage, moves, _amps in act.stages:
            for ax in axes[:, 0]:
                ax.axvline(t / 3600.0, color="tab:green", lw=0.6, alpha=0.7)
            axes[0, 0].annotate(
                f"{act.kind} ({moves})",
                (t / 3600.0, 0),
                fontsize=6,
                rotation=90,
                va="bottom",
                color="tab:green",
            )
    axes[-1, 0].set_xlabel("hours since t=0")
    axes[0, 0].legend(loc="upper left", fontsize=7)
    mape = metrics.get("forecast_mape_1h")
    fig.suptitle(
        f"{ev.scenario.name} - {ev.policy}: interruptions {metrics['interruptions']}, "
        f"trips {metrics['breaker_trips']}, over limit {metrics['over_limit_s']:.0f} s, "
        f"false alarms {metrics['false_alarms']}, switch ops {metrics['switch_operations']}"
        + (f", MAPE {mape:.1%}" if mape is not None else "")
        + "   (orange: alert, green: migration stage)",
        fontsize=9,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
