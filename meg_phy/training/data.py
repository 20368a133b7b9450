"""The training world's data ranges: which render seeds training draws from and which it never sees (the
held-out scenes and prompts that every evaluation uses). A bottom module: the trainer and eval-model both
read it, and it imports only the scene world."""

from __future__ import annotations

import torch

from meg_phy import scenes

TRAIN_SEED_BASE = 0  # the fixed UNet training set: scene and render seed TRAIN_SEED_BASE + i
EVALUATOR_SEED_BASE = 20_000_000  # on-the-fly renders of the reader's stages
VAE_SEED_BASE = 40_000_000  # on-the-fly renders of the VAE stage
HELD_OUT_SEED = 10_000_000  # everything evaluated uses seeds from here up to EVALUATOR_SEED_BASE


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


def held_out_prompts(n: int, offset: int = 900_000) -> list[str]:
    """`n` held-out prompts of 1-3 objects from the training prompt distribution (unseen scenes)."""
    scene_list, seeds = held_out(n, offset)
    return [prompt_for(s, torch.Generator().manual_seed(seed)) for s, seed in zip(scene_list, seeds, strict=True)]
