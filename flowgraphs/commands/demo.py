"""`meg-phy demo --out DIR`: MEG in about a minute, beside the sceptic. EIUG at a low downlink SNR with analog
seeds (channel-aware resume) and digital seeds, CENTRALIZED with a digital compressed image, and the two
sceptics that fit an img2img task whose input image is at the UE: `ue-local` (the UE finishes the task
itself from the image it holds: nothing on air) and `noise-seed@10` (the ES tells the UE its noise seed in a
small control message; the UE runs a 10-step schedule alone with it), on a few tasks.

Prints quality against the reference (the unsplit noiseless LDM output) and symbols on air; writes
DIR/report.md and DIR/demo.png (input, reference and the five outputs side by side, one row per task).
"""

from __future__ import annotations

VARIANTS = (
    ("EIUG, analog seed", "seed-analog-aware", "EIUG", "analog"),
    ("EIUG, digital seed", "seed-digital", "EIUG", "digital"),
    ("CENTRALIZED, digital image", "centralized-digital", "CENTRALIZED", "digital"),
    ("ue-local (UE alone with its image, 0 symbols)", "ue-local", "ue-local", "none"),
    ("noise-seed@10 (UE told the ES's noise seed)", "noise-seed@10", "noise-seed", "control"),
)
"""The task is img2img with the image at the UE, so the do-nothing sceptic is `ue-local` (not prompt-only,
which would ignore the image the UE holds), and the sceptic who knows the system is `noise-seed@K`."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="MEG in a minute: EIUG with analog/digital seeds vs CENTRALIZED and "
                                                "the sceptics ue-local and noise-seed@10", description=__doc__.split("\n\n")[0])
    parser.add_argument("--snr-db", type=float, default=-5.0, help="downlink SNR, dB (default -5)")
    parser.add_argument("--tasks", type=int, default=4, help="number of img2img tasks (default 4)")
    parser.add_argument("--model", help="Stable-Diffusion diffusers folder (default: the embedded model)")
    parser.add_argument("--evaluator", help="evaluator folder (default: the embedded one)")
    parser.add_argument("--out", default="runs/demo", help="report folder (default runs/demo)")
    parser.set_defaults(func=main)


def main(args) -> int:
    import time

    from flowgraphs.experiments.case_study import Harness, Plan, Point, alone
    from flowgraphs.report import labelled_grid_png
    from flowgraphs.result import measure, summarise
    from meg_common.errors import InputError
    from meg_common.io import atomic_write_bytes, atomic_write_json, atomic_write_text, prepare_out_dir
    from meg_common.provenance import versions

    if not 1 <= args.tasks <= 64:
        raise InputError(f"--tasks {args.tasks}: give a number from 1 to 64")
    out = prepare_out_dir(args.out)
    start = time.perf_counter()
    plan = Plan(grids=(), n_tasks=args.tasks, chunk=args.tasks, strength=0.75, guidance=None, model=args.model,
                evaluator=args.evaluator)
    h = Harness(plan)
    kind = "img2img-ue"
    found = {label: [] for label, *_ in VARIANTS}
    tiles = []
    for i in range(args.tasks):
        reference = h.reference(kind, i)[0]
        row = [h.task(kind, i).image, reference]
        for label, series, _, _ in VARIANTS:
            point = Point(kind, series, "none", None, 0) if alone(series) else \
                Point(kind, series, "awgn", args.snr_db, 1)
            image, numbers = h.outcome(point, i)
            quality = measure(image, reference, [h.prompts[i]], h.world.scorer)[0]
            fidelity = h.world.fidelity(image, reference)[0]
            found[label].append((quality, fidelity, numbers))
            row.append(image)
        tiles.append(row)
    seconds = time.perf_counter() - start
    summary = []
    for label, series, protocol, scheme in VARIANTS:
        runs = found[label]
        pooled = summarise([q for q, _, _ in runs])
        mean = {k: sum(n[k] for _, _, n in runs) / len(runs) for k in ("air", "downlink", "ue_steps")}
        summary.append({"variant": label, "series": series, "protocol": protocol, "downlink": scheme,
                        "prompt_accuracy": pooled["prompt_accuracy"], "fidelity": sum(f for _, f, _ in runs) / len(runs),
                        "psnr_db": pooled["psnr_db"], "ssim": pooled["ssim"], "symbols": mean["air"],
                        "downlink_symbols": mean["downlink"], "ue_steps": mean["ue_steps"],
                        "payloads_lost": sum(n["payloads_lost"] for _, _, n in runs)})
    picture = labelled_grid_png([[t if t.dim() == 4 else t[None] for t in row] for row in tiles],
                                ["input", "reference", *(label for label, *_ in VARIANTS)],
                                [_wrap(p) for p in h.prompts])
    atomic_write_bytes(out / "demo.png", picture)
    atomic_write_json(out / "demo.json", {"snr_db": args.snr_db, "tasks": args.tasks, "seconds": seconds,
                                          "world": h.world.describe(), "variants": summary, "versions": versions()})
    atomic_write_text(out / "report.md", _markdown(summary, args, seconds, h.world.describe()))
    base = next(s for s in summary if s["protocol"] == "CENTRALIZED")
    print(f"MEG demo: {args.tasks} img2img tasks, downlink at {args.snr_db:g} dB ({seconds:.0f} s); "
          f"quality against the unsplit noiseless output")
    print(f"{'':46s} {'prompt acc':>10s} {'fidelity':>8s} {'PSNR dB':>8s} {'SSIM':>6s} {'UE steps':>8s} "
          f"{'symbols':>8s} {'downlink':>8s} {'fewer than CENTRALIZED':>23s}")
    for s in summary:
        fewer = (f"{base['symbols'] / s['symbols']:9.1f}x ({base['downlink_symbols'] / s['downlink_symbols']:.1f}x down)"
                 if s["symbols"] and s["downlink_symbols"] else "   nothing on air")
        print(f"{s['variant']:46s} {s['prompt_accuracy']:10.2f} {s['fidelity']:8.3f} {_db(s['psnr_db']):>8s} "
              f"{s['ssim']:6.3f} {s['ue_steps']:8.1f} {s['symbols']:8.0f} {s['downlink_symbols']:8.0f} {fewer}"
              + (f"  ({s['payloads_lost']} payloads lost)" if s["payloads_lost"] else ""))
    print(f"wrote {out}/report.md and {out}/demo.png")
    return 0


def _wrap(prompt: str, width: int = 22) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(prompt, width))


def _db(value) -> str:
    return "inf" if value is None else f"{value:.1f}"


def _markdown(summary, args, seconds, world) -> str:
    lines = [
        "# MEG demo",
        "",
        f"{args.tasks} text-guided img2img tasks (world {world['world']}); the UE holds the prompt and the input "
        f"image and uploads them digitally at 20 dB; the downlink runs at {args.snr_db:g} dB (AWGN). EIUG: the ES "
        "denoises half the steps and sends the seed down; the UE finishes. CENTRALIZED: the ES does everything "
        "and sends the final image down as WebP. ue-local: the UE finishes the img2img itself from the image "
        "it holds, with its own model and noise, nothing on air: what a protocol has to beat. noise-seed@10: the "
        "ES sends its noise seed, schedule and strength in a small digital control message (robust MCS, HARQ, "
        "counted on air) and the UE runs a 10-step schedule alone with that noise (at the full schedule it "
        "would reproduce the reference exactly). Quality against the reference (the "
        f"unsplit, noiseless LDM output); fidelity: {world['fidelity']}. Measured in {seconds:.0f} s.",
        "",
        "Columns of the picture: input, reference, " + ", ".join(v for v, *_ in VARIANTS) + ".",
        "",
        "![demo](demo.png)",
        "",
        "| variant | prompt accuracy | fidelity | PSNR (dB) | SSIM | UE steps | symbols on air | downlink symbols | payloads lost |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summary:
        lines.append(f"| {s['variant']} | {s['prompt_accuracy']:.2f} | {s['fidelity']:.3f} | {_db(s['psnr_db'])} | "
                     f"{s['ssim']:.3f} | {s['ue_steps']:.1f} | {s['symbols']:.0f} | {s['downlink_symbols']:.0f} | "
                     f"{s['payloads_lost']} |")
    return "\n".join(lines) + "\n"
