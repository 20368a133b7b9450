#!/usr/bin/env python3
"""BLER curves of the fast 5G LDPC decoder against Sionna's, on the same noisy codewords (docs/link-models.md).

    python scripts/plot_decoder.py --out docs/figures      # about 10 min on 2 quiet cores

Each point decodes batches of AWGN codewords (APP demapper, 5G output interleaver, 20 iterations at most)
with both decoders until Sionna has `--target-errors` block errors or `--max-codewords` codewords; the fast
decoder then continues alone up to 10x as many codewords, so its curve reaches lower BLERs. Points are
saved after each one to --work/points.json, so a rerun resumes. Writes ldpc-fast-vs-sionna.png and .json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_decoder import noisy_codewords  # noqa: E402
from meg_common.io import atomic_write, atomic_write_json, prepare_out_dir  # noqa: E402
from meg_common.provenance import versions  # noqa: E402

# label: (k, n, base graph or None for 5G's choice)
CODES = {"k=1024 n=2048 (BG2, Z=104)": (1024, 2048, None), "k=1024 n=2048 (BG1, Z=48)": (1024, 2048, "bg1"),
         "k=500 n=1500 (BG2, Z=64)": (500, 1500, None)}
POINTS = {2: [1.0, 1.25, 1.5, 1.75], 4: [3.25, 3.5, 3.75, 4.0]}
EXTRA_POINTS = {("k=500 n=1500 (BG2, Z=64)", 2): [0.75], ("k=500 n=1500 (BG2, Z=64)", 4): [2.5, 2.75, 3.0]}
MIN_ERRORS = 3  # points with fewer block errors are not drawn (too uncertain)
BATCH = 250


def measure(sn, k, n, bg, m, ebno_db, target_errors, max_codewords, seed) -> dict:
    from link_models.ldpc_fast import LDPC5GFastDecoder

    enc = sn.fec.ldpc.LDPC5GEncoder(k, n, num_bits_per_symbol=m, bg=bg)
    sionna = sn.fec.ldpc.LDPC5GDecoder(enc, num_iter=20, hard_out=True)
    fast = LDPC5GFastDecoder(enc, num_iter=20)
    res = {"codewords_sionna": 0, "errors_sionna": 0, "codewords_fast": 0, "errors_fast": 0, "iterations_fast": 0.0}
    batch = 0
    while res["codewords_fast"] < 10 * max_codewords and res["errors_fast"] < 10 * target_errors:
        bits, llr = noisy_codewords(sn, enc, m, ebno_db, BATCH, seed=seed * 100_000 + batch)
        batch += 1
        out = fast(llr)
        res["codewords_fast"] += BATCH
        res["errors_fast"] += int((out != bits).any(dim=1).sum())
        res["iterations_fast"] += fast.last_mean_iterations * BATCH
        if res["errors_sionna"] < target_errors and res["codewords_sionna"] < max_codewords:
            res["codewords_sionna"] += BATCH
            res["errors_sionna"] += int((sionna(llr) != bits).any(dim=1).sum())
        elif res["errors_fast"] >= target_errors and res["codewords_fast"] >= res["codewords_sionna"]:
            break  # the fast curve has what it needs at this point too
    res["iterations_fast"] = round(res["iterations_fast"] / res["codewords_fast"], 2)
    res["bler_sionna"] = res["errors_sionna"] / res["codewords_sionna"]
    res["bler_fast"] = res["errors_fast"] / res["codewords_fast"]
    return res


def plot(points: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, m, title in zip(axes, (2, 4), ("QPSK", "16-QAM"), strict=True):
        for i, label in enumerate(CODES):
            pts = sorted((p for p in points if p["code"] == label and p["bits_per_symbol"] == m),
                         key=lambda p: p["ebno_db"])
            color = f"C{i}"
            for dec, style in (("sionna", "o--"), ("fast", "s-")):
                xy = [(p["ebno_db"], p[f"bler_{dec}"]) for p in pts if p[f"errors_{dec}"] >= MIN_ERRORS]
                if xy:
                    ax.semilogy(*zip(*xy, strict=True), style, color=color, ms=4,
                                label=f"{label}, {'Sionna BP' if dec == 'sionna' else 'fast'}")
        ax.set_title(f"{title}, AWGN")
        ax.title.set_fontsize(10)
        ax.set_xlabel("Eb/N0 [dB]")
        ax.set_ylabel("BLER")
        ax.set_ylim(1e-4, 1.1)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("5G LDPC, at most 20 iterations: fast (layered offset min-sum) vs Sionna (flooding BP), "
                 "same codewords", fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=90))
    plt.close(fig)
    print(f"wrote {path}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/figures", help="folder for ldpc-fast-vs-sionna.png/.json")
    parser.add_argument("--work", default="runs/plot_decoder", help="folder for the resumable points")
    parser.add_argument("--target-errors", type=int, default=30, help="Sionna block errors per point")
    parser.add_argument("--max-codewords", type=int, default=1000, help="Sionna codewords per point")
    args = parser.parse_args(argv)
    from meg_common.rng import import_sionna

    sn = import_sionna()
    out, work = prepare_out_dir(args.out), prepare_out_dir(args.work)
    store = work / "points.json"
    import json

    points = json.loads(store.read_text())["points"] if store.exists() else []
    done = {(p["code"], p["bits_per_symbol"], p["ebno_db"]) for p in points}
    for m, ebnos in POINTS.items():
        for ci, (label, (k, n, bg)) in enumerate(CODES.items()):
            for ebno_db in sorted(set(ebnos + EXTRA_POINTS.get((label, m), []))):
                if (label, m, ebno_db) in done:
                    continue
                start = time.perf_counter()
                res = measure(sn, k, n, bg, m, ebno_db, args.target_errors, args.max_codewords,
                              seed=1000 * m + 100 * ci + int(4 * ebno_db))
                res.update(code=label, k=k, n=n, base_graph=bg or "5G choice", bits_per_symbol=m, ebno_db=ebno_db,
                           wall_s=round(time.perf_counter() - start, 1))
                points.append(res)
                atomic_write_json(store, {"points": points})
                print(f"{label} m={m} {ebno_db} dB: Sionna {res['bler_sionna']:.2e} ({res['errors_sionna']}/"
                      f"{res['codewords_sionna']}), fast {res['bler_fast']:.2e} ({res['errors_fast']}/"
                      f"{res['codewords_fast']}, {res['iterations_fast']} it)", flush=True)
                if res["errors_sionna"] == 0 and res["errors_fast"] == 0:
                    break  # lower BLERs than this run can measure
    plot(points, out / "ldpc-fast-vs-sionna.png")
    atomic_write_json(out / "ldpc-fast-vs-sionna.json", {"versions": versions(), "points": points})
    return 0


if __name__ == "__main__":
    sys.exit(main())
