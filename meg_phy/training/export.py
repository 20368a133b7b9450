"""Writing the trained parts as a standard Stable-Diffusion diffusers folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from meg_phy.training import components


def save_pipeline_folder(folder: str | Path, vae, text_encoder, tokenizer, unet, parts=components) -> Path:
    """model_index.json + unet/ vae/ text_encoder/ tokenizer/ scheduler/ (DDIM), loadable by
    StableDiffusionPipeline / StableDiffusionImg2ImgPipeline.from_pretrained(folder).

    `parts` is the module that builds the model's inference scheduler and tokenizer files
    (`meg_phy.training.components`).

    Written into a temporary sibling folder and renamed, so an interrupted export leaves no half folder.
    """
    from diffusers import StableDiffusionPipeline

    target = Path(folder)
    tmp = target.with_name(f".{target.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    pipe = StableDiffusionPipeline(vae=vae.eval(), text_encoder=text_encoder.eval(), tokenizer=tokenizer,
                                   unet=unet.eval(), scheduler=parts.build_inference_scheduler(),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(tmp, safe_serialization=True)
    # the classic vocab.json + merges.txt too, for tools that read the slow-tokenizer files
    vocab, merges = parts.tokenizer_files()
    (tmp / "tokenizer" / "vocab.json").write_text(json.dumps(vocab, indent=1) + "\n", encoding="utf-8")
    (tmp / "tokenizer" / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        if old.exists():
            shutil.rmtree(old)
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old)
    else:
        tmp.rename(target)
    return target
