"""Evaluation of a Stable-Diffusion-style folder on the procedural scenes, through diffusers' own pipelines.

Text-to-image: held-out prompts (jitter seeds and noise seeds that training never used), prompt accuracy
= share of images whose every attribute the evaluator reads as the prompt says. Image-to-image edits: a
held-out rendered scene plus a prompt that changes its colour or its shape (alternately); an edit
succeeds when the evaluator reads every attribute of the new prompt.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

EDIT_SEED_OFFSET = 700_000
PROMPT_SEED_OFFSET = 800_000


def load_pipelines(model: str | Path | None = None):
    """(StableDiffusionPipeline, StableDiffusionImg2ImgPipeline) sharing one set of components."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
    from diffusers.utils import logging as diffusers_logging

    from meg_common.errors import InputError
    from meg_phy.models import DEFAULT_MODEL_DIR

    folder = Path(model) if model is not None else DEFAULT_MODEL_DIR
    if not (folder / "model_index.json").is_file():
        raise InputError(f"--model {folder}: no model_index.json there; give a Stable-Diffusion diffusers folder")
    diffusers_logging.set_verbosity_error()
    text = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False,
                                                   local_files_only=True)
    text.set_progress_bar_config(disable=True)
    edit = StableDiffusionImg2ImgPipeline(**text.components)
    edit.set_progress_bar_config(disable=True)
    return text, edit


def edit_tasks(n: int) -> list[tuple[dict, dict, int]]:
    """(source attributes, target attributes, render seed): alternately a new colour or a new shape."""
    from meg_phy.scenes import ATTRIBUTES
    from meg_phy.training.data import held_out_scenes

    sources, seeds = held_out_scenes(n, offset=EDIT_SEED_OFFSET)
    gen = torch.Generator().manual_seed(EDIT_SEED_OFFSET)
    tasks = []
    for i, (src, seed) in enumerate(zip(sources, seeds, strict=True)):
        key = "colour" if i % 2 == 0 else "shape"
        others = [v for v in ATTRIBUTES[key] if v != src[key]]
        target = dict(src, **{key: others[int(torch.randint(len(others), (1,), generator=gen))]})
        tasks.append((src, target, seed))
    return tasks


@torch.no_grad()
def evaluate_model(model=None, evaluator=None, n: int = 64, steps: int = 20, guidance: float = 4.0,
                   strength: float = 0.7, seed: int = 0, batch: int = 16, progress=None) -> dict:
    """Prompt accuracy (text-to-image) and edit accuracy (image-to-image) with the images they came from."""
    from meg_phy.evaluator import load_evaluator
    from meg_phy.scenes import make_prompt, render_batch
    from meg_phy.training.data import held_out_scenes
    from meg_phy.training.trainer import prompt_scores

    text_pipe, edit_pipe = load_pipelines(model)
    reader = load_evaluator(evaluator)
    attrs, _ = held_out_scenes(n, offset=PROMPT_SEED_OFFSET)
    prompts = [make_prompt(a) for a in attrs]
    images, t2i_s = _run_batched(text_pipe, prompts, seed * 1_000_000, batch, progress,
                                 num_inference_steps=steps, guidance_scale=guidance)
    scores = prompt_scores(reader, images, prompts)

    tasks = edit_tasks(n)
    sources = render_batch([t[0] for t in tasks], [t[2] for t in tasks])
    edit_prompts = [make_prompt(t[1]) for t in tasks]
    edited, i2i_s = _run_batched(edit_pipe, edit_prompts, seed * 1_000_000 + EDIT_SEED_OFFSET, batch, progress,
                                 images=sources, strength=strength, num_inference_steps=steps,
                                 guidance_scale=guidance)
    edit_scores = prompt_scores(reader, edited, edit_prompts)
    kinds = ["colour" if i % 2 == 0 else "shape" for i in range(n)]
    by_kind = {k: sum(m for m, kk in zip(edit_scores["matches"], kinds, strict=True) if kk == k) /
               max(1, kinds.count(k)) for k in ("colour", "shape")}
    return {
        "prompt_accuracy": scores["prompt_accuracy"], "attribute_accuracy": scores["attribute_accuracy"],
        "per_attribute": scores["per_attribute"], "n": n, "edit_accuracy": edit_scores["prompt_accuracy"],
        "edit_accuracy_by_kind": by_kind, "edit_attribute_accuracy": edit_scores["per_attribute"],
        "steps": steps, "guidance": guidance, "strength": strength, "seed": seed,
        "seconds_per_text_image": round(t2i_s / n, 4), "seconds_per_edit": round(i2i_s / n, 4),
        "prompts": prompts, "matches": scores["matches"], "edit_prompts": edit_prompts,
        "edit_matches": edit_scores["matches"],
        "_images": images, "_sources": sources, "_edited": edited,
    }


def sample_grid(result: dict, path: str | Path, columns: int = 8, rows: int = 4) -> Path:
    """PNG: text-to-image samples with their prompts (green = matched), then edits (source -> result)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from meg_common.io import atomic_write

    n_t2i = min(len(result["prompts"]), columns * rows)
    n_edit = min(len(result["edit_prompts"]), columns // 2 * 2)
    edit_rows = (n_edit + columns // 2 - 1) // (columns // 2)
    fig, axes = plt.subplots(rows + edit_rows, columns, figsize=(columns * 1.55, (rows + edit_rows) * 1.75))
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n_t2i):
        ax = axes[i // columns][i % columns]
        ax.imshow(result["_images"][i].permute(1, 2, 0).numpy(), interpolation="nearest")
        ok = result["matches"][i]
        ax.set_title(_wrap(result["prompts"][i]), fontsize=5.5, color="green" if ok else "red")
    for j in range(n_edit):
        r, c = rows + j // (columns // 2), (j % (columns // 2)) * 2
        axes[r][c].imshow(result["_sources"][j].permute(1, 2, 0).numpy(), interpolation="nearest")
        axes[r][c].set_title("input", fontsize=5.5)
        axes[r][c + 1].imshow(result["_edited"][j].permute(1, 2, 0).numpy(), interpolation="nearest")
        axes[r][c + 1].set_title("edit: " + _wrap(result["edit_prompts"][j]), fontsize=5.5,
                                 color="green" if result["edit_matches"][j] else "red")
    fig.suptitle(f"text-to-image (top) and image-to-image edits (bottom); {result['steps']} DDIM steps, "
                 f"guidance {result['guidance']}, strength {result['strength']}; green = evaluator agrees",
                 fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=72, format="png"))
    plt.close(fig)
    return Path(path)


def _wrap(prompt: str) -> str:
    words = prompt.removeprefix("a ").split()
    half = (len(words) + 1) // 2
    return " ".join(words[:half]) + "\n" + " ".join(words[half:])


def _run_batched(pipe, prompts: list[str], first_seed: int, batch: int, progress, images=None, **kwargs):
    """A diffusers pipeline over `prompts` in chunks, one generator per image (seed first_seed + index), so
    results do not depend on the batch size: (images (N,3,H,W) in [0,1], seconds)."""
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
