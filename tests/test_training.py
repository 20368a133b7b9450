"""Training of the embedded model: tokenizer, a tiny smoke run of every stage, and resume after interruption."""

import shutil

import pytest
import torch

from meg_common.errors import InputError
from meg_phy.scenes import VOCABULARY, make_prompt, sample_attributes
from meg_phy.training import components, trainer
from meg_phy.training.checkpoint import load_checkpoint
from meg_phy.training.trainer import TrainConfig, train

STEPS = 12


def tiny_config(out, **changes) -> TrainConfig:
    config = TrainConfig(out=out, images=48, evaluator_steps=STEPS, evaluator_batch=16, vae_steps=STEPS,
                         vae_batch=8, unet_steps=STEPS, unet_batch=16, unet_warmup=1, eval_prompts=4,
                         eval_every_minutes=1e9, target_accuracy=None, log_every=1, threads=None, device="cpu")
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def test_tokenizer_maps_every_vocabulary_word_to_one_token(tmp_path):
    tokenizer = components.build_tokenizer()
    ids = [tokenizer(word, add_special_tokens=False).input_ids for word in VOCABULARY]
    assert all(len(i) == 1 for i in ids)
    assert len({i[0] for i in ids}) == len(VOCABULARY)
    prompt = make_prompt(sample_attributes(torch.Generator().manual_seed(0), 1)[0])
    encoded = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length).input_ids
    assert len(encoded) == components.MAX_TOKENS
    assert encoded[0] == tokenizer.bos_token_id and encoded[len(prompt.split()) + 1] == tokenizer.eos_token_id
    # words outside the vocabulary never reuse a vocabulary word's token
    unknown = tokenizer("purple dog", add_special_tokens=False).input_ids
    assert not set(unknown) & {i[0] for i in ids}
    tokenizer.save_pretrained(tmp_path)
    from transformers import CLIPTokenizer

    assert CLIPTokenizer.from_pretrained(tmp_path)(prompt).input_ids == tokenizer(prompt).input_ids


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    log = train(tiny_config(out))
    return out, log


def _first_last(points, k=3):
    losses = [p[2] for p in points]
    return sum(losses[:k]) / k, sum(losses[-k:]) / k


def test_smoke_run_learns_and_writes_a_loadable_diffusers_folder(smoke_run):
    out, log = smoke_run
    for stage in ("evaluator", "vae", "unet"):
        points = log["stages"][stage]["loss"]
        assert [p[0] for p in points] == list(range(1, STEPS + 1))
        first, last = _first_last(points)
        assert last < first, (stage, first, last)
    assert (out / "train_log.json").exists() and (out / "curves.png").stat().st_size > 1000
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(out / "model", safety_checker=None, local_files_only=True)
    assert pipe.vae.config.scaling_factor == pytest.approx(log["stages"]["vae"]["scaling_factor"])
    assert pipe.vae.config.scaling_factor != 0.18215  # measured from the data, not SD's constant
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"
    image = pipe("a small red circle at the top on a black background", num_inference_steps=2,
                 generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert image.shape == (1, 3, 32, 32)
    edit = StableDiffusionImg2ImgPipeline.from_pretrained(out / "model", safety_checker=None, local_files_only=True)
    edited = edit("a blue square", image=image, strength=0.5, num_inference_steps=4,
                  generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert edited.shape == (1, 3, 32, 32) and torch.isfinite(edited).all()
    from meg_phy.evaluator import load_evaluator

    assert len(load_evaluator(out / "evaluator").read(image)) == 1


def test_interrupted_unet_stage_resumes_to_the_same_weights(smoke_run, tmp_path, monkeypatch):
    """Kill the UNet stage mid-way, run again: it continues from the checkpoint and ends where an
    uninterrupted run ends (every step draws its data and noise from its own seeded generator)."""
    done, _ = smoke_run
    (tmp_path / "checkpoints").mkdir()
    for name in ("evaluator.safetensors", "vae.safetensors"):
        shutil.copy(done / "checkpoints" / name, tmp_path / "checkpoints" / name)
    shutil.copytree(done / "evaluator", tmp_path / "evaluator")
    config = tiny_config(tmp_path, stages=("unet",), checkpoint_every_minutes=0.0)

    calls = {"n": 0}
    real_mse = trainer.F.mse_loss

    def failing_mse(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return real_mse(*args, **kwargs)

    monkeypatch.setattr(trainer.F, "mse_loss", failing_mse)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    monkeypatch.setattr(trainer.F, "mse_loss", real_mse)
    state = load_checkpoint(tmp_path / "checkpoints" / "unet.safetensors")
    assert state["step"] == 7 and not state.get("done")
    log = train(config)
    assert [p[0] for p in log["stages"]["unet"]["loss"]] == list(range(1, STEPS + 1))
    resumed = load_checkpoint(tmp_path / "checkpoints" / "unet.safetensors")
    straight = load_checkpoint(done / "checkpoints" / "unet.safetensors")
    assert resumed["step"] == straight["step"] == STEPS
    for key in ("ema_unet", "text_encoder"):
        for name, value in straight[key].items():
            torch.testing.assert_close(resumed[key][name], value, rtol=1e-5, atol=1e-6)


def test_unet_stage_needs_a_trained_vae(tmp_path):
    with pytest.raises(InputError, match="VAE is not trained"):
        train(tiny_config(tmp_path, stages=("unet",)))


def test_train_command_rejects_bad_options_and_broken_checkpoints(tmp_path, capsys):
    from meg_phy.cli import main

    assert main(["train", "--out", str(tmp_path), "--minutes", "-1"]) == 2
    assert "--minutes" in capsys.readouterr().err
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "evaluator.safetensors").write_bytes(b"truncated")
    assert main(["train", "--out", str(tmp_path), "--stage", "evaluator", "--steps", "1"]) == 2
    assert "delete it" in capsys.readouterr().err
