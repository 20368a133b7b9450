"""Analog link: NMSE = 1/SNR on AWGN, honest per-value noise variance, repetition gain, bad values."""

import pytest
import torch

from link_models import AnalogLink, LinkConfig
from meg_common.errors import InputError


def values(n=200_001, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g) * 2.5 + 0.7  # any scale and offset: the link normalises power


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_awgn_perfect_csi_nmse_is_one_over_snr(snr_db):
    v = values()
    est, noise_var, stats = AnalogLink(LinkConfig(channel="awgn", estimator="perfect", snr_db=snr_db), seed=1) \
        .send_values(v)
    assert est.shape == v.shape == noise_var.shape
    nmse = float((est - v).square().mean() / v.square().mean())
    assert nmse == pytest.approx(10 ** (-snr_db / 10), rel=0.10)
    assert stats.nmse == pytest.approx(nmse)
    assert stats.snr_est_db == pytest.approx(snr_db, abs=0.3)
    # unbiased: the error does not scale with the value
    slope = float(((est - v) * v).mean() / v.square().mean())
    assert abs(slope) < 0.02


@pytest.mark.parametrize("snr_db", [10.0, 20.0])
def test_ls_estimation_reported_noise_variance_matches_measured_error(snr_db):
    v = values()
    est, noise_var, stats = AnalogLink(LinkConfig(channel="awgn", estimator="ls", snr_db=snr_db), seed=2) \
        .send_values(v)
    measured = float((est - v).square().mean())
    reported = float(noise_var.mean())
    assert reported == pytest.approx(measured, rel=0.20)
    # LS costs SNR compared with perfect CSI (noisy estimates from two pilot symbols, interpolated)
    assert measured / float(v.square().mean()) > 1.5 * 10 ** (-snr_db / 10)


def test_per_value_variance_tracks_the_error_over_fading():
    """On Rayleigh block fading each frame has its own SNR; the reported variances must follow it."""
    v = values(400_000)
    est, noise_var, _ = AnalogLink(LinkConfig(channel="rayleigh", estimator="perfect", snr_db=10.0), seed=3) \
        .send_values(v)
    z = (est - v) / noise_var.sqrt()  # standardised errors
    assert float(z.square().mean()) == pytest.approx(1.0, rel=0.10)


def test_repetition_divides_the_noise():
    v = values(60_000)
    cfg = LinkConfig(channel="awgn", snr_db=5.0, repetition=4)
    est, noise_var, stats = AnalogLink(cfg, seed=4).send_values(v)
    nmse = float((est - v).square().mean() / v.square().mean())
    assert nmse == pytest.approx(10 ** -0.5 / 4, rel=0.10)
    single = AnalogLink(LinkConfig(channel="awgn", snr_db=5.0), seed=4).send_values(v)[2]
    assert stats.data_symbols >= 4 * (single.data_symbols - single.data_symbols // single.frames)


def test_odd_lengths_single_value_and_accounting():
    link = AnalogLink(LinkConfig(channel="ideal"), seed=0)
    est, noise_var, stats = link.send_values(torch.tensor([3.25]))
    assert torch.allclose(est, torch.tensor([3.25]), atol=1e-4)
    assert stats.header_bits == 64 and stats.values == 1 and stats.frames == 1
    est, _, _ = link.send_values(torch.zeros(5))
    assert torch.allclose(est, torch.zeros(5), atol=1e-6)
    big = torch.tensor([1e30, -3e30, 2e29], dtype=torch.float64)  # float64 in, float64 out, no overflow
    est, noise_var, _ = link.send_values(big)
    assert est.dtype == noise_var.dtype == torch.float64
    assert torch.allclose(est, big, rtol=1e-4)


def test_global_rng_untouched_and_reproducible():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    v = values(1000)
    cfg = LinkConfig(channel="tdl-b", estimator="ls", snr_db=10.0)
    a = AnalogLink(cfg, seed=9).send_values(v)[0]
    b = AnalogLink(cfg, seed=9).send_values(v)[0]
    assert torch.equal(a, b)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("bad, fragment", [
    (torch.tensor([1.0, float("nan")]), "NaN"),
    (torch.tensor([1.0, float("inf")]), "NaN or infinite"),
    (torch.tensor([]), "empty"),
    (torch.ones(2, 2), "1-D"),
    (torch.ones(3, dtype=torch.int64), "floating-point"),
    ([1.0, 2.0], "torch tensor"),
])
def test_bad_values_are_input_errors(bad, fragment):
    with pytest.raises(InputError, match=fragment):
        AnalogLink(LinkConfig(channel="ideal"), seed=0).send_values(bad)
