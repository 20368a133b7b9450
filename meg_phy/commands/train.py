"""`meg-phy train`: reproduce the embedded default model (reader, VAE, UNet + text encoder)."""

from __future__ import annotations

import argparse

STAGE_CHOICES = ("evaluator", "vae", "evaluator_tune", "latents", "unet", "export", "all")
DEFAULT_TOTAL_MINUTES = 140.0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train the embedded default model (resumable)",
        description="Train the embedded model into --out: the scene reader, the VAE, the reader tuned on VAE "
                    "reconstructions, the UNet + text encoder, then the diffusers folder OUT/model and the reader "
                    "OUT/evaluator. Running the same command again resumes. Budgets count CPU time per thread, "
                    "so the defaults take about 2 hours on 2 idle CPU cores whatever else runs (a GPU is used "
                    "when present).")
    p.add_argument("--out", required=True, help="folder for checkpoints, logs and the trained model")
    p.add_argument("--stage", choices=STAGE_CHOICES, default="all", help="which stage to run (default: all)")
    p.add_argument("--minutes", type=float, default=None,
                   help=f"total time budget in minutes, shared by the stages in the default proportions "
                        f"(default {DEFAULT_TOTAL_MINUTES:g})")
    p.add_argument("--images", type=int, default=60_000, help="size of the UNet's fixed training set (default 60000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="stop each stage after this many steps (smoke runs)")
    p.add_argument("--target-accuracy", type=float, default=0.95,
                   help="stop the UNet early after two periodic evaluations at or above this prompt accuracy; "
                        "0 disables (default 0.95)")
    p.add_argument("--threads", type=int, default=2, help="torch threads on a CPU (default 2)")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="what budgets count: CPU time per thread (default; the same work on a busy machine) or "
                        "wall time")
    p.add_argument("--resume", action="store_true", help="accepted for clarity: resuming from --out is always on")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--recipe", choices=("stock", "grounded"), default="stock",
                   help="the UNet's training: stock (the shipped model's) or grounded (half the timesteps at high "
                        "noise with an image-space weight floor, and each object word's cross-attention pulled "
                        "onto its object; docs/embedded-model.md)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from meg_common.errors import InputError
    from meg_common.io import prepare_out_dir
    from meg_phy.training.trainer import RECIPES, STAGES, TrainConfig, scale_budgets, train

    out = prepare_out_dir(args.out)
    if args.images < 1 or (args.steps is not None and args.steps < 1) or args.threads < 1:
        raise InputError("--images, --steps and --threads must be at least 1")
    if args.minutes is not None and args.minutes <= 0:
        raise InputError(f"--minutes {args.minutes}: must be positive")
    if not 0 <= args.target_accuracy <= 1:
        raise InputError(f"--target-accuracy {args.target_accuracy}: must be in [0, 1]")
    stages = STAGES if args.stage == "all" else (args.stage,)
    config = TrainConfig(out=out, stages=stages, images=args.images, seed=args.seed, steps=args.steps,
                         threads=args.threads, clock=args.clock, target_accuracy=args.target_accuracy or None,
                         **RECIPES[args.recipe])
    if args.device:
        config.device = args.device
    if args.minutes is not None:
        scale_budgets(config, args.minutes)
    log = train(config)
    evals = log["stages"].get("unet", {}).get("eval", [])
    if evals:
        print(f"last evaluation: prompt accuracy {evals[-1]['prompt_accuracy']:.3f} at step {evals[-1]['step']}")
    print(f"model: {out / 'model'}  evaluator: {out / 'evaluator'}  log: {out / 'train_log.json'}")
    return 0
