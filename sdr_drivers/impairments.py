"""Hardware impairments of a real radio pair, as plain numpy functions (used by the simulated radio).

Each is the textbook model, checked in tests against an independent computation:
carrier frequency offset (a phase ramp), sample-clock offset (band-limited resampling with a
Kaiser-windowed sinc), DC offset, IQ gain/phase imbalance, ADC quantisation with clipping, AWGN.
"""

from __future__ import annotations

import numpy as np


def frequency_shift(x: np.ndarray, hz: float, sample_rate: float, phase: float = 0.0) -> np.ndarray:
    return x * np.exp(1j * (2 * np.pi * hz / sample_rate * np.arange(x.size) + phase))


def resample(x: np.ndarray, step: float, start: float = 0.0, num: int | None = None, taps: int = 48,
             beta: float = 8.0, phases: int = 2048) -> np.ndarray:
    """y[m] = x(start + m * step) by band-limited interpolation (Kaiser-windowed sinc, `taps` long).

    A receiver whose clock runs (1 + e) times fast samples the transmitted signal at step 1/(1 + e).
    The kernel is tabulated at `phases` fractional delays (error about -70 dB, below a 12-bit ADC).
    Samples outside x count as zero.
    """
    x = np.asarray(x, np.complex128)
    if num is None:
        num = max(0, int(np.floor((x.size - 1 - start) / step)) + 1)
    half = taps // 2
    offsets = np.arange(-half + 1, half + 1)
    dist = (np.arange(phases + 1) / phases)[:, None] - offsets[None, :]
    table = np.sinc(dist) * np.i0(beta * np.sqrt(np.clip(1 - (dist / half) ** 2, 0, 1))) / np.i0(beta)
    padded = np.concatenate([np.zeros(half, np.complex128), x, np.zeros(half + 1, np.complex128)])
    out = np.zeros(num, np.complex128)
    for lo in range(0, num, 32768):
        t = start + step * np.arange(lo, min(num, lo + 32768))
        base = np.floor(t).astype(np.int64)
        phase = np.round((t - base) * phases).astype(np.int64)
        idx = np.clip(base[:, None] + (offsets + half)[None, :], 0, padded.size - 1)
        out[lo:lo + t.size] = np.einsum("ij,ij->i", padded[idx], table[phase])
    return out


def iq_imbalance(x: np.ndarray, gain_db: float, phase_deg: float) -> np.ndarray:
    """Q branch with gain error `gain_db` and a quadrature error of `phase_deg` (I is the reference)."""
    g = 10 ** (gain_db / 20)
    phi = np.deg2rad(phase_deg)
    i, q = x.real, x.imag
    return i + 1j * g * (q * np.cos(phi) - i * np.sin(phi))


def quantize(x: np.ndarray, bits: int) -> np.ndarray:
    """ADC of `bits` bits per rail with full scale +-1: clip, then round to 2^(bits-1) steps."""
    levels = 2 ** (bits - 1)
    i = np.clip(np.round(x.real * levels), -levels, levels - 1)
    q = np.clip(np.round(x.imag * levels), -levels, levels - 1)
    return (i + 1j * q) / levels


def awgn(shape, noise_var: float, rng: np.random.Generator) -> np.ndarray:
    return np.sqrt(noise_var / 2) * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
