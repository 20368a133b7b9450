"""The split LDM on a tiny random SD folder: diffusers' own pipelines as the reference, split at every step."""

import json
import shutil

import pytest
import torch
from tiny_sd import tiny_ldm, tiny_sd_folder

from meg_common.errors import InputError
from meg_phy.ldm import Latent, load_ldm, merge_latents
from meg_phy.tiles import tile_layout

PROMPT = "a red circle"


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def ldm():
    return tiny_ldm()


@pytest.fixture(scope="module")
def pipes():
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    txt = StableDiffusionPipeline.from_pretrained(tiny_sd_folder(), safety_checker=None,
                                                  requires_safety_checker=False, local_files_only=True)
    txt.scheduler = DDIMScheduler.from_config(txt.scheduler.config)
    txt.set_progress_bar_config(disable=True)
    img = StableDiffusionImg2ImgPipeline(**txt.components)
    img.set_progress_bar_config(disable=True)
    return txt, img


def test_txt2img_equals_diffusers_pipeline(ldm, pipes):
    ref = pipes[0](PROMPT, num_inference_steps=8, guidance_scale=7.5, output_type="latent", generator=gen(3)).images
    cond = ldm.encode_prompt(PROMPT, 7.5)
    seed = ldm.denoise(ldm.start(cond, steps=8, generator=gen(3)), cond)
    assert seed.done and seed.step == 8
    assert torch.equal(seed.latents, ref)
    image = ldm.decode(seed)
    ref_image = pipes[0](PROMPT, num_inference_steps=8, guidance_scale=7.5, output_type="pt", generator=gen(3)).images
    assert image.shape == (1, 3, 32, 32)
    assert torch.allclose(image, ref_image, atol=1e-6)


def test_img2img_equals_diffusers_pipeline(ldm, pipes):
    image = torch.rand(1, 3, 32, 32, generator=gen(1))
    ref = pipes[1](PROMPT, image=image, strength=0.6, num_inference_steps=10, guidance_scale=3.0,
                   output_type="latent", generator=gen(4)).images
    cond = ldm.encode_prompt(PROMPT, 3.0)
    seed = ldm.start(cond, image=image, strength=0.6, steps=10, generator=gen(4))
    assert seed.total == 6 and seed.begin_index == 4 and seed.strength == 0.6
    assert torch.equal(ldm.denoise(seed, cond).latents, ref)


def test_split_at_every_step_equals_unsplit_run(ldm):
    steps = 12
    cond = ldm.encode_prompt(PROMPT, 7.5)
    first = ldm.start(cond, steps=steps, generator=gen(7))
    whole = ldm.denoise(first, cond).latents
    for s in range(steps + 1):
        es = ldm.denoise(first, cond, until=s)
        # the seed crosses to the other machine as plain data
        ue_seed = Latent.from_dict(json.loads(json.dumps(es.to_dict())))
        ue = ldm.denoise(ue_seed, cond)
        assert (ue.latents - whole).abs().max().item() <= 1e-5, f"split at {s}"


def test_three_stage_chain_equals_unsplit_img2img(ldm):
    cond = ldm.encode_prompt(PROMPT, 5.0)
    image = torch.rand(1, 3, 32, 32, generator=gen(2))
    first = ldm.start(cond, image=image, strength=0.8, steps=10, generator=gen(5))
    whole = ldm.denoise(first, cond).latents
    chain = ldm.denoise(ldm.denoise(ldm.denoise(first, cond, until=3), cond, until=5), cond)
    assert torch.equal(chain.latents, whole)


def test_dpm_matches_diffusers_pipeline(pipes):
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    ldm = tiny_ldm("dpm")
    pipe = StableDiffusionPipeline(**{**pipes[0].components,
                                      "scheduler": DPMSolverMultistepScheduler.from_config(ldm.scheduler_config)})
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(PROMPT, num_inference_steps=6, guidance_scale=7.5, output_type="latent", generator=gen(9)).images
    cond = ldm.encode_prompt(PROMPT, 7.5)
    assert torch.equal(ldm.denoise(ldm.start(cond, steps=6, generator=gen(9)), cond).latents, ref)


def test_no_guidance_uses_one_unet_batch(ldm):
    cond = ldm.encode_prompt(PROMPT, 1.0)
    assert not cond.uses_guidance and cond.unet_embeds(2).shape[0] == 2
    guided = ldm.encode_prompt(PROMPT, 7.5)
    assert guided.unet_embeds(2).shape[0] == 4
    a = ldm.denoise(ldm.start(cond, steps=4, generator=gen(0)), cond).latents
    b = ldm.denoise(ldm.start(guided, steps=4, generator=gen(0)), guided).latents
    assert not torch.allclose(a, b)


def test_tiles_denoise_independently_and_merge(ldm):
    cond = ldm.encode_prompt(PROMPT, 7.5)
    first = ldm.start(cond, steps=6, generator=gen(3))
    layout = tile_layout(8, 8, 4, overlap=2, multiple=ldm.unet_multiple)
    tiles = [ldm.denoise(first, cond, until=3, region=box) for box in layout.boxes]
    assert all(t.latents.shape[-2:] == (box[2], box[3]) and t.region == box for t, box in zip(tiles, layout.boxes, strict=True))
    merged = merge_latents(tiles, layout)
    assert merged.latents.shape == first.latents.shape and merged.step == 3 and merged.region is None
    final = ldm.denoise(merged, cond)
    assert final.done and torch.isfinite(final.latents).all()
    # a single tile covering everything is the whole run
    one = tile_layout(8, 8, 1)
    whole = ldm.denoise(first, cond, until=3)
    assert torch.equal(merge_latents([ldm.denoise(first, cond, until=3, region=one.boxes[0])], one).latents,
                       whole.latents)


def test_seed_dict_round_trip_is_exact(ldm):
    cond = ldm.encode_prompt(PROMPT, 7.5)
    seed = ldm.denoise(ldm.start(cond, steps=5, generator=gen(0)), cond, until=2)
    back = Latent.from_dict(json.loads(json.dumps(seed.to_dict())))
    assert torch.equal(back.latents, seed.latents) and torch.equal(back.timesteps, seed.timesteps)
    assert (back.step, back.prompt, back.guidance, back.scheduler) == (2, PROMPT, 7.5, "ddim")
    assert back.timestep == float(seed.timesteps[2])
    with pytest.raises(InputError):
        Latent.from_dict({"latents": 1})


def test_bad_arguments_are_input_errors(ldm):
    cond = ldm.encode_prompt(PROMPT)
    seed = ldm.start(cond, steps=4, generator=gen(0))
    with pytest.raises(InputError, match="until"):
        ldm.denoise(seed, cond, until=9)
    with pytest.raises(InputError, match="strength"):
        ldm.start(cond, image=torch.rand(1, 3, 32, 32), strength=0.1, steps=4)
    with pytest.raises(InputError, match="multiples"):
        ldm.start(cond, image=torch.rand(1, 3, 30, 30), strength=0.5, steps=4)
    with pytest.raises(InputError, match="multiples"):
        ldm.denoise(seed, cond, region=(0, 0, 3, 8))
    with pytest.raises(InputError, match="does not fit"):
        ldm.denoise(seed, cond, region=(4, 0, 8, 8))
    with pytest.raises(InputError, match="scheduler"):
        load_ldm(tiny_sd_folder(), scheduler="pndm")


def test_load_errors_name_what_is_missing(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_ldm(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd_folder(), broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(InputError, match="lacks vae") as info:
        load_ldm(broken)
    assert "\n" not in str(info.value)
    shutil.copytree(tiny_sd_folder() / "vae", broken / "vae")
    (broken / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not weights")
    with pytest.raises(InputError, match="cannot load unet"):
        load_ldm(broken)


def test_default_model_missing_or_loadable():
    from meg_phy.models import DEFAULT_MODEL_DIR

    if not (DEFAULT_MODEL_DIR / "model_index.json").exists():
        with pytest.raises(InputError, match="default model"):
            load_ldm(None)
    else:
        ldm = load_ldm(None, device="cpu")
        assert ldm.latent_channels * ldm.latent_size[0] * ldm.latent_size[1] * 12 <= 3 * ldm.resolution[0] ** 2


def test_batch_of_prompts_equals_one_by_one_under_the_same_noise(ldm):
    prompts = ["a red circle", "a blue square", "a"]
    cond = ldm.encode_prompt(prompts, 7.5)
    batch = ldm.start(cond, steps=5, generator=gen(0))
    assert batch.latents.shape[0] == 3
    out = ldm.denoise(batch, cond).latents
    for i, p in enumerate(prompts):
        single = ldm.encode_prompt(p, 7.5)
        one = ldm.denoise(batch.replace(latents=batch.latents[i:i + 1]), single).latents
        assert torch.allclose(one, out[i:i + 1], atol=1e-4)  # batched kernels round differently
    with pytest.raises(InputError, match="prompt embeddings for 2 latents"):
        ldm.denoise(batch.replace(latents=batch.latents[:2]), cond)


def test_default_model_splits_exactly_at_every_step():
    from meg_phy.models import DEFAULT_MODEL_DIR

    if not (DEFAULT_MODEL_DIR / "model_index.json").exists():
        pytest.skip("the embedded default model is not committed yet")
    ldm = load_ldm(None, device="cpu")
    cond = ldm.encode_prompt("a small red circle at the top on a black background", ldm.default_guidance)
    for image, strength in ((None, 1.0), (torch.rand(1, 3, *ldm.resolution, generator=gen(1)), 0.6)):
        first = ldm.start(cond, image=image, strength=strength, steps=20, generator=gen(0))
        whole = ldm.denoise(first, cond).latents
        for s in range(first.total + 1):
            ue = ldm.denoise(Latent.from_dict(ldm.denoise(first, cond, until=s).to_dict()), cond)
            assert (ue.latents - whole).abs().max().item() <= 1e-5, (strength, s)
