"""`meg-phy train`: reproduce the embedded default model (evaluator, VAE, UNet + text encoder)."""

from __future__ import annotations

import argparse

STAGE_CHOICES = ("evaluator", "vae", "evaluator_tune", "unet", "export", "all")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train the embedded default model (resumable)",
        description="Train the embedded model into --out: evaluator, VAE, UNet + text encoder, then the "
                    "diffusers folder OUT/model and OUT/evaluator. Running the same command again resumes. "
                    "Defaults take at most about 90 minutes on 2 CPU cores (the UNet stops early once good enough; "
                    "a GPU is used when present).")
    p.add_argument("--out", required=True, help="folder for checkpoints, logs and the trained model")
    p.add_argument("--stage", choices=STAGE_CHOICES, default="all", help="which stage to run (default: all)")
    p.add_argument("--minutes", type=float, default=None,
                   help="time budget of the UNet stage in minutes (default 70; with --stage evaluator|vae, of that stage)")
    p.add_argument("--images", type=int, default=36_000, help="size of the fixed training set (default 36000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="stop each stage after this many steps (smoke runs)")
    p.add_argument("--batch", type=int, default=None, help="batch size of the UNet stage (default 256)")
    p.add_argument("--target-accuracy", type=float, default=0.97,
                   help="stop the UNet early after two periodic evaluations at or above this prompt accuracy; "
                        "0 disables (default 0.97)")
    p.add_argument("--eval-every", type=float, default=5.0, help="minutes between UNet evaluations (default 5)")
    p.add_argument("--resume", action="store_true", help="accepted for clarity: resuming from --out is always on")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from meg_common.errors import InputError
    from meg_common.io import prepare_out_dir
    from meg_phy.training.trainer import STAGES, TrainConfig, train

    out = prepare_out_dir(args.out)
    if args.images < 1 or (args.steps is not None and args.steps < 1):
        raise InputError("--images and --steps must be at least 1")
    if args.minutes is not None and args.minutes <= 0:
        raise InputError(f"--minutes {args.minutes}: must be positive")
    stages = STAGES if args.stage == "all" else (args.stage,)
    config = TrainConfig(out=out, stages=stages, images=args.images, seed=args.seed,
                         target_accuracy=args.target_accuracy or None, eval_every_minutes=args.eval_every)
    if args.device:
        config.device = args.device
    if args.batch:
        config.unet_batch = args.batch
    if args.minutes is not None:
        key = {"evaluator": "evaluator_minutes", "vae": "vae_minutes",
               "evaluator_tune": "evaluator_tune_minutes"}.get(args.stage, "unet_minutes")
        setattr(config, key, args.minutes)
    if args.steps is not None:
        config.evaluator_steps = config.vae_steps = config.unet_steps = args.steps
    log = train(config)
    evals = log["stages"].get("unet", {}).get("eval", [])
    if evals:
        print(f"last evaluation: prompt accuracy {evals[-1]['prompt_accuracy']:.3f} at step {evals[-1]['step']}")
    print(f"model: {out / 'model'}  evaluator: {out / 'evaluator'}  log: {out / 'train_log.json'}")
    return 0
