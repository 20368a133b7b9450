"""The scene world of the case study: its tasks and how an image is scored.

    world = load_world(evaluator=None, session=session)
    prompts, input = world.prompts(n), world.input_image(prompt, seed)
    world.scorer, world.fidelity(images, references), world.feature_distance(images, references)

The embedded world (`meg_phy.scenes`, read back by `meg_phy.evaluator`): 64x64 scenes of 1-3 objects.
Prompts are drawn partial (`drop_attributes`), so the seed carries what the prompt leaves open; fidelity and
feature distance are the reader's own (`Evaluator.fidelity`, `Evaluator.feature_distance`). An img2img input
differs from what the prompt asks for in the first object's colour, so the edit is visible. Task draws use
fixed generators: the same n gives the same tasks everywhere.
"""

from __future__ import annotations

import torch

PROMPT_SEED = 2024


class World:
    """Tasks and scoring of the scene world (see the module docstring)."""

    name = "scenes-64"
    partial_prompts = True

    def __init__(self, scorer):
        self.scorer = scorer

    def prompts(self, n: int) -> list[str]:
        from meg_phy import scenes

        gen = torch.Generator().manual_seed(PROMPT_SEED)
        return [scenes.make_prompt(scenes.drop_attributes(s, gen)) for s in scenes.sample_attributes(gen, n)]

    def input_image(self, prompt: str, seed: int) -> torch.Tensor:
        """(3, H, W) in [0, 1]: the img2img input of a task (`meg_phy.scenes.recoloured`)."""
        from meg_phy import scenes

        return scenes.render(scenes.recoloured(scenes.parse_prompt(prompt), seed), seed)

    def fidelity(self, images: torch.Tensor, references: torch.Tensor) -> list[float]:
        return [float(v) for v in self.scorer.fidelity(images, references)]

    def feature_distance(self, images: torch.Tensor, references: torch.Tensor) -> list[float]:
        return [float(v) for v in self.scorer.feature_distance(images, references)]

    def embedding(self, images: torch.Tensor) -> list[str]:
        """Each image's embedding in the reader's feature space (meg_phy.evaluator.Evaluator.embedding),
        packed for a record (`pack`); None for a scorer without one."""
        embed = getattr(self.scorer, "embedding", None)
        return [None] * len(images) if embed is None else [pack(e) for e in embed(images).numpy()]

    def describe(self) -> dict:
        return {"world": self.name, "partial_prompts": self.partial_prompts,
                "fidelity": "evaluator agreement score", "feature_distance": True}


def load_world(evaluator: str | None = None, session=None) -> World:
    """The world with its evaluator (`evaluator` folder; None: the session's or the embedded one)."""
    if session is not None:
        return World(session.scorer(evaluator))
    from meg_phy.evaluator import load_evaluator

    return World(load_evaluator(evaluator))


def pack(vector) -> str:
    """A feature vector as base64 float16 (records stay small)."""
    import base64

    import numpy as np

    return base64.b64encode(np.asarray(vector, dtype=np.float16).tobytes()).decode("ascii")


def unpack(text: str):
    """The vector of `pack`, as float64."""
    import base64

    import numpy as np

    return np.frombuffer(base64.b64decode(text), dtype=np.float16).astype(float)
