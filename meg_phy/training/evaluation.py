"""Evaluation of an SD folder in the embedded world, through diffusers' own pipelines (what `meg-phy eval-model` reports
for the embedded default model or any SD folder of this world).

- Text-to-image: held-out prompts of 1-3 objects from the training prompt distribution (attributes left out
  at random, objects in random order; scenes, render seeds and noise seeds that training never used).
  Prompt accuracy = share of images the reader finds satisfying everything the prompt says.
- Image-to-image edits: a held-out rendered scene and the full description of the same scene with one
  object's colour (even tasks) or shape (odd tasks) changed; an edit succeeds when the result satisfies it.
- VAE reconstructions: PSNR and prompt accuracy (full descriptions) of decode(encode(x)) on held-out renders.
- The ceiling: the eval prompts' own scenes rendered clean (`clean_prompt_accuracy`) and through the VAE
  (`ceiling_prompt_accuracy`), read against the prompts: no UNet can score above what the reader finds in a
  reconstruction. And the reader itself on clean renders, per attribute (`reader_clean`).
- Seeds: prompts naming one object's colour and shape only, generated with two seeds: PSNR and fidelity
  between the two, against PSNR of reconstructions and fidelity of an image with itself (1).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import torch

from meg_phy import scenes
from meg_phy.training.data import held_out, held_out_prompts, reader_clean_accuracy

EDIT_OFFSET = 700_000
PROMPT_OFFSET = 800_000
RECON_OFFSET = 850_000
SEEDS_OFFSET = 880_000
READER_OFFSET = 0  # the reader stages' own held-out renders, so eval-model's reader figures match train_log.json


def edit_tasks(n: int) -> list[tuple[dict, dict, int]]:
    """(source scene, target scene, render seed): one object's colour or shape changed, alternately."""
    sources, seeds = held_out(n, offset=EDIT_OFFSET)
    gen = torch.Generator().manual_seed(EDIT_OFFSET)
    tasks = []
    for i, (src, seed) in enumerate(zip(sources, seeds, strict=True)):
        key = "colour" if i % 2 == 0 else "shape"
        k = int(torch.randint(len(src["objects"]), (1,), generator=gen))
        taken = {o["colour"] for o in src["objects"]} | {src["background"]}
        others = [v for v in scenes.ATTRIBUTES[key] if v != src["objects"][k][key] and (key != "colour" or
                                                                                        v not in taken)]
        target = {"objects": [dict(o) for o in src["objects"]], "background": src["background"]}
        target["objects"][k][key] = others[int(torch.randint(len(others), (1,), generator=gen))]
        tasks.append((src, target, seed))
    return tasks


def attribute_hits(reading: dict, spec: dict) -> tuple[int, int]:
    """(named attributes the reading satisfies under the best object assignment, attributes named)."""
    wanted = spec.get("objects", [])
    total = sum(len(w) for w in wanted) + ("background" in spec)
    bg = int("background" in spec and reading["background"] == spec["background"])
    read = reading["objects"] + [{}] * max(0, len(wanted) - len(reading["objects"]))
    best = max((sum(r.get(k) == v for r, w in zip(perm, wanted, strict=False) for k, v in w.items())
                for perm in itertools.permutations(read, len(wanted))), default=0)
    return best + bg, total


@torch.no_grad()
def evaluate_model(model=None, evaluator=None, n: int = 64, steps: int = 20, guidance: float = 4.0,
                   strength: float = 0.7, seed: int = 0, batch: int = 16, progress=None,
                   reader_images: int = 2000) -> dict:
    """All measures above, with the images they came from (keys starting with '_')."""
    from meg_phy.evaluator import load_evaluator

    text_pipe, edit_pipe = load_pipelines(model)
    reader = load_evaluator(evaluator)
    prompts = held_out_prompts(n, offset=PROMPT_OFFSET)
    images, t2i_s = _run_batched(text_pipe, prompts, seed * 1_000_000, batch, progress,
                                 num_inference_steps=steps, guidance_scale=guidance)
    readings = reader.read(images)
    specs = [scenes.parse_prompt(p) for p in prompts]
    matches = [bool(m) for m in reader.prompt_match(images, prompts)]
    hits = [attribute_hits(r, s) for r, s in zip(readings, specs, strict=True)]
    counts = {k: [i for i, s in enumerate(specs) if len(s["objects"]) == k] for k in (1, 2, 3)}
    by_count = {k: rate(sum(matches[i] for i in idx), len(idx)) for k, idx in counts.items() if idx}

    tasks = edit_tasks(n)
    sources = scenes.render_batch([t[0] for t in tasks], [t[2] for t in tasks])
    edit_prompts = [scenes.make_prompt(t[1]) for t in tasks]
    edited, i2i_s = _run_batched(edit_pipe, edit_prompts, seed * 1_000_000 + EDIT_OFFSET, batch, progress,
                                 images=sources, strength=strength, num_inference_steps=steps,
                                 guidance_scale=guidance)
    edit_matches = [bool(m) for m in reader.prompt_match(edited, edit_prompts)]
    kinds = ["colour" if i % 2 == 0 else "shape" for i in range(n)]

    vae = text_pipe.vae
    recon_scenes, recon_seeds = held_out(n, offset=RECON_OFFSET)
    clean = scenes.render_batch(recon_scenes, recon_seeds)
    rec = _reconstruct(vae, clean, batch)
    # the ceiling: the eval prompts' own scenes, rendered clean and through the VAE, read against the prompts
    prompt_scenes, prompt_seeds = held_out(n, offset=PROMPT_OFFSET)
    prompt_clean = scenes.render_batch(prompt_scenes, prompt_seeds)
    clean_matches = [bool(m) for m in reader.prompt_match(prompt_clean, prompts)]
    ceiling_matches = [bool(m) for m in reader.prompt_match(_reconstruct(vae, prompt_clean, batch), prompts)]
    recon_psnr = _psnr(rec, clean)
    recon_matches = reader.prompt_match(rec, [scenes.make_prompt(s) for s in recon_scenes])

    m = max(2, n // 4)
    one_object = [scenes.make_prompt({"objects": [{k: o[k] for k in ("colour", "shape")}]})
                  for o in (s["objects"][0] for s in held_out(m, offset=SEEDS_OFFSET)[0])]
    first, _ = _run_batched(text_pipe, one_object, seed * 1_000_000 + SEEDS_OFFSET, batch, None,
                            num_inference_steps=steps, guidance_scale=guidance)
    second, _ = _run_batched(text_pipe, one_object, seed * 1_000_000 + SEEDS_OFFSET + 500_000, batch, None,
                             num_inference_steps=steps, guidance_scale=guidance)
    seeds_psnr = _psnr(first, second)
    first_rec = _reconstruct(vae, first, batch)
    return {
        "prompt_accuracy": sum(matches) / n,
        "attribute_accuracy": sum(h for h, _ in hits) / max(1, sum(t for _, t in hits)),
        "prompt_accuracy_by_objects": {k: by_count[k]["value"] if k in by_count else None for k in counts}, "n": n,
        "edit_accuracy": sum(edit_matches) / n,
        "edit_accuracy_by_kind": {k: sum(mm for mm, kk in zip(edit_matches, kinds, strict=True) if kk == k) /
                                  max(1, kinds.count(k)) for k in ("colour", "shape")},
        "recon_psnr_db": round(float(recon_psnr.mean()), 2),
        "recon_prompt_accuracy": sum(recon_matches) / n,
        "clean_prompt_accuracy": sum(clean_matches) / n,
        "ceiling_prompt_accuracy": sum(ceiling_matches) / n,
        "reader_clean": reader_clean_accuracy(reader, reader_images, offset=READER_OFFSET),
        "seeds": {"prompts": m, "psnr_between_seeds_db": _summary(seeds_psnr),
                  "psnr_reconstruction_db": _summary(_psnr(first_rec, first)),
                  "fidelity_between_seeds": _summary(reader.fidelity(first, second)),
                  "fidelity_self": _summary(reader.fidelity(first, first)),
                  "feature_distance_between_seeds": _summary(reader.feature_distance(first, second))},
        "intervals": {"prompt_accuracy": rate(sum(matches), n), "edit_accuracy": rate(sum(edit_matches), n),
                      "recon_prompt_accuracy": rate(sum(recon_matches), n),
                      "clean_prompt_accuracy": rate(sum(clean_matches), n),
                      "ceiling_prompt_accuracy": rate(sum(ceiling_matches), n),
                      "prompt_accuracy_by_objects": by_count,
                      "recon_psnr_db": _summary(recon_psnr)},
        "steps": steps, "guidance": guidance, "strength": strength, "seed": seed,
        "seconds_per_text_image": round(t2i_s / n, 4), "seconds_per_edit": round(i2i_s / n, 4),
        "prompts": prompts, "matches": matches, "edit_prompts": edit_prompts, "edit_matches": edit_matches,
        "_images": images, "_sources": sources, "_edited": edited,
    }


@torch.no_grad()
def _reconstruct(vae, images: torch.Tensor, batch: int) -> torch.Tensor:
    """decode(encode(x)) in [0, 1], the latent's mode (what a generated image's reader sees at best)."""
    return torch.cat([((vae.decode(vae.encode(x * 2 - 1).latent_dist.mode()).sample + 1) / 2).clamp(0, 1)
                      for x in images.split(batch)])


def _psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return 10 * torch.log10(1 / mse)


def _rounded(figure: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in figure.items()}


def _summary(values: torch.Tensor) -> dict:
    """Mean with its 95 % bootstrap interval (meg_common.stats.mean), min, max and n."""
    from meg_common import stats

    v = values.double().flatten().tolist()
    ci = stats.mean(v)
    return _rounded({"mean": ci["value"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"], "min": min(v),
                     "max": max(v), "n": len(v)})


def rate(k: int, n: int) -> dict:
    """A share of successes with its 95 % Wilson interval (meg_common.stats.rate), and n."""
    from meg_common import stats

    return _rounded({**stats.rate(k, n), "n": int(n)})


def sample_grid(result: dict, path: str | Path, columns: int = 6, rows: int = 4) -> Path:
    """PNG: text-to-image samples with their prompts (green = satisfied), then edits (source -> result)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from meg_common.io import atomic_write

    n_t2i = min(len(result["prompts"]), columns * rows)
    n_edit = min(len(result["edit_prompts"]), columns // 2 * 2)
    edit_rows = (n_edit + columns // 2 - 1) // (columns // 2)
    fig, axes = plt.subplots(rows + edit_rows, columns, figsize=(columns * 2.2, (rows + edit_rows) * 2.5))
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n_t2i):
        ax = axes[i // columns][i % columns]
        ax.imshow(result["_images"][i].permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(_wrap3(result["prompts"][i]), fontsize=5, color="green" if result["matches"][i] else "red")
    for j in range(n_edit):
        r, c = rows + j // (columns // 2), (j % (columns // 2)) * 2
        axes[r][c].imshow(result["_sources"][j].permute(1, 2, 0).numpy(), interpolation="nearest")
        axes[r][c].set_title("input", fontsize=5)
        axes[r][c + 1].imshow(result["_edited"][j].permute(1, 2, 0).numpy(), interpolation="nearest")
        axes[r][c + 1].set_title("edit: " + _wrap3(result["edit_prompts"][j]), fontsize=5,
                                 color="green" if result["edit_matches"][j] else "red")
    fig.suptitle(f"text-to-image (top) and image-to-image edits (bottom); {result['steps']} DDIM steps, "
                 f"guidance {result['guidance']}, strength {result['strength']}; green = reader agrees", fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=80, format="png"))
    plt.close(fig)
    return Path(path)


def _wrap3(prompt: str) -> str:
    words = prompt.split()
    third = max(1, (len(words) + 2) // 3)
    return "\n".join(" ".join(words[i:i + third]) for i in range(0, len(words), third)) if len(words) > 6 \
        else _wrap(prompt)


def timing(model, prompt: str = "a red circle on a blue background", steps: int = 20, repeats: int = 3) -> float:
    """Median seconds of one 20-step generation (batch 1, guidance 4) with the current torch threads."""
    text_pipe, _ = load_pipelines(model)
    text_pipe(prompt, num_inference_steps=2, output_type="pt")
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        text_pipe(prompt, num_inference_steps=steps, guidance_scale=4.0,
                  generator=torch.Generator().manual_seed(i), output_type="pt")
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def load_pipelines(model: str | Path | None = None):
    """(StableDiffusionPipeline, StableDiffusionImg2ImgPipeline) sharing one set of components, loaded through
    `meg_phy.ldm.load_ldm` (its class allowlist and safetensors-only rule: a user's folder cannot make this
    import another library), on the CPU or the GPU load_ldm picks."""
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    from meg_phy.ldm import load_ldm

    ldm = load_ldm(model)
    parts = dict(vae=ldm.vae, text_encoder=ldm.text_encoder, tokenizer=ldm.tokenizer, unet=ldm.unet,
                 scheduler=DDIMScheduler.from_config(ldm.scheduler_config), safety_checker=None,
                 feature_extractor=None, requires_safety_checker=False)
    text, edit = StableDiffusionPipeline(**parts), StableDiffusionImg2ImgPipeline(**parts)
    for pipe in (text, edit):
        pipe.set_progress_bar_config(disable=True)
    return text, edit


def _run_batched(pipe, prompts: list[str], first_seed: int, batch: int, progress, images=None, **kwargs):
    """A diffusers pipeline over `prompts` in chunks, one generator per image (seed first_seed + index), so
    results do not depend on the batch size: (images (N,3,H,W) in [0,1] on the CPU, seconds)."""
    out, t0 = [], time.perf_counter()
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        gens = [torch.Generator().manual_seed(first_seed + start + i) for i in range(len(chunk))]
        if images is not None:
            kwargs["image"] = images[start:start + batch]
        out.append(pipe(chunk, generator=gens, output_type="pt", **kwargs).images.cpu())
        if progress:
            progress(len(chunk))
    return torch.cat(out), time.perf_counter() - t0


def _wrap(prompt: str) -> str:
    words = prompt.removeprefix("a ").split()
    half = (len(words) + 1) // 2
    return " ".join(words[:half]) + "\n" + " ".join(words[half:])
