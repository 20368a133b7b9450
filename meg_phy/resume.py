"""Channel-aware resume: treat the noise of an analog link as extra diffusion noise, and let the denoiser remove it.

A seed z_t = sqrt(ᾱ_t) z0 + sqrt(1 - ᾱ_t) ε received as z_hat = z_t + n, n ~ N(0, σ²) (σ² in scaled latent
units), is  z_hat = sqrt(ᾱ_t) z0 + sqrt(1 - ᾱ_t + σ²) ε'.  Scaled by c = 1 / sqrt(1 + σ²) it is exactly on the
variance-preserving schedule at the combined level

    ᾱ' = ᾱ_t / (1 + σ²),    c z_hat = sqrt(ᾱ') z0 + sqrt(1 - ᾱ') ε'.

A fully denoised seed (t = 0) has ᾱ ≈ 1, so its equivalent level is ᾱ' = 1 / (1 + σ²). The receiver picks the
training timestep t' whose ᾱ is closest to ᾱ', rescales, and denoises from t' down to 0 with the original
spacing (DDIM: t', t' - Δ, t' - 2Δ, ... with Δ = T // N, so the step density of the original schedule is
kept and the extra noise costs about (t' - t) / Δ extra steps). When t' is within half a step of the seed's
own timestep (weak noise on a partly denoised seed) the noise is below what the schedule resolves and the seed
continues as it is: a shifted grid, or a rescale without one, moves the trajectory away from the noiseless run
more than the noise does (measured on the embedded model). Naive resume continues at the original step
with z_hat as it is. A per-value noise variance (an equaliser's output) is averaged: the denoiser models
one noise level for the whole latent.

DDIM (the default) takes the exact t'. DPM-Solver resumes from the grid timestep of its N-step schedule
closest to ᾱ' (it indexes precomputed arrays). Euler keeps latents on the variance-exploding scale
x = z0 + s ε, where channel noise simply adds: s' = sqrt(s_t² + σ²), no rescale.

`sketch_strength` applies the same rule to a noisy sketch: a clean sketch is completed at a base strength
whose level is ᾱ_b; pixel noise σ_p² becomes latent noise σ_z² (measured through the VAE encoder when the
model and the sketch are given), and the strength is raised to the timestep with ᾱ = ᾱ_b / (1 + σ_z²).

The experiments that compare channel-aware and naive resume (and write the table of docs/generation.md) are
flowgraphs.experiments.resume_study.
"""

from __future__ import annotations

import math

import torch

from meg_common.errors import InputError
from meg_phy.ldm import Latent, SplitLDM

SD_BETAS = (0.00085, 0.012)  # Stable Diffusion's scaled-linear schedule, for sketch_strength without a model


def mean_noise_var(noise_var: float | torch.Tensor) -> float:
    """One noise variance for the whole latent: the mean of per-value variances."""
    value = float(torch.as_tensor(noise_var, dtype=torch.float64).mean())
    if not math.isfinite(value) or value < 0:
        raise InputError(f"noise variance {value}: must be finite and >= 0")
    return value


def seed_alpha_bar(ldm: SplitLDM, seed: Latent) -> float:
    """ᾱ of the seed's current noise level (fully denoised: the scheduler's final ᾱ)."""
    seed = ldm.resolve_timesteps(seed)
    if seed.done:
        return ldm.final_alpha_cumprod
    return float(ldm.alphas_cumprod[int(round(seed.timestep))])


def equivalent_timestep(alphas_cumprod: torch.Tensor, alpha_bar: float) -> int:
    """The training timestep whose ᾱ is closest to `alpha_bar`."""
    return int(torch.argmin((alphas_cumprod.to(torch.float64) - alpha_bar).abs()))


def channel_aware(ldm: SplitLDM, seed: Latent, noise_var: float | torch.Tensor) -> Latent:
    """The received seed rescaled onto the schedule at its combined noise level, ready for `ldm.denoise`."""
    var = mean_noise_var(noise_var)
    seed = ldm.resolve_timesteps(seed)
    if var == 0:
        return seed
    if seed.region is not None:
        raise InputError("resume a whole seed, not a tile: merge the tiles first")
    if seed.scheduler == "euler":
        return _resume_ve(ldm, seed, var)
    alpha_bar = seed_alpha_bar(ldm, seed) / (1 + var)
    latents = seed.latents / math.sqrt(1 + var)
    if seed.scheduler == "ddim":
        t_new = equivalent_timestep(ldm.alphas_cumprod, alpha_bar)
        spacing = ldm.num_train_timesteps // seed.num_inference_steps
        if seed.timestep is not None and t_new - seed.timestep < spacing / 2:
            # the combined level is within half a step of the seed's own: the noise is below what the
            # schedule resolves, so continue as is (a shifted grid, or a rescale without one, would move
            # the trajectory away from the noiseless run more than the noise does)
            return seed
        timesteps = torch.arange(t_new, -1, -spacing, dtype=torch.int64)
        return seed.replace(latents=latents, step=0, timesteps=timesteps, begin_index=0, scheduler_state={})
    full, _ = ldm.schedule(seed.num_inference_steps, 1.0)
    levels = ldm.alphas_cumprod[full.long()]
    index = int(torch.argmin((levels - alpha_bar).abs()))
    return seed.replace(latents=latents, step=0, timesteps=full[index:].clone(), begin_index=index,
                        scheduler_state={})


def _resume_ve(ldm: SplitLDM, seed: Latent, var: float) -> Latent:
    sched = ldm.make_scheduler(seed.scheduler, seed.scheduler_config)
    sched.set_timesteps(seed.num_inference_steps)
    sigmas = sched.sigmas.to(torch.float64)
    sigma = float(sigmas[seed.begin_index + seed.step])
    target = math.sqrt(sigma**2 + var)
    index = int(torch.argmin((sigmas[:-1] - target).abs()))
    return seed.replace(step=0, timesteps=sched.timesteps[index:].clone(), begin_index=index, scheduler_state={})


def naive(ldm: SplitLDM, seed: Latent, noise_var: float | torch.Tensor) -> Latent:
    """Resume at the original step with the received latent as it is (the baseline)."""
    return ldm.resolve_timesteps(seed)


def resume(ldm: SplitLDM, seed: Latent, noise_var: float | torch.Tensor, mode: str = "channel-aware") -> Latent:
    modes = {"channel-aware": channel_aware, "naive": naive}
    if mode not in modes:
        raise InputError(f"resume mode '{mode}' unknown; choose channel-aware or naive")
    return modes[mode](ldm, seed, noise_var)


def latent_noise_var(ldm: SplitLDM, image: torch.Tensor, pixel_noise_var: float,
                     generator: torch.Generator | None = None) -> float:
    """Variance in scaled latent units that pixel noise of `pixel_noise_var` ([0, 1] units) causes after the VAE
    encoder, measured around `image` (posterior means, one noise draw)."""
    if pixel_noise_var <= 0:
        return 0.0
    generator = generator or torch.Generator().manual_seed(0)
    noise = torch.randn(image.shape, generator=generator) * math.sqrt(pixel_noise_var)
    with torch.no_grad():
        def mean_latent(x):
            return ldm.vae.encode(x.to(ldm.device, ldm.dtype) * 2 - 1).latent_dist.mean * ldm.scaling_factor
        diff = mean_latent(image + noise) - mean_latent(image)
    return float(diff.double().pow(2).mean())


def sketch_strength(noise_var: float | torch.Tensor | None = None, base: float = 0.5, *, psnr_db: float | None = None,
                    ldm: SplitLDM | None = None, image: torch.Tensor | None = None) -> float:
    """img2img strength to complete a sketch with pixel noise variance `noise_var` ([0, 1] units; or `psnr_db`).

    Clean sketch: `base`. Noisy: the strength whose level is ᾱ(base) / (1 + σ_z²), σ_z² the latent noise
    variance (measured through the model's VAE around `image` when both are given; otherwise the pixel
    variance on the [-1, 1] scale, i.e. 4 σ², assuming a VAE of unit gain like SD's).
    """
    if not 0 < base <= 1:
        raise InputError(f"base strength {base}: must be in (0, 1]")
    if psnr_db is not None:
        noise_var = 10 ** (-psnr_db / 10)
    var = mean_noise_var(0.0 if noise_var is None else noise_var)
    if var == 0:
        return float(base)
    if ldm is not None and image is not None:
        latent_var = latent_noise_var(ldm, image, var)
    else:
        latent_var = 4 * var
    alphas = ldm.alphas_cumprod if ldm is not None else _sd_alphas_cumprod()
    steps = len(alphas)
    t_base = min(steps - 1, max(0, int(round(base * steps)) - 1))
    t_new = equivalent_timestep(alphas, float(alphas[t_base]) / (1 + latent_var))
    return float(min(1.0, max(base, (t_new + 1) / steps)))


def _sd_alphas_cumprod(steps: int = 1000) -> torch.Tensor:
    betas = torch.linspace(SD_BETAS[0] ** 0.5, SD_BETAS[1] ** 0.5, steps, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0)
