"""The capacity bound: the fewest complex channel uses any digital scheme could carry a payload in.

A payload of B bits can arrive intact over N complex channel uses at signal-to-noise ratio SNR (Es/N0 per
channel use, the `snr_db` of the other links) iff

    B <= N C,    C = log2(1 + SNR)                       (AWGN, Shannon)
    C = E[log2(1 + SNR |h|^2)] = log2(e) e^(1/SNR) E1(1/SNR)   (ergodic capacity of Rayleigh fading, h ~ CN(0, 1))

so `channel_uses(B, snr_db) = ceil(B / C)`. Coding over a finite block costs more; the finite-blocklength
variant uses the normal approximation of Polyanskiy, Poor and Verdu ("Channel coding rate in the finite
blocklength regime", IEEE Trans. Inf. Theory 56(5), 2010, eq. (296) for the real AWGN channel), written for
N complex uses = 2N real uses at the same SNR:

    log2 M*(N, eps) ~= N C - sqrt(N V) Q^-1(eps) log2(e) + 1/2 log2(2N)
    V = SNR (SNR + 2) / (SNR + 1)^2    (the channel dispersion per complex use, in nats^2)

the largest number of bits a code of N channel uses can carry with block error rate eps. The normal
approximation is for AWGN only. With `epsilon` set, `CapacityLink` loses the block with probability eps
(drawn from its own generator), so the bound behaves like a link with that error rate; without it the
payload always arrives. There are no pilots, cyclic prefix or frames: every channel use carries data.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.special import exp1
from scipy.stats import norm

from link_models.link import check_seed, not_carried
from link_models.stats import LinkStats
from meg_common import validate
from meg_common.errors import InputError
from meg_common.vocabulary import CAPACITY_CHANNELS, values

CHANNELS = values(CAPACITY_CHANNELS)
LOG2E = math.log2(math.e)


def capacity(snr_db: float, channel: str = "awgn") -> float:
    """Bits per complex channel use: log2(1 + SNR) on AWGN, the ergodic capacity on Rayleigh fading."""
    snr = 10 ** (validate.number("snr_db", snr_db, -100, 100, unit=" dB") / 10)
    validate.choice("channel", channel, CHANNELS)
    if channel == "awgn":
        return math.log2(1 + snr)
    # E[ln(1 + snr X)], X ~ Exp(1), = e^(1/snr) E1(1/snr); exp1 * exp overflows only beyond snr ~ 1e-3 / 700
    return LOG2E * float(np.exp(1 / snr) * exp1(1 / snr)) if snr > 1 / 700 else LOG2E * _ergodic_small(snr)


def _ergodic_small(snr: float) -> float:
    """E[ln(1 + snr X)] for tiny snr, by its asymptotic series snr - 2 snr^2 + 6 snr^3 (error ~ 24 snr^4)."""
    return snr - 2 * snr**2 + 6 * snr**3


def dispersion(snr_db: float) -> float:
    """Channel dispersion of complex AWGN per channel use in nats^2: SNR (SNR + 2) / (SNR + 1)^2."""
    snr = 10 ** (validate.number("snr_db", snr_db, -100, 100, unit=" dB") / 10)
    return snr * (snr + 2) / (snr + 1) ** 2


def max_bits(channel_uses: int, snr_db: float, epsilon: float | None = None, channel: str = "awgn") -> float:
    """The most bits N channel uses can carry: N C, or the normal approximation at block error rate epsilon."""
    n = validate.positive_int("channel_uses", channel_uses)
    c = capacity(snr_db, channel)
    if epsilon is None:
        return n * c
    eps = _epsilon(epsilon, channel)
    return n * c - math.sqrt(n * dispersion(snr_db)) * norm.isf(eps) * LOG2E + 0.5 * math.log2(2 * n)


def channel_uses(bits: int, snr_db: float, epsilon: float | None = None, channel: str = "awgn") -> int:
    """The fewest complex channel uses N with max_bits(N) >= bits (see the module doc for the formulas)."""
    bits = validate.positive_int("bits", bits)
    c = capacity(snr_db, channel)
    if epsilon is None:
        n = max(1, math.ceil(bits / c))
        return n - 1 if n > 1 and (n - 1) * c >= bits else n  # guard against rounding of bits / c
    eps = _epsilon(epsilon, channel)
    a = math.sqrt(dispersion(snr_db)) * norm.isf(eps) * LOG2E

    def f(n: int) -> float:
        return n * c - math.sqrt(n) * a + 0.5 * math.log2(2 * n)

    def first(lo: int, hi: int) -> int:
        """Smallest n in [lo, hi] with f(n) >= bits, f increasing on [lo, hi] and f(hi) >= bits."""
        if f(lo) >= bits:
            return lo
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if f(mid) < bits else (lo, mid)
        return hi

    # With t = sqrt(n), df/dt = 2 c t - a + 1 / (t ln 2): f rises, may fall between the roots t1 < t2 of
    # 2 c t^2 - a t + 1/ln 2, then rises for good; search the first rising piece, then the last one.
    disc = a * a - 8 * c / math.log(2)
    start = 1
    if disc > 0:
        t1, t2 = (a - math.sqrt(disc)) / (4 * c), (a + math.sqrt(disc)) / (4 * c)
        peak = max(1, math.floor(t1 * t1))
        peak = peak + 1 if f(peak + 1) > f(peak) else peak
        if f(peak) >= bits:
            return first(1, peak)
        start = max(peak, math.floor(t2 * t2))
    hi = max(start + 1, 2 * math.ceil(bits / c))
    while f(hi) < bits:
        hi *= 2
    return first(start, hi)


def _epsilon(epsilon, channel: str) -> float:
    eps = validate.number("epsilon", epsilon, 0, 1)
    if not 0 < eps < 0.5:
        raise InputError(f"epsilon={epsilon!r}: the block error rate of the normal approximation must be in "
                         "(0, 0.5); give e.g. 1e-3, or None for the capacity itself")
    if channel != "awgn":
        raise InputError(f"the normal approximation is for AWGN; use channel='awgn' or epsilon=None with {channel}")
    return eps


@dataclass
class CapacityConfig:
    """Settings of the capacity bound.

    snr_db: Es/N0 per complex channel use (the links' `snr_db`); channel: awgn | rayleigh (ergodic);
    epsilon: None (capacity) or the block error rate of the normal approximation (AWGN only);
    symbol_rate_hz: channel uses per second, only for `airtime_s` (default 128 x 30 kHz, the OFDM links'
    data-RE rate without pilots or cyclic prefix).
    """

    snr_db: float = 10.0
    channel: str = "awgn"
    epsilon: float | None = None
    symbol_rate_hz: float = 128 * 30e3

    def __post_init__(self) -> None:
        self.channel = str(self.channel).lower()
        validate.choice("channel", self.channel, CHANNELS)
        self.snr_db = validate.number("snr_db", self.snr_db, -100, 100, unit=" dB")
        if self.epsilon is not None:
            self.epsilon = _epsilon(self.epsilon, self.channel)
        self.symbol_rate_hz = validate.positive_float("symbol_rate_hz", self.symbol_rate_hz)

    def to_dict(self) -> dict:
        return asdict(self)


class CapacityLink:
    """The bound as a link (`link_models.link.Link`, scheme "digital"): `send_bytes(payload) -> (payload,
    stats)`, the payload sent as one block over the fewest channel uses that could carry it.

    stats: `payload_bits` B, `data_symbols` = `total_symbols` = channel_uses(B) (no pilots, no CP), one
    codeword, `block_errors` (0 unless epsilon is set and the block was lost), `airtime_s`, `snr_db`, and
    `ebno_db` = snr_db - 10 log10(B / N).
    """

    schemes = ("digital",)

    def __init__(self, cfg: CapacityConfig | None = None, seed: int | None = 0):
        if cfg is not None and not isinstance(cfg, CapacityConfig):
            raise InputError("CapacityLink needs a CapacityConfig; build one with CapacityConfig(...)")
        self.cfg = cfg or CapacityConfig()
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the random stream (used only to draw block losses when epsilon is set)."""
        self.generator.manual_seed(check_seed(seed))

    def send_values(self, values: torch.Tensor):
        raise not_carried(self, "values")

    def channel_uses(self, bits: int) -> int:
        return channel_uses(bits, self.cfg.snr_db, self.cfg.epsilon, self.cfg.channel)

    def __call__(self, payload: bytes) -> tuple[bytes, LinkStats]:
        return self.send_bytes(payload)

    def send_bytes(self, payload: bytes) -> tuple[bytes, LinkStats]:
        """Bytes (>= 1) -> (the same bytes, or random bytes if the block is lost; LinkStats)."""
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise InputError(f"send_bytes needs bytes, got {type(payload).__name__}")
        payload = bytes(payload)
        if not payload:
            raise InputError("nothing to send: the payload is empty; give at least one byte")
        bits = 8 * len(payload)
        uses = self.channel_uses(bits)
        lost = self.cfg.epsilon is not None and bool(torch.rand((), generator=self.generator) < self.cfg.epsilon)
        received = payload
        if lost:  # a failed decoder's output: unrelated bits (a CRC catches it)
            received = bytes(torch.randint(0, 256, (len(payload),), generator=self.generator,
                                           dtype=torch.uint8).tolist())
        bit_errors = int(np.unpackbits(np.frombuffer(payload, np.uint8) ^ np.frombuffer(received, np.uint8)).sum())
        stats = LinkStats(
            payload_bits=bits, coded_bits=0, data_symbols=uses, total_symbols=uses, frames=0, codewords=1,
            bit_errors=bit_errors, ber=bit_errors / bits, block_errors=int(lost), bler=float(lost),
            airtime_s=uses / self.cfg.symbol_rate_hz, snr_db=self.cfg.snr_db,
            ebno_db=self.cfg.snr_db - 10 * math.log10(bits / uses), snr_est_db=self.cfg.snr_db,
            noise_var=10 ** (-self.cfg.snr_db / 10))
        return received, stats
