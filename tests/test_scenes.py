"""The embedded world's scenes: vocabulary, free-order prompts <-> named attributes, the seed drawing what the prompt
leaves out, and pixels that show what the scene names."""

import math

import pytest
import torch

from meg_common.errors import InputError
from meg_phy import scenes


def test_the_vocabulary_has_enough_shapes_colours_sizes_and_positions():
    assert len(scenes.SHAPES) >= 5 and len(scenes.COLOURS_RGB) >= 8
    assert scenes.ATTRIBUTES["size"] == ("small", "medium", "large")
    assert len(scenes.POSITIONS) == 9 and "top left" in scenes.POSITIONS and "center" in scenes.POSITIONS
    backgrounds = scenes.ATTRIBUTES["background"]
    assert {"gradient", "striped", "checked", "noisy"} <= set(backgrounds)
    assert set(scenes.COLOURS_RGB) < set(backgrounds)
    # size classes are ranges with gaps between them, so the name of a continuous size is unambiguous
    ranges = list(scenes.SIZE_RANGES.values())
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))


@pytest.mark.parametrize("prompt, expected", [
    ("a red circle on a blue background", {"objects": [{"colour": "red", "shape": "circle"}], "background": "blue"}),
    ("a small green star at the top left and a yellow square",
     {"objects": [{"size": "small", "colour": "green", "shape": "star", "position": "top left"},
                  {"colour": "yellow", "shape": "square"}]}),
    ("two blue triangles on a striped background",
     {"objects": [{"colour": "blue", "shape": "triangle"}] * 2, "background": "striped"}),
    ("On stripes, a LARGE orange ring in the centre.",
     {"objects": [{"size": "large", "colour": "orange", "shape": "ring", "position": "center"}],
      "background": "striped"}),
    ("at the bottom right a purple shape", {"objects": [{"colour": "purple", "position": "bottom right"}]}),
    ("a checked background", {"objects": [], "background": "checked"}),
    ("", {"objects": []}),
])
def test_free_order_prompts_parse_to_what_they_name(prompt, expected):
    assert scenes.parse_prompt(prompt) == expected
    assert scenes.parse_prompt(scenes.make_prompt(expected)) == expected


def test_make_prompt_reads_naturally():
    spec = {"objects": [{"size": "small", "colour": "orange", "shape": "star", "position": "top left"},
                        {"colour": "blue", "shape": "ring", "position": "center"}, {"shape": "square"}],
            "background": "orange"}
    with pytest.raises(InputError, match="invisible"):
        scenes.make_prompt(spec)
    spec["background"] = "gradient"
    assert scenes.make_prompt(spec) == ("a small orange star at the top left, a blue ring in the center and a "
                                        "square on a gradient background")
    assert scenes.make_prompt({"objects": [{"colour": "blue", "shape": "triangle"}] * 3}) == "three blue triangles"


def test_every_scene_and_every_partial_description_round_trips():
    gen = torch.Generator().manual_seed(0)
    full = scenes.sample_attributes(gen, 400)
    assert {len(s["objects"]) for s in full} == {1, 2, 3}
    for scene in full:
        assert scenes.is_complete(scene)
        assert scenes.parse_prompt(scenes.make_prompt(scene)) == scene
        part = scenes.drop_attributes(scene, gen)
        assert scenes.parse_prompt(scenes.make_prompt(part)) == part


@pytest.mark.parametrize("prompt, fragment", [
    ("a purple dog", "unknown word 'dog'"),
    ("a red blue circle", "two colours"),
    ("a circle square", "two shapes"),
    ("two red circles at the top", "cannot share the cell"),
    ("a red circle at the top left and a blue square at the top left", "same cell"),
    ("a red circle on a red background", "invisible"),
    ("a circle, a square, a star and a ring", "at most 3"),
    ("a circle at the top bottom", "both top and bottom"),
    ("a circle on a blue background on a green background", "two backgrounds"),
    ("red triangles", "how many"),
    ("a red circle #3", "unexpected characters"),
    ("a gray circle", "background colour only"),
])
def test_unknown_words_and_contradictions_are_one_line_errors_with_the_vocabulary(prompt, fragment):
    with pytest.raises(InputError) as info:
        scenes.parse_prompt(prompt)
    message = str(info.value)
    assert fragment in message and "\n" not in message
    assert all(word in message for word in scenes.VOCABULARY)


def test_the_seed_draws_what_the_prompt_leaves_out():
    spec = scenes.parse_prompt("a red circle")
    a, b = scenes.complete(spec, 1), scenes.complete(spec, 2)
    for scene in (a, b):
        assert scenes.is_complete(scene) and len(scene["objects"]) == 1
        assert scene["objects"][0]["colour"] == "red" and scene["objects"][0]["shape"] == "circle"
    drawn = [scenes.complete(spec, s) for s in range(60)]
    assert len({d["objects"][0]["position"] for d in drawn}) >= 6
    assert len({d["background"] for d in drawn}) >= 6 and all(d["background"] != "red" for d in drawn)
    # named positions stay, the others take free cells
    two = scenes.complete(scenes.parse_prompt("a star at the center and a ring"), 3)
    assert two["objects"][0]["position"] == "center" and two["objects"][1]["position"] != "center"


def test_rendering_is_deterministic_and_partial_specs_render_like_their_completion():
    spec = scenes.parse_prompt("a small green star and a yellow square on a noisy background")
    image = scenes.render(spec, 7)
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    assert torch.equal(image, scenes.render(spec, 7))
    assert torch.equal(image, scenes.render(scenes.complete(spec, 7), 7))
    assert not torch.equal(image, scenes.render(spec, 8))
    batch = scenes.render_batch([spec, spec], [7, 8])
    assert torch.equal(batch[0], image) and torch.equal(batch[1], scenes.render(spec, 8))
    with pytest.raises(InputError, match="one seed per scene"):
        scenes.render_batch([spec], [1, 2])


def test_layout_keeps_names_true_and_overlaps_partial():
    gen = torch.Generator().manual_seed(3)
    cell = scenes.IMAGE_SIZE / 3
    overlapping, pairs, close = 0, 0, 0
    for scene in scenes.sample_attributes(gen, 300):
        lay = scenes.layout(scene, 5)
        for obj, placed in zip(scene["objects"], lay["objects"], strict=True):
            lo, hi = scenes.SIZE_RANGES[obj["size"]]
            assert lo <= placed["radius"] <= hi
            row, col = divmod(scenes.POSITIONS.index(obj["position"]), 3)
            assert col * cell < placed["x"] < (col + 1) * cell and row * cell < placed["y"] < (row + 1) * cell
            assert placed["extent"] <= placed["x"] <= scenes.IMAGE_SIZE - placed["extent"]
        for i, a in enumerate(lay["objects"]):
            for b in lay["objects"][i + 1:]:
                distance = math.hypot(a["x"] - b["x"], a["y"] - b["y"])
                assert distance >= 0.5 * (a["extent"] + b["extent"])  # overlaps stay partial
                pairs += 1
                close += distance < 0.75 * (a["extent"] + b["extent"])
                overlapping += distance < a["extent"] + b["extent"]
    assert overlapping >= 10  # bounding boxes do overlap in some scenes
    assert close <= 0.05 * pairs  # the 0.75 separation holds but in crowded scenes (large objects in neighbouring cells)


def test_pixels_show_colour_and_backgrounds_differ_in_kind():
    for seed in range(20):
        scene = scenes.complete({"objects": [{"shape": "square", "size": "large"}], "background": "gray"}, seed)
        obj, placed = scene["objects"][0], scenes.layout(scene, seed)["objects"][0]
        image = scenes.render(scene, seed)
        centre = image[:, int(placed["y"]), int(placed["x"])]
        assert (centre - torch.tensor(scenes.COLOURS_RGB[obj["colour"]])).abs().max() < 0.05
        corner = image[:, 0, 0] if placed["x"] > 12 or placed["y"] > 12 else image[:, -1, -1]
        assert (corner - 0.5).abs().max() < 0.05
    spread = {}
    for kind in ("blue", "gradient", "striped", "checked", "noisy"):
        image = scenes.render({"objects": [{"size": "small", "position": "center"}], "background": kind}, 4)
        border = torch.cat([image[:, :8].flatten(1), image[:, -8:].flatten(1)], dim=1)
        spread[kind] = float(border.std(dim=1).max())
    assert spread["blue"] < 0.01 and all(spread[k] > 0.03 for k in ("gradient", "striped", "checked", "noisy"))


def test_edges_are_anti_aliased():
    image = scenes.render({"objects": [{"shape": "circle", "colour": "white", "size": "large",
                                        "position": "center"}], "background": "black"}, 0)
    partial = ((image[0] > 0.1) & (image[0] < 0.85)).sum()
    assert partial >= 12
