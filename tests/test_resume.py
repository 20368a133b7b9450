"""Channel-aware resume against its derivation, and against naive resume with an exact (Gaussian-prior) denoiser.

With latents z0 ~ N(0, I) the MMSE noise prediction is known in closed form, eps(x_t) = sqrt(1 - ᾱ_t) x_t,
so a "UNet" that returns it is the best possible model for that data: resume strategies can be compared
without trained weights. The comparison with the embedded model (images, PSNR/SSIM, prompt accuracy) is
the slow test at the end and the table in docs/generation.md.
"""

import copy
import math
from types import SimpleNamespace

import pytest
import torch
from tiny_sd import tiny_ldm

from flowgraphs.experiments import resume_study
from meg_common.errors import InputError
from meg_phy import resume
from meg_phy.codecs import analog_to_seed, seed_to_analog


class GaussianPriorUNet(torch.nn.Module):
    """The exact noise predictor for z0 ~ N(0, I): eps = sqrt(1 - ᾱ_t) x_t."""

    def __init__(self, alphas_cumprod):
        super().__init__()
        self.alphas_cumprod = alphas_cumprod.float()

    def forward(self, x, t, encoder_hidden_states=None):
        return SimpleNamespace(sample=math.sqrt(1 - float(self.alphas_cumprod[int(t)])) * x)


@pytest.fixture(scope="module")
def ldm():
    return tiny_ldm()


@pytest.fixture(scope="module")
def oracle(ldm):
    model = copy.copy(ldm)
    model.unet = GaussianPriorUNet(ldm.alphas_cumprod)
    return model


def test_awgn_noise_variance_follows_the_normalisation():
    """The resume study's link (AnalogLink, AWGN, true N0) reports P / SNR per value (up to float32) and its
    estimates carry that much noise."""
    values = torch.randn(200_000, generator=torch.Generator().manual_seed(0)) * 3 + 1
    power = values.pow(2).mean().item()
    for snr_db in (-10, 0, 20):
        est, var = resume_study.analog_awgn(values, snr_db, torch.Generator().manual_seed(1))
        expected = power / 10 ** (snr_db / 10)
        assert var.shape == values.shape and var[0].item() == pytest.approx(expected, rel=1e-5)
        assert (est - values).var().item() == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("split,var", [(0, 0.5), (6, 0.1), (6, 0.01), (6, 10.0), (12, 1.0), (12, 0.01)])
def test_rescaled_seed_sits_on_the_schedule(ldm, split, var):
    """z' = c z_hat has signal coefficient sqrt(ᾱ(t')) and noise variance 1 - ᾱ(t') (Monte-Carlo, 65k values)."""
    cond = ldm.encode_prompt("a", 1.0)
    seed = ldm.start(cond, steps=12, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    z0 = torch.randn(16, 4, 64, 64, generator=g)
    alpha = resume.seed_alpha_bar(ldm, seed.replace(step=split))
    z_t = math.sqrt(alpha) * z0 + math.sqrt(1 - alpha) * torch.randn(z0.shape, generator=g)
    received = z_t + math.sqrt(var) * torch.randn(z0.shape, generator=g)
    out = resume.channel_aware(ldm, seed.replace(latents=received, step=split), torch.full((10,), var))
    target = alpha / (1 + var)
    t_new = resume.equivalent_timestep(ldm.alphas_cumprod, target)
    grid_gap = float((ldm.alphas_cumprod - target).abs().min())
    assert abs(float(ldm.alphas_cumprod[t_new]) - target) == pytest.approx(grid_gap) and grid_gap < 2e-3
    rescaled = received / math.sqrt(1 + var)  # what channel_aware denoises from when it moves to t'
    coef = float((rescaled * z0).mean() / z0.pow(2).mean())
    resid = rescaled - coef * z0
    assert coef == pytest.approx(math.sqrt(target), abs=0.01)
    assert resid.var().item() == pytest.approx(1 - target, abs=0.01)
    spacing = ldm.num_train_timesteps // 12
    if split < seed.total and t_new - int(seed.timesteps[split]) < spacing / 2:
        # within half a step of the seed's own level: continue as is
        assert out.step == split and torch.equal(out.timesteps, seed.timesteps) and torch.equal(out.latents, received)
        return
    # a new schedule from t' with DDIM's spacing down to 0, from the rescaled latent
    assert torch.allclose(out.latents, rescaled)
    assert out.step == 0 and int(out.timesteps[0]) == t_new and out.total >= 1
    assert bool((out.timesteps[:-1] - out.timesteps[1:] == spacing).all()) and 0 <= int(out.timesteps[-1]) < spacing
    assert t_new >= (int(seed.timesteps[split]) if split < seed.total else 0)


def test_zero_noise_changes_nothing(ldm):
    cond = ldm.encode_prompt("a", 1.0)
    seed = ldm.start(cond, steps=6, generator=torch.Generator().manual_seed(0))
    assert resume.channel_aware(ldm, seed, 0.0) is seed
    assert resume.resume(ldm, seed, 0.3, "naive") is seed
    with pytest.raises(InputError, match="mode"):
        resume.resume(ldm, seed, 0.3, "clever")
    with pytest.raises(InputError, match="noise variance"):
        resume.channel_aware(ldm, seed, -1.0)


@pytest.mark.parametrize("split", [10, 20])
def test_channel_aware_beats_naive_with_an_exact_denoiser(oracle, split):
    """Latent MSE against the noiseless run, SNR -10..20 dB: channel-aware is lower at every SNR."""
    steps = 20
    cond = oracle.encode_prompt("a", 1.0)
    first = oracle.start(cond, steps=steps, generator=torch.Generator().manual_seed(2), batch_size=64)
    seed = oracle.denoise(first, cond, until=split)
    reference = oracle.denoise(seed, cond).latents
    for snr_db in (-10, -5, 0, 5, 10, 20):
        values, side = seed_to_analog(seed)
        est, var = resume_study.analog_awgn(values, snr_db, torch.Generator().manual_seed(snr_db + 50))
        received, latent_var = analog_to_seed(est, var, side)
        mse = {}
        for mode in ("naive", "channel-aware"):
            out = oracle.denoise(resume.resume(oracle, received, latent_var, mode), cond).latents
            mse[mode] = (out - reference).pow(2).mean().item()
        # closed form for this prior: the flow is nearly norm-preserving, so naive keeps all the channel
        # noise (σ²) and channel-aware keeps about (1 - c)² + σ²/(1 + σ²) with c = 1/sqrt(1 + σ²)
        sigma2 = latent_var.mean().item()
        c = 1 / math.sqrt(1 + sigma2)
        assert mse["naive"] == pytest.approx(sigma2, rel=0.15)
        if resume.channel_aware(oracle, received, latent_var) is received:  # below the schedule's resolution
            assert snr_db >= 10 and split < steps and mse["channel-aware"] == mse["naive"]
            continue
        assert mse["channel-aware"] < mse["naive"], (snr_db, mse)
        assert mse["channel-aware"] == pytest.approx((1 - c) ** 2 + sigma2 / (1 + sigma2), rel=0.2, abs=2e-3)


def test_other_schedulers_resume_on_their_grid():
    for name in ("dpm", "euler"):
        ldm = tiny_ldm(name)
        cond = ldm.encode_prompt("a", 1.0)
        seed = ldm.denoise(ldm.start(cond, steps=10, generator=torch.Generator().manual_seed(0)), cond, until=6)
        out = resume.channel_aware(ldm, seed, 1.0)
        assert out.step == 0 and out.begin_index < seed.begin_index + seed.step and out.scheduler_state == {}
        final = ldm.denoise(out, cond)
        assert final.done and torch.isfinite(final.latents).all()


def test_sketch_strength_rises_with_noise(ldm):
    assert resume.sketch_strength(0.0, base=0.5) == 0.5
    levels = [resume.sketch_strength(v, base=0.5) for v in (1e-4, 1e-3, 1e-2, 1e-1, 1.0)]
    assert levels == sorted(levels) and levels[0] >= 0.5 and levels[-1] <= 1.0 and levels[-1] > 0.7
    assert resume.sketch_strength(psnr_db=20, base=0.4) == resume.sketch_strength(0.01, base=0.4)
    # with a model and the sketch, the latent noise is measured through the VAE encoder
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    measured = resume.latent_noise_var(ldm, image, 0.01)
    assert measured > 0
    strength = resume.sketch_strength(0.01, base=0.5, ldm=ldm, image=image)
    alphas = ldm.alphas_cumprod
    t = round(strength * 1000) - 1
    assert float(alphas[t]) == pytest.approx(float(alphas[499]) / (1 + measured), abs=2e-3)
    with pytest.raises(InputError):
        resume.sketch_strength(0.1, base=0.0)


def test_channel_aware_runs_end_to_end_on_random_weights(ldm):
    """The image path works on a random model (quality claims need the trained model: see the slow test)."""
    cond = ldm.encode_prompt("a red circle", 7.5)
    seed = ldm.denoise(ldm.start(cond, steps=10, generator=torch.Generator().manual_seed(0)), cond, until=5)
    values, side = seed_to_analog(seed)
    est, var = resume_study.analog_awgn(values, 0.0, torch.Generator().manual_seed(0))
    received, latent_var = analog_to_seed(est, var, side)
    out = resume.channel_aware(ldm, received, latent_var)
    assert int(out.timesteps[0]) > int(seed.timesteps[5])
    image = ldm.decode(ldm.denoise(out, cond))
    assert image.shape == (1, 3, 32, 32) and bool(torch.isfinite(image).all())


def test_comparison_tables_have_their_fields(ldm):
    rows = resume_study.compare_seed_resume(ldm, ["a red circle", "a"], [0.0, 20.0], split=0.5, steps=6)
    assert [r["snr_db"] for r in rows] == [0.0, 20.0]
    assert rows[0]["latent_noise_var"] > rows[1]["latent_noise_var"] > 0
    for row in rows:
        assert row["naive"]["resume_timestep"] == row["timestep"]
        assert row["channel-aware"]["resume_timestep"] >= row["timestep"]
        assert set(row["naive"]) >= {"psnr_db", "ssim", "prompt_accuracy", "steps_run"}
    sketch = resume_study.compare_sketch_completion(ldm, ["a", "b"], [0.0], sketch_steps=2, steps=6)
    assert sketch[0]["naive"]["strength"] == 0.5 and sketch[0]["channel-aware"]["strength"] >= 0.5


def _default_model_or_skip():
    from meg_phy.models import DEFAULT_MODEL_DIR, EVALUATOR_DIR

    if not (DEFAULT_MODEL_DIR / "model_index.json").exists() or not any(EVALUATOR_DIR.glob("*.safetensors")):
        pytest.skip("needs the embedded default model and evaluator")
    from meg_phy import scenes
    from meg_phy.evaluator import load_evaluator
    from meg_phy.ldm import load_ldm

    prompts = [scenes.make_prompt(a) for a in scenes.sample_attributes(torch.Generator().manual_seed(123), 32)]
    return load_ldm(None, device="cpu"), load_evaluator(), prompts


@pytest.mark.slow
@pytest.mark.parametrize("split", [0.5, 1.0])
def test_channel_aware_beats_naive_on_the_embedded_model(split):
    """The docs table: SNR -10..20 dB, 32 prompts. Where channel-aware moves to a new level it wins in PSNR
    and SSIM; below the schedule's resolution it is the naive run itself; prompt accuracy never drops."""
    ldm, evaluator, prompts = _default_model_or_skip()
    rows = resume_study.compare_seed_resume(ldm, prompts, [-10, -5, 0, 5, 10, 15, 20], split=split, evaluator=evaluator)
    moved = 0
    for row in rows:
        naive, aware = row["naive"], row["channel-aware"]
        assert aware["prompt_accuracy"] >= naive["prompt_accuracy"], row
        if aware["resume_timestep"] == row["timestep"]:
            assert row["snr_db"] >= 10 and aware["psnr_db"] == naive["psnr_db"], row
            continue
        moved += 1
        assert aware["psnr_db"] > naive["psnr_db"] and aware["ssim"] > naive["ssim"], row
    assert moved >= 5


@pytest.mark.slow
def test_sketch_strength_beats_the_base_strength_on_the_embedded_model():
    ldm, evaluator, prompts = _default_model_or_skip()
    rows = resume_study.compare_sketch_completion(ldm, prompts, [-10, 0, 10, 20], evaluator=evaluator)
    for row in rows:
        naive, aware = row["naive"], row["channel-aware"]
        assert aware["psnr_db"] >= naive["psnr_db"] and aware["prompt_accuracy"] >= naive["prompt_accuracy"], row
    # The gain at -10 dB is small and depends on the noise draw: over noise seeds 0-3 (32 prompts each, AWGN
    # through link_models' AnalogLink) +0.06, +0.60, +0.33, -0.18 dB (mean +0.20); the resume study's own
    # AWGN code before drew +0.59, +0.16, +0.82, +0.72 from the same noise distribution.
    assert rows[0]["channel-aware"]["psnr_db"] > rows[0]["naive"]["psnr_db"]
