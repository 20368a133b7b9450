"""Plots of link sweeps: BER/BLER (digital) or NMSE (analog) against SNR, with closed forms where they exist."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from link_models.theory import ber_uncoded_awgn, ber_uncoded_rayleigh, nmse_analog_awgn


def theory_curve(config: dict, x_db: np.ndarray) -> tuple[np.ndarray, str] | None:
    """(y, label) of the closed form for this sweep, or None where none exists (coded links, TDL/CDL)."""
    from link_models.config import MODULATIONS

    channel = config["link"]["channel"]
    axis = config["axis"]
    if config["scheme"] == "analog":
        if channel in ("awgn", "ideal") and axis == "snr_db":
            return nmse_analog_awgn(x_db), "theory: 1/SNR"
        return None
    link = config["link"]
    if link["code"] != "none":
        return None
    m = MODULATIONS[link["modulation"]]
    es_no_db = x_db + 10 * np.log10(m) if axis == "ebno_db" else x_db
    csi = "" if link["estimator"] == "perfect" else " (perfect CSI)"
    if channel == "awgn":
        return ber_uncoded_awgn(link["modulation"], es_no_db), f"theory: uncoded {link['modulation']}, AWGN{csi}"
    if channel == "rayleigh" and m <= 2:
        return ber_uncoded_rayleigh(link["modulation"], es_no_db), f"theory: {link['modulation']}, Rayleigh{csi}"
    return None


def plot_sweep(result: dict, path: str | Path, title: str | None = None) -> Path:
    """Write the sweep's plot (PNG) to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config, points = result["config"], result["points"]
    axis = config["axis"]
    xs = np.array([p[axis] for p in points], dtype=float)
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=100)
    if config["scheme"] == "analog":
        ax.semilogy(xs, [_pos(p["nmse"]) for p in points], "o-", label="NMSE (simulated)")
        ylabel = "normalised MSE"
    else:
        ax.semilogy(xs, [_pos(p["ber"]) for p in points], "o-", label="BER (simulated)")
        ax.semilogy(xs, [_pos(p["bler"]) for p in points], "s--", label="BLER (simulated)")
        ylabel = "error rate"
    if len(xs):
        fine = np.linspace(xs.min(), xs.max(), 200)
        theory = theory_curve(config, fine)
        if theory is not None:
            ax.semilogy(fine, theory[0], "k:", label=theory[1])
    link = config["link"]
    ax.set_xlabel("Eb/N0 per information bit [dB]" if axis == "ebno_db" else "Es/N0 per resource element [dB]")
    ax.set_ylabel(ylabel)
    if config["scheme"] == "digital":
        code = f", LDPC ({link['k']},{link['n']})" if link["code"] == "ldpc" else ", uncoded"
        desc = f"digital, {link['modulation']}{code}"
    else:
        desc = "analog" + (f", repetition {link['repetition']}" if link["repetition"] > 1 else "")
    desc += f", {link['channel']}, {link['estimator']} CSI"
    ax.set_title(title or desc, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    from meg_common.io import atomic_write

    target = atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
    return target


def _pos(value):
    """Zero or missing rates cannot be drawn on a log axis."""
    return value if value else np.nan
