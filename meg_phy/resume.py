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

`analog_awgn` is the ideal analog link in this package's own terms (no radio code): values normalised to unit
average power, two per complex symbol with Es/N0 = SNR, so each real value gets noise variance P / SNR.
"""

from __future__ import annotations

import math

import torch

from meg_common.errors import InputError
from meg_phy.ldm import Seed, SplitLDM

SD_BETAS = (0.00085, 0.012)  # Stable Diffusion's scaled-linear schedule, for sketch_strength without a model


def mean_noise_var(noise_var: float | torch.Tensor) -> float:
    """One noise variance for the whole latent: the mean of per-value variances."""
    value = float(torch.as_tensor(noise_var, dtype=torch.float64).mean())
    if not math.isfinite(value) or value < 0:
        raise InputError(f"noise variance {value}: must be finite and >= 0")
    return value


def seed_alpha_bar(ldm: SplitLDM, seed: Seed) -> float:
    """ᾱ of the seed's current noise level (fully denoised: the scheduler's final ᾱ)."""
    seed = ldm.resolve_timesteps(seed)
    if seed.done:
        return ldm.final_alpha_cumprod
    return float(ldm.alphas_cumprod[int(round(seed.timestep))])


def equivalent_timestep(alphas_cumprod: torch.Tensor, alpha_bar: float) -> int:
    """The training timestep whose ᾱ is closest to `alpha_bar`."""
    return int(torch.argmin((alphas_cumprod.to(torch.float64) - alpha_bar).abs()))


def channel_aware(ldm: SplitLDM, seed: Seed, noise_var: float | torch.Tensor) -> Seed:
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


def _resume_ve(ldm: SplitLDM, seed: Seed, var: float) -> Seed:
    sched = ldm.make_scheduler(seed.scheduler, seed.scheduler_config)
    sched.set_timesteps(seed.num_inference_steps)
    sigmas = sched.sigmas.to(torch.float64)
    sigma = float(sigmas[seed.begin_index + seed.step])
    target = math.sqrt(sigma**2 + var)
    index = int(torch.argmin((sigmas[:-1] - target).abs()))
    return seed.replace(step=0, timesteps=sched.timesteps[index:].clone(), begin_index=index, scheduler_state={})


def naive(ldm: SplitLDM, seed: Seed, noise_var: float | torch.Tensor) -> Seed:
    """Resume at the original step with the received latent as it is (the baseline)."""
    return ldm.resolve_timesteps(seed)


def resume(ldm: SplitLDM, seed: Seed, noise_var: float | torch.Tensor, mode: str = "channel-aware") -> Seed:
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


def analog_awgn(values: torch.Tensor, snr_db: float,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ideal analog link: (received values, per-value noise variance), in the units of `values`.

    The link scales the values to unit average power P = mean(v²), maps them two per complex symbol
    (Es = 1), adds complex noise with N0 = 1 / SNR (N0 / 2 per real dimension) and scales back; each real
    value then carries noise of variance P / SNR.
    """
    values = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
    power = float(values.double().pow(2).mean()) or 1.0
    var = power / 10 ** (snr_db / 10)
    noise = torch.randn(values.shape, generator=generator, dtype=torch.float32) * math.sqrt(var)
    return values + noise, torch.full_like(values, var)


# ---- evidence: channel-aware against naive -----------------------------------------------------------------
def compare_seed_resume(ldm: SplitLDM, prompts: list[str], snr_dbs: list[float], split: float = 0.5, steps: int = 20,
                        guidance: float | None = None, seed: int = 0, evaluator=None) -> list[dict]:
    """Send the seed at `split` (fraction of the steps; 1.0 = fully denoised) over `analog_awgn` at each SNR and
    resume naively and channel-aware; PSNR/SSIM against the noiseless run and prompt accuracy (with an evaluator)."""
    from meg_phy.codecs import analog_to_seed, seed_to_analog
    from meg_phy.metrics import prompt_matches, psnr, ssim

    guidance = ldm.default_guidance if guidance is None else guidance
    cond = ldm.encode_prompt(list(prompts), guidance)
    first = ldm.start(cond, steps=steps, generator=torch.Generator().manual_seed(seed))
    at_split = ldm.denoise(first, cond, until=round(split * first.total))
    reference = ldm.decode(ldm.denoise(at_split, cond))

    def accuracy(images):
        if evaluator is None:
            return None
        return sum(prompt_matches(images, list(prompts), evaluator)) / len(prompts)

    rows = []
    for i, snr_db in enumerate(snr_dbs):
        values, side = seed_to_analog(at_split)
        received_values, var = analog_awgn(values, snr_db, torch.Generator().manual_seed(seed + 1000 + i))
        received, latent_var = analog_to_seed(received_values, var, side)
        row = {"snr_db": snr_db, "split_step": at_split.step, "timestep": at_split.timestep,
               "latent_noise_var": mean_noise_var(latent_var), "reference_prompt_accuracy": accuracy(reference)}
        for mode in ("naive", "channel-aware"):
            resumed = resume(ldm, received, latent_var, mode)
            image = ldm.decode(ldm.denoise(resumed, cond))
            row[mode] = {"psnr_db": psnr(image, reference), "ssim": ssim(image, reference),
                         "prompt_accuracy": accuracy(image), "resume_timestep": resumed.timestep,
                         "steps_run": resumed.total - resumed.step}
        rows.append(row)
    return rows


def compare_sketch_completion(ldm: SplitLDM, prompts: list[str], snr_dbs: list[float], base: float = 0.5,
                              sketch_steps: int = 4, size: tuple[int, int] | None = None, steps: int = 20,
                              guidance: float | None = None, seed: int = 0, evaluator=None) -> list[dict]:
    """A few-step, low-resolution sketch sent as analog pixels at each SNR, completed by img2img at the base
    strength (naive) or at `sketch_strength` (channel-aware); metrics against completing the clean sketch."""
    from meg_phy.codecs import analog_to_image, sketch_to_analog
    from meg_phy.metrics import prompt_matches, psnr, ssim

    prompts = list(prompts)
    guidance = ldm.default_guidance if guidance is None else guidance
    size = size or (ldm.resolution[0] // 2, ldm.resolution[1] // 2)
    cond = ldm.encode_prompt(prompts, guidance)
    sketches = ldm.decode(ldm.denoise(ldm.start(cond, steps=sketch_steps,
                                                generator=torch.Generator().manual_seed(seed)), cond))

    def complete(images, strengths):
        """img2img of each image under its prompt (its own noise generator); one batch per schedule."""
        out = torch.empty(len(prompts), 3, *ldm.resolution)
        begins = [ldm.schedule(steps, s)[1] for s in strengths]  # strengths diffusers rounds alike run alike
        for begin in sorted(set(begins)):
            idx = [j for j, b in enumerate(begins) if b == begin]
            strength = strengths[idx[0]]
            group = ldm.encode_prompt([prompts[j] for j in idx], guidance)
            generators = [torch.Generator().manual_seed(seed + 7 + j) for j in idx]  # same noise per image
            start = ldm.start(group, image=images[idx], strength=strength, steps=steps, generator=generators)
            out[idx] = ldm.decode(ldm.denoise(start, group)).cpu()
        return out

    def accuracy(images):
        return None if evaluator is None else sum(prompt_matches(images, prompts, evaluator)) / len(prompts)

    def through_link(sketch, snr_db=None, generator=None):
        values, side = sketch_to_analog(sketch[None], size)
        var = 0.0
        if snr_db is not None:
            values, var = analog_awgn(values, snr_db, generator)
        image, pixel_var = analog_to_image(values, var, side)
        return image, mean_noise_var(pixel_var)

    clean = torch.cat([through_link(s)[0] for s in sketches])
    reference = complete(clean, [base] * len(prompts))
    rows = []
    for i, snr_db in enumerate(snr_dbs):
        received, pixel_vars = [], []
        for j, sketch in enumerate(sketches):
            image, pixel_var = through_link(sketch, snr_db, torch.Generator().manual_seed(seed + 2000 + 100 * i + j))
            received.append(image)
            pixel_vars.append(pixel_var)
        received = torch.cat(received)
        aware = [sketch_strength(v, base, ldm=ldm, image=img[None]) for v, img in zip(pixel_vars, received,
                                                                                      strict=True)]
        row = {"snr_db": snr_db, "pixel_noise_var": sum(pixel_vars) / len(pixel_vars),
               "reference_prompt_accuracy": accuracy(reference)}
        for mode, strengths in (("naive", [base] * len(prompts)), ("channel-aware", aware)):
            images = complete(received, strengths)
            row[mode] = {"psnr_db": psnr(images, reference), "ssim": ssim(images, reference),
                         "prompt_accuracy": accuracy(images), "strength": sum(strengths) / len(strengths)}
        rows.append(row)
    return rows


def write_report(out: str, n_prompts: int = 32, snr_dbs: tuple[float, ...] = (-10, -5, 0, 5, 10, 15, 20),
                 splits: tuple[float, ...] = (0.5, 1.0), steps: int = 20, guidance: float | None = None,
                 model: str | None = None, evaluator_path: str | None = None, seed: int = 0) -> dict:
    """The docs table: both comparisons on the embedded model (or `model`) and held-out prompts, written to
    `out/resume.json` and `out/resume.md`. Run: python -c "from meg_phy.resume import write_report; write_report('runs/resume')"."""
    from pathlib import Path

    from meg_common.io import atomic_write_json, atomic_write_text, prepare_out_dir
    from meg_common.provenance import versions
    from meg_phy import scenes
    from meg_phy.evaluator import load_evaluator
    from meg_phy.ldm import load_ldm

    folder = prepare_out_dir(out)
    ldm = load_ldm(model, device="cpu")
    guidance = ldm.default_guidance if guidance is None else guidance
    evaluator = load_evaluator(evaluator_path)
    prompts = [scenes.make_prompt(a) for a in scenes.sample_attributes(torch.Generator().manual_seed(10_000 + seed),
                                                                        n_prompts)]
    result = {"model": ldm.describe(), "prompts": prompts, "steps": steps, "guidance": guidance, "seed": seed,
              "versions": versions(), "seed_resume": {}, "sketch_completion": None}
    for split in splits:
        result["seed_resume"][str(split)] = compare_seed_resume(ldm, prompts, list(snr_dbs), split=split, steps=steps,
                                                                guidance=guidance, seed=seed, evaluator=evaluator)
    result["sketch_completion"] = compare_sketch_completion(ldm, prompts, list(snr_dbs), steps=steps,
                                                            guidance=guidance, seed=seed, evaluator=evaluator)
    atomic_write_json(Path(folder) / "resume.json", result)
    atomic_write_text(Path(folder) / "resume.md", _markdown(result))
    return result


def _markdown(result: dict) -> str:
    def cells(r: dict) -> str:
        acc = "-" if r["prompt_accuracy"] is None else f"{100 * r['prompt_accuracy']:.0f} %"
        return f"{r['psnr_db']:.1f} | {r['ssim']:.3f} | {acc}"

    lines = []
    for rows in result["seed_resume"].values():
        first = rows[0]
        where = "fully denoised (t = 0)" if first["timestep"] is None else f"step {first['split_step']} (t = {first['timestep']:.0f})"
        lines += [f"Seed sent at {where}; noiseless prompt accuracy {100 * (first['reference_prompt_accuracy'] or 0):.0f} %",
                  "", "| SNR dB | σ² latent | naive PSNR | SSIM | prompt acc. | aware PSNR | SSIM | prompt acc. | resumed at t' (steps) |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            aware = r["channel-aware"]
            lines.append(f"| {r['snr_db']:g} | {r['latent_noise_var']:.3g} | {cells(r['naive'])} | {cells(aware)} | "
                         f"{aware['resume_timestep']:.0f} ({aware['steps_run']}) |")
        lines.append("")
    rows = result["sketch_completion"]
    lines += ["Sketch (4 steps, 16x16) sent as analog pixels, completed by img2img; naive strength 0.5",
              "", "| SNR dB | σ² pixel | naive PSNR | SSIM | prompt acc. | aware PSNR | SSIM | prompt acc. | aware strength |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['snr_db']:g} | {r['pixel_noise_var']:.3g} | {cells(r['naive'])} | {cells(r['channel-aware'])} | "
                     f"{r['channel-aware']['strength']:.2f} |")
    return "\n".join(lines) + "\n"
