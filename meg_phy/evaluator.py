"""The scene reader of the embedded world: reads every object (shape, colour, size class, cell) and the background.

A small CNN with a dense per-location head (CenterNet-like): on an 8x8 map it predicts where object centres
are and each object's shape, colour and size class; each location belongs to one cell of the 3x3 grid, so
the reading is per cell. A second head reads the background. Because objects sit in distinct cells this is a
complete reading of a scene, from which the harness gets:

- `prompt_match(images, prompts)`: the image satisfies everything the prompt says (same number of objects,
  a one-to-one assignment of read objects to the prompt's objects agreeing on every named attribute, and the
  background when named);
- `fidelity(images, references)`: agreement in [0, 1] of two images' readings (same objects in the same
  cells; 1 for an image against itself);
- `feature_distance(a, b)`: an LPIPS-style distance from the reader's own features (channel-normalised
  activations of the trunk, squared differences averaged over space and layers; 0 for identical images).

Trained by `meg-phy train` (`meg_phy.training.trainer`); stored as config.json + model.safetensors.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from meg_common.errors import InputError
from meg_phy import scenes

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
N_CELLS = 9


class SceneReader(nn.Module):
    """Conv trunk (64 -> 32 -> 16 -> 8x8 map) with a dense head and a background head.

    At each of the 8x8 locations (8-pixel squares) the head predicts whether an object's centre lies there
    and that object's shape, colour and size: convolutional, so what it learns at one place holds at every
    place. Centres keep `scenes._MARGIN_PX` inside their cell, so each location belongs to exactly one cell
    (columns/rows 0-2, 3-4, 5-7). Output dict: object (B, 8, 8) logits, shape (B, n_shapes, 8, 8), colour
    (B, n_colours, 8, 8), size (B, n_sizes, 8, 8), background (B, n_backgrounds).
    """

    def __init__(self, channels: tuple[int, int, int] = (32, 64, 128), hidden: int = 128,
                 image_size: int = scenes.IMAGE_SIZE):
        super().__init__()
        c1, c2, c3 = channels
        self.image_size = int(image_size)
        self.n = {"shape": len(scenes.SHAPES), "colour": len(scenes.ATTRIBUTES["colour"]),
                  "size": len(scenes.ATTRIBUTES["size"])}
        self.n_background = len(scenes.ATTRIBUTES["background"])

        def block(cin, cout, stride, kernel=3):
            return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2),
                                 nn.BatchNorm2d(cout), nn.ReLU())

        # a 5x5 stride-2 stem: full-resolution layers would cost 4x the compute for little gain at 64x64
        self.stages = nn.ModuleList([
            nn.Sequential(block(3, c1, 2, 5), block(c1, c1, 1)),
            nn.Sequential(block(c1, c2, 2), block(c2, c2, 1)),
            nn.Sequential(block(c2, c3, 2), block(c3, c3, 1), block(c3, c3, 1)),
        ])
        self.dense = nn.Sequential(nn.Conv2d(c3, hidden, 3, padding=1), nn.ReLU(),
                                   nn.Conv2d(hidden, 1 + sum(self.n.values()), 1))
        self.background = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c3, hidden), nn.ReLU(),
                                        nn.Linear(hidden, self.n_background))
        self.config = {"channels": list(channels), "hidden": hidden, "image_size": self.image_size,
                       "attributes": {k: list(v) for k, v in scenes.ATTRIBUTES.items()}}

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Activations after each stage, for the feature distance."""
        x = images * 2 - 1
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        top = self.features(images)[-1]
        dense = self.dense(top)
        out, start = {"object": dense[:, 0]}, 1
        for name, n in self.n.items():
            out[name] = dense[:, start:start + n]
            start += n
        out["background"] = self.background(top)
        return out


GRID = 8  # side of the dense map
_CELL_OF_INDEX = (0, 0, 0, 1, 1, 2, 2, 2)  # map row/column -> grid row/column (see SceneReader)


def reader_loss(logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> torch.Tensor:
    """Objectness BCE at every location (positives weighted 4x: 1-3 of 64), attribute cross-entropy at the
    objects' locations, background cross-entropy."""
    target = labels["object"].float()
    loss = F.binary_cross_entropy_with_logits(logits["object"], target, pos_weight=torch.tensor(4.0))
    for name in ("shape", "colour", "size"):
        loss = loss + F.cross_entropy(logits[name], labels[name], ignore_index=-100)
    return loss + F.cross_entropy(logits["background"], labels["background"])


def batch_labels(scene_list: list[dict], seeds: list[int]) -> dict[str, torch.Tensor]:
    """Dense targets of complete scenes rendered with `seeds`: object (B, 8, 8) in {0, 1}; shape, colour,
    size (B, 8, 8) class indices at each object's centre location, -100 elsewhere; background (B,)."""
    b = len(scene_list)
    obj = torch.zeros(b, GRID, GRID, dtype=torch.long)
    attrs = {k: torch.full((b, GRID, GRID), -100, dtype=torch.long) for k in ("shape", "colour", "size")}
    step = scenes.IMAGE_SIZE / GRID
    for i, (scene, seed) in enumerate(zip(scene_list, seeds, strict=True)):
        for o, placed in zip(scene["objects"], scenes.layout(scene, seed)["objects"], strict=True):
            gx, gy = min(GRID - 1, int(placed["x"] / step)), min(GRID - 1, int(placed["y"] / step))
            obj[i, gy, gx] = 1
            for k in ("shape", "colour", "size"):
                attrs[k][i, gy, gx] = scenes.ATTRIBUTES[k].index(o[k])
    background = torch.tensor([scenes.ATTRIBUTES["background"].index(s["background"]) for s in scene_list])
    return {"object": obj, **attrs, "background": background}


class Evaluator:
    """Reads images of the embedded world (any size; resized to 64x64) and scores them against prompts and references."""

    def __init__(self, model: SceneReader):
        self.model = model.eval()

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise InputError(f"evaluator: expected images of shape (B, 3, H, W) in [0, 1], got {shape}")
        size = self.model.image_size
        x = images.detach().float().cpu().clamp(0, 1)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return x

    @torch.no_grad()
    def logits(self, images: torch.Tensor, batch: int = 256) -> dict[str, torch.Tensor]:
        x = self._prepare(images)
        parts = [self.model(chunk) for chunk in x.split(batch)] or [self.model(x)]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    def read(self, images: torch.Tensor) -> list[dict]:
        """(B, 3, H, W) in [0, 1] -> one complete scene dict per image (objects in cell order).

        In each cell, the location with the highest objectness holds an object when its probability is
        above one half; its attributes are read at that location."""
        logits = self.logits(images)
        prob = torch.sigmoid(logits["object"])  # (B, 8, 8)
        picks = {k: logits[k].argmax(1) for k in ("shape", "colour", "size")}
        background = logits["background"].argmax(-1)
        rows = torch.tensor(_CELL_OF_INDEX)
        cell_of = (rows[:, None] * 3 + rows[None, :]).flatten()  # (64,) cell of each location
        out = []
        for i in range(len(prob)):
            p = prob[i].flatten()
            objects = []
            for cell in range(N_CELLS):
                where = torch.nonzero(cell_of == cell).flatten()
                best = where[int(p[where].argmax())]
                if p[best] > 0.5:
                    y, x = divmod(int(best), GRID)
                    objects.append({"shape": scenes.SHAPES[int(picks["shape"][i, y, x])],
                                    "colour": scenes.ATTRIBUTES["colour"][int(picks["colour"][i, y, x])],
                                    "size": scenes.ATTRIBUTES["size"][int(picks["size"][i, y, x])],
                                    "position": scenes.POSITIONS[cell]})
            out.append({"objects": objects, "background": scenes.ATTRIBUTES["background"][int(background[i])]})
        return out

    def prompt_match(self, images: torch.Tensor, prompts: list[str]) -> list[bool]:
        """For each image, whether it satisfies everything its prompt says."""
        if len(prompts) != len(images):
            raise InputError(f"prompt_match: {len(images)} images but {len(prompts)} prompts; give one per image")
        specs = [scenes.parse_prompt(p) for p in prompts]
        return [satisfies(r, s) for r, s in zip(self.read(images), specs, strict=True)]

    def fidelity(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """(B,) agreement in [0, 1]: do image and reference show the same objects in the same cells?"""
        if images.shape[0] != references.shape[0]:
            raise InputError(f"fidelity: {len(images)} images but {len(references)} references; give one each")
        return torch.tensor([agreement(a, b) for a, b in zip(self.read(images), self.read(references), strict=True)])

    @torch.no_grad()
    def feature_distance(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """(B,) LPIPS-style distance from the reader's trunk features (0 for identical images)."""
        if images.shape[0] != references.shape[0]:
            raise InputError(f"feature_distance: {len(images)} images but {len(references)} references")
        fa, fb = self.model.features(self._prepare(images)), self.model.features(self._prepare(references))
        total = torch.zeros(len(images))
        for a, b in zip(fa, fb, strict=True):
            a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
            b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
            total += ((a - b) ** 2).sum(dim=1).mean(dim=(1, 2))
        return total / len(fa)


    @torch.no_grad()
    def embedding(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C) the reader's last trunk features averaged over the image: the feature space in which a
        distribution distance between sets of images (KID, meg_common.stats.kid) measures realism."""
        return self.model.features(self._prepare(images))[-1].mean(dim=(2, 3))

def satisfies(reading: dict, spec: dict) -> bool:
    """Whether a read scene satisfies a (partial) spec: background when named, the same number of objects
    when the spec lists any, and some assignment of read objects to spec objects that agrees everywhere."""
    if "background" in spec and reading["background"] != spec["background"]:
        return False
    wanted, read = spec.get("objects", []), reading["objects"]
    if not wanted:
        return True
    if len(read) != len(wanted):
        return False
    return any(all(all(r.get(k) == v for k, v in w.items()) for r, w in zip(perm, wanted, strict=True))
               for perm in itertools.permutations(read))


def agreement(a: dict, b: dict) -> float:
    """Fidelity of two readings: background agreement plus, per cell occupied in either, the share of
    shape/colour/size that agree (0 when only one has an object there), averaged."""
    cells_a = {o["position"]: o for o in a["objects"]}
    cells_b = {o["position"]: o for o in b["objects"]}
    scores = [float(a["background"] == b["background"])]
    for cell in set(cells_a) | set(cells_b):
        if cell in cells_a and cell in cells_b:
            scores.append(sum(cells_a[cell][k] == cells_b[cell][k] for k in ("shape", "colour", "size")) / 3)
        else:
            scores.append(0.0)
    return sum(scores) / len(scores)


def save_evaluator(model: SceneReader, folder: str | Path) -> Path:
    """config.json + model.safetensors (atomically) into `folder`."""
    from safetensors.torch import save_file

    from meg_common.io import atomic_write, atomic_write_json

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(out / WEIGHTS_NAME, lambda p: save_file(state, str(p)))
    atomic_write_json(out / CONFIG_NAME, {"class": "SceneReader", **model.config})
    return out


def load_evaluator(path: str | Path | None = None) -> Evaluator:
    """The scene reader in `path` (config.json + model.safetensors; default: the embedded one in
    meg_phy/models/evaluator)."""
    from safetensors.torch import load_file

    from meg_phy.models import EVALUATOR_DIR

    folder = Path(path) if path is not None else EVALUATOR_DIR
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not config_path.is_file() or not weights_path.is_file():
        raise InputError(f"evaluator folder {folder}: needs {CONFIG_NAME} and {WEIGHTS_NAME}; "
                         "train one with `meg-phy train --out DIR` (its DIR/evaluator)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if config.get("class") != "SceneReader" or config["attributes"] != {k: list(v) for k, v in
                                                                           scenes.ATTRIBUTES.items()}:
            raise ValueError("not a SceneReader for this vocabulary")
        model = SceneReader(tuple(config["channels"]), config["hidden"], config["image_size"])
        model.load_state_dict(load_file(str(weights_path)))
    except Exception as exc:  # safetensors raises its own error types; any failure means the same here
        raise InputError(f"evaluator folder {folder}: cannot load ({type(exc).__name__}: {str(exc)[:200]}); "
                         "retrain it") from exc
    return Evaluator(model)
