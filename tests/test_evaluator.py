"""The scene reader: prompt satisfaction and fidelity rules, feature distance, storage, and the embedded
reader's accuracy on 2000 held-out clean renders."""

import pytest
import torch

from meg_common.errors import InputError
from meg_phy import evaluator as ev
from meg_phy import scenes

READING = {"objects": [{"shape": "star", "colour": "green", "size": "small", "position": "top left"},
                       {"shape": "square", "colour": "yellow", "size": "large", "position": "center"}],
           "background": "striped"}


@pytest.mark.parametrize("prompt, ok", [
    ("a small green star at the top left and a yellow square", True),
    ("a yellow square and a green star", True),  # order-free
    ("two shapes on a striped background", True),
    ("a striped background", True),
    ("a green star", False),  # the image has two objects
    ("a green star and a yellow square on a blue background", False),
    ("a green star at the top right and a yellow square", False),
    ("a large green star and a yellow square", False),
    ("two yellow squares", False),
])
def test_satisfies_needs_everything_the_prompt_says(prompt, ok):
    assert ev.satisfies(READING, scenes.parse_prompt(prompt)) is ok


def test_agreement_is_one_for_the_same_scene_and_counts_cells():
    assert ev.agreement(READING, READING) == 1.0
    moved = {"objects": [dict(READING["objects"][0], position="top"), READING["objects"][1]],
             "background": "striped"}
    assert ev.agreement(READING, moved) == pytest.approx((1 + 0 + 0 + 1) / 4)  # bg, two lone cells, center
    recoloured = {"objects": [READING["objects"][0], dict(READING["objects"][1], colour="red")],
                  "background": "gray"}
    assert ev.agreement(READING, recoloured) == pytest.approx((0 + 1 + 2 / 3) / 3)


@pytest.fixture(scope="module")
def untrained():
    torch.manual_seed(0)
    return ev.Evaluator(ev.SceneReader())


def test_fidelity_and_feature_distance_of_an_image_with_itself(untrained):
    specs = scenes.sample_attributes(torch.Generator().manual_seed(1), 4)
    images = scenes.render_batch(specs, [1, 2, 3, 4])
    assert torch.equal(untrained.fidelity(images, images), torch.ones(4))
    d_same = untrained.feature_distance(images, images)
    d_other = untrained.feature_distance(images, images.flip(0))
    assert torch.allclose(d_same, torch.zeros(4)) and (d_other > 1e-3).all()
    assert untrained.feature_distance(images, images + 0.01).max() < d_other.min()
    readings = untrained.read(torch.nn.functional.interpolate(images, size=32))  # any size is resized
    assert len(readings) == 4 and all(set(r) == {"objects", "background"} for r in readings)
    with pytest.raises(InputError, match="one per image"):
        untrained.prompt_match(images, ["a red circle"])
    with pytest.raises(InputError, match=r"\(B, 3, H, W\)"):
        untrained.read(images[0])


def test_save_and_load_round_trip(tmp_path, untrained):
    ev.save_evaluator(untrained.model, tmp_path)
    loaded = ev.load_evaluator(tmp_path)
    x = scenes.render_batch(scenes.sample_attributes(torch.Generator().manual_seed(2), 3), [5, 6, 7])
    for key, value in untrained.logits(x).items():
        torch.testing.assert_close(loaded.logits(x)[key], value)
    (tmp_path / ev.WEIGHTS_NAME).write_bytes(b"broken")
    with pytest.raises(InputError, match="cannot load"):
        ev.load_evaluator(tmp_path)
    with pytest.raises(InputError, match="needs config.json"):
        ev.load_evaluator(tmp_path / "missing")


def test_embedded_reader_reads_2000_held_out_renders():
    """Every attribute read right on at least 0.94 of 2000 held-out renders. The shipping bar is 0.97: the shipped
    reader reaches it on shape, colour, size, position and background (0.976-0.9995) but not on the object
    count (0.948: heavily overlapping pairs read as one object; docs/embedded-model.md)."""
    from meg_phy.training.data import reader_clean_accuracy

    result = reader_clean_accuracy(ev.load_evaluator(), 2000, offset=77_000)
    assert result["min"] >= 0.94, result
    assert min(v for k, v in result["per_attribute"].items() if k != "count") >= 0.97, result
