"""`meg-phy bandwidth [--quick] --out DIR`: quality against channel uses per image (flowgraphs.experiments.bandwidth).

Every downlink scheme (analog seed with repetition, SoftCast, link-adapted digital image and seed, the capacity
bound, prompt-only) at N channel uses per image. Writes DIR/bandwidth.json (rows with 95 % intervals),
DIR/bandwidth.md (the report section), DIR/bandwidth_<kind>_<channel>.png, checkpoints in DIR/units-bandwidth
(run the same command again to resume). `meg-phy reproduce --bandwidth` is the same command (its options are
added to reproduce by `add_arguments`). Argparse only at import.
"""

from __future__ import annotations

ONLY_HERE = ("uses", "fixed_uses", "snr_sweep_db")


def register(subparsers) -> None:
    from flowgraphs.commands.campaign_options import add_campaign_arguments
    from meg_common.cli import number_list

    parser = subparsers.add_parser("bandwidth", help="quality against channel uses per image, every downlink scheme",
                                   description=__doc__.split("\n\n")[0])
    add_campaign_arguments(
        parser, quick="16 tasks per point instead of 100",
        snr="the fixed SNRs of the quality-against-uses panels (default -5,0,10)",
        chunk="tasks per unit (default 16 quick, 25 full)",
        series="comma-separated subset of the series (prompt-only always runs): seed-analog, softcast, "
               "softcast-meta-free, image-digital, seed-digital, image-capacity, seed-capacity",
        kinds="comma-separated task kinds: text-to-image, img2img-es",
        out="folder for bandwidth.json, bandwidth.md, plots and checkpoints")
    _sweep_arguments(parser.add_argument_group("budgets"), number_list)
    parser.set_defaults(func=main, bandwidth=True)


def add_arguments(parser) -> None:
    """The sweep's options on `meg-phy reproduce` (`reproduce --bandwidth` is `meg-phy bandwidth`)."""
    from meg_common.cli import number_list

    group = parser.add_argument_group("bandwidth sweep (--bandwidth: the same as `meg-phy bandwidth`)")
    group.add_argument("--bandwidth", action="store_true",
                       help="run the bandwidth sweep instead of the case study (= meg-phy bandwidth): every downlink "
                            "scheme at N channel uses per image; --snr-db sets its fixed SNRs (-5,0,10), "
                            "--series, --channels, --kinds, --tasks, --chunk apply")
    _sweep_arguments(group, number_list)


def _sweep_arguments(group, number_list) -> None:
    group.add_argument("--uses", type=number_list("--uses"),
                       help="channel uses per image (default 64,128,256,512,1024,2048,4096; 'a:b:step' works)")
    group.add_argument("--fixed-uses", type=int,
                       help="the budget of the quality-against-SNR panel (default: the seed's own channel uses)")
    group.add_argument("--snr-sweep-db", type=number_list("--snr-sweep-db"),
                       help="SNRs of the quality-against-SNR panel (default -10,-5,0,5,10,20)")


def unused(args) -> None:
    """InputError when a bandwidth-only option is given without --bandwidth."""
    from meg_common.errors import InputError

    given = [f"--{name.replace('_', '-')}" for name in ONLY_HERE if getattr(args, name, None) is not None]
    if given and not getattr(args, "bandwidth", False):
        raise InputError(f"{', '.join(given)} only apply to the bandwidth sweep; add --bandwidth or drop them")


def plan_from_args(args):
    """The bandwidth Plan the options ask for (InputError with one line for bad values)."""
    from dataclasses import replace

    from flowgraphs.config import CHANNELS
    from flowgraphs.experiments import bandwidth as bw
    from meg_common.errors import InputError

    def items(text, option, known, convert=str):
        if text is None:
            return None
        try:
            got = tuple(convert(k.strip()) for k in text.split(",") if k.strip())
        except ValueError:
            raise InputError(f"{option} {text!r}: expected a comma-separated list, e.g. {','.join(map(str, known))}") \
                from None
        bad = [k for k in got if k not in known]
        if bad or not got:
            raise InputError(f"{option} {text!r}: unknown {bad}; choose from {', '.join(map(str, known))}")
        return got

    for option in ("mcs", "n_es"):
        if getattr(args, option, None) is not None:
            raise InputError(f"--{option.replace('_', '-')} does not apply to --bandwidth (digital series always "
                             "use link adaptation, every series one ES); drop it")
    plan = bw.Plan.quick(args.model) if args.quick else bw.Plan(model=args.model)
    changes = {}
    for name, value, low, high in (("--tasks", args.tasks, 1, 10000), ("--chunk", args.chunk, 1, 10000),
                                   ("--fixed-uses", args.fixed_uses, 1, 1 << 20)):
        if value is not None and not low <= value <= high:
            raise InputError(f"{name} {value}: give a whole number from {low} to {high}")
    if args.uses is not None:
        if any(u != int(u) or not 1 <= u <= 1 << 20 for u in args.uses):
            raise InputError(f"--uses {args.uses}: channel uses are whole numbers from 1 to {1 << 20}")
        changes["uses"] = tuple(sorted({int(u) for u in args.uses}))
    for option, values in (("--snr-db", args.snr_db), ("--snr-sweep-db", args.snr_sweep_db)):
        if values is not None and any(not -40 <= s <= 60 for s in values):
            raise InputError(f"{option} {values}: SNRs from -40 to 60 dB")
    if args.snr_db is not None:
        changes["snrs"] = tuple(float(s) for s in args.snr_db)
    if args.snr_sweep_db is not None:
        changes["snr_sweep"] = tuple(float(s) for s in args.snr_sweep_db)
    if args.tasks is not None:
        changes["n_tasks"] = args.tasks
    if args.chunk is not None:
        changes["chunk"] = args.chunk
    if args.fixed_uses is not None:
        changes["fixed_uses"] = args.fixed_uses
    series = items(args.series, "--series", tuple(bw.SERIES))
    if series is not None:
        changes["series"] = tuple(s for s in series if s != bw.BASELINE)
    channels = items(args.channels, "--channels", tuple(c for c in CHANNELS if c != "ideal"))
    if channels is not None:
        changes["channels"] = channels
    kinds = items(args.kinds, "--kinds", bw.KINDS)
    if kinds is not None:
        changes["kinds"] = kinds
    if getattr(args, "evaluator", None) is not None:
        changes["evaluator"] = args.evaluator
    return replace(plan, **changes)


def main(args) -> int:
    from flowgraphs.experiments import bandwidth as bw
    from flowgraphs.experiments import campaign as rt
    from flowgraphs.session import Session
    from meg_common.executors import executor_from_args
    from meg_common.io import atomic_write_json, atomic_write_text, prepare_out_dir
    from meg_common.provenance import versions

    plan = plan_from_args(args)
    executor = executor_from_args(args)
    session = Session(evaluator=plan.evaluator)
    plan = bw.resolve(plan, session)
    out = prepare_out_dir(args.out)
    bw.plan_matches(out, plan)
    timing = rt.Timing(out / "timing-bandwidth.json")
    results, _ = rt.run_units(executor, bw.campaign(plan), out, bw.make_setup(plan), timing, "bandwidth sweep",
                              store="units-bandwidth")
    merged, skipped = bw.collect(results)
    rows = bw.rows(merged)
    seconds = timing.read()["seconds"]
    model = session.model(plan.model).describe()
    for kind in plan.kinds:
        for channel in plan.channels:
            bw.figure(rows, out / f"bandwidth_{kind}_{channel}.png", kind, channel, plan)
    atomic_write_json(out / "bandwidth.json", {
        "rows": rows, "no_point": skipped, "config": {**plan.to_dict(), "executor": args.executor},
        "series": {k: s.label for k, s in bw.SERIES.items()}, "model": model, "versions": versions(),
        "seconds": seconds})
    atomic_write_text(out / "bandwidth.md", bw.report(rows, plan, skipped, model, versions(), seconds))
    print(f"bandwidth sweep: {len(rows)} points ({len(skipped)} without a point) in {seconds / 60:.1f} min; "
          f"wrote {out}/bandwidth.md")
    return 0
