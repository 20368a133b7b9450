"""The attribute evaluator: a small CNN that reads a scene's attributes back from an image.

It is what makes "prompt accuracy" measurable without pretrained networks: an image matches its prompt
when every attribute the prompt names is read back. It is trained by `meg-phy train --stage evaluator` on
the procedural scenes (`meg_phy.scenes`) with noise, blur and colour jitter so it also reads generated
images, and ships in `meg_phy/models/evaluator/` (config.json + model.safetensors).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from meg_common.errors import InputError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class AttributeClassifier(nn.Module):
    """Conv trunk keeping a coarse spatial map (position matters), then one linear head per attribute."""

    def __init__(self, attributes: dict[str, list[str] | tuple[str, ...]], image_size: int = 32,
                 channels: tuple[int, int, int] = (32, 64, 128), hidden: int = 128):
        super().__init__()
        self.attributes = {name: tuple(values) for name, values in attributes.items()}
        self.image_size = int(image_size)
        c1, c2, c3 = channels
        self.trunk = nn.Sequential(
            nn.Conv2d(3, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.Conv2d(c2, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.BatchNorm2d(c3), nn.ReLU(),
            nn.Conv2d(c3, c3, 3, stride=2, padding=1), nn.BatchNorm2d(c3), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c3 * (self.image_size // 8) ** 2, hidden), nn.ReLU(),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, len(values)) for name, values in self.attributes.items()})
        self.config = {"attributes": {k: list(v) for k, v in self.attributes.items()}, "image_size": self.image_size,
                       "channels": list(channels), "hidden": hidden}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images (B, 3, S, S) in [0, 1] -> logits per attribute."""
        features = self.trunk(images * 2 - 1)
        return {name: head(features) for name, head in self.heads.items()}


class Evaluator:
    """Reads attributes of images of any size (resized to the classifier's input size)."""

    def __init__(self, model: AttributeClassifier):
        self.model = model.eval()

    @property
    def attributes(self) -> dict[str, tuple[str, ...]]:
        return self.model.attributes

    @torch.no_grad()
    def read(self, images: torch.Tensor) -> list[dict[str, str]]:
        """(B, 3, H, W) in [0, 1] -> one dict attribute -> value per image."""
        logits = self.logits(images)
        picks = {name: logit.argmax(dim=1).tolist() for name, logit in logits.items()}
        return [{name: self.attributes[name][picks[name][i]] for name in self.attributes}
                for i in range(len(images))]

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"evaluator: expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        size = self.model.image_size
        x = images.detach().float().cpu().clamp(0, 1)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return self.model(x)

    def prompt_match(self, images: torch.Tensor, prompts: list[str]) -> list[bool]:
        """For each image, whether every attribute its prompt names is read back."""
        from meg_phy.scenes import parse_prompt

        if len(prompts) != len(images):
            raise InputError(f"prompt_match: {len(images)} images but {len(prompts)} prompts; give one per image")
        readings = self.read(images)
        return [all(reading.get(k) == v for k, v in parse_prompt(p).items()) for reading, p in zip(readings, prompts, strict=True)]


def save_evaluator(model: AttributeClassifier, folder: str | Path) -> Path:
    """Write config.json + model.safetensors (atomically) into `folder`."""
    from safetensors.torch import save_file

    from meg_common.io import atomic_write, atomic_write_json

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(out / WEIGHTS_NAME, lambda p: save_file(state, str(p)))
    atomic_write_json(out / CONFIG_NAME, model.config)
    return out


def load_evaluator(path: str | Path | None = None) -> Evaluator:
    """The evaluator in `path` (default: the embedded one in meg_phy/models/evaluator)."""
    from safetensors.torch import load_file

    from meg_phy.models import EVALUATOR_DIR

    folder = Path(path) if path is not None else EVALUATOR_DIR
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not config_path.is_file() or not weights_path.is_file():
        raise InputError(f"evaluator folder {folder}: needs {CONFIG_NAME} and {WEIGHTS_NAME}; "
                         "train one with `meg-phy train --stage evaluator --out DIR`")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        model = AttributeClassifier(config["attributes"], config["image_size"], tuple(config["channels"]),
                                    config["hidden"])
        model.load_state_dict(load_file(str(weights_path)))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise InputError(f"evaluator folder {folder}: cannot load ({type(exc).__name__}: {str(exc)[:200]}); "
                         "retrain it with `meg-phy train --stage evaluator`") from exc
    return Evaluator(model)
