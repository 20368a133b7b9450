"""A tiny RANDOM Stable-Diffusion diffusers folder, written with `save_pretrained`, for tests.

Same layout as a real SD 1.x folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/) and
the same latent geometry as the embedded model (32x32 RGB -> 4x8x8 latent, VAE factor 4, one UNet
downsampling level), so the split pipeline, the tiles and the codecs are exercised through exactly the code
that loads real weights. The tokenizer is a character-level CLIP BPE (vocab.json + an empty merges.txt).
Weights are random but fixed by `seed`.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import string
import tempfile
from pathlib import Path

import torch

TOKENS_MAX = 16
RESOLUTION = 32


def write_tokenizer_files(folder: Path) -> None:
    """vocab.json + merges.txt of a CLIP BPE whose tokens are single characters (with and without </w>)."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = string.ascii_lowercase + string.digits + ".,-'!?"
    tokens = ["<|startoftext|>", "<|endoftext|>"] + list(chars) + [c + "</w>" for c in chars]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")


def make_tiny_sd(folder: str | Path, seed: int = 0, prediction_type: str = "epsilon") -> Path:
    """Write a random tiny SD folder at `folder` (created) and return its path."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=RESOLUTION // 4, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), norm_num_groups=8, cross_attention_dim=16, attention_head_dim=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    )
    vae = AutoencoderKL(
        sample_size=RESOLUTION, in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
        block_out_channels=(8, 16, 16), norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=2 + 2 * 42, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=TOKENS_MAX, bos_token_id=0, eos_token_id=1,
        pad_token_id=1, projection_dim=16,
    ))
    tok_dir = folder / "_tokenizer_src"
    write_tokenizer_files(tok_dir)
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"),
                              model_max_length=TOKENS_MAX)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                              prediction_type=prediction_type)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder)
    for f in tok_dir.iterdir():
        f.unlink()
    tok_dir.rmdir()
    return folder


@functools.cache
def tiny_sd_folder() -> Path:
    """One tiny folder per test process (a temporary directory removed at exit)."""
    root = Path(tempfile.mkdtemp(prefix="meg-phy-tiny-sd-"))
    atexit.register(shutil.rmtree, root, True)
    return make_tiny_sd(root / "tiny-sd")


@functools.cache
def tiny_ldm(scheduler: str = "ddim"):
    from meg_phy.ldm import load_ldm

    return load_ldm(tiny_sd_folder(), device="cpu", scheduler=scheduler)


def make_tiny_evaluator(folder: str | Path, seed: int = 0) -> Path:
    """An untrained scene reader with tiny layers, saved like the embedded one (its readings are arbitrary but
    deterministic: for contract tests that need an evaluator folder, not a good one)."""
    from meg_phy.evaluator import SceneReader, save_evaluator

    torch.manual_seed(seed)
    return save_evaluator(SceneReader(channels=(8, 16, 16), hidden=16), folder)
