"""The grounded recipe's go/no-go probes on a trained model folder (`meg_phy.training.probes`; the trainer runs
them at every UNet evaluation, this runs them on a finished or shipped model).

    python scripts/probe_grounding.py [--model meg_phy/models/default] [--evaluator DIR] [--n 128]

Prints JSON: per timestep, the share of an object word's cross-attention inside its object against uniform
(`attention`), and whether the guided x0-prediction from pure noise puts an object in the cell the prompt
names against chance (`positions`). docs/embedded-model.md has the shipped model's numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a diffusers folder (default: the embedded model)")
    parser.add_argument("--evaluator", type=Path, default=None, help="the reader's folder (default: the shipped one)")
    parser.add_argument("--n", type=int, default=128, help="held-out scenes per probe (default 128)")
    args = parser.parse_args(argv)
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    from meg_phy.evaluator import load_evaluator
    from meg_phy.models import DEFAULT_MODEL_DIR
    from meg_phy.training import probes

    root = args.model or DEFAULT_MODEL_DIR
    if not (root / "unet").is_dir():
        print(f"error: {root} is not a diffusers model folder (no unet/); give --model a trained model's folder",
              file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    unet = UNet2DConditionModel.from_pretrained(root / "unet")
    vae = AutoencoderKL.from_pretrained(root / "vae")
    text = CLIPTextModel.from_pretrained(root / "text_encoder")
    result = {"model": str(root), "n": args.n,
              "attention": {t: probes.attention_in_objects(unet, text, vae, n=args.n, t=t) for t in (951, 801, 651, 301)},
              "positions": probes.x0_positions(unet, text, vae, load_evaluator(args.evaluator), n=args.n)}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
