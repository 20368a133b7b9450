"""`meg-phy demo --out DIR`: MEG in about a minute. EIUG at a low downlink SNR with analog seeds (channel-aware
resume) and digital seeds, against CENTRALIZED with a digital compressed image, on a few img2img tasks.

Prints quality and symbols on air; writes DIR/report.md and DIR/demo.png (input, noiseless reference and
the three outputs side by side, one row per task).
"""

from __future__ import annotations

VARIANTS = (
    ("EIUG, analog seed", "EIUG", "analog"),
    ("EIUG, digital seed", "EIUG", "digital"),
    ("CENTRALIZED, digital image", "CENTRALIZED", "digital"),
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="MEG in a minute: EIUG with analog/digital seeds vs CENTRALIZED",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--snr-db", type=float, default=-5.0, help="downlink SNR, dB (default -5)")
    parser.add_argument("--tasks", type=int, default=4, help="number of img2img tasks (default 4)")
    parser.add_argument("--model", help="Stable-Diffusion diffusers folder (default: the embedded model)")
    parser.add_argument("--evaluator", help="attribute evaluator folder (default: the embedded one)")
    parser.add_argument("--out", default="runs/demo", help="report folder (default runs/demo)")
    parser.set_defaults(func=main)


def main(args) -> int:
    import time

    from flowgraphs.config import config_from_dict
    from flowgraphs.experiments.case_study import tasks
    from flowgraphs.report import labelled_grid_png
    from flowgraphs.result import RunResult, measure, summarise
    from flowgraphs.runner import run_protocol
    from flowgraphs.session import Session
    from flowgraphs.task import make_task
    from meg_common.errors import InputError
    from meg_common.io import atomic_write_bytes, atomic_write_json, atomic_write_text, prepare_out_dir
    from meg_common.provenance import versions

    if not 1 <= args.tasks <= 64:
        raise InputError(f"--tasks {args.tasks}: give a number from 1 to 64")
    out = prepare_out_dir(args.out)
    start = time.perf_counter()
    session = Session(evaluator=args.evaluator)
    results: dict[str, list[RunResult]] = {label: [] for label, _, _ in VARIANTS}
    tiles = []
    for prompt, seed in tasks(args.tasks):
        shared = {"model": args.model, "prompt": prompt, "seed": seed}
        up = {"scheme": "digital", "snr_db": 20.0}
        images = []
        reference = None
        for label, protocol, scheme in VARIANTS:
            config = config_from_dict({"uplink": up, "downlink": {"scheme": scheme, "snr_db": args.snr_db}},
                                      protocol=protocol, **shared)
            task = make_task(config, session)
            if reference is None:  # the noiseless reference: the unsplit generation (EIUG, analog, ideal links)
                reference = run_protocol(config.ideal(), task, session).image
            run = run_protocol(config, task, session)
            quality = measure(run.image, reference, [prompt], session.scorer())[0]
            results[label].append(RunResult.of(run, task, quality))
            images.append(run.image)
        tiles.append([task.image, reference, *images])
    seconds = time.perf_counter() - start
    summary = []
    for label, protocol, scheme in VARIANTS:
        runs = results[label]
        pooled = summarise([r.quality for r in runs])
        summary.append({"variant": label, "protocol": protocol, "downlink": scheme,
                        "prompt_accuracy": pooled["prompt_accuracy"], "psnr_db": pooled["psnr_db"],
                        "ssim": pooled["ssim"], "symbols": sum(r.symbols() for r in runs) / args.tasks,
                        "downlink_symbols": sum(r.symbols("downlink") for r in runs) / args.tasks,
                        "payloads_lost": sum(r.payloads_lost for r in runs)})
    prompts = [prompt for prompt, _ in tasks(args.tasks)]
    picture = labelled_grid_png(tiles, ["input", "noiseless reference", *(label for label, _, _ in VARIANTS)],
                                [_wrap(p) for p in prompts])
    atomic_write_bytes(out / "demo.png", picture)
    atomic_write_json(out / "demo.json", {"snr_db": args.snr_db, "tasks": args.tasks, "seconds": seconds,
                                          "variants": summary, "versions": versions()})
    atomic_write_text(out / "report.md", _markdown(summary, args, seconds))
    base = next(s for s in summary if s["protocol"] == "CENTRALIZED")
    print(f"MEG demo: {args.tasks} img2img tasks, downlink at {args.snr_db:g} dB ({seconds:.0f} s)")
    print(f"{'':28s} {'prompt acc':>10s} {'PSNR dB':>8s} {'SSIM':>6s} {'symbols':>8s} {'downlink':>8s} {'fewer than CENTRALIZED':>23s}")
    for s in summary:
        print(f"{s['variant']:28s} {s['prompt_accuracy']:10.2f} {_db(s['psnr_db']):>8s} {s['ssim']:6.3f} "
              f"{s['symbols']:8.0f} {s['downlink_symbols']:8.0f} "
              f"{base['symbols'] / s['symbols']:9.1f}x ({base['downlink_symbols'] / s['downlink_symbols']:.1f}x down)"
              + (f"  ({s['payloads_lost']} payloads lost)" if s["payloads_lost"] else ""))
    print(f"wrote {out}/report.md and {out}/demo.png")
    return 0


def _wrap(prompt: str, width: int = 22) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(prompt, width))


def _db(value) -> str:
    return "inf" if value is None else f"{value:.1f}"


def _markdown(summary, args, seconds) -> str:
    lines = [
        "# MEG demo",
        "",
        f"{args.tasks} text-guided img2img tasks; the UE holds the prompt and the input image and uploads them "
        f"digitally at 20 dB; the downlink runs at {args.snr_db:g} dB (AWGN, LS channel estimation). "
        f"EIUG: the ES denoises half the steps and sends the seed down; the UE finishes. CENTRALIZED: the ES "
        f"does everything and sends the final image down as WebP. Quality against the noiseless unsplit "
        f"generation. Measured in {seconds:.0f} s.",
        "",
        "Columns of the picture: input, noiseless reference, " + ", ".join(v for v, _, _ in VARIANTS) + ".",
        "",
        "![demo](demo.png)",
        "",
        "| variant | prompt accuracy | PSNR (dB) | SSIM | symbols on air | downlink symbols | payloads lost |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summary:
        lines.append(f"| {s['variant']} | {s['prompt_accuracy']:.2f} | {_db(s['psnr_db'])} | {s['ssim']:.3f} | "
                     f"{s['symbols']:.0f} | {s['downlink_symbols']:.0f} | {s['payloads_lost']} |")
    return "\n".join(lines) + "\n"
