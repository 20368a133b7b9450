"""Schmidl-Cox preamble: detection, coarse timing, fractional and integer CFO, fine timing, noise level.

Why Schmidl-Cox and not Zadoff-Chu: its detection metric is a normalised auto-correlation between
repeated halves, so it is blind to any carrier offset (a Zadoff-Chu cross-correlation peak moves in time
with the CFO, the well-known timing/CFO ambiguity of ZC) and its false-alarm rate on noise has a closed
form: for complex Gaussian noise the metric |P|^2/(E1 E2) over W samples is Beta(1, W-1) distributed,
P(M > t) = (1 - t)^(W-1), so the threshold is set from the target false-alarm rate, not tuned.

The preamble is two parts (N = FFT size, L = N/2):
- sync: a CP and `preamble_repeats` periods of L samples (BPSK on even subcarriers only, so the OFDM
  symbol has period L). The lag-L correlation gives the detection metric and the fractional CFO,
  unambiguous within +-fs/(2L) = +-1 subcarrier spacing.
- train: one OFDM symbol with a known QPSK sequence on every used subcarrier. After fractional
  correction the remaining CFO is an even number of subcarriers (2 g); g is found by a differential
  (adjacent-subcarrier) correlation that is insensitive to timing error and channel phase. The same
  symbol gives fine timing by cross-correlation.
Both sequences have a null DC carrier, so a receiver DC offset does not bias them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from link_models.ota.config import FrameConfig

_SYNC_SEED, _TRAIN_SEED = 0x5C01, 0x5C02


@dataclass(frozen=True)
class Preamble:
    """Time-domain preamble samples and the frequency-domain training sequence (natural FFT order)."""

    sync: np.ndarray        # CP + repeats x L samples
    train: np.ndarray       # CP + N samples
    train_body: np.ndarray  # the N-sample training symbol without CP
    train_freq: np.ndarray  # [N] known values on used bins, 0 elsewhere

    @property
    def samples(self) -> np.ndarray:
        return np.concatenate([self.sync, self.train])


def make_preamble(cfg: FrameConfig) -> Preamble:
    n, cp, used = cfg.fft_size, cfg.cp_length, cfg.used_bins
    rng = np.random.default_rng(_SYNC_SEED)
    x_sync = np.zeros(n, complex)
    even = used[used % 2 == 0]
    x_sync[even] = np.sqrt(2.0) * (2.0 * rng.integers(0, 2, even.size) - 1.0)   # same energy per used bin
    half = np.fft.ifft(x_sync, norm="ortho")[: n // 2]
    periodic = np.tile(half, cfg.preamble_repeats)
    sync = np.concatenate([periodic[-cp:], periodic])
    rng = np.random.default_rng(_TRAIN_SEED)
    x_train = np.zeros(n, complex)
    x_train[used] = np.exp(1j * (np.pi / 4 + np.pi / 2 * rng.integers(0, 4, used.size)))
    body = np.fft.ifft(x_train, norm="ortho")
    train = np.concatenate([body[-cp:], body])
    return Preamble(sync.astype(np.complex64), train.astype(np.complex64), body.astype(np.complex64),
                    x_train.astype(np.complex64))


def schmidl_cox_metric(x: np.ndarray, period: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """M[d] = |P|^2/(E1 E2) and P[d] for every d, from running sums (O(len) for the whole buffer).

    P[d] = sum_m conj(x[d+m]) x[d+m+period] over m < window, with each of the two windows centred on its
    own mean: the sync repeats have zero mean over any whole number of periods, so the preamble loses
    nothing, while a residual DC offset or slow drift, which correlates perfectly at any lag, is ignored.
    """
    x = np.asarray(x, np.complex64)
    count = x.size - window - period + 1
    if count <= 0:
        return np.zeros(0), np.zeros(0, complex)

    def cumulative(v: np.ndarray, dtype) -> np.ndarray:
        c = np.empty(v.size + 1, dtype)
        c[0] = 0
        np.cumsum(v, dtype=dtype, out=c[1:])
        return c

    def running(c: np.ndarray, offset: int) -> np.ndarray:   # sums of `window` terms starting at offset + d
        return c[offset + window:offset + window + count] - c[offset:offset + count]

    cx = cumulative(x, np.complex128)
    cp = cumulative(x.real * x.real + x.imag * x.imag, np.float64)
    cprod = cumulative(np.conj(x[:-period]) * x[period:], np.complex128)
    s1, s2 = running(cx, 0), running(cx, period)
    power = cp[-1] / max(x.size, 1)
    p = running(cprod, 0) - np.conj(s1) * s2 / window
    e1 = running(cp, 0) - (s1.real ** 2 + s1.imag ** 2) / window
    e2 = running(cp, period) - (s2.real ** 2 + s2.imag ** 2) / window
    # a floor 80 dB under the buffer's mean power: exact silence (a clean recording) scores 0, not 0/0
    floor = window * 1e-8 * max(float(power), 1e-300)
    denom = (np.maximum(e1, 0) + floor) * (np.maximum(e2, 0) + floor)
    metric = (p.real ** 2 + p.imag ** 2) / denom
    return np.clip(metric, 0.0, 1.0), p


def noise_false_alarm_probability(threshold: float, window: int) -> float:
    """P(M > threshold) at one position for complex white Gaussian noise: (1 - t)^(W - 1)."""
    return float((1.0 - threshold) ** (window - 1))


def detect(metric: np.ndarray, threshold: float, min_distance: int) -> list[int]:
    """Start of the full-overlap plateau of every region where the metric crosses `threshold`.

    A region is a run of positions above the threshold (runs closer than `min_distance` are merged); its
    estimate is the centre of the positions within 90 % of the region's peak, which sits in the middle of
    the CP-long plateau the cyclic prefix creates.
    """
    from link_models.ota.detector import runs_above

    found = []
    for idx in runs_above(metric, threshold, min_distance):
        values = metric[idx]
        top = idx[values >= 0.9 * values.max()]
        found.append(int(round((top.min() + top.max()) / 2)))
    return found


def fractional_cfo(p: complex, period: int, sample_rate: float) -> float:
    """CFO in Hz from the lag-`period` correlation; unambiguous within +-sample_rate/(2 period)."""
    return float(np.angle(p) * sample_rate / (2 * np.pi * period))


def integer_cfo_bins(spectrum: np.ndarray, train_freq: np.ndarray, used_bins: np.ndarray,
                     max_shift: int) -> tuple[int, float]:
    """Even bin shift 2g (|2g| <= max_shift) that best aligns the received training symbol; and its quality.

    Differential correlation over adjacent used subcarriers: sum Y[k+s] conj(Y[k'+s]) conj(X[k]) X[k'].
    A timing error or the channel phase rotate every term alike, so only the frequency shift matters.
    Quality is the normalised peak in [0, 1].
    """
    n = spectrum.size
    order = np.sort((used_bins + n // 2) % n) - n // 2          # used bins as signed frequencies, ascending
    k0, k1 = order[:-1], order[1:]
    adjacent = (k1 - k0) == 1
    k0, k1 = k0[adjacent] % n, k1[adjacent] % n
    ref = np.conj(train_freq[k0]) * train_freq[k1]
    shifts = np.arange(-(max_shift // 2), max_shift // 2 + 1) * 2
    y0 = spectrum[(k0[None, :] + shifts[:, None]) % n]
    y1 = spectrum[(k1[None, :] + shifts[:, None]) % n]
    prod = y0 * np.conj(y1)
    values = np.abs(prod @ ref)
    best = int(np.argmax(values))
    return int(shifts[best]), float(values[best] / (np.sum(np.abs(prod[best])) + 1e-30))


def fine_timing(x: np.ndarray, body: np.ndarray, expected: int, search: int) -> int:
    """Index in x where the training symbol body starts: peak of |cross-correlation| within +-search."""
    lo = max(0, expected - search)
    hi = min(x.size - body.size, expected + search)
    if hi < lo:
        return expected
    seg = x[lo:hi + body.size]
    corr = np.abs(np.correlate(seg, body, mode="valid"))
    return lo + int(np.argmax(corr))


def noise_variance_from_repeats(x: np.ndarray, start: int, period: int, window: int) -> float:
    """Per-sample noise variance from two repeats a, b: min over phase of E|b - a e^jt|^2 = 2 sigma^2 W.

    Minimising over the phase makes it independent of the carrier offset: (E1 + E2 - 2|P|) / (2 W).
    """
    a = np.asarray(x[start:start + window], np.complex128)
    b = np.asarray(x[start + period:start + period + window], np.complex128)
    m = min(a.size, b.size)
    if m == 0:
        return 0.0
    a, b = a[:m], b[:m]
    value = np.sum(np.abs(a) ** 2) + np.sum(np.abs(b) ** 2) - 2 * np.abs(np.sum(np.conj(a) * b))
    return float(max(value, 0.0) / (2 * m))
