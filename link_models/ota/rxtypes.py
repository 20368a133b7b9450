"""What the burst receivers return (link_models.ota.receiver, link_models.ota.lowsnr), and the small helpers
both use: per-detection sync, decoded frames, the result of one receive call, stage timing, CFO removal."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from link_models.ota.header import FrameHeader

STAGES = ("frontend", "detect", "sync", "ofdm", "demap", "ldpc")


@dataclass
class Sync:
    """What the preamble told about one detection."""

    start: int            # index of the frame's first sample (sync CP) in the buffer
    metric: float
    cfo_hz: float
    cfo_quality: float
    noise_var: float      # per sample == per resource element (orthonormal FFT)
    snr_est_db: float


@dataclass
class DecodedFrame:
    sync: Sync
    header: FrameHeader
    end: int                               # one past the frame's last sample
    crc_ok: bool = False
    payload: bytes | None = None           # digital, when the CRC passed
    info_bits: np.ndarray | None = None    # digital: [units, k] decoded information bits
    values: np.ndarray | None = None       # analog: value estimates
    value_var: np.ndarray | None = None    # analog: per-value noise variance
    symbols: np.ndarray | None = None      # equalised data symbols (for constellation plots)
    no_eff: float | None = None            # mean effective noise variance of those symbols

    @property
    def start(self) -> int:
        return self.sync.start

    @property
    def cfo_hz(self) -> float:
        return self.sync.cfo_hz

    @property
    def snr_est_db(self) -> float:
        return self.sync.snr_est_db


@dataclass
class ReceiveResult:
    frames: list[DecodedFrame] = field(default_factory=list)
    detections: int = 0
    header_rejected: int = 0   # detections without a valid header (a frame too weak, or a noise trigger)
    rejected_starts: list[int] = field(default_factory=list)   # where those detections put a frame start
    truncated: int = 0         # frames cut by the end of the buffer
    samples: int = 0
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    seconds: float = 0.0       # the whole receive call (every stage and the bookkeeping), by the receiver's timer

    @property
    def rejected(self) -> int:
        """Former name of `header_rejected`."""
        return self.header_rejected


def _rotate(x: np.ndarray, start: int, length: int, cfo_hz: float, fs: float) -> np.ndarray:
    """x[start:start+length] (zero-padded outside the buffer) with the CFO removed (absolute time base)."""
    seg = np.zeros(length, np.complex64)
    lo, hi = max(start, 0), min(start + length, x.size)
    if hi > lo:
        seg[lo - start:hi - start] = x[lo:hi]
    phase = np.mod((-2 * np.pi * cfo_hz / fs) * np.arange(start, start + length, dtype=np.float64), 2 * np.pi)
    phase = phase.astype(np.float32)
    rot = np.empty(length, np.complex64)
    rot.real, rot.imag = np.cos(phase), np.sin(phase)
    return seg * rot


def _drop_overlaps(frames: list[DecodedFrame]) -> list[DecodedFrame]:
    kept: list[DecodedFrame] = []
    for f in sorted(frames, key=lambda f: f.start):
        if kept and f.start < kept[-1].end:
            continue
        kept.append(f)
    return kept


class _Clock:
    def __init__(self, timings: dict[str, float], timer=time.perf_counter):
        self.timings, self.timer = timings, timer
        self.t = timer()

    def lap(self, stage: str) -> None:
        now = self.timer()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self.t
        self.t = now
