#!/usr/bin/env python3
"""Validation run of the link models against theory and Sionna's published reference (docs/link-models.md).

    python scripts/validate_links.py --out docs/figures        # (make validate) about 10 min on 2 cores

Runs resumable sweeps into --work (default runs/validate_links), then draws docs/figures/link-*.png and
writes link-validation.json with the checked numbers. Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("MPLBACKEND", "Agg")

from link_models import LinkConfig  # noqa: E402
from link_models.sweep import run_sweep  # noqa: E402
from link_models.theory import ber_uncoded_awgn, ber_uncoded_rayleigh, nmse_analog_awgn  # noqa: E402
from meg_common.io import atomic_write, atomic_write_json, prepare_out_dir  # noqa: E402
from meg_common.provenance import versions  # noqa: E402

SIONNA_BLER_1_57 = 1.35e-2  # 5G LDPC k=1024 n=2048, QPSK, AWGN, Eb/N0 = 1.57 dB (Sionna's published curve)


def sweep(work: Path, name: str, progress: bool, scheme="digital", axis="snr_db", values=(), target_errors=1000,
          max_frames=400, **link) -> list[dict]:
    cfg = LinkConfig(**link, **{axis: values[0]})
    out = prepare_out_dir(work / name)
    return run_sweep(cfg, out, scheme=scheme, axis=axis, values=list(values), target_errors=target_errors,
                     max_frames=max_frames, seed=0, progress=progress)["points"]


def save(fig, path: Path) -> None:
    """Give every axis the house style (small title, log grid, legend), then write the PNG atomically."""
    import matplotlib.pyplot as plt

    for ax in fig.axes:
        ax.title.set_fontsize(10)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=90))
    plt.close(fig)
    print(f"wrote {path} ({path.stat().st_size // 1024} kB)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/figures", help="folder for link-*.png and link-validation.json")
    parser.add_argument("--work", default="runs/validate_links", help="folder for the (resumable) sweeps")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    out, work = prepare_out_dir(args.out), prepare_out_dir(args.work)
    progress = not args.no_progress
    import matplotlib.pyplot as plt

    checks: dict[str, dict] = {}

    # 1. uncoded Gray QAM on AWGN against the closed forms
    fig, ax = plt.subplots(figsize=(6, 4.2))
    grids = {"bpsk": np.arange(0, 9.1, 1.0), "qpsk": np.arange(0, 12.1, 1.5), "16qam": np.arange(4, 18.1, 2.0),
             "64qam": np.arange(10, 24.1, 2.0)}
    worst = 0.0
    for mod, snrs in grids.items():
        pts = sweep(work, f"uncoded-{mod}", progress, values=snrs, modulation=mod, code="none", k=1024,
                    channel="awgn", batch=64, target_errors=2000, max_frames=1500)
        sim = np.array([p["ber"] for p in pts])
        theory = ber_uncoded_awgn(mod, snrs)
        ok = sim > 0
        errs = np.array([p["bit_errors"] for p in pts])
        counted = ok & (errs >= 1000)  # points with enough errors for a 10 % statement
        rel = np.abs(sim[counted] / theory[counted] - 1)
        worst = max(worst, float(rel.max()))
        checks[f"uncoded_{mod}_awgn"] = {"snr_db": snrs[counted].tolist(), "ber_over_theory":
                                         np.round(sim[counted] / theory[counted], 4).tolist()}
        fine = np.linspace(snrs[0], snrs[-1], 200)
        line, = ax.semilogy(fine, ber_uncoded_awgn(mod, fine), ":")
        ax.semilogy(snrs[ok], sim[ok], "o", color=line.get_color(), label=f"{mod} simulated")
    checks["uncoded_awgn_worst_relative_error"] = {"value": round(worst, 4), "limit": 0.10, "passed": worst <= 0.10}
    ax.set_ylim(1e-5, 0.5)
    ax.set(xlabel="Es/N0 per resource element [dB]", ylabel="BER",
           title="Uncoded Gray QAM on AWGN: simulated (dots) vs closed form (dotted)")
    save(fig, out / "link-uncoded-awgn.png")

    # 2. 5G LDPC (1024, 2048) QPSK on AWGN, and Sionna's published point
    ldpc = dict(axis="ebno_db", modulation="qpsk", code="ldpc", k=1024, n=2048, channel="awgn", batch=64, decoder="sionna")
    pts = sweep(work, "ldpc-qpsk-awgn", progress, values=[0.5, 1.0, 1.25, 1.5, 1.75, 2.0], target_errors=50,
                max_frames=700, **ldpc)
    ref = sweep(work, "ldpc-qpsk-awgn-1.57", progress, values=[1.57], target_errors=60, max_frames=3000,
                **ldpc)[0]
    pts = sorted([*pts, ref], key=lambda p: p["ebno_db"])
    ratio = ref["bler"] / SIONNA_BLER_1_57
    checks["ldpc_qpsk_bler_1_57db"] = {"bler": ref["bler"], "block_errors": ref["block_errors"],
                                       "blocks": ref["blocks"], "reference": SIONNA_BLER_1_57,
                                       "ratio": round(ratio, 3), "passed": 0.5 <= ratio <= 2.0}
    fig, ax = plt.subplots(figsize=(6, 4.2))
    x = [p["ebno_db"] for p in pts]
    ax.semilogy(x, [p["bler"] or np.nan for p in pts], "s-", label="BLER (meg-phy link)")
    ax.semilogy(x, [p["ber"] or np.nan for p in pts], "o--", label="BER (meg-phy link)")
    ax.semilogy([1.57], [SIONNA_BLER_1_57], "k*", ms=12, label="Sionna published BLER at 1.57 dB")
    ax.set(xlabel="Eb/N0 per information bit [dB]", ylabel="error rate",
           title="5G LDPC k=1024 n=2048, QPSK, AWGN, 20 BP iterations")
    save(fig, out / "link-ldpc-awgn.png")

    # 3. analog link on AWGN: NMSE vs 1/SNR (perfect CSI), reported vs measured variance (LS)
    snrs = np.arange(0, 30.1, 5.0)
    perfect = sweep(work, "analog-awgn-perfect", progress, scheme="analog", values=snrs, channel="awgn",
                    estimator="perfect", max_frames=200)
    ls = sweep(work, "analog-awgn-ls", progress, scheme="analog", values=snrs, channel="awgn", estimator="ls",
               max_frames=200)
    nmse_ratio = [p["nmse"] * 10 ** (p["snr_db"] / 10) for p in perfect]
    var_ratio = [p["noise_var"] / p["nmse"] for p in ls]  # values have unit power: MSE == NMSE
    checks["analog_awgn_perfect_nmse_times_snr"] = {"snr_db": snrs.tolist(), "ratio": np.round(nmse_ratio, 4).tolist(),
                                                    "passed": all(abs(r - 1) <= 0.10 for r in nmse_ratio)}
    checks["analog_awgn_ls_reported_over_measured"] = {
        "snr_db": snrs.tolist(), "ratio": np.round(var_ratio, 4).tolist(),
        "passed": all(abs(r - 1) <= 0.20 for r, s in zip(var_ratio, snrs, strict=True) if s >= 10)}
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.semilogy(snrs, nmse_analog_awgn(snrs), "k:", label="theory 1/SNR")
    ax.semilogy(snrs, [p["nmse"] for p in perfect], "o-", label="NMSE, perfect CSI")
    ax.semilogy(snrs, [p["nmse"] for p in ls], "s-", label="NMSE, LS estimation")
    ax.semilogy(snrs, [p["noise_var"] for p in ls], "x--", label="reported noise variance, LS")
    ax.set(xlabel="Es/N0 per resource element [dB]", ylabel="normalised MSE",
           title="Analog link on AWGN (two values per complex symbol)")
    save(fig, out / "link-analog-awgn.png")

    # 4. TDL-A (100 ns, static): LS vs perfect CSI, uncoded and LDPC-coded QPSK
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    snrs = np.arange(0, 30.1, 5.0)
    tdl = {}
    for est in ("perfect", "ls"):
        tdl[est] = sweep(work, f"tdl-a-uncoded-{est}", progress, values=snrs, modulation="qpsk", code="none",
                         k=1024, channel="tdl-a", estimator=est, batch=64, target_errors=1000, max_frames=1000)
        axes[0].semilogy(snrs, [p["ber"] or np.nan for p in tdl[est]], "o-", label=f"{est} CSI")
    axes[0].semilogy(snrs, ber_uncoded_rayleigh("qpsk", snrs), "k:", label="flat Rayleigh, perfect CSI")
    axes[0].set(xlabel="Es/N0 [dB]", ylabel="BER", title="uncoded QPSK, TDL-A")
    ebno = np.arange(0, 12.1, 3.0)
    coded = {}
    for est in ("perfect", "ls"):
        coded[est] = sweep(work, f"tdl-a-ldpc-{est}", progress, axis="ebno_db", values=ebno, modulation="qpsk",
                           code="ldpc", k=1024, n=2048, channel="tdl-a", estimator=est, batch=64,
                           target_errors=40, max_frames=150)
        axes[1].semilogy(ebno, [p["bler"] or np.nan for p in coded[est]], "s-", label=f"{est} CSI")
    axes[1].set(xlabel="Eb/N0 [dB]", ylabel="BLER", title="5G LDPC (1024, 2048) QPSK, TDL-A")
    save(fig, out / "link-tdl-a.png")
    gaps = [e["ber"] - p["ber"] for p, e in zip(tdl["perfect"], tdl["ls"], strict=True)]
    checks["tdl_a_ls_vs_perfect"] = {
        "snr_db": snrs.tolist(), "ber_perfect": [p["ber"] for p in tdl["perfect"]],
        "ber_ls": [p["ber"] for p in tdl["ls"]],
        "bler_ldpc_perfect": [p["bler"] for p in coded["perfect"]], "bler_ldpc_ls": [p["bler"] for p in coded["ls"]],
        "passed": all(g > 0 for g in gaps) and gaps[0] > gaps[-1] and tdl["ls"][-1]["ber"] < 2e-3}

    # 5. the documented sweep example (same as the CLI command in docs/link-models.md)
    sweep(work, "example", progress, values=np.arange(0, 20.1, 2.0), modulation="16qam", code="none", k=1024,
          channel="awgn", target_errors=1000, max_frames=500)
    shutil.copyfile(work / "example" / "sweep.png", out / "link-sweep-example.png")
    print(f"wrote {out / 'link-sweep-example.png'}")

    atomic_write_json(out / "link-validation.json", {"versions": versions(), "checks": checks})
    failed = [name for name, c in checks.items() if c.get("passed") is False]
    for name, c in checks.items():
        print(f"{'FAIL' if c.get('passed') is False else 'ok  '} {name}: "
              f"{ {k: v for k, v in c.items() if k in ('value', 'ratio', 'bler', 'passed')} }")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
