"""A compact text-to-image sampler used to score checkpoints during training.

It runs the same DDIM update and classifier-free guidance as diffusers' StableDiffusionPipeline, without
the pipeline's per-call overhead, so an accuracy check of a few dozen prompts takes seconds.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def text_to_image(unet, vae, text_encoder, tokenizer, scheduler, prompts: list[str], generator: torch.Generator,
                  steps: int = 20, guidance: float = 4.0) -> torch.Tensor:
    """Images (B, 3, H, W) in [0, 1] for `prompts`."""
    device = next(unet.parameters()).device
    ids = tokenizer(prompts + [""] * len(prompts), padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids.to(device)
    cond = text_encoder(ids).last_hidden_state
    size = unet.config.sample_size
    latents = torch.randn(len(prompts), unet.config.in_channels, size, size, generator=generator).to(device)
    scheduler.set_timesteps(steps)
    latents = latents * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        eps = unet(torch.cat([latents, latents]), t, cond).sample
        eps_text, eps_uncond = eps.chunk(2)
        eps = eps_uncond + guidance * (eps_text - eps_uncond)
        latents = scheduler.step(eps, t, latents).prev_sample
    images = vae.decode(latents / vae.config.scaling_factor).sample
    return ((images + 1) / 2).clamp(0, 1).cpu()
