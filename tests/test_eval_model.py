"""The committed default model: a small standard SD folder at Stable Diffusion's 48x compression that loads
offline through diffusers' own pipelines, follows held-out partial prompts and edits, and leaves to the seed
what the prompt does not say."""

import json

import pytest
import torch

from meg_phy import scenes
from meg_phy.evaluator import load_evaluator
from meg_phy.models import DEFAULT_MODEL_DIR
from meg_phy.training.data import held_out_prompts
from meg_phy.training.evaluation import attribute_hits, edit_tasks, load_pipelines

N = 16
# Floors for these N = 16 tasks, set from what the shipped model does, with margin. It misses the model's quality bars
# (0.9 text-to-image, 0.85 edits): eval-model --n 200 measured 0.185 [0.137, 0.245] and 0.120 [0.082, 0.172]
# (docs/embedded-model.md). Measured on these tasks: attributes 0.74 prompted / 0.22 without a prompt,
# 5 of 16 prompts fully satisfied; edits: attributes 0.74, fidelity to the input 0.55 (0.29 from text alone).
T2I_ATTRIBUTE_FLOOR = 0.6
T2I_MATCH_FLOOR = 2
EDIT_ATTRIBUTE_FLOOR = 0.6


@pytest.fixture(scope="module")
def pipelines():
    return load_pipelines(None)


def test_committed_folder_is_a_small_standard_sd_folder_at_48x_compression():
    from diffusers import StableDiffusionImg2ImgPipeline

    index = json.loads((DEFAULT_MODEL_DIR / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"] and index["vae"] == ["diffusers", "AutoencoderKL"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    total = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file())
    assert total <= 30 * 2**20
    vae = json.loads((DEFAULT_MODEL_DIR / "vae" / "config.json").read_text())
    unet = json.loads((DEFAULT_MODEL_DIR / "unet" / "config.json").read_text())
    factor = 2 ** (len(vae["block_out_channels"]) - 1)
    assert factor == 8 and vae["latent_channels"] == 4 and vae["sample_size"] == 64
    assert unet["sample_size"] * factor == vae["sample_size"]
    assert 3 * vae["sample_size"] ** 2 / (vae["latent_channels"] * unet["sample_size"] ** 2) == 48
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(DEFAULT_MODEL_DIR, safety_checker=None,
                                                          local_files_only=True)
    assert pipe.unet.config.in_channels == 4


def test_text_to_image_follows_held_out_partial_prompts(pipelines):
    """The prompt steers the image: generations satisfy far more of what their prompts name than the same
    noise generated without a prompt does (thresholds from eval-model --n 200, docs/embedded-model.md)."""
    text, _ = pipelines
    prompts = held_out_prompts(N, offset=31_337)
    reader = load_evaluator()
    specs = [scenes.parse_prompt(p) for p in prompts]

    def generate(texts):
        gens = [torch.Generator().manual_seed(100 + i) for i in range(N)]
        return text(texts, num_inference_steps=20, guidance_scale=4.0, generator=gens, output_type="pt").images

    def attribute_share(images):
        hits = [attribute_hits(r, s) for r, s in zip(reader.read(images), specs, strict=True)]
        return sum(h for h, _ in hits) / sum(t for _, t in hits)

    images = generate(prompts)
    assert images.shape == (N, 3, 64, 64)
    prompted, unprompted = attribute_share(images), attribute_share(generate([""] * N))
    assert prompted >= T2I_ATTRIBUTE_FLOOR and prompted - unprompted >= 0.2
    assert sum(reader.prompt_match(images, prompts)) >= T2I_MATCH_FLOOR


def test_image_to_image_edits_change_one_objects_colour_or_shape(pipelines):
    """Edits keep the input's layout (fidelity to it well above a text-only generation of the same prompt)
    and satisfy most of what the edited description names."""
    text, edit = pipelines
    tasks = edit_tasks(N)
    sources = scenes.render_batch([t[0] for t in tasks], [t[2] for t in tasks])
    prompts = [scenes.make_prompt(t[1]) for t in tasks]

    def gens():
        return [torch.Generator().manual_seed(200 + i) for i in range(N)]

    edited = edit(prompts, image=sources, strength=0.7, num_inference_steps=20, guidance_scale=4.0,
                  generator=gens(), output_type="pt").images
    fresh = text(prompts, num_inference_steps=20, guidance_scale=4.0, generator=gens(), output_type="pt").images
    reader = load_evaluator()
    hits = [attribute_hits(r, t[1]) for r, t in zip(reader.read(edited), tasks, strict=True)]
    assert sum(h for h, _ in hits) / sum(t for _, t in hits) >= EDIT_ATTRIBUTE_FLOOR
    assert float(reader.fidelity(edited, sources).mean()) >= float(reader.fidelity(fresh, sources).mean()) + 0.15


def test_the_seed_fixes_what_the_prompt_leaves_open(pipelines):
    """Two seeds of "a red circle" differ far more than two decodes of one latent; fidelity 1 with itself."""
    text, _ = pipelines
    prompts = ["a red circle", "a blue star", "a green square", "a yellow ring"]
    run = [text(prompts, num_inference_steps=20, guidance_scale=4.0, output_type="pt",
                generator=[torch.Generator().manual_seed(s * 10 + i) for i in range(4)]).images for s in (1, 2)]
    mse = ((run[0] - run[1]) ** 2).mean(dim=(1, 2, 3))
    psnr_between = float((10 * torch.log10(1 / mse)).mean())
    vae = text.vae
    with torch.no_grad():
        rec = ((vae.decode(vae.encode(run[0] * 2 - 1).latent_dist.mode()).sample + 1) / 2).clamp(0, 1)
    psnr_rec = float((10 * torch.log10(1 / ((rec - run[0]) ** 2).mean(dim=(1, 2, 3)))).mean())
    assert psnr_between < psnr_rec - 8
    reader = load_evaluator()
    assert reader.fidelity(run[0], run[0]).tolist() == [1.0] * 4
    assert float(reader.fidelity(run[0], run[1]).mean()) < 0.9


def test_eval_model_command_writes_json_and_grid(tmp_path):
    from meg_phy.cli import main

    assert main(["eval-model", "--n", "4", "--steps", "10", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    for key in ("prompt_accuracy", "attribute_accuracy", "n", "edit_accuracy", "recon_psnr_db",
                "recon_prompt_accuracy", "seeds", "steps", "guidance", "versions", "intervals"):
        assert key in result
    assert result["n"] == 4 and 0 <= result["prompt_accuracy"] <= 1
    share = result["intervals"]["prompt_accuracy"]
    assert share["n"] == 4 and share["value"] == result["prompt_accuracy"]
    assert share["ci_low"] <= share["value"] <= share["ci_high"] and share["ci_high"] - share["ci_low"] > 0.3
    assert (tmp_path / "samples.png").stat().st_size > 5000
    assert main(["eval-model", "--n", "4", "--strength", "1.5", "--out", str(tmp_path)]) == 2
    assert main(["eval-model", "--n", "4", "--model", str(tmp_path), "--out", str(tmp_path)]) == 2


def test_eval_model_rates_carry_the_wilson_interval():
    from meg_phy.training.evaluation import rate

    # 0 of 10: Wilson's upper bound is z^2 / (n + z^2) = 3.8415 / 13.8415 (closed form)
    assert rate(0, 10)["ci_low"] == 0.0 and abs(rate(0, 10)["ci_high"] - 0.2775) < 1e-4
    # 50 of 100: 0.5 +- z sqrt(0.25 n + z^2 / 4) / (n + z^2) -> [0.4038, 0.5962]
    got = rate(50, 100)
    assert (got["ci_low"], got["ci_high"]) == (0.4038, 0.5962) and got["k"] == 50


def test_eval_model_reports_the_ceiling_and_the_reader_on_clean_renders():
    """Issue 26's gate G0 is measured by eval-model: the reader on the eval prompts' own scenes, clean and
    through the VAE (the ceiling no UNet can pass), with Wilson intervals; the reader per attribute on clean
    renders; prompt accuracy per object count with intervals. Shipped model: the reader reads clean renders of
    the eval prompts well (0.93 at n = 200) and loses a share of them to the VAE (0.755)."""
    from meg_phy.training.evaluation import evaluate_model

    result = evaluate_model(n=48, steps=4, reader_images=300)
    clean, ceiling = result["clean_prompt_accuracy"], result["ceiling_prompt_accuracy"]
    assert clean >= 0.8 and ceiling <= clean and ceiling >= 0.5
    share = result["intervals"]["ceiling_prompt_accuracy"]
    assert share["n"] == 48 and share["ci_low"] <= ceiling <= share["ci_high"]
    reader = result["reader_clean"]
    assert reader["n"] == 300 and set(reader["per_attribute"]) == {"shape", "colour", "size", "position",
                                                                    "background", "count"}
    assert reader["min"] == min(reader["per_attribute"].values()) and reader["min"] > 0.85
    by_count = result["intervals"]["prompt_accuracy_by_objects"]
    assert sum(v["n"] for v in by_count.values()) == 48
    assert all(v["value"] == pytest.approx(result["prompt_accuracy_by_objects"][k], abs=1e-4) for k, v in by_count.items())
