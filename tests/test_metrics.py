"""Metrics against closed forms and independent computations."""

import math

import numpy as np
import pytest
import torch

from meg_common.errors import InputError
from meg_phy.codecs import encode_seed, seed_to_analog
from meg_phy.ldm import Latent
from meg_phy.metrics import payload_size, prompt_accuracy, psnr, psnr_per_image, ssim, ssim_per_image


def test_psnr_closed_form():
    ref = torch.full((2, 3, 32, 32), 0.5)
    noisy = ref.clone()
    noisy[0] += 0.1  # MSE 0.01 -> 20 dB
    noisy[1, :, :16] += 0.01  # MSE 0.5e-4 -> 43.01 dB
    values = psnr_per_image(noisy, ref)
    assert values[0] == pytest.approx(20.0, abs=1e-4)
    assert values[1] == pytest.approx(10 * math.log10(1 / 0.5e-4), abs=1e-3)
    assert psnr(noisy, ref) == pytest.approx(sum(values) / 2)
    assert psnr(ref, ref) == math.inf


def test_ssim_on_32x32_and_its_properties():
    g = torch.Generator().manual_seed(0)
    ref = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 34, 34, generator=g), 3, 1)
    assert ref.shape[-1] == 32
    assert ssim(ref, ref) == pytest.approx(1.0)
    slight = (ref + 0.02 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    heavy = (ref + 0.2 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    assert 1.0 > ssim(slight, ref) > ssim(heavy, ref)
    # tiny images shrink the window; too tiny is an error, not a crash
    assert -1 <= ssim_per_image(ref[..., :5, :5], slight[..., :5, :5])[0] <= 1
    with pytest.raises(InputError, match="too small"):
        ssim(ref[..., :2, :2], ref[..., :2, :2])
    with pytest.raises(InputError, match="shape"):
        ssim(ref, ref[..., :16])


def test_ssim_matches_a_direct_formula_on_constant_images():
    """Constant images a, b: SSIM = (2ab + C1)/(a² + b² + C1) (variances zero), C1 = (0.01)²."""
    a, b = 0.3, 0.6
    x, y = torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b)
    c1 = 0.01**2
    assert ssim(x, y) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-6)


class FakeEvaluator:
    """Reads 'red' when the mean red channel dominates: enough to check the bookkeeping."""

    def prompt_match(self, images, prompts):
        reds = images[:, 0].mean((1, 2)) > images[:, 1:].mean((1, 2, 3))
        return [bool(r) == ("red" in p) for r, p in zip(reds, prompts, strict=True)]


def test_prompt_accuracy_counts_full_matches():
    images = torch.zeros(4, 3, 8, 8)
    images[:2, 0] = 1.0
    prompts = ["red", "red", "blue", "red"]
    assert prompt_accuracy(images, prompts, FakeEvaluator()) == 0.75
    with pytest.raises(InputError, match="prompts"):
        prompt_accuracy(images, prompts[:3], FakeEvaluator())


def test_prompt_accuracy_with_the_embedded_evaluator():
    from meg_phy.models import EVALUATOR_DIR

    if not any(EVALUATOR_DIR.glob("*.safetensors")):
        pytest.skip("the embedded evaluator is not committed yet")
    from meg_phy import scenes

    attrs = scenes.sample_attributes(torch.Generator().manual_seed(0), 16)
    images = torch.stack([scenes.render(a, i) for i, a in enumerate(attrs)])
    prompts = [scenes.make_prompt(a) for a in attrs]
    assert prompt_accuracy(images, prompts) >= 0.9
    assert prompt_accuracy(images, prompts[1:] + prompts[:1]) < 0.5


def test_payload_size_counts_bits_and_values():
    seed = Latent(latents=torch.zeros(1, 4, 8, 8), step=0, timesteps=torch.tensor([1]), num_inference_steps=1)
    data = encode_seed(seed, "int8")
    assert payload_size(data) == {"bits": 8 * len(data), "values": 0}
    values, _ = seed_to_analog(seed)
    assert payload_size(values) == {"bits": 0, "values": 256}
    assert np.isfinite(values.numpy()).all()
