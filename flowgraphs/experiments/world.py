"""The scene world of the case study: its tasks and how an image is scored, for the old and the new model.

    world = load_world("auto", evaluator=None, session=session)   # "v1" | "v2" | "auto"
    prompts, inputs = world.prompts(n), world.input_image(i, prompt, seed, size)
    world.scorer, world.fidelity(images, references), world.feature_distance(images, references)

- **v1** (the embedded 32x32 model today, `meg_phy.scenes` + `meg_phy.evaluator`): one shape on a plain
  background, prompts that name all five attributes. The evaluator has no agreement score, so fidelity is
  an adapter: the share of the five attributes the evaluator reads identically in the image and in the
  reference (1 for an image with itself). There is no feature distance (None).
- **v2** (the 64x64 world, `meg_phy.world`): 1-3 objects; prompts are drawn partial (`drop_attributes`), so
  the seed carries what the prompt leaves open; fidelity and feature distance are the reader's own
  (`Evaluator.fidelity`, `Evaluator.feature_distance`).
- **auto**: v2 when the evaluator folder holds a world-v2 reader (config.json `"class": "SceneReader"`),
  else v1. So the harness follows the default model and evaluator when they are switched, with no flag.

Img2img inputs differ from what the prompt asks for in one colour (v1: the shape's; v2: the first object's),
so the edit is visible. Task draws use fixed generators: the same n gives the same tasks everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from meg_common.errors import InputError

WORLDS = ("auto", "v1", "v2")
PROMPT_SEED = 2024


def detect(evaluator: str | None) -> str:
    """"v2" when the evaluator folder holds a world-v2 SceneReader, else "v1"."""
    from meg_phy.models import EVALUATOR_DIR

    config = Path(evaluator) if evaluator else EVALUATOR_DIR
    try:
        data = json.loads((config / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "v1"
    return "v2" if isinstance(data, dict) and data.get("class") == "SceneReader" else "v1"


class World:
    """Tasks and scoring of one scene world (see the module docstring)."""

    name = "world"
    partial_prompts = False

    def __init__(self, scorer):
        self.scorer = scorer

    def prompts(self, n: int) -> list[str]:
        raise NotImplementedError

    def input_image(self, prompt: str, seed: int) -> torch.Tensor:
        """(3, H, W) in [0, 1]: the img2img input of a task (the world's own resolution)."""
        raise NotImplementedError

    def fidelity(self, images: torch.Tensor, references: torch.Tensor) -> list[float]:
        if hasattr(self.scorer, "fidelity"):
            return [float(v) for v in self.scorer.fidelity(images, references)]
        a, b = self.scorer.read(images), self.scorer.read(references)
        return [sum(x[k] == y[k] for k in x) / len(x) for x, y in zip(a, b, strict=True)]

    def feature_distance(self, images: torch.Tensor, references: torch.Tensor) -> list[float] | None:
        if not hasattr(self.scorer, "feature_distance"):
            return None
        return [float(v) for v in self.scorer.feature_distance(images, references)]

    def describe(self) -> dict:
        return {"world": self.name, "partial_prompts": self.partial_prompts,
                "fidelity": "evaluator agreement score" if hasattr(self.scorer, "fidelity") else
                "share of the evaluator's read attributes equal in image and reference (v1 adapter)",
                "feature_distance": hasattr(self.scorer, "feature_distance")}


class WorldV1(World):
    name = "v1"

    def prompts(self, n: int) -> list[str]:
        from meg_phy import scenes

        attrs = scenes.sample_attributes(torch.Generator().manual_seed(PROMPT_SEED), n)
        return [scenes.make_prompt(a) for a in attrs]

    def input_image(self, prompt: str, seed: int) -> torch.Tensor:
        from meg_phy import scenes

        base = scenes.parse_prompt(prompt)
        colours = scenes.ATTRIBUTES["colour"]
        base["colour"] = colours[(colours.index(base["colour"]) + 1) % len(colours)]
        return scenes.render(base, seed)


class WorldV2(World):
    name = "v2"
    partial_prompts = True

    def prompts(self, n: int) -> list[str]:
        from meg_phy.world import scenes

        gen = torch.Generator().manual_seed(PROMPT_SEED)
        return [scenes.make_prompt(scenes.drop_attributes(s, gen)) for s in scenes.sample_attributes(gen, n)]

    def input_image(self, prompt: str, seed: int) -> torch.Tensor:
        from meg_phy.world import scenes

        scene = scenes.complete(scenes.parse_prompt(prompt), seed)
        used = {o["colour"] for o in scene["objects"]} | {scene["background"]}
        colours = list(scenes.COLOURS_RGB)
        first = scene["objects"][0]
        for step in range(1, len(colours)):
            other = colours[(colours.index(first["colour"]) + step) % len(colours)]
            if other not in used:
                edited = {**scene, "objects": [{**first, "colour": other}, *scene["objects"][1:]]}
                try:
                    return scenes.render(edited, seed)
                except InputError:
                    continue
        return scenes.render(scene, seed)


def load_world(world: str = "auto", evaluator: str | None = None, session=None) -> World:
    """The world `world` names (auto: detected from the evaluator folder) with its evaluator loaded."""
    if world not in WORLDS:
        raise InputError(f"--world {world!r}: choose one of {', '.join(WORLDS)}")
    name = detect(evaluator) if world == "auto" else world
    if name == "v2":
        from meg_phy.world.evaluator import load_evaluator

        return WorldV2(load_evaluator(evaluator))
    if session is not None:
        return WorldV1(session.scorer(evaluator))
    from meg_phy.evaluator import load_evaluator

    return WorldV1(load_evaluator(evaluator))
