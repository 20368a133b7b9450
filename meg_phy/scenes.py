"""The procedural scenes the embedded model is trained on: attributes <-> prompt text <-> pixels.

A scene is one shape on a plain background, described by five attributes with a small vocabulary
(shape, colour, size, position, background). The prompt is a fixed template of those words, so text and
attributes convert both ways exactly, and an evaluator can check whether an image matches its prompt.
Rendering is anti-aliased (4x4 supersampling) with mild jitter (position, size, colours) drawn from an
explicit seed or `torch.Generator`, so every image is reproducible.
"""

from __future__ import annotations

import itertools
import math
import re

import torch

from meg_common.errors import InputError

IMAGE_SIZE = 32
"""Side of the square RGB images, in pixels."""

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "size": ("small", "large"),
    "colour": ("red", "green", "blue", "yellow"),
    "shape": ("circle", "square", "triangle"),
    "position": ("left", "right", "top", "bottom", "center"),
    "background": ("black", "white", "gray"),
}
"""Attribute name -> allowed values (the order is fixed: evaluator class indices follow it)."""

FILLER_WORDS: tuple[str, ...] = ("a", "at", "the", "on", "background", "shape")
"""Template words that carry no attribute ("shape" stands in for a missing shape word)."""

VOCABULARY: tuple[str, ...] = tuple(v for values in ATTRIBUTES.values() for v in values) + FILLER_WORDS
"""Every word a prompt may contain (the tokenizer maps each to one token)."""

COLOURS_RGB = {
    "red": (0.90, 0.12, 0.12),
    "green": (0.10, 0.72, 0.15),
    "blue": (0.12, 0.25, 0.92),
    "yellow": (0.95, 0.88, 0.10),
}
BACKGROUNDS_RGB = {"black": 0.0, "white": 1.0, "gray": 0.5}
CENTRES = {  # (x, y) in pixels, image coordinates (y down)
    "left": (9.0, 16.0),
    "right": (23.0, 16.0),
    "top": (16.0, 9.0),
    "bottom": (16.0, 23.0),
    "center": (16.0, 16.0),
}
RADII = {"small": 3.5, "large": 7.0}
"""Half-extent of a shape in pixels (circle radius; square and triangle are scaled to a similar area)."""

JITTER_PX = 1.5  # position jitter, uniform +-, pixels
JITTER_SIZE = 0.10  # relative size jitter, uniform +-
JITTER_COLOUR = 0.03  # per-channel colour and background jitter, uniform +-
_SUPERSAMPLE = 4
_WORD = re.compile(r"[a-z]+")


def all_combinations() -> list[dict[str, str]]:
    """Every attribute combination once, in a fixed order."""
    names = list(ATTRIBUTES)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*ATTRIBUTES.values())]


def make_prompt(attrs: dict[str, str]) -> str:
    """'a large red circle at the left on a white background'; missing attributes are left out."""
    _check_attributes(attrs)
    words = ["a"]
    words += [attrs[k] for k in ("size", "colour") if k in attrs]
    words.append(attrs.get("shape", "shape"))
    if "position" in attrs:
        words += ["at", "the", attrs["position"]]
    if "background" in attrs:
        words += ["on", "a", attrs["background"], "background"]
    return " ".join(words)


def parse_prompt(text: str) -> dict[str, str]:
    """Attributes named in a prompt (only those present; '' gives {}).

    Raises InputError for a word outside the vocabulary or two values of one attribute.
    """
    words = _WORD.findall(text.lower())
    leftovers = re.sub(r"[a-z\s.,;:!?'\"-]+", "", text.lower())
    if leftovers:
        raise InputError(f"prompt {text!r}: unexpected characters {leftovers!r}; use words from: {', '.join(VOCABULARY)}")
    value_to_attr = {v: name for name, values in ATTRIBUTES.items() for v in values}
    found: dict[str, str] = {}
    for word in words:
        if word in FILLER_WORDS:
            continue
        if word not in value_to_attr:
            raise InputError(f"prompt {text!r}: unknown word {word!r}; the embedded model knows only: "
                             f"{', '.join(VOCABULARY)}")
        name = value_to_attr[word]
        if name in found and found[name] != word:
            raise InputError(f"prompt {text!r}: two {name}s ({found[name]!r} and {word!r}); name one")
        found[name] = word
    return found


def sample_attributes(generator: torch.Generator, n: int) -> list[dict[str, str]]:
    """`n` scenes with every attribute drawn uniformly from `generator`."""
    picks = {name: torch.randint(len(values), (n,), generator=generator).tolist()
             for name, values in ATTRIBUTES.items()}
    return [{name: ATTRIBUTES[name][picks[name][i]] for name in ATTRIBUTES} for i in range(n)]


def render(attrs: dict[str, str], seed_or_generator: int | torch.Generator = 0) -> torch.Tensor:
    """One scene as a (3, IMAGE_SIZE, IMAGE_SIZE) float tensor in [0, 1]; the jitter comes from the seed."""
    return render_batch([attrs], [seed_or_generator])[0]


def render_batch(attrs_list: list[dict[str, str]], seeds: list[int | torch.Generator]) -> torch.Tensor:
    """Many scenes at once, (B, 3, H, W); image i equals `render(attrs_list[i], seeds[i])`."""
    if len(attrs_list) != len(seeds):
        raise InputError(f"render_batch: {len(attrs_list)} scenes but {len(seeds)} seeds; give one seed per scene")
    for attrs in attrs_list:
        _check_attributes(attrs, complete=True)
    jitter = torch.stack([_jitter(s) for s in seeds]) * 2 - 1 if seeds else torch.zeros(0, 7)  # (B, 7) in [-1, 1]
    b = len(attrs_list)
    cx = torch.tensor([CENTRES[a["position"]][0] for a in attrs_list]) + JITTER_PX * jitter[:, 0]
    cy = torch.tensor([CENTRES[a["position"]][1] for a in attrs_list]) + JITTER_PX * jitter[:, 1]
    r = torch.tensor([RADII[a["size"]] for a in attrs_list]) * (1 + JITTER_SIZE * jitter[:, 2])
    colour = torch.tensor([COLOURS_RGB[a["colour"]] for a in attrs_list]) + JITTER_COLOUR * jitter[:, 3:6]
    background = torch.tensor([BACKGROUNDS_RGB[a["background"]] for a in attrs_list]) + JITTER_COLOUR * jitter[:, 6]
    coverage = torch.zeros(b, IMAGE_SIZE, IMAGE_SIZE)
    for shape in ATTRIBUTES["shape"]:
        idx = [i for i, a in enumerate(attrs_list) if a["shape"] == shape]
        if idx:
            sel = torch.tensor(idx)
            coverage[sel] = _coverage(shape, cx[sel], cy[sel], r[sel])
    colour = colour.clamp(0, 1)[:, :, None, None]
    background = background.clamp(0, 1)[:, None, None, None].expand(b, 3, 1, 1)
    cov = coverage[:, None]
    return (cov * colour + (1 - cov) * background).clamp(0, 1)


def _jitter(seed: int | torch.Generator) -> torch.Tensor:
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    return torch.rand(7, generator=generator, dtype=torch.float64).float()


def _coverage(shape: str, cx: torch.Tensor, cy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Fraction of each pixel inside the shape, (B, H, W), by 4x4 supersampling."""
    n = IMAGE_SIZE * _SUPERSAMPLE
    coords = (torch.arange(n, dtype=torch.float32) + 0.5) / _SUPERSAMPLE
    y = coords[None, :, None]
    x = coords[None, None, :]
    cx, cy, r = cx[:, None, None], cy[:, None, None], r[:, None, None]
    if shape == "circle":
        inside = (x - cx) ** 2 + (y - cy) ** 2 <= r**2
    elif shape == "square":
        half = r * math.sqrt(math.pi) / 2  # same area as the circle
        inside = ((x - cx).abs() <= half) & ((y - cy).abs() <= half)
    else:  # upward equilateral triangle, bounding box centred on (cx, cy)
        side = r * 2.4
        height = side * math.sqrt(3) / 2
        top, bottom = cy - height / 2, cy + height / 2
        # inside when below the base line's top and within both slanted edges
        half_width = (y - top) / height * side / 2
        inside = (y >= top) & (y <= bottom) & ((x - cx).abs() <= half_width)
    return inside.float().reshape(-1, IMAGE_SIZE, _SUPERSAMPLE, IMAGE_SIZE, _SUPERSAMPLE).mean(dim=(2, 4))


def _check_attributes(attrs: dict[str, str], complete: bool = False) -> None:
    for name, value in attrs.items():
        if name not in ATTRIBUTES:
            raise InputError(f"unknown attribute {name!r}; known: {', '.join(ATTRIBUTES)}")
        if value not in ATTRIBUTES[name]:
            raise InputError(f"{name} {value!r} is not known; choose one of: {', '.join(ATTRIBUTES[name])}")
    if complete and set(attrs) != set(ATTRIBUTES):
        missing = [n for n in ATTRIBUTES if n not in attrs]
        raise InputError(f"scene {attrs}: missing {', '.join(missing)}; a rendered scene needs every attribute")
