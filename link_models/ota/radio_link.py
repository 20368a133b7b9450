"""RadioLink: the link contract (link_models.link.Link) over a radio (simulated pair, Pluto, ...) with the OTA frame.

    from link_models.ota import RadioLink
    from sdr_drivers.sim import SimRadio
    link = RadioLink(SimRadio(snr_db=10, cfo_ppm=20, sco_ppm=20), LinkConfig(modulation="qpsk", k=512, n=1024,
                     snr_db=10))
    received, stats = link.send_bytes(payload)             # same as DigitalLink.send_bytes
    est, noise_var, stats = link.send_values(values)        # same as AnalogLink.send_values
    link.reseed(seed)                                       # message ids, random bits and a simulated radio
    stats.to_dict()                                         # the LinkStats keys, measured over the air

Each call builds the frames (link_models.ota), sends them as one burst per group of frames (cyclically
when the radio repeats a TX buffer in hardware, `radio.cyclic_tx`, so the capture is sure to hold every
frame once), captures, decodes every frame found, and reassembles by sequence number. Nothing is invented
for a frame that did not arrive: digital bytes of a missing or CRC-failed frame are what the decoder
produced (zeros when the frame was not found) and count as errors; analog values of a missing frame come
back as 0 with the prior variance (link_models.mapping.nothing_received); `stats.frames_lost` counts them.
`last_transfer` keeps the per-frame receiver output (CFO, SNR, constellations) for reports.

Retransmission (digital): with `cfg.max_transmissions` > 1 the link sends again, in a fresh burst, every
frame whose CRC failed or that was not found, until each has arrived or has been sent max_transmissions
times (selective-repeat ARQ per frame, as a real link layer does; no soft combining: the receiver keeps the
first CRC-good copy). Every transmission is counted on air; `stats.transmissions` is the most any frame
needed. Such a link retransmits by itself (`harq`), so a protocol hop gives it each payload once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from link_models.config import MODULATIONS, LinkConfig, ResolvedLink, resolve
from link_models.link import check_seed, check_values
from link_models.mapping import nothing_received
from link_models.ota.config import FrameConfig
from link_models.stats import LinkStats
from meg_common.errors import InputError
from meg_common.rng import make_generator
from meg_common.vocabulary import numeric_snr_db

TX_LEVEL_DBFS = -12.0            # RMS of the burst; OFDM peaks stay below full scale (clipped at 1 otherwise)
CAPTURE_MARGIN = 4000            # extra samples around a one-shot burst (the start time is unknown)
MAX_BURST_SAMPLES = 1 << 20      # frames are sent in groups of at most this many samples
LOW_SNR_MAX_BURST = 1 << 17      # low-SNR bursts: one preamble + header per 65 ms (8 samples of drift at 60 ppm)
MODES = ("legacy", "low-snr")

_CODECS: dict = {}


def shared_codec(frame: FrameConfig, ldpc_iterations: int):
    """One FrameCodec per (frame, iterations) per process: building LDPC codecs takes a while."""
    from link_models.ota.frame import FrameCodec

    key = (frame, ldpc_iterations)
    if key not in _CODECS:
        _CODECS[key] = FrameCodec(frame, ldpc_iterations=ldpc_iterations)
    return _CODECS[key]


@dataclass
class Transfer:
    """What one send saw: frames sent, what the receiver found, per-frame diagnostics."""

    sent: list = field(default_factory=list)          # link_models.ota.frame.Frame
    decoded: dict = field(default_factory=dict)       # seq -> DecodedFrame (first CRC-ok, else first found)
    detections: int = 0
    rejected: int = 0              # detections without a valid header, both kinds below
    header_rejected: int = 0       # ... at a frame that was sent: the frame was found but its header failed
    noise_triggers: int = 0        # ... where no frame was: the detector fired on noise
    foreign_frames: int = 0        # valid headers of another message (not ours)
    ground_truth: bool = True      # False: the radio gave no burst positions; the split above is by count
    truncated: int = 0
    captures: list = field(default_factory=list)      # ReceiveResult per capture
    samples_on_air: int = 0
    retransmitted: list = field(default_factory=list)  # frames sent again (ARQ), once per retransmission

    @property
    def frames_detected(self) -> int:
        return len(self.decoded)

    @property
    def frames_crc_ok(self) -> int:
        return sum(1 for f in self.decoded.values() if f.crc_ok)

    @property
    def missing(self) -> list[int]:
        return [f.header.seq for f in self.sent if f.header.seq not in self.decoded]


class RadioLink:
    """`send_bytes` / `send_values` through `radio` using the OTA burst frame (a link_models.link.Link).

    `codec`: a FrameCodec for `frame` to use (default: the process-wide one of `shared_codec`)."""

    schemes = ("digital", "analog")

    def __init__(self, radio, cfg: LinkConfig | ResolvedLink | None = None, frame: FrameConfig | None = None, seed: int = 0,
                 cyclic: bool | None = None, tx_level_dbfs: float = TX_LEVEL_DBFS, recorder=None, codec=None,
                 mode: str = "legacy", repetitions: int | None = None):
        if mode not in MODES:
            raise InputError(f"mode '{mode}': choose one of {', '.join(MODES)}")
        self.mode = mode
        self.repetitions = repetitions      # low-SNR digital frames: copies per coded symbol (None: from the SNR)
        self.radio = radio
        self.cfg = resolve(cfg or LinkConfig(snr_db=getattr(radio, "snr_db", 20.0)))  # the MCS applied
        if self.cfg.code not in ("ldpc", "none"):
            raise InputError(f"code '{self.cfg.code}' is not supported over the air; use ldpc or none")
        self.frame = frame or FrameConfig(sample_rate=float(radio.sample_rate))
        if abs(self.frame.sample_rate - float(radio.sample_rate)) > 1e-6 * self.frame.sample_rate:
            raise InputError(f"frame sample rate {self.frame.sample_rate:g} differs from the radio's "
                             f"{radio.sample_rate:g}; configure both alike")
        if codec is not None and codec.cfg != self.frame:
            raise InputError("the codec was built for another frame configuration; build it from this frame")
        self.codec = codec if codec is not None else shared_codec(self.frame, self.cfg.ldpc_iterations)
        self.cyclic = bool(getattr(radio, "cyclic_tx", False)) if cyclic is None else bool(cyclic)
        self.tx_level_dbfs = float(tx_level_dbfs)
        self.recorder = recorder
        self.last_transfer: Transfer | None = None
        self._restart(check_seed(seed))

    def _restart(self, seed: int) -> None:
        self._msg_id = int(np.random.default_rng(seed).integers(0, 256))
        self.generator = make_generator(seed, "cpu")

    def reseed(self, seed: int) -> None:
        """Restart every random draw from `seed`: message ids, `forward`'s random bits and the radio's own
        (a simulated radio's noise and impairments; hardware has none). A RadioLink reseeded with s then
        behaves like RadioLink(SimRadio(..., seed=s), seed=s)."""
        seed = check_seed(seed)
        self._restart(seed)
        reseed_radio = getattr(self.radio, "reseed", None)
        if reseed_radio is not None:
            reseed_radio(seed)
        self.last_transfer = None

    def forward(self, batch_size: int, ebno_db: float | None = None,
                snr_db: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`batch_size` random k-bit blocks over the air: (bits, decoded bits), both [batch_size, k].

        The call every link shares (Sionna's `sim_ber` signature). The blocks are sent as one payload
        (`send_bytes`), so each frame's codewords also carry its CRC. Given `ebno_db` or `snr_db`, a radio
        with an `snr_db` setting (the simulated pair) moves there; hardware has the SNR of its channel."""
        if ebno_db is not None or snr_db is not None:
            self.cfg = self.cfg.with_snr(snr_db=None if snr_db is None else float(snr_db),
                                         ebno_db=None if ebno_db is None else float(ebno_db))
            if not isinstance(getattr(type(self.radio), "snr_db", None), property):
                raise InputError(f"{type(self.radio).__name__} has no SNR setting: over the air the channel sets "
                                 "it; call the link without ebno_db / snr_db")
            self.radio.snr_db = numeric_snr_db(self.cfg.es_no_db)
        k = self.cfg.k if self.cfg.code == "ldpc" else self.cfg.n
        bits = torch.randint(0, 2, (int(batch_size), k), generator=self.generator, dtype=torch.uint8)
        flat = bits.reshape(-1).numpy()
        received, _ = self.send_bytes(np.packbits(flat).tobytes())
        got = np.unpackbits(np.frombuffer(received, np.uint8))[:flat.size]
        return bits.float(), torch.from_numpy(got.astype(np.float32)).reshape(bits.shape)

    def __call__(self, batch_size: int, ebno_db: float | None = None, snr_db: float | None = None):
        return self.forward(batch_size, ebno_db, snr_db)

    # --- the two link calls ----------------------------------------------------------------------------------
    @torch.no_grad()
    def send_bytes(self, payload: bytes) -> tuple[bytes, LinkStats]:
        from link_models.ota.frame import FrameBuilder

        if not isinstance(payload, bytes | bytearray | memoryview):
            raise InputError(f"send_bytes needs bytes, got {type(payload).__name__}")
        data = bytes(payload)
        if not data:
            raise InputError("nothing to send: the payload is empty; give at least one byte")
        c = self.cfg
        builder = FrameBuilder(self.codec, c.modulation, c.code, c.k, c.n)
        frames = self._on_air(builder, builder.digital_frames(data, self._next_msg_id()))
        transfer = self.transfer(frames, builder)
        tries = {f.header.seq: 1 for f in frames}
        for _ in range(1, c.max_transmissions if c.code == "ldpc" else 1):
            again = [f for f in frames if not _arrived(transfer, f)]
            if not again:
                break
            transfer = self.transfer(again, builder, previous=transfer)
            for f in again:
                tries[f.header.seq] += 1
        chunks, bit_errors, block_errors, codewords = [], 0, 0, 0
        for frame in frames:
            got = transfer.decoded.get(frame.header.seq)
            sent_bits = frame.info_bits
            got_bits = got.info_bits if got is not None and got.info_bits is not None else np.zeros_like(sent_bits)
            used = 8 * frame.header.length
            bit_errors += int(np.sum((got_bits.reshape(-1)[:used] > 0.5) != (sent_bits.reshape(-1)[:used] > 0.5)))
            block_errors += int(np.sum(np.any((got_bits > 0.5) != (sent_bits > 0.5), axis=1)))
            codewords += frame.header.units
            raw = np.packbits(got_bits.reshape(-1)[:used] > 0.5).tobytes()
            chunks.append(got.payload if got is not None and got.crc_ok else raw)
        received = b"".join(chunks)
        stats = self._stats(transfer, payload_bits=8 * len(data))
        stats.coded_bits = sum(tries[f.header.seq] * f.header.units * f.header.n for f in frames)
        stats.codewords = codewords
        stats.codeword_transmissions = sum(tries[f.header.seq] * f.header.units for f in frames)
        stats.transmissions = max(tries.values())
        stats.padding_bits = sum(f.header.units * f.header.k for f in frames) - 8 * len(data)
        stats.bit_errors, stats.ber = bit_errors, bit_errors / (8 * len(data))
        stats.block_errors, stats.bler = block_errors, block_errors / max(codewords, 1)
        stats.mcs_index, stats.mcs_table, stats.modulation = c.mcs_index, c.mcs_table_used, c.modulation
        stats.code_rate = c.code_rate
        if c.code == "ldpc":
            stats.ebno_db = _maybe(stats.snr_db, lambda s: s - 10 * math.log10(MODULATIONS[c.modulation] * c.k / c.n))
        return received, stats

    @torch.no_grad()
    def send_values(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, LinkStats]:
        from link_models.ota.frame import FrameBuilder

        values = check_values(values)
        flat = values.detach().to("cpu", torch.float64).reshape(-1)
        builder = FrameBuilder(self.codec, self.cfg.modulation, "none", self.cfg.k, self.cfg.n)
        frames = self._on_air(builder, builder.analog_frames(flat, self._next_msg_id()))
        transfer = self.transfer(frames, builder)
        scale = frames[0].header.scale
        est, var = [], []
        for frame in frames:
            got = transfer.decoded.get(frame.header.seq)
            units = frame.header.units
            if got is not None and got.values is not None:
                est.append(torch.from_numpy(got.values[:units]))
                var.append(torch.from_numpy(got.value_var[:units]))
            else:
                lost_est, lost_var = nothing_received(units, scale, torch.float64)
                est.append(lost_est)
                var.append(lost_var)
        est_t, var_t = torch.cat(est), torch.cat(var)
        from link_models.ota.header import HEADER_BITS

        stats = self._stats(transfer, payload_bits=HEADER_BITS * len(frames))   # analog: side information on air
        stats.header_bits = HEADER_BITS * len(frames)
        stats.values = flat.numel()
        stats.nmse = float((est_t - flat).square().mean() / flat.square().mean().clamp(min=1e-30))
        return est_t.to(values.dtype).to(values.device), var_t.to(values.dtype).to(values.device), stats

    # --- radio round trip ------------------------------------------------------------------------------------
    @property
    def harq(self) -> bool:
        """Whether this link retransmits failed frames itself (module docstring): digital with
        cfg.max_transmissions > 1."""
        return self.cfg.code == "ldpc" and self.cfg.max_transmissions > 1

    def _on_air(self, builder, frames: list) -> list:
        """The frames as this link's mode sends them (low-SNR: data grids only, link_models.ota.lowsnr)."""
        if self.mode == "low-snr":
            from link_models.ota.lowsnr import low_snr_frames, repetitions_for

            reps = self.repetitions
            if reps is None:
                snr = self.cfg.es_no_db
                reps = repetitions_for(self.cfg.modulation, self.cfg.code_rate,
                                       None if snr is None or not math.isfinite(snr) else snr)
            return low_snr_frames(builder, frames, reps)
        return frames

    def _burst(self, builder, group: list) -> tuple[np.ndarray, int]:
        """(burst samples, samples on air) of a group of frames in this link's mode."""
        if self.mode == "low-snr":
            from link_models.ota.lowsnr import LowSnrCodec

            burst = LowSnrCodec.shared(self.codec).burst(group)
            return burst, burst.size - self.frame.gap_samples
        return builder.burst(group), sum(f.samples.size for f in group)

    def receiver(self):
        """The receiver of this link's mode (stateless, cheap to build)."""
        if self.mode == "low-snr":
            from link_models.ota.lowsnr import LowSnrReceiver

            return LowSnrReceiver(self.codec)
        from link_models.ota.receiver import FrameReceiver

        return FrameReceiver(self.codec)

    def transfer(self, frames: list, builder, previous: Transfer | None = None) -> Transfer:
        """Send `frames` (in groups of at most MAX_BURST_SAMPLES), capture, decode; frames keyed by seq.
        `previous`: the transfer these frames retransmit into (its frames, counts and decoded frames go on)."""
        receiver = self.receiver()
        transfer = previous if previous is not None else Transfer(sent=list(frames))
        if previous is not None:
            transfer.retransmitted += list(frames)
        msg_id = frames[0].header.msg_id
        limit = LOW_SNR_MAX_BURST if self.mode == "low-snr" else MAX_BURST_SAMPLES
        for group in _groups(frames, limit):
            burst, on_air = self._burst(builder, group)
            transfer.samples_on_air += on_air
            samples = self._scale(burst)
            if self.recorder is not None:
                pos = self._first_frame_offset()
                for f in group:
                    self.recorder.annotate_tx(pos, f.samples.size, {"core:label": f"frame {f.header.seq}",
                                                                     "meg_phy:msg_id": msg_id})
                    pos += f.samples.size + (0 if self.mode == "low-snr" else self.frame.gap_samples)
            radio = self.recorder or self.radio
            if self.cyclic:
                radio.transmit(samples, cyclic=True)
                try:
                    capture = radio.receive(min(2 * burst.size + CAPTURE_MARGIN, 1 << 24))
                finally:
                    radio.stop_transmit()
            else:
                radio.transmit(samples)
                capture = radio.receive(burst.size + CAPTURE_MARGIN)
            result = receiver.receive(capture)
            transfer.captures.append(result)
            transfer.detections += result.detections
            transfer.rejected += result.header_rejected
            transfer.truncated += result.truncated
            # a rejected detection is a frame's (legacy) or a burst's (low-SNR: one header per burst)
            if self.mode == "low-snr":
                starts, expected = frame_starts(self.radio, group[:1], 0), 1
            else:
                starts, expected = frame_starts(self.radio, group, self.frame.gap_samples), len(group)
            at_frame, noise = split_rejected(result, starts, expected * (2 if self.cyclic else 1),
                                             self.frame.cp_length)
            transfer.header_rejected += at_frame
            transfer.noise_triggers += noise
            transfer.ground_truth = transfer.ground_truth and starts is not None
            for f in result.frames:
                if self.recorder is not None:
                    self.recorder.annotate_rx(f.start, f.end - f.start,
                                              {"core:label": f"frame {f.header.seq}", "meg_phy:crc_ok": f.crc_ok,
                                               "meg_phy:cfo_hz": f.cfo_hz})
                if f.header.msg_id != msg_id:
                    transfer.foreign_frames += 1     # a frame of another message: not ours
                    continue
                old = transfer.decoded.get(f.header.seq)
                if old is None or (f.crc_ok and not old.crc_ok):
                    transfer.decoded[f.header.seq] = f
        self.last_transfer = transfer
        return transfer

    def _first_frame_offset(self) -> int:
        """Where the first frame's samples begin in a burst (low-SNR: after the preamble and header)."""
        if self.mode == "low-snr":
            from link_models.ota.lowsnr import LowSnrCodec

            return LowSnrCodec.shared(self.codec).data_start
        return 0

    def _scale(self, burst: np.ndarray) -> np.ndarray:
        return scale_burst(burst, self.tx_level_dbfs)

    def _next_msg_id(self) -> int:
        self._msg_id = (self._msg_id + 1) % 256
        return self._msg_id

    def _stats(self, transfer: Transfer, payload_bits: int) -> LinkStats:
        cfg, sent = self.frame, transfer.sent
        on_air = sent + transfer.retransmitted                # every transmission counts
        if self.mode == "low-snr":                            # one preamble and header per burst
            from link_models.ota.lowsnr import LowSnrCodec

            headers = len(transfer.captures) * LowSnrCodec.shared(self.codec).header_symbols
            grid_symbols = headers + sum(f.data_symbols for f in on_air)
        else:
            grid_symbols = sum(cfg.header_symbols + f.data_symbols for f in on_air)
        data_res = sum(f.data_symbols for f in on_air) * cfg.data_subcarriers_per_symbol
        sq_err, count, no_eff = 0.0, 0, []
        for f in sent:
            got = transfer.decoded.get(f.header.seq)
            if got is not None and got.symbols is not None and f.symbols is not None:
                n = min(got.symbols.size, f.symbols.size)
                sq_err += float(np.sum(np.abs(got.symbols[:n] - f.symbols[:n]) ** 2))
                count += n
                no_eff.append(got.no_eff)
        snr = getattr(self.radio, "snr_db", None)
        return LinkStats(
            payload_bits=payload_bits, data_symbols=data_res,
            pilot_symbols=grid_symbols * len(cfg.pilot_subcarriers),
            cp_samples=grid_symbols * cfg.cp_length + len(on_air) * 2 * cfg.cp_length,
            total_symbols=transfer.samples_on_air, frames=len(on_air), frames_lost=len(transfer.missing),
            airtime_s=transfer.samples_on_air / cfg.sample_rate,
            snr_db=None if snr is None else float(snr),
            snr_est_db=(10 * math.log10(count / sq_err) if sq_err > 0 else math.inf) if count else None,
            noise_var=float(np.mean(no_eff)) if no_eff else None)


def scale_burst(burst: np.ndarray, tx_level_dbfs: float = TX_LEVEL_DBFS) -> np.ndarray:
    """Frame samples (unit energy per resource element) -> radio samples at `tx_level_dbfs` RMS, |x| <= 1."""
    active = burst[np.abs(burst) > 0]
    rms = float(np.sqrt(np.mean(np.abs(active) ** 2))) if active.size else 1.0
    x = burst * (10 ** (tx_level_dbfs / 20) / rms)
    peak = np.abs(x)
    over = peak > 1.0
    x[over] = x[over] / peak[over]                 # clip the rare OFDM peaks at full scale
    return x.astype(np.complex64)


def frame_starts(radio, frames: list, gap: int, first: int = 0) -> list[float] | None:
    """Where the frames of a burst start in the last capture, from the radio's ground truth (a simulated
    radio's `last_bursts`); None when the radio has none (hardware, files). `first`: the first frame's
    offset in the burst (a low-SNR burst's preamble and header come before it)."""
    bursts = getattr(radio, "last_bursts", None)
    if bursts is None:
        return None
    offsets, pos = [], first
    for f in frames:
        offsets.append(pos)
        pos += f.samples.size + gap
    return [b0 + o for b0, _ in bursts for o in offsets]


def split_rejected(result, starts: list[float] | None, expected: int, cp: int) -> tuple[int, int]:
    """(header_rejected, noise_triggers) of one capture's detections without a valid header.

    With ground truth (`starts`: where frames begin in the capture), a rejected detection within a cyclic
    prefix (plus 1e-4 of the offset, the largest clock drift) of a frame start is that frame's, else noise.
    Without it, by count: at most `expected` frames minus those found can have a failed header, the rest
    are counted as noise triggers."""
    rejected = result.header_rejected
    if starts is None:
        at_frame = min(rejected, max(0, expected - len(result.frames)))
        return at_frame, rejected - at_frame
    truth = np.asarray(starts, float)
    at_frame = 0
    for d in result.rejected_starts:
        if truth.size and np.any(np.abs(truth - d) <= cp + 1e-4 * np.abs(truth)):
            at_frame += 1
    return at_frame, rejected - at_frame


def _arrived(transfer: Transfer, frame) -> bool:
    got = transfer.decoded.get(frame.header.seq)
    return got is not None and bool(got.crc_ok)


def _groups(frames: list, limit: int) -> list[list]:
    groups, current, size = [], [], 0
    for f in frames:
        if current and size + f.samples.size > limit:
            groups.append(current)
            current, size = [], 0
        current.append(f)
        size += f.samples.size
    if current:
        groups.append(current)
    return groups


def _maybe(value, fn):
    return None if value is None else fn(value)
