"""Plots of the case study: prompt accuracy, PSNR and SSIM against SNR, one line per series."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from meg_common.io import atomic_write_bytes

STYLE = {
    "seed-analog-aware": ("tab:blue", "-", "o"),
    "seed-analog-naive": ("tab:blue", ":", "x"),
    "seed-digital": ("tab:cyan", "--", "s"),
    "sketch-analog": ("tab:green", "-", "^"),
    "sketch-digital": ("tab:green", "--", "v"),
    "centralized-digital": ("tab:red", "--", "D"),
    "centralized-analog": ("tab:red", "-", "d"),
}
IDENTICAL_PSNR = 60.0
"""Where a PSNR of infinity (output identical to the reference) is drawn."""


def curves(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    metrics = [("prompt_accuracy", "prompt accuracy"), ("psnr_db", "PSNR vs noiseless reference (dB)"),
               ("ssim", "SSIM vs noiseless reference")]
    for key in dict.fromkeys(r["series"] for r in rows):
        points = sorted((r for r in rows if r["series"] == key), key=lambda r: r["snr_db"])
        colour, line, marker = STYLE.get(key, ("k", "-", "."))
        for ax, (metric, _) in zip(axes, metrics, strict=True):
            ys = [(IDENTICAL_PSNR if r[metric] is None else min(r[metric], IDENTICAL_PSNR))
                  if metric == "psnr_db" else r[metric] for r in points]
            ax.plot([r["snr_db"] for r in points], ys, color=colour, linestyle=line, marker=marker, markersize=4,
                    label=points[0]["label"])
    for ax, (_, label) in zip(axes, metrics, strict=True):
        ax.set_xlabel("downlink SNR (Es/N0, dB)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(-0.03, 1.03)
    axes[1].axhline(IDENTICAL_PSNR, color="grey", linewidth=0.6, linestyle=":")
    axes[1].text(axes[1].get_xlim()[0], IDENTICAL_PSNR, " identical (PSNR = inf)", va="bottom", fontsize=7,
                 color="grey")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def overhead_bars(rows: list[dict[str, Any]], path: Path, image_at: str = "ue") -> Path:
    """Channel symbols per protocol (analog and digital links), log scale, CENTRALIZED highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["protocol"] for r in rows))
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.4
    for j, scheme in enumerate(("analog", "digital")):
        values = [next(r["symbols"] for r in rows if r["protocol"] == n and r["scheme"] == scheme
                       and r["image_at"] == image_at) for n in names]
        ax.bar([i + (j - 0.5) * width for i in range(len(names))], values, width, label=f"{scheme} links",
               color=("tab:blue" if scheme == "analog" else "tab:orange"))
    ax.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("channel symbols on air (all hops)")
    ax.set_title(f"Overhead per protocol (2 ESs, input image at the {image_at.upper()})", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
