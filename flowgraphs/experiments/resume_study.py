"""Evidence for channel-aware resume: channel-aware against naive resume of seeds and sketches sent over analog AWGN.

    from flowgraphs.experiments.resume_study import write_report
    write_report("runs/resume")      # runs/resume/resume.json and resume.md: the table of docs/generation.md

`compare_seed_resume` sends a seed at a split step, `compare_sketch_completion` a low-resolution sketch,
through `analog_awgn` at each SNR and scores naive against channel-aware resume (meg_phy.resume) by PSNR,
SSIM and prompt accuracy. `analog_awgn` is link_models' AnalogLink on AWGN with the true N0 (estimator
"perfect"): the unit-power mapping of every link (values normalised, two per complex symbol with Es = 1),
OFDM, complex noise with N0 = 1 / SNR, so each real value gets noise of variance P / SNR (P = mean square
of the values), and the link reports that variance.
"""

from __future__ import annotations

import torch

from meg_phy.ldm import SplitLDM
from meg_phy.resume import mean_noise_var, resume, sketch_strength


def awgn_link(snr_db: float, seed: int = 0):
    """link_models' analog link on AWGN at `snr_db` with the true channel and N0 (estimator "perfect")."""
    from link_models import AnalogLink, LinkConfig

    return AnalogLink(LinkConfig(channel="awgn", estimator="perfect", snr_db=float(snr_db)), seed=seed)


def analog_awgn(values: torch.Tensor, snr_db: float, generator: torch.Generator | None = None,
                link=None) -> tuple[torch.Tensor, torch.Tensor]:
    """`values` over `awgn_link(snr_db)` (or `link`, one built for that SNR): (received values, per-value noise
    variance), in the units of `values`; the noise is drawn from `generator` (None: the link's own)."""
    values = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
    link = link or awgn_link(snr_db)
    est, var, _ = link.send_values_many([values], [generator or link.generator])[0]
    return est, var


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
        values, side = seed_to_analog(at_split, normalise=False)   # the link normalises power
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

    def through_link(sketch, link=None, generator=None):
        values, side = sketch_to_analog(sketch[None], size, normalise=False)
        var = 0.0
        if link is not None:
            values, var = analog_awgn(values, link.cfg.snr_db, generator, link)
        image, pixel_var = analog_to_image(values, var, side)
        return image, mean_noise_var(pixel_var)

    clean = torch.cat([through_link(s)[0] for s in sketches])
    reference = complete(clean, [base] * len(prompts))
    rows = []
    for i, snr_db in enumerate(snr_dbs):
        received, pixel_vars = [], []
        link = awgn_link(snr_db)
        for j, sketch in enumerate(sketches):
            image, pixel_var = through_link(sketch, link, torch.Generator().manual_seed(seed + 2000 + 100 * i + j))
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
    `out/resume.json` and `out/resume.md`. Run:
    python -c "from flowgraphs.experiments.resume_study import write_report; write_report('runs/resume')"."""
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
        lines += [f"Latent sent at {where}; noiseless prompt accuracy {100 * (first['reference_prompt_accuracy'] or 0):.0f} %",
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
