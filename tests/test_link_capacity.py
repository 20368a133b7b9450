"""The capacity bound: log2(1 + SNR), the ergodic Rayleigh capacity and the normal approximation, each
checked against an independent computation (Monte Carlo of the information density, scipy quadrature)."""

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

from link_models import Link
from link_models.capacity import CapacityConfig, CapacityLink, capacity, channel_uses, dispersion, max_bits
from meg_common.errors import InputError


@pytest.mark.parametrize("snr_db", [-10.0, -5.0, 0.0, 10.0, 20.0, 30.0])
def test_channel_uses_is_the_fewest_that_carry_the_payload_at_log2_1_plus_snr(snr_db):
    c = math.log2(1 + 10 ** (snr_db / 10))
    for bits in (1, 8, 1000, 17_472, 123_457):
        n = channel_uses(bits, snr_db)
        assert n * c >= bits and (n - 1) * c < bits
        assert n == math.ceil(bits / c)


def test_information_density_of_shell_input_has_the_stated_mean_and_dispersion():
    # i(x; y) = ln(1 + snr) + |y|^2 / (1 + snr) - |y - x|^2 for x on the power shell, z ~ CN(0, 1):
    # its mean is the capacity, its variance the dispersion V (nats), computed here by Monte Carlo.
    rng = np.random.default_rng(0)
    for snr_db in (-5.0, 0.0, 10.0):
        snr = 10 ** (snr_db / 10)
        m = 2_000_000
        x = math.sqrt(snr) * np.exp(2j * np.pi * rng.random(m))
        z = (rng.normal(size=m) + 1j * rng.normal(size=m)) / math.sqrt(2)
        i = math.log(1 + snr) + np.abs(x + z) ** 2 / (1 + snr) - np.abs(z) ** 2
        assert i.mean() / math.log(2) == pytest.approx(capacity(snr_db), abs=3e-3)
        assert i.var() == pytest.approx(dispersion(snr_db), rel=1e-2)


@pytest.mark.parametrize("snr_db, eps", [(0.0, 1e-3), (10.0, 1e-5), (-5.0, 1e-1), (20.0, 1e-2)])
def test_normal_approximation_matches_an_independent_computation(snr_db, eps):
    snr = 10 ** (snr_db / 10)
    v = snr * (snr + 2) / (snr + 1) ** 2
    for n in (50, 500, 5000):
        expected = n * math.log2(1 + snr) - math.sqrt(n * v) * norm.ppf(1 - eps) / math.log(2) + 0.5 * math.log2(2 * n)
        assert max_bits(n, snr_db, eps) == pytest.approx(expected, rel=1e-12)
    for bits in (8, 1200, 40_000):
        n = channel_uses(bits, snr_db, eps)
        assert max_bits(n, snr_db, eps) >= bits
        assert n == 1 or max_bits(n - 1, snr_db, eps) < bits
        assert n >= channel_uses(bits, snr_db) - 2  # never meaningfully below capacity for eps < 1/2


def test_finite_blocklength_penalty_shrinks_with_payload_size():
    # the relative overhead over ceil(B / C) falls like 1 / sqrt(N)
    ratios = [channel_uses(b, 0.0, 1e-3) / channel_uses(b, 0.0) for b in (200, 2000, 20_000, 200_000)]
    assert all(r1 > r2 > 1 for r1, r2 in zip(ratios, ratios[1:], strict=False))
    assert ratios[-1] < 1.03


@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 10.0, 25.0])
def test_ergodic_rayleigh_capacity_matches_quadrature_and_is_below_awgn(snr_db):
    snr = 10 ** (snr_db / 10)
    expected, _ = integrate.quad(lambda g: math.log2(1 + snr * g) * math.exp(-g), 0, math.inf)
    assert capacity(snr_db, "rayleigh") == pytest.approx(expected, rel=1e-6)
    assert capacity(snr_db, "rayleigh") < capacity(snr_db)
    assert channel_uses(10_000, snr_db, channel="rayleigh") == math.ceil(10_000 / expected)


def test_capacity_link_sends_one_block_and_counts_channel_uses():
    link = CapacityLink(CapacityConfig(snr_db=20.0))
    payload = bytes(range(256)) * 3
    received, stats = link.send_bytes(payload)
    assert received == payload
    n = math.ceil(8 * len(payload) / math.log2(1 + 100))
    assert stats.data_symbols == stats.total_symbols == n
    assert stats.payload_bits == 8 * len(payload) and stats.codewords == 1
    assert stats.block_errors == 0 and stats.ber == 0.0
    assert stats.airtime_s == pytest.approx(n / (128 * 30e3))
    assert stats.ebno_db == pytest.approx(20.0 - 10 * math.log10(8 * len(payload) / n))


def test_capacity_link_with_epsilon_loses_blocks_at_that_rate_reproducibly():
    cfg = CapacityConfig(snr_db=5.0, epsilon=0.2)
    link = CapacityLink(cfg, seed=3)
    lost = [link.send_bytes(b"\x55" * 40)[1].block_errors for _ in range(2000)]
    assert np.mean(lost) == pytest.approx(0.2, abs=0.03)
    link.reseed(3)
    again = [link.send_bytes(b"\x55" * 40)[1].block_errors for _ in range(2000)]
    assert lost == again
    _, stats = link.send_bytes(b"\x55" * 40)
    assert stats.data_symbols == channel_uses(320, 5.0, 0.2)


def test_bad_input_is_a_one_line_input_error():
    with pytest.raises(InputError, match="epsilon"):
        CapacityConfig(epsilon=0.7)
    with pytest.raises(InputError, match="AWGN"):
        CapacityConfig(channel="rayleigh", epsilon=1e-3)
    with pytest.raises(InputError, match="channel"):
        CapacityConfig(channel="tdl-a")
    with pytest.raises(InputError, match="empty"):
        CapacityLink().send_bytes(b"")
    with pytest.raises(InputError):
        channel_uses(0, 10.0)
    with pytest.raises(InputError, match="values"):
        CapacityLink().send_values(None)
    with pytest.raises(InputError, match="seed"):
        CapacityLink().reseed(-1)


def test_capacity_link_is_a_link():
    assert isinstance(CapacityLink(), Link) and CapacityLink().schemes == ("digital",)
