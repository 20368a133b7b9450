"""Training the embedded model: tokenizer, 48x compression, pickle-free checkpoints, a tiny run of every stage that
ends in a standard SD folder, and resume after an interruption."""

import json
import shutil

import pytest
import torch

from meg_common.errors import InputError
from meg_phy import scenes
from meg_phy.training import components, data, probes, trainer
from meg_phy.training.checkpoint import load_checkpoint, save_checkpoint
from meg_phy.training.trainer import TrainConfig, train

STEPS = 6


def tiny_config(out, **changes) -> TrainConfig:
    config = TrainConfig(out=out, images=24, steps=STEPS, evaluator_batch=8, vae_batch=4, unet_batch=8,
                              unet_warmup=1, eval_prompts=2, eval_steps=2, eval_every_minutes=1e9,
                              target_accuracy=None, tune_pool=8, quality_images=8, reader_images=8, log_every=1,
                              threads=None, device="cpu", evaluator_minutes=1e6, vae_minutes=1e6,
                              evaluator_tune_minutes=1e6, unet_minutes=1e6)
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def test_tokenizer_gives_one_token_per_word_and_the_fast_path_agrees(tmp_path):
    tokenizer = components.build_tokenizer()
    ids = [tokenizer(word, add_special_tokens=False).input_ids for word in scenes.VOCABULARY + (",",)]
    assert all(len(i) == 1 for i in ids) and len({i[0] for i in ids}) == len(ids)
    gen = torch.Generator().manual_seed(0)
    full = scenes.sample_attributes(gen, 50)
    prompts = [scenes.make_prompt(s) for s in full] + [data.prompt_for(s, gen) for s in full] + [""]
    slow = tokenizer(prompts, padding="max_length", max_length=components.MAX_TOKENS, truncation=True,
                     return_tensors="pt").input_ids
    assert torch.equal(components.FastTokenizer()(prompts), slow)
    longest = max(len(scenes.make_prompt(s).replace(",", " ,").split()) for s in full)
    assert longest + 2 <= components.MAX_TOKENS
    assert not set(tokenizer("pink dog", add_special_tokens=False).input_ids) & {i[0] for i in ids}


def test_vae_compresses_48x_like_stable_diffusion():
    vae = components.build_vae().eval()
    with torch.no_grad():
        latent = vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mode()
    assert latent.shape == (1, 4, 8, 8)
    config = components.VAE_CONFIG
    factor = 2 ** (len(config["block_out_channels"]) - 1)
    assert factor == 8 and 3 * 64 * 64 / (config["latent_channels"] * (64 // factor) ** 2) == 48


def test_checkpoints_hold_models_and_optimisers_without_pickle(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
    save_checkpoint(tmp_path / "s.safetensors", {"step": 2, "model": model.state_dict(), "opt": opt.state_dict(),
                                                 "done": False, "nested": {"x": [1.5, None, "a"]}})
    state = load_checkpoint(tmp_path / "s.safetensors")
    assert state["step"] == 2 and state["nested"] == {"x": [1.5, None, "a"]}
    twin = torch.nn.Linear(3, 2)
    twin_opt = torch.optim.AdamW(twin.parameters(), lr=1e-3)
    twin.load_state_dict(state["model"])
    twin_opt.load_state_dict(state["opt"])
    x = torch.randn(4, 3)
    for m, o in ((model, opt), (twin, twin_opt)):
        o.zero_grad()
        m(x).sum().backward()
        o.step()
    assert torch.equal(model.weight, twin.weight)
    assert json.loads((tmp_path / "s.json").read_text())["step"] == 2
    assert load_checkpoint(tmp_path / "missing.safetensors") is None
    (tmp_path / "s.safetensors").write_bytes(b"truncated")
    with pytest.raises(InputError, match="delete it"):
        load_checkpoint(tmp_path / "s.safetensors")
    with pytest.raises(TypeError, match="without pickle"):
        save_checkpoint(tmp_path / "t.safetensors", {"bad": object()})


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    return out, train(tiny_config(out))


def test_tiny_run_writes_a_standard_sd_folder_of_the_right_size(smoke_run):
    out, log = smoke_run
    for stage in ("evaluator", "vae", "unet"):
        assert [p[0] for p in log["stages"][stage]["loss"]] == list(range(1, STEPS + 1))
    assert not list((out / "checkpoints").glob("*.pt"))
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(out / "model", safety_checker=None, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vae.config.scaling_factor == pytest.approx(log["stages"]["vae"]["scaling_factor"])
    source = scenes.render(scenes.parse_prompt("a red circle on a blue background"), 0)[None]
    edited = pipe("a blue square", image=source, strength=0.5, num_inference_steps=4,
                  generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert edited.shape == (1, 3, 64, 64) and torch.isfinite(edited).all()
    size = sum(p.stat().st_size for p in (out / "model").rglob("*") if p.is_file())
    assert size <= 30 * 2**20
    from meg_phy.evaluator import load_evaluator

    assert len(load_evaluator(out / "evaluator").read(edited)) == 1


def test_interrupted_unet_stage_resumes_to_the_same_weights(smoke_run, tmp_path, monkeypatch):
    done, _ = smoke_run
    (tmp_path / "checkpoints").mkdir()
    for name in ("vae.safetensors", "latents.safetensors"):
        shutil.copy(done / "checkpoints" / name, tmp_path / "checkpoints" / name)
    shutil.copytree(done / "evaluator", tmp_path / "evaluator")
    config = tiny_config(tmp_path, stages=("unet",), checkpoint_every_minutes=0.0)
    calls = {"n": 0}
    real = trainer.F.mse_loss

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer.F, "mse_loss", failing)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    monkeypatch.setattr(trainer.F, "mse_loss", real)
    assert load_checkpoint(tmp_path / "checkpoints" / "unet.safetensors")["step"] == 3
    log = train(config)
    assert [p[0] for p in log["stages"]["unet"]["loss"]] == list(range(1, STEPS + 1))
    resumed = load_checkpoint(tmp_path / "checkpoints" / "unet.safetensors")
    straight = load_checkpoint(done / "checkpoints" / "unet.safetensors")
    assert resumed["step"] == straight["step"] == STEPS
    for key in ("ema_unet", "text_encoder"):
        for name, value in straight[key].items():
            torch.testing.assert_close(resumed[key][name], value, rtol=1e-5, atol=1e-6)


def test_the_grounded_recipe_trains_and_its_probe_reads_the_attention(smoke_run, tmp_path):
    """`--recipe grounded`: the UNet stage runs with the token loss and high-noise timesteps (the loss differs
    from the stock run's on the same batches), and the go/no-go probe reads attention shares in [0, 1]."""
    done, stock_log = smoke_run
    (tmp_path / "checkpoints").mkdir()
    for name in ("vae.safetensors", "latents.safetensors"):
        shutil.copy(done / "checkpoints" / name, tmp_path / "checkpoints" / name)
    shutil.copytree(done / "evaluator", tmp_path / "evaluator")
    log = train(tiny_config(tmp_path, stages=("unet",), **trainer.RECIPES["grounded"]))
    losses = [p[2] for p in log["stages"]["unet"]["loss"]]
    assert len(losses) == STEPS and all(0 < v < 100 for v in losses)
    assert losses != [p[2] for p in stock_log["stages"]["unet"]["loss"]]
    state = load_checkpoint(tmp_path / "checkpoints" / "unet.safetensors")
    tr = trainer._Trainer(tiny_config(tmp_path), tmp_path, log)  # for its loaders of the stages' outputs
    unet, text = components.build_unet(), components.build_text_encoder(len(components.build_tokenizer()))
    unet.load_state_dict(state["ema_unet"])
    text.load_state_dict(state["ema_text"])
    probe = probes.attention_in_objects(unet, text, tr.load_vae(), n=4)
    assert probe["n"] == 4 and 0 < probe["uniform"] < 1 and 0 <= probe["inside"] <= 1
    assert probe["ratio"] == pytest.approx(probe["inside"] / probe["uniform"], rel=1e-2)
    assert type(next(iter(unet.attn_processors.values()))).__name__ != "_Recording"
    positions = probes.x0_positions(unet, text, tr.load_vae(), tr.load_reader(), n=6, ts=(951,))
    counts = positions["t"]["951"]
    assert 0 <= counts["hits"] <= counts["named"] and counts["chance"] <= counts["named"]


def test_unet_stage_needs_a_trained_vae(tmp_path):
    with pytest.raises(InputError, match="stage vae is not finished"):
        train(tiny_config(tmp_path, stages=("unet",)))


def test_train_command_runs_a_stage_and_refuses_bad_budgets(tmp_path, capsys):
    from meg_phy.cli import main

    assert main(["train", "--out", str(tmp_path), "--stage", "evaluator", "--steps", "2", "--threads", "1"]) == 0
    log = json.loads((tmp_path / "train_log.json").read_text())
    assert log["stages"]["evaluator"]["steps"] == 2 and (tmp_path / "evaluator" / "config.json").exists()
    assert main(["train", "--out", str(tmp_path), "--minutes", "-1"]) == 2
    assert main(["train", "--out", str(tmp_path), "--target-accuracy", "1.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("meg-phy: error: --target-accuracy 1.5") and "Traceback" not in "".join(err)


def test_scaled_budgets_keep_the_stage_proportions():
    config = TrainConfig(out="x")
    trainer.scale_budgets(config, 70)
    assert config.unet_minutes == pytest.approx(35) and config.evaluator_minutes == pytest.approx(5)


def test_a_raised_budget_continues_a_finished_stage_and_makes_later_stages_stale(smoke_run, tmp_path):
    """The VAE ended on its time budget; rerun with a larger one, it continues from its checkpoint, and the
    stages built on its output (reader tuning, latents, UNet) are removed so they are redone."""
    done, _ = smoke_run
    shutil.copytree(done / "checkpoints", tmp_path / "checkpoints")
    ckpt = tmp_path / "checkpoints" / "vae.safetensors"
    state = load_checkpoint(ckpt)
    state.update(ended_by="budget", elapsed_s=0.0)  # as if it had stopped on a (tiny) time budget
    save_checkpoint(ckpt, state)
    steps = state["step"]
    train(tiny_config(tmp_path, stages=("vae",), vae_minutes=0.01, steps=None))  # 0.6 s more
    again = load_checkpoint(ckpt)
    assert again["done"] and again["step"] > steps and again["ended_by"] == "budget"
    names = {p.name for p in (tmp_path / "checkpoints").iterdir()}
    assert "evaluator.safetensors" in names
    assert not names & {"evaluator_tune.safetensors", "latents.safetensors", "unet.safetensors"}
    assert trainer.stale_after("vae") == ["evaluator_tune", "latents", "unet", "export"]
    assert trainer.stale_after("evaluator_tune") == ["export"]
    # the same budget again: nothing to continue
    train(tiny_config(tmp_path, stages=("vae",), vae_minutes=0.01, steps=None))
    assert load_checkpoint(ckpt)["step"] == again["step"]


def test_the_shipped_reader_meets_the_clean_bar_first_then_reads_reconstructions_best(smoke_run):
    pick = trainer.pick_reader
    tuned_worse_clean = {"evaluator_tune": {"clean_min": 0.9595, "recon_prompt_accuracy": 0.49},
                         "evaluator": {"clean_min": 0.9755, "recon_prompt_accuracy": 0.45}}
    assert pick(tuned_worse_clean) == "evaluator"  # the measured case: tuning cost the clean bar
    both_good = {"evaluator_tune": {"clean_min": 0.98, "recon_prompt_accuracy": 0.9},
                 "evaluator": {"clean_min": 0.99, "recon_prompt_accuracy": 0.8}}
    assert pick(both_good) == "evaluator_tune"
    neither = {"evaluator_tune": {"clean_min": 0.5, "recon_prompt_accuracy": 0.9},
               "evaluator": {"clean_min": 0.6, "recon_prompt_accuracy": 0.1}}
    assert pick(neither) == "evaluator"
    _, log = smoke_run  # the export records which reader it shipped and both readers' numbers
    reader = log["stages"]["export"]["reader"]
    assert reader["stage"] in ("evaluator", "evaluator_tune") and set(reader) >= {"evaluator", "evaluator_tune"}


def test_a_recipe_probe_folder_trains_latents_with_the_shipped_vae(tmp_path):
    """scripts/seed_recipe_probe.py: the shipped VAE becomes a finished `vae` stage, so `latents` (and then a
    recipe's `unet`) run on it; a second seeding of the same folder is refused with a one-line error."""
    import subprocess
    import sys
    from pathlib import Path

    from diffusers import AutoencoderKL

    from meg_phy.models import DEFAULT_MODEL_DIR

    script = Path(__file__).parents[1] / "scripts" / "seed_recipe_probe.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    again = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True)
    assert again.returncode == 2 and again.stderr.startswith("error:") and "Traceback" not in again.stderr
    assert (tmp_path / "evaluator").is_dir()
    tr = trainer._Trainer(tiny_config(tmp_path), tmp_path, {"stages": {}})
    shipped = AutoencoderKL.from_pretrained(DEFAULT_MODEL_DIR / "vae")
    loaded = tr.load_vae()
    assert loaded.config.scaling_factor == pytest.approx(shipped.config.scaling_factor)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), shipped.state_dict().values(), strict=True))
    train(tiny_config(tmp_path, stages=("latents",)))
    assert load_checkpoint(tmp_path / "checkpoints" / "latents.safetensors")["done"]
