"""`meg-phy generate`: one text-to-image or image-to-image run through the split stages, timed per stage."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from meg_common.errors import InputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "generate", help="generate one image (text-to-image, or image-to-image with --image)",
        description="Run the latent diffusion model's stages (text, VAE/noise, denoising, decoding) on this "
                    "machine and write the image plus OUT.json with the settings, timings per stage and, for the "
                    "embedded model, the evaluator's reading of the image.")
    p.add_argument("--prompt", required=True, help="text prompt (embedded model: its small vocabulary, e.g. "
                                                   "'a small red circle at the top on a black background')")
    p.add_argument("--image", help="input image for image-to-image (any RGB image file, any size: centre-cropped "
                                   "and resized to the model's resolution)")
    p.add_argument("--strength", type=float, default=0.75, help="img2img strength in (0, 1] (default 0.75)")
    p.add_argument("--steps", type=int, default=20, help="denoising steps of the full schedule (default 20)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the model's, 4 for the "
                                                   "embedded model, 7.5 for SD folders; <= 1 disables it)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the noise (default 0)")
    p.add_argument("--negative-prompt", default="", help="negative prompt for guidance (default empty)")
    p.add_argument("--scheduler", default="ddim", choices=["ddim", "dpm", "euler"], help="sampler (default ddim)")
    p.add_argument("--model", help="Stable-Diffusion diffusers folder (default: the embedded model)")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--out", required=True, help="output image (.png, .jpg, .webp); OUT.json is written beside it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from meg_common.io import atomic_write_json
    from meg_common.provenance import versions
    from meg_phy import images
    from meg_phy.ldm import is_default_model, load_ldm

    out = _check_out(args.out)
    if args.seed < 0:
        raise InputError(f"--seed {args.seed}: must be >= 0")
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    ldm = load_ldm(args.model, device=args.device, scheduler=args.scheduler)
    timings["load_s"] = time.perf_counter() - clock
    default = is_default_model(ldm)
    attributes = None
    if default:
        from meg_phy import scenes

        attributes = scenes.parse_prompt(args.prompt)
    image, resize_info = None, None
    if args.image:
        image, resize_info = images.load_image(args.image, size=ldm.resolution)
        resize_info = {"path": str(args.image), **resize_info}
    generator = torch.Generator().manual_seed(args.seed)
    guidance = ldm.default_guidance if args.guidance is None else args.guidance

    def timed(name, fn, *a, **kw):
        start = time.perf_counter()
        result = fn(*a, **kw)
        timings[name] = time.perf_counter() - start
        return result

    cond = timed("text_s", ldm.encode_prompt, args.prompt, guidance, args.negative_prompt)
    seed = timed("start_s", ldm.start, cond, image=image, strength=args.strength, steps=args.steps,
                 generator=generator)
    seed = timed("denoise_s", ldm.denoise, seed, cond)
    result = timed("decode_s", ldm.decode, seed)
    timings["generation_s"] = sum(timings[k] for k in ("text_s", "start_s", "denoise_s", "decode_s"))
    images.save_image(result, out)

    record = {
        "prompt": args.prompt, "negative_prompt": args.negative_prompt, "seed": args.seed,
        "mode": "image-to-image" if image is not None else "text-to-image",
        "steps": args.steps, "denoising_steps": seed.total, "guidance": guidance,
        "strength": args.strength if image is not None else None, "scheduler": args.scheduler,
        "timesteps": [int(t) if float(t).is_integer() else float(t) for t in seed.timesteps.tolist()],
        "input_image": resize_info, "output": str(out), "model": {**ldm.describe(), "default": default},
        "timings_s": {k.removesuffix("_s"): round(v, 4) for k, v in timings.items()},
        "threads": torch.get_num_threads(), "versions": versions(),
    }
    if default:
        record["evaluator"] = _evaluator_reading(result, args.prompt, attributes)
    json_path = out.with_suffix(".json")
    atomic_write_json(json_path, record)
    summary = f"{out} ({record['mode']}, {seed.total} steps, {timings['generation_s']:.2f} s)"
    if default and record["evaluator"].get("read") is not None:
        summary += f"; evaluator: {'matches' if record['evaluator']['prompt_match'] else 'does not match'} the prompt"
    print(summary, file=sys.stderr)
    return 0


def _check_out(path: str) -> Path:
    from meg_common.io import prepare_out_dir
    from meg_phy.images import FORMATS

    out = Path(path)
    if out.suffix.lower() not in FORMATS:
        raise InputError(f"--out {out}: give an image file name ending in {', '.join(FORMATS)}")
    if out.is_dir():
        raise InputError(f"--out {out}: is a folder; give an image file name such as {out / 'image.png'}")
    prepare_out_dir(out.parent if str(out.parent) else ".")
    return out


def _evaluator_reading(image, prompt: str, attributes: dict) -> dict:
    """What the embedded evaluator reads in the image, and whether every attribute matches the prompt."""
    from meg_phy.models import EVALUATOR_DIR

    try:
        from meg_phy.evaluator import load_evaluator

        evaluator = load_evaluator()
    except InputError as exc:
        return {"read": None, "note": f"evaluator unavailable at {EVALUATOR_DIR}: {exc}"}
    read = evaluator.read(image)[0]
    return {"read": read, "prompt_attributes": attributes,
            "prompt_match": bool(evaluator.prompt_match(image, [prompt])[0])}
