"""The training world's data ranges: which render seeds training draws from and which it never sees (the
held-out scenes and prompts that every evaluation uses), and what a reader gets right on held-out renders.
A bottom module: the trainer and eval-model both read it, and it imports only the scene world."""

from __future__ import annotations

import torch

from meg_phy import scenes

TRAIN_SEED_BASE = 0  # the fixed UNet training set: scene and render seed TRAIN_SEED_BASE + i
EVALUATOR_SEED_BASE = 20_000_000  # on-the-fly renders of the reader's stages
VAE_SEED_BASE = 40_000_000  # on-the-fly renders of the VAE stage
HELD_OUT_SEED = 10_000_000  # everything evaluated uses seeds from here up to EVALUATOR_SEED_BASE
EVAL_PROMPTS_OFFSET = 900_000  # the held-out draws of the trainer's eval prompts and of the grounding probes


def scenes_for(seeds: list[int]) -> list[dict]:
    """The complete scene of each seed (the world's own draw: 1-3 objects, every attribute)."""
    return [scenes.complete({}, s) for s in seeds]


def held_out(n: int, offset: int = 0) -> tuple[list[dict], list[int]]:
    """`n` complete scenes and their render seeds that training never uses."""
    seeds = [HELD_OUT_SEED + offset + i for i in range(n)]
    return scenes_for(seeds), seeds


def prompt_for(scene: dict, gen: torch.Generator) -> str:
    """A training/evaluation prompt of a complete scene: attributes dropped at random, objects shuffled."""
    return scenes.make_prompt(prompt_spec(scene, gen)[0])


def prompt_spec(scene: dict, gen: torch.Generator) -> tuple[dict, list[int]]:
    """What `prompt_for` describes (the same draws): the partial spec, and for each of its objects the index
    of the scene's object it describes."""
    spec = scenes.drop_attributes(scene, gen)
    order = torch.randperm(len(spec["objects"]), generator=gen).tolist()
    spec["objects"] = [spec["objects"][i] for i in order]
    return spec, order


def held_out_prompts(n: int, offset: int = EVAL_PROMPTS_OFFSET) -> list[str]:
    """`n` held-out prompts of 1-3 objects from the training prompt distribution (unseen scenes)."""
    scene_list, seeds = held_out(n, offset)
    return [prompt_for(s, torch.Generator().manual_seed(seed)) for s, seed in zip(scene_list, seeds, strict=True)]


def reader_clean_accuracy(evaluator, n: int, offset: int = 0) -> dict:
    """Per-attribute accuracy of a reader on `n` clean held-out renders: per object shape, colour, size,
    position (an object read in its cell), background, object count and whole-scene exactness (the bar a
    reader must meet before its readings of generated images mean anything: >= 0.97 on every attribute)."""
    scene_list, seeds = held_out(n, offset)
    readings = evaluator.read(scenes.render_batch(scene_list, seeds))
    hits = {k: 0 for k in ("shape", "colour", "size", "position")}
    objects = 0
    for scene, reading in zip(scene_list, readings, strict=True):
        cells = {o["position"]: o for o in reading["objects"]}
        for obj in scene["objects"]:
            objects += 1
            got = cells.get(obj["position"])
            hits["position"] += got is not None
            for k in ("shape", "colour", "size"):
                hits[k] += got is not None and got[k] == obj[k]
    per = {k: v / objects for k, v in hits.items()}
    per["background"] = sum(r["background"] == s["background"] for r, s in zip(readings, scene_list, strict=True)) / n
    per["count"] = sum(len(r["objects"]) == len(s["objects"]) for r, s in zip(readings, scene_list, strict=True)) / n
    exact = sum(r == _cell_sorted(s) for r, s in zip(readings, scene_list, strict=True)) / n
    return {"per_attribute": {k: round(v, 4) for k, v in per.items()}, "min": round(min(per.values()), 4),
            "scene_exact": round(exact, 4), "n": n, "objects": objects}


def _cell_sorted(scene: dict) -> dict:
    objects = sorted(scene["objects"], key=lambda o: scenes.POSITIONS.index(o["position"]))
    return {"objects": objects, "background": scene["background"]}
