"""The low-SNR burst mode: one long chirp preamble and one heavily protected header per burst, frames at
announced offsets, the channel from the preamble, phase and timing tracked over the whole burst.

    | up-chirp L | down-chirp L | header: H OFDM symbols          | frame 0: S symbols | frame 1 | ... | gap |
      detection, timing and CFO   184-bit BurstHeader (CRC-16),     the data grids of the legacy frame
      (ChirpPairDetector), the    QPSK, 5G LDPC k=184 n=920 sent    (link_models.ota.ofdm.OTAGrid: same
      channel (LS over the        `low_snr_header_repetitions` (16)  pilots, same payload codecs), back to
      preamble's spectrum)        times: 0.025 bit per RE, H = 172   back, no per-frame preamble

Why: at -10 dB Es/N0 a Schmidl-Cox autocorrelation over 96 samples cannot see the frame and a 164-bit
header at 0.64 bit/RE cannot be decoded. The chirp pair (2 x 1024 samples, L = FrameConfig.chirp_length)
gives a coherent matched filter about 19 dB of gain at any CFO within +-150 kHz
(link_models.ota.detector); the header code (rate-1/5 LDPC, the LLRs of its repetitions added): with DC
offset, IQ imbalance and +-50 ppm it decoded 200/200 bursts at -10 dB with 16 repetitions, where 12
(0.033 bit/RE) lost 3/150 at -10.5 dB and 8 (0.05 bit/RE) 2/60 at -10 dB. The burst header announces
the frames (count, units per frame and in the last one, first sequence number, total, message id, the
analog scale), so the receiver knows every frame's offset.

Channel: the preamble's spectrum divided by the known one, 32 FFT bins per subcarrier, then projected
onto channel taps -2..+6 samples (least squares over the used subcarriers): at -10 dB one subcarrier's
raw value has an error of 0.3 of |h|^2 and a zero-forcing equaliser on it loses about 2 dB; projected,
the loss is about 0.3 dB; with the pilots of the whole burst added (below), about 0.1-0.25 dB.

Tracking (what Sionna lacks for a burst this long at this SNR): all OFDM symbols of the burst (header and
frames) are one sequence. For blocks of 16 symbols the residual timing drift d (sample-clock offset) is
the delay maximising |sum_p g_p e^{-j 2 pi d k_p / N}| over the block's pilot sums g_p, fitted by a line
over the burst; each frame is demodulated with its FFT windows moved against the drift that line predicts
from the symbols before it, so bursts longer than the cyclic prefix allows (65 ms at 60 ppm) stay
aligned. The common phase of every symbol (residual CFO, oscillator phase noise) is the angle of its
pilots' correlation summed over a window of 21 symbols centred on it (a smoother; no unwrapping needed).
The noise level comes from the guard subcarriers of the header and frames.
"""

from __future__ import annotations

import binascii
import math
import struct
from dataclasses import dataclass

import numpy as np
import torch

from link_models.config import MODULATIONS
from link_models.ota.config import FrameConfig
from link_models.ota.header import CODE_NAMES, MODULATION_NAMES, SCHEME_NAMES, FrameHeader
from meg_common.errors import InputError

LOW_SNR_VERSION = 2
_FIELDS = (("version", 4), ("scheme", 1), ("modulation", 3), ("repetitions", 4), ("k", 16), ("n", 16), ("units", 16),
           ("last_units", 16), ("last_length", 16), ("frames", 8), ("first_seq", 16), ("total", 16),
           ("msg_id", 8), ("scale", 32))
BURST_HEADER_BITS = sum(w for _, w in _FIELDS) + 16
PHASE_WINDOW = 21         # symbols in the phase smoother
CHANNEL_TAPS = (2, 6)     # the channel estimate keeps taps -2 .. +6 samples (3 us at 2 MS/s: indoor, TDL)
DRIFT_BLOCK = 16          # symbols per timing-drift estimate
DRIFT_OUTLIER = 1.5       # samples: a drift estimate this far from the fitted line is dropped (see _line)


@dataclass(frozen=True)
class BurstHeader:
    """What one low-SNR burst carries: `frames` frames of `units` units each (the last `last_units`)."""

    scheme: str
    modulation: str
    k: int
    n: int
    units: int
    last_units: int
    last_length: int       # digital: payload bytes in the last frame (the others: units * k / 8 - 4)
    frames: int
    first_seq: int
    total: int
    msg_id: int
    scale: float = 1.0
    repetitions: int = 1   # digital: every coded symbol of a frame is sent this many times (LLRs added)

    @property
    def code(self) -> str:
        return "ldpc" if self.scheme == "digital" else "none"

    def to_bits(self) -> np.ndarray:
        fields = {**{name: getattr(self, name) for name, _ in _FIELDS if hasattr(self, name)},
                  "version": LOW_SNR_VERSION, "scheme": SCHEME_NAMES.index(self.scheme),
                  "modulation": MODULATION_NAMES.index(self.modulation), "repetitions": self.repetitions - 1,
                  "scale": struct.unpack(">I", struct.pack(">f", float(self.scale)))[0]}
        value = 0
        for name, width in _FIELDS:
            field = int(fields[name])
            if not 0 <= field < (1 << width):
                raise ValueError(f"burst header field {name}={field} does not fit in {width} bits")
            value = (value << width) | field
        body = value.to_bytes((BURST_HEADER_BITS - 16 + 7) // 8, "big")
        value = (value << 16) | binascii.crc_hqx(body, 0xFFFF)
        return np.asarray([(value >> (BURST_HEADER_BITS - 1 - i)) & 1 for i in range(BURST_HEADER_BITS)],
                          np.float32)

    @classmethod
    def from_bits(cls, bits) -> BurstHeader | None:
        bits = np.asarray(bits).reshape(-1)
        if bits.size != BURST_HEADER_BITS:
            return None
        value = 0
        for b in (bits > 0.5):
            value = (value << 1) | int(b)
        body_value = value >> 16
        if binascii.crc_hqx(body_value.to_bytes((BURST_HEADER_BITS - 16 + 7) // 8, "big"), 0xFFFF) != value & 0xFFFF:
            return None
        f, shift = {}, BURST_HEADER_BITS - 16
        for name, width in _FIELDS:
            shift -= width
            f[name] = (body_value >> shift) & ((1 << width) - 1)
        if (f["version"] != LOW_SNR_VERSION or f["modulation"] >= len(MODULATION_NAMES) or f["frames"] < 1
                or f["units"] < 1 or f["last_units"] < 1 or f["first_seq"] + f["frames"] > f["total"]):
            return None
        scale = struct.unpack(">f", struct.pack(">I", f["scale"]))[0]
        h = cls(SCHEME_NAMES[f["scheme"]], MODULATION_NAMES[f["modulation"]], f["k"], f["n"], f["units"],
                f["last_units"], f["last_length"], f["frames"], f["first_seq"], f["total"], f["msg_id"], scale,
                f["repetitions"] + 1)
        return h if all(fh.is_consistent() for fh in h.frame_headers()) else None

    def frame_headers(self) -> list[FrameHeader]:
        """The legacy per-frame headers these frames would have had (reassembly and links use them)."""
        out = []
        for i in range(self.frames):
            last = i == self.frames - 1
            units = self.last_units if last else self.units
            if self.scheme == "digital":
                length = self.last_length if last else self.units * self.k // 8 - 4
            else:
                length = 0
            out.append(FrameHeader(self.scheme, self.modulation, self.code, self.k, self.n, units, length,
                                   self.first_seq + i, self.total, self.msg_id, self.scale))
        return out

    @classmethod
    def for_frames(cls, headers: list[FrameHeader], repetitions: int = 1) -> BurstHeader:
        first, last = headers[0], headers[-1]
        return cls(first.scheme, first.modulation, first.k, first.n, first.units, last.units, last.length,
                   len(headers), first.seq, first.total, first.msg_id, first.scale, repetitions)


class LowSnrCodec:
    """Preamble, burst-header code and grids of the low-SNR mode; data grids and payload codecs are the
    legacy frame codec's (`frame_codec`, a link_models.ota.frame.FrameCodec)."""

    def __init__(self, frame_codec):
        from link_models.ota.detector import ChirpPairDetector
        from link_models.ota.frame import PayloadCodec
        from link_models.ota.ofdm import OTAGrid

        self.frame_codec = frame_codec
        self.cfg: FrameConfig = frame_codec.cfg
        cfg = self.cfg
        self.detector = ChirpPairDetector(cfg.chirp_length, cfg.chirp_bandwidth, cfg.sample_rate, cfg.cfo_search_hz,
                                          cfg.false_alarms_per_hour)
        # same mean power per sample as the OFDM part (unit energy per used resource element)
        self.preamble = (self.detector.preamble * math.sqrt(cfg.num_used_subcarriers / cfg.fft_size)).astype(np.complex64)
        k = BURST_HEADER_BITS
        self.header_n = 5 * k + (5 * k) % 2
        self.header_code = PayloadCodec("qpsk", "ldpc", k, self.header_n, frame_codec.device,
                                        frame_codec.ldpc_iterations)
        self.repetitions = cfg.low_snr_header_repetitions
        self.header_res = self.repetitions * self.header_n // 2
        self.header_symbols = math.ceil(self.header_res / cfg.data_subcarriers_per_symbol)
        self.header_grid = OTAGrid(cfg, self.header_symbols, "lin", frame_codec.device)
        self._index: dict[int, np.ndarray] = {}

    @property
    def header_bits_per_re(self) -> float:
        return BURST_HEADER_BITS / self.header_res

    @property
    def header_start(self) -> int:
        return self.preamble.size

    @property
    def data_start(self) -> int:
        return self.preamble.size + self.header_symbols * self.cfg.symbol_length

    def grid(self, symbols: int):
        return self.header_grid if symbols == self.header_symbols else self.frame_codec.grid(symbols)

    def data_index(self, symbols: int) -> np.ndarray:
        """Flat indices into a [symbols, fft_size] (shifted order) grid of its data resource elements, in
        the order Sionna's ResourceGridMapper fills them."""
        if symbols not in self._index:
            grid = self.grid(symbols)
            ramp = torch.arange(10, grid.num_data + 10, dtype=torch.float32).to(torch.complex64)
            mapped = grid.mapper(ramp.reshape(1, 1, 1, -1))[0, 0, 0].real.reshape(-1).numpy()
            order = np.argsort(mapped)[-grid.num_data:]
            self._index[symbols] = order[np.argsort(mapped[order])]
        return self._index[symbols]

    @torch.no_grad()
    def header_samples(self, header: BurstHeader) -> np.ndarray:
        coded = self.header_code.encode(torch.from_numpy(header.to_bits())[None, None])[0]     # [n/2] QPSK
        symbols = coded.repeat(self.repetitions)
        filled = self.frame_codec.fill(symbols[None], self.header_grid.num_data)
        return self.header_grid.modulate(filled)[0].numpy()

    @torch.no_grad()
    def frame_samples(self, symbols: torch.Tensor) -> tuple[np.ndarray, int]:
        fc = self.frame_codec
        num = fc.data_symbols_for(symbols.numel())
        grid = fc.grid(num)
        return grid.modulate(fc.fill(symbols[None], grid.num_data))[0].numpy(), num

    def burst(self, frames: list, gap: int | None = None) -> np.ndarray:
        """Preamble + burst header + the frames' data grids (Frame.samples of a low-SNR frame) + a gap."""
        header = BurstHeader.for_frames([f.header for f in frames], getattr(frames[0], "repetitions", 1))
        gap = self.cfg.gap_samples if gap is None else gap
        return np.concatenate([self.preamble, self.header_samples(header), *[f.samples for f in frames],
                               np.zeros(gap, np.complex64)]).astype(np.complex64)

    def data_res(self, h: FrameHeader, repetitions: int = 1) -> int:
        if h.scheme == "analog":
            return (h.units + 1) // 2
        return repetitions * h.units * h.n // MODULATIONS[h.modulation]


MAX_REPETITIONS = 16


def repetitions_for(modulation: str, code_rate: float, snr_db: float | None, gap_db: float = 3.0) -> int:
    """Copies of each coded symbol a digital low-SNR frame needs at `snr_db`: the SNR the code wants (its
    Shannon limit, 2^(m R) - 1, plus `gap_db` for a short 5G LDPC code and the over-the-air receiver)
    over the hop's, rounded up, 1..16. None (no noise): 1."""
    if snr_db is None or not math.isfinite(float(snr_db)):
        return 1
    need_db = 10 * math.log10(2 ** (MODULATIONS[modulation] * code_rate) - 1) + gap_db
    return int(min(MAX_REPETITIONS, max(1, math.ceil(10 ** ((need_db - float(snr_db)) / 10) - 1e-9))))


def low_snr_frames(builder, frames: list, repetitions: int = 1) -> list:
    """Legacy frames (link_models.ota.frame.Frame) -> the same frames as low-SNR burst frames: their
    samples are the data grid only (the burst adds one preamble and header per group of frames). Digital
    frames send their coded symbols `repetitions` times (1..16; the receiver adds the copies' LLRs)."""
    from link_models.ota.frame import Frame

    if not (isinstance(repetitions, int) and 1 <= repetitions <= MAX_REPETITIONS):
        raise InputError(f"repetitions={repetitions!r}: use 1..{MAX_REPETITIONS}")
    codec = LowSnrCodec.shared(builder.codec)
    out = []
    for f in frames:
        reps = repetitions if f.header.scheme == "digital" else 1
        symbols = torch.as_tensor(f.symbols)
        samples, num = codec.frame_samples(symbols.repeat(reps) if reps > 1 else symbols)
        frame = Frame(f.header, samples.astype(np.complex64), num, f.info_bits, f.symbols)
        frame.repetitions = reps
        out.append(frame)
    return out


_SHARED: dict = {}


def _shared(frame_codec) -> LowSnrCodec:
    key = id(frame_codec)
    if key not in _SHARED or _SHARED[key].frame_codec is not frame_codec:
        _SHARED[key] = LowSnrCodec(frame_codec)
    return _SHARED[key]


LowSnrCodec.shared = staticmethod(_shared)


class LowSnrReceiver:
    """`receive(buffer)` -> link_models.ota.rxtypes.ReceiveResult with every frame of every low-SNR burst."""

    def __init__(self, frame_codec, timer=None, threads: int | None = 1):
        import time

        self.threads = threads           # PyTorch threads while receiving (as FrameReceiver: one is fastest)
        self.codec = LowSnrCodec.shared(frame_codec)
        self.cfg = self.codec.cfg
        self.timer = timer or time.perf_counter
        cfg = self.cfg
        n = cfg.fft_size
        self._used = cfg.used_bins                                             # natural order
        self._shifted_used = (self._used + n // 2) % n                          # shifted order
        self._pilot_bins = np.sort(self._shifted_used)[cfg.pilot_subcarriers]
        self._pilot_freq = (self._pilot_bins - n // 2).astype(np.float64)
        self._bin_freq = (np.arange(n) - n // 2).astype(np.float64)
        self._pilot_values = self.codec.header_grid._pilots[0].numpy().astype(np.complex128)
        guard = np.ones(n, bool)
        guard[self._shifted_used] = False
        guard[[n // 2, n // 2 - 1, n // 2 + 1]] = False                          # DC and its neighbours
        edges = np.sort(self._shifted_used)
        guard[[max(edges[0] - 1, 0), min(edges[-1] + 1, n - 1)]] = False         # next to the band edges
        self._guard_bins = np.flatnonzero(guard)
        taps = np.arange(-CHANNEL_TAPS[0], CHANNEL_TAPS[1] + 1)
        self._shifted_sorted = np.sort(self._shifted_used)                      # used bins, shifted order
        self._f_used = np.exp(-2j * np.pi * np.outer(self._shifted_sorted - n // 2, taps) / n)
        self._f_pilots = np.exp(-2j * np.pi * np.outer(self._pilot_bins - n // 2, taps) / n)
        # timing-drift search: +-5 samples, the unambiguous range of pilots 6.4 subcarriers apart
        self._delays = np.linspace(-5, 5, 201)
        self._steer = np.exp(-2j * np.pi * self._delays[:, None] * self._pilot_freq[None] / n)

    def warm_up(self) -> float:
        """Pay the one-time costs (compiled LDPC decoder, first calls of the Sionna blocks) on one short
        synthetic burst; returns the seconds it took."""
        from link_models.ota.frame import FrameBuilder

        t0 = self.timer()
        builder = FrameBuilder(self.codec.frame_codec, "qpsk", "none", 2, 2)
        frames = low_snr_frames(builder, builder.analog_frames(np.array([1.0, -1.0])))
        burst = self.codec.burst(frames)
        self.receive(np.concatenate([np.zeros(500, np.complex64), burst]))
        return self.timer() - t0

    # --- one receive call --------------------------------------------------------------------------------------
    def receive(self, buffer: np.ndarray, decode_payload: bool = True, x: np.ndarray | None = None):
        previous = torch.get_num_threads()
        if self.threads is not None and self.threads != previous:
            torch.set_num_threads(self.threads)
        try:
            return self._receive(buffer, decode_payload, x)
        finally:
            if torch.get_num_threads() != previous:
                torch.set_num_threads(previous)

    @torch.no_grad()
    def _receive(self, buffer: np.ndarray, decode_payload: bool, x: np.ndarray | None):
        from link_models.ota.frontend import front_end
        from link_models.ota.rxtypes import STAGES, ReceiveResult, _Clock, _drop_overlaps

        result = ReceiveResult(samples=int(np.asarray(buffer).size), timings=dict.fromkeys(STAGES, 0.0))
        clock = _Clock(result.timings, self.timer)
        started = clock.t
        if x is None:
            x = front_end(np.asarray(buffer).reshape(-1))
            clock.lap("frontend")
        detections = self.codec.detector.detect(x)
        result.detections = len(detections)
        clock.lap("detect")
        frames = []
        for d in detections:
            got = self._burst(x, d, decode_payload, clock)
            if got is None:
                result.truncated += 1
            elif got == "rejected":
                result.header_rejected += 1
                result.rejected_starts.append(d.start)
            else:
                frames += got
        complete = [f for f in _drop_overlaps(frames) if f.end <= x.size]
        result.truncated += len(frames) - len(complete)
        result.frames = complete
        result.seconds = self.timer() - started
        return result

    # --- one burst ---------------------------------------------------------------------------------------------
    def _burst(self, x: np.ndarray, det, decode_payload: bool, clock):
        from link_models.ota.rxtypes import DecodedFrame, Sync

        cfg, codec = self.cfg, self.codec
        start, cfo = det.start, det.cfo_hz
        if start + codec.data_start > x.size:
            return None
        h, noise_pre = self._channel(x, start, cfo)
        hs = self._demod(x, start + codec.header_start, codec.header_symbols, cfo)
        noise = self._noise(hs, noise_pre)
        clock.lap("sync")
        eq, no_eff = self._equalize([hs], h, noise)
        x_hat = eq[0].reshape(-1)[codec.data_index(codec.header_symbols)][:codec.header_res]
        ne = no_eff[0].reshape(-1)[codec.data_index(codec.header_symbols)][:codec.header_res]
        clock.lap("ofdm")
        llr = codec.header_code.llr(torch.from_numpy(x_hat.astype(np.complex64))[None],
                                    torch.from_numpy(ne.astype(np.float32))[None])
        llr = llr.reshape(codec.repetitions, codec.header_n).sum(0, keepdim=True)
        clock.lap("demap")
        bits = codec.header_code.decode(llr, 1)[0, 0].numpy()
        clock.lap("ldpc")
        header = BurstHeader.from_bits(bits)
        if header is None:
            return "rejected"
        fheaders = header.frame_headers()
        reps = header.repetitions
        sizes = [codec.frame_codec.data_symbols_for(codec.data_res(fh, reps)) for fh in fheaders]
        offsets = np.concatenate([[0], np.cumsum(sizes)]) * cfg.symbol_length + start + codec.data_start
        fit = [i for i in range(len(sizes)) if offsets[i + 1] <= x.size]      # frames that fit whole
        fheaders, sizes = [fheaders[i] for i in fit], [sizes[i] for i in fit]
        # frames in order, each demodulated with its FFT windows moved against the timing drift predicted
        # by a line through the drift measured on the symbols before it (sample-clock offset: long bursts)
        grids, shifts, blocks, seen = [hs], [0], [self._blocks(hs, h, 0, 0)], codec.header_symbols
        for i in range(len(sizes)):
            c, d, w = (np.concatenate(v) for v in zip(*blocks, strict=True))
            centre = seen + (sizes[i] - 1) / 2
            pred = float(_line(c, d, w, 0, at=np.array([centre]))[0]) if c.size >= 2 else 0.0
            shift = -int(round(pred))
            grid = self._demod(x, int(offsets[i]) + shift, sizes[i], cfo)
            grids.append(grid)
            shifts.append(shift)
            blocks.append(self._blocks(grid, h, shift, seen))
            seen += sizes[i]
        eq, no_eff = self._equalize(grids, h, noise, shifts=shifts, blocks=blocks)
        clock.lap("ofdm")
        snr = 10 * math.log10(max(float(np.mean(np.abs(h[self._shifted_used]) ** 2)), 1e-30) / noise)
        out = []
        for i, fh in enumerate(fheaders):
            sync = Sync(int(offsets[i]), float(det.metric), float(cfo), 1.0, noise, snr)
            f = DecodedFrame(sync, fh, int(offsets[i]) + sizes[i] * cfg.symbol_length)
            num_re = codec.data_res(fh, reps)
            order = codec.data_index(sizes[i])
            xs = eq[i + 1].reshape(-1)[order][:num_re]
            ne = no_eff[i + 1].reshape(-1)[order][:num_re]
            f.repetitions = reps if fh.scheme == "digital" else 1
            f.copies = xs.astype(np.complex64)
            # the constellation and the link's statistics see the copies combined (their mean)
            f.symbols = xs.reshape(f.repetitions, -1).mean(0).astype(np.complex64)
            f.no_eff = float(np.mean(ne)) / f.repetitions
            f.burst_start = start
            f.no_eff_res = ne
            out.append(f)
        if decode_payload:
            self._payloads(out, clock)
        return out

    def _payloads(self, frames: list, clock) -> None:
        """Decode the frames of a burst, batched by shape (one demapper and decoder call per shape)."""
        from collections import defaultdict

        from link_models.mapping import from_symbols
        from link_models.ota.frame import take_decoded

        groups = defaultdict(list)
        for f in frames:
            groups[f.header.units].append(f)
        for units, members in groups.items():
            h = members[0].header
            xs = torch.from_numpy(np.stack([f.copies for f in members]))
            no = torch.from_numpy(np.stack([f.no_eff_res for f in members]).astype(np.float32))
            if h.scheme == "analog":
                scales = torch.tensor([[f.header.scale] for f in members], dtype=torch.float32)
                values, var = from_symbols(xs, scales, units, no)
                for f, v, w in zip(members, values.numpy(), var.numpy(), strict=True):
                    f.values, f.value_var = v.astype(np.float64), w.astype(np.float64)
                    f.crc_ok = True        # analog frames carry no CRC; the burst header's CRC vouches for them
                continue
            pc = self.codec.frame_codec.payload_codec(h.modulation, h.code, h.k, h.n)
            reps = members[0].repetitions
            llr = pc.llr(xs, no)
            llr = llr.reshape(llr.shape[0], reps, -1).sum(1)         # the copies' LLRs added
            clock.lap("demap")
            bits = pc.decode(llr, units).numpy()
            clock.lap("ldpc")
            take_decoded(members, bits)

    # --- estimation --------------------------------------------------------------------------------------------
    def _channel(self, x: np.ndarray, start: int, cfo: float) -> tuple[np.ndarray, float]:
        """Channel on every subcarrier (shifted order, [N]) from the preamble's spectrum, and the noise left
        after removing the template's scaled copy (per sample)."""
        from link_models.ota.rxtypes import _rotate

        cfg, p = self.cfg, self.codec.preamble
        m = p.size
        y = _rotate(x, start, m, cfo, cfg.sample_rate).astype(np.complex128)
        a = np.vdot(p, y) / np.vdot(p, p)
        noise = float(np.mean(np.abs(y - a * p) ** 2))
        Y, P = np.fft.fft(y), np.fft.fft(p.astype(np.complex128))
        n = cfg.fft_size
        ratio = m // n                                       # fine bins per subcarrier
        fine = np.fft.fftfreq(m) * m / ratio                 # each fine bin in subcarrier units
        sub = np.round(fine).astype(int) % n                 # the subcarrier it belongs to
        num = np.bincount(sub, weights=(Y * np.conj(P)).real, minlength=n) \
            + 1j * np.bincount(sub, weights=(Y * np.conj(P)).imag, minlength=n)
        den = np.bincount(sub, weights=np.abs(P) ** 2, minlength=n)
        h = np.where(den > 1e-9 * den.max(), num / np.maximum(den, 1e-30), 0)
        # the FFT windows of the OFDM symbols start `timing_backoff` early with the ramp removed by Sionna
        # (l_min), the same reference as the preamble's start: h applies as it is. Kept raw (shifted order)
        # with its error variance per subcarrier (bin noise m * noise over the bins' template energy);
        # `_fit` turns it into the channel estimate.
        var = np.where(den > 1e-9 * den.max(), m * noise / np.maximum(den, 1e-30), np.inf)
        self._raw = (np.fft.fftshift(h), np.fft.fftshift(var))
        return self._fit(), noise

    def _fit(self, pilots: np.ndarray | None = None, pilot_var: float | None = None) -> np.ndarray:
        """The channel on every subcarrier (shifted order): weighted least squares onto taps -2..+6 of the
        preamble's raw values (and, when given, the pilot subcarriers' averages over the burst's tracked
        symbols, error variance `pilot_var`). At -10 dB one subcarrier's raw preamble value is noisy (32 FFT
        bins of a 2048-sample preamble: error 1/(32 SNR) = 0.3 of |h|^2); the channel lives in a few taps,
        so the error shrinks by taps / 52, and the pilots of a burst of a few hundred symbols add about as
        much again."""
        h_raw, var = self._raw
        rows, obs, weights = [self._f_used], [h_raw[self._shifted_sorted]], [1 / var[self._shifted_sorted]]
        if pilots is not None:
            rows.append(self._f_pilots)
            obs.append(pilots)
            weights.append(np.full(pilots.size, 1 / max(pilot_var, 1e-30)))
        f, y, w = np.concatenate(rows), np.concatenate(obs), np.concatenate(weights)
        w = np.where(np.isfinite(w), w, 0.0)
        fw = f.conj().T * w
        taps = np.linalg.solve(fw @ f + 1e-12 * np.eye(f.shape[1]), fw @ y)
        h = np.zeros(self.cfg.fft_size, complex)
        h[self._shifted_sorted] = self._f_used @ taps
        return h

    def _demod(self, x: np.ndarray, at: int, symbols: int, cfo: float) -> np.ndarray:
        from link_models.ota.rxtypes import _rotate

        cfg = self.cfg
        grid = self.codec.grid(symbols)
        seg = _rotate(x, at - cfg.timing_backoff, symbols * cfg.symbol_length, cfo, cfg.sample_rate)
        return grid.demodulator(torch.from_numpy(seg)[None])[0].reshape(symbols, -1).numpy().astype(np.complex128)

    def _noise(self, y: np.ndarray, fallback: float) -> float:
        g = y[:, self._guard_bins]
        return float(np.mean(np.abs(g) ** 2)) if g.size else fallback

    def _blocks(self, y: np.ndarray, h: np.ndarray, shift: int, first: int):
        """Timing-drift measurements of one grid [S, N] whose FFT windows were moved by `shift` samples:
        (centres, delays, weights) per block of DRIFT_BLOCK symbols, centres counted from symbol `first` of
        the burst. Each delay is the one that best aligns the block's summed pilots (the residual CFO turns
        a block by a small fraction of a cycle), minus the move: the drift of the signal itself."""
        obs = y[:, self._pilot_bins] * np.conj(self._pilot_values * h[self._pilot_bins])
        centres, delays, weights = [], [], []
        for b0 in range(0, y.shape[0], DRIFT_BLOCK):
            b1 = min(b0 + DRIFT_BLOCK, y.shape[0])
            score = np.abs(self._steer @ obs[b0:b1].sum(0))
            j = int(np.argmax(score))
            centres.append(first + (b0 + b1 - 1) / 2)
            delays.append(self._delays[j] + parabolic_step(score, j) * (self._delays[1] - self._delays[0]) - shift)
            weights.append(float(score[j]) ** 2)
        return np.asarray(centres), np.asarray(delays), np.asarray(weights)

    def _equalize(self, grids: list[np.ndarray], h: np.ndarray, noise: float, shifts: list[int] | None = None,
                  blocks: list | None = None):
        """Track drift and phase over the concatenated symbols of `grids` (FFT windows moved by `shifts`);
        equalise with the preamble's channel. Returns per grid x_hat [S, N] and no_eff [S, N]."""
        sizes = [g.shape[0] for g in grids]
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        shifts = shifts if shifts is not None else [0] * len(sizes)
        per = np.repeat(np.asarray(shifts, float), sizes)
        if blocks is None:
            blocks = [self._blocks(g, h, s, b) for g, s, b in zip(grids, shifts, bounds[:-1], strict=True)]
        y = np.concatenate(grids, 0)
        total = y.shape[0]
        n = self.cfg.fft_size
        c, d, w = (np.concatenate(v) for v in zip(*blocks, strict=True))
        delay = _line(c, d, w, total) + per            # what each symbol's window shows
        obs = y[:, self._pilot_bins] * np.conj(self._pilot_values * h[self._pilot_bins])
        phase = self._phase(obs * np.exp(-2j * np.pi * delay[:, None] * self._pilot_freq[None] / n))
        corr = np.exp(-1j * (phase[:, None] + 2 * np.pi * delay[:, None] * self._bin_freq[None] / n))
        # the pilots of every tracked symbol join the preamble in the channel estimate
        pilots = (y[:, self._pilot_bins] * corr[:, self._pilot_bins]).mean(0) / self._pilot_values
        h = self._fit(pilots, noise / total)
        hh = np.where(np.abs(h) > 0, h, 1)
        x_hat = y * corr / hh[None]
        no_eff = np.broadcast_to(noise / np.maximum(np.abs(hh) ** 2, 1e-30), y.shape)
        cut = bounds[1:-1]
        return np.split(x_hat, cut), np.split(no_eff, cut)

    @staticmethod
    def _phase(obs: np.ndarray) -> np.ndarray:
        """Common phase of every symbol: angle of its pilot correlation summed over PHASE_WINDOW symbols."""
        r = obs.sum(1)
        kernel = np.ones(min(PHASE_WINDOW, r.size))
        smooth = np.convolve(r, kernel, mode="same")
        return np.angle(smooth)


def parabolic_step(values: np.ndarray, i: int) -> float:
    from link_models.ota.detector import parabolic

    return parabolic(values, i)


def _line(x: np.ndarray, y: np.ndarray, w: np.ndarray, total: int, at: np.ndarray | None = None) -> np.ndarray:
    """Weighted least-squares line through (x, y), evaluated at 0 .. total-1 or at `at` (a constant for
    one point). Points further than DRIFT_OUTLIER from the line are dropped one at a time, the worst
    first, and the line fitted again (while more than two remain): a block whose pilot sum peaked on a
    sidelobe of the delay search (at -10 dB 6 of 462 header blocks in 42 bursts, 2-5 samples off) is a
    wrong measurement, not drift; at the end of the header it tilted the line by a sample and lost the
    header."""
    s = np.arange(total, dtype=np.float64) if at is None else np.asarray(at, np.float64)
    if x.size < 2:
        return np.full(s.size, float(y[0]) if y.size else 0.0)
    keep = np.ones(x.size, bool)
    while True:
        xm, ym, slope = _wls(x[keep], y[keep], w[keep])
        residual = np.where(keep, np.abs(y - (ym + slope * (x - xm))), 0.0)
        worst = int(np.argmax(residual))
        if residual[worst] <= DRIFT_OUTLIER or keep.sum() <= 2:
            return ym + slope * (s - xm)
        keep[worst] = False


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """(weighted mean of x, of y, slope) of the weighted least-squares line through (x, y)."""
    w = w / max(w.sum(), 1e-30)
    xm, ym = (w * x).sum(), (w * y).sum()
    var = (w * (x - xm) ** 2).sum()
    slope = (w * (x - xm) * (y - ym)).sum() / var if var > 0 else 0.0
    return xm, ym, slope


__all__ = ["BURST_HEADER_BITS", "BurstHeader", "LowSnrCodec", "LowSnrReceiver", "low_snr_frames", "CODE_NAMES"]
