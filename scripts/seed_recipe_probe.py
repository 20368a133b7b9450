"""Seed a training folder for a UNet recipe probe on the shipped VAE and reader (issue 26).

    python scripts/seed_recipe_probe.py OUT
    meg-phy train --out OUT --stage latents ... ; meg-phy train --out OUT --stage unet --recipe grounded ...

Writes OUT/checkpoints/vae.safetensors (the shipped VAE as a finished `vae` stage) and OUT/evaluator (the
shipped reader), so the `latents` and `unet` stages can test a recipe's go/no-go probes before a new VAE
exists. A recipe that misses its bars there is switched before the new VAE's latents are trained on.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the training folder to seed (must not hold a vae checkpoint yet)")
    args = parser.parse_args(argv)
    target = args.out / "checkpoints" / "vae.safetensors"
    if target.exists():
        print(f"error: {target} exists; give a new folder (seeding would replace a trained VAE)", file=sys.stderr)
        return 2
    from diffusers import AutoencoderKL

    from meg_phy.models import DEFAULT_MODEL_DIR
    from meg_phy.training.checkpoint import save_checkpoint

    vae = AutoencoderKL.from_pretrained(DEFAULT_MODEL_DIR / "vae")
    save_checkpoint(target, {"step": 0, "elapsed_s": 0.0, "done": True, "ended_by": "shipped",
                             "model": vae.state_dict(), "scaling_factor": float(vae.config.scaling_factor)})
    shutil.copytree(DEFAULT_MODEL_DIR.parent / "evaluator", args.out / "evaluator", dirs_exist_ok=True)
    print(f"seeded {args.out}: shipped VAE (scaling factor {vae.config.scaling_factor:g}) and reader")
    return 0


if __name__ == "__main__":
    sys.exit(main())
