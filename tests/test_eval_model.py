"""The committed default model: loads offline through diffusers' own pipelines and follows prompts."""

import json

import pytest
import torch

from meg_phy.evaluator import load_evaluator
from meg_phy.models import DEFAULT_MODEL_DIR
from meg_phy.scenes import make_prompt, render_batch
from meg_phy.training.data import held_out_scenes
from meg_phy.training.evaluation import edit_tasks


@pytest.fixture(scope="module")
def pipelines():
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    text = StableDiffusionPipeline.from_pretrained(DEFAULT_MODEL_DIR, safety_checker=None, local_files_only=True)
    edit = StableDiffusionImg2ImgPipeline.from_pretrained(DEFAULT_MODEL_DIR, safety_checker=None,
                                                          local_files_only=True)
    for pipe in (text, edit):
        pipe.set_progress_bar_config(disable=True)
    return text, edit


def test_committed_folder_is_a_small_standard_sd_folder():
    index = json.loads((DEFAULT_MODEL_DIR / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"] and index["vae"] == ["diffusers", "AutoencoderKL"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    total = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file())
    assert total <= 20 * 2**20
    vae = json.loads((DEFAULT_MODEL_DIR / "vae" / "config.json").read_text())
    assert 3 * 32 * 32 / (vae["latent_channels"] * 8 * 8) >= 12  # compression of pixel values


def test_text_to_image_follows_held_out_prompts(pipelines):
    text, _ = pipelines
    attrs, _ = held_out_scenes(8, offset=31_337)
    prompts = [make_prompt(a) for a in attrs]
    gens = [torch.Generator().manual_seed(100 + i) for i in range(8)]
    images = text(prompts, num_inference_steps=20, guidance_scale=4.0, generator=gens, output_type="pt").images
    assert images.shape == (8, 3, 32, 32)
    assert sum(load_evaluator().prompt_match(images, prompts)) >= 7


def test_image_to_image_edits_change_colour_or_shape(pipelines):
    _, edit = pipelines
    tasks = edit_tasks(8)
    sources = render_batch([t[0] for t in tasks], [t[2] for t in tasks])
    prompts = [make_prompt(t[1]) for t in tasks]
    gens = [torch.Generator().manual_seed(200 + i) for i in range(8)]
    edited = edit(prompts, image=sources, strength=0.7, num_inference_steps=20, guidance_scale=4.0,
                  generator=gens, output_type="pt").images
    assert sum(load_evaluator().prompt_match(edited, prompts)) >= 6


def test_eval_model_command_writes_json_and_grid(tmp_path):
    from meg_phy.cli import main

    assert main(["eval-model", "--n", "4", "--steps", "10", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    for key in ("prompt_accuracy", "attribute_accuracy", "per_attribute", "n", "edit_accuracy", "steps",
                "guidance", "versions"):
        assert key in result
    assert result["n"] == 4 and 0 <= result["prompt_accuracy"] <= 1
    assert (tmp_path / "samples.png").stat().st_size > 5000
    assert main(["eval-model", "--n", "4", "--strength", "1.5", "--out", str(tmp_path)]) == 2
    assert main(["eval-model", "--n", "4", "--model", str(tmp_path), "--out", str(tmp_path)]) == 2
