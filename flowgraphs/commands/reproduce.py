"""`meg-phy reproduce [--quick] --out DIR`: the paper's case study as a harness whose verdicts can be negative.

Every series, baseline (`prompt-only`, `ue-local`) and protocol is scored on the same tasks against one
reference per task (the unsplit noiseless LDM output), with 95 % intervals, and the paper's two claims get
verdicts (supported / not supported / inconclusive) computed from paired intervals. Writes DIR/results.json
(rows, claims, config, versions), DIR/report.md, plots with error bars. Design points are independent units
(`--executor local|ray`); `--placement ray` runs each ES of a run on its own Ray actor (flowgraphs.placement).
Interrupted? Run the same command again: it resumes.
"""

from __future__ import annotations

OUTPUT_FIELDS = ("series", "protocol", "payload", "scheme", "task_kind", "channel", "snr_db", "n_es", "n")


def register(subparsers) -> None:
    from flowgraphs.commands.campaign_options import add_campaign_arguments

    parser = subparsers.add_parser("reproduce", help="the paper's case study against doing nothing, with intervals "
                                                     "and verdicts", description=__doc__.split("\n\n")[0])
    add_campaign_arguments(
        parser, quick="32 tasks per point on a small grid (AWGN and TDL-A, -5 and 0 dB, every task kind; batched, the "
                      "UNet on ONNX Runtime where installed) instead of "
                      "the full run", snr="override the SNR list ('0,5' or 'a:b:step')",
        chunk="tasks per unit (default 32 quick, 50 full)",
        series="comma-separated subset of the series (baselines always run): seed-analog-aware, seed-analog-naive, "
               "seed-digital, sketch-analog, sketch-digital, centralized-digital, centralized-digital-q50, "
               "centralized-digital-lossless, centralized-analog, noise-seed@10, prompt-only@6, ue-local@4, "
               "proto-EIUG, ...",
        kinds="comma-separated task kinds: text-to-image, img2img-es, img2img-ue",
        out="folder for results.json, report.md, plots and checkpoints")
    parser.add_argument("--core", action="store_true",
                        help="the claims' core run: 200 tasks per point, AWGN and TDL-A from -10 to 20 dB, every task "
                             "kind, EIUG and ESUC (analog, digital), the sceptics and CENTRALIZED's rate-quality curve, "
                             "OLLA + ARQ, a pedestrian UE (docs/reproduce.md)")
    from meg_phy.runtime import RUNTIMES

    parser.add_argument("--runtime", choices=RUNTIMES,
                        help="where the UNet runs: torch (the default; --quick: auto), onnx (ONNX Runtime: pip install "
                             "'meg-phy[fast]'; equal to PyTorch within the campaign tolerance, not bit for bit) or auto "
                             "(onnx where installed); a folder resumes only with the runtime it was begun with")
    parser.add_argument("--n-es", help="comma-separated ES counts for the multi-ES protocols (e.g. 1,2,4)")
    parser.add_argument("--mcs", help="MCS of the digital hops of every series that does not fix its own: auto "
                                      "(link adaptation, the default), a TS 38.214 MCS index, or none")
    parser.add_argument("--batched", action="store_true",
                        help="run a unit's tasks of a protocol as one batch (flowgraphs.runner.run_batch: one model "
                             "call per stage for all, batched link sends); results equal task by task up to the "
                             "model kernels' float rounding, which a digital seed's quantiser can turn into other "
                             "bytes (docs/distributed.md). Off by default; a folder resumes only as it was begun")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: write results.json, report.md and the plots from the units this --out "
                             "folder holds so far (a long run's interim results; the report says how many of its "
                             "units are in, each row its own n)")
    from flowgraphs.placement import add_placement_arguments

    add_placement_arguments(parser, address=False)  # --address is the executor's, or with --placement ray the ESs'
    from flowgraphs.commands import bandwidth

    bandwidth.add_arguments(parser)
    parser.set_defaults(func=main)


def _list(text: str | None, option: str, known, convert=str) -> tuple | None:
    from meg_common.errors import InputError

    if text is None:
        return None
    try:
        items = tuple(convert(k.strip()) for k in text.split(",") if k.strip())
    except ValueError:
        raise InputError(f"{option} {text!r}: expected a comma-separated list, e.g. {', '.join(map(str, known))}") from None
    unknown = [k for k in items if k not in known]
    if unknown or not items:
        raise InputError(f"{option} {text!r}: unknown {unknown}; choose from {', '.join(map(str, known))}")
    return items


def plan_from_args(args):
    """The Plan the options ask for (InputError for bad values)."""
    from dataclasses import replace

    from flowgraphs.config import CHANNELS, MAX_ES
    from flowgraphs.experiments import case_study as cs
    from meg_common.errors import InputError

    if args.quick and getattr(args, "core", False):
        raise InputError("--quick and --core are two plans; choose one")
    plan = cs.Plan.quick(args.model) if args.quick else cs.Plan.core(args.model) if getattr(args, "core", False) \
        else cs.Plan.full(args.model)
    if args.tasks is not None and not 1 <= args.tasks <= 10000:
        raise InputError(f"--tasks {args.tasks}: give a number from 1 to 10000")
    if args.chunk is not None and not 1 <= args.chunk <= 10000:
        raise InputError(f"--chunk {args.chunk}: give a number from 1 to 10000")
    plan = cs.restrict(
        plan, snrs=args.snr_db, tasks=args.tasks, chunk=args.chunk, evaluator=args.evaluator,
        series=_list(args.series, "--series", tuple(cs.SERIES)),
        channels=_list(args.channels, "--channels", tuple(c for c in CHANNELS if c != "ideal")),
        kinds=_list(args.kinds, "--kinds", cs.KINDS),
        n_es=_list(args.n_es, "--n-es", tuple(range(1, MAX_ES + 1)), int))
    if getattr(args, "batched", False):
        if getattr(args, "placement", "local") != "local":
            raise InputError("--batched runs a unit's tasks in one process, --placement ray puts each ES on its own "
                             "actor; choose one")
        plan = replace(plan, batched=True)
    if getattr(args, "runtime", None) is not None:
        plan = replace(plan, runtime=args.runtime)
    if getattr(args, "mcs", None) is not None:
        from link_models.config import _mcs_index

        plan = replace(plan, mcs=_mcs_index(args.mcs, "--mcs") or "none")
    return plan


def main(args) -> int:
    from pathlib import Path

    from flowgraphs.commands import bandwidth
    from flowgraphs.experiments import campaign as rt
    from flowgraphs.experiments import case_study as cs
    from flowgraphs.experiments import figures, paper, verdicts
    from meg_common.errors import InputError
    from meg_common.executors import executor_from_args
    from meg_common.io import atomic_write_json, atomic_write_text, prepare_out_dir
    from meg_common.provenance import versions

    bandwidth.unused(args)
    report_only = getattr(args, "report_only", False)
    if args.bandwidth and (args.batched or report_only):
        raise InputError("--batched and --report-only apply to the case study, not to --bandwidth; drop them")
    placement, args = _placement(args)
    if args.bandwidth:
        return bandwidth.main(args)
    plan = plan_from_args(args)
    executor = executor_from_args(args)
    if report_only:
        if not (Path(args.out) / "plan.json").exists():
            raise InputError(f"--report-only: {args.out} holds no campaign (no plan.json); run it first without "
                             f"--report-only, with the same options")
    out = prepare_out_dir(args.out)
    cs.plan_matches(out, plan)
    timing = rt.Timing(out / "timing.json")
    _, hooks = cs.points(plan)
    from flowgraphs.placement import placed_setup

    units = cs.campaign(plan)
    results, progress = rt.run_units(executor, units, out, placed_setup(cs.make_setup(plan), placement), timing,
                                     "case study", report_only=report_only, context=placement)
    merged, skipped = cs.collect(results)
    rows = cs.rows(merged)
    calibration = cs.calibration(merged)
    margin = verdicts.margin_of(calibration)
    claims = verdicts.claims(merged, margin)
    margins = verdicts.at_margins(merged, margin)
    frontier = verdicts.frontier(merged, margin)
    took = timing.read()
    from flowgraphs.experiments.world import load_world
    from flowgraphs.session import Session

    session = Session(evaluator=plan.evaluator)
    model = session.model(plan.model).describe()
    world = load_world(plan.evaluator, session).describe()
    plots = figures.figure_set(rows, out, plan.kinds(), plan.n_tasks)
    figures.tradeoff(rows, out / "tradeoff.png", f"UE compute, air symbols and fidelity ({plan.n_tasks} tasks per point)")
    ordered = [{**{k: r[k] for k in OUTPUT_FIELDS}, **{k: v for k, v in r.items() if k not in OUTPUT_FIELDS}}
               for r in rows]
    atomic_write_json(out / "results.json", {
        "rows": ordered, "claims": claims, "summary": verdicts.summary(claims), "frontier": frontier,
        "calibration": {**calibration, "margin_used": margin,
                        "margin_source": "calibration" if calibration else "default (no calibration point)"},
        "correction": verdicts.CORRECTION, "margins": margins,
        "config": {**plan.to_dict(), "executor": args.executor, "placement": args.placement},
        "versions": versions(), "model": model, "world": world, "skipped": skipped, "not_run": hooks,
        "seconds": took["seconds"], "cpu_seconds": took["cpu_seconds"], "units": progress})
    atomic_write_text(out / "report.md", paper.write(rows, claims, plan, versions(), model, world, took["seconds"],
                                                     took["cpu_seconds"], args.quick, hooks, skipped, progress, plots,
                                                     calibration=calibration, margin=margin, margins=margins,
                                                     frontier=frontier))
    print(f"case study: {len(rows)} rows, {len(claims)} verdicts at margin {margin:.3f} ("
          + ", ".join(f"{v} {k}" for k, v in verdicts.counts(claims).items()) + f") in {took['seconds'] / 60:.1f} min"
          + (f", {progress['done']} of {progress['of']} units" if progress["done"] < progress["of"] else "") + "; "
          f"wrote {out}/report.md")
    return 0


def _placement(args):
    """(placement, args) for `--placement`: with ray, `--address` is where the ES actors go (the units run here)."""
    import argparse

    from flowgraphs.placement import LOCAL, RayPlacement
    from meg_common.errors import InputError

    if args.placement == "local":
        return LOCAL, args
    if args.bandwidth:
        raise InputError("--placement ray applies to the case study's multi-ES runs, not to --bandwidth; drop it")
    if args.executor == "ray":
        raise InputError("--placement ray with --executor ray is not supported: --executor ray spreads the units "
                         "over Ray workers, --placement ray puts each ES of a run on its own actor; choose one")
    return RayPlacement(address=args.address), argparse.Namespace(**{**vars(args), "address": None})
