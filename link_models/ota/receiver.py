"""The burst receiver: a buffer of IQ samples in, every decodable frame in it out.

Stages (each timed, see `ReceiveResult.timings`):
1. front end: DC removal and blind IQ balance over the buffer (link_models.ota.frontend);
2. detect: Schmidl-Cox metric over the whole buffer (vectorised), threshold, one estimate per crossing;
3. sync, per detection: fractional CFO from the repeats, integer CFO from the training symbol, fine
   timing by cross-correlation, noise variance from the repeats, SNR (Es/N0) from the training symbol;
4. ofdm: header grids of all detections in one batch (Sionna demodulator, drift tracking, LS, LMMSE),
   then data grids batched by shape;
5. demap: soft demapping to LLRs (Sionna APP demapper); analog payloads stop after `ofdm`;
6. ldpc: header and payload decoding (Sionna 5G LDPC), header CRC-16, payload CRC-32.
Garbage never raises: a detection whose header fails its CRC is counted in `header_rejected` and its
start kept in `rejected_starts`. The receiver alone cannot tell a real frame whose header failed from a
noise trigger; whoever knows where frames were sent (RadioLink with a simulated radio's ground truth,
scripts/validate_ota.py) splits them into `header_rejected` and `noise_triggers`.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict

import numpy as np
import torch

from link_models.config import MODULATIONS
from link_models.mapping import from_symbols
from link_models.ota.frame import FrameCodec, take_decoded
from link_models.ota.frontend import front_end
from link_models.ota.header import FrameHeader
from link_models.ota.preamble import (
    detect,
    fine_timing,
    fractional_cfo,
    integer_cfo_bins,
    noise_variance_from_repeats,
    schmidl_cox_metric,
)
from link_models.ota.rxtypes import (  # noqa: F401 - re-exported: the receiver's result types live there
    STAGES,
    DecodedFrame,
    ReceiveResult,
    Sync,
    _Clock,
    _drop_overlaps,
    _rotate,
)


class FrameReceiver:
    """`receive(buffer) -> ReceiveResult`; stateless between buffers (so N cores serve N buffers at once)."""

    def __init__(self, codec: FrameCodec | None = None, timer=time.perf_counter, threads: int | None = 1,
                 modes: tuple[str, ...] = ("legacy",)):
        """`timer` times the stages (`time.process_time` measures CPU time, unaffected by other processes).

        `threads`: PyTorch threads while receiving (restored after; None: leave PyTorch's setting). One by
        default: the tensors are a few frames' grids, too small for intra-op threads to pay, and on a busy
        machine a second thread waiting for a core made the OFDM stage 20-30x slower (benchmarks/
        bench_rx_chain.py, wall times); a second core serves better as a second receiver on the next buffer."""
        self.codec = codec or FrameCodec()
        self.modes = tuple(modes)
        if not self.modes or any(m not in ("legacy", "low-snr") for m in self.modes):
            raise ValueError(f"modes {modes!r}: use legacy and/or low-snr")
        self.timer = timer
        self.threads = threads
        self.cfg = self.codec.cfg
        self.window = (self.cfg.preamble_repeats - 1) * self.cfg.preamble_period
        self._grid_detector = None

    @property
    def grid_detector(self):
        """The matched filter over a CFO grid on today's preamble (FrameConfig.detector = "matched")."""
        if self._grid_detector is None:
            from link_models.ota.detector import CfoGridDetector

            cfg = self.cfg
            self._grid_detector = CfoGridDetector(self.codec.preamble.samples, cfg.sample_rate, cfg.cfo_search_hz,
                                                  cfg.false_alarms_per_hour)
        return self._grid_detector

    def warm_up(self) -> float:
        """Pay the one-time costs before the first buffer: receive one short synthetic frame, which loads the
        compiled LDPC decoder (link_models.ldpc_fast, about 0.5 s once per process; one kernel serves every
        code) and runs the Sionna blocks of the header grid once. Returns the seconds it took (receiver's timer)."""
        from link_models.ota.frame import FrameBuilder

        t0 = self.timer()
        frames = FrameBuilder(self.codec, "qpsk", "none", 2, 2).analog_frames(np.array([1.0, -1.0]))
        self.receive(np.concatenate([np.zeros(self.cfg.gap_samples, np.complex64), frames[0].samples,
                                     np.zeros(self.cfg.gap_samples, np.complex64)]))
        if "low-snr" in self.modes:
            from link_models.ota.lowsnr import LowSnrReceiver

            LowSnrReceiver(self.codec, timer=self.timer).warm_up()
        return self.timer() - t0

    def receive(self, buffer: np.ndarray, decode_payload: bool = True) -> ReceiveResult:
        previous = torch.get_num_threads()
        if self.threads is not None and self.threads != previous:
            torch.set_num_threads(self.threads)
        try:
            return self._receive(buffer, decode_payload)
        finally:
            if torch.get_num_threads() != previous:
                torch.set_num_threads(previous)

    @torch.no_grad()
    def _receive(self, buffer: np.ndarray, decode_payload: bool) -> ReceiveResult:
        result = ReceiveResult(samples=int(np.asarray(buffer).size))
        clock = _Clock(result.timings, self.timer)
        started = clock.t
        x = front_end(np.asarray(buffer).reshape(-1))
        clock.lap("frontend")
        if "legacy" in self.modes:
            self._legacy(x, result, clock, decode_payload)
        if "low-snr" in self.modes:
            # the other mode on the same front-end output: its chirp preamble and version-2 header tell it apart
            from link_models.ota.lowsnr import LowSnrReceiver

            low = LowSnrReceiver(self.codec, timer=self.timer).receive(buffer, decode_payload, x=x)
            for k, v in low.timings.items():
                result.timings[k] = result.timings.get(k, 0.0) + v
            result.detections += low.detections
            result.header_rejected += low.header_rejected
            result.rejected_starts += low.rejected_starts
            result.truncated += low.truncated
            result.frames = _drop_overlaps(result.frames + low.frames)
            clock.t = self.timer()
        result.seconds = self.timer() - started
        return result

    def _legacy(self, x: np.ndarray, result: ReceiveResult, clock: _Clock, decode_payload: bool) -> None:
        if self.cfg.detector == "matched":
            found = self.grid_detector.detect(x, min_distance=self.cfg.sync_length)
            result.detections = len(found)
            clock.lap("detect")
            syncs = [s for s in (self._sync(x, d.start + self.cfg.cp_length // 2, None, None, d) for d in found)
                     if s is not None]
            peaks = found
        else:
            metric, corr = schmidl_cox_metric(x, self.cfg.preamble_period, self.window)
            peaks = detect(metric, self.cfg.detection_threshold, self.cfg.sync_length)
            result.detections = len(peaks)
            clock.lap("detect")
            syncs = [s for s in (self._sync(x, d, metric, corr) for d in peaks) if s is not None]
        result.truncated += len(peaks) - len(syncs)
        clock.lap("sync")
        headers = self._headers(x, syncs, clock)
        result.header_rejected += sum(h is None for h in headers)
        result.rejected_starts += [s.start for s, h in zip(syncs, headers, strict=True) if h is None]
        frames = [DecodedFrame(s, h, s.start + self.cfg.frame_length(self._data_symbols(h)))
                  for s, h in zip(syncs, headers, strict=True) if h is not None]
        frames = _drop_overlaps(frames)
        complete = [f for f in frames if f.end <= x.size]
        result.truncated += len(frames) - len(complete)
        if decode_payload:
            self._payloads(x, complete, clock)
        result.frames = complete

    # --- sync ------------------------------------------------------------------------------------------------
    def _sync(self, x: np.ndarray, d: int, metric, corr, coarse=None) -> Sync | None:
        """`coarse`: a matched-filter Detection (start and CFO) instead of the Schmidl-Cox metric."""
        cfg, n, cp = self.cfg, self.cfg.fft_size, self.cfg.cp_length
        fs, spacing = cfg.sample_rate, cfg.subcarrier_spacing
        start = d - cp // 2
        if start < 0 or start + cfg.data_start > x.size:
            return None
        frac = coarse.cfo_hz if coarse is not None else fractional_cfo(corr[d], cfg.preamble_period, fs)
        probe = start + cfg.sync_length + cp // 2                     # a window inside the training CP
        spectrum = np.fft.fft(_rotate(x, probe, n, frac, fs), norm="ortho")
        max_shift = int(math.ceil(cfg.cfo_search_hz / spacing)) + 1
        shift, quality = integer_cfo_bins(spectrum, self.codec.preamble.train_freq, cfg.used_bins, max_shift)
        cfo = frac + shift * spacing
        expected = start + cfg.sync_length + cp
        lo = max(0, expected - 2 * cp)
        region = _rotate(x, lo, 4 * cp + n, cfo, fs)
        body = lo + fine_timing(region, self.codec.preamble.train_body, expected - lo, 2 * cp)
        start = body - cp - cfg.sync_length
        if start < 0 or start + cfg.data_start > x.size:
            return None
        noise = noise_variance_from_repeats(x, start + cp, cfg.preamble_period, self.window)
        train = np.fft.fft(_rotate(x, body - cfg.timing_backoff, n, cfo, fs), norm="ortho")
        es = float(np.mean(np.abs(train[cfg.used_bins]) ** 2)) - noise
        snr = 10 * math.log10(max(es, 1e-30) / max(noise, 1e-30))
        score = coarse.metric if coarse is not None else float(metric[d])
        return Sync(int(start), score, float(cfo), quality, max(noise, 1e-12), snr)

    # --- header ----------------------------------------------------------------------------------------------
    def _headers(self, x: np.ndarray, syncs: list[Sync], clock: _Clock) -> list[FrameHeader | None]:
        if not syncs:
            return []
        cfg, codec = self.cfg, self.codec
        grid = codec.header_grid
        segs = np.stack([_rotate(x, s.start + cfg.header_start - cfg.timing_backoff, grid.num_samples,
                                 s.cfo_hz, cfg.sample_rate) for s in syncs])
        no = torch.tensor([s.noise_var for s in syncs], dtype=torch.float32)
        out = grid.demodulate(torch.from_numpy(segs), no)
        clock.lap("ofdm")
        llr = codec.header_codec.llr(out["x_hat"], out["no_eff"])
        clock.lap("demap")
        bits = codec.header_codec.decode(llr, 1)[:, 0].numpy()
        clock.lap("ldpc")
        return [FrameHeader.from_bits(b) for b in bits]

    def _data_symbols(self, h: FrameHeader) -> int:
        return self.codec.data_symbols_for(self._data_res(h))

    @staticmethod
    def _data_res(h: FrameHeader) -> int:
        if h.scheme == "analog":
            return (h.units + 1) // 2
        return h.units * h.n // MODULATIONS[h.modulation]

    # --- payload ---------------------------------------------------------------------------------------------
    def _payloads(self, x: np.ndarray, frames: list[DecodedFrame], clock: _Clock) -> None:
        cfg, codec = self.cfg, self.codec
        groups: dict[tuple, list[DecodedFrame]] = defaultdict(list)
        for f in frames:
            h = f.header
            groups[(h.scheme, h.modulation, h.code, h.k, h.n, h.units)].append(f)
        for (scheme, modulation, code, k, n, units), members in groups.items():
            num_re = self._data_res(members[0].header)
            grid = codec.grid(self._data_symbols(members[0].header))
            segs = np.stack([_rotate(x, f.start + cfg.data_start - cfg.timing_backoff, grid.num_samples,
                                     f.cfo_hz, cfg.sample_rate) for f in members])
            no = torch.tensor([f.sync.noise_var for f in members], dtype=torch.float32)
            out = grid.demodulate(torch.from_numpy(segs), no)
            x_hat, no_eff = out["x_hat"][:, :num_re], out["no_eff"][:, :num_re]
            for f, xs, ne in zip(members, x_hat.numpy(), no_eff.numpy(), strict=True):
                f.symbols, f.no_eff = xs, float(ne.mean())
            if scheme == "analog":
                clock.lap("ofdm")
                scales = torch.tensor([[f.header.scale] for f in members], dtype=torch.float32)
                values, var = from_symbols(x_hat, scales, units, no_eff)
                for f, vi, var_i in zip(members, values.numpy(), var.numpy(), strict=True):
                    f.values, f.value_var = vi.astype(np.float64), var_i.astype(np.float64)
                    f.crc_ok = True  # analog frames carry no CRC; the header's CRC vouches for the metadata
                continue
            clock.lap("ofdm")
            pc = codec.payload_codec(modulation, code, k, n)
            llr = pc.llr(x_hat, no_eff)
            clock.lap("demap")
            bits = pc.decode(llr, units).numpy()
            clock.lap("ldpc")
            take_decoded(members, bits)
