"""Multi-ES parallel protocols over ideal links: quality against single-ES, and the exchange trade-off.

For every task (prompt, seed) of the case study's task list, over ideal links:
- single-ES references: EIUG (the unsplit generation) and ESUC (the single-ES sketch, DSUC's counterpart);
- UIDG, DIUG, DSUC at n_es = 2 and 4 with the tiles exchanged every 1, 2 and 5 steps (context: the whole
  latent, the default); on the first `--compare-tasks` tasks also the tiles alone (tile_context = 0): fused
  every step (MultiDiffusion) and never fused during denoising (the former standalone tiles).
Each run is scored against its single-ES reference (PSNR of the mean MSE, mean SSIM: flowgraphs.result) and
read by the evaluator (prompt accuracy); backhaul bits, air symbols and work per ES come from the run's
accounting. Intervals are 95 %: Wilson for accuracies (scipy.stats.binomtest), bootstrap for means
(meg_common.stats: scipy.stats.bootstrap, BCa; a PSNR interval is the MSE interval converted).

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python scripts/multi_es_tradeoff.py --tasks 64
writes docs/figures/multi-es-exchange.json and .png; rows are kept in --cache (JSON lines) so an interrupted
run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROTOCOLS = ("UIDG", "DIUG", "DSUC")
REFERENCE = {"UIDG": "EIUG", "DIUG": "EIUG", "DSUC": "ESUC"}
EXCHANGES = (1, 2, 5)


def tasks(n: int) -> list[tuple[str, int]]:
    """(prompt, seed) of n tasks: prompts drawn from the embedded vocabulary with a fixed generator (the
    case study's former task list)."""
    from meg_phy import scenes

    attrs = scenes.sample_attributes(torch.Generator().manual_seed(2024), n)
    return [(scenes.make_prompt(a), 1000 + i) for i, a in enumerate(attrs)]


def variants(stage: str) -> list[tuple[str, str, int, int, int | None]]:
    """(key, protocol, n_es, exchange_every, tile_context) of the runs of one stage of a task:
    A: single-ES references and the default (exchange every step); B: exchange every 2 and 5 steps;
    C: the tiles alone (tile_context = 0), fused every step (MultiDiffusion) and never during denoising."""
    out = {"A": [("EIUG", "EIUG", 1, 1, None), ("ESUC", "ESUC", 1, 1, None)], "B": [], "C": []}
    for name in PROTOCOLS:
        for n in (2, 4):
            out["A"].append((f"{name}-n{n}-k1", name, n, 1, None))
            out["B"] += [(f"{name}-n{n}-k{k}", name, n, k, None) for k in EXCHANGES[1:]]
            out["C"] += [(f"{name}-n{n}-tile-k1", name, n, 1, 0), (f"{name}-n{n}-tile-alone", name, n, 1000, 0)]
    return out[stage]


def schedule(n_tasks: int, b_tasks: int, c_tasks: int, shard: int, shards: int, first: int = 4) -> list[tuple[int, str]]:
    """(task, stage) in the order this shard runs them: the default on the first `first` tasks, the trade-off
    and the comparison on half as many, then the rest, so an interrupted campaign has the most useful rows."""
    b_first, c_first = min(b_tasks, first // 2), min(c_tasks, first // 2)
    plan = ([(t, "A") for t in range(min(first, n_tasks))] + [(t, "B") for t in range(b_first)]
            + [(t, "C") for t in range(c_first)] + [(t, "A") for t in range(first, n_tasks)]
            + [(t, "B") for t in range(b_first, b_tasks)] + [(t, "C") for t in range(c_first, c_tasks)])
    return [(t, stage) for t, stage in plan if t % shards == shard]


def run_all(n_tasks: int, b_tasks: int, c_tasks: int, cache: Path, shard: int, shards: int) -> None:
    """Run this shard's units, appending one JSON line per run to cache/rows-SHARD.jsonl (resumable)."""
    from safetensors.torch import load_file, save_file

    from flowgraphs.config import config_from_dict
    from flowgraphs.result import measure
    from flowgraphs.runner import run_protocol
    from flowgraphs.session import Session
    from flowgraphs.task import make_task

    cache.mkdir(parents=True, exist_ok=True)
    rows_file = cache / f"rows-{shard}.jsonl"
    done = {(r["task"], r["key"]) for r in read_rows(cache)}
    session = Session()
    scorer = session.scorer()
    task_list = tasks(n_tasks)
    start = time.time()
    for t, stage in schedule(n_tasks, b_tasks, c_tasks, shard, shards):
        prompt, seed = task_list[t]
        for key, name, n, k, context in variants(stage):
            if (t, key) in done:
                continue
            config = config_from_dict({}, protocol=name, prompt=prompt, seed=seed, n_es=n, exchange_every=k,
                                      tile_context=context, channel="ideal")
            out = run_protocol(config, make_task(config, session), session)
            ref_name = REFERENCE.get(name, name)
            ref_file = cache / f"ref-{ref_name}-{t:03d}.safetensors"
            if name == ref_name:
                save_file({"image": out.image.contiguous()}, str(ref_file))
            ref = load_file(str(ref_file))["image"]
            q = measure(out.image, ref, [prompt], scorer)[0]
            totals = out.graph.totals()
            es = [c for node, c in out.graph.compute.items() if node != "UE"]
            row = {"task": t, "key": key, "protocol": name, "n_es": n, "exchange_every": k, "tile_context": context,
                   "prompt_match": bool(q.prompt_match), "mse": q.mse, "ssim": q.ssim,
                   "max_abs_diff": float((out.image - ref).abs().max()),
                   "air_symbols": totals["air_symbols"], "backhaul_bits": totals["backhaul_bits"],
                   "backhaul_transfer_s": totals["backhaul_transfer_s"],
                   "exchanges": sum(r.payload == "border" for r in out.graph.records) // max(1, n * (n - 1)),
                   "work_per_es": max(c["work"] for c in es),
                   "work_total": sum(c["work"] for c in out.graph.compute.values()),
                   "es_seconds": max(c["seconds"] for c in es)}
            done.add((t, key))
            with rows_file.open("a") as f:
                f.write(json.dumps(row) + "\n")
        print(f"shard {shard}: task {t} stage {stage} done, {time.time() - start:.0f} s", flush=True)


def read_rows(cache: Path) -> list[dict]:
    rows = []
    for path in sorted(cache.glob("rows-*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: (r["task"], r["key"]))


def wilson(successes: int, n: int) -> list[float]:
    from meg_common import stats

    ci = stats.rate(successes, n)
    return [float(ci["ci_low"]), float(ci["ci_high"])]


def mean_ci(values: list[float]) -> list[float]:
    """The bootstrap 95 % interval of the mean (meg_common.stats: BCa, the case study's)."""
    from meg_common import stats

    ci = stats.mean(values)
    return [float(ci["ci_low"]), float(ci["ci_high"])]


def psnr(mse: float) -> float | None:
    return None if mse <= 0 else 10 * math.log10(1 / mse)


def summarise(rows: list[dict]) -> list[dict]:
    """One entry per variant: accuracy (Wilson), PSNR (bootstrap of the MSE), SSIM, backhaul, work."""
    out = []
    for key in dict.fromkeys(r["key"] for r in rows):
        group = [r for r in rows if r["key"] == key]
        first, n = group[0], len(group)
        hits = sum(r["prompt_match"] for r in group)
        mse = [r["mse"] for r in group]
        lo, hi = mean_ci(mse)
        out.append({
            "key": key, "protocol": first["protocol"], "n_es": first["n_es"], "exchange_every": first["exchange_every"],
            "tile_context": first["tile_context"], "tasks": n,
            "reference": REFERENCE.get(first["protocol"], first["protocol"]),
            "prompt_accuracy": hits / n, "prompt_accuracy_ci95": wilson(hits, n),
            "psnr_db": psnr(float(np.mean(mse))), "psnr_db_ci95": [psnr(hi), psnr(lo)],
            "max_abs_diff": max(r.get("max_abs_diff", 0.0) for r in group),
            "ssim": float(np.mean([r["ssim"] for r in group])), "ssim_ci95": mean_ci([r["ssim"] for r in group]),
            "backhaul_bits": float(np.mean([r["backhaul_bits"] for r in group])),
            "backhaul_bits_ci95": mean_ci([r["backhaul_bits"] for r in group]),
            "backhaul_transfer_s": float(np.mean([r["backhaul_transfer_s"] for r in group])),
            "exchanges": float(np.mean([r["exchanges"] for r in group])),
            "air_symbols": float(np.mean([r["air_symbols"] for r in group])),
            "work_per_es": float(np.mean([r["work_per_es"] for r in group])),
            "work_total": float(np.mean([r["work_total"] for r in group])),
        })
    return out


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_q, ax_a) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = {"UIDG": "tab:blue", "DIUG": "tab:orange", "DSUC": "tab:green"}
    refs = {s["key"]: s for s in summary if s["protocol"] in ("EIUG", "ESUC")}
    for name in PROTOCOLS:
        for n, marker, style in ((2, "o", "-"), (4, "s", "--")):
            pts = sorted((s for s in summary if s["protocol"] == name and s["n_es"] == n and s["tile_context"] is None),
                         key=lambda s: s["exchange_every"])
            if not pts:
                continue
            x = [s["backhaul_bits"] / 1e6 for s in pts]
            y = [min(s["psnr_db"] or 150.0, 150.0) for s in pts]
            lo = [min(s["psnr_db_ci95"][0] or 150.0, 150.0) for s in pts]
            hi = [min(s["psnr_db_ci95"][1] or 150.0, 150.0) for s in pts]
            ax_q.errorbar(x, y, yerr=[[max(0.0, a - b) for a, b in zip(y, lo, strict=True)],
                                      [max(0.0, b - a) for a, b in zip(y, hi, strict=True)]],
                          fmt=style, marker=marker, color=colours[name], capsize=3, label=f"{name} n={n}")
            for s, xi, yi in zip(pts, x, y, strict=True):
                ax_q.annotate(f"k={s['exchange_every']}", (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=7)
            acc = [s["prompt_accuracy"] for s in pts]
            err = [[a - s["prompt_accuracy_ci95"][0] for a, s in zip(acc, pts, strict=True)],
                   [s["prompt_accuracy_ci95"][1] - a for a, s in zip(acc, pts, strict=True)]]
            ax_a.errorbar(x, acc, yerr=err, fmt=style, marker=marker, color=colours[name], capsize=3,
                          label=f"{name} n={n}")
    if "EIUG" in refs:
        lo, hi = refs["EIUG"]["prompt_accuracy_ci95"]
        ax_a.axhspan(lo, hi, color="grey", alpha=0.2, label="single-ES EIUG, 95 % interval")
    ax_q.set_xscale("log")
    ax_a.set_xscale("log")
    ax_q.set_xlabel("backhaul per run (Mbit, wired)")
    ax_a.set_xlabel("backhaul per run (Mbit, wired)")
    ax_q.set_ylabel("PSNR vs single-ES, dB (95 % CI)")
    ax_a.set_ylabel("prompt accuracy (95 % Wilson)")
    ax_q.set_title("fidelity vs. exchange every k steps")
    ax_a.set_title("prompt accuracy vs. exchange every k steps")
    ax_q.legend(fontsize=7)
    ax_a.legend(fontsize=7, loc="lower right")
    n_tasks = refs["EIUG"]["tasks"] if "EIUG" in refs else 0
    fig.suptitle(f"Joint tiled denoising, ideal links, {n_tasks} tasks (whole-latent context)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(summary: list[dict]) -> str:
    """The summary as the markdown table docs/protocols.md shows (written beside the JSON, not typed)."""
    def db(v):
        return "identical" if v is None else f"{v:.0f}"

    lines = ["| run | tasks | prompt accuracy [95 %] | PSNR vs single-ES, dB [95 %] | SSIM | max. pixel diff. "
             "| backhaul, Mbit/run | exchanges | work per ES |", "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for s in sorted(summary, key=lambda s: s["key"]):
        lo, hi = s["prompt_accuracy_ci95"]
        k = round(s["prompt_accuracy"] * s["tasks"])
        plo, phi = s["psnr_db_ci95"]
        psnr_text = "identical" if s["psnr_db"] is None else f"{db(s['psnr_db'])} [{db(plo)}, {db(phi)}]"
        lines.append(f"| {s['key']} | {s['tasks']} | {k}/{s['tasks']} [{lo:.2f}, {hi:.2f}] | {psnr_text} | "
                     f"{s['ssim']:.4f} | {s['max_abs_diff']:.1e} | {s['backhaul_bits'] / 1e6:.3f} | "
                     f"{s['exchanges']:.0f} | {s['work_per_es']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=64, help="tasks of the default runs (stage A)")
    parser.add_argument("--tradeoff-tasks", type=int, default=64, help="tasks of exchange every 2 and 5 (stage B)")
    parser.add_argument("--compare-tasks", type=int, default=16,
                        help="tasks of the tiles-alone variants, tile_context = 0 (stage C)")
    parser.add_argument("--shard", type=int, default=0, help="run only this shard's tasks (task %% shards)")
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--summarise-only", action="store_true", help="write the JSON and figure from the rows so far")
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "multi-es-tradeoff")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures" / "multi-es-exchange.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if not args.summarise_only:
        run_all(args.tasks, args.tradeoff_tasks, args.compare_tasks, args.cache, args.shard, args.shards)
    summary = summarise(read_rows(args.cache))
    from meg_common.io import atomic_write_json
    from meg_common.provenance import versions

    atomic_write_json(args.out, {"links": "ideal", "backhaul": "wired, 1 Gbit/s, 0.1 ms latency",
                                 "command": "scripts/multi_es_tradeoff.py " + " ".join(argv or sys.argv[1:]),
                                 "summary": summary, "versions": versions()})
    plot(summary, args.out.with_suffix(".png"))
    from meg_common.io import atomic_write_text

    atomic_write_text(args.out.with_suffix(".md"), table(summary))
    for s in summary:
        lo, hi = s["prompt_accuracy_ci95"]
        print(f"{s['key']:22s} n={s['tasks']:3d} acc {s['prompt_accuracy']:.3f} [{lo:.3f}, {hi:.3f}]  "
              f"PSNR {s['psnr_db']}  SSIM {s['ssim']:.4f}  backhaul {s['backhaul_bits'] / 1e6:.3f} Mbit  "
              f"work/ES {s['work_per_es']:.0f}")
    print(f"wrote {args.out}, {args.out.with_suffix('.png')} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
