"""Draw the integration's brand images (a rack with a lightning bolt) into custom_components/datacenter_power/brand/ (HA 2026.3+ serves them from there).

Run: scripts/run python scripts/brand_images.py
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch, Polygon


def draw(path, size_px, dark, logo=False):
    w_in = (2 * size_px if logo else size_px) / 100
    fig = plt.figure(figsize=(w_in, size_px / 100), dpi=100)
    fig.patch.set_alpha(0)
    ax = fig.add_axes([0, 0, size_px / (2 * size_px if logo else size_px), 1])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    fg = "#e8eef5" if dark else "#1d3b5a"
    accent = "#ffc400"
    ax.add_patch(
        FancyBboxPatch(
            (0.16, 0.06), 0.68, 0.88, boxstyle="round,pad=0,rounding_size=0.08", fc=fg, ec="none"
        )
    )
    for i in range(4):
        y = 0.14 + i * 0.2
        ax.add_patch(
            FancyBboxPatch(
                (0.24, y),
                0.52,
                0.12,
                boxstyle="round,pad=0,rounding_size=0.02",
                fc="#2e5d8a" if not dark else "#9fb6cc",
                ec="none",
            )
        )
    ax.add_patch(
        Polygon(
            [
                (0.56, 0.92),
                (0.30, 0.48),
                (0.48, 0.48),
                (0.40, 0.06),
                (0.72, 0.56),
                (0.53, 0.56),
                (0.64, 0.92),
            ],
            closed=True,
            fc=accent,
            ec=fg,
            lw=size_px / 128,
        )
    )
    if logo:
        fig.text(
            0.47, 0.6, "Data Center", fontsize=size_px * 0.1, color=fg, weight="bold", va="center"
        )
        fig.text(0.47, 0.38, "Power Grid", fontsize=size_px * 0.1, color=fg, va="center")
    fig.savefig(path, transparent=True, dpi=100)
    plt.close(fig)


base = "custom_components/datacenter_power/brand/"
for dark in (False, True):
    p = "dark_" if dark else ""
    draw(base + f"{p}icon.png", 256, dark)
    draw(base + f"{p}icon@2x.png", 512, dark)
    draw(base + f"{p}logo.png", 256, dark, logo=True)
    draw(base + f"{p}logo@2x.png", 512, dark, logo=True)
