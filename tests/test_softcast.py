"""SoftCast: the simulated MSE on AWGN against SoftCast's own formula, computed independently (scipy DCT)."""

import math

import numpy as np
import pytest
import torch
from scipy.fft import dctn

from meg_common.errors import InputError
from meg_phy import scenes
from meg_phy.codecs.container import PayloadError
from meg_phy.codecs.softcast import HEADER_BYTES, SoftCastDecoder, SoftCastEncoder, header_bits, unpack_meta


@pytest.fixture(scope="module")
def images():
    attrs = scenes.sample_attributes(torch.Generator().manual_seed(5), 3)
    return scenes.render_batch(attrs, [0, 1, 2])


def formula_mse(image, channel_uses, noise_var, chunk=(4, 4), power=1.0):
    """SoftCast's MSE from scratch: orthonormal luma/chroma, scipy's orthonormal DCT, DC removed, the top-K
    chunks by energy, g = c lambda^(-1/4), LLSE error lambda s2 / (g^2 lambda + s2), dropped chunks' energy."""
    m = np.array([[1, 1, 1], [1, 0, -1], [1, -2, 1]], dtype=float)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    x = np.einsum("ij,jhw->ihw", m, image[0].double().numpy())
    c = np.stack([dctn(ch, norm="ortho") for ch in x])
    c[:, 0, 0] = 0.0
    h, w = chunk
    chunks = c.reshape(3, c.shape[1] // h, h, c.shape[2] // w, w).transpose(0, 1, 3, 2, 4).reshape(-1, h * w)
    lam = (chunks**2).mean(axis=1)
    k = min(2 * channel_uses // (h * w), int((lam > 0).sum()))
    kept = np.argsort(-lam, kind="stable")[:k]
    dropped = np.setdiff1d(np.arange(lam.size), kept)
    g2 = power * k / np.sqrt(lam[kept]).sum() / np.sqrt(lam[kept])
    total = (lam[kept] * noise_var / (g2 * lam[kept] + noise_var)).sum() + lam[dropped].sum()
    return total * h * w / c.size


def simulate(image, channel_uses, noise_var, draws=30, seed=0, **kwargs):
    values, meta = SoftCastEncoder(**kwargs)(image, channel_uses)
    gen = torch.Generator().manual_seed(seed)
    decoder = SoftCastDecoder()
    mse = []
    for _ in range(draws):
        y = values.double() + math.sqrt(noise_var) * torch.randn(values.shape, generator=gen, dtype=torch.float64)
        mse.append(float((decoder(y, noise_var, meta, clamp=False).double() - image.double()).square().mean()))
    return float(np.mean(mse)), values, meta


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 20.0])
@pytest.mark.parametrize("channel_uses", [64, 256, 1536])
def test_simulated_mse_matches_softcast_formula_within_10_percent(images, snr_db, channel_uses):
    noise_var = 10 ** (-snr_db / 10)
    for i in range(images.shape[0]):
        image = images[i:i + 1]
        measured, _, _ = simulate(image, channel_uses, noise_var, seed=i)
        assert measured == pytest.approx(formula_mse(image, channel_uses, noise_var), rel=0.10)


def test_plan_expected_mse_is_the_exact_expectation(images):
    encoder = SoftCastEncoder()
    for channel_uses, snr_db in ((128, 0.0), (1536, 10.0)):
        noise_var = 10 ** (-snr_db / 10)
        plan = encoder.plan(images[:1], channel_uses)
        measured, _, _ = simulate(images[:1], channel_uses, noise_var, draws=60)
        assert measured == pytest.approx(plan.expected_mse(noise_var), rel=0.03)


def test_values_fit_the_channel_uses_with_unit_power_and_lossless_without_noise(images):
    image = images[1:2]
    for channel_uses in (8, 100, 1000, 1536, image.numel() // 2 + 100):  # the last one fits every chunk
        values, meta = SoftCastEncoder()(image, channel_uses)
        assert values.numel() <= 2 * channel_uses and values.numel() % 16 == 0
        assert float(values.square().mean()) == pytest.approx(1.0, rel=0.05)  # quantised energies: ~P
        kept = int(unpack_meta(meta).kept.sum())
        chunks = 3 * image.shape[-2] * image.shape[-1] // 16  # 4 x 4 chunks, one bitmap bit each
        assert header_bits(meta) == 8 * HEADER_BYTES + 8 * math.ceil((chunks + 6 * kept) / 8)
    full = SoftCastDecoder()(values, 0.0, meta)
    assert torch.allclose(full, image, atol=1e-5)


def test_more_bandwidth_and_more_snr_mean_less_error(images):
    image = images[2:3]
    encoder = SoftCastEncoder()
    by_uses = [encoder.plan(image, n).expected_mse(0.1) for n in (64, 256, 1024, 1536)]
    by_snr = [encoder.plan(image, 512).expected_mse(10 ** (-s / 10)) for s in (-5, 0, 10, 20)]
    assert all(a > b for a, b in zip(by_uses, by_uses[1:], strict=False))
    assert all(a > b for a, b in zip(by_snr, by_snr[1:], strict=False))


def test_per_value_noise_variance_and_rgb(images):
    image = images[:1]
    values, meta = SoftCastEncoder(colour="rgb", chunk=(8, 8))(image, 700)
    y = values + 0.1 * torch.randn(values.shape, generator=torch.Generator().manual_seed(0))
    same = SoftCastDecoder()(y, torch.full(values.shape, 0.01), meta)
    assert torch.allclose(same, SoftCastDecoder()(y, 0.01, meta))
    # a value the receiver knows to be lost (huge variance) is estimated as 0: its chunk's mean, not noise
    var = torch.full(values.shape, 0.01)
    var[:64] = 1e12
    lost = y.clone()
    lost[:64] = 0.0
    out = SoftCastDecoder()(y, var, meta, clamp=False)
    assert torch.allclose(out, SoftCastDecoder()(lost, 0.01, meta, clamp=False), atol=1e-6)


def test_malformed_input_is_named(images):
    values, meta = SoftCastEncoder()(images[:1], 256)
    with pytest.raises(PayloadError, match="values"):
        SoftCastDecoder()(values[:-2], 0.1, meta)
    with pytest.raises(PayloadError, match="truncated"):
        SoftCastDecoder()(values, 0.1, meta[:10])
    with pytest.raises(PayloadError, match="bytes after the header"):
        SoftCastDecoder()(values, 0.1, meta[:-1])
    with pytest.raises(InputError, match="noise variance"):
        SoftCastDecoder()(values, -1.0, meta)
    with pytest.raises(InputError, match="chunk"):
        SoftCastEncoder(chunk=(5, 5))(images[:1], 256)
    with pytest.raises(InputError, match="channel uses"):
        SoftCastEncoder(chunk=(8, 8))(images[:1], 10)
    with pytest.raises(InputError, match="colour"):
        SoftCastEncoder(colour="hsv")
