"""Coherent matched-filter frame detection with a carrier-offset search, and its closed-form threshold.

What numpy and Sionna lack: Sionna has no burst detector at all (its receivers assume known timing), and
numpy/scipy correlate against one template, blind to the carrier offset (CFO) that rotates a long template
out of coherence. Here:

- `normalized_correlation(x, t)`: rho[d] = |sum_m x[d+m] conj(t[m])|^2 / (||t||^2 sum_m |x[d+m]|^2), for
  every d (FFT correlation, running energy). For complex white Gaussian noise rho is exactly Beta(1, L-1)
  (the squared cosine between a circular Gaussian vector and a fixed direction), so
  P(rho > t) = (1 - t)^(L-1) at every position, whatever the noise power (self-normalising: no AGC or
  noise estimate needed). `threshold_for_rate` inverts it for a target false-alarm rate per hour of signal
  at a sample rate, with a union bound over the CFO hypotheses searched at each position.
- `CfoGridDetector`: rho over a grid of CFO bins for any template (today's 224-sample Schmidl-Cox
  preamble or a long one). Overlap-save blocks of N >= 2L samples: the block's FFT is computed once and a
  CFO of b bins (b fs/N Hz) is removed by rolling it by b bins, so each hypothesis costs one inverse FFT.
  Bins of fs/N <= fs/(2L) Hz lose at most sinc(1/4)^2 (0.9 dB) between bins; parabolic interpolation
  across bins refines the estimate.
- `ChirpPairDetector`: the low-SNR preamble is an up-chirp followed by a down-chirp (LoRa-style), each
  L samples sweeping B Hz. A CFO f moves an up-chirp's correlation peak by -f L / B samples and a
  down-chirp's by +f L / B, with an amplitude loss of only 1 - |f|/B (0.8 dB at 144 kHz for B = 1.6 MHz):
  one correlation per chirp searches every CFO at once, and the two peak positions give timing and CFO
  jointly (d0 = (d_up + d_down - L)/2, f = (d_down - L - d_up) B / (2L)). The CFO is then refined from the
  phase slope of the coherent correlation over segments of the whole preamble (`refine_cfo`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

HOUR = 3600.0


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(math.ceil(math.log2(max(n, 1)))))


def running_energy(x: np.ndarray, length: int) -> np.ndarray:
    """sum_{m<length} |x[d+m]|^2 for d = 0 .. x.size - length."""
    c = np.concatenate([[0.0], np.cumsum(x.real.astype(np.float64) ** 2 + x.imag.astype(np.float64) ** 2)])
    return c[length:] - c[:-length]


def correlate(x: np.ndarray, template: np.ndarray) -> np.ndarray:
    """c[d] = sum_m x[d+m] conj(t[m]) for d = 0 .. x.size - L (FFT overlap-add via scipy)."""
    from scipy.signal import oaconvolve

    return oaconvolve(np.asarray(x, np.complex64), np.conj(template[::-1]).astype(np.complex64), mode="valid")


def normalized_correlation(x: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rho, c): rho[d] in [0, 1] as in the module docstring, c the raw correlation."""
    x = np.asarray(x, np.complex64)
    L = template.size
    if x.size < L:
        return np.zeros(0), np.zeros(0, np.complex64)
    c = correlate(x, template)
    e_t = float(np.sum(np.abs(template) ** 2))
    e_x = running_energy(x, L)
    rho = (c.real.astype(np.float64) ** 2 + c.imag.astype(np.float64) ** 2) / np.maximum(e_t * e_x, 1e-300)
    return np.clip(rho, 0.0, 1.0), c


def false_alarm_probability(threshold: float, length: int) -> float:
    """P(rho > threshold) at one position and one hypothesis on complex white Gaussian noise: (1-t)^(L-1)."""
    return float((1.0 - threshold) ** (length - 1))


def threshold_for_probability(pfa: float, length: int) -> float:
    """Inverse of `false_alarm_probability`."""
    return float(-math.expm1(math.log(pfa) / (length - 1)))


def threshold_for_rate(false_alarms_per_hour: float, sample_rate: float, length: int, hypotheses: int = 1) -> float:
    """Threshold for at most `false_alarms_per_hour` on noise (union bound over positions and hypotheses)."""
    pfa = false_alarms_per_hour / (HOUR * sample_rate * max(1, hypotheses))
    return threshold_for_probability(pfa, length)


def expected_rate(threshold: float, sample_rate: float, length: int, hypotheses: int = 1) -> float:
    """False alarms per hour on noise implied by a threshold (union bound, an upper bound)."""
    return false_alarm_probability(threshold, length) * HOUR * sample_rate * max(1, hypotheses)


def runs_above(metric: np.ndarray, threshold: float, min_distance: int) -> list[np.ndarray]:
    """The positions of every run of `metric` above `threshold` (runs closer than min_distance merge)."""
    above = np.flatnonzero(metric > threshold)
    if above.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(above) > min_distance)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks + 1, [above.size]])
    return [above[s:e] for s, e in zip(starts, ends, strict=True)]


def peaks(metric: np.ndarray, threshold: float, min_distance: int) -> list[int]:
    """Index of the maximum of every run of positions above `threshold` (runs closer than min_distance merge)."""
    return [int(run[np.argmax(metric[run])]) for run in runs_above(metric, threshold, min_distance)]


def parabolic(values: np.ndarray, i: int) -> float:
    """Sub-sample position of the peak at i from its two neighbours (0 at the edges)."""
    if i <= 0 or i >= values.size - 1:
        return 0.0
    a, b, c = float(values[i - 1]), float(values[i]), float(values[i + 1])
    den = a - 2 * b + c
    return 0.0 if den >= 0 else float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))


@dataclass(frozen=True)
class Detection:
    start: int          # index of the template's first sample in the buffer
    cfo_hz: float       # carrier offset estimate
    metric: float       # rho at the peak
    timing: float = 0.0  # sub-sample timing estimate (start + fraction)


class CfoGridDetector:
    """rho over positions and a grid of CFO bins (module docstring); `detect(x)` -> [Detection]."""

    def __init__(self, template: np.ndarray, sample_rate: float, max_cfo_hz: float,
                 false_alarms_per_hour: float = 0.1, threshold: float | None = None):
        self.template = np.asarray(template, np.complex64)
        self.length = L = self.template.size
        self.sample_rate = float(sample_rate)
        self.nfft = _next_pow2(2 * L) if L > 256 else _next_pow2(4 * L)
        self.bin_hz = self.sample_rate / self.nfft
        self.max_bin = int(math.ceil(max_cfo_hz / self.bin_hz))
        self.bins = np.arange(-self.max_bin, self.max_bin + 1)
        self.threshold = (threshold_for_rate(false_alarms_per_hour, sample_rate, L, self.bins.size)
                          if threshold is None else float(threshold))
        padded = np.zeros(self.nfft, np.complex64)
        padded[:L] = self.template
        self._conj_t = np.conj(np.fft.fft(padded)).astype(np.complex64)
        self._energy_t = float(np.sum(np.abs(self.template) ** 2))

    @property
    def false_alarms_per_hour(self) -> float:
        return expected_rate(self.threshold, self.sample_rate, self.length, self.bins.size)

    def metric(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rho [positions], best bin index [positions]): the maximum over the CFO grid at every position."""
        x = np.asarray(x, np.complex64)
        L, n = self.length, self.nfft
        count = x.size - L + 1
        if count <= 0:
            return np.zeros(0), np.zeros(0, int)
        hop = n - L + 1
        blocks = int(math.ceil(count / hop))
        padded = np.zeros(blocks * hop + n, np.complex64)
        padded[:x.size] = x
        idx = np.arange(blocks)[:, None] * hop + np.arange(n)[None, :]
        spectrum = np.fft.fft(padded[idx], axis=1)
        best = np.full((blocks, hop), -1.0)
        best_bin = np.zeros((blocks, hop), np.int64)
        for b in self.bins:
            c = np.fft.ifft(np.roll(spectrum, -int(b), axis=1) * self._conj_t, axis=1)[:, :hop]
            p = c.real ** 2 + c.imag ** 2
            better = p > best
            best[better] = p[better]
            best_bin[better] = b
        e_x = running_energy(x, L)
        power = best.reshape(-1)[:count]
        rho = power / np.maximum(self._energy_t * e_x, 1e-300)
        return np.clip(rho, 0, 1), best_bin.reshape(-1)[:count]

    def detect(self, x: np.ndarray, min_distance: int | None = None) -> list[Detection]:
        rho, bins = self.metric(x)
        found = []
        for d in peaks(rho, self.threshold, min_distance or self.length):
            b = int(bins[d])
            # CFO: parabolic interpolation of |corr|^2 over the neighbouring bins at this position
            seg = np.asarray(x[d:d + self.length], np.complex64)
            n = np.arange(self.length)
            vals = []
            for db in (-1, 0, 1):
                f = (b + db) * self.bin_hz
                vals.append(abs(np.sum(seg * np.exp(-2j * np.pi * f / self.sample_rate * n)
                                       * np.conj(self.template))) ** 2)
            frac = parabolic(np.asarray(vals), 1)
            found.append(Detection(d, (b + frac) * self.bin_hz, float(rho[d]), d + parabolic(rho, d)))
        return found


def chirp(length: int, bandwidth: float, sample_rate: float, up: bool = True) -> np.ndarray:
    """A linear chirp of `length` samples sweeping -B/2 .. +B/2 (up) or +B/2 .. -B/2 (down), unit power."""
    n = np.arange(length, dtype=np.float64)
    k = bandwidth / sample_rate / length                   # sweep in cycles per sample^2
    phase = np.pi * k * n ** 2 - np.pi * bandwidth / sample_rate * n
    x = np.exp(1j * phase)
    return (x if up else np.conj(x)).astype(np.complex64)


class ChirpPairDetector:
    """Up-chirp + down-chirp preamble (module docstring): `detect(x)` -> [Detection] with timing and CFO."""

    def __init__(self, length: int, bandwidth: float, sample_rate: float, max_cfo_hz: float,
                 false_alarms_per_hour: float = 0.1, confirm_probability: float = 1e-3):
        self.length, self.bandwidth, self.sample_rate = int(length), float(bandwidth), float(sample_rate)
        self.max_cfo_hz = float(max_cfo_hz)
        self.up = chirp(self.length, bandwidth, sample_rate, up=True)
        self.down = chirp(self.length, bandwidth, sample_rate, up=False)
        self.preamble = np.concatenate([self.up, self.down])
        self.max_shift = int(math.ceil(self.max_cfo_hz * self.length / self.bandwidth)) + 2
        self.threshold = threshold_for_rate(false_alarms_per_hour, sample_rate, self.length)
        # the down-chirp is only looked for next to an up-chirp peak: 4 max_shift + 1 positions
        self.confirm_threshold = threshold_for_probability(confirm_probability / (4 * self.max_shift + 1),
                                                           self.length)

    @property
    def false_alarms_per_hour(self) -> float:
        return expected_rate(self.threshold, self.sample_rate, self.length)

    def detect(self, x: np.ndarray) -> list[Detection]:
        """Every preamble in x. The buffer is padded with 2 max_shift zeros on each side: a CFO moves the
        up-chirp's peak up to max_shift samples before the preamble, so a burst at the very start of a
        buffer (or a down-chirp at its end) still has its peak inside."""
        pad = 2 * self.max_shift
        x = np.concatenate([np.zeros(pad, np.complex64), np.asarray(x, np.complex64), np.zeros(pad, np.complex64)])
        return [Detection(d.start - pad, d.cfo_hz, d.metric, d.timing - pad) for d in self._detect(x)
                if 0 <= d.start - pad]

    def _detect(self, x: np.ndarray) -> list[Detection]:
        L, s = self.length, self.max_shift
        rho_up, c_up = normalized_correlation(x, self.up)
        found = []
        for du in peaks(rho_up, self.threshold, 2 * L):
            lo, hi = du + L - 2 * s, du + L + 2 * s + 1
            if lo < 0 or hi + L > x.size:
                continue
            rho_dn, c_dn = normalized_correlation(x[lo:hi + L - 1], self.down)
            if rho_dn.size == 0:
                continue
            j = int(np.argmax(rho_dn))
            if rho_dn[j] <= self.confirm_threshold:
                continue
            tu = du + parabolic(np.abs(c_up), du)
            td = lo + j + parabolic(np.abs(c_dn), j)
            start = 0.5 * (tu + td - L)
            cfo = (td - L - tu) * self.bandwidth / (2 * L)
            start_i = int(round(start))
            if start_i < 0 or start_i + 2 * L > x.size:
                continue
            cfo = refine_cfo(x[start_i:start_i + 2 * L], self.preamble, cfo, self.sample_rate)
            found.append(Detection(start_i, cfo, float(min(rho_up[du], rho_dn[j])), start))
        return found


def refine_cfo(segment: np.ndarray, template: np.ndarray, cfo_hz: float, sample_rate: float,
               parts: int = 16, rounds: int = 2) -> float:
    """CFO from the phase slope of the coherent correlation of `parts` consecutive template parts.

    After removing `cfo_hz`, part p correlates to A e^{j(phi + 2 pi df p M / fs)} (M samples per part); the
    amplitude-weighted least-squares slope of the unwrapped phases gives df. Two rounds: the second starts
    from the first's estimate, so the phase steps are small enough to unwrap at low SNR."""
    n = np.arange(segment.size)
    m = segment.size // parts
    for _ in range(rounds):
        y = segment * np.exp(-2j * np.pi * cfo_hz / sample_rate * n) * np.conj(template)
        z = y[:parts * m].reshape(parts, m).sum(1)
        # phase steps between consecutive parts, averaged coherently (robust to noise)
        step = np.angle(np.sum(z[1:] * np.conj(z[:-1])))
        cfo_hz += step * sample_rate / (2 * np.pi * m)
    return float(cfo_hz)
