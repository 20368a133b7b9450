"""Draw docs/figures/tiled-exchange.png: the tiles of the parallel protocols and the exchange schedule.

    MPLCONFIGDIR=/tmp/mpl .venv/bin/python scripts/draw_tiled_exchange.py [--out PATH] [--every 2]

Left: the 8x8 latent of the embedded model split for 2 and 4 ESs (meg_phy.tiles.tile_layout, overlap 2):
each ES owns a tile (blended over the overlaps) and its denoiser sees the whole latent as context. Right:
one run in time: every ES advances its tile a step at a time; the tiles go over backhaul hops at the start
(round 0) and every `exchange_every` steps (here 2); UIDG and DSUC exchange after the last step too (they
decode with context), DIUG sends its tiles to the UE, whose merge is the last fusion.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def draw_layout(ax, n: int) -> None:
    from matplotlib.patches import Rectangle

    from meg_phy.tiles import tile_layout

    layout = tile_layout(8, 8, n, overlap=2)
    for x in range(9):
        ax.plot([x, x], [0, 8], color="0.85", lw=0.6)
        ax.plot([0, 8], [x, x], color="0.85", lw=0.6)
    for i, (top, left, h, w) in enumerate(layout.boxes):
        inset = 0.08 * (i + 1)
        ax.add_patch(Rectangle((left + inset, 8 - top - h + inset), w - 2 * inset, h - 2 * inset, fill=True,
                               alpha=0.18, color=COLOURS[i]))
        ax.add_patch(Rectangle((left + inset, 8 - top - h + inset), w - 2 * inset, h - 2 * inset, fill=False,
                               lw=2, color=COLOURS[i]))
        ax.text(left + w / 2, 8 - top - h / 2, f"ES{i + 1}", ha="center", va="center", fontsize=9,
                color=COLOURS[i], weight="bold")
    ax.set_xlim(-0.2, 8.2)
    ax.set_ylim(-0.2, 8.2)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{n} ESs: tiles of the 8x8 latent", fontsize=9)


def draw_schedule(ax, steps: int = 8, every: int = 2, n: int = 2) -> None:
    from matplotlib.patches import FancyArrowPatch, Rectangle

    for i in range(n):
        y = n - i
        ax.text(-0.6, y, f"ES{i + 1}", ha="right", va="center", fontsize=9, color=COLOURS[i])
        for s in range(steps):
            ax.add_patch(Rectangle((s + 0.1, y - 0.3), 0.8, 0.6, color=COLOURS[i], alpha=0.35))
    rounds = [0] + [s for s in range(1, steps + 1) if s % every == 0]
    for s in rounds:
        ax.add_patch(FancyArrowPatch((s, n + 0.05), (s, 0.95), arrowstyle="<->", mutation_scale=10, color="k", lw=1.2))
        label = "round 0:\ncopies fused" if s == 0 else ("after the last\n(UIDG, DSUC)" if s == steps
                                                          else f"exchange\n(every {every})")
        ax.text(s, n + 0.45, label, ha="center", fontsize=7)
    ax.text(steps + 0.6, (n + 1) / 2, "tiles to\nthe UE", fontsize=8, va="center")
    ax.set_xlim(-1.5, steps + 2)
    ax.set_ylim(0.3, n + 1.0)
    ax.set_xticks([s + 0.5 for s in range(steps)])
    ax.set_xticklabels([str(s + 1) for s in range(steps)], fontsize=7)
    ax.set_yticks([])
    ax.set_xlabel("denoising step (each: the UNet on the ES's window, the result kept on its tile)", fontsize=8)
    ax.set_title("one run in time: tiles exchanged over backhaul hops (ESi-ESj-border, wired)", fontsize=9)
    for spine in ("top", "right", "left"):
        ax.spines[spine].set_visible(False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures" / "tiled-exchange.png")
    parser.add_argument("--every", type=int, default=2, help="exchange_every drawn on the time line")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 3.8))
    grid = fig.add_gridspec(1, 4, width_ratios=[1, 1, 0.1, 2.6])
    draw_layout(fig.add_subplot(grid[0, 0]), 2)
    draw_layout(fig.add_subplot(grid[0, 1]), 4)
    draw_schedule(fig.add_subplot(grid[0, 3]), every=args.every)
    fig.text(0.02, 0.02, "overlaps blended with raised-cosine weights; every ES's denoiser sees the whole latent "
             "(tile_context unset), keeps its own tile, holds the others' tiles as last received", fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
