"""The case-study task: text-guided image-to-image. The UE holds an input image and a prompt.

When no image is given, one is rendered from `meg_phy.scenes`: the prompt's scene for the run's seed with the
first object's colour changed (`scenes.recoloured`), so the edit the prompt asks for is visible. When no prompt
is given, DEFAULT_PROMPT is used. The model comes from the run's Session (loaded once per session, read-only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from meg_common.errors import InputError

DEFAULT_PROMPT = "a large red circle at the center on a white background"


@dataclass
class Task:
    """What every protocol of one run works on (identical for the run, its reference and its baseline)."""

    prompt: str
    image: torch.Tensor
    """(1, 3, H, W) in [0, 1] at the model's resolution."""
    image_source: str
    """'file:PATH' or 'scene:<prompt of the rendered input>'."""
    ldm: object
    seed: int
    steps: int
    strength: float
    guidance: float


def make_task(config, session=None) -> Task:
    """The task of a RunConfig: prompt, input image and model (from `session`, which keeps it loaded; None:
    loaded for this task)."""
    from meg_phy import scenes
    from meg_phy.images import resize

    prompt = config.prompt if config.prompt is not None else DEFAULT_PROMPT
    try:  # the embedded model knows only its vocabulary; another model may take any prompt
        spec = scenes.parse_prompt(prompt)
    except InputError:
        if _is_default_model(config.model):
            raise
        spec = scenes.parse_prompt(DEFAULT_PROMPT)
    if session is not None:
        ldm = session.model(config.model)
    else:
        from meg_phy.ldm import load_ldm

        ldm = load_ldm(config.model)
    if config.image is not None:
        image = _load_image(config.image, ldm)
        source = f"file:{config.image}"
    else:
        scene = scenes.recoloured(spec, config.seed)
        image = resize(scenes.render(scene, config.seed)[None], _resolution(ldm))
        source = f"scene:{scenes.make_prompt(scene)}"
    guidance = ldm.default_guidance if config.guidance is None else config.guidance
    return Task(prompt=prompt, image=image, image_source=source, ldm=ldm, seed=config.seed,
                steps=config.steps, strength=config.strength, guidance=guidance)


def _is_default_model(path: str | None) -> bool:
    from meg_phy.models import DEFAULT_MODEL_DIR

    return path is None or Path(path).resolve() == DEFAULT_MODEL_DIR.resolve()


def _resolution(ldm) -> tuple[int, int]:
    return tuple(int(v) for v in ldm.resolution)


def _load_image(path: str, ldm) -> torch.Tensor:
    from meg_phy.images import load_image

    return load_image(path, size=_resolution(ldm))[0]
