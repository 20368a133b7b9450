"""`meg-phy reproduce [--quick] --out DIR`: the paper's case study on the embedded model.

Text-guided img2img over a sweep of downlink SNRs for seeds (analog with channel-aware resume, analog naive,
digital), sketches (analog, digital) and CENTRALIZED (digital compressed image, analog pixels); a table of
bits and channel symbols of all ten protocols; plots; DIR/report.md written as the case-study section of a
paper; DIR/results.json with every point. Interrupted? Run the same command again: it resumes.
"""

from __future__ import annotations


def register(subparsers) -> None:
    from meg_common.cli import number_list

    parser = subparsers.add_parser("reproduce", help="reproduce the paper's case study (curves vs SNR, overhead table)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 SNRs x 8 tasks (about 10 min on 2 cores) "
                                                             "instead of 11 SNRs x 24 tasks")
    parser.add_argument("--snr-db", type=number_list("--snr-db"), help="override the SNR list ('0,5' or 'a:b:step')")
    parser.add_argument("--tasks", type=int, help="override the number of tasks per point")
    parser.add_argument("--series", help="comma-separated subset of the series (default: all): seed-analog-aware, "
                                         "seed-analog-naive, seed-digital, sketch-analog, sketch-digital, "
                                         "centralized-digital, centralized-analog")
    parser.add_argument("--model", help="Stable-Diffusion diffusers folder (default: the embedded model)")
    parser.add_argument("--evaluator", help="attribute evaluator folder (default: the embedded one)")
    parser.add_argument("--out", required=True, help="folder for results.json, report.md, plots and checkpoints")
    parser.set_defaults(func=main)


def main(args) -> int:
    import time
    from dataclasses import replace

    from tqdm import tqdm

    from flowgraphs.experiments import case_study as cs
    from flowgraphs.experiments import figures, paper
    from flowgraphs.session import Session
    from meg_common.errors import InputError
    from meg_common.io import atomic_write_json, atomic_write_text, prepare_out_dir, read_json
    from meg_common.provenance import versions

    plan = cs.Plan.quick(args.model) if args.quick else cs.Plan.full(args.model)
    if args.snr_db:
        plan = replace(plan, snrs=tuple(args.snr_db))
    plan = replace(plan, evaluator=args.evaluator)
    if args.series:
        known = [s.key for s in cs.SERIES]
        chosen = tuple(k.strip() for k in args.series.split(",") if k.strip())
        unknown = [k for k in chosen if k not in known]
        if unknown or not chosen:
            raise InputError(f"--series {args.series!r}: unknown {unknown}; choose from {', '.join(known)}")
        plan = replace(plan, series=chosen)
    if args.tasks is not None:
        if not 1 <= args.tasks <= 1000:
            raise InputError(f"--tasks {args.tasks}: give a number from 1 to 1000")
        plan = replace(plan, n_tasks=args.tasks)
    out = prepare_out_dir(args.out)
    cs.plan_matches(out, plan)
    timing = out / "timing.json"
    spent = read_json(timing)["seconds"] if timing.exists() else 0.0
    start = time.perf_counter()
    session = Session(evaluator=plan.evaluator)
    model = session.model(plan.model).describe()
    rows = []
    for series, snr in tqdm(cs.all_points(plan), desc="case study", unit="point", dynamic_ncols=True):
        rows.append(cs.run_point(out, plan, series, snr, session))
        atomic_write_json(timing, {"seconds": spent + time.perf_counter() - start})
    table = cs.overhead_table(out, plan, session)
    seconds = spent + time.perf_counter() - start
    atomic_write_json(timing, {"seconds": seconds})
    figures.curves(rows, out / "case_study.png", f"MEG case study: img2img, {plan.n_tasks} tasks, "
                                                  f"downlink over {plan.channel}")
    figures.overhead_bars(table, out / "overhead.png")
    keys = ("protocol", "payload", "scheme", "snr_db", "prompt_accuracy", "psnr_db", "ssim", "symbols", "bits")
    atomic_write_json(out / "results.json", {
        "rows": [{**{k: r[k] for k in keys}, **{k: v for k, v in r.items() if k not in keys}} for r in rows],
        "overhead": table, "plan": plan.__dict__, "model": model, "versions": versions(), "seconds": seconds})
    atomic_write_text(out / "report.md", paper.write(rows, table, plan, versions(), model, seconds, args.quick))
    low = paper.low_snr(rows)
    print(f"case study: {len(rows)} points in {seconds / 60:.1f} min; "
          + (f"analog seeds at -5 dB keep {100 * low['ratio']:.0f} % of the noiseless prompt accuracy; " if low else "")
          + f"wrote {out}/report.md")
    return 0
