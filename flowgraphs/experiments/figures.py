"""Plots of the case study, every point with its 95 % interval as an error bar, the zero-transmission
baselines in every panel (a line and a band: they use no channel, so they do not depend on the SNR).

- `curves`: per task kind, one row per channel: prompt accuracy, fidelity, PSNR and air symbols against SNR.
- `figure_set`: the curves of a run split into readable figures (`GROUPS`): the link-level series, the
  protocols (colour per protocol, line style per number of ESs), the uplink sweep, link against radio.
- `tradeoff`: the three-way trade-off MEG is about: UE denoising steps against fidelity, and air symbols
  against fidelity, one row per task kind, each link-level series a line through its SNRs (baselines at 0
  symbols).
"""

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
    "centralized-digital-fixed": ("tab:pink", "--", "P"),
    "centralized-softcast": ("tab:purple", "-", "*"),
    "centralized-capacity": ("k", ":", "_"),
    "seed-analog-aware-sim": ("navy", "-.", "o"),
    "centralized-digital-sim": ("darkred", "-.", "D"),
    "prompt-only": ("tab:gray", "-", None),
    "ue-local": ("tab:brown", "--", None),
    # CENTRALIZED's rate-quality curve and the sceptics who know the system
    "centralized-digital-q10": ("lightcoral", "--", "1"),
    "centralized-digital-q30": ("indianred", "--", "2"),
    "centralized-digital-q50": ("firebrick", "--", "3"),
    "centralized-digital-q90": ("maroon", "--", "4"),
    "centralized-digital-lossless": ("black", "--", "D"),
    **{f"noise-seed@{k}": (c, "-.", "h") for k, c in ((4, "#d9f0a3"), (6, "#addd8e"), (10, "#78c679"),
                                                       (14, "#31a354"), (20, "#006837"))},
    **{f"prompt-only@{k}": ("tab:gray", ":", None) for k in (4, 6, 10, 14)},
    **{f"ue-local@{k}": ("tab:brown", ":", None) for k in (4, 6, 10, 14)},
    # the bandwidth sweep's own series (flowgraphs.experiments.bandwidth); its others are SAME_AS
    "softcast-meta-free": ("tab:purple", ":", "*"),
    "seed-capacity": ("tab:gray", ":", "|"),
}
"""Colour, line and marker of every series of the case study and the bandwidth sweep (one table, so a
series looks the same in every figure)."""
SAME_AS = {"seed-analog": "seed-analog-aware", "softcast": "centralized-softcast",
           "image-digital": "centralized-digital", "image-capacity": "centralized-capacity"}
"""Bandwidth series drawn as the case study's series of the same payload and scheme."""


def style(series: str, default: tuple = (None, "-", ".")) -> tuple:
    """(colour, line, marker) of a series (STYLE, through SAME_AS); `default` for one it does not know."""
    return STYLE.get(SAME_AS.get(series, series), default)
PROTOCOL_COLOURS = {"CENTRALIZED": "tab:red", "UIEG": "tab:olive", "EIUG": "tab:blue", "CIAG": "tab:cyan",
                    "ESUC": "tab:green", "UIDG": "tab:orange", "DIUG": "tab:brown", "DSUC": "tab:purple",
                    "UIDCG": "tab:pink", "DCSUC": "tab:gray"}
ES_LINES = {1: "-", 2: "--", 4: ":"}
"""Line style of a protocol's curve by its number of ESs (others: dash-dot)."""
GROUPS = {
    "case_study": ("the link-level series (n_es = 1, downlink swept)",
                   lambda r: not r["series"].startswith("proto-") and r.get("radio", "link") == "link"
                   and r["swept"] == "downlink"),
    "protocols": ("the ten protocols over the downlink SNR (line style: 1, 2, 4 ESs)",
                  lambda r: r["series"].startswith("proto-") and r["swept"] == "downlink"),
    "uplink": ("the protocols that change hands twice, over the uplink SNR",
               lambda r: r["swept"] == "uplink"),
    "radio": ("link level against the simulated impaired radio (--radio sim)",
              lambda r: r["swept"] == "downlink" and r["n_es"] == 1 and r["channel"] == "awgn"
              and r["series"].removesuffix("-sim") in RADIO_PAIRS),
}
"""Figure name prefix -> (what it shows, which swept rows it draws); baselines are in every figure."""
RADIO_PAIRS = ("seed-analog-aware", "centralized-digital")
IDENTICAL_PSNR = 60.0
"""Where a PSNR of infinity (every output identical to its reference) is drawn."""
METRICS = (("prompt_accuracy", "prompt accuracy"), ("fidelity", "fidelity to the reference"),
           ("psnr_db", "PSNR vs reference (dB)"), ("air_symbols", "air symbols per run"))


def _value(row: dict[str, Any], metric: str) -> tuple[float, float, float] | None:
    m = row.get(metric)
    if m is None:
        return None
    v, lo, hi = m["value"], m["ci_low"], m["ci_high"]
    if metric == "psnr_db":
        v = IDENTICAL_PSNR if v is None else min(v, IDENTICAL_PSNR)
        lo = v if lo is None else min(lo, IDENTICAL_PSNR)
        hi = IDENTICAL_PSNR if hi is None else min(hi, IDENTICAL_PSNR)
    if v is None:
        return None
    return v, v - (v if lo is None else lo), (v if hi is None else hi) - v


def _label(row: dict[str, Any]) -> str:
    extra = f", {row['n_es']} ESs" if row["n_es"] > 1 else ""
    extra += ", uplink swept" if row.get("swept") == "uplink" else ""
    return row["label"] + extra


def figure_set(rows: list[dict[str, Any]], out: Path, kinds, n_tasks: int) -> dict[str, list[tuple[str, str]]]:
    """Write the curves of every group with rows, per task kind: {kind: [(file name, what it shows)]}."""
    written: dict[str, list[tuple[str, str]]] = {}
    for kind in kinds:
        for prefix, (what, keep) in GROUPS.items():
            if prefix == "radio" and not any(r["series"].endswith("-sim") and r["task_kind"] == kind for r in rows):
                continue
            # the UE-alone sceptics at shorter schedules are in the trade-off figure, not in every panel here
            chosen = [r for r in rows if r["task_kind"] == kind and (r["snr_db"] is None or keep(r))
                      and not (r["snr_db"] is None and "@" in r["series"])]
            if prefix != "case_study" and not any(r["snr_db"] is not None for r in chosen):
                continue
            name = f"{prefix}_{kind}.png"
            curves(chosen, out / name, kind, f"MEG case study, {kind}: {what}; {n_tasks} tasks per point, "
                                            "95 % intervals")
            written.setdefault(kind, []).append((name, what))
    return written


def _style(row: dict[str, Any]) -> tuple[str | None, str, str]:
    if row["series"].startswith("proto-"):
        return (PROTOCOL_COLOURS.get(row["protocol"]), ES_LINES.get(row["n_es"], "-."),
                "o" if row["n_es"] == 1 else "s" if row["n_es"] == 2 else "^")
    colour, line, marker = STYLE.get(row["series"], (None, "-", "."))
    return colour, line if row["n_es"] == 1 else ":", marker or "."


def curves(rows: list[dict[str, Any]], path: Path, kind: str, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [r for r in rows if r["task_kind"] == kind]
    base = [r for r in mine if r["snr_db"] is None]
    swept = [r for r in mine if r["snr_db"] is not None]
    channels = list(dict.fromkeys(r["channel"] for r in swept)) or ["-"]
    fig, axes = plt.subplots(len(channels), len(METRICS), figsize=(17, 3.8 * len(channels)), squeeze=False)
    for ci, channel in enumerate(channels):
        here = [r for r in swept if r["channel"] == channel]
        lines = dict.fromkeys((r["series"], r["n_es"], r["swept"]) for r in here)
        for mi, (metric, label) in enumerate(METRICS):
            ax = axes[ci][mi]
            for series, n_es, direction in lines:
                pts = sorted((r for r in here if (r["series"], r["n_es"], r["swept"]) == (series, n_es, direction)),
                             key=lambda r: r["snr_db"])
                vals = [(r["snr_db"], _value(r, metric)) for r in pts]
                vals = [(x, v) for x, v in vals if v is not None]
                if not vals:
                    continue
                colour, line, marker = _style(pts[0])
                ax.errorbar([x for x, _ in vals], [v[0] for _, v in vals],
                            yerr=[[v[1] for _, v in vals], [v[2] for _, v in vals]], color=colour,
                            linestyle=line, marker=marker, markersize=4, capsize=2, label=_label(pts[0]))
            for r in base:
                v = _value(r, metric)
                if v is None:
                    continue
                colour, line, _ = STYLE.get(r["series"], ("grey", "-", None))
                ax.axhline(v[0], color=colour, linestyle=line, linewidth=1.2, label=r["label"])
                ax.axhspan(v[0] - v[1], v[0] + v[2], color=colour, alpha=0.15)
            ax.set_xlabel(f"SNR (dB), {channel}")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if metric in ("prompt_accuracy", "fidelity"):
                ax.set_ylim(-0.03, 1.03)
            if metric == "air_symbols":
                ax.set_yscale("symlog", linthresh=100)
    fig.suptitle(title, fontsize=10)
    _legend(fig, axes[0][0], beside=True)
    fig.tight_layout()
    return _save(fig, path)


def tradeoff(rows: list[dict[str, Any]], path: Path, title: str, channel: str = "awgn") -> Path:
    """UE steps vs fidelity and air symbols vs fidelity, one row per task kind (error bars: 95 % intervals on
    both axes). The link-level single-ES series on `channel` only, each a line through its SNRs, and the
    baselines (0 symbols): the other channels, the protocols and the radio have their own figures, and all
    of them on one panel is unreadable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flowgraphs.experiments.case_study import KINDS

    drawn = [r for r in rows if _value(r, "fidelity") is not None
             and (r["snr_db"] is None or (GROUPS["case_study"][1](r) and r["channel"] == channel))]
    kinds = [k for k in KINDS if any(r["task_kind"] == k for r in drawn)] or [None]
    fig, axes = plt.subplots(len(kinds), 2, figsize=(13, 4.2 * len(kinds)), squeeze=False)
    for row_axes, kind in zip(axes, kinds, strict=True):
        mine = [r for r in drawn if r["task_kind"] == kind]
        curves_of: dict[str, list[dict[str, Any]]] = {}
        for r in mine:
            curves_of.setdefault(r["series"], []).append(r)
        for points in curves_of.values():
            points.sort(key=lambda r: r["snr_db"] if r["snr_db"] is not None else 0.0)
            colour, line, marker = _style(points[0])
            baseline = points[0]["snr_db"] is None
            for ax, metric in zip(row_axes, ("ue_steps", "air_symbols"), strict=True):
                xs = [_value(r, metric) for r in points]
                ys = [_value(r, "fidelity") for r in points]
                keep = [(x, y) for x, y in zip(xs, ys, strict=True) if x is not None]
                if not keep:
                    continue
                ax.errorbar([x[0] for x, _ in keep], [y[0] for _, y in keep],
                            xerr=[[x[1] for x, _ in keep], [x[2] for x, _ in keep]],
                            yerr=[[y[1] for _, y in keep], [y[2] for _, y in keep]], color=colour,
                            marker="s" if baseline else marker, markersize=8 if baseline else 4, capsize=2,
                            linestyle="none" if baseline else line, linewidth=0.8, alpha=0.85,
                            label=points[0]["label"] if ax is row_axes[0] else None)
        row_axes[0].set_xlabel("UE denoising steps per run")
        row_axes[1].set_xlabel("air symbols per run (uplink + downlink)")
        row_axes[1].set_xscale("symlog", linthresh=100)
        for ax in row_axes:
            ax.set_ylabel(f"fidelity, {kind}" if kind else "fidelity to the reference")
            ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
    fig.suptitle(f"{title}; {channel}, link level, n_es = 1; each line joins a series' SNRs "
                 "(fidelity rises with SNR)", fontsize=10)
    _legend(fig, axes[0][0], beside=True)
    fig.tight_layout()
    return _save(fig, path)


def _legend(fig, ax, beside: bool = False) -> None:
    """The legend of `ax`'s series: over the panel, or beside the figure when there are many (or `beside`)."""
    handles, labels = ax.get_legend_handles_labels()
    if beside or len(labels) > 12:
        fig.legend(handles, labels, fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        ax.legend(fontsize=6, loc="lower right")


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
