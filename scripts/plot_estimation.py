"""The estimating receiver on the analog link: reported noise variance against the measured error, LS vs LMMSE.

    python scripts/plot_estimation.py --out docs/figures            # about 10 min on 2 busy cores

Runs `meg-phy link sweep --scheme analog` (link_models.sweep.run_sweep, resumable under --runs) for
estimators ls and lmmse on AWGN and TDL-A (100 ns, static), one resource block per frame (the protocol hops'
grid: 12 subcarriers, 14 OFDM symbols, pilots on symbols 2 and 11), SNR -10..20 dB. The receiver is never
given N0: it estimates it from the pilots. Writes OUT/link-estimation.png (NMSE, reported / measured, and
the median-to-mean gap of the per-frame squared error) and OUT/link-estimation.json (every point).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MPLCONFIGDIR", "/tmp/mpl")

from meg_common.io import atomic_write_json  # noqa: E402
from meg_common.vocabulary import Channel, Estimator, values  # noqa: E402

SNRS = [-10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0]
PLOTTED_CHANNELS = values((Channel.AWGN, Channel.TDL_A))
PLOTTED_ESTIMATORS = values((Estimator.LS, Estimator.LMMSE))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("docs/figures"))
    p.add_argument("--runs", type=Path, default=Path("runs/estimation"))
    p.add_argument("--frames", type=int, default=512, help="frames per point (default 512)")
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from link_models.config import LinkConfig
    from link_models.sweep import run_sweep

    results = {}
    for channel in PLOTTED_CHANNELS:
        for estimator in PLOTTED_ESTIMATORS:
            cfg = LinkConfig(channel=channel, estimator=estimator, snr_db=SNRS[0], fft_size=12, cp_length=1, batch=32)
            out = args.runs / f"{channel}-{estimator}"
            out.mkdir(parents=True, exist_ok=True)
            sweep = run_sweep(cfg, out, scheme="analog", axis="snr_db", values=SNRS, max_frames=args.frames,
                              progress=False)
            results[f"{channel}/{estimator}"] = [
                {k: pt[k] for k in ("snr_db", "nmse", "noise_var_reported", "nmse_median", "mse_median_to_mean",
                                    "no_est", "frames")} for pt in sweep["points"]]
            for pt in results[f"{channel}/{estimator}"]:
                pt["reported_over_measured"] = pt["noise_var_reported"] / pt["nmse"]
                print(f"{channel:6s} {estimator:5s} {pt['snr_db']:6.1f} dB  NMSE {pt['nmse']:.3e}  reported/measured "
                      f"{pt['reported_over_measured']:.3f}  median/mean {pt['mse_median_to_mean']:.3f}  "
                      f"N0 est/true {pt['no_est'] / 10 ** (-pt['snr_db'] / 10):.3f}", flush=True)

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for key, points in results.items():
        snr = [pt["snr_db"] for pt in points]
        style = "-" if key.endswith("lmmse") else "--"
        axes[0].semilogy(snr, [pt["nmse"] for pt in points], style, marker="o", label=key)
        axes[1].plot(snr, [pt["reported_over_measured"] for pt in points], style, marker="o", label=key)
        axes[2].plot(snr, [pt["mse_median_to_mean"] for pt in points], style, marker="o", label=key)
    axes[0].semilogy(SNRS, [10 ** (-s / 10) for s in SNRS], ":", color="grey", label="1/SNR (AWGN, perfect CSI)")
    axes[1].axhspan(0.8, 1.25, color="green", alpha=0.1, label="0.8 .. 1.25")
    axes[0].set(xlabel="SNR (Es/N0, dB)", ylabel="NMSE", title="analog NMSE")
    axes[1].set(xlabel="SNR (Es/N0, dB)", ylabel="reported / measured", title="reported noise variance / NMSE")
    axes[2].set(xlabel="SNR (Es/N0, dB)", ylabel="median / mean", title="per-frame squared error: median / mean")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Estimating receiver (N0 from the pilots), one resource block per frame")
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "link-estimation.png", dpi=110)
    atomic_write_json(args.out / "link-estimation.json", {"about": __doc__.split("\n\n")[0], "snr_db": SNRS,
                                                         "frames": args.frames, "points": results})
    print(f"wrote {args.out / 'link-estimation.png'}, {args.out / 'link-estimation.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
