"""FrameConfig: the numerology of the over-the-air burst frame, one validated dataclass (no Sionna import).

Defaults (see docs/over-the-air.md): 2 MS/s, 64-point FFT (31.25 kHz subcarriers), cyclic prefix 16
(8 us, 1/4), 6 + 5 guard subcarriers and a null DC carrier (52 used), 9 scattered pilots in every OFDM
symbol so each symbol carries its own phase and timing reference. SNR everywhere is Es/N0 per resource
element (link_models' convention): signal power in the 52 used subcarriers over the noise in them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from meg_common.config import ConfigMixin
from meg_common.errors import InputError
from meg_common.vocabulary import CARRIERS, values

SCHEMES = values(CARRIERS)


@dataclass(frozen=True)
class FrameConfig(ConfigMixin):
    """Settings shared by the transmitter and the receiver of the OTA frame (both must agree)."""

    sample_rate: float = 2e6
    fft_size: int = 64
    cp_length: int = 16
    guard_carriers: tuple[int, int] = (6, 5)
    num_pilots: int = 9                 # pilot subcarriers in every OFDM symbol (edges included)
    preamble_repeats: int = 4           # periods of fft_size/2 samples in the detection preamble
    header_symbols: int = 6             # OFDM symbols of the QPSK + LDPC (rate ~1/3) header
    codewords_per_frame: int = 2        # digital: LDPC codewords per frame (last frame may carry fewer)
    values_per_frame: int = 2048        # analog: real values per frame (two per resource element)
    detector: str = "schmidl-cox"       # or "matched": coherent matched filter over a CFO grid (ota.detector)
    detection_threshold: float = 0.2    # Schmidl-Cox metric |P|^2/(E1 E2) in [0, 1]; noise: P(>t) = (1-t)^(W-1)
    max_cfo_hz: float | None = None     # integer-CFO search range; None: min(150 kHz, fs/4) (2 x 25 ppm at 2.4 GHz)
    timing_backoff: int = 3             # FFT window starts this many samples early, inside the CP
    gap_samples: int = 400              # silence between frames of a burst
    # the low-SNR burst mode (link_models.ota.lowsnr): chirp preamble, protected header, frames at offsets
    chirp_length: int = 1024            # samples per chirp; the preamble is an up-chirp and a down-chirp
    false_alarms_per_hour: float = 0.1  # target of the matched-filter detectors' closed-form threshold
    low_snr_header_repetitions: int = 16  # the rate-1/5 header codeword is sent this many times (0.025 bit/RE)

    def __post_init__(self) -> None:
        for name in ("fft_size", "num_pilots", "preamble_repeats", "header_symbols", "codewords_per_frame",
                     "values_per_frame"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name}={value!r}: must be a positive integer")
        if self.fft_size < 16 or self.fft_size % 4 or self.fft_size > 4096:
            raise InputError(f"fft_size={self.fft_size}: use a multiple of 4 between 16 and 4096 (e.g. 64)")
        if not (isinstance(self.cp_length, int) and 0 < self.cp_length <= self.fft_size // 2):
            raise InputError(f"cp_length={self.cp_length!r}: must be an integer in [1, fft_size/2]")
        if not 0 <= self.timing_backoff < self.cp_length:
            raise InputError(f"timing_backoff={self.timing_backoff}: must be in [0, cp_length)")
        left, right = self.guard_carriers
        if left < 1 or right < 1 or left + right + 1 >= self.fft_size // 2:
            raise InputError(f"guard_carriers={self.guard_carriers}: need >= 1 on each side and most "
                             "subcarriers left for data")
        if not 2 <= self.num_pilots <= self.num_used_subcarriers // 3:
            raise InputError(f"num_pilots={self.num_pilots}: use between 2 and {self.num_used_subcarriers // 3}")
        if self.preamble_repeats < 3:
            raise InputError("preamble_repeats must be >= 3 (the detector correlates over repeats - 1 periods)")
        if not (math.isfinite(self.sample_rate) and 1e5 <= self.sample_rate <= 61.44e6):
            raise InputError(f"sample_rate={self.sample_rate!r}: must be between 100 kS/s and 61.44 MS/s")
        if self.detector not in ("schmidl-cox", "matched"):
            raise InputError(f"detector '{self.detector}': choose schmidl-cox or matched")
        if not 0.05 <= self.detection_threshold < 1:
            raise InputError(f"detection_threshold={self.detection_threshold}: must be in [0.05, 1)")
        if self.max_cfo_hz is not None and not 0 <= self.max_cfo_hz <= self.sample_rate / 4:
            raise InputError(f"max_cfo_hz={self.max_cfo_hz}: must be in [0, sample_rate/4]")
        if not (isinstance(self.chirp_length, int) and 256 <= self.chirp_length <= 1 << 16
                and self.chirp_length % self.fft_size == 0):
            raise InputError(f"chirp_length={self.chirp_length!r}: use a multiple of fft_size between 256 and 65536")
        if not 1e-6 <= self.false_alarms_per_hour <= 3600:
            raise InputError(f"false_alarms_per_hour={self.false_alarms_per_hour}: must be in [1e-6, 3600]")
        if not (isinstance(self.low_snr_header_repetitions, int) and 1 <= self.low_snr_header_repetitions <= 64):
            raise InputError(f"low_snr_header_repetitions={self.low_snr_header_repetitions!r}: use 1..64")
        if self.gap_samples < 0:
            raise InputError(f"gap_samples={self.gap_samples}: must be >= 0")

    # --- derived numerology ---------------------------------------------------------------------------------
    @property
    def subcarrier_spacing(self) -> float:
        return self.sample_rate / self.fft_size

    @property
    def cfo_search_hz(self) -> float:
        return min(150e3, self.sample_rate / 4) if self.max_cfo_hz is None else self.max_cfo_hz

    @property
    def chirp_bandwidth(self) -> float:
        """The chirps sweep the used band: (used subcarriers) x (subcarrier spacing)."""
        return self.num_used_subcarriers * self.subcarrier_spacing

    @property
    def symbol_length(self) -> int:
        return self.fft_size + self.cp_length

    @property
    def num_used_subcarriers(self) -> int:
        return self.fft_size - sum(self.guard_carriers) - 1

    @cached_property
    def used_bins(self) -> np.ndarray:
        """Used subcarriers as FFT bin indices in natural (unshifted) order, DC excluded."""
        left, right = self.guard_carriers
        shifted = [i for i in range(left, self.fft_size - right) if i != self.fft_size // 2]
        return (np.asarray(shifted) - self.fft_size // 2) % self.fft_size

    @cached_property
    def pilot_subcarriers(self) -> np.ndarray:
        """Indices (among the used subcarriers) carrying a pilot in every OFDM symbol, edges included."""
        return np.unique(np.round(np.linspace(0, self.num_used_subcarriers - 1, self.num_pilots)).astype(int))

    @property
    def data_subcarriers_per_symbol(self) -> int:
        return self.num_used_subcarriers - len(self.pilot_subcarriers)

    @property
    def preamble_period(self) -> int:
        return self.fft_size // 2

    @property
    def preamble_length(self) -> int:
        """Detection part (CP + repeats x half symbol) plus the integer-CFO/timing symbol (CP + FFT)."""
        return self.sync_length + self.symbol_length

    @property
    def sync_length(self) -> int:
        return self.cp_length + self.preamble_repeats * self.preamble_period

    @property
    def header_start(self) -> int:
        return self.preamble_length

    @property
    def data_start(self) -> int:
        return self.preamble_length + self.header_symbols * self.symbol_length

    def frame_length(self, data_symbols: int) -> int:
        return self.data_start + data_symbols * self.symbol_length


def check_scheme(scheme: str) -> str:
    scheme = str(scheme).lower()
    if scheme not in SCHEMES:
        raise InputError(f"unknown scheme '{scheme}'; choose one of {', '.join(SCHEMES)}")
    return scheme
