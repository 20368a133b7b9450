"""The embedded world: 64x64 scenes of 1-3 objects where the seed carries what the prompt does not.

A scene is a dict of *named* attributes, the same structure a prompt parses to::

    {"objects": [{"shape": "star", "colour": "green", "size": "small", "position": "top left"}, ...],
     "background": "striped"}

A prompt may leave any attribute out ("a red circle" names a shape and a colour only); `complete(spec, seed)`
draws what is missing, and `layout` then draws the continuous values that no name fixes (exact centre inside
the named 3x3 cell, radius inside the named size range, colour jitter, gradient and texture parameters), so
the prompt fixes the meaning and the seed fixes the layout. Attributes and layout come from two independent
streams of one seed, so `render(spec, s)` equals `render(complete(spec, s), s)`.

Rendering is anti-aliased (4x4 supersampling inside each object's bounding box) and deterministic by seed.
Objects sit in distinct cells of the 3x3 grid and may overlap their neighbours partially (centres are drawn
until they are at least `_MIN_SEPARATION` times the sum of the two extents apart; in the rare scenes where 24
draws fail, the best-separated draw is kept), so each stays readable.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F

from meg_common.errors import InputError

IMAGE_SIZE = 64
"""Side of the square RGB images, in pixels."""
MAX_OBJECTS = 3

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring")
COLOURS_RGB: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.10, 0.10),
    "orange": (1.00, 0.55, 0.05),
    "yellow": (0.95, 0.90, 0.10),
    "green": (0.10, 0.65, 0.20),
    "blue": (0.12, 0.25, 0.92),
    "purple": (0.58, 0.16, 0.78),
    "white": (0.96, 0.96, 0.96),
    "black": (0.05, 0.05, 0.05),
}
BACKGROUND_COLOURS_RGB: dict[str, tuple[float, float, float]] = {**COLOURS_RGB, "gray": (0.50, 0.50, 0.50)}
PATTERNS: tuple[str, ...] = ("gradient", "striped", "checked", "noisy")
SIZE_RANGES: dict[str, tuple[float, float]] = {"small": (5.5, 7.0), "medium": (8.5, 10.0), "large": (11.5, 13.0)}
"""Size class -> range of the object's radius in pixels (a gap between classes keeps the name unambiguous)."""
POSITIONS: tuple[str, ...] = ("top left", "top", "top right", "left", "center", "right",
                              "bottom left", "bottom", "bottom right")
"""The 3x3 grid cells, row by row; cell i spans rows i // 3 and columns i % 3 of thirds of the frame."""

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "colour": tuple(COLOURS_RGB),
    "size": tuple(SIZE_RANGES),
    "position": POSITIONS,
    "background": tuple(BACKGROUND_COLOURS_RGB) + PATTERNS,
}
"""Attribute name -> allowed values; the first four describe an object, `background` the scene."""
OBJECT_ATTRIBUTES: tuple[str, ...] = ("shape", "colour", "size", "position")

_COUNTS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3}
_COUNT_WORDS = {1: "a", 2: "two", 3: "three"}
_SYNONYMS = {"centre": "center", "middle": "center", "upper": "top", "lower": "bottom", "grey": "gray",
             "stripes": "striped", "stripy": "striped", "checkered": "checked", "chequered": "checked",
             "checks": "checked", "noise": "noisy"}
_PLURALS = {s + "s": s for s in SHAPES}
_GENERIC = {"shape": 1, "object": 1, "shapes": 2, "objects": 2}  # a shape left to the seed
_POSITION_WORDS = ("top", "bottom", "left", "right", "center")
_FILLERS = ("the", "at", "in", "on", "of", "corner", "side", "over", "against")
_SEPARATORS = (",", "and", "with", "plus")
VOCABULARY: tuple[str, ...] = tuple(dict.fromkeys(
    list(_COUNTS) + list(SIZE_RANGES) + list(BACKGROUND_COLOURS_RGB) + list(SHAPES) + list(_PLURALS)
    + list(_GENERIC) + list(_POSITION_WORDS) + list(PATTERNS) + ["background"] + list(_FILLERS)
    + [s for s in _SEPARATORS if s != ","] + list(_SYNONYMS)))
"""Every word a prompt may contain (the tokenizer maps each to one token; ',' is a token too)."""

_MARGIN_PX = 3.0  # an object's centre stays this far inside its cell, so the named cell is unambiguous
_MIN_SEPARATION = 0.75  # centre distance >= this x (extent_a + extent_b): overlaps stay partial
_SUPERSAMPLE = 4
_JITTER_COLOUR = 0.04
_TOKEN = re.compile(r"[a-z]+|,")
_EXTENT = {"circle": 1.0, "square": 0.886, "triangle": 1.25, "star": 1.3, "ring": 1.05}
"""Half-width of each shape's bounding box in units of its radius (areas roughly equal across shapes)."""


def _vocabulary_hint() -> str:
    return "words the world knows: " + " ".join(VOCABULARY)


# ---- prompts <-> named attributes -----------------------------------------------------------------
def make_prompt(spec: dict) -> str:
    """'a small green star at the top left and a yellow square on a striped background'.

    Attributes missing from `spec` are left out (a missing shape reads 'shape'); consecutive objects with the
    same named attributes and no position are counted ('two blue triangles'), so
    `parse_prompt(make_prompt(spec)) == spec` for every valid spec.
    """
    phrases = [text for text, _ in prompt_phrases(spec)]
    text = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1] if phrases else ""
    if "background" in spec:
        bg = spec["background"]
        article = "an" if bg[0] in "aeiou" else "a"
        text = f"{text} on {article} {bg} background" if text else f"{article} {bg} background"
    return text


def prompt_phrases(spec: dict) -> list[tuple[str, list[int]]]:
    """The object phrases of `make_prompt(spec)` in order, each with the indices of the objects of
    `spec["objects"]` it names (more than one where equal objects are counted): which words name which
    object, for training that ties a word's attention to its object."""
    check_spec(spec)
    objects = spec.get("objects", [])
    phrases, i = [], 0
    while i < len(objects):
        n = 1
        if "position" not in objects[i]:
            while i + n < len(objects) and objects[i + n] == objects[i]:
                n += 1
        phrases.append((_object_phrase(objects[i], n), list(range(i, i + n))))
        i += n
    return phrases


def _object_phrase(obj: dict, count: int) -> str:
    words = [obj[k] for k in ("size", "colour") if k in obj]
    noun = obj.get("shape", "shape") + ("s" if count > 1 else "")
    article = _COUNT_WORDS[count] if count > 1 else ("an" if (words or [noun])[0][0] in "aeiou" else "a")
    phrase = " ".join([article, *words, noun])
    if "position" in obj:
        phrase += (" in the " if obj["position"] == "center" else " at the ") + obj["position"]
    return phrase


def parse_prompt(text: str) -> dict:
    """Named attributes of a prompt: {"objects": [...], "background": ...} (background only when named).

    Objects come in the order the prompt names them; 'two blue triangles' gives two equal objects. Raises
    InputError (one line, with the vocabulary) for unknown words and for contradictions: two values of one
    attribute for one object, several objects in one cell, more than three objects, an object coloured like
    a plain background.
    """
    try:
        return _parse(text)
    except InputError as exc:
        message = str(exc)
        raise InputError(message if "words the world knows" in message else f"{message}; {_vocabulary_hint()}") \
            from None


def _parse(text: str) -> dict:
    if not isinstance(text, str):
        raise InputError(f"prompt must be text, got {type(text).__name__}")
    lowered = text.lower()
    leftovers = re.sub(r"[a-z\s.,;:!?'\"-]+", "", lowered)
    if leftovers:
        raise InputError(f"prompt {text!r}: unexpected characters {leftovers!r}; {_vocabulary_hint()}")
    tokens = [_SYNONYMS.get(t, t) for t in _TOKEN.findall(lowered.replace(";", ","))]
    for t in tokens:
        if t not in VOCABULARY and t != ",":
            raise InputError(f"prompt {text!r}: unknown word {t!r}; {_vocabulary_hint()}")
    background, tokens = _take_background(text, tokens)
    objects: list[dict] = []
    phrase: list[str] = []
    for t in tokens + [","]:
        if t in _SEPARATORS:
            objects += _parse_object_phrase(text, phrase)
            phrase = []
        else:
            phrase.append(t)
    spec: dict = {"objects": objects}
    if background is not None:
        spec["background"] = background
    _check_consistent(text, spec)
    return spec


def _take_background(text: str, tokens: list[str]) -> tuple[str | None, list[str]]:
    """The background value and the tokens without its phrase ('on a blue background', 'on stripes')."""
    values, keep = [], [True] * len(tokens)
    for i, t in enumerate(tokens):
        if t != "background" and t not in PATTERNS:
            continue
        if t == "background":
            j = i - 1
            while j >= 0 and tokens[j] in ("a", "an", "the"):
                j -= 1
            if j < 0 or tokens[j] not in ATTRIBUTES["background"]:
                raise InputError(f"prompt {text!r}: say which background (a colour or one of "
                                 f"{', '.join(PATTERNS)}), e.g. 'on a blue background'; {_vocabulary_hint()}")
            if tokens[j] in PATTERNS:  # 'striped background': the pattern word names it already
                keep[i] = False
                continue
        else:
            j = i
        values.append(tokens[j])
        start = j
        while start > 0 and tokens[start - 1] in ("a", "an", "the"):
            start -= 1
        if start > 0 and tokens[start - 1] in ("on", "over", "against", "with"):
            start -= 1
        for k in range(start, (i if t == "background" else j) + 1):
            keep[k] = False
    if len(set(values)) > 1:
        raise InputError(f"prompt {text!r}: two backgrounds ({' and '.join(dict.fromkeys(values))}); name one")
    return (values[0] if values else None), [t for t, k in zip(tokens, keep, strict=True) if k]


def _parse_object_phrase(text: str, words: list[str]) -> list[dict]:
    if not [w for w in words if w not in _FILLERS]:
        return []
    obj: dict[str, str] = {}
    count, plural, noun = None, False, False
    vertical = horizontal = None
    centre = False

    def put(key: str, value: str) -> None:
        if key in obj and obj[key] != value:
            raise InputError(f"prompt {text!r}: one object with two {key}s ({obj[key]} and {value}); name one")
        obj[key] = value

    for w in words:
        if w in _COUNTS:
            if count is not None and count != _COUNTS[w]:
                raise InputError(f"prompt {text!r}: two counts ('{w}' after another) for one object; name one")
            count = _COUNTS[w]
        elif w in SIZE_RANGES:
            put("size", w)
        elif w in COLOURS_RGB:
            put("colour", w)
        elif w == "gray":
            raise InputError(f"prompt {text!r}: gray is a background colour only; objects are "
                             f"{', '.join(COLOURS_RGB)}")
        elif w in SHAPES or w in _PLURALS or w in _GENERIC:
            if noun:
                raise InputError(f"prompt {text!r}: two shapes in one phrase; join objects with 'and'")
            noun, plural = True, w in _PLURALS or _GENERIC.get(w) == 2
            shape = _PLURALS.get(w, w)
            if shape in SHAPES:
                put("shape", shape)
        elif w in ("top", "bottom"):
            if vertical and vertical != w:
                raise InputError(f"prompt {text!r}: both top and bottom for one object; name one")
            vertical = w
        elif w in ("left", "right"):
            if horizontal and horizontal != w:
                raise InputError(f"prompt {text!r}: both left and right for one object; name one")
            horizontal = w
        elif w == "center":
            centre = True
        elif w in _FILLERS:
            continue
        else:
            raise InputError(f"prompt {text!r}: {w!r} cannot describe an object; {_vocabulary_hint()}")
    if not noun:
        raise InputError(f"prompt {text!r}: the phrase {' '.join(words)!r} names no shape; use one of "
                         f"{', '.join(SHAPES)} (or 'shape'); {_vocabulary_hint()}")
    if vertical or horizontal or centre:
        obj["position"] = " ".join(p for p in (vertical, horizontal) if p) or "center"
    n = count if count is not None else (None if plural else 1)
    if n is None:
        raise InputError(f"prompt {text!r}: say how many ('two' or 'three') for {' '.join(words)!r}")
    if n > 1 and "position" in obj:
        raise InputError(f"prompt {text!r}: {n} objects cannot share the cell {obj['position']!r}; "
                         "give each its own position")
    return [dict(obj) for _ in range(n)]


def check_spec(spec: dict) -> None:
    """InputError unless `spec` is {"objects": [partial object dicts], optional "background"} and consistent."""
    if not isinstance(spec, dict) or set(spec) - {"objects", "background"}:
        raise InputError(f"scene {spec!r}: expected a dict with 'objects' (a list) and optionally 'background'")
    objects = spec.get("objects", [])
    if not isinstance(objects, list):
        raise InputError(f"scene {spec!r}: 'objects' must be a list of dicts")
    for obj in objects:
        if not isinstance(obj, dict):
            raise InputError(f"scene {spec!r}: each object must be a dict of {', '.join(OBJECT_ATTRIBUTES)}")
        for key, value in obj.items():
            if key not in OBJECT_ATTRIBUTES:
                raise InputError(f"unknown object attribute {key!r}; known: {', '.join(OBJECT_ATTRIBUTES)}")
            if value not in ATTRIBUTES[key]:
                raise InputError(f"{key} {value!r} is not known; choose one of: {', '.join(ATTRIBUTES[key])}")
    if "background" in spec and spec["background"] not in ATTRIBUTES["background"]:
        raise InputError(f"background {spec['background']!r} is not known; choose one of: "
                         f"{', '.join(ATTRIBUTES['background'])}")
    _check_consistent(None, spec)


def _check_consistent(text: str | None, spec: dict) -> None:
    where = f"prompt {text!r}" if text is not None else f"scene {spec!r}"
    objects = spec.get("objects", [])
    if len(objects) > MAX_OBJECTS:
        raise InputError(f"{where}: {len(objects)} objects; a scene holds at most {MAX_OBJECTS}")
    cells = [o["position"] for o in objects if "position" in o]
    if len(cells) != len(set(cells)):
        raise InputError(f"{where}: two objects in the same cell; give each its own position")
    background = spec.get("background")
    if background in COLOURS_RGB and any(o.get("colour") == background for o in objects):
        raise InputError(f"{where}: a {background} object on a {background} background would be invisible; "
                         "choose another colour")


def is_complete(spec: dict) -> bool:
    """Whether every attribute is named (a renderable scene description with nothing left to the seed)."""
    objects = spec.get("objects", [])
    return ("background" in spec and 1 <= len(objects) <= MAX_OBJECTS
            and all(set(o) == set(OBJECT_ATTRIBUTES) for o in objects))


# ---- drawing what the prompt leaves out -------------------------------------------------------------
def _generator(seed: int | torch.Generator, stream: int) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=seed))
    return torch.Generator().manual_seed((int(seed) * 2 + stream) % (2**63 - 1))


def _pick(gen: torch.Generator, options) -> str:
    options = list(options)
    return options[int(torch.randint(len(options), (1,), generator=gen))]


def complete(spec: dict, seed: int | torch.Generator = 0) -> dict:
    """`spec` with every missing attribute drawn from the seed (a prompt without objects gets 1-3).

    Missing shapes, colours and sizes are uniform; missing positions are uniform over the free cells; a
    missing background is uniform over the backgrounds that no object's colour rules out.
    """
    check_spec(spec)
    gen = _generator(seed, 0)
    objects = [dict(o) for o in spec.get("objects", [])]
    if not objects:
        objects = [{} for _ in range(int(torch.randint(1, MAX_OBJECTS + 1, (1,), generator=gen)))]
    background = spec.get("background")
    for obj in objects:
        if "shape" not in obj:
            obj["shape"] = _pick(gen, SHAPES)
        if "colour" not in obj:
            obj["colour"] = _pick(gen, [c for c in COLOURS_RGB if c != background])
        if "size" not in obj:
            obj["size"] = _pick(gen, SIZE_RANGES)
    free = [p for p in POSITIONS if p not in {o.get("position") for o in objects}]
    for obj in objects:
        if "position" not in obj:
            obj["position"] = free.pop(int(torch.randint(len(free), (1,), generator=gen)))
    objects = [{k: o[k] for k in OBJECT_ATTRIBUTES} for o in objects]
    if background is None:
        used = {o["colour"] for o in objects}
        background = _pick(gen, [b for b in ATTRIBUTES["background"] if b not in used])
    return {"objects": objects, "background": background}


def sample_attributes(generator: torch.Generator, n: int) -> list[dict]:
    """`n` complete scenes (1-3 objects, every attribute named) drawn from `generator`."""
    seeds = torch.randint(0, 2**62, (n,), generator=generator).tolist()
    return [complete({}, s) for s in seeds]


def drop_attributes(scene: dict, generator: torch.Generator, keep: dict[str, float] | None = None) -> dict:
    """A partial description of a complete scene: each attribute kept with its probability in `keep`
    (default: shape 0.85, colour 0.8, size 0.5, position 0.5, background 0.6). Every object stays listed."""
    keep = keep or {"shape": 0.85, "colour": 0.8, "size": 0.5, "position": 0.5, "background": 0.6}
    u = torch.rand(len(scene["objects"]) * 4 + 1, generator=generator).tolist()
    objects = [{k: o[k] for j, k in enumerate(OBJECT_ATTRIBUTES) if u[i * 4 + j] < keep[k]}
               for i, o in enumerate(scene["objects"])]
    spec: dict = {"objects": objects}
    if u[-1] < keep["background"]:
        spec["background"] = scene["background"]
    return spec


# ---- continuous layout and pixels -------------------------------------------------------------------
def recoloured(spec: dict, seed: int) -> dict:
    """The complete scene of `spec` for `seed` with its first object's colour changed to one that no other
    object nor the background uses: an image-to-image input whose edit (back to `spec`) is visible."""
    scene = complete(spec, seed)
    used = {o["colour"] for o in scene["objects"]} | {scene["background"]}
    colours = list(COLOURS_RGB)
    first = scene["objects"][0]
    for step in range(1, len(colours)):
        other = colours[(colours.index(first["colour"]) + step) % len(colours)]
        edited = {**scene, "objects": [{**first, "colour": other}, *scene["objects"][1:]]}
        if other not in used and _valid(edited):
            return edited
    return scene


def _valid(scene: dict) -> bool:
    try:
        check_spec(scene)
    except InputError:
        return False
    return True


def layout(scene: dict, seed: int | torch.Generator = 0) -> dict:
    """Continuous values of a complete scene: per object centre (x, y) and radius in pixels and RGB colour;
    background kind, colours and pattern parameters. Drawn from the seed's layout stream."""
    if not is_complete(scene):
        raise InputError(f"scene {scene!r}: layout needs a complete scene; call complete(spec, seed) first")
    check_spec(scene)
    gen = _generator(seed, 1)
    u = lambda: float(torch.rand(1, generator=gen, dtype=torch.float64))  # noqa: E731
    cell = IMAGE_SIZE / 3
    placed = []
    for obj in scene["objects"]:
        lo, hi = SIZE_RANGES[obj["size"]]
        radius = lo + (hi - lo) * u()
        extent = radius * _EXTENT[obj["shape"]]
        row, col = divmod(POSITIONS.index(obj["position"]), 3)
        box = []
        for k in (col, row):
            a = max(k * cell + _MARGIN_PX, extent + 0.5)
            b = min((k + 1) * cell - _MARGIN_PX, IMAGE_SIZE - extent - 0.5)
            box.append((a, max(a, b)))
        best = None
        draws = [(box[0][0] + (box[0][1] - box[0][0]) * u(), box[1][0] + (box[1][1] - box[1][0]) * u())
                 for _ in range(24)]
        # rejection sampling; if no draw keeps the separation, the best-separated of the draws and the box's
        # corners (large objects in neighbouring cells may only fit apart there)
        for x, y in draws + [(bx, by) for bx in box[0] for by in box[1]]:
            ratio = min([math.hypot(x - p["x"], y - p["y"]) / (extent + p["extent"]) for p in placed] + [9.0])
            if best is None or ratio > best[0]:
                best = (ratio, x, y)
            if ratio >= _MIN_SEPARATION:
                break
        _, x, y = best
        rgb = [min(1.0, max(0.0, c + _JITTER_COLOUR * (2 * u() - 1))) for c in COLOURS_RGB[obj["colour"]]]
        placed.append({"shape": obj["shape"], "x": x, "y": y, "radius": radius, "extent": extent, "rgb": rgb})
    background = scene["background"]
    pool = [c for c in BACKGROUND_COLOURS_RGB if c not in {o["colour"] for o in scene["objects"]}]
    bg: dict = {"kind": background}
    if background in BACKGROUND_COLOURS_RGB:
        bg["colours"] = [_jitter_rgb(BACKGROUND_COLOURS_RGB[background], u)]
    elif background == "gradient":
        first = _pick(gen, pool)
        second = _pick(gen, [c for c in pool if c != first])
        bg["colours"] = [_jitter_rgb(BACKGROUND_COLOURS_RGB[c], u) for c in (first, second)]
        bg["angle"] = 2 * math.pi * u()
    else:
        base = BACKGROUND_COLOURS_RGB[_pick(gen, pool)]
        shade = [c * 0.72 + 0.28 * (0.1 if sum(base) > 1.5 else 0.9) for c in base]
        bg["colours"] = [_jitter_rgb(base, u), _jitter_rgb(shade, u)]
        bg["angle"] = math.pi * u()
        bg["period"] = 12.0 + 8.0 * u()
        bg["phase"] = [u(), u()]
        if background == "noisy":
            bg["field"] = torch.rand(5, 5, generator=gen).tolist()
    return {"objects": placed, "background": bg}


def _jitter_rgb(rgb, u) -> list[float]:
    return [min(1.0, max(0.0, c + _JITTER_COLOUR * (2 * u() - 1))) for c in rgb]


def render(spec: dict, seed: int | torch.Generator = 0) -> torch.Tensor:
    """One scene as a (3, IMAGE_SIZE, IMAGE_SIZE) float tensor in [0, 1]; what `spec` leaves out comes from
    the seed."""
    if isinstance(seed, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=seed))
    scene = spec if is_complete(spec) else complete(spec, seed)
    return raster(layout(scene, seed))


def render_batch(specs: list[dict], seeds: list[int]) -> torch.Tensor:
    """(B, 3, H, W); image i equals `render(specs[i], seeds[i])`."""
    if len(specs) != len(seeds):
        raise InputError(f"render_batch: {len(specs)} scenes but {len(seeds)} seeds; give one seed per scene")
    if not specs:
        return torch.zeros(0, 3, IMAGE_SIZE, IMAGE_SIZE)
    return torch.stack([render(s, seed) for s, seed in zip(specs, seeds, strict=True)])


def raster(lay: dict) -> torch.Tensor:
    """Pixels of a layout: background, then the objects in order (later ones cover earlier ones)."""
    image = _background(lay["background"])
    for obj in lay["objects"]:
        rows, cols, cover = _coverage(obj)
        colour = torch.tensor(obj["rgb"])[:, None, None]
        image[:, rows, cols] = image[:, rows, cols] * (1 - cover) + colour * cover
    return image.clamp(0, 1)


def object_pixels(lay: dict) -> torch.Tensor:
    """[objects, H, W] bool: the pixels each object of a layout covers, at least in part (hidden or not by
    the objects drawn after it); which pixels a word that names the object should look at."""
    masks = torch.zeros(len(lay["objects"]), IMAGE_SIZE, IMAGE_SIZE, dtype=torch.bool)
    for k, obj in enumerate(lay["objects"]):
        rows, cols, cover = _coverage(obj)
        masks[k, rows, cols] = cover > 0
    return masks


def _coverage(obj: dict) -> tuple[slice, slice, torch.Tensor]:
    """The rows and columns of the pixels around an object, and the share of each that the shape covers
    (supersampled)."""
    e = obj["extent"] + 1.0
    x0, x1 = max(0, int(math.floor(obj["x"] - e))), min(IMAGE_SIZE, int(math.ceil(obj["x"] + e)))
    y0, y1 = max(0, int(math.floor(obj["y"] - e))), min(IMAGE_SIZE, int(math.ceil(obj["y"] + e)))
    xs = x0 + (torch.arange((x1 - x0) * _SUPERSAMPLE, dtype=torch.float32) + 0.5) / _SUPERSAMPLE - obj["x"]
    ys = y0 + (torch.arange((y1 - y0) * _SUPERSAMPLE, dtype=torch.float32) + 0.5) / _SUPERSAMPLE - obj["y"]
    inside = _inside(obj["shape"], xs[None, :], ys[:, None], obj["radius"])
    cover = inside.float().reshape(y1 - y0, _SUPERSAMPLE, x1 - x0, _SUPERSAMPLE).mean(dim=(1, 3))
    return slice(y0, y1), slice(x0, x1), cover


def _inside(shape: str, x: torch.Tensor, y: torch.Tensor, r: float) -> torch.Tensor:
    """Boolean mask of points (x, y) relative to the centre (image coordinates, y down) inside the shape."""
    if shape == "circle":
        return x**2 + y**2 <= r**2
    if shape == "ring":
        d2 = x**2 + y**2
        outer = r * _EXTENT["ring"]
        return (d2 <= outer**2) & (d2 >= (0.5 * outer) ** 2)
    if shape == "square":
        half = r * _EXTENT["square"]
        return (x.abs() <= half) & (y.abs() <= half)
    if shape == "triangle":  # upward equilateral, bounding box centred
        side = 2 * r * _EXTENT["triangle"]
        height = side * math.sqrt(3) / 2
        top = -height / 2
        half_width = (y - top) / height * side / 2
        return (y >= top) & (y <= height / 2) & (x.abs() <= half_width)
    # five-pointed star, one point up: fold the angle into one point's half-sector, test against its edge
    outer = r * _EXTENT["star"]
    inner = 0.5 * outer
    rho = torch.sqrt(x**2 + y**2)
    theta = torch.atan2(x, -y)  # 0 = up
    sector = 2 * math.pi / 5
    phi = torch.remainder(theta + sector / 2, sector) - sector / 2
    phi = phi.abs()
    px, py = rho * torch.cos(phi), rho * torch.sin(phi)
    ax, ay = outer, 0.0
    bx, by = inner * math.cos(sector / 2), inner * math.sin(sector / 2)
    cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
    return cross >= 0


def _background(bg: dict) -> torch.Tensor:
    s = IMAGE_SIZE
    kind = bg["kind"]
    colours = [torch.tensor(c)[:, None, None] for c in bg["colours"]]
    if kind in BACKGROUND_COLOURS_RGB:
        return colours[0].expand(3, s, s).clone()
    coords = (torch.arange(s, dtype=torch.float32) + 0.5) / s - 0.5
    y, x = coords[:, None], coords[None, :]
    if kind == "gradient":
        t = (x * math.cos(bg["angle"]) + y * math.sin(bg["angle"])) / math.sqrt(0.5) + 0.5
        t = t.clamp(0, 1)[None]
        return colours[0] * (1 - t) + colours[1] * t
    if kind == "noisy":
        field = torch.tensor(bg["field"])[None, None]
        t = F.interpolate(field, size=(s, s), mode="bicubic", align_corners=True)[0].clamp(0, 1)
        return colours[0] * (1 - t) + colours[1] * t
    n = s * _SUPERSAMPLE
    fine = (torch.arange(n, dtype=torch.float32) + 0.5) / _SUPERSAMPLE
    fy, fx = fine[:, None], fine[None, :]
    period, (p0, p1) = bg["period"], bg["phase"]
    if kind == "striped":
        u = fx * math.cos(bg["angle"]) + fy * math.sin(bg["angle"])
        mask = torch.remainder(u / period + p0, 1.0) < 0.5
    else:  # checked, axis-aligned
        mask = (torch.remainder(fx / period + p0, 1.0) < 0.5) ^ (torch.remainder(fy / period + p1, 1.0) < 0.5)
    t = mask.float().reshape(s, _SUPERSAMPLE, s, _SUPERSAMPLE).mean(dim=(1, 3))[None]
    return colours[0] * (1 - t) + colours[1] * t


def cell_labels(scene: dict) -> dict:
    """Per-cell targets of a complete scene for the evaluator: shape index (0 = empty, else 1 + index in
    SHAPES), colour and size indices (-100 = no object, ignored by cross-entropy), background index."""
    shape = [0] * 9
    colour = [-100] * 9
    size = [-100] * 9
    for obj in scene["objects"]:
        k = POSITIONS.index(obj["position"])
        shape[k] = 1 + SHAPES.index(obj["shape"])
        colour[k] = ATTRIBUTES["colour"].index(obj["colour"])
        size[k] = ATTRIBUTES["size"].index(obj["size"])
    return {"shape": shape, "colour": colour, "size": size,
            "background": ATTRIBUTES["background"].index(scene["background"])}
