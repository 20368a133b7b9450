"""The closed forms themselves, checked against an independent NumPy simulation (not against Sionna)."""

import numpy as np
import pytest

from link_models.theory import ber_uncoded_awgn, ber_uncoded_rayleigh


def _gray_pam_bits(levels_bits: int, rng, n):
    """Random Gray-coded sqrt(M)-PAM symbols (amplitudes) and their bits, built from scratch."""
    side = 2 ** levels_bits
    idx = rng.integers(0, side, n)
    gray = idx ^ (idx >> 1)
    bits = (gray[:, None] >> np.arange(levels_bits)[::-1]) & 1
    return 2 * idx - (side - 1), bits


@pytest.mark.parametrize("modulation, m, es_no_db", [("16qam", 4, 12.0), ("64qam", 6, 18.0), ("256qam", 8, 24.0)])
def test_square_qam_closed_form_matches_numpy_simulation(modulation, m, es_no_db):
    rng = np.random.default_rng(1)
    n = 400_000
    half = m // 2
    ai, bi = _gray_pam_bits(half, rng, n)
    aq, bq = _gray_pam_bits(half, rng, n)
    side = 2 ** half
    norm = np.sqrt(2 * (side**2 - 1) / 3)  # unit average symbol energy
    no = 10 ** (-es_no_db / 10)
    noise = rng.normal(scale=np.sqrt(no / 2), size=(2, n)) * norm
    levels = np.arange(-(side - 1), side, 2)
    gray = np.arange(side) ^ (np.arange(side) >> 1)
    level_bits = (gray[:, None] >> np.arange(half)[::-1]) & 1
    errors = 0
    for amp, bits, nz in ((ai, bi, noise[0]), (aq, bq, noise[1])):
        decided = np.abs((amp + nz)[:, None] - levels[None, :]).argmin(axis=1)
        errors += (level_bits[decided] != bits).sum()
    ber = errors / (n * m)
    assert ber == pytest.approx(float(ber_uncoded_awgn(modulation, es_no_db)), rel=0.05)


def test_bpsk_qpsk_closed_forms_are_q_functions():
    from scipy.stats import norm

    assert ber_uncoded_awgn("bpsk", 6.0) == pytest.approx(norm.sf(np.sqrt(2 * 10 ** 0.6)))
    assert ber_uncoded_awgn("qpsk", 6.0) == pytest.approx(norm.sf(np.sqrt(10 ** 0.6)))


def test_rayleigh_closed_form_matches_numpy_simulation():
    rng = np.random.default_rng(2)
    n = 1_000_000
    eb_no = 10 ** (10 / 10)
    h = (rng.normal(size=n) + 1j * rng.normal(size=n)) / np.sqrt(2)
    x = 1 - 2 * rng.integers(0, 2, n)
    y = h * x + (rng.normal(size=n) + 1j * rng.normal(size=n)) * np.sqrt(1 / (2 * eb_no))
    ber = np.mean(np.sign((np.conj(h) * y).real) != x)
    assert ber == pytest.approx(float(ber_uncoded_rayleigh("bpsk", 10.0)), rel=0.05)
