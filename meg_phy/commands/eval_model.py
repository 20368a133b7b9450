"""`meg-phy eval-model`: prompt accuracy and edit accuracy of a diffusers folder (default: the embedded model)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval-model", help="measure text-to-image prompt accuracy and image-to-image edit accuracy",
        description="Generate --n held-out partial prompts of 1-3 objects (text-to-image) and --n edits of "
                    "rendered scenes (one object's colour or shape, image-to-image) with diffusers' pipelines, read "
                    "them with the evaluator, measure the VAE's reconstructions and how much two seeds of one "
                    "prompt differ, and write OUT/eval.json and OUT/samples.png.")
    p.add_argument("--out", required=True, help="folder for eval.json and samples.png")
    p.add_argument("--n", type=int, default=64, help="number of prompts and of edits (default 64)")
    p.add_argument("--model", default=None, help="Stable-Diffusion diffusers folder (default: the embedded model)")
    p.add_argument("--evaluator", default=None, help="evaluator folder (default: the embedded one)")
    p.add_argument("--steps", type=int, default=20, help="DDIM steps (default 20)")
    p.add_argument("--guidance", type=float, default=4.0, help="classifier-free guidance scale (default 4)")
    p.add_argument("--strength", type=float, default=0.7, help="image-to-image strength of the edits (default 0.7)")
    p.add_argument("--seed", type=int, default=0, help="noise seed base (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    import torch
    from tqdm.auto import tqdm

    from meg_common.errors import InputError
    from meg_common.io import atomic_write_json, prepare_out_dir
    from meg_common.provenance import versions
    from meg_phy.training.evaluation import evaluate_model, sample_grid

    if args.n < 1 or args.steps < 1:
        raise InputError("--n and --steps must be at least 1")
    if not 0 < args.strength <= 1:
        raise InputError(f"--strength {args.strength}: must be in (0, 1]")
    if args.guidance < 0:
        raise InputError(f"--guidance {args.guidance}: must be >= 0")
    out = prepare_out_dir(args.out)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    with tqdm(total=2 * args.n, desc="eval-model", unit="img", file=sys.stderr) as bar:
        result = evaluate_model(args.model, args.evaluator, n=args.n, steps=args.steps, guidance=args.guidance,
                                strength=args.strength, seed=args.seed, progress=bar.update)
    sample_grid(result, out / "samples.png")
    from meg_phy.models import DEFAULT_MODEL_DIR

    report = {k: v for k, v in result.items() if not k.startswith("_")}
    report.update(model=str(args.model or DEFAULT_MODEL_DIR), versions=versions())
    atomic_write_json(out / "eval.json", report)
    seeds, ci = result["seeds"], result["intervals"]

    def share(key: str) -> str:
        return f"{ci[key]['value']:.3f} [{ci[key]['ci_low']:.3f}, {ci[key]['ci_high']:.3f}]"

    print(f"prompt accuracy {share('prompt_accuracy')}  attribute accuracy {result['attribute_accuracy']:.3f}  "
          f"edit accuracy {share('edit_accuracy')}  VAE {result['recon_psnr_db']:.1f} dB / prompt accuracy "
          f"{share('recon_prompt_accuracy')}  ceiling {share('ceiling_prompt_accuracy')} (clean "
          f"{share('clean_prompt_accuracy')}, reader min {result['reader_clean']['min']:.3f})  two seeds: {seeds['psnr_between_seeds_db']['mean']:.1f} dB, "
          f"fidelity {seeds['fidelity_between_seeds']['mean']:.2f}  (n={args.n}, 95 % intervals, {args.steps} "
          f"steps, guidance {args.guidance}, strength {args.strength})  -> {out / 'eval.json'}")
    return 0
