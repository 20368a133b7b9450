"""The committed attribute evaluator: accuracy on held-out clean renders, any input size, clear errors."""

import pytest
import torch
import torch.nn.functional as F

from meg_common.errors import InputError
from meg_phy.evaluator import load_evaluator
from meg_phy.scenes import ATTRIBUTES, make_prompt, render_batch
from meg_phy.training.data import held_out_scenes


@pytest.fixture(scope="module")
def evaluator():
    return load_evaluator()


@pytest.fixture(scope="module")
def held_out():
    attrs, seeds = held_out_scenes(300, offset=123_456)
    return attrs, render_batch(attrs, seeds)


def test_at_least_98_percent_per_attribute_on_held_out_clean_images(evaluator, held_out):
    attrs, images = held_out
    readings = evaluator.read(images)
    for name in ATTRIBUTES:
        accuracy = sum(r[name] == a[name] for r, a in zip(readings, attrs, strict=True)) / len(attrs)
        assert accuracy >= 0.98, (name, accuracy)


def test_reads_images_of_any_size(evaluator, held_out):
    attrs, images = held_out
    small = evaluator.read(images[:60])
    large = evaluator.read(F.interpolate(images[:60], scale_factor=3, mode="nearest"))
    assert sum(a == b for a, b in zip(small, large, strict=True)) >= 57


def test_prompt_match_checks_every_named_attribute(evaluator, held_out):
    attrs, images = held_out
    right = [make_prompt(a) for a in attrs[:40]]
    assert sum(evaluator.prompt_match(images[:40], right)) >= 39
    wrong_colour = [make_prompt(dict(a, colour=next(c for c in ATTRIBUTES["colour"] if c != a["colour"])))
                    for a in attrs[:40]]
    assert sum(evaluator.prompt_match(images[:40], wrong_colour)) <= 1
    partial = [f"a {a['shape']}" for a in attrs[:40]]  # only the named attribute is checked
    assert sum(evaluator.prompt_match(images[:40], partial)) >= 39
    with pytest.raises(InputError, match="prompts"):
        evaluator.prompt_match(images[:3], right[:2])


def test_bad_input_and_missing_or_broken_folders_raise_input_error(evaluator, tmp_path):
    with pytest.raises(InputError, match="shape"):
        evaluator.read(torch.zeros(2, 1, 32, 32))
    with pytest.raises(InputError, match="needs config.json"):
        load_evaluator(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="cannot load"):
        load_evaluator(tmp_path)
