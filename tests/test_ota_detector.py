"""The matched-filter detectors against independent references: the false-alarm rate on pure noise
against the closed form (Beta(1, L-1)), the detection probability at a known SNR against the noncentral
chi-square of a coherent correlator, and timing/CFO accuracy of the chirp pair over +-60 ppm at 2.4 GHz."""

import math

import numpy as np
import pytest
from scipy import stats

from link_models.ota.detector import (
    CfoGridDetector,
    ChirpPairDetector,
    false_alarm_probability,
    normalized_correlation,
    threshold_for_probability,
    threshold_for_rate,
)


def _noise(rng, n, var=1.0):
    return (np.sqrt(var / 2) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))).astype(np.complex64)


def test_threshold_inverts_the_closed_form():
    for length in (64, 224, 1024):
        for pfa in (1e-3, 1e-9, 1e-14):
            assert math.isclose(false_alarm_probability(threshold_for_probability(pfa, length), length), pfa,
                                rel_tol=1e-9)
    # 0.1 false alarms per hour at 2 MS/s with 77 hypotheses: per position and hypothesis 1.8e-13
    t = threshold_for_rate(0.1, 2e6, 224, 77)
    assert math.isclose(false_alarm_probability(t, 224) * 3600 * 2e6 * 77, 0.1, rel_tol=1e-9)


def test_false_alarm_rate_on_noise_matches_the_beta_closed_form():
    """10^6 positions of white noise (any power), per-position threshold at 5e-3: 5000 expected crossings."""
    rng = np.random.default_rng(7)
    template = np.exp(2j * np.pi * rng.random(32)).astype(np.complex64)
    t = threshold_for_probability(5e-3, template.size)
    rho, _ = normalized_correlation(_noise(rng, 1_000_031, var=3.7), template)
    rate = float(np.mean(rho > t))
    assert 0.92 * 5e-3 < rate < 1.08 * 5e-3, rate


def test_cfo_grid_noise_crossings_stay_under_the_union_bound():
    rng = np.random.default_rng(8)
    template = np.exp(2j * np.pi * rng.random(96)).astype(np.complex64)
    det = CfoGridDetector(template, 2e6, 60e3, threshold=threshold_for_probability(1e-4, 96))
    rho, _ = det.metric(_noise(rng, 300_000))
    bound = 1e-4 * det.bins.size
    rate = float(np.mean(rho > det.threshold))
    assert 0.3 * bound < rate <= 1.05 * bound, (rate, bound)    # correlated bins: below the union bound


@pytest.mark.parametrize("snr_db", [-13.5, -12.5])
def test_detection_probability_matches_the_noncentral_chi_square(snr_db):
    """A known template at a known per-sample SNR s, no CFO: |c|^2/L ~ (1/2) chi'^2(2, 2 s L); the
    detector fires when rho = |c|^2 / (L E_x) > t with E_x ~ L (1 + s)."""
    rng = np.random.default_rng(int(-snr_db * 10))
    L, trials = 256, 400
    s = 10 ** (snr_db / 10)
    template = np.exp(2j * np.pi * rng.random(L)).astype(np.complex64)
    t = threshold_for_probability(1e-6, L)
    hits = 0
    for _ in range(trials):
        x = np.sqrt(s) * template * np.exp(2j * np.pi * rng.random()) + _noise(rng, L)
        rho, _ = normalized_correlation(x, template)
        hits += rho[0] > t
    theory = stats.ncx2.sf(2 * t * L * (1 + s), 2, 2 * s * L)
    assert 0.1 < theory < 0.9                       # a point on the slope of the curve, not a saturated one
    sigma = math.sqrt(theory * (1 - theory) / trials)
    assert abs(hits / trials - theory) < 4 * sigma + 0.02, (hits / trials, theory)


def test_chirp_pair_timing_and_cfo_over_60_ppm_at_minus_10_db():
    fs = 2e6
    det = ChirpPairDetector(1024, 1.625e6, fs, 150e3)
    rng = np.random.default_rng(3)
    s = 0.1 * 52 / 64                                # -10 dB Es/N0 on the used subcarriers, per sample
    timing, cfo_err, found = [], [], 0
    for _ in range(40):
        f = rng.uniform(-144e3, 144e3)
        d0 = 1500 + rng.uniform(0, 50)
        n = np.arange(7000)
        # the preamble delayed by a fractional d0 (band-limited: frequency-domain delay)
        pre = np.zeros(7000, complex)
        pre[:det.preamble.size] = det.preamble
        spec = np.fft.fft(pre) * np.exp(-2j * np.pi * np.fft.fftfreq(7000) * d0)
        x = np.sqrt(s) * np.fft.ifft(spec) * np.exp(2j * np.pi * f / fs * n + 1j * rng.uniform(0, 6.3))
        got = det.detect(x + _noise(rng, 7000))
        if len(got) == 1:
            found += 1
            timing.append(got[0].timing - d0)
            cfo_err.append(got[0].cfo_hz - f)
    assert found == 40
    assert math.sqrt(np.mean(np.square(timing))) < 1.0
    assert math.sqrt(np.mean(np.square(cfo_err))) < 300.0


def test_chirp_pair_stays_silent_on_noise_and_states_its_rate():
    det = ChirpPairDetector(1024, 1.625e6, 2e6, 150e3, false_alarms_per_hour=0.1)
    assert math.isclose(det.false_alarms_per_hour, 0.1, rel_tol=1e-6)
    rng = np.random.default_rng(5)
    assert det.detect(_noise(rng, 400_000)) == []


def test_cfo_grid_detector_finds_todays_preamble_at_minus_4_db_and_60_ppm():
    from link_models.ota.config import FrameConfig
    from link_models.ota.preamble import make_preamble

    cfg = FrameConfig()
    pre = make_preamble(cfg).samples
    det = CfoGridDetector(pre, cfg.sample_rate, 150e3)
    rng = np.random.default_rng(11)
    s = 10 ** (-0.4) * 52 / 64
    for f in (-144e3, -30e3, 77e3, 144e3):
        x = _noise(rng, 4000)
        x[1234:1234 + pre.size] += np.sqrt(s / np.mean(np.abs(pre) ** 2)) * pre * np.exp(
            2j * np.pi * f / 2e6 * np.arange(pre.size))
        got = det.detect(x)
        assert len(got) == 1 and abs(got[0].start - 1234) <= 1
        assert abs(got[0].cfo_hz - f) < det.bin_hz
