"""The CENTRALIZED image downlink against SNR: symbols on air and delivery, before and after link adaptation.

    python scripts/plot_image_link.py --out docs/figures          # a few minutes on 2 busy cores

The payload is what CENTRALIZED sends down: a rendered scene as WebP (quality 75) with the codec's header and
CRC. Each scheme sends it through a protocol hop (flowgraphs.hops.Hop, one resource block per frame, AWGN)
with `--draws` seeds per SNR:
- fixed: QPSK, LDPC rate 1/2, LS estimation, blind whole-payload retries (3 tries): the hop without link adaptation;
- auto, lmmse: MCS chosen per SNR from the shipped BLER table, HARQ (4 transmissions, chase combining),
  LMMSE estimation with N0 estimated (the protocol hops' default);
- auto, perfect CSI: the same with the true channel and N0;
- capacity: the fewest channel uses log2(1 + SNR) allows (link_models.capacity).
Writes OUT/link-image-downlink.png, OUT/link-image-downlink.json (per point: mean symbols over all draws with a
95 % bootstrap interval, delivered share with its Wilson interval, MCS, mean transmissions) and
OUT/link-image-downlink.md (the table of docs/link-models.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

os.environ.setdefault("MPLCONFIGDIR", "/tmp/mpl")

from meg_common.io import atomic_write_json  # noqa: E402

SNRS = [-10.0, -7.5, -5.0, -2.5, 0.0, 2.5, 5.0, 7.5, 10.0, 15.0, 20.0, 25.0]
SCHEMES = {
    "fixed QPSK 1/2, LS, 3 tries": {"scheme": "digital", "mcs": "none", "estimator": "ls", "harq": False,
                                    "max_attempts": 3},
    "MCS auto + HARQ, LMMSE": {"scheme": "digital"},
    "MCS auto + HARQ, perfect CSI": {"scheme": "digital", "estimator": "perfect"},
    "capacity": {"scheme": "capacity"},
}
ATTRS = {"objects": [{"shape": "circle", "colour": "red", "size": "large", "position": "left"}], "background": "white"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("docs/figures"))
    p.add_argument("--draws", type=int, default=32, help="seeds per SNR and scheme (default 32)")
    p.add_argument("--replot", action="store_true", help="redraw the figure and table from OUT's JSON")
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    if args.replot:
        saved = json.loads((args.out / "link-image-downlink.json").read_text())
        write_figure_and_table(args.out, saved["points"], saved["payload_bytes"], saved["draws"])
        return 0

    from flowgraphs.config import LinkSpec
    from flowgraphs.hops import Hop
    from flowgraphs.session import Session
    from meg_common import stats
    from meg_phy import codecs
    from meg_phy.scenes import render

    data = codecs.encode_image(render(ATTRS, 0)[None], fmt="webp", quality=75)
    session = Session()
    results: dict[str, list[dict]] = {}
    for name, settings in SCHEMES.items():
        results[name] = []
        for snr in SNRS:
            spec = LinkSpec(snr_db=snr, **settings)
            records = [Hop("ES1-UE-image", "ES1", "UE", "image", spec, seed, session.link)
                       .send_bytes(data, codecs.decode_image)[1] for seed in range(args.draws)]
            delivered = sum(r.delivered for r in records)
            point = {"snr_db": snr, "n": len(records), "symbols": statistics.mean(r.symbols for r in records),
                     "symbols_ci": stats.mean([r.symbols for r in records]),
                     "delivered": delivered / len(records), "delivered_ci": stats.rate(delivered, len(records)),
                     "mcs_index": records[0].mcs_index, "mcs_table": records[0].mcs_table, "modulation": records[0].modulation,
                     "code_rate": records[0].code_rate,
                     "transmissions": statistics.mean(r.transmissions or 1 for r in records)}
            results[name].append(point)
            print(f"{name:30s} {snr:6.1f} dB  symbols {point['symbols']:8.1f}  delivered {point['delivered']:.2f}  "
                  f"MCS {point['mcs_index']}  tx {point['transmissions']:.2f}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "link-image-downlink.json", {"about": __doc__.split("\n\n")[0],
                                                              "payload_bytes": len(data), "draws": args.draws,
                                                              "points": results})
    write_figure_and_table(args.out, results, len(data), args.draws)
    print(f"wrote {args.out / 'link-image-downlink.png'}, .json and .md")
    return 0


def write_figure_and_table(out: Path, results: dict[str, list[dict]], size: int, draws: int) -> None:
    """OUT/link-image-downlink.png and .md from the measured points (a run's, or the saved JSON's)."""
    plot(results, size, draws).savefig(out / "link-image-downlink.png", dpi=110)
    (out / "link-image-downlink.md").write_text(table(results, size, draws))


def plot(results: dict[str, list[dict]], size: int, draws: int):
    """Symbols on air and delivered share against SNR, each point with its 95 % interval."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, points in results.items():
        snr = [pt["snr_db"] for pt in points]
        for ax, value, ci in ((axes[0], "symbols", "symbols_ci"), (axes[1], "delivered", "delivered_ci")):
            y = [pt[value] for pt in points]
            low = [pt[ci]["ci_low"] if pt.get(ci) and pt[ci]["ci_low"] is not None else v for pt, v in zip(points, y, strict=True)]
            high = [pt[ci]["ci_high"] if pt.get(ci) and pt[ci]["ci_high"] is not None else v for pt, v in zip(points, y, strict=True)]
            ax.errorbar(snr, y, yerr=[[max(0.0, v - lo) for v, lo in zip(y, low, strict=True)],
                                      [max(0.0, hi - v) for v, hi in zip(y, high, strict=True)]],
                        marker="o", capsize=3, label=name)
    axes[0].set_yscale("log")
    axes[0].set(xlabel="SNR (Es/N0, dB)", ylabel="symbols on air (mean, 95 % bootstrap)",
                title=f"CENTRALIZED image downlink ({size} bytes WebP, n = {draws} per point)")
    axes[1].set(xlabel="SNR (Es/N0, dB)", ylabel="fraction delivered (95 % Wilson)", title="delivery")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def table(results: dict[str, list[dict]], size: int, draws: int) -> str:
    """Markdown: mean symbols [95 %] per scheme and SNR, delivered k/n where not all, MCS ('3/5': table 3's
    MCS 5) and mean transmissions."""
    def cell(pt: dict) -> str:
        ci = pt["symbols_ci"]
        text = f"{pt['symbols']:.0f} [{ci['ci_low']:.0f}, {ci['ci_high']:.0f}]" if ci["ci_low"] != ci["ci_high"] \
            else f"{pt['symbols']:.0f}"
        if pt["delivered_ci"]["k"] < pt["n"]:
            d = pt["delivered_ci"]
            text += f" ({d['k']}/{pt['n']} delivered, [{d['ci_low']:.2f}, {d['ci_high']:.2f}])"
        if pt["mcs_index"] is not None:
            table = "3/" if pt.get("mcs_table") == 3 else ""
            text += f" (MCS {table}{pt['mcs_index']}, {pt['transmissions']:.2f} tx)"
        return text
    names = list(results)
    head = f"Mean symbols on air [95 % bootstrap interval], n = {draws} draws per point, payload {size} bytes\n\n"
    lines = ["| SNR | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for i, pt in enumerate(results[names[0]]):
        lines.append(f"| {pt['snr_db']:g} dB | " + " | ".join(cell(results[n][i]) for n in names) + " |")
    return head + "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
