"""Training throughput of the embedded model (images/s), through the real trainer.

Runs `meg_phy.training.trainer.train` for a fixed number of VAE and UNet steps at the default batch sizes
and reads the images/s from its own log. Reference measured in the same run: a bare forward+backward of
the same UNet at the same batch. Target: the full training step (text encoder, UNet, AdamW, EMA, data and
noise drawing) keeps at least 60 % of that bare throughput, i.e. the loop adds little to the model's cost.
"""

from __future__ import annotations

import tempfile
import time

import torch

TARGET_RATIO = 0.6


def _bare_unet_images_per_s(batch: int, steps: int) -> float:
    from meg_phy.training import components

    unet = components.build_unet()
    size, channels = components.LATENT_SIZE, components.LATENT_CHANNELS
    z, t = torch.randn(batch, channels, size, size), torch.randint(0, 1000, (batch,))
    h = torch.randn(batch, components.MAX_TOKENS, components.TEXT_HIDDEN)
    unet(z, t, h).sample.pow(2).mean().backward()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        unet(z, t, h).sample.pow(2).mean().backward()
    return batch * steps / (time.perf_counter() - start)


def _rate(points: list, batch: int) -> float:
    """images/s between the first and last logged step (skips the first step's warm-up)."""
    (s0, t0, _), (s1, t1, _) = points[0], points[-1]
    return batch * (s1 - s0) / max(1e-9, t1 - t0)


def run(quick: bool) -> dict:
    from meg_phy.training.trainer import TrainConfig, train

    torch.set_num_threads(2)
    steps = 6 if quick else 30
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(out=tmp, images=512, steps=steps, eval_every_minutes=1e9, target_accuracy=None,
                             log_every=1, threads=2, stages=("vae", "latents", "unet"))
        log = train(config)
    vae_rate = _rate(log["stages"]["vae"]["loss"], config.vae_batch)
    unet_rate = _rate(log["stages"]["unet"]["loss"], config.unet_batch)
    bare = _bare_unet_images_per_s(config.unet_batch, max(3, steps // 3))
    ratio = unet_rate / bare
    return {
        "vae_images_per_s": round(vae_rate, 1), "unet_images_per_s": round(unet_rate, 1),
        "bare_unet_fwd_bwd_images_per_s": round(bare, 1), "ratio": round(ratio, 3),
        "vae_batch": config.vae_batch, "unet_batch": config.unet_batch, "threads": torch.get_num_threads(),
        "target": f"training step throughput >= {TARGET_RATIO} x bare UNet forward+backward",
        "passed": ratio >= TARGET_RATIO,
    }
