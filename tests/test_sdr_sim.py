"""The simulated radio: each impairment against an independent computation, determinism, settings."""

import numpy as np
import pytest

from meg_common.errors import InputError
from sdr_drivers.impairments import frequency_shift, iq_imbalance, quantize, resample
from sdr_drivers.sim import SimRadio


def bandlimited(n, fraction, rng):
    spectrum = np.zeros(n, complex)
    band = np.abs(np.fft.fftfreq(n)) < fraction / 2
    spectrum[band] = rng.standard_normal(band.sum()) + 1j * rng.standard_normal(band.sum())
    return np.fft.ifft(spectrum), spectrum


def test_resample_matches_an_fft_fractional_delay():
    x, spectrum = bandlimited(4096, 0.8, np.random.default_rng(0))
    delay = 0.37
    reference = np.fft.ifft(spectrum * np.exp(2j * np.pi * np.fft.fftfreq(x.size) * delay))   # x(t + delay)
    y = resample(x, 1.0, start=delay, num=x.size)
    inner = slice(200, -200)
    error = np.mean(np.abs(y[inner] - reference[inner]) ** 2) / np.mean(np.abs(reference) ** 2)
    assert 10 * np.log10(error) < -60


def test_sample_clock_offset_scales_a_tone_frequency():
    fs, f0, ppm = 2e6, 300e3, 40.0
    n = np.arange(200_000)
    tone = np.exp(2j * np.pi * f0 / fs * n)
    y = resample(tone, 1 / (1 + ppm * 1e-6))        # the receiver clock runs 40 ppm fast
    phase = np.unwrap(np.angle(y[1000:-1000]))
    measured = np.polyfit(np.arange(phase.size), phase, 1)[0] * fs / (2 * np.pi)
    assert abs(measured - f0 / (1 + ppm * 1e-6)) < 0.05


def test_iq_imbalance_image_rejection_matches_the_closed_form():
    gain_db, phase_deg = 1.0, 5.0
    tone = np.exp(2j * np.pi * 410 / 4096 * np.arange(4096))          # on a DFT bin: no leakage
    y = iq_imbalance(tone, gain_db, phase_deg)
    spec = np.abs(np.fft.fft(y)) ** 2
    k = 410
    measured = spec[-k] / spec[k]
    g, phi = 10 ** (gain_db / 20), np.deg2rad(phase_deg)
    # y = a x + b conj(x) with a = (1 + g e^{-j phi}) / 2, b = (1 - g e^{j phi}) / 2
    a, b = (1 + g * np.exp(-1j * phi)) / 2, (1 - g * np.exp(1j * phi)) / 2
    assert measured == pytest.approx(abs(b) ** 2 / abs(a) ** 2, rel=1e-6)


def test_quantize_rounds_to_the_adc_grid_and_clips():
    x = np.array([0.1234 + 0.5j, 2.0 - 3.0j])
    q = quantize(x, 12)
    assert np.allclose(q[0] * 2048, np.round(x[0].real * 2048) + 1j * np.round(x[0].imag * 2048))
    assert q[1] == pytest.approx(2047 / 2048 - 1j)


def test_frequency_shift_is_a_phase_ramp():
    y = frequency_shift(np.ones(100), 1e3, 1e6)
    assert np.allclose(np.angle(y[1:] * np.conj(y[:-1])), 2 * np.pi * 1e-3)


def test_sim_radio_is_deterministic_and_places_bursts_at_random_times():
    burst = np.zeros(2000, np.complex64)
    burst[100:1100] = 0.3
    captures = []
    for seed in (5, 5, 6):
        radio = SimRadio(snr_db=30, seed=seed)
        radio.transmit(burst)
        captures.append(radio.receive(6000))
    assert np.array_equal(captures[0], captures[1])
    assert not np.array_equal(captures[0], captures[2])
    starts = [int(np.argmax(np.abs(c) > 0.5 * np.abs(c).max())) for c in captures[1:]]
    assert starts[0] != starts[1]


def test_sim_radio_snr_is_es_over_n0_per_used_subcarrier():
    silent = SimRadio(snr_db=10, rx_level_dbfs=-20, adc_bits=16, seed=0)
    silent.transmit(np.full(50_000, 0.1, np.complex64))
    y = silent.receive(40_000)
    y = y[5000:35000]                                # inside the burst: signal + noise
    noise = np.var(y)                               # the signal is a constant
    signal = np.abs(np.mean(y)) ** 2
    snr = signal / (52 / 64) / noise                # Es/N0 with P = Es * occupied fraction (52 of 64 bins)
    assert 10 * np.log10(snr) == pytest.approx(10, abs=0.3)


@pytest.mark.parametrize("setting", [{"cfo_ppm": 500}, {"adc_bits": 2}, {"channel": "cdl-a"},
                                     {"dc_offset": "x"}, {"snr_db": float("nan")}, {"iq_phase_deg": 90}])
def test_sim_radio_refuses_bad_settings(setting):
    with pytest.raises(InputError):
        SimRadio(**setting)


def test_transmit_refuses_samples_beyond_full_scale():
    with pytest.raises(InputError, match="full scale"):
        SimRadio().transmit(np.array([2.0 + 0j]))
